#!/usr/bin/env bash
# deploy/k8s/ offline: every Kubernetes object validates against the API schemas that the PyPI
# package kubernetes-validate carries (strict: unknown fields fail), and
# k8s_manifests_check.py checks the KEDA ScaledObjects against their own schema, the lag-scaling
# caps against topics/catalogue.yaml, and every image, ConfigMap, Secret and key referenced.
# kubernetes-validate is installed once into the venv under ~/.cache/caas.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${CAAS_CACHE_DIR:-$HOME/.cache/caas}"
VENV="$CACHE/venv"
KUBERNETES_VERSION="${CAAS_K8S_VERSION:-1.31.0}"

[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet kubernetes-validate
fi

# ScaledObjects have no schema there (a warning); everything else must pass.
output=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$KUBERNETES_VERSION" "$ROOT"/deploy/k8s/*.yaml 2>&1) \
  || { echo "$output"; exit 1; }
unexpected=$(grep -v "Couldn't find schema for kind ScaledObject" <<<"$output" || true)
[[ -z $unexpected ]] || { echo "$unexpected"; exit 1; }
echo "kubernetes-validate $KUBERNETES_VERSION (strict): every object passed"

"$VENV/bin/python" "$ROOT/tests/system/k8s_manifests_check.py"
