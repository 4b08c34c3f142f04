#!/bin/sh
# Builds __NAME__.wasm, a Switchyard __WORLD__, from __MODULE__.py, the SDK in
# switchyard_sdk/ and the contract in wit/plugin.wit. Run it as: ./build.sh
#
# Needs componentize-py 0.25.1 (pip install componentize-py==0.25.1); it is looked for
# in $COMPONENTIZE_PY, then on PATH, then in $SWITCHYARD_PYTHON_VENV (default
# ~/.cache/switchyard/venv). The build itself is offline.
set -eu
cd "$(dirname "$0")"

want=0.25.1
cpy=${COMPONENTIZE_PY:-}
if [ -z "$cpy" ]; then
    if command -v componentize-py >/dev/null 2>&1; then
        cpy=componentize-py
    elif [ -x "${SWITCHYARD_PYTHON_VENV:-$HOME/.cache/switchyard/venv}/bin/componentize-py" ]; then
        cpy="${SWITCHYARD_PYTHON_VENV:-$HOME/.cache/switchyard/venv}/bin/componentize-py"
    else
        echo "build.sh: componentize-py not found; install it with: pip install componentize-py==$want" >&2
        exit 1
    fi
fi
have=$("$cpy" --version 2>/dev/null | awk '{print $2}')
if [ "$have" != "$want" ]; then
    echo "build.sh: warning: componentize-py $have, this project was made for $want" >&2
fi

"$cpy" --wit-path wit/plugin.wit --world __WORLD__ componentize __MODULE__ \
    --python-path . --output __NAME__.wasm.tmp
mv __NAME__.wasm.tmp __NAME__.wasm
echo "built __NAME__.wasm ($(wc -c < __NAME__.wasm) bytes); check it with: switchyard plugin check __NAME__.wasm"
