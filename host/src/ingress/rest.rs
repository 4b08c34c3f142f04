//! The REST API under `/api/v1`, documented by poem-openapi: the spec is served at
//! `/openapi.json` and Swagger UI at `/docs`.

// Errors are problem bodies returned by value: they are only built on the error path, and
// poem-openapi needs the concrete response type, so their size does not matter here.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use poem::http::StatusCode;
use poem::{IntoResponse as _, Request};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme, Tags, auth::Bearer};

use super::listing::{DeliveryState, next_page, page_limit, rfc3339, unix_ms};
use super::problem::{Problem, ProblemResponse};
use super::raw_json::{RawJson, StrictJson};
use super::{REST_ADAPTER, REST_SOURCE, auth};
use crate::crypto;
use crate::pipeline::Hub;
use crate::routing::{RouteTable, RoutesError};
use crate::runtime::{self, Transport};
use crate::store::{
    self, Accepted, AcceptedItem, DeadLetterFilter, NotificationFilter, RequestKey, Scope, Scopes,
    TokenRecord,
};

type ApiResult<T> = Result<T, ProblemResponse>;

/// The send endpoints' paths, as the `rest-json` adapter tells them apart.
pub(super) const SEND_PATH: &str = "/api/v1/notifications";
pub(super) const BATCH_PATH: &str = "/api/v1/notifications/batch";

#[derive(Tags)]
enum Tag {
    /// Send notifications and follow them through their deliveries.
    Notifications,
    /// Deliveries that ran out of retries, and replaying them.
    DeadLetters,
    /// The YAML route table.
    Routes,
    /// The installed plugins.
    Plugins,
    /// API tokens.
    Tokens,
}

/// An API token with the `send` scope: `Authorization: Bearer sy_...`. The first start of
/// a hub prints one that holds every scope; `switchyard token create NAME --scope send`
/// makes more. A token without the scope gets 403 (`insufficient-scope`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_send")]
pub struct SendToken(pub TokenRecord);

/// An API token with the `read` scope (or `admin`, which includes it): `Authorization:
/// Bearer sy_...`. A token without it gets 403 (`insufficient-scope`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_read")]
pub struct ReadToken(pub TokenRecord);

/// An API token with the `admin` scope: `Authorization: Bearer sy_...`. A token without it
/// gets 403 (`insufficient-scope`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_admin")]
pub struct AdminToken(pub TokenRecord);

/// A token check for an endpoint that has not said which scope it needs: it needs `admin`,
/// so a new endpoint that forgets to choose fails closed.
pub type ApiToken = AdminToken;

async fn check_send(request: &Request, bearer: Bearer) -> poem::Result<TokenRecord> {
    check_token(request, bearer, Scope::Send)
}

async fn check_read(request: &Request, bearer: Bearer) -> poem::Result<TokenRecord> {
    check_token(request, bearer, Scope::Read)
}

async fn check_admin(request: &Request, bearer: Bearer) -> poem::Result<TokenRecord> {
    check_token(request, bearer, Scope::Admin)
}

/// The REST API's one token check: 401 for a token that is not active, 403 naming the
/// scope for one that may not do this.
pub(super) fn check_token(
    request: &Request,
    bearer: Bearer,
    scope: Scope,
) -> poem::Result<TokenRecord> {
    let hub = request
        .data::<Arc<Hub>>()
        .expect("the hub is attached to every request");
    let token = hub.tokens.verify(&bearer.token).ok_or_else(|| {
        poem::Error::from_string("the API token is not valid", StatusCode::UNAUTHORIZED)
    })?;
    auth::require(&token, scope).map_err(|problem| {
        poem::Error::from_response(ProblemResponse::from(problem).into_response())
    })?;
    Ok(token)
}

/// The REST API.
pub struct Api {
    hub: Arc<Hub>,
}

impl Api {
    pub fn new(hub: Arc<Hub>) -> Api {
        Api { hub }
    }
}

// ---- Schemas ------------------------------------------------------------------------
//
// The limits below are the `rest-json` adapter's (switchyard_sdk::drafts), which is what
// checks a notification: these types only document the body. `openapi.rs` adds what the
// schema model here cannot say (the attribute names' limits and value types).

