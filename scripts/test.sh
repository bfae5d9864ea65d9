#!/usr/bin/env bash
# Quick start 2: the whole test suite with plain `cargo test --all-targets`: the unit tests, the
# integration tests (one binary, `it`: tests/it/main.rs, sandboxes and gateways on loopback, the
# Prometheus dashboard and alert-rule tests) and `reload_sighup` (its own process). Extra
# arguments go to `cargo test`, e.g. a name filter: `scripts/test.sh reload::`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-system-packages.sh test
exec cargo test --all-targets "$@"
