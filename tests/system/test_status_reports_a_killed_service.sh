#!/usr/bin/env bash
# A killed service shows as not ready in `make status` (exit 1), and `make up` brings it back.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK="$ROOT/infra/local/stack.sh"
STATE="${CAAS_STATE_DIR:-$HOME/.cache/caas/state}"

"$STACK" status >/dev/null || { echo "the stack is not fully ready before the test"; "$STACK" status; exit 1; }

pid=$(cat "$STATE/pids/presence.pid")
kill -KILL "$pid"
for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done

if output=$("$STACK" status 2>&1); then
  echo "status exited 0 with presence killed:"; echo "$output"; exit 1
fi
echo "$output" | grep -E '^presence +[0-9-]+ +stopped +no ' >/dev/null \
  || { echo "presence is not reported as stopped and not ready:"; echo "$output"; exit 1; }
echo "$output" | grep -E '^logger +[0-9]+ +running +yes ' >/dev/null \
  || { echo "logger should still be ready:"; echo "$output"; exit 1; }

"$STACK" services >/dev/null
"$STACK" status >/dev/null || { echo "make up did not bring presence back"; "$STACK" status; exit 1; }