/// A notification to send.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub(super) struct NotificationIn {
    /// What happened, as dotted words: `invoice.paid`, `incident.opened`. Routes match on it.
    #[oai(validator(min_length = 1, max_length = 256, pattern = r"^[A-Za-z0-9._:-]+$"))]
    kind: String,
    /// Flat attributes routes can match on, such as `{"severity": "critical"}`: at most 64,
    /// names 1 to 256 characters, values strings of at most 256 characters (a number or a
    /// boolean is taken as its text).
    #[oai(nullable, validator(max_properties = 64))]
    attributes: Option<BTreeMap<String, String>>,
    /// Any JSON: what the channels deliver.
    payload: Option<serde_json::Value>,
    /// Sending the same key again within the idempotency window creates nothing new and
    /// returns the first notification's id, marked `duplicate`. Keys are the API token's
    /// own: another token's same key is another notification. The same key with a different
    /// kind, attributes or payload is refused with 409 (`idempotency-key-reused`); in a
    /// batch that refuses the whole batch, and `field` names the notification.
    #[oai(nullable, validator(min_length = 1, max_length = 256))]
    idempotency_key: Option<String>,
}

impl Example for NotificationIn {
    fn example() -> Self {
        NotificationIn {
            kind: "invoice.paid".into(),
            attributes: Some(BTreeMap::from([("region".into(), "eu".into())])),
            payload: Some(serde_json::json!({"invoice": 42, "amount": "19.99"})),
            idempotency_key: Some("invoice-42-paid".into()),
        }
    }
}

/// Several notifications to send at once: all are accepted, or none.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub(super) struct BatchIn {
    #[oai(validator(min_items = 1, max_items = 1000))]
    notifications: Vec<NotificationIn>,
}

impl Example for BatchIn {
    fn example() -> Self {
        BatchIn {
            notifications: vec![
                NotificationIn::example(),
                NotificationIn {
                    kind: "incident.opened".into(),
                    attributes: Some(BTreeMap::from([("severity".into(), "critical".into())])),
                    payload: Some(serde_json::json!({"service": "checkout"})),
                    idempotency_key: None,
                },
            ],
        }
    }
}

/// A notification taken in: durable, and on its way to the router.
#[derive(Object)]
#[oai(example)]
pub(super) struct AcceptedOut {
    /// The notification's id, stable across every attempt (it is the `webhook-id`).
    id: String,
    /// True when the notification's idempotency key was seen before: nothing new was
    /// created and `id` is the first notification's.
    duplicate: bool,
}

impl Example for AcceptedOut {
    fn example() -> Self {
        AcceptedOut {
            id: EXAMPLE_ID.into(),
            duplicate: false,
        }
    }
}

/// The id of a notification in the examples.
const EXAMPLE_ID: &str = "019ae0d2-5c1e-7a3b-9f10-2b4c6d8e0a12";
/// A time in the examples.
pub(super) const EXAMPLE_TIME: &str = "2026-11-24T09:30:00.125Z";

impl From<AcceptedItem> for AcceptedOut {
    fn from(item: AcceptedItem) -> Self {
        AcceptedOut {
            id: item.id,
            duplicate: item.duplicate,
        }
    }
}

#[derive(Object)]
#[oai(example)]
pub(super) struct BatchAcceptedOut {
    /// One entry per notification sent, in order.
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub(super) notifications: Vec<AcceptedOut>,
}

impl Example for BatchAcceptedOut {
    fn example() -> Self {
        BatchAcceptedOut {
            notifications: vec![
                AcceptedOut::example(),
                AcceptedOut {
                    id: "019ae0d2-5c1e-7a3b-9f10-2b4c6d8e0a13".into(),
                    duplicate: false,
                },
            ],
        }
    }
}

#[derive(ApiResponse)]
pub(super) enum SendResponse {
    /// Accepted: the notification is durable and will be delivered.
    #[oai(status = 202)]
    Accepted(
        Json<AcceptedOut>,
        /// `true` when this is the stored answer to an earlier request with the same
        /// `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<bool>,
    ),
}

#[derive(ApiResponse)]
pub(super) enum BatchResponse {
    /// Accepted: every notification is durable and will be delivered.
    #[oai(status = 202)]
    Accepted(
        Json<BatchAcceptedOut>,
        /// `true` when this is the stored answer to an earlier request with the same
        /// `Idempotency-Key`.
        #[oai(header = "Idempotent-Replayed")]
        Option<bool>,
    ),
}

/// What became of an attempt.
#[derive(poem_openapi::Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
enum AttemptOutcome {
    /// The destination took it.
    Delivered,
    /// It failed in a way worth retrying; the delivery stays pending.
    Retry,
    /// It failed for good; the delivery is dead.
    Failed,
    /// The plugin call itself failed (a trap, a timeout, an exhausted limit), or a
    /// transform did.
    Error,
    /// A transform dropped the notification: nothing went to the channel, and the delivery
    /// is done.
    Dropped,
}

impl AttemptOutcome {
    fn parse(stored: &str) -> AttemptOutcome {
        match stored {
            "delivered" => AttemptOutcome::Delivered,
            "retry" => AttemptOutcome::Retry,
            "failed" => AttemptOutcome::Failed,
            "dropped" => AttemptOutcome::Dropped,
            _ => AttemptOutcome::Error,
        }
    }
}

