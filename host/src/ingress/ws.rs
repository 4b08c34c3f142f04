//! The WebSocket front door at `/ws`: send notifications as text frames, and subscribe to
//! live events.
//!
//! # Opening
//!
//! A client authenticates with `Authorization: Bearer <API token>`, or, from a browser, with
//! a signed-in admin session. A browser's `Origin` must be on `ws.allowed_origins` (default:
//! the origin of `public_url`), so another site's page cannot open a socket with the
//! admin's cookie.
//!
//! # Messages
//!
//! Every text frame the client sends is numbered from 1 (`seq`). A frame is either a
//! control message, an object with an `op`, or notifications in the REST API's JSON, which
//! go through the `ws-json` adapter plugin and are accepted like any other:
//!
//! ```text
//! → {"kind": "order.paid", "payload": {...}}
//! ← {"type": "ack", "seq": 1, "ids": ["0193..."]}
//! → {"kind": ""}
//! ← {"type": "error", "seq": 2, "status": 422, "code": "invalid-field", "message": "...", "field": "kind"}
//! → {"op": "subscribe", "events": ["notifications", "deliveries"], "kind": "order.*", "channel": "ops"}
//! ← {"type": "subscribed", "seq": 3}
//! ← {"type": "event", "event": {"type": "notification_accepted", "id": "...", ...}}
//! → {"op": "unsubscribe"}
//! → {"op": "listen", "channel": "in-app"}
//! ← {"type": "listening", "seq": 5, "channel": "in-app"}
//! ← {"type": "notification", "channel": "in-app", "notification": {"id": "...", ...}}
//! → {"op": "ack", "channel": "in-app", "id": "..."}
//! ```
//!
//! `listen` is for channels whose plugin is `websocket`: each notification routed there is
//! sent to the listening clients and counts as delivered once one of them acks it (see
//! `delivery::websocket`).
//!
//! Frames are handled concurrently (up to [`MAX_FRAMES_IN_FLIGHT`] per connection), so acks
//! may come in another order than the frames; `seq` pairs them.
//!
//! # Scopes
//!
//! Any valid API token opens the socket; each frame then needs its scope: a notification
//! needs `send`, `subscribe`, `listen` and `ack` need `read` (or `admin`). A frame refused is
//! answered with an error of status 403 and code `insufficient-scope` naming the scope; the
//! socket stays open. A signed-in admin may do everything. When the socket's token is
//! revoked, the socket is closed with 1008 within a second.
//!
//! # Limits
//!
//! - A frame over `ws.max_frame_bytes` closes the connection with 1009 (message too big).
//! - Outgoing messages wait in a queue of `ws.send_queue`. A client that lets it fill, or
//!   that falls behind the event stream, is closed with 1008 and a reason saying so: a slow
//!   consumer never makes the hub's memory grow.
//! - The server pings every `ws.ping_interval`; a client silent for two intervals is closed.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use poem::http::{StatusCode, header};
use poem::session::Session;
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketConfig, WebSocketStream};
use poem::web::{Data, headers::HeaderMapExt};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio::task::JoinHandle;

use super::{Problem, auth};
use crate::admin::Admin;
use crate::delivery::websocket::Listening;
use crate::events::{EventFilter, EventType};
use crate::pipeline::Hub;
use crate::routing::KindPattern;
use crate::runtime::{self, Transport};
use crate::store::{Accepted, Scope, TokenRecord};

/// The adapter behind `/ws`.
pub const WS_ADAPTER: &str = "ws-json";
/// The source name of notifications sent over `/ws`.
pub const WS_SOURCE: &str = "ws";
/// Frames of one connection being adapted and accepted at once. Beyond that the server
/// stops reading, and TCP flow control slows the client down.
pub const MAX_FRAMES_IN_FLIGHT: usize = 256;

