//! The plugins a running hub uses: the built-ins and the ones admins upload, loaded once
//! and shared by every call.
//!
//! An upload is checked by the runtime (a component, one of the two worlds, the contract's
//! imports only) before anything is stored. Every version is kept in the store; activating
//! one swaps the loaded plugin in place, so the next call uses it without a restart.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::Mutex;

use crate::crypto;
use crate::routing::{BuiltinCatalog, PluginCatalog};
use crate::runtime::{LoadError, Plugin, Runtime, World, builtin_world};
use crate::store::{self, Store, UploadedPlugin};

/// What the hub knows about an uploaded plugin without touching the store.
#[derive(Debug, Clone)]
struct UploadedState {
    world: World,
    active_version: i64,
    enabled: bool,
}

/// Why an upload or a change to a plugin was refused. Each message is meant for the admin.
#[derive(Debug, thiserror::Error)]
pub enum PluginAdminError {
    #[error(
        "a plugin name is 1 to 64 lowercase letters, digits, `-` or `_`, starting with a \
         letter or digit; `{0}` is not"
    )]
    BadName(String),
    #[error("`{0}` is a built-in plugin; upload yours under another name")]
    Builtin(String),
    #[error("{0}")]
    Invalid(#[from] LoadError),
    #[error(
        "`{name}` is {existing}; a new version must implement the same world, but this \
         file is {uploaded}"
    )]
    WorldChanged {
        name: String,
        existing: World,
        uploaded: World,
    },
    #[error("there is no uploaded plugin `{0}`")]
    UnknownPlugin(String),
    #[error("plugin `{name}` has no version {version}")]
    UnknownVersion { name: String, version: i64 },
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Loads plugins by name on first use and keeps them.
#[derive(Clone)]
pub struct Plugins {
    runtime: Runtime,
    store: Store,
    /// Read on every call, so a plain read lock rather than an async mutex.
    loaded: Arc<RwLock<HashMap<String, Plugin>>>,
    uploaded: Arc<RwLock<HashMap<String, UploadedState>>>,
    /// Held while compiling or swapping, so two first uses compile a plugin once and an
    /// activation cannot race a first use back to the old version.
    loading: Arc<Mutex<()>>,
}

