//! The `switchyard plugin` commands, run as a user would.

use std::process::Command;

use crate::support::test_plugin;

fn switchyard(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .output()
        .expect("the switchyard binary runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn plugin_list_shows_every_builtin_and_its_world() {
    let (ok, out) = switchyard(&["plugin", "list"]);
    assert!(ok, "{out}");
    for (name, world) in [
        ("webhook", "channel"),
        ("rest-json", "adapter"),
        ("log", "channel"),
    ] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} is listed: {out}"));
        assert!(line.contains(world), "{line}");
    }
}

#[test]
fn plugin_check_tells_valid_from_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("trivial.wasm");
    std::fs::write(&good, test_plugin("trivial")).unwrap();
    let (ok, out) = switchyard(&["plugin", "check", good.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("a valid channel for switchyard:plugin@0.1.0"),
        "{out}"
    );

    let future = dir.path().join("future.wasm");
    std::fs::write(&future, test_plugin("future-contract")).unwrap();
    let (ok, out) = switchyard(&["plugin", "check", future.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("switchyard:plugin@0.2.0"), "{out}");

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").unwrap();
    let (ok, out) = switchyard(&["plugin", "check", garbage.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("not a WebAssembly file"), "{out}");
}

/// The scaffold builds into a component that `plugin check` accepts, for both worlds.
#[test]
fn plugin_new_scaffolds_crates_that_build_into_valid_plugins() {
    let dir = tempfile::tempdir().unwrap();
    // Shared across runs so the SDK's dependencies compile once per machine.
    let target = std::env::temp_dir().join("switchyard-scaffold-target");
    for (name, kind) in [("my-channel", "channel"), ("my-adapter", "adapter")] {
        let (ok, out) = switchyard(&[
            "plugin",
            "new",
            name,
            "--kind",
            kind,
            "--path",
            dir.path().to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        let crate_dir = dir.path().join(name);
        // The one documented command.
        let build = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet"])
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .unwrap();
        assert!(build.success(), "building the scaffolded {kind} failed");
        let wasm = target
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        let (ok, out) = switchyard(&["plugin", "check", wasm.to_str().unwrap()]);
        assert!(ok, "{out}");
        assert!(out.contains(&format!("a valid {kind}")), "{out}");
    }
}
