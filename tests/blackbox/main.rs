//! Black-box tests of the `switchyard` binary: every test starts the real hub as a child
//! process in its own temporary data dir and port, talks HTTP to its API, and watches what
//! local receivers get. Nothing here calls the library.
//!
//! When a test fails, the hub's stdout and stderr are printed (see `support::Hub`'s `Drop`).

mod admin;
mod admin_limits;
mod admin_tenants;
mod bad_input;
mod brokers;
mod browser;
mod container;
mod contract;
mod crash;
mod delivery;
mod deploy;
mod disk_full;
mod endpoint_controls;
mod graphql;
mod hooks;
mod idempotency;
mod limits;
mod lost_database;
mod nginx;
mod ops;
mod polyglot;
mod portal;
mod reload;
mod retries;
mod scopes;
mod secrets;
mod support;
#[path = "../shared/tansu.rs"]
mod tansu;
mod tenants;
mod tenants_graphql;
mod tenants_scale;
mod transform_attacks;
mod transforms;
mod ws;
