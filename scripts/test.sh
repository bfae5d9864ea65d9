#!/usr/bin/env bash
# Quick start 2: the whole test suite (unit, integration against sandboxes on loopback,
# Prometheus dashboard and alert-rule tests). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-system-packages.sh test
exec cargo test --all-targets "$@"
