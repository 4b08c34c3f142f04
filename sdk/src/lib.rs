//! # switchyard-sdk
//!
//! Write Switchyard plugins as plain Rust. A plugin is a WebAssembly component that is
//! an **adapter** (it turns an inbound request into notification drafts), a **channel**
//! (it delivers one notification to a destination) or a **transform** (it reshapes,
//! filters or splits a notification on its way to a channel). You implement one trait,
//! [`Adapter`], [`Channel`] or [`Transform`], and name your type in one macro,
//! [`export_adapter!`], [`export_channel!`] or [`export_transform!`]. The SDK generates
//! the WebAssembly bindings for you, against `switchyard:plugin@0.2.0`.
//!
//! Build with `cargo build --release --target wasm32-wasip2` (the crate type must be
//! `cdylib`); the `.wasm` file in `target/wasm32-wasip2/release/` is the plugin.
//! `switchyard plugin new NAME --kind channel` (or `adapter`, `transform`) scaffolds such
//! a crate, and
//! `switchyard plugin check FILE.wasm` tells you whether the host will accept it.
//!
//! ## A complete channel
//!
//! This channel posts every notification as JSON to the URL in its config, and turns the
//! answer into an outcome the way the host expects (2xx delivered, 429/5xx retry with
//! `Retry-After`, 410 failed with a disable hint, any other 3xx/4xx failed):
//!
//! ```no_run
//! use serde::Deserialize;
//! use switchyard_sdk::{Channel, Delivery, HttpRequest, Outcome, export_channel};
//!
//! #[derive(Deserialize)]
//! struct Config {
//!     url: String,
//! }
//!
//! struct Notify;
//!
//! impl Channel for Notify {
//!     fn deliver(delivery: Delivery) -> Outcome {
//!         let config: Config = match switchyard_sdk::config() {
//!             Ok(config) => config,
//!             Err(problem) => return Outcome::failed(problem),
//!         };
//!         let n = &delivery.notification;
//!         let body = serde_json::json!({
//!             "id": n.id,
//!             "kind": n.kind,
//!             "payload": n.payload_json().unwrap_or_default(),
//!         });
//!         switchyard_sdk::info!("posting {} (attempt {})", n.id, delivery.attempt);
//!         let request = HttpRequest::post(&config.url).json(&body);
//!         Outcome::from_fetch(request.send())
//!     }
//! }
//!
//! export_channel!(Notify);
//! ```
//!
//! ## A complete adapter
//!
//! This adapter accepts a JSON body such as `{"kind": "build.failed", "payload": {...}}`
//! (or a list of them) and refuses anything else with the field and the reason:
//!
//! ```no_run
//! use switchyard_sdk::{Adapter, Draft, Rejection, Request, export_adapter};
//!
//! struct Builds;
//!
//! impl Adapter for Builds {
//!     fn handle(request: Request) -> Result<Vec<Draft>, Rejection> {
//!         if request.header("x-build-token") != switchyard_sdk::secret("token").as_deref() {
//!             return Err(Rejection::unauthorized("missing or wrong x-build-token"));
//!         }
//!         switchyard_sdk::drafts::from_json_body(&request.body)
//!     }
//! }
//!
//! export_adapter!(Builds);
//! ```
//!
//! ## A complete transform
//!
//! A transform runs between a route and a channel, on every attempt, and answers with
//! [`Transformed::keep`] (the notification, changed or not), [`Transformed::drop`] (a
//! filter: nothing goes to this channel) or [`Transformed::split`] (several notifications
//! instead of one), or with a [`TransformError`]. This one drops orders below the
//! `min_total` in its config, adds a `size` attribute, and slims the payload down to what
//! the channel needs:
//!
//! ```no_run
//! use serde::Deserialize;
//! use serde_json::json;
//! use switchyard_sdk::{
//!     Notification, Transform, TransformContext, TransformError, Transformed, export_transform,
//! };
//!
//! #[derive(Deserialize)]
//! struct Config {
//!     min_total: f64,
//! }
//!
//! struct BigOrders;
//!
//! impl Transform for BigOrders {
//!     fn transform(
//!         notification: Notification,
//!         context: TransformContext,
//!     ) -> Result<Transformed, TransformError> {
//!         let config: Config = switchyard_sdk::config().map_err(TransformError::fail)?;
//!         // Malformed JSON fails the delivery: `?` turns the parser's error into a
//!         // TransformError that is not retried.
//!         let payload = notification.payload_json()?;
//!         let Some(total) = payload["total"].as_f64() else {
//!             return Err(TransformError::fail("payload.total is missing or not a number"));
//!         };
//!         if total < config.min_total {
//!             return Ok(Transformed::drop(format!(
//!                 "total {total} is below {} for {}",
//!                 config.min_total, context.channel
//!             )));
//!         }
//!         let slim = json!({"order": payload["id"], "total": total});
//!         Ok(Transformed::keep(
//!             notification
//!                 .with_attribute("size", "big")
//!                 .with_payload_json(&slim),
//!         ))
//!     }
//! }
//!
//! export_transform!(BigOrders);
//! ```
//!
//! Transforms run again on every delivery attempt, so give the same answer for the same
//! notification each time. A [`TransformError::retry`] retries the delivery on the
//! channel's schedule; a [`TransformError::fail`] dead-letters it.
//!
//! ## What a plugin can reach
//!
//! Nothing but the host: [`config`], [`secret`], [`now_ms`], logging ([`info!`] and
//! friends) and outbound HTTP ([`HttpRequest::send`]) to the hosts the routes file
//! grants. Files, sockets, environment variables and clocks are not there, and every call
//! runs under a memory cap and a CPU deadline.

