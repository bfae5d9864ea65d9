#!/usr/bin/env bash
# Regenerate deploy/kubernetes/configmap-routes.yaml (the ConfigMap the replicas mount at
# /etc/switchboard/routes) from routes/*.yaml. tests/it/cluster.rs fails when they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
out=deploy/kubernetes/configmap-routes.yaml
{
  cat <<'HEAD'
# The routes files (routes/*.yaml of the repository, one per vendor), mounted at
# /etc/switchboard/routes. Regenerate after changing routes/: scripts/deploy-routes.sh
# (tests/it/cluster.rs fails when this copy and routes/ differ).
apiVersion: v1
kind: ConfigMap
metadata:
  name: switchboard-routes
  labels:
    app.kubernetes.io/name: switchboard
data:
HEAD
  for file in routes/*.yaml; do
    echo "  $(basename "$file"): |"
    sed -e 's/^\(.\)/    \1/' "$file"
  done
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out"
