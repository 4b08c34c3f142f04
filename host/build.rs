//! Compiles every plugin crate to a wasm32-wasip2 component, so a fresh clone builds the
//! host and its built-in plugins with one `cargo build`.
//!
//! - `plugins/*` are the built-ins: they are embedded in the binary (see `builtin.rs` in
//!   `OUT_DIR`), keyed by their directory name (`plugins/webhook` is the plugin `webhook`).
//! - `tests/plugins/*` are test plugins (hostile ones among them); their directory is
//!   exported as `SWITCHYARD_TEST_PLUGINS` for the tests and benchmarks, never embedded.
//!
//! All of them are built in one nested cargo invocation with its own target directory, so
//! it never waits on the lock of the build that runs this script.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

struct Crate {
    /// The directory name: the plugin's name.
    name: String,
    /// The cargo package name.
    package: String,
}

impl Crate {
    /// Built-in packages are named `adapter-<name>`, `channel-<name>` or `transform-<name>`.
    fn world(&self) -> &'static str {
        if self.package.starts_with("adapter-") {
            "Adapter"
        } else if self.package.starts_with("channel-") {
            "Channel"
        } else if self.package.starts_with("transform-") {
            "Transform"
        } else {
            panic!(
                "plugin package {} must be named adapter-<name>, channel-<name> or \
                 transform-<name>",
                self.package
            )
        }
    }
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    // Always rerun, and let the nested cargo decide what is stale: it fingerprints the
    // plugin sources by their real paths. Watching paths here is not enough, because the
    // watch list belongs to whichever checkout last ran this script, and checkouts (CI's
    // fresh clones among them) share one target directory. A missing file is always stale.
    println!(
        "cargo:rerun-if-changed={}",
        out_dir.join("rerun-always").display()
    );

    let builtins = crates_in(&root.join("plugins"));
    let test_plugins = crates_in(&root.join("tests/plugins"));

    // <target>/<profile>/build/<pkg>-<hash>/out -> <target>/wasm-plugins: shared by every
    // profile of the host (dev, release, clippy), so the plugins are compiled once.
    let wasm_target_dir = out_dir.ancestors().nth(4).unwrap().join("wasm-plugins");
    ensure_wasm_target(&root);
    compile(
        &root,
        &wasm_target_dir,
        builtins.iter().chain(&test_plugins),
    );
    let artifacts = wasm_target_dir.join(WASM_TARGET).join(PROFILE);

    let mut table = String::from(
        "/// The built-in plugins, compiled from `plugins/*` by `build.rs`: (name, world, component).\n\
         pub static BUILTIN_PLUGINS: &[(&str, World, &[u8])] = &[\n",
    );
    for plugin in &builtins {
        let wasm = artifact(&artifacts, plugin);
        let embedded = out_dir.join(format!("{}.wasm", plugin.name));
        copy_if_changed(&wasm, &embedded);
        writeln!(
            table,
            "    ({:?}, World::{}, include_bytes!({:?})),",
            plugin.name,
            plugin.world(),
            embedded.display().to_string()
        )
        .unwrap();
    }
    table.push_str("];\n");
    write_if_changed(&out_dir.join("builtin.rs"), table.as_bytes());

    let test_dir = out_dir.join("test-plugins");
    fs::create_dir_all(&test_dir).unwrap();
    for plugin in &test_plugins {
        let wasm = artifact(&artifacts, plugin);
        copy_if_changed(&wasm, &test_dir.join(format!("{}.wasm", plugin.name)));
    }
    println!(
        "cargo:rustc-env=SWITCHYARD_TEST_PLUGINS={}",
        test_dir.display()
    );
}

/// Writes only when the bytes differ: a new mtime on an embedded file would make rustc
/// rebuild the host on every run of this script.
fn write_if_changed(path: &Path, bytes: &[u8]) {
    if fs::read(path).ok().as_deref() != Some(bytes) {
        fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {} failed: {e}", path.display()));
    }
}

fn copy_if_changed(from: &Path, to: &Path) {
    let bytes = fs::read(from).unwrap_or_else(|e| panic!("reading {} failed: {e}", from.display()));
    write_if_changed(to, &bytes);
}

/// Where cargo put a crate's component: libraries get `_` for `-`, binaries keep the name.
fn artifact(dir: &Path, plugin: &Crate) -> PathBuf {
    let library = dir.join(format!("{}.wasm", plugin.package.replace('-', "_")));
    if library.exists() {
        library
    } else {
        dir.join(format!("{}.wasm", plugin.package))
    }
}

/// The plugin crates directly under `dir`, sorted by name.
fn crates_in(dir: &Path) -> Vec<Crate> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut crates: Vec<Crate> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let manifest = fs::read_to_string(path.join("Cargo.toml")).ok()?;
            let package = manifest.lines().find_map(|line| {
                let value = line.trim().strip_prefix("name")?.trim().strip_prefix('=')?;
                Some(value.trim().trim_matches('"').to_string())
            })?;
            let name = path.file_name()?.to_str()?.to_string();
            Some(Crate { name, package })
        })
        .collect();
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    crates
}

/// rustup installs the targets of rust-toolchain.toml only when it installs the toolchain
/// itself, so a machine that already had the toolchain lacks the wasm target. Adding it here
/// keeps `cargo build` the one command a fresh clone needs.
fn ensure_wasm_target(root: &Path) {
    let installed = Command::new("rustup")
        .current_dir(root)
        .args(["target", "list", "--installed"])
        .output();
    let Ok(installed) = installed else {
        return; // no rustup: the nested build reports a missing target itself
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == WASM_TARGET)
    {
        return;
    }
    let added = Command::new("rustup")
        .current_dir(root)
        .args(["target", "add", WASM_TARGET])
        .status();
    if !matches!(added, Ok(status) if status.success()) {
        println!(
            "cargo:warning=`rustup target add {WASM_TARGET}` failed; the plugin build will say why"
        );
    }
}

fn compile<'a>(root: &Path, target_dir: &Path, crates: impl Iterator<Item = &'a Crate>) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "--target",
            WASM_TARGET,
            "--profile",
            PROFILE,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        // Flags meant for the host build (coverage, sanitizers) do not apply to guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR");
    for krate in crates {
        command.args(["-p", &krate.package]);
    }
    let status = command
        .status()
        .expect("could not run cargo to build the plugins");
    if !status.success() {
        panic!(
            "building the plugins for {WASM_TARGET} failed (see above). If the target is \
             missing, `rustup target add {WASM_TARGET}` installs it; rust-toolchain.toml \
             normally does that on first use."
        );
    }
}
