#!/usr/bin/env bash
# Build the operator dashboard into services/gateway/assets/ (committed: the gateway embeds
# those files at compile time, so building the gateway needs no Node.js).
#
#   services/gateway/web/build.sh          type-check, bundle, write ../assets
#   services/gateway/web/build.sh --check  fail when ../assets differs from a fresh build
#
# npm packages are installed once per package-lock.json under ~/.cache/caas/npm/gateway-web
# (override the cache root with CAAS_CACHE_DIR); web/node_modules is a symlink to them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${CAAS_CACHE_DIR:-$HOME/.cache/caas}"
DEPS="$CACHE/npm/gateway-web"
ASSETS="$HERE/../assets"

stamp="$DEPS/.installed-$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  echo "dashboard: installing npm packages into $DEPS" >&2
  mkdir -p "$DEPS"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$DEPS/"
  (cd "$DEPS" && npm ci --cache "$CACHE/npm/cache" --no-audit --no-fund --loglevel=error >&2)
  touch "$stamp"
fi
ln -sfn "$DEPS/node_modules" "$HERE/node_modules"

"$DEPS/node_modules/.bin/tsc" -p "$HERE/tsconfig.json"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$DEPS/node_modules/.bin/esbuild" "$HERE/src/main.ts" --bundle --minify --format=iife \
  --target=es2020 --legal-comments=none --log-level=warning --outfile="$out/app.js"
cp "$HERE/src/index.html" "$HERE/src/app.css" "$out/"

if [[ "${1:-}" == "--check" ]]; then
  if ! diff -r "$out" "$ASSETS" >/dev/null; then
    echo "dashboard: services/gateway/assets is stale; run services/gateway/web/build.sh" >&2
    exit 1
  fi
  echo "dashboard: assets are up to date" >&2
else
  mkdir -p "$ASSETS"
  cp "$out/app.js" "$out/index.html" "$out/app.css" "$ASSETS/"
  echo "dashboard: built $(wc -c <"$ASSETS/app.js") bytes of app.js into services/gateway/assets" >&2
fi
