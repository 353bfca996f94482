#!/usr/bin/env bash
# Security checks on the stack `make up` started (tests/security/test_security.py --quick): no
# configured secret and no JWT in any log, JWTs with alg none / a wrong secret / an expired or
# forged tenant claim refused on REST and socket.io, oversized bodies refused. Sends nothing that
# is accepted; the tenant-isolation checks run in `make chaos` on the cluster stack.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON=$("$ROOT/tests/chaos/venv.sh")
exec timeout 120 "$PYTHON" "$ROOT/tests/security/test_security.py" --quick
