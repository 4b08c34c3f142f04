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
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme, Tags, auth::Bearer};

use super::listing::{next_page, page_limit, parse_time, rfc3339};
use super::problem::{Problem, ProblemResponse};
use super::raw_json::RawJson;
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
fn check_token(request: &Request, bearer: Bearer, scope: Scope) -> poem::Result<TokenRecord> {
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

/// A notification to send.
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct NotificationIn {
    /// What happened, as dotted words: `invoice.paid`, `incident.opened`. Routes match on it.
    kind: String,
    /// Flat string attributes routes can match on, such as `{"severity": "critical"}`.
    attributes: Option<BTreeMap<String, String>>,
    /// Any JSON: what the channels deliver.
    payload: Option<serde_json::Value>,
    /// Sending the same key again within the idempotency window creates nothing new and
    /// returns the first notification's id, marked `duplicate`. Keys are the API token's
    /// own: another token's same key is another notification. The same key with a different
    /// kind, attributes or payload is refused with 409 (`idempotency-key-reused`); in a
    /// batch that refuses the whole batch, and `field` names the notification.
    idempotency_key: Option<String>,
}

/// Several notifications to send at once (at most 1000).
#[derive(Object)]
#[oai(deny_unknown_fields)]
struct BatchIn {
    notifications: Vec<NotificationIn>,
}

/// A notification taken in: durable, and on its way to the router.
#[derive(Object)]
pub(super) struct AcceptedOut {
    /// The notification's id, stable across every attempt (it is the `webhook-id`).
    id: String,
    /// True when the notification's idempotency key was seen before: nothing new was
    /// created and `id` is the first notification's.
    duplicate: bool,
}

impl From<AcceptedItem> for AcceptedOut {
    fn from(item: AcceptedItem) -> Self {
        AcceptedOut {
            id: item.id,
            duplicate: item.duplicate,
        }
    }
}

#[derive(Object)]
struct BatchAcceptedOut {
    /// One entry per notification sent, in order.
    notifications: Vec<AcceptedOut>,
}

#[derive(ApiResponse)]
enum SendResponse {
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
enum BatchResponse {
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

/// One attempt to deliver.
#[derive(Object)]
struct AttemptOut {
    attempt: u32,
    /// When it started (RFC 3339).
    started_at: String,
    duration_ms: i64,
    /// delivered, retry, failed or error (the plugin call itself failed).
    outcome: String,
    /// The destination's HTTP status, when there was one.
    status: Option<u16>,
    detail: Option<String>,
}

/// A notification's delivery to one channel.
#[derive(Object)]
struct DeliveryOut {
    id: String,
    channel: String,
    /// The route that sent it there.
    route: String,
    /// pending, delivered or dead.
    state: String,
    attempts: u32,
    /// When the next attempt is due (RFC 3339), while pending.
    next_attempt_at: Option<String>,
    last_error: Option<String>,
    attempt_log: Vec<AttemptOut>,
}

/// A notification, with its deliveries when fetched by id.
#[derive(Object)]
struct NotificationOut {
    id: String,
    kind: String,
    /// Where it came from: `api` for the REST API, else the source's name.
    source: String,
    attributes: BTreeMap<String, String>,
    payload: serde_json::Value,
    idempotency_key: Option<String>,
    /// When it was accepted (RFC 3339).
    created_at: String,
    #[oai(skip_serializing_if_is_none)]
    deliveries: Option<Vec<DeliveryOut>>,
}

#[derive(Object)]
struct NotificationPage {
    items: Vec<NotificationOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[derive(Object)]
struct DeadLetterOut {
    delivery_id: String,
    notification_id: String,
    kind: String,
    channel: String,
    route: String,
    attempts: u32,
    last_error: Option<String>,
    /// When it ran out of retries (RFC 3339).
    dead_at: String,
}

#[derive(Object)]
struct DeadLetterPage {
    items: Vec<DeadLetterOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[derive(Object)]
struct ReplayOut {
    delivery_id: String,
    channel: String,
    /// Always `pending`: the delivery is back in its channel's queue.
    state: String,
}

/// The route table in force.
#[derive(Object)]
struct RoutesOut {
    /// The routes file.
    path: String,
    /// The YAML it was read from.
    text: String,
    /// The parsed table, secrets redacted.
    table: serde_json::Value,
    warnings: Vec<String>,
}

#[derive(Object)]
struct ValidationOut {
    valid: bool,
    warnings: Vec<String>,
}

#[derive(Object)]
struct PluginOut {
    name: String,
    /// adapter or channel.
    world: String,
    version: String,
    description: String,
    /// The host functions the plugin imports.
    imports: Vec<String>,
}

/// What a token may do.
#[derive(poem_openapi::Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
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

fn scope_names(scopes: Scopes) -> Vec<String> {
    scopes.iter().map(|s| s.as_str().to_string()).collect()
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
struct TokenIn {
    /// What the token is for, such as the name of the system that uses it.
    name: String,
    /// What it may do; several may be given. Default: `send` and `read`. `admin` is given
    /// only when asked for.
    scopes: Option<Vec<ScopeName>>,
}

#[derive(Object)]
struct TokenOut {
    id: String,
    name: String,
    /// What it may do: `send`, `read`, `admin`.
    scopes: Vec<String>,
    created_at: String,
}

#[derive(Object)]
struct NewTokenOut {
    id: String,
    name: String,
    /// What it may do: `send`, `read`, `admin`.
    scopes: Vec<String>,
    /// The token. It is shown only now: the hub keeps only its SHA-256 digest.
    token: String,
}

// ---- Endpoints ------------------------------------------------------------------------

#[OpenApi(prefix_path = "/api/v1")]
impl Api {
    /// Send one notification.
    ///
    /// The body goes to the `rest-json` adapter, which checks it. The answer comes only
    /// once the notification is durable.
    #[oai(path = "/notifications", method = "post", tag = "Tag::Notifications")]
    async fn send(
        &self,
        token: SendToken,
        body: RawJson<NotificationIn>,
        /// Repeat a request with the same key within the idempotency window (24 h by
        /// default) and you get the first answer; nothing new is created.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
    ) -> ApiResult<SendResponse> {
        let (mut items, replayed) = self
            .accept(&token.0, "send", body, idempotency_key.0, Some(1))
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
        tag = "Tag::Notifications"
    )]
    async fn send_batch(
        &self,
        token: SendToken,
        body: RawJson<BatchIn>,
        /// As for a single send: a repeat within the window gets the first answer.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
    ) -> ApiResult<BatchResponse> {
        let (items, replayed) = self
            .accept(&token.0, "batch", body, idempotency_key.0, None)
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
        tag = "Tag::Notifications"
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
    #[oai(path = "/notifications", method = "get", tag = "Tag::Notifications")]
    #[allow(clippy::too_many_arguments)] // poem-openapi takes each query parameter as one
    async fn list_notifications(
        &self,
        _token: ReadToken,
        /// Only this kind; a trailing `*` takes every kind with that prefix (`invoice.*`).
        kind: Query<Option<String>>,
        /// Only from this source (`api` for the REST API).
        source: Query<Option<String>>,
        /// Only notifications with a delivery in this state: pending, delivered or dead.
        state: Query<Option<String>>,
        /// Only notifications accepted at or after this time (RFC 3339).
        since: Query<Option<String>>,
        /// At most this many (1 to 500, default 50).
        limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<NotificationPage>> {
        if let Some(state) = &state.0
            && !matches!(state.as_str(), "pending" | "delivered" | "dead")
        {
            return Err(bad_request(format!(
                "state `{state}` is not one of pending, delivered, dead"
            )));
        }
        let limit = page_limit(limit.0.map(i64::from)).map_err(bad_request)?;
        let filter = NotificationFilter {
            kind: kind.0,
            source: source.0,
            delivery_state: state.0,
            since: since
                .0
                .as_deref()
                .map(parse_time)
                .transpose()
                .map_err(bad_request)?,
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
    #[oai(path = "/dead-letters", method = "get", tag = "Tag::DeadLetters")]
    async fn list_dead_letters(
        &self,
        _token: ReadToken,
        /// Only this channel's.
        channel: Query<Option<String>>,
        /// At most this many (1 to 500, default 50).
        limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
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

    /// Replay a dead letter: it goes back to its channel's queue with a fresh retry
    /// schedule, keeping its notification id.
    #[oai(
        path = "/dead-letters/:delivery_id/replay",
        method = "post",
        tag = "Tag::DeadLetters"
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
            state: "pending".into(),
        }))
    }

    /// Get the route table in force.
    #[oai(path = "/routes", method = "get", tag = "Tag::Routes")]
    async fn get_routes(&self, _token: AdminToken) -> Json<RoutesOut> {
        Json(self.routes_out(&self.hub.routes.current()))
    }

    /// Check a routes file without applying it. The body is the YAML.
    ///
    /// `${VAR}` references are checked by name only: an unset variable without a default
    /// is a problem, but the hub's environment values are neither read nor judged here
    /// (they are when the file is loaded), so the answer reveals none of them.
    #[oai(path = "/routes/validate", method = "post", tag = "Tag::Routes")]
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

    /// Re-read the routes file now. A file with errors is refused with the reasons, and
    /// the table in force stays.
    #[oai(path = "/routes/reload", method = "post", tag = "Tag::Routes")]
    async fn reload_routes(&self, _token: AdminToken) -> ApiResult<Json<RoutesOut>> {
        let table = self.hub.reload_routes().await.map_err(routes_problem)?;
        Ok(Json(self.routes_out(&table)))
    }

    /// List the plugins this hub has loaded.
    #[oai(path = "/plugins", method = "get", tag = "Tag::Plugins")]
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

    /// Create an API token. The answer is the only time the token is shown.
    #[oai(path = "/tokens", method = "post", tag = "Tag::Tokens")]
    async fn create_token(
        &self,
        _token: AdminToken,
        body: Json<TokenIn>,
    ) -> ApiResult<Json<NewTokenOut>> {
        let name = body.0.name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "name must be 1 to 100 characters",
            )
            .into());
        }
        let asked = body.0.scopes.unwrap_or_default();
        let scopes = Scopes::or_default(asked.into_iter().map(Scope::from));
        let created = self
            .hub
            .tokens
            .create(name, scopes)
            .await
            .map_err(store_problem)?;
        Ok(Json(NewTokenOut {
            id: created.id,
            name: created.name,
            scopes: scope_names(created.scopes),
            token: created.token,
        }))
    }

    /// List the active API tokens with their scopes (never the tokens themselves).
    #[oai(path = "/tokens", method = "get", tag = "Tag::Tokens")]
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
                    created_at: rfc3339(t.created_at),
                })
                .collect(),
        )
    }

    /// Revoke an API token.
    #[oai(path = "/tokens/:id", method = "delete", tag = "Tag::Tokens")]
    async fn revoke_token(&self, _token: AdminToken, id: Path<String>) -> ApiResult<()> {
        if self.hub.tokens.revoke(&id.0).await.map_err(store_problem)? {
            Ok(())
        } else {
            Err(not_found(format!("no active token has id `{}`", id.0)))
        }
    }
}

