//! `switchyard plugin new`: a plugin crate that builds into a valid component with one
//! command, `cargo build --release`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::runtime::World;

/// The SDK next to the sources this binary was built from, if it is still there.
pub fn default_sdk_path() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    sdk.join("Cargo.toml")
        .exists()
        .then(|| sdk.canonicalize().ok())?
}

/// Where `cargo build --release` puts the component, relative to the crate.
pub fn artifact_path(name: &str) -> PathBuf {
    Path::new("target/wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")))
}

/// What a `host` import lets a plugin do, for `plugin check`.
pub fn explain(function: &str) -> &'static str {
    match function {
        "log" => "write to the host's log",
        "config" => "read its config from the routes file",
        "secret" => "read the secrets the routes file grants it",
        "now" => "read the current time",
        "fetch" => "make HTTP requests to the hosts the routes file grants it",
        _ => "",
    }
}

/// Creates `parent/name`, a plugin crate of `world` depending on the SDK at `sdk`.
pub fn create(parent: &Path, name: &str, world: World, sdk: &Path) -> anyhow::Result<PathBuf> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || name.starts_with('-')
    {
        anyhow::bail!("a plugin name is lower-case letters, digits and dashes, such as my-channel");
    }
    let dir = parent.join(name);
    if dir.exists() {
        anyhow::bail!("{} already exists", dir.display());
    }
    let sdk = sdk
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("the SDK path {}: {e}", sdk.display()))?;
    fs::create_dir_all(dir.join("src"))?;
    fs::create_dir_all(dir.join(".cargo"))?;

    let description = match world {
        World::Adapter => "A Switchyard adapter",
        World::Channel => "A Switchyard channel",
    };
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            r#"[package]
name = "{name}"
description = "{description}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
switchyard-sdk = {{ path = {sdk:?} }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
strip = true
panic = "abort"

# A plugin is its own workspace, wherever it is created.
[workspace]
"#,
            sdk = sdk.display().to_string()
        ),
    )?;
    fs::write(
        dir.join(".cargo/config.toml"),
        "# Plugins are WebAssembly components.\n[build]\ntarget = \"wasm32-wasip2\"\n",
    )?;
    fs::write(
        dir.join("rust-toolchain.toml"),
        "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"wasm32-wasip2\"]\n",
    )?;
    fs::write(dir.join(".gitignore"), "/target\n")?;
    let source = match world {
        World::Adapter => ADAPTER_TEMPLATE,
        World::Channel => CHANNEL_TEMPLATE,
    };
    fs::write(dir.join("src/lib.rs"), source)?;
    fs::write(
        dir.join("README.md"),
        format!(
            "# {name}\n\n{description}.\n\nBuild the component:\n\n    cargo build --release\n\n\
             It lands in `{artifact}`. Check it:\n\n    switchyard plugin check {artifact}\n",
            artifact = artifact_path(name).display()
        ),
    )?;
    Ok(dir)
}

const CHANNEL_TEMPLATE: &str = r#"//! A Switchyard channel: delivers each notification to the URL in its config.

use serde::Deserialize;
use switchyard_sdk::{Channel, Delivery, HttpRequest, Outcome, export_channel};

#[derive(Deserialize)]
struct Config {
    url: String,
}

struct Plugin;

impl Channel for Plugin {
    fn deliver(delivery: Delivery) -> Outcome {
        let config: Config = match switchyard_sdk::config() {
            Ok(config) => config,
            Err(problem) => return Outcome::failed(problem),
        };
        let n = &delivery.notification;
        let body = serde_json::json!({
            "id": n.id,
            "kind": n.kind,
            "payload": n.payload_json().unwrap_or_default(),
        });
        Outcome::from_fetch(HttpRequest::post(&config.url).json(&body).send())
    }
}

export_channel!(Plugin);
"#;

const ADAPTER_TEMPLATE: &str = r#"//! A Switchyard adapter: turns a JSON body into notification drafts.

use switchyard_sdk::{Adapter, Draft, Rejection, Request, export_adapter};

struct Plugin;

impl Adapter for Plugin {
    fn handle(request: Request) -> Result<Vec<Draft>, Rejection> {
        // One notification object, an array of them, or {"notifications": [...]};
        // schema errors name the field and the reason.
        switchyard_sdk::drafts::from_json_body(&request.body)
    }
}

export_adapter!(Plugin);
"#;
