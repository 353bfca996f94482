#!/usr/bin/env bash
# The load-test harness must not rot: run every scenario of load-tests/bench.py at a tiny scale
# (debug builds, a handful of sockets, about a second per run) and check that each produced its
# figures. It never checks how fast anything was.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
python3 "$ROOT/load-tests/bench.py" --profile tiny --out "$out" --check >"$out/stdout.txt" 2>"$out/stderr.txt" || {
  tail -40 "$out/stderr.txt" >&2
  exit 1
}
for figure in "ingest: webhooks acked/s" "end to end:" "fan-out:" "connections:" "drain: logger" "chatbot:"; do
  if ! grep -q "$figure" "$out/report.md"; then
    echo "report.md has no row for '$figure'" >&2
    exit 1
  fi
done
# Every plot the report embeds exists.
grep -o 'plots/[a-z0-9-]*\.svg' "$out/report.md" | while read -r plot; do
  [[ -s "$out/$plot" ]] || { echo "missing $plot" >&2; exit 1; }
done
echo "bench harness produced every figure"
