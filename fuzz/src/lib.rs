//! The host's YAML reader, compiled on its own. host/src/yaml.rs depends on nothing else in
//! the host crate, so it is included by path rather than through the `switchyard` crate,
//! which would bring wasmtime, tokio and the rest into every instrumented build.

#[path = "../../host/src/yaml.rs"]
pub mod yaml;
