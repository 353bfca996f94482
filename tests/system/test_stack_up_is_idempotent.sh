#!/usr/bin/env bash
# Running `make up` again leaves exactly one of each process, with the same pids.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${CAAS_STATE_DIR:-$HOME/.cache/caas/state}"

before=$(cd "$STATE/pids" && for f in *.pid; do echo "$f $(cat "$f")"; done)
make -C "$ROOT" --no-print-directory up >/dev/null 2>&1 || { echo "second make up failed"; exit 1; }
after=$(cd "$STATE/pids" && for f in *.pid; do echo "$f $(cat "$f")"; done)
[[ "$before" == "$after" ]] || { echo "processes changed:"; diff <(echo "$before") <(echo "$after"); exit 1; }
for process in kafka.Kafka secantusd redis-server apicurio-registry-app; do
  count=$(pgrep -fc "$process" || true)
  [[ $count -eq 1 ]] || { echo "$count processes match $process, expected 1"; exit 1; }
done
