//! A transform that misbehaves on purpose, to attack the host that runs it. Its config
//! picks how: `{"mode": "...", "count": N, "bytes": N, "ms": N}`, where `mode` is
//!
//! - `split-bomb`: splits into `count` copies of the notification;
//! - `huge-payload`: keeps it with a JSON string payload of `bytes` bytes;
//! - `not-json`: keeps it with a payload that is not JSON;
//! - `empty-kind`, `giant-kind` (`bytes` long), `odd-kind` (a kind with a line break);
//! - `many-attributes`: keeps it with `count` small attributes;
//! - `huge-attributes`: keeps it with `count` attributes of `bytes` bytes each;
//! - `loop`: spins forever; `memory-bomb`: allocates until it cannot;
//! - `slow`: keeps it after `ms` milliseconds of busy waiting on the host's clock;
//! - `retry-error`, `fail-error`: a transform error that does, or does not, ask for a retry;
//! - `huge-reason`, `huge-drop`: an error, or a drop, whose reason is `bytes` long;
//! - `secrets-echo`: an error whose reason holds the secret `token`;
//! - anything else: keeps the notification unchanged.

use std::hint::black_box;

use serde::Deserialize;
use switchyard_sdk::{
    Notification, Transform, TransformContext, TransformError, Transformed, export_transform,
};

#[derive(Deserialize)]
struct Config {
    mode: String,
    #[serde(default)]
    count: usize,
    #[serde(default)]
    bytes: usize,
    #[serde(default)]
    ms: u64,
}

struct Hostile;

impl Transform for Hostile {
    fn transform(
        notification: Notification,
        _context: TransformContext,
    ) -> Result<Transformed, TransformError> {
        let config: Config = switchyard_sdk::config().map_err(TransformError::fail)?;
        let mut made = notification;
        match config.mode.as_str() {
            "split-bomb" => {
                let one = Notification {
                    payload: "{}".into(),
                    attributes: Vec::new(),
                    ..made
                };
                return Ok(Transformed::split(vec![one; config.count]));
            }
            "huge-payload" => made.payload = json_string(config.bytes),
            "not-json" => made.payload = "{\"unterminated\": ".into(),
            "empty-kind" => made.kind = String::new(),
            "giant-kind" => made.kind = "k".repeat(config.bytes),
            "odd-kind" => made.kind = "order.created\r\nx-injected: 1".into(),
            "many-attributes" => {
                made.attributes = (0..config.count)
                    .map(|n| (format!("a{n}"), "v".to_owned()))
                    .collect();
            }
            "huge-attributes" => {
                made.attributes = (0..config.count)
                    .map(|n| (format!("a{n}"), "v".repeat(config.bytes)))
                    .collect();
            }
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            "slow" => {
                // Busy, not asleep: a transform has no way to sleep, and this burns CPU
                // under the deadline the way real work would.
                let until = switchyard_sdk::now_ms() + config.ms;
                while switchyard_sdk::now_ms() < until {
                    black_box(());
                }
            }
            "retry-error" => return Err(TransformError::retry("the lookup service is down")),
            "fail-error" => return Err(TransformError::fail("the payload has no `customer`")),
            "huge-reason" => return Err(TransformError::fail("e".repeat(config.bytes))),
            "huge-drop" => return Ok(Transformed::drop("d".repeat(config.bytes))),
            "secrets-echo" => {
                let token = switchyard_sdk::secret("token").unwrap_or_default();
                return Err(TransformError::fail(format!(
                    "the lookup refused token {token}"
                )));
            }
            _ => {}
        }
        Ok(Transformed::keep(made))
    }
}

/// A JSON string of exactly `bytes` bytes (at least two, its quotes).
fn json_string(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes.max(2));
    text.push('"');
    text.extend(std::iter::repeat_n('x', bytes.saturating_sub(2)));
    text.push('"');
    text
}

export_transform!(Hostile);
