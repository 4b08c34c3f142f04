//! `switchyard plugin new`: a plugin project that builds into a valid component with one
//! command: `cargo build --release` for Rust, `./build.sh` for Python, `npm run build`
//! for JavaScript.
//!
//! The Python and JavaScript templates and SDKs live in `sdk/python` and `sdk/js` and are
//! compiled into the binary, so a scaffold needs no checkout. A template tree holds
//! `common/` (every kind) and one directory per kind; in file names and contents,
//! `__NAME__` becomes the plugin name, `__MODULE__` the name with `_` for `-`, and
//! `__WORLD__` the world.

use std::fs;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

use crate::runtime::World;

/// The language a plugin is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Rust, with the `switchyard-sdk` crate.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript or TypeScript, built with jco and componentize-js.
    Js,
}

static PYTHON_TEMPLATE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../sdk/python/scaffold");
static PYTHON_SDK: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../sdk/python/switchyard_sdk");
static JS_TEMPLATE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../sdk/js/scaffold");
static JS_SDK: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../sdk/js/switchyard-sdk");
/// The contract, for the Python and JavaScript build tools, which read WIT themselves.
const CONTRACT: &str = include_str!("../../wit/plugin.wit");

/// The one command that builds a scaffolded project, and where the component lands.
pub fn build_command(lang: Lang, name: &str) -> (&'static str, PathBuf) {
    match lang {
        Lang::Rust => ("cargo build --release", artifact_path(name)),
        Lang::Python => ("./build.sh", PathBuf::from(format!("{name}.wasm"))),
        Lang::Js => (
            "npm install && npm run build",
            PathBuf::from(format!("{name}.wasm")),
        ),
    }
}

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

/// Creates `parent/name`, a Python or JavaScript plugin project of `world`, with the SDK
/// and the contract inside it, so it builds offline once its tools are installed.
pub fn create_interpreted(
    parent: &Path,
    name: &str,
    world: World,
    lang: Lang,
) -> anyhow::Result<PathBuf> {
    if lang == Lang::Python && !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        // The module is the name with `_` for `-`, and a Python module cannot start with
        // a digit.
        anyhow::bail!("a Python plugin's name starts with a letter, such as my-channel");
    }
    if name == "switchyard-sdk" || name == "switchyard_sdk" {
        anyhow::bail!("`{name}` is the SDK's own name; choose another");
    }
    let dir = new_dir(parent, name)?;
    let (template, sdk, sdk_name) = match lang {
        Lang::Python => (&PYTHON_TEMPLATE, &PYTHON_SDK, "switchyard_sdk"),
        Lang::Js => (&JS_TEMPLATE, &JS_SDK, "switchyard-sdk"),
        Lang::Rust => anyhow::bail!("a Rust plugin is a crate: use `create`"),
    };
    let module = name.replace('-', "_");
    let world = world.to_string();
    let fill = |text: &str| {
        text.replace("__NAME__", name)
            .replace("__MODULE__", &module)
            .replace("__WORLD__", &world)
    };
    // `common/` first, so a kind's own file of the same name wins.
    for part in ["common", world.as_str()] {
        if let Some(tree) = template.get_dir(part) {
            write_tree(tree, Path::new(part), &dir, &fill)?;
        }
    }
    write_tree(sdk, Path::new(""), &dir.join(sdk_name), &|text| {
        text.to_owned()
    })?;
    fs::create_dir_all(dir.join("wit"))?;
    fs::write(dir.join("wit/plugin.wit"), CONTRACT)?;
    // The Python project's one command is a script.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("build.sh");
        if script.exists() {
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(dir)
}

/// Writes every file under `tree` (whose paths start with `strip`) below `to`, filling
/// placeholders in names and text.
fn write_tree(
    tree: &Dir<'_>,
    strip: &Path,
    to: &Path,
    fill: &dyn Fn(&str) -> String,
) -> anyhow::Result<()> {
    for file in tree.files() {
        let relative = file.path().strip_prefix(strip).unwrap_or(file.path());
        let path = to.join(fill(&relative.to_string_lossy()));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        match file.contents_utf8() {
            Some(text) => fs::write(&path, fill(text))?,
            None => fs::write(&path, file.contents())?,
        }
    }
    for sub in tree.dirs() {
        // Caches a developer's local runs may leave in the source tree.
        let skip = ["__pycache__", "node_modules"];
        if sub
            .path()
            .file_name()
            .is_some_and(|n| skip.iter().any(|s| n == *s))
        {
            continue;
        }
        write_tree(sub, strip, to, fill)?;
    }
    Ok(())
}

fn new_dir(parent: &Path, name: &str) -> anyhow::Result<PathBuf> {
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
    Ok(dir)
}

/// Creates `parent/name`, a plugin crate of `world` depending on the SDK at `sdk`.
pub fn create(parent: &Path, name: &str, world: World, sdk: &Path) -> anyhow::Result<PathBuf> {
    let dir = new_dir(parent, name)?;
    let sdk = sdk
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("the SDK path {}: {e}", sdk.display()))?;
    fs::create_dir_all(dir.join("src"))?;
    fs::create_dir_all(dir.join(".cargo"))?;

    let description = match world {
        World::Adapter => "A Switchyard adapter",
        World::Channel => "A Switchyard channel",
        World::Transform => "A Switchyard transform",
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
        World::Transform => TRANSFORM_TEMPLATE,
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

const TRANSFORM_TEMPLATE: &str = r#"//! A Switchyard transform: reshapes each notification before its channel delivers it.
//! This one drops the payload fields its config lists: `{"drop": ["email"]}`.

use serde::Deserialize;
use switchyard_sdk::{
    Notification, Transform, TransformContext, TransformError, Transformed, export_transform,
};

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    drop: Vec<String>,
}

struct Plugin;

impl Transform for Plugin {
    fn transform(
        mut notification: Notification,
        _context: TransformContext,
    ) -> Result<Transformed, TransformError> {
        let config: Config = switchyard_sdk::config().map_err(TransformError::fail)?;
        let mut payload = notification.payload_json()?;
        if let Some(fields) = payload.as_object_mut() {
            for field in &config.drop {
                fields.remove(field);
            }
        }
        notification = notification.with_payload_json(&payload);
        Ok(Transformed::keep(notification))
    }
}

export_transform!(Plugin);
"#;