impl Plugins {
    /// The plugins of a hub whose uploads live in `store`.
    pub async fn open(runtime: Runtime, store: Store) -> Result<Plugins, store::Error> {
        let uploaded = store
            .uploaded_plugins()
            .await?
            .into_iter()
            .filter_map(|p| {
                let world = parse_world(&p.world)?;
                Some((
                    p.name,
                    UploadedState {
                        world,
                        active_version: p.active_version,
                        enabled: p.enabled,
                    },
                ))
            })
            .collect();
        Ok(Plugins {
            runtime,
            store,
            loaded: Arc::default(),
            uploaded: Arc::new(RwLock::new(uploaded)),
            loading: Arc::default(),
        })
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The plugin `name`, compiling it on first use. Compiling is slow (milliseconds to
    /// seconds), so the hub loads the plugins its routes name at start-up.
    pub async fn get(&self, name: &str) -> Result<Plugin, LoadError> {
        if let Some(plugin) = self.loaded.read().expect("plugins lock").get(name) {
            return Ok(plugin.clone());
        }
        let _loading = self.loading.lock().await;
        if let Some(plugin) = self.loaded.read().expect("plugins lock").get(name) {
            return Ok(plugin.clone());
        }
        let uploaded = self.uploaded_state(name);
        let plugin = match uploaded {
            Some(state) if !state.enabled => {
                return Err(LoadError::Disabled {
                    name: name.to_owned(),
                });
            }
            Some(state) => self.compile_version(name, state.active_version).await?,
            None => self.runtime.load_builtin(name).await?,
        };
        self.loaded
            .write()
            .expect("plugins lock")
            .insert(name.to_string(), plugin.clone());
        Ok(plugin)
    }

    /// The plugin `name` if it is a channel.
    pub async fn channel(&self, name: &str) -> Result<Plugin, String> {
        self.of_world(name, World::Channel).await
    }

    /// The plugin `name` if it is an adapter.
    pub async fn adapter(&self, name: &str) -> Result<Plugin, String> {
        self.of_world(name, World::Adapter).await
    }

    /// The plugin `name` if it is a transform.
    pub async fn transform(&self, name: &str) -> Result<Plugin, String> {
        self.of_world(name, World::Transform).await
    }

    async fn of_world(&self, name: &str, world: World) -> Result<Plugin, String> {
        let plugin = self.get(name).await.map_err(|e| e.to_string())?;
        if plugin.world() == world {
            Ok(plugin)
        } else {
            Err(format!(
                "plugin `{name}` is {}, not {}",
                plugin.world().with_article(),
                world.with_article()
            ))
        }
    }

    /// Every plugin loaded so far.
    pub fn loaded(&self) -> Vec<Plugin> {
        let mut plugins: Vec<Plugin> = self
            .loaded
            .read()
            .expect("plugins lock")
            .values()
            .cloned()
            .collect();
        plugins.sort_by(|a, b| a.name().cmp(b.name()));
        plugins
    }

    /// Checks `component` and stores it as the next version of `name`, which becomes the
    /// active one at once. Returns the loaded plugin and its version number.
    pub async fn upload(
        &self,
        name: &str,
        component: &[u8],
        uploaded_by: &str,
    ) -> Result<(Plugin, i64), PluginAdminError> {
        check_name(name)?;
        if builtin_world(name).is_some() {
            return Err(PluginAdminError::Builtin(name.to_owned()));
        }
        let plugin = self.runtime.load(name, component).await?;
        if let Some(existing) = self.uploaded_state(name)
            && existing.world != plugin.world()
        {
            return Err(PluginAdminError::WorldChanged {
                name: name.to_owned(),
                existing: existing.world,
                uploaded: plugin.world(),
            });
        }
        let _loading = self.loading.lock().await;
        let version = self
            .store
            .add_plugin_version(
                name,
                &plugin.world().to_string(),
                &crypto::sha256_hex(component),
                component,
                uploaded_by,
            )
            .await?;
        let enabled = self.uploaded_state(name).is_none_or(|s| s.enabled);
        self.uploaded.write().expect("plugins lock").insert(
            name.to_owned(),
            UploadedState {
                world: plugin.world(),
                active_version: version,
                enabled,
            },
        );
        self.swap_in(name, enabled.then(|| plugin.clone()));
        Ok((plugin, version))
    }

    /// Makes an earlier (or later) version of an uploaded plugin the active one.
    pub async fn activate(&self, name: &str, version: i64) -> Result<(), PluginAdminError> {
        let state = self
            .uploaded_state(name)
            .ok_or_else(|| PluginAdminError::UnknownPlugin(name.to_owned()))?;
        let _loading = self.loading.lock().await;
        let plugin = self
            .compile_version(name, version)
            .await
            .map_err(|e| match e {
                LoadError::MissingVersion { name, version } => {
                    PluginAdminError::UnknownVersion { name, version }
                }
                other => PluginAdminError::Invalid(other),
            })?;
        if !self.store.activate_plugin_version(name, version).await? {
            return Err(PluginAdminError::UnknownVersion {
                name: name.to_owned(),
                version,
            });
        }
        self.uploaded.write().expect("plugins lock").insert(
            name.to_owned(),
            UploadedState {
                active_version: version,
                ..state.clone()
            },
        );
        self.swap_in(name, state.enabled.then_some(plugin));
        Ok(())
    }

    /// Enables or disables an uploaded plugin. While disabled, calls to it fail and the
    /// deliveries that need it wait on their retry schedule; nothing is dropped.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), PluginAdminError> {
        let _loading = self.loading.lock().await;
        if !self.store.set_plugin_enabled(name, enabled).await? {
            return Err(PluginAdminError::UnknownPlugin(name.to_owned()));
        }
        if let Some(state) = self.uploaded.write().expect("plugins lock").get_mut(name) {
            state.enabled = enabled;
        }
        // The next use loads the active version again, or refuses while disabled.
        self.swap_in(name, None);
        Ok(())
    }

    /// The uploaded plugins with their versions, from the store.
    pub async fn uploaded(&self) -> Result<Vec<UploadedPlugin>, store::Error> {
        self.store.uploaded_plugins().await
    }

    fn uploaded_state(&self, name: &str) -> Option<UploadedState> {
        self.uploaded
            .read()
            .expect("plugins lock")
            .get(name)
            .cloned()
    }

    async fn compile_version(&self, name: &str, version: i64) -> Result<Plugin, LoadError> {
        let bytes = self
            .store
            .plugin_component(name, version)
            .await
            .map_err(|e| LoadError::Compile(format!("could not read it from the store: {e}")))?
            .ok_or_else(|| LoadError::MissingVersion {
                name: name.to_owned(),
                version,
            })?;
        self.runtime.load(name, &bytes).await
    }

    /// Replaces (or, with `None`, forgets) the loaded plugin `name`. Calls already running
    /// finish on the plugin they started with.
    fn swap_in(&self, name: &str, plugin: Option<Plugin>) {
        let mut loaded = self.loaded.write().expect("plugins lock");
        match plugin {
            Some(plugin) => loaded.insert(name.to_owned(), plugin),
            None => loaded.remove(name),
        };
    }
}

/// Routes may name the built-ins and every uploaded plugin, enabled or not: disabling a
/// plugin pauses its deliveries, it does not make the routes file wrong.
impl PluginCatalog for Plugins {
    fn world(&self, plugin: &str) -> Option<World> {
        builtin_world(plugin).or_else(|| self.uploaded_state(plugin).map(|s| s.world))
    }

    fn names(&self, world: World) -> Vec<String> {
        let mut names = BuiltinCatalog.names(world);
        names.extend(
            self.uploaded
                .read()
                .expect("plugins lock")
                .iter()
                .filter(|(_, state)| state.world == world)
                .map(|(name, _)| name.clone()),
        );
        names.sort();
        names
    }
}

/// Plugin names end up in URLs and routes files: keep them to a safe alphabet.
pub fn check_name(name: &str) -> Result<(), PluginAdminError> {
    let mut chars = name.chars();
    let valid = name.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(PluginAdminError::BadName(name.to_owned()))
    }
}

fn parse_world(text: &str) -> Option<World> {
    match text {
        "adapter" => Some(World::Adapter),
        "channel" => Some(World::Channel),
        "transform" => Some(World::Transform),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_url_safe() {
        for good in ["a", "my-channel", "slack_v2", "2fa", &"x".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "A", "-x", "a/b", "a b", "../x", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
