//! The plugins a running hub uses, loaded once and shared by every call.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::Mutex;

use crate::runtime::{LoadError, Plugin, Runtime, World};

/// Loads plugins by name on first use and keeps them.
#[derive(Clone)]
pub struct Plugins {
    runtime: Runtime,
    /// Read on every call, so a plain read lock rather than an async mutex.
    loaded: Arc<RwLock<HashMap<String, Plugin>>>,
    /// Held while compiling, so two first uses compile a plugin once.
    loading: Arc<Mutex<()>>,
}

impl Plugins {
    pub fn new(runtime: Runtime) -> Plugins {
        Plugins {
            runtime,
            loaded: Arc::default(),
            loading: Arc::default(),
        }
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
        let plugin = self.runtime.load_builtin(name).await?;
        self.loaded
            .write()
            .expect("plugins lock")
            .insert(name.to_string(), plugin.clone());
        Ok(plugin)
    }

    /// The plugin `name` if it is a channel.
    pub async fn channel(&self, name: &str) -> Result<Plugin, String> {
        let plugin = self.get(name).await.map_err(|e| e.to_string())?;
        match plugin.world() {
            World::Channel => Ok(plugin),
            World::Adapter => Err(format!("plugin `{name}` is an adapter, not a channel")),
        }
    }

    /// The plugin `name` if it is an adapter.
    pub async fn adapter(&self, name: &str) -> Result<Plugin, String> {
        let plugin = self.get(name).await.map_err(|e| e.to_string())?;
        match plugin.world() {
            World::Adapter => Ok(plugin),
            World::Channel => Err(format!("plugin `{name}` is a channel, not an adapter")),
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
}
