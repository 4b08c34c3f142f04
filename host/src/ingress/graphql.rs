//! The GraphQL front door at `/graphql`: queries over the hub's store, routes and plugins;
//! `sendNotification` and `sendNotifications` mutations that go through the `graphql`
//! adapter plugin like any other front door; and subscriptions to the live events over a
//! WebSocket.
//!
//! One path serves everything: `GET /graphql` is GraphiQL, or the subscription socket when
//! the request is a WebSocket upgrade (`graphql-transport-ws` or the older `graphql-ws`);
//! `POST /graphql` executes. `/graphql/ws` is the same socket for clients that want a path of
//! their own for it.
//!
//! Authentication is the REST API's: `Authorization: Bearer <token>`, refused with 401 before
//! the body is read. A browser cannot set headers on a WebSocket, so the socket takes the
//! token in its `connection_init` payload instead: it is closed with 4403 without one, and
//! with 4408 when no `connection_init` comes within 10 seconds. A socket whose token is
//! revoked is closed with 4403 as well.
//!
//! Scopes are the REST API's too, checked by a guard on each root field ([`Needs`]):
//! queries of notifications and dead letters and both subscriptions need `read`, `routes`
//! and `plugins` need `admin`, the mutations need `send`. A field refused is an error with
//! `code: insufficient-scope` and `status: 403` naming the scope.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::http::{GraphiQLSource, WebSocketProtocols, WsMessage};
use async_graphql::{
    BatchRequest, Context, Data, ErrorExtensions, InputObject, Object, Schema, ServerError,
    SimpleObject, Subscription, ValidationResult,
};
use async_graphql_poem::{GraphQLBatchRequest, GraphQLBatchResponse, GraphQLProtocol};
use futures::{SinkExt as _, Stream, StreamExt as _};
use poem::http::{Method, StatusCode, header};
use poem::web::Html;
use poem::web::websocket::{Message, WebSocket};
use poem::{Endpoint, FromRequest, IntoResponse, Request, Response, Route};
use serde_json::{Map, Value};
use tokio::sync::broadcast::error::RecvError;

use super::listing::{DeliveryState, next_page, page_limit, parse_time, rfc3339};
use super::{Problem, adapt, auth};
use crate::events::{Event, EventFilter, EventType};
use crate::pipeline::Hub;
use crate::routing::KindPattern;
use crate::runtime::{self, Transport};
use crate::store::{self, Accepted, DeadLetterFilter, NotificationFilter, Scope, TokenRecord};

/// The adapter plugin the mutation hands its variables to.
pub const GRAPHQL_ADAPTER: &str = "graphql";
/// The source name of notifications sent through GraphQL.
pub const GRAPHQL_SOURCE: &str = "graphql";

/// The deepest selection accepted. The hub's own types nest four levels at most
/// (notification, deliveries, attempt log, field); the rest of the room is for the
/// introspection query clients and GraphiQL send, whose type references nest about 15 deep.
pub const MAX_DEPTH: usize = 20;

/// The schema, with the hub as its data.
pub type GraphQlSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Builds the schema over `hub`, with the depth limit and `graphql.max_complexity`.
///
/// A query costs one point per field; a list page costs its `limit` times what one item
/// costs (see [`page_cost`]), and fields that read the store once per parent cost more (see
/// [`Notification::deliveries`]). The full introspection query clients send fits well
/// within the default. A batch's queries share one budget (see [`BatchCost`]).
pub fn schema(hub: Arc<Hub>) -> GraphQlSchema {
    let max_complexity = hub.config.graphql.max_complexity;
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(hub)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(max_complexity)
        .extension(ChargeBatchCost)
        .finish()
}

/// What a page of a listing costs: what one item costs, times the items it may hold (an
/// invalid `limit` is refused when the field runs, so it costs next to nothing here).
fn page_cost(limit: Option<i32>, child_complexity: usize) -> usize {
    let items = page_limit(limit.map(i64::from)).unwrap_or(1) as usize;
    1 + items.saturating_mul(child_complexity)
}

/// The cost a batch of queries may still spend. Every query is checked against
/// `graphql.max_complexity` alone by async-graphql; this makes the batch as a whole keep to
/// it too, so twenty cheap-looking queries cannot add up to one huge answer.
struct BatchCost {
    left: AtomicUsize,
    limit: usize,
}