/// One attempt to deliver.
#[derive(Object)]
#[oai(example)]
struct AttemptOut {
    /// 1 for the first attempt.
    attempt: u32,
    /// When it started (RFC 3339).
    started_at: String,
    duration_ms: i64,
    outcome: AttemptOutcome,
    /// The destination's HTTP status, when there was one.
    #[oai(nullable)]
    status: Option<u16>,
    /// What went wrong, or what the destination said.
    #[oai(nullable)]
    detail: Option<String>,
    /// The transforms that ran before the channel, in order, by their names in the routes
    /// file; empty when none did.
    transforms: Vec<String>,
}

impl Example for AttemptOut {
    fn example() -> Self {
        AttemptOut {
            attempt: 1,
            started_at: EXAMPLE_TIME.into(),
            duration_ms: 12,
            outcome: AttemptOutcome::Delivered,
            status: Some(200),
            detail: None,
            transforms: vec!["redact-pii".into()],
        }
    }
}

/// A notification's delivery to one channel.
#[derive(Object)]
#[oai(example)]
pub(super) struct DeliveryOut {
    id: String,
    channel: String,
    /// The route that sent it there.
    route: String,
    state: DeliveryState,
    /// How many attempts were made.
    attempts: u32,
    /// When the next attempt is due (RFC 3339), while pending.
    #[oai(nullable)]
    next_attempt_at: Option<String>,
    #[oai(nullable)]
    last_error: Option<String>,
    attempt_log: Vec<AttemptOut>,
}

impl Example for DeliveryOut {
    fn example() -> Self {
        DeliveryOut {
            id: "019ae0d2-5c1f-7c00-8d21-3b4c5d6e7f80".into(),
            channel: "billing-webhook".into(),
            route: "invoices".into(),
            state: DeliveryState::Delivered,
            attempts: 1,
            next_attempt_at: None,
            last_error: None,
            attempt_log: vec![AttemptOut::example()],
        }
    }
}

/// A notification, with its deliveries when fetched by id.
#[derive(Object)]
#[oai(example)]
struct NotificationOut {
    id: String,
    kind: String,
    /// Where it came from: `api` for the REST API, `tenant:api` for a tenant's own token,
    /// else the source's name.
    source: String,
    attributes: BTreeMap<String, String>,
    /// The JSON it was sent with (`null` when it had none).
    payload: serde_json::Value,
    #[oai(nullable)]
    idempotency_key: Option<String>,
    /// When it was accepted (RFC 3339).
    created_at: String,
    /// Its deliveries, one per channel its routes chose, each with every attempt. Only
    /// when the notification is fetched by id.
    #[oai(skip_serializing_if_is_none)]
    deliveries: Option<Vec<DeliveryOut>>,
}

