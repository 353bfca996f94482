#!/usr/bin/env bash
# Browser and client-interoperability tests of the gateway, against the stack `make up` started:
#
# - the official npm socket.io-client connects (long-polling + upgrade, and WebSocket),
#   receives events through the Redis adapter, acts with acks, and sees a bad token refused;
# - the dashboard's client rules (web/src/model.ts) with node:test;
# - the operator dashboard in headless Chromium (playwright-core + Debian's chromium): a
#   signed WhatsApp webhook's message appears in the list and the thread without a reload, a
#   reply typed into the box shows as sent, take-over works; a campaign started through the
#   gateway's API against the stack's simulator shows its progress bar advance to completion;
#   a customer played by the simulator is handed off by the chatbot, the operator's reply typed
#   in the page reaches the simulator and its delivered/read webhooks show as ticks;
#   screenshots are kept in
#   ~/.cache/caas/artifacts/browser/ (CAAS_BROWSER_ARTIFACTS).
#
# The drivers are tests/browser/*.mjs; the tests themselves (services start in-process, events
# are produced and checked) are services/gateway/tests/browser.rs. This script installs what is
# missing (idempotent: npm packages cached per package-lock.json under ~/.cache/caas/npm,
# chromium with apt-get when run as root), checks that the committed dashboard bundle matches
# its sources, then runs the tests. Exits non-zero on any failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/browser"
CACHE="${CAAS_CACHE_DIR:-$HOME/.cache/caas}"
DEPS="$CACHE/npm/browser-tests"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export CAAS_CHROMIUM="${CAAS_CHROMIUM:-/usr/bin/chromium}"
export CAAS_BROWSER_ARTIFACTS="${CAAS_BROWSER_ARTIFACTS:-$CACHE/artifacts/browser}"

say() { printf 'browser tests: %s\n' "$*" >&2; }

command -v node >/dev/null && command -v npm >/dev/null || {
  say "Node.js and npm are required (apt-get install -y nodejs npm)"; exit 1; }

if [[ ! -x "$CAAS_CHROMIUM" ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing chromium"
    if ! apt-cache policy chromium 2>/dev/null | grep -q Candidate; then apt-get update -q; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
  else
    say "chromium is missing at $CAAS_CHROMIUM (apt-get install -y chromium, or set CAAS_CHROMIUM)"; exit 1
  fi
fi

stamp="$DEPS/.installed-$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  say "installing npm packages into $DEPS"
  mkdir -p "$DEPS"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$DEPS/"
  (cd "$DEPS" && npm ci --cache "$CACHE/npm/cache" --no-audit --no-fund --loglevel=error >&2)
  touch "$stamp"
fi
ln -sfn "$DEPS/node_modules" "$HERE/node_modules"

# The gateway embeds services/gateway/assets; they must be the build of web/src.
"$ROOT/services/gateway/web/build.sh" --check

# The dashboard's client rules, without a browser.
model="$(mktemp -d)"
trap 'rm -rf "$model"' EXIT
"$CACHE/npm/gateway-web/node_modules/.bin/esbuild" "$ROOT/services/gateway/web/src/model.ts" \
  --format=esm --log-level=warning --outfile="$model/model.mjs"
CAAS_DASHBOARD_MODEL="$model/model.mjs" node --test --test-reporter=dot "$HERE/model.test.mjs"

# The same CAAS_* settings `make up` gives the services (webhook secret, tenants, endpoints).
set -a
# shellcheck disable=SC1091
source "$ROOT/.env.example"
[[ -f "$ROOT/.env" ]] && source "$ROOT/.env"
set +a

mkdir -p "$CAAS_BROWSER_ARTIFACTS"
cd "$ROOT"
cargo test -q -p caas-gateway --test browser -- --ignored --test-threads=1
say "screenshots: $CAAS_BROWSER_ARTIFACTS"
