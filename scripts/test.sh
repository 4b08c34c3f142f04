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

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy: host and SDK"
cargo clippy --all-targets -- -D warnings

step "clippy: plugins, as wasm32-wasip2"
CARGO_TARGET_DIR="$CARGO_TARGET_DIR/wasm-clippy" \
  cargo clippy --target wasm32-wasip2 --workspace --exclude switchyard --all-targets -- -D warnings

step "tests: every crate (plugins' own unit tests run natively)"
cargo test --workspace
