#!/usr/bin/env bash
# The whole test suite, from a fresh machine: formatting, lints (host and plugins), and
# every test. Installs what it needs that the machine lacks; CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Keep build output outside the clone, so repeated runs (and fresh clones) reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchyard/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain (rust-toolchain.toml pins it and the wasm32-wasip2 target)"
rustup show active-toolchain
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

step "browser for the admin console test (Debian chromium + chromedriver)"
# tests/blackbox/browser.rs drives a real headless Chromium and fails (never skips) when it
# is missing, so install it here. `apt-get update` runs only when the package lists do not
# know the packages yet (a fresh container) or the install fails, to keep repeated runs
# offline and fast.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! apt-cache show chromium chromium-driver >/dev/null 2>&1; then
    $sudo apt-get update -q
  fi
  install_browser() {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      chromium chromium-driver
  }
  # Lists that name the packages can still be stale (a superseded security update that
  # the mirror no longer has): then refresh them once and retry.
  install_browser || { $sudo apt-get update -q && install_browser; }
fi
/usr/bin/chromium --version
/usr/bin/chromedriver --version

step "Python clients for the black-box tests (requests, websockets, gql)"
# The black-box tests drive the hub with widely used third-party clients, run from
# tests/clients/ by this venv's python; they fail (never skip) without it. pip runs only
# when a client is missing, so repeated runs stay offline and fast.
venv="${SWITCHYARD_PYTHON_VENV:-$HOME/.cache/switchyard/venv}"
if [ ! -x "$venv/bin/python" ] && ! python3 -m venv "$venv"; then
  # Debian's python3 keeps venv (ensurepip) in a package of its own.
  rm -rf "$venv"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  install_venv() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; }
  install_venv || { $sudo apt-get update -q && install_venv; }
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import requests, websockets, gql.transport.websockets, gql.transport.requests' 2>/dev/null; then
  "$venv/bin/pip" install -q requests websockets 'gql[websockets,requests]'
fi
export SWITCHYARD_TEST_PYTHON="$venv/bin/python"
"$SWITCHYARD_TEST_PYTHON" -c 'import requests, websockets, gql; print("requests", requests.__version__, "websockets", websockets.__version__, "gql", gql.__version__)'

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy: host and SDK"
cargo clippy --all-targets -- -D warnings

step "clippy: plugins, as wasm32-wasip2"
CARGO_TARGET_DIR="$CARGO_TARGET_DIR/wasm-clippy" \
  cargo clippy --target wasm32-wasip2 --workspace --exclude switchyard --all-targets -- -D warnings

step "tests: every crate (plugins' own unit tests run natively)"
cargo test --workspace