impl Example for NotificationOut {
    fn example() -> Self {
        let sent = NotificationIn::example();
        NotificationOut {
            id: EXAMPLE_ID.into(),
            kind: sent.kind,
            source: "api".into(),
            attributes: sent.attributes.unwrap_or_default(),
            payload: sent.payload.unwrap_or_default(),
            idempotency_key: sent.idempotency_key,
            created_at: EXAMPLE_TIME.into(),
            deliveries: Some(vec![DeliveryOut::example()]),
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct NotificationPage {
    items: Vec<NotificationOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[oai(nullable)]
    next_cursor: Option<String>,
}

impl Example for NotificationPage {
    fn example() -> Self {
        let mut item = NotificationOut::example();
        item.deliveries = None;
        NotificationPage {
            items: vec![item],
            next_cursor: Some("1041".into()),
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct DeadLetterOut {
    delivery_id: String,
    notification_id: String,
    kind: String,
    channel: String,
    route: String,
    attempts: u32,
    #[oai(nullable)]
    last_error: Option<String>,
    /// When it ran out of retries (RFC 3339).
    dead_at: String,
}

impl Example for DeadLetterOut {
    fn example() -> Self {
        DeadLetterOut {
            delivery_id: "019ae0d2-5c1f-7c00-8d21-3b4c5d6e7f80".into(),
            notification_id: EXAMPLE_ID.into(),
            kind: "invoice.paid".into(),
            channel: "billing-webhook".into(),
            route: "invoices".into(),
            attempts: 8,
            last_error: Some("the destination answered 503".into()),
            dead_at: EXAMPLE_TIME.into(),
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct DeadLetterPage {
    items: Vec<DeadLetterOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[oai(nullable)]
    next_cursor: Option<String>,
}

impl Example for DeadLetterPage {
    fn example() -> Self {
        DeadLetterPage {
            items: vec![DeadLetterOut::example()],
            next_cursor: None,
        }
    }
}

#[derive(Object)]
#[oai(example)]
pub(super) struct ReplayOut {
    delivery_id: String,
    channel: String,
    /// Always `pending`: the delivery is back in its channel's queue.
    state: DeliveryState,
}

impl Example for ReplayOut {
    fn example() -> Self {
        ReplayOut {
            delivery_id: DeadLetterOut::example().delivery_id,
            channel: "billing-webhook".into(),
            state: DeliveryState::Pending,
        }
    }
}

/// An example routes file.
const EXAMPLE_ROUTES: &str = "channels:\n  ops-log: { plugin: log }\nroutes:\n  - name: everything\n    match: { kind: \"*\" }\n    to: [ops-log]\n";

/// The route table in force.
#[derive(Object)]
#[oai(example)]
struct RoutesOut {
    /// The routes file.
    path: String,
    /// The YAML it was read from.
    text: String,
    /// The parsed table, secrets redacted.
    table: serde_json::Value,
    warnings: Vec<String>,
}

impl Example for RoutesOut {
    fn example() -> Self {
        RoutesOut {
            path: "/var/lib/switchyard/routes.yaml".into(),
            text: EXAMPLE_ROUTES.into(),
            table: serde_json::json!({
                "channels": {"ops-log": {"plugin": "log"}},
                "routes": [{"name": "everything", "match": {"kind": "*"}, "to": ["ops-log"]}],
            }),
            warnings: Vec::new(),
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct ValidationOut {
    /// Always true: a file with problems is answered 422, naming each.
    valid: bool,
    warnings: Vec<String>,
}

impl Example for ValidationOut {
    fn example() -> Self {
        ValidationOut {
            valid: true,
            warnings: vec!["channel `spare` is not used by any route".into()],
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct PluginOut {
    name: String,
    /// adapter, channel or transform.
    world: String,
    version: String,
    description: String,
    /// The host functions the plugin imports.
    imports: Vec<String>,
}

impl Example for PluginOut {
    fn example() -> Self {
        PluginOut {
            name: "webhook".into(),
            world: "channel".into(),
            version: "0.1.0".into(),
            description: "Posts each notification as a signed Standard Webhook.".into(),
            imports: vec!["fetch".into(), "log".into()],
        }
    }
}

/// What a token may do.
#[derive(poem_openapi::Enum, serde::Deserialize, Clone, Copy)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
enum ScopeName {
    /// Create notifications.
    Send,
    /// Read notifications, deliveries, dead letters and live events.
    Read,
    /// Plugins, routes, tokens and replays; includes `read`.
    Admin,
}

impl From<ScopeName> for Scope {
    fn from(name: ScopeName) -> Scope {
        match name {
            ScopeName::Send => Scope::Send,
            ScopeName::Read => Scope::Read,
            ScopeName::Admin => Scope::Admin,
        }
    }
}

impl From<Scope> for ScopeName {
    fn from(scope: Scope) -> ScopeName {
        match scope {
            Scope::Send => ScopeName::Send,
            Scope::Read => ScopeName::Read,
            Scope::Admin => ScopeName::Admin,
        }
    }
}

fn scope_names(scopes: Scopes) -> Vec<ScopeName> {
    scopes.iter().map(ScopeName::from).collect()
}

#[derive(Object, serde::Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
struct TokenIn {
    /// What the token is for, such as the name of the system that uses it: 1 to 100
    /// characters, not only spaces (leading and trailing spaces are dropped).
    #[oai(validator(min_length = 1, max_length = 100, pattern = r"\S"))]
    name: String,
    /// What it may do. Default: `send` and `read`. `admin` is given only when asked for.
    #[oai(nullable, validator(max_items = 3))]
    scopes: Option<Vec<ScopeName>>,
    /// Confine the token to this tenant: it then reaches only that tenant's endpoints,
    /// deliveries and sends (`/api/v1/tenants/{tenant}/...`), and nothing else.
    #[oai(nullable, validator(min_length = 1, max_length = 64))]
    #[serde(default)]
    tenant: Option<String>,
}

impl Example for TokenIn {
    fn example() -> Self {
        TokenIn {
            name: "billing-service".into(),
            scopes: Some(vec![ScopeName::Send]),
            tenant: None,
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct TokenOut {
    id: String,
    name: String,
    scopes: Vec<ScopeName>,
    /// The tenant it is confined to, if any.
    #[oai(skip_serializing_if_is_none)]
    tenant: Option<String>,
    /// When it was created (RFC 3339).
    created_at: String,
}

impl Example for TokenOut {
    fn example() -> Self {
        TokenOut {
            id: "019ae0c1-0f2e-7d4a-b6c8-9e0f1a2b3c4d".into(),
            name: "billing-service".into(),
            scopes: vec![ScopeName::Send],
            tenant: None,
            created_at: EXAMPLE_TIME.into(),
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct NewTokenOut {
    id: String,
    name: String,
    scopes: Vec<ScopeName>,
    /// The tenant it is confined to, if any.
    #[oai(skip_serializing_if_is_none)]
    tenant: Option<String>,
    /// The token. It is shown only now: the hub keeps only its SHA-256 digest.
    token: String,
}

impl Example for NewTokenOut {
    fn example() -> Self {
        let token = TokenOut::example();
        NewTokenOut {
            id: token.id,
            name: token.name,
            scopes: token.scopes,
            tenant: None,
            token: "sy_3q8Jm2vXkR5tW9yB1nC4dF6gH0jL7pQs".into(),
        }
    }
}

// ---- Endpoints ------------------------------------------------------------------------

#[OpenApi(prefix_path = "/api/v1")]
impl Api {
    /// Send one notification.
    ///
    /// The body goes to the `rest-json` adapter, which checks it. The answer comes only
    /// once the notification is durable.
    #[oai(
        path = "/notifications",
        method = "post",
        tag = "Tag::Notifications",
        operation_id = "sendNotification"
    )]
    async fn send(
        &self,
        token: SendToken,
        body: RawJson<NotificationIn>,
        /// Repeat a request with the same key within the idempotency window (24 h by
        /// default) and you get the first answer; nothing new is created. The same key with
        /// a different body is refused with 409.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
    ) -> ApiResult<SendResponse> {
        let (mut items, replayed) = self
            .accept(&token.0, SEND_PATH, None, body, idempotency_key.0)
            .await?;
        let item = items.pop().expect("exactly one");
        Ok(SendResponse::Accepted(
            Json(item.into()),
            replayed.then_some(true),
        ))
    }

    /// Send a batch of notifications (up to 1000).
    ///
    /// All or nothing: if any notification is invalid, none is accepted and the problem
    /// names the first bad field.
    #[oai(
        path = "/notifications/batch",
        method = "post",
        tag = "Tag::Notifications",
        operation_id = "sendNotificationBatch"
    )]
    async fn send_batch(
        &self,
        token: SendToken,
        body: RawJson<BatchIn>,
        /// As for a single send: a repeat within the window gets the first answer.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
    ) -> ApiResult<BatchResponse> {
        let (items, replayed) = self
            .accept(&token.0, BATCH_PATH, None, body, idempotency_key.0)
            .await?;
        Ok(BatchResponse::Accepted(
            Json(BatchAcceptedOut {
                notifications: items.into_iter().map(Into::into).collect(),
            }),
            replayed.then_some(true),
        ))
    }

    /// Get a notification with its deliveries and every attempt.
    #[oai(
        path = "/notifications/:id",
        method = "get",
        tag = "Tag::Notifications",
        operation_id = "getNotification"
    )]
    async fn get_notification(
        &self,
        _token: ReadToken,
        id: Path<String>,
    ) -> ApiResult<Json<NotificationOut>> {
        let notification = self
            .hub
            .store
            .notification(&id.0)
            .await
            .map_err(store_problem)?
            .ok_or_else(|| not_found(format!("no notification has id `{}`", id.0)))?;
        let deliveries = self
            .hub
            .store
            .deliveries_of(&id.0)
            .await
            .map_err(store_problem)?;
        let mut out = notification_out(notification);
        out.deliveries = Some(deliveries.into_iter().map(delivery_out).collect());
        Ok(Json(out))
    }

    /// List notifications, newest first.
    #[oai(
        path = "/notifications",
        method = "get",
        tag = "Tag::Notifications",
        operation_id = "listNotifications"
    )]
    #[allow(clippy::too_many_arguments)] // poem-openapi takes each query parameter as one
    async fn list_notifications(
        &self,
        _token: ReadToken,
        /// Only this kind; a trailing `*` takes every kind with that prefix (`invoice.*`).
        kind: Query<Option<String>>,
        /// Only from this source (`api` for the REST API, `tenant:api` for a tenant's own
        /// token).
        source: Query<Option<String>>,
        /// Only notifications with a delivery in this state.
        state: Query<Option<DeliveryState>>,
        /// Only notifications accepted at or after this time (RFC 3339, any offset).
        since: Query<Option<time::OffsetDateTime>>,
        /// At most this many (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
        #[oai(validator(pattern = r"^[0-9]{1,18}$"))]
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<NotificationPage>> {
        let limit = page_limit(limit.0.map(i64::from)).map_err(bad_request)?;
        let filter = NotificationFilter {
            kind: kind.0,
            source: source.0,
            delivery_state: state.0.map(|state| state.as_str().to_string()),
            since: since.0.map(unix_ms),
            before_seq: cursor
                .0
                .as_deref()
                .map(|c| {
                    c.parse::<i64>()
                        .map_err(|_| bad_request(format!("cursor `{c}` is not one this API gave")))
                })
                .transpose()?,
            limit: limit + 1,
        };
        let mut rows = self
            .hub
            .store
            .list_notifications(&filter)
            .await
            .map_err(store_problem)?;
        let next_cursor = next_page(&mut rows, limit, |(seq, _)| seq.to_string());
        Ok(Json(NotificationPage {
            items: rows.into_iter().map(|(_, n)| notification_out(n)).collect(),
            next_cursor,
        }))
    }

    /// List dead letters: deliveries that ran out of retries or failed for good.
    #[oai(
        path = "/dead-letters",
        method = "get",
        tag = "Tag::DeadLetters",
        operation_id = "listDeadLetters"
    )]
    async fn list_dead_letters(
        &self,
        _token: ReadToken,
        /// Only this channel's.
        channel: Query<Option<String>>,
        /// At most this many (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
        #[oai(validator(pattern = r"^-?[0-9]{1,18}/[^/]+$"))]
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<DeadLetterPage>> {
        let limit = page_limit(limit.0.map(i64::from)).map_err(bad_request)?;
        let before = cursor
            .0
            .as_deref()
            .map(|c| {
                c.split_once('/')
                    .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string())))
                    .ok_or_else(|| bad_request(format!("cursor `{c}` is not one this API gave")))
            })
            .transpose()?;
        let filter = DeadLetterFilter {
            channel: channel.0,
            before,
            limit: limit + 1,
            ..DeadLetterFilter::default()
        };
        let mut rows = self
            .hub
            .store
            .list_dead_letters(&filter)
            .await
            .map_err(store_problem)?;
        let next_cursor = next_page(&mut rows, limit, |d| {
            format!("{}/{}", d.dead_at, d.delivery_id)
        });
        Ok(Json(DeadLetterPage {
            items: rows
                .into_iter()
                .map(|d| DeadLetterOut {
                    delivery_id: d.delivery_id,
                    notification_id: d.notification_id,
                    kind: d.kind,
                    channel: d.channel,
                    route: d.route,
                    attempts: d.attempts,
                    last_error: d.last_error,
                    dead_at: rfc3339(d.dead_at),
                })
                .collect(),
            next_cursor,
        }))
    }

    /// Replay a dead letter.
    ///
    /// It goes back to its channel's queue with a fresh retry schedule, keeping its
    /// notification id.
    #[oai(
        path = "/dead-letters/:delivery_id/replay",
        method = "post",
        tag = "Tag::DeadLetters",
        operation_id = "replayDeadLetter"
    )]
    async fn replay(
        &self,
        _token: AdminToken,
        delivery_id: Path<String>,
    ) -> ApiResult<Json<ReplayOut>> {
        let channel = self
            .hub
            .replay(&delivery_id.0)
            .await
            .map_err(|error| {
                tracing::error!(%error, "could not replay a dead letter");
                ProblemResponse::from(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the dead letter could not be put back on its queue; it stays a dead letter; retry",
                ))
            })?
            .ok_or_else(|| {
                not_found(format!(
                    "no dead letter has delivery id `{}`",
                    delivery_id.0
                ))
            })?;
        Ok(Json(ReplayOut {
            delivery_id: delivery_id.0,
            channel,
            state: DeliveryState::Pending,
        }))
    }

    /// Get the route table in force.
    #[oai(
        path = "/routes",
        method = "get",
        tag = "Tag::Routes",
        operation_id = "getRoutes"
    )]
    async fn get_routes(&self, _token: AdminToken) -> Json<RoutesOut> {
        Json(self.routes_out(&self.hub.routes.current()))
    }

    /// Check a routes file without applying it.
    ///
    /// The body is the YAML. A file with problems is answered 422, naming each.
    ///
    /// `${VAR}` references are checked by name only: an unset variable without a default
    /// is a problem, but the hub's environment values are neither read nor judged here
    /// (they are when the file is loaded), so the answer reveals none of them.
    #[oai(
        path = "/routes/validate",
        method = "post",
        tag = "Tag::Routes",
        operation_id = "validateRoutes"
    )]
    async fn validate_routes(
        &self,
        _token: AdminToken,
        body: PlainText<String>,
    ) -> ApiResult<Json<ValidationOut>> {
        // Without the environment's values: the answer must not reveal them.
        let table = RouteTable::check_submitted(
            &body.0,
            "request body",
            &|name| std::env::var_os(name).is_some(),
            &self.hub.plugins,
        )
        .map_err(routes_problem)?;
        Ok(Json(ValidationOut {
            valid: true,
            warnings: table.warnings().to_vec(),
        }))
    }

    /// Re-read the routes file now.
    ///
    /// A file with errors is refused with the reasons, and the table in force stays.
    #[oai(
        path = "/routes/reload",
        method = "post",
        tag = "Tag::Routes",
        operation_id = "reloadRoutes"
    )]
    async fn reload_routes(&self, _token: AdminToken) -> ApiResult<Json<RoutesOut>> {
        let table = self.hub.reload_routes().await.map_err(routes_problem)?;
        Ok(Json(self.routes_out(&table)))
    }

    /// List the plugins this hub has loaded.
    #[oai(
        path = "/plugins",
        method = "get",
        tag = "Tag::Plugins",
        operation_id = "listPlugins"
    )]
    async fn list_plugins(&self, _token: AdminToken) -> Json<Vec<PluginOut>> {
        let plugins = self.hub.plugins.loaded();
        Json(
            plugins
                .into_iter()
                .map(|plugin| PluginOut {
                    name: plugin.name().to_string(),
                    world: plugin.world().to_string(),
                    version: plugin.info().version.clone(),
                    description: plugin.info().description.clone(),
                    imports: plugin.manifest().host_functions.clone(),
                })
                .collect(),
        )
    }

    /// Create an API token.
    ///
    /// The answer is the only time the token is shown: the hub keeps only its digest.
    #[oai(
        path = "/tokens",
        method = "post",
        tag = "Tag::Tokens",
        operation_id = "createToken"
    )]
    async fn create_token(
        &self,
        _token: AdminToken,
        body: StrictJson<TokenIn>,
    ) -> ApiResult<Json<NewTokenOut>> {
        let name = body.0.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "name must be 1 to 100 characters",
            )
            .into());
        }
        let asked = body.0.scopes.unwrap_or_default();
        let scopes = Scopes::or_default(asked.into_iter().map(Scope::from));
        if let Some(tenant) = &body.0.tenant
            && !self
                .hub
                .tenancy
                .tenant_exists(tenant)
                .await
                .map_err(super::tenants::tenancy_problem)?
        {
            return Err(not_found("no tenant has the id given as `tenant`"));
        }
        let created = self
            .hub
            .tokens
            .create(name, scopes, body.0.tenant.as_deref())
            .await
            .map_err(store_problem)?;
        Ok(Json(NewTokenOut {
            id: created.id,
            name: created.name,
            scopes: scope_names(created.scopes),
            tenant: created.tenant,
            token: created.token,
        }))
    }

    /// List the active API tokens.
    ///
    /// Each with its scopes; never the token itself, which the hub does not keep.
    #[oai(
        path = "/tokens",
        method = "get",
        tag = "Tag::Tokens",
        operation_id = "listTokens"
    )]
    async fn list_tokens(&self, _token: AdminToken) -> Json<Vec<TokenOut>> {
        Json(
            self.hub
                .tokens
                .list()
                .into_iter()
                .map(|t| TokenOut {
                    id: t.id,
                    name: t.name,
                    scopes: scope_names(t.scopes),
                    tenant: t.tenant,
                    created_at: rfc3339(t.created_at),
                })
                .collect(),
        )
    }

    /// Revoke an API token.
    #[oai(
        path = "/tokens/:id",
        method = "delete",
        tag = "Tag::Tokens",
        operation_id = "revokeToken"
    )]
    async fn revoke_token(&self, _token: AdminToken, id: Path<String>) -> ApiResult<()> {
        if self.hub.tokens.revoke(&id.0).await.map_err(store_problem)? {
            Ok(())
        } else {
            Err(not_found(format!("no active token has id `{}`", id.0)))
        }
    }
}

