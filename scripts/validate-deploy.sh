#!/usr/bin/env bash
# Validates deploy/ offline (after one pip install from PyPI): the Kubernetes manifests with
# kubernetes-validate (strict: unknown fields fail), the compose file against the Compose
# specification with check-jsonschema's bundled schema, the compose stack's prometheus.yml with
# promtool, and — when the tools are installed — `kubectl kustomize` and `docker compose config`.
# The configs inside them are checked by `switchboard check` in tests/it/cluster.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-system-packages.sh deploy

# Pinned: a new schema release must not change CI's verdict by itself.
KUBERNETES_VALIDATE=1.37.0
CHECK_JSONSCHEMA=0.39.0
KUBERNETES_VERSION=1.33.0
venv="${SWITCHBOARD_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/deploy-venv}"
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE" \
  || ! "$venv/bin/check-jsonschema" --version 2>/dev/null | grep -q "$CHECK_JSONSCHEMA"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE" "check-jsonschema==$CHECK_JSONSCHEMA"
fi

echo "-- kubernetes-validate --strict (Kubernetes $KUBERNETES_VERSION)"
manifests=()
for f in deploy/kubernetes/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
# Every manifest is listed in the kustomization, and every listed one exists.
for f in "${manifests[@]}"; do
  grep -q "^  - $(basename "$f")\$" deploy/kubernetes/kustomization.yaml \
    || { echo "$f is not listed in deploy/kubernetes/kustomization.yaml"; exit 1; }
done
"$venv/bin/kubernetes-validate" --strict --quiet -k "$KUBERNETES_VERSION" "${manifests[@]}"
echo "ok: ${#manifests[@]} manifests"

echo "-- compose.yaml against the Compose specification"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose/compose.yaml

echo "-- promtool check config on the compose stack's prometheus.yml"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed "s#/etc/prometheus/alerts.yml#$PWD/dashboards/alerts.yml#" deploy/compose/prometheus.yml >"$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml"

if command -v kubectl >/dev/null 2>&1; then
  echo "-- kubectl kustomize"
  kubectl kustomize deploy/kubernetes >/dev/null
fi
if docker compose version >/dev/null 2>&1; then
  echo "-- docker compose config"
  SWITCHBOARD_JWT_SECRET=x SWITCHBOARD_CURSOR_SECRET=y \
    docker compose -f deploy/compose/compose.yaml config --quiet
fi
echo "deploy/ is valid"