/// Opens a WebSocket after checking the origin and who is asking.
#[handler]
pub async fn open(
    request: &Request,
    socket: WebSocket,
    hub: Data<&Arc<Hub>>,
    admin: Data<&Arc<Admin>>,
    session: &Session,
) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if let Some(origin) = origin
        && !origin_allowed(origin, &hub.config)
    {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("origin {origin} may not open this WebSocket (see ws.allowed_origins)"),
        );
    }
    let bearer = request
        .headers()
        .typed_get::<poem::web::headers::Authorization<poem::web::headers::authorization::Bearer>>(
        );
    let client = match bearer {
        Some(bearer) => hub.tokens.verify(bearer.token()).map(|token| Caller {
            label: format!("token {}", token.name),
            token: Some(token),
        }),
        // A cookie is sent by the browser on its own, so it counts only with a checked
        // Origin: that is what stops cross-site WebSocket hijacking.
        None if origin.is_some() => admin.rules.signed_in(session).map(|user| Caller {
            label: format!("admin {}", user.username),
            token: None,
        }),
        None => None,
    };
    let Some(client) = client else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "send a valid API token as `Authorization: Bearer <token>`, or open the socket from \
             a signed-in admin session",
        );
    };
    let limits = Limits::from(&hub.config.ws);
    // tungstenite buffers up to twice the cap, so an oversize frame is read whole and
    // answered with 1009 rather than cut off with an I/O error.
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits.max_frame_bytes * 2))
        .max_frame_size(Some(limits.max_frame_bytes * 2));
    let hub = hub.clone();
    socket
        .config(config)
        .on_upgrade(move |stream| async move {
            let label = client.label.clone();
            tracing::debug!(client = %label, "WebSocket opened");
            Connection::serve(hub, stream, limits, Arc::new(client)).await;
            tracing::debug!(client = %label, "WebSocket closed");
        })
        .into_response()
}

/// Who opened a socket: an API token, or a signed-in admin.
struct Caller {
    /// For the log: `token NAME` or `admin USERNAME`.
    label: String,
    /// `None` for an admin, who may do everything the console can.
    token: Option<TokenRecord>,
}

impl Caller {
    /// Refuses a frame that needs a scope the caller's token lacks.
    #[allow(clippy::result_large_err)] // the problem exists only on the refusal path
    fn require(&self, scope: Scope) -> Result<(), Problem> {
        match &self.token {
            Some(token) => auth::require(token, scope),
            None => Ok(()),
        }
    }
}

/// The error message answering frame `seq` with `problem`.
fn error_message(seq: u64, problem: &Problem) -> serde_json::Value {
    json!({
        "type": "error",
        "seq": seq,
        "status": problem.status,
        "code": problem.code,
        "message": problem.detail,
        "field": problem.field,
    })
}

fn refuse(status: StatusCode, detail: impl Into<String>) -> Response {
    let problem = Problem::new(status, detail);
    Response::builder()
        .status(status)
        .content_type("application/problem+json")
        .body(serde_json::to_vec(&problem).expect("problems serialise"))
}

/// Whether a browser at `origin` may open a socket.
///
/// With no `ws.allowed_origins`, the hub's own origin: that of `public_url`, and, when
/// `public_url` is not set and the hub listens on a loopback address, the loopback names
/// of its own port (`http://localhost:PORT`, `http://127.0.0.1:PORT`, `http://[::1]:PORT`).
/// The banner sends the admin to `http://localhost:PORT/admin` (browsers keep the
/// console's `Secure` cookie there), and only a browser on this machine can reach a
/// loopback listener, under whichever of those names; other ports, hosts and schemes stay
/// refused.
fn origin_allowed(origin: &str, config: &crate::config::Config) -> bool {
    if config.ws.allowed_origins.is_empty() {
        let public = config.public_url();
        let own = origin_of(&public).is_some_and(|own| own.eq_ignore_ascii_case(origin));
        own || (config.public_url.is_none()
            && config.listen.ip().is_loopback()
            && loopback_origins(config.listen.port())
                .iter()
                .any(|alias| alias.eq_ignore_ascii_case(origin)))
    } else {
        config
            .ws
            .allowed_origins
            .iter()
            .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }
}