impl Api {
    /// The shared path of every send endpoint: adapter, then accept. `endpoint` is the
    /// endpoint's path, which tells the adapter which shape of body it takes; `tenant` is
    /// whom the notifications are for, if anyone.
    pub(super) async fn accept<T>(
        &self,
        token: &TokenRecord,
        endpoint: &'static str,
        tenant: Option<&str>,
        body: RawJson<T>,
        idempotency_key: Option<String>,
    ) -> ApiResult<(Vec<AcceptedItem>, bool)> {
        let single = endpoint == SEND_PATH;
        let request_key = idempotency_key.map(|key| RequestKey {
            scope: format!(
                "request:{}:{}{}",
                token.id,
                if single { "send" } else { "batch" },
                tenant.map(|t| format!(":{t}")).unwrap_or_default()
            ),
            key,
            fingerprint: crypto::sha256_hex(&body.bytes),
        });
        let drafts = self.adapt(endpoint, body.bytes.to_vec()).await?;
        match self
            .hub
            .acceptor
            .accept(
                &crate::tenancy::source(REST_SOURCE, token.tenant.as_deref()),
                Some(&token.id),
                tenant,
                drafts,
                request_key,
            )
            .await
        {
            Ok(Accepted::Stored(items)) => Ok((items, false)),
            Ok(Accepted::Replayed(items)) => Ok((items, true)),
            Ok(Accepted::NotificationKeyReused { index }) => {
                let field = match single {
                    true => "idempotency_key".to_string(),
                    false => format!("notifications[{index}].idempotency_key"),
                };
                Err(notification_key_reused(field).into())
            }
            Ok(Accepted::KeyReused) => Err(Problem::new(
                StatusCode::CONFLICT,
                "this Idempotency-Key was already used with a different body; use a new key for a new request",
            )
            .code("idempotency-key-reused")
            .into()),
            Err(error) => Err(Problem::from(error).into()),
        }
    }

