//! The built-in plugins, compiled from `plugins/*` by `host/build.rs` and embedded in the
//! binary so a fresh install works with zero setup.

use super::World;

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// The component bytes of the built-in plugin `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUILTIN_PLUGINS
        .iter()
        .find(|(builtin, _, _)| *builtin == name)
        .map(|(_, _, bytes)| *bytes)
}

/// The world of the built-in plugin `name`, known without compiling it.
pub fn world(name: &str) -> Option<World> {
    BUILTIN_PLUGINS
        .iter()
        .find(|(builtin, _, _)| *builtin == name)
        .map(|(_, world, _)| *world)
}
