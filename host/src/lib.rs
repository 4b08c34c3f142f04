//! Switchyard: an integration hub. Systems send it notifications over the protocols they
//! already speak; it routes each one by YAML rules to delivery channels and delivers it at
//! least once. Every protocol adapter and every channel is a sandboxed WebAssembly
//! component plugin.
//!
//! The modules follow a notification through the hub: [`config`] sets it up, [`ingress`]
//! takes it in through an adapter plugin and accepts it into the [`store`], [`pipeline`]'s
//! router matches it against the [`routing`] table, and [`delivery`] calls channel plugins
//! in the [`runtime`] until it is delivered or dead-lettered. [`server`] is the HTTP edge.

pub mod admin;
pub mod bench;
pub mod bus;
pub mod config;
pub mod crypto;
pub mod delivery;
pub mod events;
pub mod ingress;
pub mod pipeline;
pub mod plugins;
pub mod portal;
pub mod routing;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod store;
pub mod tenancy;
pub mod vault;
mod yaml;
