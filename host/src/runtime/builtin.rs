//! The built-in plugins, compiled from `plugins/*` by `host/build.rs` and embedded in the
//! binary so a fresh install works with zero setup.

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// The component bytes of the built-in plugin `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUILTIN_PLUGINS
        .iter()
        .find(|(builtin, _)| *builtin == name)
        .map(|(_, bytes)| *bytes)
}
