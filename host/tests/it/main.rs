//! The host's integration tests, one binary: plugins run through the real wasmtime runtime,
//! HTTP goes to real local receivers.

mod adapters;
mod admin;
mod channels;
mod cli;
mod graphql;
mod kafka;
mod loading;
mod rabbit;
mod sandbox;
mod store;
mod support;
#[path = "../../../tests/shared/tansu.rs"]
mod tansu;
