#!/usr/bin/env bash
# The shipped Prometheus configs, alert rules (with their unit tests) and Grafana dashboards load
# as the tools themselves check them: promtool check config / check rules / test rules, and every
# dashboard is JSON whose panels use the provisioned data source.
# promtool comes from Debian's `prometheus` package: taken from PATH, or extracted (no root, no
# install) from the .deb into ~/.cache/caas/prometheus once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${CAAS_CACHE_DIR:-$HOME/.cache/caas}"
OBS="$ROOT/deploy/observability"

promtool_path() {
  if command -v promtool >/dev/null 2>&1; then command -v promtool; return; fi
  local extracted="$CACHE/prometheus/usr/bin/promtool"
  if [[ ! -x $extracted ]]; then
    mkdir -p "$CACHE/prometheus/deb"
    (cd "$CACHE/prometheus/deb" && apt-get download prometheus >/dev/null) \
      || { echo "cannot download Debian's prometheus package (apt-get download prometheus)"; return 1; }
    dpkg -x "$CACHE"/prometheus/deb/prometheus_*.deb "$CACHE/prometheus"
  fi
  echo "$extracted"
}

PROMTOOL=$(promtool_path)
"$PROMTOOL" check config "$OBS/prometheus/prometheus.yml"
"$PROMTOOL" check config "$OBS/prometheus/prometheus.local.yml"
"$PROMTOOL" check rules "$OBS"/prometheus/rules/*.yml
"$PROMTOOL" test rules "$OBS"/prometheus/tests/*.yml

python3 - "$OBS" <<'PY'
import json, pathlib, sys
obs = pathlib.Path(sys.argv[1])
uids = set()
for line in (obs / "grafana/provisioning/datasources/prometheus.yml").read_text().splitlines():
    if line.strip().startswith("uid:"):
        uids.add(line.split(":", 1)[1].strip())
assert uids, "the provisioned data source has a uid"
dashboards = sorted((obs / "grafana/dashboards").glob("*.json"))
assert len(dashboards) >= 5, dashboards
seen = set()
def walk(value, where):
    if isinstance(value, dict):
        source = value.get("datasource")
        if isinstance(source, dict):
            assert source.get("uid") in uids, f"{where}: data source {source} is not provisioned"
        for inner in value.values():
            walk(inner, where)
    elif isinstance(value, list):
        for inner in value:
            walk(inner, where)
for path in dashboards:
    board = json.loads(path.read_text())
    assert board["uid"] not in seen, f"{path.name}: duplicate uid {board['uid']}"
    seen.add(board["uid"])
    assert board["panels"], f"{path.name} has no panels"
    for panel in board["panels"]:
        assert panel.get("targets"), f"{path.name}: panel {panel.get('title')!r} has no query"
    walk(board, path.name)
print(f"{len(dashboards)} dashboards use the provisioned data source {sorted(uids)}")
PY