extern crate self as switchyard_sdk;

#[doc(hidden)]
#[path = "bindings.rs"]
pub mod __bindings;

pub mod drafts;
mod http;
mod outcome;
mod rejection;
pub mod template;
mod transformed;
pub mod webhooks;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

use __bindings::adapter::switchyard::plugin::host;
/// Named `Failure` in the contract: why a delivery can never succeed as it is.
pub use __bindings::adapter::switchyard::plugin::types::Failure;
pub use __bindings::adapter::switchyard::plugin::types::{
    Delivery, Draft, FetchError, Field, HttpRequest, HttpResponse, Level, Notification, Outcome,
    PluginInfo, Receipt, Rejection, Request, RetryHint, TransformContext, TransformError,
    Transformed, Transport,
};

/// An adapter: validates an inbound request and turns it into notification drafts.
///
/// Return `Ok(vec![])` to accept a request that carries nothing to route (a ping, say),
/// and a [`Rejection`] to refuse it; the sender sees the rejection's status and message.
pub trait Adapter {
    /// Handles one inbound request.
    fn handle(request: Request) -> Result<Vec<Draft>, Rejection>;
}

/// A channel: makes one attempt to deliver one notification.
///
/// The host calls it again, on the channel's retry schedule, for as long as it returns
/// [`Outcome::retry`]; the notification id stays the same on every attempt.
pub trait Channel {
    /// Delivers one notification.
    fn deliver(delivery: Delivery) -> Outcome;
}

/// A transform: reshapes, filters or splits one notification on its way to one channel.
///
/// It runs after the route picks the channel and before the channel delivers, on every
/// attempt (so it should answer the same way each time). Its `config` and grants come from
/// the `transforms:` entry of the routes file that names it.
pub trait Transform {
    /// Transforms one notification for the delivery that `context` describes.
    fn transform(
        notification: Notification,
        context: TransformContext,
    ) -> Result<Transformed, TransformError>;
}

/// Exports a type that implements [`Adapter`] as this component's adapter.
///
/// The plugin's name, version and description come from its `Cargo.toml`.
#[macro_export]
macro_rules! export_adapter {
    ($adapter:ty) => {
        const _: () = {
            struct SwitchyardAdapterExport;

            impl $crate::__bindings::adapter::exports::switchyard::plugin::inbound::Guest
                for SwitchyardAdapterExport
            {
                fn info() -> $crate::PluginInfo {
                    $crate::__plugin_info(
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION"),
                        env!("CARGO_PKG_DESCRIPTION"),
                    )
                }

                fn handle(
                    request: $crate::Request,
                ) -> ::core::result::Result<::std::vec::Vec<$crate::Draft>, $crate::Rejection>
                {
                    <$adapter as $crate::Adapter>::handle(request)
                }
            }

            $crate::__bindings::adapter::export_world!(
                SwitchyardAdapterExport with_types_in $crate::__bindings::adapter
            );
        };
    };
}

