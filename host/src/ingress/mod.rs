//! Front doors: how notifications get in. Each front door hands the raw request to its
//! source's adapter plugin, then to the [`Acceptor`].

mod accept;
mod adapt;
mod auth;
pub mod graphql;
pub mod hooks;
mod listing;
pub mod openapi;
mod problem;
mod raw_json;
pub mod rest;
pub mod tenants;
pub mod ws;

pub use accept::{AcceptError, Acceptor};
pub use adapt::{adapt, rejection_problem};
pub use auth::Tokens;
pub use problem::{Problem, ProblemResponse, RETRY_AFTER_SECONDS, problem_response};
pub use raw_json::StrictJson;

/// The adapter behind the REST API's send endpoints.
pub const REST_ADAPTER: &str = "rest-json";
/// The source name of notifications sent through the REST API.
pub const REST_SOURCE: &str = "api";
