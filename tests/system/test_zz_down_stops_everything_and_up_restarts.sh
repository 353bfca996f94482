#!/usr/bin/env bash
# `make down` stops every process `make up` started; `make up` brings the whole stack back with
# its data (topics and registered schemas survive). Runs last: it restarts the stack.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${CAAS_STATE_DIR:-$HOME/.cache/caas/state}"

subjects_before=$(curl -fsS http://127.0.0.1:8081/apis/ccompat/v7/subjects)
pids=$(cat "$STATE"/pids/*.pid)
make -C "$ROOT" --no-print-directory down >/dev/null
for pid in $pids; do
  if kill -0 "$pid" 2>/dev/null; then echo "pid $pid still runs after make down"; exit 1; fi
done
ls "$STATE"/pids/*.pid >/dev/null 2>&1 && { echo "pid files left after make down"; exit 1; }
if "$ROOT/infra/local/stack.sh" status >/dev/null 2>&1; then echo "status says ready after down"; exit 1; fi

make -C "$ROOT" --no-print-directory up >/dev/null 2>&1 || { echo "make up after down failed"; exit 1; }
"$ROOT/infra/local/stack.sh" status >/dev/null || { echo "not ready after make up"; exit 1; }
subjects_after=$(curl -fsS http://127.0.0.1:8081/apis/ccompat/v7/subjects)
python3 - "$subjects_before" "$subjects_after" <<'PY'
import json, sys
before, after = (set(json.loads(text)) for text in sys.argv[1:3])
missing = before - after
assert not missing, f"subjects lost across a restart: {sorted(missing)}"
PY
