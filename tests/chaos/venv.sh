#!/usr/bin/env bash
# Prints the Python of the chaos and security tests' virtualenv (~/.cache/caas/chaos-venv),
# installing tests/chaos/requirements.txt into it first when they changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${CAAS_CACHE_DIR:-$HOME/.cache/caas}/chaos-venv"
stamp="$VENV/.requirements-$(sha256sum "$ROOT/tests/chaos/requirements.txt" | cut -c1-12)"
if [[ ! -f $stamp ]]; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q -r "$ROOT/tests/chaos/requirements.txt" >&2
  touch "$stamp"
fi
echo "$VENV/bin/python"