impl BatchCost {
    /// Takes `cost` from what is left, or refuses the query that would cost it.
    fn charge(&self, cost: usize) -> Result<(), ServerError> {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(cost)
            })
            .map(drop)
            .map_err(|left| {
                let mut error = ServerError::new(
                    format!(
                        "this batch costs more than {} (graphql.max_complexity), counting \
                         every query in it: this query costs {cost} and {left} is left; send \
                         fewer queries, or smaller pages (a page costs its `limit` times \
                         what one item costs)",
                        self.limit
                    ),
                    None,
                );
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("code", "too-costly");
                error
            })
    }
}

/// Charges each query of a batch its cost, as validation computes it, to the batch's
/// [`BatchCost`] (found in the request's data; a request outside a batch has none).
struct ChargeBatchCost;

impl ExtensionFactory for ChargeBatchCost {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ChargeBatchCost)
    }
}

// `Extension` is declared with `#[async_trait]`; this is the signature that macro expands
// to, written out so the hub needs no macro crate for one method.
impl Extension for ChargeBatchCost {
    fn validation<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        ctx: &'life1 ExtensionContext<'life2>,
        next: NextValidation<'life3>,
    ) -> Pin<
        Box<dyn Future<Output = Result<ValidationResult, Vec<ServerError>>> + Send + 'async_trait>,
    >
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let result = next.run(ctx).await?;
            if let Some(batch) = ctx.data_opt::<Arc<BatchCost>>() {
                batch
                    .charge(result.complexity)
                    .map_err(|error| vec![error])?;
            }
            Ok(result)
        })
    }
}

/// The endpoints under `/graphql`, to be nested there.
pub fn routes(hub: Arc<Hub>) -> Route {
    let front = Arc::new(FrontDoor {
        schema: schema(hub.clone()),
        hub,
    });
    Route::new()
        .at("/", FrontDoorEndpoint(front.clone()))
        .at("/ws", FrontDoorEndpoint(front))
}

// ---- Scopes ---------------------------------------------------------------------------

/// A root field's scope check. The front door puts the caller's token in the request's
/// data; a request without one (the schema run some other way) is refused.
pub struct Needs(pub Scope);

impl async_graphql::Guard for Needs {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let token = ctx
            .data_opt::<TokenRecord>()
            .ok_or_else(|| coded("this request carries no API token", "unauthenticated"))?;
        auth::require(token, self.0).map_err(problem_error)
    }
}

// ---- Queries --------------------------------------------------------------------------

pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// Notifications, newest first, as `GET /api/v1/notifications` lists them.
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    #[graphql(
        guard = "Needs(Scope::Read)",
        complexity = "page_cost(limit, child_complexity)"
    )]
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this kind; a trailing `*` takes every kind with that prefix.")]
        kind: Option<String>,
        #[graphql(desc = "Only from this source (`api`, `graphql`, or a webhook source).")]
        source: Option<String>,
        #[graphql(desc = "Only notifications with a delivery in this state.")] state: Option<
            DeliveryState,
        >,
        #[graphql(desc = "Only notifications accepted at or after this time (RFC 3339).")]
        since: Option<String>,
        #[graphql(desc = "At most this many, 1 to 500 (default 50).")] limit: Option<i32>,
        #[graphql(desc = "The `nextCursor` of the previous page.")] cursor: Option<String>,
    ) -> async_graphql::Result<NotificationPage> {
        let limit = page_limit(limit.map(i64::from)).map_err(invalid_field)?;
        let filter = NotificationFilter {
            kind,
            source,
            delivery_state: state.map(|s| s.as_str().to_string()),
            since: since
                .as_deref()
                .map(parse_time)
                .transpose()
                .map_err(invalid_field)?,
            before_seq: cursor
                .as_deref()
                .map(|c| c.parse::<i64>().map_err(|_| bad_cursor(c)))
                .transpose()?,
            limit: limit + 1,
        };
        let mut rows = hub(ctx)
            .store
            .list_notifications(&filter)
            .await
            .map_err(store_error)?;
        // One more than asked for tells whether there is a next page.
        let next_cursor = next_page(&mut rows, limit, |(seq, _)| seq.to_string());
        Ok(NotificationPage {
            items: rows.into_iter().map(|(_, n)| n.into()).collect(),
            next_cursor,
        })
    }

    /// One notification by id, or null when there is none.
    #[graphql(guard = "Needs(Scope::Read)")]
    async fn notification(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> async_graphql::Result<Option<Notification>> {
        let found = hub(ctx)
            .store
            .notification(&id)
            .await
            .map_err(store_error)?;
        Ok(found.map(Notification::from))
    }

    /// Deliveries that ran out of retries or failed for good, newest first.
    #[graphql(
        guard = "Needs(Scope::Read)",
        complexity = "page_cost(limit, child_complexity)"
    )]
    async fn dead_letters(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this channel's.")] channel: Option<String>,
        #[graphql(desc = "At most this many, 1 to 500 (default 50).")] limit: Option<i32>,
        #[graphql(desc = "The `nextCursor` of the previous page.")] cursor: Option<String>,
    ) -> async_graphql::Result<DeadLetterPage> {
        let limit = page_limit(limit.map(i64::from)).map_err(invalid_field)?;
        // The cursor is the last item's time and id, the order the store lists them in.
        let before = cursor
            .as_deref()
            .map(|c| {
                c.split_once('/')
                    .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string())))
                    .ok_or_else(|| bad_cursor(c))
            })
            .transpose()?;
        let filter = DeadLetterFilter {
            channel,
            before,
            limit: limit + 1,
            ..DeadLetterFilter::default()
        };
        let mut rows = hub(ctx)
            .store
            .list_dead_letters(&filter)
            .await
            .map_err(store_error)?;
        let next_cursor = next_page(&mut rows, limit, |d| {
            format!("{}/{}", d.dead_at, d.delivery_id)
        });
        Ok(DeadLetterPage {
            items: rows.into_iter().map(DeadLetter::from).collect(),
            next_cursor,
        })
    }

    /// The route table in force.
    #[graphql(guard = "Needs(Scope::Admin)")]
    async fn routes(&self, ctx: &Context<'_>) -> Routes {
        let hub = hub(ctx);
        let table = hub.routes.current();
        Routes {
            path: hub.routes.path().display().to_string(),
            text: table.text().to_string(),
            warnings: table.warnings().to_vec(),
            channels: table.channels().map(|(name, _)| name.to_string()).collect(),
            sources: table.sources().map(|(name, _)| name.to_string()).collect(),
            routes: table
                .routes()
                .iter()
                .map(|route| RouteEntry {
                    name: route.name.to_string(),
                    to: route.to.iter().map(|c| c.to_string()).collect(),
                })
                .collect(),
        }
    }

    /// The plugins this hub has loaded.
    #[graphql(guard = "Needs(Scope::Admin)")]
    async fn plugins(&self, ctx: &Context<'_>) -> Vec<Plugin> {
        hub(ctx)
            .plugins
            .loaded()
            .into_iter()
            .map(|plugin| Plugin {
                name: plugin.name().to_string(),
                world: plugin.world().to_string(),
                version: plugin.info().version.clone(),
                description: plugin.info().description.clone(),
                imports: plugin.manifest().host_functions.clone(),
            })
            .collect()
    }
}

#[derive(SimpleObject)]
pub struct NotificationPage {
    items: Vec<Notification>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// A notification.
pub struct Notification {
    inner: store::Notification,
}

impl From<store::Notification> for Notification {
    fn from(inner: store::Notification) -> Self {
        Notification { inner }
    }
}

#[Object]
impl Notification {
    async fn id(&self) -> &str {
        &self.inner.id
    }

    /// What happened, as dotted words (`invoice.paid`).
    async fn kind(&self) -> &str {
        &self.inner.kind
    }

    /// Where it came from: `api`, `graphql`, or a webhook source's name.
    async fn source(&self) -> &str {
        &self.inner.source
    }

