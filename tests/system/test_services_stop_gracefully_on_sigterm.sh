#!/usr/bin/env bash
# A service told to stop with SIGTERM finishes, logs that it stopped and exits 0; `make up`
# starts it again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK="$ROOT/infra/local/stack.sh"
STATE="${CAAS_STATE_DIR:-$HOME/.cache/caas/state}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/caas/target}"

# Run one service in the foreground of this script, so its exit status is ours to read.
set -a; source "$ROOT/.env.example"; set +a
log=$(mktemp)
CAAS_SENDER_OPS_ADDR=127.0.0.1:0 "$CARGO_TARGET_DIR/debug/caas-sender" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 40); do grep -q '"service started"\|service started' "$log" && break; sleep 0.25; done
grep -q 'service started' "$log" || { echo "sender did not start:"; cat "$log"; exit 1; }
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[[ $status -eq 0 ]] || { echo "sender exited $status after SIGTERM:"; cat "$log"; exit 1; }
grep -q 'shutdown signal received' "$log" || { echo "no shutdown log line:"; cat "$log"; exit 1; }
grep -q 'service stopped' "$log" || { echo "no stopped log line:"; cat "$log"; exit 1; }
# Every line is a JSON object (structured logs).
python3 -c 'import json,sys; [json.loads(line) for line in open(sys.argv[1]) if line.strip()]' "$log" \
  || { echo "log lines are not all JSON:"; cat "$log"; exit 1; }
rm -f "$log"
