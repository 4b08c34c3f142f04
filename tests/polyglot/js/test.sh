#!/usr/bin/env bash
# Builds the JavaScript test plugins into OUTDIR (see build.sh) and runs the built
# components under Node via jco transpile, with a stand-in host.
#
#   tests/polyglot/js/test.sh OUTDIR
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
"$here/build.sh" "$1"
toolchain=${SWITCHYARD_JS_TOOLCHAIN:-$HOME/.cache/switchyard/js-toolchain}
SWITCHYARD_JS_OUT=$(cd "$1" && pwd) SWITCHYARD_JCO="$toolchain/node_modules/.bin/jco" \
    node --test "$here/test/components.test.mjs"
