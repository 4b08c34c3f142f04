//! The `switchyard plugin` and `admin` commands, run as a user would.

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
        out.contains("a valid channel for switchyard:plugin@0.2.0"),
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

/// The scaffold builds into a component that `plugin check` accepts, for every world.
#[test]
fn plugin_new_scaffolds_crates_that_build_into_valid_plugins() {
    let dir = tempfile::tempdir().unwrap();
    // Shared across runs so the SDK's dependencies compile once per machine.
    let target = std::env::temp_dir().join("switchyard-scaffold-target");
    for (name, kind) in [
        ("my-channel", "channel"),
        ("my-adapter", "adapter"),
        ("my-transform", "transform"),
    ] {
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

/// A Python and a JavaScript scaffold each build with their one documented command, from
/// what `plugin new` wrote and nothing else, into a component `plugin check` accepts.
/// componentize-py comes from the test venv (`scripts/test.sh` installs it); the
/// JavaScript project installs its own pinned packages from npm, as its author would.
#[test]
fn plugin_new_scaffolds_python_and_javascript_projects_that_build() {
    let dir = tempfile::tempdir().unwrap();
    // (name, kind, lang, the command `plugin new` prints, the command run: the same, less
    // npm's chatter)
    for (name, kind, lang, printed, command) in [
        (
            "my-py-channel",
            "channel",
            "python",
            "./build.sh",
            "./build.sh",
        ),
        (
            "my-js-transform",
            "transform",
            "js",
            "npm install && npm run build",
            "npm install --no-audit --no-fund --loglevel=error && npm run build",
        ),
    ] {
        let (ok, out) = switchyard(&[
            "plugin",
            "new",
            name,
            "--kind",
            kind,
            "--lang",
            lang,
            "--path",
            dir.path().to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        assert!(out.contains(printed), "{lang}: the printed command: {out}");
        let project = dir.path().join(name);
        let build = Command::new("bash")
            .args(["-c", command])
            .current_dir(&project)
            .output()
            .unwrap();
        assert!(
            build.status.success(),
            "{lang}: `{command}` failed:\n{}\n{}",
            String::from_utf8_lossy(&build.stdout),
            String::from_utf8_lossy(&build.stderr)
        );
        let wasm = project.join(format!("{name}.wasm"));
        let (ok, out) = switchyard(&["plugin", "check", wasm.to_str().unwrap()]);
        assert!(ok, "{lang}: {out}");
        assert!(out.contains(&format!("a valid {kind}")), "{lang}: {out}");
    }
}

/// `admin create-user` takes the password from the environment or standard input (never
/// the command line), refuses short passwords and taken names, and stores an argon2id hash.
#[test]
fn admin_create_user_takes_the_password_off_the_command_line() {
    use std::io::Write as _;
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let create = |name: &str, password_env: Option<&str>, stdin: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        command
            .args(["admin", "create-user", name])
            .env("SWITCHYARD_DATA_DIR", dir.path())
            .env_remove("SWITCHYARD_ADMIN_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(password) = password_env {
            command.env("SWITCHYARD_ADMIN_PASSWORD", password);
        }
        let mut child = command.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    };

    let (ok, out) = create("ops", Some("a long enough password"), "");
    assert!(ok, "{out}");
    let (ok, out) = create("ops", Some("a long enough password"), "");
    assert!(!ok);
    assert!(
        out.contains("there is already an admin called `ops`"),
        "{out}"
    );
    let (ok, out) = create("dev", None, "from standard input\n");
    assert!(ok, "{out}");
    let (ok, out) = create("short", None, "tiny\n");
    assert!(!ok);
    assert!(out.contains("at least 12 characters"), "{out}");

    let url = format!("sqlite://{}", dir.path().join("switchyard.db").display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = switchyard::store::Store::open(&url).await.unwrap();
        assert_eq!(store.admin_user_count().await.unwrap(), 2);
        for name in ["ops", "dev"] {
            let user = store.admin_user(name).await.unwrap().unwrap();
            assert!(
                user.password_hash
                    .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
                "{}",
                user.password_hash
            );
        }
        assert!(switchyard::admin::users::verify_password(
            &store
                .admin_user("dev")
                .await
                .unwrap()
                .unwrap()
                .password_hash,
            "from standard input"
        ));
    });
}

#[test]
fn migrate_applies_the_schema_once_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("switchyard.db").display());
    let (ok, out) = switchyard(&["migrate", "--store", &url]);
    assert!(ok, "{out}");
    assert!(
        out.starts_with(&format!("Applied to the store at {url}:")),
        "{out}"
    );
    assert!(out.contains("pipeline"), "names what it applied: {out}");
    let (ok, out) = switchyard(&["migrate", "--store", &url]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), format!("The store at {url} is up to date."));

    let (ok, out) = switchyard(&["migrate", "--store", "mysql://app:secret@db/switchyard"]);
    assert!(!ok, "an unsupported store is refused");
    assert!(out.contains("mysql://db"), "names the server: {out}");
    assert!(!out.contains("secret"), "the password is masked: {out}");
}

/// `admin unlock NAME` ends a lockout at once: that name's failed sign-ins are forgotten
/// and its right password works again, while other locked names stay locked.
#[test]
fn admin_unlock_ends_a_lockout() {
    use switchyard::admin::users::{self, SignInError, SignInLimits};
    use switchyard::crypto::HashLimiter;

    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(args)
            .env("SWITCHYARD_DATA_DIR", dir.path())
            .env("SWITCHYARD_ADMIN_PASSWORD", "a long enough password")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    };
    let (ok, out) = run(&["admin", "create-user", "ops"]);
    assert!(ok, "{out}");

    let url = format!("sqlite://{}", dir.path().join("switchyard.db").display());
    let limits = SignInLimits {
        max_username_bytes: users::MAX_USERNAME_BYTES,
        hashing: HashLimiter::new(1, std::time::Duration::from_secs(10)),
    };
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let try_sign_in = |name: &'static str, password: &'static str| {
        tokio.block_on(async {
            let store = switchyard::store::Store::open(&url).await.unwrap();
            let now = switchyard::store::now_ms();
            let outcome = users::sign_in(&store, &limits, name, password, now).await;
            store.close().await;
            outcome
        })
    };
    for name in ["ops", "nobody"] {
        for _ in 0..users::MAX_FAILURES {
            assert!(matches!(
                try_sign_in(name, "wrong"),
                Err(SignInError::WrongCredentials)
            ));
        }
    }
    assert!(matches!(
        try_sign_in("ops", "a long enough password"),
        Err(SignInError::Locked)
    ));

    let (ok, out) = run(&["admin", "unlock", "ops"]);
    assert!(ok, "{out}");
    assert!(out.contains("Unlocked `ops`"), "{out}");
    assert!(out.contains("10 failed sign-ins"), "{out}");
    assert_eq!(try_sign_in("ops", "a long enough password").unwrap(), "ops");
    assert!(matches!(
        try_sign_in("nobody", "wrong"),
        Err(SignInError::Locked)
    ));

    // A name with nothing to forget is not an error, but says so.
    let (ok, out) = run(&["admin", "unlock", "ops"]);
    assert!(ok, "{out}");
    assert!(out.contains("`ops` had no failed sign-ins"), "{out}");
}