/// The origins of a loopback listener on `port`, by each name a local browser may use.
fn loopback_origins(port: u16) -> [String; 3] {
    [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
        format!("http://[::1]:{port}"),
    ]
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    Some(parsed.origin().ascii_serialization())
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_frame_bytes: usize,
    send_queue: usize,
    ping_interval: Duration,
}

impl From<&crate::config::WsConfig> for Limits {
    fn from(config: &crate::config::WsConfig) -> Self {
        Limits {
            max_frame_bytes: config.max_frame_bytes,
            send_queue: config.send_queue,
            ping_interval: config.ping_interval,
        }
    }
}

/// A control message.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Control {
    Subscribe {
        /// `notifications`, `deliveries`, or both when empty.
        #[serde(default)]
        events: Vec<String>,
        kind: Option<String>,
        channel: Option<String>,
    },
    Unsubscribe,
    /// Receive the notifications of a `websocket` channel (in-app notifications).
    Listen {
        channel: String,
    },
    /// Confirm a notification received through `listen`.
    Ack {
        channel: String,
        id: String,
    },
}

/// Why the server closes a connection.
struct Closing {
    code: CloseCode,
    reason: String,
}

/// What one connection's tasks share: the outgoing queue and the way to close.
#[derive(Clone)]
struct Outbox {
    messages: mpsc::Sender<Message>,
    close: mpsc::Sender<Closing>,
}

impl Outbox {
    /// Queues `message`; a full queue means the client is not reading: it is closed.
    fn send(&self, message: serde_json::Value) -> bool {
        self.send_text(message.to_string())
    }