impl Api {
    /// The shared path of both send endpoints: adapter, then accept. `exactly` is the
    /// number of notifications the endpoint takes, when it takes a fixed number.
    async fn accept<T>(
        &self,
        token: &TokenRecord,
        endpoint: &str,
        body: RawJson<T>,
        idempotency_key: Option<String>,
        exactly: Option<usize>,
    ) -> ApiResult<(Vec<AcceptedItem>, bool)> {
        if let Some(key) = &idempotency_key
            && (key.is_empty() || key.len() > 255)
        {
            return Err(bad_request("Idempotency-Key must be 1 to 255 characters"));
        }
        let request_key = idempotency_key.map(|key| RequestKey {
            scope: format!("request:{}:{endpoint}", token.id),
            key,
            fingerprint: crypto::sha256_hex(&body.bytes),
        });
        let drafts = self.adapt(body.bytes.to_vec()).await?;
        if let Some(exactly) = exactly
            && drafts.len() != exactly
        {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "this endpoint takes one notification object; send several to /api/v1/notifications/batch",
            )
            .code("invalid-field")
            .into());
        }
        match self
            .hub
            .acceptor
            .accept(REST_SOURCE, Some(&token.id), drafts, request_key)
            .await
        {
            Ok(Accepted::Stored(items)) => Ok((items, false)),
            Ok(Accepted::Replayed(items)) => Ok((items, true)),
            Ok(Accepted::NotificationKeyReused { index }) => {
                let field = match exactly {
                    Some(_) => "idempotency_key".to_string(),
                    None => format!("notifications[{index}].idempotency_key"),
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

    /// Hands the body to the REST adapter plugin; its rejection becomes the problem.
    async fn adapt(&self, body: Vec<u8>) -> ApiResult<Vec<runtime::Draft>> {
        let request = runtime::Request {
            transport: Transport::Http,
            method: "POST".into(),
            path: "/api/v1/notifications".into(),
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

fn delivery_out(d: store::DeliveryDetail) -> DeliveryOut {
    DeliveryOut {
        id: d.id,
        channel: d.channel,
        route: d.route,
        state: d.state,
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
                outcome: a.outcome,
                status: a.status,
                detail: a.detail,
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

fn not_found(detail: impl Into<String>) -> ProblemResponse {
    Problem::new(StatusCode::NOT_FOUND, detail).into()
}

fn store_problem(error: store::Error) -> ProblemResponse {
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
