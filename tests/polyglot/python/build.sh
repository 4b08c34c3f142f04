#!/bin/sh
# Builds the Python test plugins into OUTDIR/<name>.wasm:  tests/polyglot/python/build.sh OUTDIR
#
# Each plugin is scaffolded the way `switchyard plugin new --lang python` does it
# (scaffold.py: the templates in sdk/python/scaffold, the SDK, wit/plugin.wit), its own
# sources laid over, its unit tests run (python3 -m unittest, natively), and built with
# the project's own build.sh. A plugin whose inputs
# (its sources, the templates, the SDK, the contract, this script, componentize-py's
# version) have not changed since its last build is skipped.
#
# componentize-py is installed when missing, pinned, into $SWITCHYARD_PYTHON_VENV
# (default ~/.cache/switchyard/venv).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

COMPONENTIZE_PY_VERSION=0.25.1
venv=${SWITCHYARD_PYTHON_VENV:-$HOME/.cache/switchyard/venv}
cpy="$venv/bin/componentize-py"
if [ "$("$cpy" --version 2>/dev/null || true)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
    echo "installing componentize-py $COMPONENTIZE_PY_VERSION into $venv" >&2
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

# name:kind; a plugin directory holds the files laid over the scaffold. py-transform has
# none of its own: it is the transform template exactly as scaffolded.
plugins="py-channel:channel py-adapter:adapter py-trivial:channel py-hostile:channel py-transform:transform"

inputs_hash() {  # $1 plugin dir (may be absent), $2 name, $3 kind
    {
        echo "$2 $3 $COMPONENTIZE_PY_VERSION"
        cat "$here/build.sh" "$here/scaffold.py" "$repo/wit/plugin.wit"
        for dir in "$repo/sdk/python/switchyard_sdk" "$repo/sdk/python/scaffold/common" "$repo/sdk/python/scaffold/$3" "$1"; do
            [ -d "$dir" ] || continue
            (cd "$dir" && find . -type f ! -path '*/__pycache__/*' | LC_ALL=C sort | while read -r f; do
                echo "$dir/$f"
                cat "$f"
            done)
        done
    } | sha256sum | cut -d' ' -f1
}

for entry in $plugins; do
    name=${entry%%:*}
    kind=${entry#*:}
    src="$here/$name"
    stamp="$out/.$name.stamp"
    hash=$(inputs_hash "$src" "$name" "$kind")
    if [ -f "$out/$name.wasm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
        echo "$name: up to date"
        continue
    fi
    work=$(mktemp -d)
    overlay=""
    [ -d "$src" ] && overlay=$src
    python3 "$here/scaffold.py" "$name" "$kind" "$work/$name" $overlay
    # The project's own tests first, on this Python with the SDK's fake host: a plugin
    # whose logic is wrong fails here in a second, not after a build.
    if ! (cd "$work/$name" && python3 -m unittest -q >"$work/unittest.log" 2>&1); then
        cat "$work/unittest.log" >&2
        echo "$name: its unit tests failed" >&2
        exit 1
    fi
    started=$(date +%s)
    COMPONENTIZE_PY="$cpy" sh "$work/$name/build.sh" >/dev/null
    cp "$work/$name/$name.wasm" "$out/$name.wasm"
    rm -rf "$work"
    echo "$hash" > "$stamp"
    echo "$name: built in $(( $(date +%s) - started ))s, $(wc -c < "$out/$name.wasm") bytes"
done