    /// Flat string attributes, as a JSON object.
    async fn attributes(&self) -> async_graphql::Json<Map<String, Value>> {
        async_graphql::Json(
            self.inner
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }

    /// Any JSON: what the channels deliver.
    async fn payload(&self) -> async_graphql::Json<Value> {
        async_graphql::Json(
            serde_json::from_str(&self.inner.payload)
                .unwrap_or_else(|_| Value::String(self.inner.payload.clone())),
        )
    }

    async fn idempotency_key(&self) -> Option<&str> {
        self.inner.idempotency_key.as_deref()
    }

    /// When it was accepted (RFC 3339).
    async fn created_at(&self) -> String {
        rfc3339(self.inner.created_at)
    }

    /// Its deliveries, one per channel a route sent it to, with every attempt. Each
    /// notification's deliveries are a read of the store, so the field costs more.
    #[graphql(complexity = "10 + child_complexity")]
    async fn deliveries(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Delivery>> {
        let deliveries = hub(ctx)
            .store
            .deliveries_of(&self.inner.id)
            .await
            .map_err(store_error)?;
        Ok(deliveries.into_iter().map(Delivery::from).collect())
    }
}

/// A notification's delivery to one channel.
#[derive(SimpleObject)]
pub struct Delivery {
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
    attempt_log: Vec<Attempt>,
}

impl From<store::DeliveryDetail> for Delivery {
    fn from(d: store::DeliveryDetail) -> Self {
        Delivery {
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
                .map(|a| Attempt {
                    attempt: a.attempt,
                    started_at: rfc3339(a.started_at),
                    duration_ms: a.duration_ms,
                    outcome: a.outcome,
                    status: a.status,
                    detail: a.detail,
                    transforms: a.transforms,
                })
                .collect(),
        }
    }
}

/// One attempt to deliver.
#[derive(SimpleObject)]
pub struct Attempt {
    attempt: u32,
    /// When it started (RFC 3339).
    started_at: String,
    duration_ms: i64,
    /// delivered, retry, failed, error (the plugin call itself failed, or a transform
    /// did) or dropped (a transform filtered the notification out).
    outcome: String,
    /// The destination's HTTP status, when there was one.
    status: Option<u16>,
    detail: Option<String>,
    /// The transforms that ran before the channel, in order; empty when none did.
    transforms: Vec<String>,
}

#[derive(SimpleObject)]
pub struct DeadLetterPage {
    items: Vec<DeadLetter>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// A delivery that ran out of retries or failed for good.
#[derive(SimpleObject)]
pub struct DeadLetter {
    delivery_id: String,
    notification_id: String,
    kind: String,
    channel: String,
    route: String,
    attempts: u32,
    last_error: Option<String>,
    /// When it died (RFC 3339).
    dead_at: String,
}

impl From<store::DeadLetter> for DeadLetter {
    fn from(d: store::DeadLetter) -> Self {
        DeadLetter {
            delivery_id: d.delivery_id,
            notification_id: d.notification_id,
            kind: d.kind,
            channel: d.channel,
            route: d.route,
            attempts: d.attempts,
            last_error: d.last_error,
            dead_at: rfc3339(d.dead_at),
        }
    }
}

/// The route table in force.
#[derive(SimpleObject)]
pub struct Routes {
    /// The routes file.
    path: String,
    /// The YAML it was read from.
    text: String,
    warnings: Vec<String>,
    /// The channels it defines, by name.
    channels: Vec<String>,
    /// The inbound webhook sources it defines, by name.
    sources: Vec<String>,
    /// The routes, in order.
    routes: Vec<RouteEntry>,
}

#[derive(SimpleObject)]
pub struct RouteEntry {
    name: String,
    /// The channels it sends to.
    to: Vec<String>,
}

#[derive(SimpleObject)]
pub struct Plugin {
    name: String,
    /// adapter or channel.
    world: String,
    version: String,
    description: String,
    /// The host functions it imports.
    imports: Vec<String>,
}

// ---- Mutation ---------------------------------------------------------------------------

pub struct MutationRoot;

/// A notification to send: the REST API's fields.
#[derive(InputObject)]
pub struct NotificationInput {
    /// What happened, as dotted words: `invoice.paid`. Routes match on it.
    kind: String,
    /// Flat string attributes routes can match on, as a JSON object.
    attributes: Option<async_graphql::Json<Value>>,
    /// Any JSON: what the channels deliver.
    payload: Option<async_graphql::Json<Value>>,
    /// Sending the same key again within the idempotency window creates nothing new and
    /// returns the first notification's id, marked `duplicate`.
    idempotency_key: Option<String>,
}

impl NotificationInput {
    /// The object the adapter reads, with the REST API's field names. The GraphQL types
    /// check only the shape; the adapter checks the rest (the kind's syntax, attributes
    /// that are not strings) and names the field at fault.
    fn to_adapter_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("kind".into(), Value::String(self.kind.clone()));
        if let Some(attributes) = &self.attributes {
            object.insert("attributes".into(), attributes.0.clone());
        }
        if let Some(payload) = &self.payload {
            object.insert("payload".into(), payload.0.clone());
        }
        if let Some(key) = &self.idempotency_key {
            object.insert("idempotency_key".into(), Value::String(key.clone()));
        }
        Value::Object(object)
    }
}

/// A notification taken in: durable, and on its way to the router.
#[derive(SimpleObject)]
pub struct AcceptedNotification {
    /// Its id, stable across every attempt (it is the `webhook-id`).
    id: String,
    /// True when its idempotency key was seen before: nothing new was created and `id` is
    /// the first notification's.
    duplicate: bool,
}

#[Object]
impl MutationRoot {
    /// Send one notification. It goes through the `graphql` adapter plugin and returns
    /// once it is durable. A rejection is an error whose `extensions` carry the adapter's
    /// `code`, the `field` at fault and the HTTP `status` the REST API would give.
    #[graphql(guard = "Needs(Scope::Send)")]
    async fn send_notification(
        &self,
        ctx: &Context<'_>,
        input: NotificationInput,
    ) -> async_graphql::Result<AcceptedNotification> {
        let variables = Value::Object(Map::from_iter([("input".into(), input.to_adapter_json())]));
        let mut accepted = send(ctx, variables, |_| "input.idempotencyKey".into()).await?;
        // The adapter makes exactly one draft of `input`; anything else is its bug.
        match (accepted.pop(), accepted.is_empty()) {
            (Some(item), true) => Ok(item),
            _ => Err(internal_error(
                "the graphql adapter did not make exactly one notification of `input`",
            )),
        }
    }

    /// Send several notifications at once (at most 1000), all or nothing.
    #[graphql(guard = "Needs(Scope::Send)")]
    async fn send_notifications(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<NotificationInput>,
    ) -> async_graphql::Result<Vec<AcceptedNotification>> {
        let inputs = inputs.iter().map(NotificationInput::to_adapter_json);
        let variables = Value::Object(Map::from_iter([(
            "inputs".into(),
            Value::Array(inputs.collect()),
        )]));
        send(ctx, variables, |index| {
            format!("inputs[{index}].idempotencyKey")
        })
        .await
    }
}

/// The mutation's path: the adapter, then accept, as the caller's token. `key_field` names
/// the idempotency key of the `index`th notification, for a key reused.
async fn send(
    ctx: &Context<'_>,
    variables: Value,
    key_field: fn(usize) -> String,
) -> async_graphql::Result<Vec<AcceptedNotification>> {
    let hub = hub(ctx);
    let token = ctx.data::<TokenRecord>()?;
    let request = runtime::Request {
        transport: Transport::Graphql,
        // What the contract says a GraphQL request carries.
        method: "MUTATION".into(),
        path: "/graphql".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        query: String::new(),
        body: variables.to_string().into_bytes(),
    };
    let grants = Arc::new(runtime::Grants::default());
    let drafts = adapt(hub, GRAPHQL_ADAPTER, &grants, request)
        .await
        .map_err(problem_error)?;
    match hub
        .acceptor
        .accept(GRAPHQL_SOURCE, Some(&token.id), drafts, None)
        .await
    {
        Ok(Accepted::Stored(items)) => Ok(items
            .into_iter()
            .map(|item| AcceptedNotification {
                id: item.id,
                duplicate: item.duplicate,
            })
            .collect()),
        Ok(Accepted::NotificationKeyReused { index }) => Err(problem_error(
            super::rest::notification_key_reused(key_field(index)),
        )),
        Ok(Accepted::Replayed(_) | Accepted::KeyReused) => {
            unreachable!("the mutation is accepted without a request key")
        }
        Err(error) => Err(coded(error.to_string(), "unavailable")),
    }
}

// ---- Subscriptions ----------------------------------------------------------------------

pub struct SubscriptionRoot;

/// A notification was accepted (it is durable).
#[derive(SimpleObject)]
pub struct NotificationEvent {
    id: String,
    kind: String,
    source: String,
    /// Flat string attributes, as a JSON object.
    attributes: async_graphql::Json<Map<String, Value>>,
    /// When it was accepted (RFC 3339).
    created_at: String,
}

/// A delivery attempt ended.
#[derive(SimpleObject)]
pub struct DeliveryEvent {
    delivery_id: String,
    notification_id: String,
    kind: String,
    channel: String,
    attempt: u32,
    /// delivered, retry, failed or error.
    outcome: String,
    /// The destination's HTTP status, when there was one.
    status: Option<u16>,
    /// What happens next: done, retry or dead.
    next: String,
}

#[Subscription]
impl SubscriptionRoot {
    /// Notifications as they are accepted, from now on. A subscriber that falls too far
    /// behind gets an error (code `lagged`) and the subscription ends: subscribe again and
    /// catch up with the `notifications` query.
    #[graphql(guard = "Needs(Scope::Read)")]
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only kinds matching this glob, such as `invoice.*`.")] kind: Option<
            String,
        >,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<NotificationEvent>> + use<>>
    {
        let filter = EventFilter {
            kind: kind_pattern(kind)?,
            channel: None,
            only: Some(EventType::Notifications),
        };
        Ok(events(hub(ctx), filter, |event| match event {
            Event::NotificationAccepted {
                id,
                kind,
                source,
                attributes,
                created_at,
            } => Some(NotificationEvent {
                id: id.clone(),
                kind: kind.clone(),
                source: source.clone(),
                attributes: async_graphql::Json(
                    attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                ),
                created_at: rfc3339(*created_at),
            }),
            Event::DeliveryAttempted { .. } => None,
        }))
    }

    /// Delivery attempts as they end, from now on; lagging ends it as for `notifications`.
    #[graphql(guard = "Needs(Scope::Read)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only kinds matching this glob, such as `invoice.*`.")] kind: Option<
            String,
        >,
        #[graphql(desc = "Only this channel's deliveries.")] channel: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<DeliveryEvent>> + use<>>
    {
        let filter = EventFilter {
            kind: kind_pattern(kind)?,
            channel,
            only: Some(EventType::Deliveries),
        };
        Ok(events(hub(ctx), filter, |event| match event {
            Event::DeliveryAttempted {
                delivery_id,
                notification_id,
                kind,
                channel,
                attempt,
                outcome,
                status,
                next,
            } => Some(DeliveryEvent {
                delivery_id: delivery_id.clone(),
                notification_id: notification_id.clone(),
                kind: kind.clone(),
                channel: channel.clone(),
                attempt: *attempt,
                outcome: outcome.clone(),
                status: *status,
                next: next.clone(),
            }),
            Event::NotificationAccepted { .. } => None,
        }))
    }
}

fn kind_pattern(kind: Option<String>) -> async_graphql::Result<Option<KindPattern>> {
    kind.map(|glob| {
        KindPattern::new(&glob).map_err(|why| {
            coded(
                format!("kind `{glob}` is not a valid glob: {why}"),
                "invalid-field",
            )
        })
    })
    .transpose()
}

/// The hub's events that pass `filter`, as `convert` makes them. The receiver is taken
/// now, when the subscription starts, so nothing published after that is missed unless the
/// subscriber lags; then the stream ends with an error rather than skipping silently.
fn events<T: Send + 'static>(
    hub: &Hub,
    filter: EventFilter,
    convert: fn(&Event) -> Option<T>,
) -> impl Stream<Item = async_graphql::Result<T>> + use<T> {
    let receiver = hub.events.subscribe();
    futures::stream::unfold(Some((receiver, filter)), move |state| async move {
        let (mut receiver, filter) = state?;
        loop {
            match receiver.recv().await {
                Ok(event) => {
                    if filter.matches(&event)
                        && let Some(item) = convert(&event)
                    {
                        return Some((Ok(item), Some((receiver, filter))));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let error = coded(
                        format!(
                            "this subscriber fell behind and missed {missed} events; \
                             subscribe again and catch up with the notifications query"
                        ),
                        "lagged",
                    );
                    return Some((Err(error), None));
                }
                // The hub is shutting down.
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

// ---- HTTP and WebSocket -----------------------------------------------------------------

struct FrontDoor {
    schema: GraphQlSchema,
    hub: Arc<Hub>,
}

/// `GET` is GraphiQL or the subscription socket, `POST` executes.
struct FrontDoorEndpoint(Arc<FrontDoor>);

impl Endpoint for FrontDoorEndpoint {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let front = &self.0;
        let upgrade = request
            .header(header::UPGRADE)
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        if request.method() == Method::POST {
            front.execute(request).await
        } else if request.method() != Method::GET {
            Err(poem::Error::from_status(StatusCode::METHOD_NOT_ALLOWED))
        } else if upgrade {
            front.socket(request).await
        } else {
            Ok(graphiql(request.original_uri().path()))
        }
    }
}

/// GraphiQL, pointed at the path it was served from. It has no data of its own; queries
/// from it need a token (its headers editor; the socket's `connection_init` payload).
fn graphiql(path: &str) -> Response {
    let path = path.trim_end_matches("/ws");
    Html(
        GraphiQLSource::build()
            .endpoint(path)
            .subscription_endpoint(path)
            .title("Switchyard GraphQL")
            .finish(),
    )
    .into_response()
}

/// Close code for a socket whose `connection_init` carried no valid token: the
/// graphql-transport-ws protocol's "Forbidden".
const FORBIDDEN: u16 = 4403;

/// How long a socket may take to send `connection_init`, and the graphql-transport-ws close
/// code for one that took longer.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
const INIT_TIMED_OUT: u16 = 4408;

/// The message the socket is refused with; it is also how the refusal is recognised on
/// its way out (see [`FrontDoor::socket`]). A close reason may be at most 123 bytes.
const SOCKET_REFUSED: &str = "Forbidden: connection_init needs {\"Authorization\": \"Bearer <token>\"} or {\"token\": \"<token>\"}";
const _: () = assert!(SOCKET_REFUSED.len() <= 123);

impl FrontDoor {
    /// Runs a query or mutation (or a batch of them) for a caller with a valid token.
    async fn execute(&self, request: Request) -> poem::Result<Response> {
        let token = request
            .header(header::AUTHORIZATION)
            .and_then(|value| value.strip_prefix("Bearer "))
            .and_then(|t| self.hub.tokens.verify(t.trim()));
        let Some(token) = token else {
            return Err(poem::Error::from_string(
                "the API token is missing or not valid: send Authorization: Bearer <token>",
                StatusCode::UNAUTHORIZED,
            ));
        };
        let (request, mut body) = request.split();
        let batch = GraphQLBatchRequest::from_request(&request, &mut body).await?;
        // The fields' guards check its scopes ([`Needs`]).
        let batch = batch.0.data(token);
        let limits = &self.hub.config.graphql;
        let batch = match batch {
            BatchRequest::Batch(queries) if queries.len() > limits.max_batch => {
                return Ok(batch_too_large(queries.len(), limits.max_batch));
            }
            BatchRequest::Batch(queries) => {
                let cost = Arc::new(BatchCost {
                    left: AtomicUsize::new(limits.max_complexity),
                    limit: limits.max_complexity,
                });
                BatchRequest::Batch(queries.into_iter().map(|q| q.data(cost.clone())).collect())
            }
            single => single,
        };
        Ok(GraphQLBatchResponse(self.schema.execute_batch(batch).await).into_response())
    }

    /// The subscription socket. The upgrade needs no token; the `connection_init`
    /// message must carry one, else the socket is closed with 4403.
    async fn socket(&self, request: Request) -> poem::Result<Response> {
        let (request, mut body) = request.split();
        let websocket = WebSocket::from_request(&request, &mut body).await?;
        let protocol = GraphQLProtocol::from_request(&request, &mut body).await?;
        let schema = self.schema.clone();
        let hub = self.hub.clone();
        let tokens = self.hub.tokens.clone();
        // The token `connection_init` carried, once it has come: the socket closes when it
        // is revoked.
        let signed_in = Arc::new(std::sync::OnceLock::<String>::new());
        let signed_in_by_init = signed_in.clone();
        let response = websocket
            .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
            .on_upgrade(move |socket| async move {
                let (mut sink, source) = socket.split();
                // Text and binary frames are the protocol's messages; poem answers pings.
                let incoming = source
                    .take_while(|frame| futures::future::ready(frame.is_ok()))
                    .filter_map(|frame| {
                        futures::future::ready(match frame {
                            Ok(frame) if frame.is_text() || frame.is_binary() => {
                                Some(frame.into_bytes())
                            }
                            _ => None,
                        })
                    });
                let outgoing = async_graphql::http::WebSocket::new(schema, incoming, protocol.0)
                    .on_connection_init(move |payload| async move {
                        let token = authenticate_socket(&hub, &payload)
                            .ok_or_else(|| async_graphql::Error::new(SOCKET_REFUSED))?;
                        let _ = signed_in_by_init.set(token.id.clone());
                        let mut data = Data::default();
                        data.insert(token);
                        Ok(data)
                    });
                futures::pin_mut!(outgoing);
                // The first message out answers `connection_init`. async-graphql waits
                // for that message for ever; an unauthenticated socket is not to be kept
                // open that long.
                let first = match tokio::time::timeout(INIT_TIMEOUT, outgoing.next()).await {
                    Ok(Some(first)) => first,
                    // The client went away.
                    Ok(None) => return,
                    Err(_) => {
                        let reason = "Connection initialisation timeout";
                        let _ = sink.send(Message::close_with(INIT_TIMED_OUT, reason)).await;
                        return;
                    }
                };
                let rest = futures::stream::once(async { first }).chain(outgoing);
                futures::pin_mut!(rest);
                // `connection_init` has been answered, so the token is known if it was valid.
                let token_id = signed_in.get().cloned();
                let revoked = async {
                    match token_id {
                        Some(id) => tokens.revoked(&id).await,
                        None => std::future::pending().await,
                    }
                };
                futures::pin_mut!(revoked);
                loop {
                    let message = tokio::select! {
                        message = rest.next() => match message {
                            Some(message) => message,
                            None => break,
                        },
                        () = &mut revoked => {
                            let reason = "Forbidden: the API token was revoked";
                            let _ = sink.send(Message::close_with(FORBIDDEN, reason)).await;
                            break;
                        }
                    };
                    let frame = match message {
                        WsMessage::Text(text) => Message::text(text),
                        // async-graphql closes a refused graphql-transport-ws socket
                        // with 1002; the protocol's code for it is 4403.
                        WsMessage::Close(_, reason)
                            if reason == SOCKET_REFUSED
                                && protocol.0 == WebSocketProtocols::GraphQLWS =>
                        {
                            Message::close_with(FORBIDDEN, reason)
                        }
                        WsMessage::Close(code, reason) => Message::close_with(code, reason),
                    };
                    if sink.send(frame).await.is_err() {
                        break;
                    }
                }
            })
            .into_response();
        Ok(response)
    }
}

/// The valid token the `connection_init` payload carries, as
/// `{"Authorization": "Bearer <token>"}` (any case of the key) or `{"token": "<token>"}`.
fn authenticate_socket(hub: &Hub, payload: &Value) -> Option<TokenRecord> {
    let object = payload.as_object()?;
    let from_header = object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.as_str()?.strip_prefix("Bearer "));
    let token = from_header.or_else(|| object.get("token")?.as_str())?;
    hub.tokens.verify(token.trim())
}

/// The answer to a batch with too many queries: a 400 with a GraphQL error, before any of
/// them runs.
fn batch_too_large(count: usize, max_batch: usize) -> Response {
    let mut error = ServerError::new(
        format!(
            "a batch may hold at most {max_batch} queries (graphql.max_batch); this one holds \
             {count}: send them in smaller batches"
        ),
        None,
    );
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", "batch-too-large");
    let answer = async_graphql::Response::from_errors(vec![error]);
    (StatusCode::BAD_REQUEST, poem::web::Json(answer)).into_response()
}

// ---- Helpers ----------------------------------------------------------------------------

fn hub<'a>(ctx: &Context<'a>) -> &'a Hub {
    ctx.data_unchecked::<Arc<Hub>>()
}

/// An error with a machine-readable `code` in its extensions.
fn coded(message: impl Into<String>, code: &'static str) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

/// A problem the REST API would answer with, as a GraphQL error: its detail is the
/// message; its code, field and HTTP status go in the extensions.
fn problem_error(problem: Problem) -> async_graphql::Error {
    async_graphql::Error::new(problem.detail).extend_with(|_, e| {
        if let Some(code) = problem.code {
            e.set("code", code);
        }
        if let Some(field) = problem.field {
            e.set("field", field);
        }
        e.set("status", problem.status);
    })
}

fn internal_error(detail: impl std::fmt::Display) -> async_graphql::Error {
    tracing::error!("{detail}");
    coded(
        "the hub failed to handle this request; the details are in its log",
        "internal",
    )
}

fn store_error(error: store::Error) -> async_graphql::Error {
    tracing::error!(%error, "store error");
    coded("the hub's store is unavailable; retry", "unavailable")
}

/// A wrong argument, with the message the shared listing helpers give.
fn invalid_field(message: String) -> async_graphql::Error {
    coded(message, "invalid-field")
}

fn bad_cursor(cursor: &str) -> async_graphql::Error {
    coded(
        format!("cursor `{cursor}` is not one this API gave"),
        "invalid-field",
    )
}