    /// Hands the body to the REST adapter plugin, with the endpoint's path; its rejection
    /// becomes the problem.
    async fn adapt(&self, endpoint: &str, body: Vec<u8>) -> ApiResult<Vec<runtime::Draft>> {
        let request = runtime::Request {
            transport: Transport::Http,
            method: "POST".into(),
            path: endpoint.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            query: String::new(),
            body,
        };
        super::adapt(&self.hub, REST_ADAPTER, &Arc::default(), request)
            .await
            .map_err(ProblemResponse::from)
    }

    fn routes_out(&self, table: &RouteTable) -> RoutesOut {
        RoutesOut {
            path: self.hub.routes.path().display().to_string(),
            text: table.text().to_string(),
            table: serde_json::to_value(table).unwrap_or_default(),
            warnings: table.warnings().to_vec(),
        }
    }
}

// ---- Conversions and errors -------------------------------------------------------------

fn notification_out(n: store::Notification) -> NotificationOut {
    NotificationOut {
        payload: serde_json::from_str(&n.payload).unwrap_or(serde_json::Value::String(n.payload)),
        id: n.id,
        kind: n.kind,
        source: n.source,
        attributes: n.attributes.into_iter().collect(),
        idempotency_key: n.idempotency_key,
        created_at: rfc3339(n.created_at),
        deliveries: None,
    }
}

