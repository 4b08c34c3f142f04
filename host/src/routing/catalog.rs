//! Which plugins exist, so the routes file can be checked against them before it is used.

use crate::runtime::{BUILTIN_PLUGINS, World, builtin_world};

/// The plugins the routes file may name, and which world each implements.
///
/// A trait because the set changes: the built-ins are fixed, but admins upload more, and
/// the routes check must see those too.
pub trait PluginCatalog: Send + Sync {
    /// The world of the plugin `plugin`, or `None` when no such plugin is installed.
    fn world(&self, plugin: &str) -> Option<World>;
    /// The names of the installed plugins of `world`, sorted, for "installed: ..." hints.
    fn names(&self, world: World) -> Vec<String>;
}

/// The plugins compiled into the binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinCatalog;

impl PluginCatalog for BuiltinCatalog {
    fn world(&self, plugin: &str) -> Option<World> {
        builtin_world(plugin)
    }

    fn names(&self, world: World) -> Vec<String> {
        let mut names: Vec<String> = BUILTIN_PLUGINS
            .iter()
            .filter(|(_, w, _)| *w == world)
            .map(|(name, _, _)| (*name).to_owned())
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_sorted_by_world() {
        let channels = BuiltinCatalog.names(World::Channel);
        assert!(channels.contains(&"log".to_owned()), "{channels:?}");
        assert!(channels.contains(&"webhook".to_owned()), "{channels:?}");
        assert!(channels.is_sorted());
        assert_eq!(BuiltinCatalog.world("rest-json"), Some(World::Adapter));
        assert_eq!(BuiltinCatalog.world("nope"), None);
    }
}
