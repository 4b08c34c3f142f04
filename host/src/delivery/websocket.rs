//! The inbox behind the `websocket` channel plugin: in-app notifications for clients
//! connected to `/ws`.
//!
//! The plugin hands each notification over with `fetch` to the reserved host
//! [`INBOX_HOST`], which this inbox answers in-process. Clients opt in per channel with
//! `{"op": "listen", "channel": "in-app"}`, receive
//! `{"type": "notification", "channel": ..., "notification": {...}}` and confirm each with
//! `{"op": "ack", "channel": ..., "id": <notification id>}`. The handoff answers 200 once
//! one listener acknowledged, 503 when nobody listens and 504 when nobody acknowledged in
//! time; the plugin turns the last two into retries, so a notification is delivered at
//! least once, to a client that is listening now or connects later.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use crate::runtime::{HttpRequest, HttpResponse, LocalHost};

/// The host name the `websocket` plugin fetches; a channel must be granted it.
pub const INBOX_HOST: &str = "websocket.switchyard.local";
/// The longest a handoff waits for an ack, whatever the plugin asks.
const MAX_ACK_WAIT: Duration = Duration::from_secs(30);

/// Queues one text frame for a client; false when the client is gone or too slow.
pub type Send = Arc<dyn Fn(String) -> bool + std::marker::Send + Sync>;

/// The listening clients and the handoffs waiting for an ack.
#[derive(Default)]
pub struct Inbox {
    next_listener: AtomicU64,
    listeners: Mutex<HashMap<String, Vec<(u64, Send)>>>,
    /// `channel/notification id` to the handoff waiting for its ack.
    waiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

/// A client's listening on one channel; dropping it stops the listening.
pub struct Listening {
    inbox: Arc<Inbox>,
    channel: String,
    id: u64,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let mut listeners = self.inbox.listeners.lock().expect("inbox lock");
        if let Some(list) = listeners.get_mut(&self.channel) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                listeners.remove(&self.channel);
            }
        }
    }
}

#[derive(Deserialize)]
struct Handoff {
    channel: String,
    ack_timeout_ms: u64,
    notification: serde_json::Value,
}

impl Inbox {
    /// Starts sending `channel`'s notifications through `send`, until the result is dropped.
    pub fn listen(self: &Arc<Self>, channel: &str, send: Send) -> Listening {
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        self.listeners
            .lock()
            .expect("inbox lock")
            .entry(channel.to_owned())
            .or_default()
            .push((id, send));
        Listening {
            inbox: self.clone(),
            channel: channel.to_owned(),
            id,
        }
    }

    /// A client confirms it has notification `id` of `channel`.
    pub fn ack(&self, channel: &str, id: &str) {
        if let Some(waiting) = self
            .waiting
            .lock()
            .expect("inbox lock")
            .remove(&format!("{channel}/{id}"))
        {
            let _ = waiting.send(());
        }
    }

    async fn hand_off(self: Arc<Self>, request: HttpRequest) -> HttpResponse {
        let handoff: Handoff = match serde_json::from_slice(&request.body) {
            Ok(handoff) => handoff,
            Err(error) => return answer(400, format!("not a handoff: {error}")),
        };
        let Some(id) = handoff.notification["id"].as_str().map(str::to_owned) else {
            return answer(400, "the notification has no id".into());
        };
        let frame = json!({
            "type": "notification",
            "channel": handoff.channel,
            "notification": handoff.notification,
        })
        .to_string();
        let key = format!("{}/{id}", handoff.channel);
        let (acked, ack) = oneshot::channel();
        self.waiting
            .lock()
            .expect("inbox lock")
            .insert(key.clone(), acked);
        let sent = {
            let listeners = self.listeners.lock().expect("inbox lock");
            listeners.get(&handoff.channel).map_or(0, |list| {
                list.iter().filter(|(_, send)| send(frame.clone())).count()
            })
        };
        if sent == 0 {
            self.waiting.lock().expect("inbox lock").remove(&key);
            return answer(
                503,
                format!("no client listens on channel {}", handoff.channel),
            );
        }
        let wait = Duration::from_millis(handoff.ack_timeout_ms).min(MAX_ACK_WAIT);
        let outcome = tokio::time::timeout(wait, ack).await;
        self.waiting.lock().expect("inbox lock").remove(&key);
        match outcome {
            Ok(Ok(())) => answer(200, format!("sent to {sent} clients; acknowledged")),
            _ => answer(
                504,
                format!("sent to {sent} clients; none acknowledged within {wait:?}"),
            ),
        }
    }
}

fn answer(status: u16, message: String) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: json!({ "message": message }).to_string().into_bytes(),
    }
}

/// The inbox as the runtime's in-process host.
pub struct InboxHost(pub Arc<Inbox>);

impl LocalHost for InboxHost {
    fn name(&self) -> &str {
        INBOX_HOST
    }

    fn handle(&self, request: HttpRequest) -> BoxFuture<'static, HttpResponse> {
        self.0.clone().hand_off(request).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff(id: &str, ack_timeout_ms: u64) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            url: format!("http://{INBOX_HOST}/deliver"),
            headers: vec![],
            body: json!({
                "channel": "in-app",
                "attempt": 1,
                "ack_timeout_ms": ack_timeout_ms,
                "notification": { "id": id, "kind": "k" },
            })
            .to_string()
            .into_bytes(),
            timeout_ms: None,
        }
    }

    #[tokio::test]
    async fn a_handoff_needs_a_listener_and_its_ack() {
        let inbox = Arc::new(Inbox::default());
        let host = InboxHost(inbox.clone());
        assert_eq!(host.handle(handoff("n1", 50)).await.status, 503);

        let (frames, mut received) = tokio::sync::mpsc::unbounded_channel();
        let listening = inbox.listen("in-app", Arc::new(move |text| frames.send(text).is_ok()));
        // Nobody acks: 504.
        assert_eq!(host.handle(handoff("n2", 50)).await.status, 504);
        assert!(received.recv().await.unwrap().contains("\"n2\""));

        // An ack from the listener: 200.
        let answer = tokio::spawn(host.handle(handoff("n3", 5_000)));
        let frame = received.recv().await.unwrap();
        assert!(frame.contains("\"type\":\"notification\""), "{frame}");
        inbox.ack("in-app", "n3");
        assert_eq!(answer.await.unwrap().status, 200);

        // Dropping the listening stops it.
        drop(listening);
        assert_eq!(host.handle(handoff("n4", 50)).await.status, 503);
    }
}
