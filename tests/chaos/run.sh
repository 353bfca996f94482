#!/usr/bin/env bash
# `make chaos`: the fault-injection suite (tests/chaos/chaos.py) and the consumer-group scaling
# test (tests/chaos/scaling.py) against the three-broker stack of `make up-cluster`. Not part of
# `make test`: it breaks things on purpose and takes about a quarter of an hour.
#
#   tests/chaos/run.sh                 both, writes tests/chaos/REPORT.md and SCALING.md
#   tests/chaos/run.sh chaos [args]    only the faults (--only <scenario> to pick)
#   tests/chaos/run.sh scaling [args]  only the scaling test
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${CAAS_CACHE_DIR:-$HOME/.cache/caas}"
VENV="$CACHE/chaos-venv"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import pymongo, socketio, confluent_kafka, requests' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$ROOT/tests/chaos/requirements.txt"
fi
"$ROOT/infra/local/cluster.sh" status >/dev/null || "$ROOT/infra/local/cluster.sh" up
what=${1:-all}
[[ $# -gt 0 ]] && shift
status=0
if [[ $what == all || $what == chaos ]]; then
  timeout 2400 "$VENV/bin/python" "$ROOT/tests/chaos/chaos.py" "$@" || status=1
fi
if [[ $what == all || $what == scaling ]]; then
  timeout 900 "$VENV/bin/python" "$ROOT/tests/chaos/scaling.py" "$@" || status=1
fi
exit $status
