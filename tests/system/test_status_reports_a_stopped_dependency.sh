#!/usr/bin/env bash
# A stopped part of the stack (Redis) shows as not ready in `make status`, and so do the services
# that depend on it; `make up` starts it again and everything is ready once more.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK="$ROOT/infra/local/stack.sh"
STATE="${CAAS_STATE_DIR:-$HOME/.cache/caas/state}"

"$STACK" status >/dev/null || { echo "the stack is not fully ready before the test"; "$STACK" status; exit 1; }

pid=$(cat "$STATE/pids/redis.pid")
kill -TERM "$pid"
for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done

if output=$("$STACK" status 2>&1); then
  echo "status exited 0 with redis stopped:"; echo "$output"; exit 1
fi
echo "$output" | grep -E '^redis +[0-9-]+ +stopped +no ' >/dev/null \
  || { echo "redis is not reported as stopped and not ready:"; echo "$output"; exit 1; }
echo "$output" | grep -E '^ingest +[0-9]+ +running +no ' >/dev/null \
  || { echo "ingest (needs redis) should be running but not ready:"; echo "$output"; exit 1; }
echo "$output" | grep -E '^logger +[0-9]+ +running +yes ' >/dev/null \
  || { echo "logger (no redis) should stay ready:"; echo "$output"; exit 1; }

"$STACK" up >/dev/null 2>&1
"$STACK" status >/dev/null || { echo "make up did not bring redis back"; "$STACK" status; exit 1; }