    fn send_text(&self, text: String) -> bool {
        match self.messages.try_send(Message::text(text)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(
                    CloseCode::Policy,
                    "slow consumer: too many messages waiting to be read",
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn close(&self, code: CloseCode, reason: impl Into<String>) {
        // The first reason wins; later ones find the slot taken.
        let _ = self.close.try_send(Closing {
            code,
            reason: reason.into(),
        });
    }
}

struct Connection {
    hub: Arc<Hub>,
    caller: Arc<Caller>,
    outbox: Outbox,
    in_flight: Arc<Semaphore>,
    subscription: Option<JoinHandle<()>>,
    /// The `websocket` channels this client listens on.
    listening: Vec<Listening>,
    limits: Limits,
}

impl Connection {
    async fn serve(hub: Arc<Hub>, stream: WebSocketStream, limits: Limits, caller: Arc<Caller>) {
        let (sink, mut frames) = stream.split();
        let (messages, queued) = mpsc::channel(limits.send_queue);
        let (close, closing) = mpsc::channel(1);
        let writer = tokio::spawn(write(sink, queued, closing, limits.ping_interval));
        // Resolves when the caller's token is revoked; an admin's session has its own expiry.
        let tokens = hub.tokens.clone();
        let token_id = caller.token.as_ref().map(|t| t.id.clone());
        let revoked = async move {
            match token_id {
                Some(id) => tokens.revoked(&id).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(revoked);
        let mut connection = Connection {
            hub,
            caller,
            outbox: Outbox { messages, close },
            in_flight: Arc::new(Semaphore::new(MAX_FRAMES_IN_FLIGHT)),
            subscription: None,
            listening: Vec::new(),
            limits,
        };
        let mut seq = 0u64;
        // Anything from the client (a pong included) within two ping intervals keeps the
        // connection open.
        let silence = limits.ping_interval * 2 + Duration::from_secs(1);
        loop {
            if connection.outbox.close.is_closed() {
                break;
            }
            let frame = tokio::select! {
                frame = tokio::time::timeout(silence, frames.next()) => frame,
                // The writer ended (the client went away, or it closed for a reason).
                () = connection.outbox.close.closed() => break,
                () = &mut revoked => {
                    connection
                        .outbox
                        .close(CloseCode::Policy, "the API token was revoked");
                    break;
                }
            };
            match frame {
                Err(_) => {
                    connection
                        .outbox
                        .close(CloseCode::Policy, "no answer to pings");
                    break;
                }
                Ok(None) | Ok(Some(Ok(Message::Close(_)))) => break,
                Ok(Some(Err(error))) => {
                    // Past twice the cap tungstenite itself refuses the frame.
                    connection
                        .outbox
                        .close(CloseCode::Size, format!("frame refused: {error}"));
                    break;
                }
                Ok(Some(Ok(Message::Text(text)))) => {
                    seq += 1;
                    if text.len() > limits.max_frame_bytes {
                        connection.close_oversize(text.len());
                        break;
                    }
                    connection.frame(seq, text).await;
                }
                Ok(Some(Ok(Message::Binary(bytes)))) => {
                    seq += 1;
                    if bytes.len() > limits.max_frame_bytes {
                        connection.close_oversize(bytes.len());
                        break;
                    }
                    connection.outbox.send(json!({
                        "type": "error", "seq": seq, "status": 400, "code": "binary-frame",
                        "message": "send notifications as JSON in text frames",
                    }));
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            }
        }
        connection.unsubscribe();
        drop(connection);
        // The writer sends the close frame, if any. A client that reads nothing would keep
        // it waiting; after a while the socket is simply dropped.
        if tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .is_err()
        {
            tracing::debug!("a WebSocket client did not take its close frame; dropped it");
        }
    }

    fn close_oversize(&self, size: usize) {
        self.outbox.close(
            CloseCode::Size,
            format!(
                "frame of {size} bytes; the limit is {} (ws.max_frame_bytes)",
                self.limits.max_frame_bytes
            ),
        );
    }

    async fn frame(&mut self, seq: u64, text: String) {
        if text.contains("\"op\"")
            && let Ok(control) = serde_json::from_str::<Control>(&text)
        {
            match self.caller.require(Scope::Read) {
                Ok(()) => self.control(seq, control),
                Err(problem) => {
                    self.outbox.send(error_message(seq, &problem));
                }
            }
            return;
        }
        if let Err(problem) = self.caller.require(Scope::Send) {
            self.outbox.send(error_message(seq, &problem));
            return;
        }
        let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
            return;
        };
        let hub = self.hub.clone();
        let outbox = self.outbox.clone();
        let caller = self.caller.clone();
        tokio::spawn(async move {
            let token_id = caller.token.as_ref().map(|t| t.id.as_str());
            let answer = match ingest(&hub, token_id, text.into_bytes()).await {
                Ok(ids) => json!({ "type": "ack", "seq": seq, "ids": ids }),
                Err(problem) => error_message(seq, &problem),
            };
            outbox.send(answer);
            drop(permit);
        });
    }

    fn control(&mut self, seq: u64, control: Control) {
        match control {
            Control::Subscribe {
                events,
                kind,
                channel,
            } => {
                self.unsubscribe();
                match filter(&events, kind.as_deref(), channel) {
                    Ok(filter) => {
                        // Subscribe before saying so, so no event after the answer is missed.
                        let receiver = self.hub.events.subscribe();
                        self.outbox
                            .send(json!({ "type": "subscribed", "seq": seq }));
                        self.subscription =
                            Some(tokio::spawn(forward(receiver, filter, self.outbox.clone())));
                    }
                    Err(message) => {
                        self.outbox.send(json!({
                            "type": "error", "seq": seq, "status": 422,
                            "code": "invalid-subscription", "message": message,
                        }));
                    }
                }
            }
            Control::Unsubscribe => {
                self.unsubscribe();
                self.outbox
                    .send(json!({ "type": "unsubscribed", "seq": seq }));
            }
            Control::Listen { channel } => {
                let outbox = self.outbox.clone();
                let listening = self
                    .hub
                    .inbox
                    .listen(&channel, Arc::new(move |text| outbox.send_text(text)));
                self.listening.push(listening);
                self.outbox
                    .send(json!({ "type": "listening", "seq": seq, "channel": channel }));
            }
            Control::Ack { channel, id } => self.hub.inbox.ack(&channel, &id),
        }
    }

    fn unsubscribe(&mut self) {
        if let Some(previous) = self.subscription.take() {
            previous.abort();
        }
    }
}

fn filter(
    events: &[String],
    kind: Option<&str>,
    channel: Option<String>,
) -> Result<EventFilter, String> {
    let mut only = None;
    let (mut notifications, mut deliveries) = (false, false);
    for event in events {
        match event.as_str() {
            "notifications" => notifications = true,
            "deliveries" => deliveries = true,
            other => {
                return Err(format!(
                    "unknown event type `{other}`; use `notifications` and/or `deliveries`"
                ));
            }
        }
    }
    if notifications != deliveries {
        only = Some(if notifications {
            EventType::Notifications
        } else {
            EventType::Deliveries
        });
    }
    Ok(EventFilter {
        kind: kind.map(KindPattern::new).transpose()?,
        channel,
        only,
    })
}

/// Forwards matching events until the client is too slow or the connection ends.
async fn forward(
    mut events: broadcast::Receiver<Arc<crate::events::Event>>,
    filter: EventFilter,
    outbox: Outbox,
) {
    loop {
        match events.recv().await {
            Ok(event) if filter.matches(&event) => {
                if !outbox.send(json!({ "type": "event", "event": &*event })) {
                    return;
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                outbox.close(
                    CloseCode::Policy,
                    format!("slow consumer: fell {missed} events behind"),
                );
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Writes queued messages and pings; sends the close frame when asked, then stops.
async fn write(
    mut sink: futures::stream::SplitSink<WebSocketStream, Message>,
    mut queued: mpsc::Receiver<Message>,
    mut closing: mpsc::Receiver<Closing>,
    ping_interval: Duration,
) {
    let mut ping = tokio::time::interval(ping_interval);
    ping.reset();
    loop {
        tokio::select! {
            biased;
            closing = closing.recv() => {
                if let Some(Closing { code, reason }) = closing {
                    let _ = sink.send(Message::close_with(code, reason)).await;
                }
                break;
            }
            message = queued.recv() => match message {
                Some(message) => {
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
                None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
            _ = ping.tick() => {
                if sink.send(Message::ping(Vec::new())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = sink.close().await;
}

/// Adapts one frame with `ws-json` and accepts what it gives; the ids, or the problem.
async fn ingest(hub: &Hub, token_id: Option<&str>, body: Vec<u8>) -> Result<Vec<String>, Problem> {
    let request = runtime::Request {
        transport: Transport::WsMessage,
        method: "GET".into(),
        path: "/ws".into(),
        headers: Vec::new(),
        query: String::new(),
        body,
    };
    let drafts = super::adapt(hub, WS_ADAPTER, &Arc::default(), request).await?;
    let several = drafts.len() > 1;
    match hub
        .acceptor
        .accept(WS_SOURCE, token_id, None, drafts, None)
        .await
    {
        Ok(Accepted::Stored(items) | Accepted::Replayed(items)) => {
            Ok(items.into_iter().map(|item| item.id).collect())
        }
        Ok(Accepted::KeyReused) => Err(Problem::new(
            StatusCode::CONFLICT,
            "this idempotency key was already used differently",
        )),
        Ok(Accepted::NotificationKeyReused { index }) => {
            Err(super::rest::notification_key_reused(if several {
                format!("notifications[{index}].idempotency_key")
            } else {
                "idempotency_key".to_string()
            }))
        }
        Err(error) => Err(error.into()),
    }
}