/// Exports a type that implements [`Channel`] as this component's channel.
///
/// The plugin's name, version and description come from its `Cargo.toml`.
#[macro_export]
macro_rules! export_channel {
    ($channel:ty) => {
        const _: () = {
            struct SwitchyardChannelExport;

            impl $crate::__bindings::channel::exports::switchyard::plugin::outbound::Guest
                for SwitchyardChannelExport
            {
                fn info() -> $crate::PluginInfo {
                    $crate::__plugin_info(
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION"),
                        env!("CARGO_PKG_DESCRIPTION"),
                    )
                }

                fn deliver(delivery: $crate::Delivery) -> $crate::Outcome {
                    <$channel as $crate::Channel>::deliver(delivery)
                }
            }

            $crate::__bindings::channel::export_world!(
                SwitchyardChannelExport with_types_in $crate::__bindings::channel
            );
        };
    };
}

/// Exports a type that implements [`Transform`] as this component's transform.
///
/// The plugin's name, version and description come from its `Cargo.toml`.
#[macro_export]
macro_rules! export_transform {
    ($transform:ty) => {
        const _: () = {
            struct SwitchyardTransformExport;

            impl $crate::__bindings::transform::exports::switchyard::plugin::transformer::Guest
                for SwitchyardTransformExport
            {
                fn info() -> $crate::PluginInfo {
                    $crate::__plugin_info(
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION"),
                        env!("CARGO_PKG_DESCRIPTION"),
                    )
                }

                fn transform(
                    notification: $crate::Notification,
                    context: $crate::TransformContext,
                ) -> ::core::result::Result<$crate::Transformed, $crate::TransformError> {
                    <$transform as $crate::Transform>::transform(notification, context)
                }
            }

            $crate::__bindings::transform::export_world!(
                SwitchyardTransformExport with_types_in $crate::__bindings::transform
            );
        };
    };
}

#[doc(hidden)]
pub fn __plugin_info(name: &str, version: &str, description: &str) -> PluginInfo {
    PluginInfo {
        name: name.to_string(),
        version: version.to_string(),
        description: description.to_string(),
    }
}

/// This plugin's `config` from the routes file, deserialized.
///
/// The error is a sentence naming the problem, ready to be a [`Outcome::failed`] reason,
/// a [`Rejection`] message or a [`TransformError::fail`] reason.
pub fn config<T: serde::de::DeserializeOwned>() -> Result<T, String> {
    serde_json::from_str(&host::config()).map_err(|e| format!("invalid plugin config: {e}"))
}

/// The value of a secret the routes file grants this plugin, if it is granted and set.
pub fn secret(name: &str) -> Option<String> {
    host::secret(name)
}

/// The host's current time, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    host::now()
}

/// Writes a line to the host's log at `level`; the host tags it with the plugin's name.
/// The [`info!`] family of macros formats and calls this.
pub fn log(level: Level, message: &str) {
    host::log(level, message)
}

/// Logs a formatted line at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &::std::format!($($arg)*)) };
}

/// Logs a formatted line at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs a formatted line at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &::std::format!($($arg)*)) };
}

/// Logs a formatted line at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log($crate::Level::Error, &::std::format!($($arg)*)) };
}

/// Finds a header or query field by name, ignoring ASCII case.
pub(crate) fn find_field<'a>(fields: &'a [Field], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl Request {
    /// The first header with this name, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_field(&self.headers, name)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, Rejection> {
        std::str::from_utf8(&self.body)
            .map_err(|_| Rejection::bad_request("invalid-encoding", "the body is not UTF-8"))
    }

    /// The body parsed as JSON; malformed JSON becomes a 400 that says where.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Rejection> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Rejection::bad_request("invalid-json", format!("the body is not valid JSON: {e}"))
        })
    }
}

impl Notification {
    /// The payload parsed as a JSON value.
    pub fn payload_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }

    /// The payload checked as JSON but kept as the exact text it arrived as, to embed in a
    /// body without parsing it into a [`serde_json::Value`] and printing it again.
    pub fn payload_raw(&self) -> Result<&serde_json::value::RawValue, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }

    /// The first attribute with this name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Draft {
    /// A draft of `kind` with a JSON payload and no attributes.
    pub fn new(kind: impl Into<String>, payload: &serde_json::Value) -> Self {
        Draft {
            kind: kind.into(),
            attributes: Vec::new(),
            payload: payload.to_string(),
            idempotency_key: None,
        }
    }

    /// Adds an attribute that routes can match on.
    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push((name.into(), value.into()));
        self
    }

    /// Sets the key that makes a repeat of this notification a no-op.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}
