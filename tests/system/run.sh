#!/usr/bin/env bash
# System tests run by `make test` after the Rust suite, against the stack `make up` started:
# shell-level checks of the stack script, then the Python interoperability tests.
# Prints one closing line: "N passed, N failed".
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
passed=0
failed=0

run() {
  local name
  name=$(basename "${@: -1}")
  printf '== %s\n' "$name"
  if "$@"; then passed=$((passed + 1)); printf 'ok  %s\n' "$name"; else failed=$((failed + 1)); printf 'FAIL %s\n' "$name"; fi
}

for test in "$ROOT"/tests/system/test_*.sh; do
  run bash "$test"
done

run bash "$ROOT/tests/interop/run.sh"
run bash "$ROOT/tests/browser/run.sh"

echo
echo "system: $passed passed, $failed failed"
((failed == 0))
