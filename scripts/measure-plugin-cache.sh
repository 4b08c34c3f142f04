#!/usr/bin/env bash
# Upload and restart times of a Python and a JavaScript channel, with and without the
# compiled-code cache (docs/benchmarks.md, issue 21). Usage:
#
#     scripts/measure-plugin-cache.sh [SWITCHYARD_BINARY]
#
# The components come from $SWITCHYARD_POLYGLOT_PLUGINS (default
# ~/.cache/switchyard/polyglot), where scripts/test.sh builds them. Uses port 18080.
set -euo pipefail
B=${1:-${CARGO_TARGET_DIR:-$HOME/.cache/switchyard/target}/release/switchyard}
P=${SWITCHYARD_POLYGLOT_PLUGINS:-$HOME/.cache/switchyard/polyglot}
W=$(mktemp -d)
cd "$W"
export SWITCHYARD_DATA_DIR="$W/data" SWITCHYARD_LISTEN=127.0.0.1:18080
printf 'channels:\n  log: { plugin: log }\nroutes:\n  - { name: all, match: {}, to: [log] }\n' > "$W/routes.yaml"
export SWITCHYARD_ROUTES="$W/routes.yaml"
TOKEN=$("$B" token create measure --scope admin --scope send --scope read 2>/dev/null | grep -o 'sy_[A-Za-z0-9_-]*' | head -1)
[ -n "$TOKEN" ] || { echo "could not create a token with $B" >&2; exit 1; }
trap 'kill ${PID:-} 2>/dev/null || true' EXIT
start() { local t0=$(date +%s.%N); "$B" serve >"$W/hub.log" 2>&1 & PID=$!; until curl -sf http://127.0.0.1:18080/readyz >/dev/null; do sleep 0.05; done; echo "$1: $(echo "$(date +%s.%N) - $t0" | bc) s"; }
up() { local t0=$(date +%s.%N); curl -sf -H "Authorization: Bearer $TOKEN" -F name=$1 -F file=@$2 http://127.0.0.1:18080/api/v1/plugins >/dev/null; echo "$(echo "$(date +%s.%N) - $t0" | bc)"; }
start "start (empty data dir)"
echo "upload py-channel, cold cache: $(up pyone $P/py-channel.wasm) s"
echo "upload the same bytes again as another plugin: $(up pytwo $P/py-channel.wasm) s"
echo "upload js-channel, cold cache: $(up jsone $P/js-channel.wasm) s"
printf 'channels:\n  log: { plugin: log }\n  py: { plugin: pyone }\n  js: { plugin: jsone }\nroutes:\n  - { name: all, match: {}, to: [log, py, js] }\n' > "$W/routes.yaml"
curl -sf -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:18080/api/v1/routes/reload >/dev/null
kill $PID; wait $PID 2>/dev/null || true
start "restart, routes naming both, cache warm"
kill $PID; wait $PID 2>/dev/null || true
du -sh "$W/data/cache" | sed 's/^/cache size: /'
rm -rf "$W/data/cache"
start "restart, routes naming both, cache removed"
kill $PID; wait $PID 2>/dev/null || true
rm -rf "$W"
