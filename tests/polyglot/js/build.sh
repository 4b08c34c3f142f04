#!/usr/bin/env bash
# Builds every JavaScript test plugin in tests/polyglot/js/plugins/ into OUTDIR/<name>.wasm.
#
#   tests/polyglot/js/build.sh OUTDIR
#
# The pinned toolchain (toolchain/package.json + package-lock.json: componentize-js, jco,
# esbuild, @noble/hashes) is installed once, with `npm ci`, into one shared place that every
# plugin reuses: $SWITCHYARD_JS_TOOLCHAIN if set, else ~/.cache/switchyard/js-toolchain.
# It is installed again only when the lock file changes. After that, builds are offline.
#
# Each plugin is laid out the way `switchyard plugin new NAME --lang js` lays out a project
# (the SDK in switchyard-sdk/, the contract in wit/plugin.wit, scaffold's build.mjs) in
# OUTDIR/.work/<name>, with node_modules linked to the shared toolchain, and built with
# `node build.mjs`. A plugin whose inputs (its sources, the SDK, the contract, build.mjs,
# the toolchain lock) are unchanged since its last build is skipped: OUTDIR/.stamps/ keeps
# a content hash per plugin.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
toolchain=${SWITCHYARD_JS_TOOLCHAIN:-$HOME/.cache/switchyard/js-toolchain}
sdk=$repo/sdk/js/switchyard-sdk
build_script=$repo/sdk/js/scaffold/common/build.mjs
contract=$repo/wit/plugin.wit

command -v node >/dev/null || { echo "build.sh: node (20.19 or later) is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "build.sh: npm is required" >&2; exit 1; }

# 1. The shared toolchain.
if ! cmp -s "$here/toolchain/package-lock.json" "$toolchain/package-lock.json" \
    || [ ! -d "$toolchain/node_modules/@bytecodealliance/componentize-js" ]; then
    echo "build.sh: installing the JavaScript toolchain into $toolchain" >&2
    mkdir -p "$toolchain"
    cp "$here/toolchain/package.json" "$here/toolchain/package-lock.json" "$toolchain/"
    (cd "$toolchain" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The content hash of a list of files and directories (node_modules and build output excluded).
inputs_hash() {
    find "$@" -type f -not -path '*/node_modules/*' -not -path '*/build/*' -not -name '*.wasm' -print0 \
        | sort -z | xargs -0 sha256sum | sed "s|$repo/||" | sha256sum | cut -d' ' -f1
}

mkdir -p "$out/.stamps" "$out/.work"
status=0
for dir in "$here"/plugins/*/; do
    dir=${dir%/}
    name=$(basename "$dir")
    stamp="$out/.stamps/$name"
    hash=$(inputs_hash "$dir" "$sdk" "$contract" "$build_script" "$here/toolchain/package-lock.json" "$here/build.sh")
    if [ -f "$out/$name.wasm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
        echo "build.sh: $name is up to date"
        continue
    fi

    work="$out/.work/$name"
    rm -rf "$work"
    mkdir -p "$work/wit" "$work/node_modules"
    cp -R "$dir/." "$work/"
    cp -R "$sdk" "$work/switchyard-sdk"
    cp "$contract" "$work/wit/plugin.wit"
    cp "$build_script" "$work/build.mjs"
    # node_modules: every package of the shared toolchain, plus the SDK as `npm install`
    # would link it (package.json says "switchyard-sdk": "file:switchyard-sdk").
    for entry in "$toolchain"/node_modules/* "$toolchain"/node_modules/.bin; do
        ln -s "$entry" "$work/node_modules/$(basename "$entry")"
    done
    ln -s ../switchyard-sdk "$work/node_modules/switchyard-sdk"

    started=$(date +%s.%N)
    if (cd "$work" && node build.mjs "$out/$name.wasm"); then
        echo "$hash" >"$stamp"
        awk -v n="$name" -v b="$(stat -c %s "$out/$name.wasm")" -v s="$started" -v e="$(date +%s.%N)" \
            'BEGIN { printf "build.sh: %s: %d bytes in %.1fs\n", n, b, e - s }'
    else
        echo "build.sh: $name failed to build" >&2
        rm -f "$stamp" "$out/$name.wasm"
        status=1
    fi
done
exit $status
