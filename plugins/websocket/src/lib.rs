//! The `websocket` channel: delivers each notification to the clients connected to this
//! hub's `/ws` that listen on the channel (in-app notifications).
//!
//! A plugin cannot hold connections, so it hands the notification to the hub's inbox
//! through `fetch`, at the reserved host `websocket.switchyard.local`, which the host
//! answers in-process: nothing leaves the machine, and only a channel granted that host
//! (its `allowed_hosts`) can reach it. The inbox sends the notification to every listening
//! client and answers 200 once one of them acknowledges it, 503 when no client listens,
//! and 504 when none acknowledged in time. The last two are retried on the channel's
//! schedule, so a notification reaches a client that connects later: at least once.
//!
//! Config:
//! - `ack_timeout_ms` (optional, default 5000): how long to wait for a client's ack.
//!
//! Secrets: none.

use serde::{Deserialize, Serialize};
use switchyard_sdk::{Channel, Delivery, HttpRequest, Outcome, export_channel};

/// The reserved host the hub answers itself.
const INBOX_URL: &str = "http://websocket.switchyard.local/deliver";
const DEFAULT_ACK_TIMEOUT_MS: u32 = 5000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    ack_timeout_ms: Option<u32>,
}

/// What the inbox receives; clients get the `notification` part.
#[derive(Serialize)]
struct Handoff<'a> {
    channel: &'a str,
    attempt: u32,
    ack_timeout_ms: u32,
    notification: Message<'a>,
}

#[derive(Serialize)]
struct Message<'a> {
    id: &'a str,
    kind: &'a str,
    source: &'a str,
    attributes: std::collections::BTreeMap<&'a str, &'a str>,
    payload: serde_json::Value,
    created_at_ms: u64,
}

struct WebSocket;

impl Channel for WebSocket {
    fn deliver(delivery: Delivery) -> Outcome {
        let config: Config = match switchyard_sdk::config() {
            Ok(config) => config,
            Err(problem) => return Outcome::failed(problem),
        };
        let n = &delivery.notification;
        let payload: serde_json::Value = match serde_json::from_str(&n.payload) {
            Ok(payload) => payload,
            Err(error) => return Outcome::failed(format!("the payload is not JSON: {error}")),
        };
        let ack_timeout_ms = config.ack_timeout_ms.unwrap_or(DEFAULT_ACK_TIMEOUT_MS);
        let handoff = Handoff {
            channel: &delivery.channel,
            attempt: delivery.attempt,
            ack_timeout_ms,
            notification: Message {
                id: &n.id,
                kind: &n.kind,
                source: &n.source,
                attributes: n
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
                payload,
                created_at_ms: n.created_at_ms,
            },
        };
        let request = HttpRequest::post(INBOX_URL)
            .json(&handoff)
            .timeout_ms(ack_timeout_ms.saturating_add(1000));
        Outcome::from_fetch(request.send())
    }
}

export_channel!(WebSocket);
