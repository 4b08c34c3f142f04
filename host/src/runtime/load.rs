//! Checking a component against the contract before the host accepts it.
//!
//! The checks run from the cheapest to the most thorough, so each kind of bad file gets a
//! message that names its problem: the size; the WebAssembly header (garbage, or a core
//! module rather than a component); the exported interfaces (which world, which contract
//! version); then the imports and the exact types, through wasmtime's linker.

use std::fmt;

use wasmtime::Engine;
use wasmtime::component::{Component, types::ComponentItem};

/// The contract version this host speaks: `switchyard:plugin@0.2.0`.
pub const CONTRACT_VERSION: &str = "0.2.0";
/// The earlier version whose adapters and channels still load: its two worlds are the
/// current ones, and it has no transforms.
pub const LEGACY_CONTRACT_VERSION: &str = "0.1.0";
const PACKAGE: &str = "switchyard:plugin";

/// Which of the three worlds a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// Exports `inbound`: turns requests into drafts.
    Adapter,
    /// Exports `outbound`: delivers notifications.
    Channel,
    /// Exports `transformer`: reshapes, filters or splits notifications before delivery.
    Transform,
}

impl World {
    /// "an adapter", "a channel", "a transform".
    pub fn with_article(self) -> &'static str {
        match self {
            World::Adapter => "an adapter",
            World::Channel => "a channel",
            World::Transform => "a transform",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::Adapter => "adapter",
            World::Channel => "channel",
            World::Transform => "transform",
        })
    }
}

/// What a component declares about itself, read from its type.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Manifest {
    /// The world it implements.
    pub world: World,
    /// The contract version it was built against.
    pub contract_version: String,
    /// The `host` functions it imports, such as `fetch` or `secret`.
    pub host_functions: Vec<String>,
    /// The WASI interfaces it imports (Rust's std asks for some; they are sandboxed).
    pub wasi_interfaces: Vec<String>,
    /// The component's size in bytes.
    pub size_bytes: usize,
}

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Over the size cap.
    #[error("the file has {size} bytes; plugins may have at most {max}")]
    TooLarge {
        /// The file's size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// Over its world's size cap.
    #[error(
        "the file has {size} bytes; {world} plugin may have at most {max} \
         (plugins.max_{key}_bytes)",
        world = world.with_article(),
        key = world
    )]
    TooLargeForWorld {
        /// The file's size.
        size: usize,
        /// The world's cap.
        max: usize,
        /// The component's world.
        world: World,
    },
    /// Not WebAssembly at all.
    #[error("this is not a WebAssembly file (it does not start with \\0asm)")]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component; build the plugin for the \
         wasm32-wasip2 target (cargo build --target wasm32-wasip2)"
    )]
    CoreModule,
    /// Wasmtime could not compile it.
    #[error("the component is malformed: {0}")]
    Compile(String),
    /// It exports no world's interface.
    #[error(
        "the component exports none of {PACKAGE}/inbound (an adapter), {PACKAGE}/outbound \
         (a channel) or {PACKAGE}/transformer (a transform) at version {CONTRACT_VERSION}; \
         it exports: {exports}"
    )]
    NoWorld {
        /// What it does export.
        exports: String,
    },
    /// It exports more than one world's interface.
    #[error(
        "the component exports the interfaces of more than one world; a plugin is one \
         adapter, one channel or one transform"
    )]
    BothWorlds,
    /// It was built against another contract version.
    #[error(
        "the component was built against {PACKAGE}@{found}, but this host speaks \
         {PACKAGE}@{CONTRACT_VERSION} (and {LEGACY_CONTRACT_VERSION} for adapters and \
         channels); rebuild it with a matching switchyard SDK"
    )]
    ContractVersion {
        /// The version the component asks for.
        found: String,
    },
    /// It imports something the host does not provide.
    #[error("the component imports something the host does not provide: {0}")]
    Imports(String),
    /// Its exports do not have the contract's types.
    #[error("the component's exports do not match the contract: {0}")]
    Exports(String),
    /// Its `info` export failed.
    #[error("the component failed when asked to describe itself: {0}")]
    Info(String),
    /// No built-in plugin has that name.
    #[error("there is no built-in plugin called {name:?}; the built-ins are {known}")]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
    /// An admin disabled the plugin; its deliveries wait on their retry schedule.
    #[error("plugin `{name}` is disabled by an admin")]
    Disabled {
        /// The plugin.
        name: String,
    },
    /// An uploaded plugin's version is not in the store.
    #[error("plugin `{name}` has no stored version {version}")]
    MissingVersion {
        /// The plugin.
        name: String,
        /// The version asked for.
        version: i64,
    },
}

/// The cheap checks, before compiling: size and header.
pub(super) fn check_header(bytes: &[u8], max_bytes: usize) -> Result<(), LoadError> {
    if bytes.len() > max_bytes {
        return Err(LoadError::TooLarge {
            size: bytes.len(),
            max: max_bytes,
        });
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    // Bytes 4..8 are version and layer; layer 0 is a core module, 1 a component.
    if bytes[6..8] == [0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

/// Reads the world, version and imports from a compiled component's type.
pub(super) fn manifest(
    engine: &Engine,
    component: &Component,
    size_bytes: usize,
) -> Result<Manifest, LoadError> {
    let ty = component.component_type();

    let mut world = None;
    let mut exports = Vec::new();
    for (name, _) in ty.exports(engine) {
        exports.push(name.to_string());
        let Some((interface, version)) = ours(name) else {
            continue;
        };
        let found = match interface {
            "inbound" => World::Adapter,
            "outbound" => World::Channel,
            "transformer" => World::Transform,
            _ => continue,
        };
        let legacy = version == LEGACY_CONTRACT_VERSION && found != World::Transform;
        if version != CONTRACT_VERSION && !legacy {
            return Err(LoadError::ContractVersion {
                found: version.to_string(),
            });
        }
        if world.replace((found, version)).is_some() {
            return Err(LoadError::BothWorlds);
        }
    }
    let (world, version) = world.ok_or_else(|| LoadError::NoWorld {
        exports: if exports.is_empty() {
            "nothing".into()
        } else {
            exports.join(", ")
        },
    })?;

    let mut host_functions = Vec::new();
    let mut wasi_interfaces = Vec::new();
    for (name, item) in ty.imports(engine) {
        if let Some((interface, imported)) = ours(name) {
            // The imports come from the same contract as the exports.
            if imported != version {
                return Err(LoadError::ContractVersion {
                    found: imported.to_string(),
                });
            }
            if interface == "host"
                && let ComponentItem::ComponentInstance(instance) = item.ty
            {
                // Only the functions: some toolchains (componentize-py) import the
                // interface's types by name too.
                host_functions.extend(
                    instance
                        .exports(engine)
                        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
                        .map(|(f, _)| f.to_string()),
                );
            }
        } else if name.starts_with("wasi:") {
            wasi_interfaces.push(name.to_string());
        } else {
            return Err(LoadError::Imports(format!(
                "{name} (plugins may import only {PACKAGE}/host and WASI)"
            )));
        }
    }
    host_functions.sort();
    wasi_interfaces.sort();

    Ok(Manifest {
        world,
        contract_version: version.to_string(),
        host_functions,
        wasi_interfaces,
        size_bytes,
    })
}

/// Splits `switchyard:plugin/NAME@VERSION` into NAME and VERSION.
fn ours(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    Some(rest.split_once('@').unwrap_or((rest, "")))
}