pub(super) fn delivery_out(d: store::DeliveryDetail) -> DeliveryOut {
    DeliveryOut {
        id: d.id,
        channel: d.channel,
        route: d.route,
        state: DeliveryState::parse(&d.state),
        attempts: d.attempts,
        next_attempt_at: d.next_at.map(rfc3339),
        last_error: d.last_error,
        attempt_log: d
            .attempt_log
            .into_iter()
            .map(|a| AttemptOut {
                attempt: a.attempt,
                started_at: rfc3339(a.started_at),
                duration_ms: a.duration_ms,
                outcome: AttemptOutcome::parse(&a.outcome),
                status: a.status,
                detail: a.detail,
                transforms: a.transforms,
            })
            .collect(),
    }
}

/// 409 for a notification whose own idempotency key its sender already used for a different
/// notification; `field` names where the key was.
pub(super) fn notification_key_reused(field: String) -> Problem {
    let mut problem = Problem::new(
        StatusCode::CONFLICT,
        format!(
            "`{field}` was already used by this sender for a different notification (kind, \
             attributes or payload) within the idempotency window; nothing was accepted. Use a \
             new key for a new notification"
        ),
    )
    .code("idempotency-key-reused");
    problem.field = Some(field);
    problem
}

fn bad_request(detail: impl Into<String>) -> ProblemResponse {
    Problem::new(StatusCode::BAD_REQUEST, detail).into()
}

pub(super) fn not_found(detail: impl Into<String>) -> ProblemResponse {
    Problem::new(StatusCode::NOT_FOUND, detail).into()
}

pub(super) fn store_problem(error: store::Error) -> ProblemResponse {
    tracing::error!(%error, "store error");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the hub's store is unavailable; retry",
    )
    .into()
}

fn routes_problem(error: RoutesError) -> ProblemResponse {
    let problems: Vec<String> = error.to_string().lines().map(str::to_string).collect();
    let mut problem = Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!(
            "the routes are not valid ({} problem{}); the table in force is unchanged",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        ),
    )
    .code("invalid-routes");
    problem.problems = problems;
    problem.into()
}
