#!/usr/bin/env bash
# `make chaos`: the fault-injection suite (tests/chaos/chaos.py), the consumer-group scaling
# test (tests/chaos/scaling.py) and the security checks (tests/security) against the
# three-broker stack of `make up-cluster`. Not part of `make test`: it breaks things on purpose
# and takes about a quarter of an hour.
#
#   tests/chaos/run.sh                  all three, writes tests/chaos/REPORT.md and SCALING.md
#   tests/chaos/run.sh chaos [args]     only the faults (--only <scenario> to pick)
#   tests/chaos/run.sh scaling [args]   only the scaling test
#   tests/chaos/run.sh security         only the security checks (tests/security), on this stack
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON=$("$ROOT/tests/chaos/venv.sh")
"$ROOT/infra/local/cluster.sh" status >/dev/null || "$ROOT/infra/local/cluster.sh" up
what=${1:-all}
[[ $# -gt 0 ]] && shift
status=0
if [[ $what == all || $what == chaos ]]; then
  timeout 2400 "$PYTHON" "$ROOT/tests/chaos/chaos.py" "$@" || status=1
fi
if [[ $what == all || $what == scaling ]]; then
  timeout 900 "$PYTHON" "$ROOT/tests/chaos/scaling.py" "$@" || status=1
fi
if [[ $what == all || $what == security ]]; then
  CAAS_SECURITY_STACK=cluster timeout 300 "$PYTHON" "$ROOT/tests/security/test_security.py" || status=1
fi
exit $status
