#!/usr/bin/env bash
# Interoperability tests with software we did not write: Python confluent-kafka's Confluent
# Avro (de)serializers against our records, schemas and registry. Installs its own virtualenv
# under ~/.cache/caas/venv (once) and needs the stack from `make up`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${CAAS_CACHE_DIR:-$HOME/.cache/caas}"
VENV="$CACHE/venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"

stamp="$VENV/.requirements-$(sha256sum "$ROOT/tests/interop/requirements.txt" | cut -c1-12)"
if [[ ! -f $stamp ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$ROOT/tests/interop/requirements.txt"
  touch "$stamp"
fi
(cd "$ROOT" && cargo build -q -p caas-stack-tests --bin caas-interop)
export CAAS_INTEROP_BIN="$CARGO_TARGET_DIR/debug/caas-interop"
export CAAS_ROOT="$ROOT"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/tests/interop"
