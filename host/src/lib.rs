//! Switchyard: an integration hub. Systems send it notifications over the protocols they
//! already speak; it routes each one by YAML rules to delivery channels and delivers it at
//! least once. Every protocol adapter and every channel is a sandboxed WebAssembly
//! component plugin; [`runtime`] loads and runs them.

pub mod runtime;
pub mod scaffold;
