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
//! Scopes are the REST API's too, checked on each root field: queries of notifications and
//! dead letters and both subscriptions need `read`, `routes` and `plugins` need `admin`,
//! the send mutations need `send`. A field refused is an error with
//! `code: insufficient-scope` and `status: 403` naming the scope.
//!
//! Tenants and their endpoints follow `/api/v1/tenants`: reading them needs `read`,
//! changing endpoints `admin`, sending for a tenant `send`. A token confined to a tenant
//! reaches that tenant's fields only (the `tenant` argument names it), and is refused the
//! same way on another tenant's whether or not it exists, so ids cannot be probed; listing,
//! creating, renaming and deleting tenants, and everything else here, is the operator's.
//! Such a token is refused on the subscription socket too.

use std::collections::BTreeMap;
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
use crate::routing::{KindPattern, endpoints};
use crate::runtime::{self, Transport};
use crate::store::{
    self, Accepted, DeadLetterFilter, EndpointRow, NotificationFilter, Page, Scope, TokenRecord,
};
use crate::tenancy::{self, Actor, EndpointDraft, TenancyError};

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
        auth::require(caller(ctx)?, self.0).map_err(problem_error)
    }
}

/// The caller's token, which the front door puts in the request's data.
fn caller<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a TokenRecord> {
    ctx.data_opt::<TokenRecord>()
        .ok_or_else(|| coded("this request carries no API token", "unauthenticated"))
}

/// The caller's token if it may do what needs `scope` to tenant `tenant`'s own things: an
/// operator's token, or that tenant's. Another tenant's token is refused the same way
/// whether or not `tenant` exists.
fn for_tenant<'a>(
    ctx: &Context<'a>,
    scope: Scope,
    tenant: &str,
) -> async_graphql::Result<&'a TokenRecord> {
    let token = caller(ctx)?;
    auth::require_for_tenant(token, scope, tenant).map_err(problem_error)?;
    Ok(token)
}

/// Who is acting: a tenant's token may only give endpoints URLs.
fn actor(token: &TokenRecord) -> Actor {
    if token.tenant.is_some() {
        Actor::Tenant
    } else {
        Actor::Operator
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
        #[graphql(
            desc = "Only from this source (`api`, `graphql`, `tenant:api` or `tenant:graphql` for a tenant's own token, `switchyard`, or a webhook source)."
        )]
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

    /// Tenants, by id. The operator's only.
    #[graphql(
        guard = "Needs(Scope::Read)",
        complexity = "page_cost(limit, child_complexity)"
    )]
    async fn tenants(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many, 1 to 500 (default 50).")] limit: Option<i32>,
        #[graphql(desc = "The `nextCursor` of the previous page.")] cursor: Option<String>,
    ) -> async_graphql::Result<TenantPage> {
        let (page, limit) = page(limit, cursor)?;
        let mut rows = hub(ctx)
            .tenancy
            .tenants(&page)
            .await
            .map_err(tenancy_error)?;
        let next_cursor = next_page(&mut rows, limit, |t| t.id.clone());
        Ok(TenantPage {
            items: rows.into_iter().map(Tenant::from).collect(),
            next_cursor,
        })
    }

    /// One tenant by id, or null when there is none.
    async fn tenant(&self, ctx: &Context<'_>, id: String) -> async_graphql::Result<Option<Tenant>> {
        for_tenant(ctx, Scope::Read, &id)?;
        match hub(ctx).tenancy.tenant(&id).await {
            Ok(tenant) => Ok(Some(tenant.into())),
            Err(TenancyError::NotFound(_)) => Ok(None),
            Err(error) => Err(tenancy_error(error)),
        }
    }

    /// One endpoint of a tenant, or null when the tenant has none with that id.
    async fn endpoint(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        id: String,
    ) -> async_graphql::Result<Option<TenantEndpoint>> {
        for_tenant(ctx, Scope::Read, &tenant)?;
        match hub(ctx).tenancy.endpoint(&tenant, &id).await {
            Ok(row) => Ok(Some(row.into())),
            Err(TenancyError::NotFound(_)) => Ok(None),
            Err(error) => Err(tenancy_error(error)),
        }
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

    /// Where it came from: `api`, `graphql`, `tenant:api` or `tenant:graphql` (a tenant's
    /// own token), `switchyard` (the hub), or a webhook source's name.
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

#[derive(SimpleObject)]
pub struct TenantPage {
    items: Vec<Tenant>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// A tenant (an "application"): one of the operator's customers, with its own endpoints.
pub struct Tenant {
    inner: store::Tenant,
}

impl From<store::Tenant> for Tenant {
    fn from(inner: store::Tenant) -> Self {
        Tenant { inner }
    }
}

#[Object]
impl Tenant {
    async fn id(&self) -> &str {
        &self.inner.id
    }

    async fn name(&self) -> &str {
        &self.inner.name
    }

    /// When it was created (RFC 3339).
    async fn created_at(&self) -> String {
        rfc3339(self.inner.created_at)
    }

    /// Its endpoints, by id. Each tenant's are a read of the store, so the field costs
    /// more.
    #[graphql(complexity = "10 + page_cost(limit, child_complexity)")]
    async fn endpoints(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many, 1 to 500 (default 50).")] limit: Option<i32>,
        #[graphql(desc = "The `nextCursor` of the previous page.")] cursor: Option<String>,
    ) -> async_graphql::Result<EndpointPage> {
        let (page, limit) = page(limit, cursor)?;
        let mut rows = hub(ctx)
            .tenancy
            .endpoints(&self.inner.id, &page)
            .await
            .map_err(tenancy_error)?;
        let next_cursor = next_page(&mut rows, limit, |e| e.id.clone());
        Ok(EndpointPage {
            items: rows.into_iter().map(TenantEndpoint::from).collect(),
            next_cursor,
        })
    }
}

#[derive(SimpleObject)]
pub struct EndpointPage {
    items: Vec<TenantEndpoint>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// Where a tenant's notifications are delivered, and how. Its signing secret is never
/// here: it is shown once, when the endpoint is created or its secret rotated.
pub struct TenantEndpoint {
    inner: EndpointRow,
}

impl From<EndpointRow> for TenantEndpoint {
    fn from(inner: EndpointRow) -> Self {
        TenantEndpoint { inner }
    }
}

#[Object(name = "Endpoint")]
impl TenantEndpoint {
    async fn id(&self) -> &str {
        &self.inner.id
    }

    async fn tenant_id(&self) -> &str {
        &self.inner.tenant_id
    }

    async fn description(&self) -> &str {
        &self.inner.description
    }

    /// The URL, for a webhook endpoint.
    async fn url(&self) -> Option<&str> {
        self.inner.url.as_deref()
    }

    /// The channel plugin that delivers (`webhook` for a URL).
    async fn plugin(&self) -> &str {
        &self.inner.plugin
    }

    /// The plugin's config, as a JSON object.
    async fn config(&self) -> async_graphql::Json<Value> {
        async_graphql::Json(self.inner.config.clone())
    }

    /// The hosts the plugin may reach.
    async fn allowed_hosts(&self) -> &[String] {
        &self.inner.allowed_hosts
    }

    /// Kind globs it takes; empty takes every kind.
    async fn kinds(&self) -> &[String] {
        &self.inner.kinds
    }

    /// Attribute filters, as a JSON object of accepted values by attribute name.
    async fn attributes(&self) -> async_graphql::Json<&BTreeMap<String, Vec<String>>> {
        async_graphql::Json(&self.inner.attributes)
    }

    /// The transforms run before delivery, in order.
    async fn transforms(&self) -> &[String] {
        &self.inner.transforms
    }

    async fn rate_limit(&self) -> Option<&str> {
        self.inner.rate_limit.as_deref()
    }

    /// The delays before each retry; null: the default schedule.
    async fn retry_schedule(&self) -> Option<&[String]> {
        self.inner.retry_schedule.as_deref()
    }

    /// Whether it receives anything.
    async fn enabled(&self) -> bool {
        self.inner.enabled
    }

    /// Why it was disabled, when the hub disabled it.
    async fn disabled_reason(&self) -> Option<&str> {
        self.inner.disabled_reason.as_deref()
    }

    /// Since when every attempt has failed (RFC 3339); null while it delivers.
    async fn failing_since(&self) -> Option<String> {
        self.inner.failing_since.map(rfc3339)
    }

    /// Until when the rotated-out secret is still sent (RFC 3339).
    async fn previous_secret_valid_until(&self) -> Option<String> {
        self.inner.previous_secret_until.map(rfc3339)
    }

    /// The names of a `plugin` endpoint's own secrets (their values are never shown).
    async fn secret_names(&self) -> &[String] {
        &self.inner.secret_names
    }

    /// When it was created (RFC 3339).
    async fn created_at(&self) -> String {
        rfc3339(self.inner.created_at)
    }

    /// When its settings last changed (RFC 3339).
    async fn updated_at(&self) -> String {
        rfc3339(self.inner.updated_at)
    }

    /// Its deliveries, newest first. Each endpoint's are a read of the store, so the field
    /// costs more.
    #[graphql(complexity = "10 + page_cost(limit, child_complexity)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only deliveries in this state.")] state: Option<DeliveryState>,
        #[graphql(desc = "At most this many, 1 to 500 (default 50).")] limit: Option<i32>,
        #[graphql(desc = "The `nextCursor` of the previous page.")] cursor: Option<String>,
    ) -> async_graphql::Result<EndpointDeliveryPage> {
        let limit = page_limit(limit.map(i64::from)).map_err(invalid_field)?;
        let mut rows = hub(ctx)
            .store
            .endpoint_deliveries(
                &endpoints::channel_name(&self.inner.id),
                cursor.as_deref(),
                state.map(DeliveryState::as_str),
                limit + 1,
            )
            .await
            .map_err(store_error)?;
        let next_cursor = next_page(&mut rows, limit, |d| d.id.clone());
        Ok(EndpointDeliveryPage {
            items: rows.into_iter().map(EndpointDelivery::from).collect(),
            next_cursor,
        })
    }
}

#[derive(SimpleObject)]
pub struct EndpointDeliveryPage {
    items: Vec<EndpointDelivery>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// One delivery to an endpoint.
#[derive(SimpleObject)]
pub struct EndpointDelivery {
    id: String,
    notification_id: String,
    kind: String,
    state: DeliveryState,
    attempts: u32,
    /// When the next attempt is due (RFC 3339), while pending.
    next_attempt_at: Option<String>,
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<store::EndpointDelivery> for EndpointDelivery {
    fn from(d: store::EndpointDelivery) -> Self {
        EndpointDelivery {
            next_attempt_at: (d.state == "pending").then(|| rfc3339(d.next_at)),
            state: DeliveryState::parse(&d.state),
            id: d.id,
            notification_id: d.notification_id,
            kind: d.kind,
            attempts: d.attempts.clamp(0, i64::from(u32::MAX)) as u32,
            last_error: d.last_error,
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

/// A new endpoint and its signing secret.
#[derive(SimpleObject)]
pub struct NewEndpoint {
    endpoint: TenantEndpoint,
    /// The endpoint's signing secret (`whsec_…`). It is shown only now; rotate it to get a
    /// new one.
    secret: String,
}

/// An endpoint's new signing secret.
#[derive(SimpleObject)]
pub struct RotatedSecret {
    /// The new signing secret, shown only now.
    secret: String,
    /// Until when the old one is still sent beside it (RFC 3339); null when it is not.
    previous_secret_valid_until: Option<String>,
}

/// What recovering an endpoint did.
#[derive(SimpleObject)]
pub struct RecoveredDeliveries {
    /// How many dead deliveries went back to the endpoint's queue.
    recovered: u64,
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
    async fn send_notification(
        &self,
        ctx: &Context<'_>,
        input: NotificationInput,
        #[graphql(
            desc = "Send it for this tenant: it also goes to the tenant's matching endpoints. A token confined to a tenant must name its own."
        )]
        tenant: Option<String>,
    ) -> async_graphql::Result<AcceptedNotification> {
        let variables = Value::Object(Map::from_iter([("input".into(), input.to_adapter_json())]));
        let mut accepted = send(ctx, tenant.as_deref(), variables, |_| {
            "input.idempotencyKey".into()
        })
        .await?;
        // The adapter makes exactly one draft of `input`; anything else is its bug.
        match (accepted.pop(), accepted.is_empty()) {
            (Some(item), true) => Ok(item),
            _ => Err(internal_error(
                "the graphql adapter did not make exactly one notification of `input`",
            )),
        }
    }

    /// Send several notifications at once (at most 1000), all or nothing.
    async fn send_notifications(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<NotificationInput>,
        #[graphql(
            desc = "Send them for this tenant: they also go to the tenant's matching endpoints. A token confined to a tenant must name its own."
        )]
        tenant: Option<String>,
    ) -> async_graphql::Result<Vec<AcceptedNotification>> {
        let inputs = inputs.iter().map(NotificationInput::to_adapter_json);
        let variables = Value::Object(Map::from_iter([(
            "inputs".into(),
            Value::Array(inputs.collect()),
        )]));
        send(ctx, tenant.as_deref(), variables, |index| {
            format!("inputs[{index}].idempotencyKey")
        })
        .await
    }

    /// Create a tenant. The operator's only.
    #[graphql(guard = "Needs(Scope::Admin)")]
    async fn create_tenant(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Your id for the tenant, such as your customer's id: 1 to 64 of letters, digits, `_`, `-` and `.`."
        )]
        id: String,
        #[graphql(desc = "A name people recognise: 1 to 100 characters.")] name: String,
    ) -> async_graphql::Result<Tenant> {
        let tenant = hub(ctx)
            .tenancy
            .create_tenant(&id, &name)
            .await
            .map_err(tenancy_error)?;
        Ok(tenant.into())
    }

    /// Rename a tenant. The operator's only.
    #[graphql(guard = "Needs(Scope::Admin)")]
    async fn rename_tenant(
        &self,
        ctx: &Context<'_>,
        id: String,
        #[graphql(desc = "The new name: 1 to 100 characters.")] name: String,
    ) -> async_graphql::Result<Tenant> {
        let tenant = hub(ctx)
            .tenancy
            .rename_tenant(&id, &name)
            .await
            .map_err(tenancy_error)?;
        Ok(tenant.into())
    }

    /// Delete a tenant with its endpoints and their secrets; returns its id. Their pending
    /// deliveries become dead letters; the record of past deliveries stays. The
    /// operator's only.
    #[graphql(guard = "Needs(Scope::Admin)")]
    async fn delete_tenant(&self, ctx: &Context<'_>, id: String) -> async_graphql::Result<String> {
        hub(ctx)
            .tenancy
            .delete_tenant(&id)
            .await
            .map_err(tenancy_error)?;
        Ok(id)
    }

    /// Create an endpoint. The answer holds its signing secret, shown only now.
    async fn create_endpoint(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        input: EndpointInput,
    ) -> async_graphql::Result<NewEndpoint> {
        let token = for_tenant(ctx, Scope::Admin, &tenant)?;
        let created = hub(ctx)
            .tenancy
            .create_endpoint(&tenant, input.into(), actor(token))
            .await
            .map_err(tenancy_error)?;
        Ok(NewEndpoint {
            endpoint: created.endpoint.into(),
            secret: created.secret,
        })
    }

    /// Replace an endpoint's settings: everything but its id, secret and history.
    /// Enabling a disabled endpoint clears why it was disabled.
    async fn update_endpoint(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        id: String,
        input: EndpointInput,
    ) -> async_graphql::Result<TenantEndpoint> {
        let token = for_tenant(ctx, Scope::Admin, &tenant)?;
        let row = hub(ctx)
            .tenancy
            .update_endpoint(&tenant, &id, input.into(), actor(token))
            .await
            .map_err(tenancy_error)?;
        Ok(row.into())
    }

    /// Delete an endpoint and its secrets; returns its id. Its pending deliveries become
    /// dead letters.
    async fn delete_endpoint(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        id: String,
    ) -> async_graphql::Result<String> {
        for_tenant(ctx, Scope::Admin, &tenant)?;
        hub(ctx)
            .tenancy
            .delete_endpoint(&tenant, &id)
            .await
            .map_err(tenancy_error)?;
        Ok(id)
    }

    /// Give an endpoint a new signing secret, shown only now. During the grace both
    /// secrets sign every delivery, so receivers can switch without losing one.
    async fn rotate_endpoint_secret(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        id: String,
        #[graphql(
            desc = "How long the old secret is still sent beside the new one (`24h`; at most `7d`; `0` ends it now). Default: 24h.",
            validator(max_length = 32)
        )]
        grace: Option<String>,
    ) -> async_graphql::Result<RotatedSecret> {
        for_tenant(ctx, Scope::Admin, &tenant)?;
        let grace = match grace.as_deref() {
            None => tenancy::DEFAULT_GRACE,
            Some(text) => crate::yaml::parse_duration(text)
                .map_err(|_| invalid_argument("grace", "write a duration like 24h, 30m or 0"))?,
        };
        let (secret, until) = hub(ctx)
            .tenancy
            .rotate_secret(&tenant, &id, grace)
            .await
            .map_err(tenancy_error)?;
        Ok(RotatedSecret {
            secret,
            previous_secret_valid_until: until.map(rfc3339),
        })
    }

    /// Put every delivery to the endpoint that died at or after `since` back on its queue,
    /// with a fresh retry schedule.
    async fn recover_endpoint(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        id: String,
        #[graphql(desc = "A time (RFC 3339).", validator(max_length = 64))] since: String,
    ) -> async_graphql::Result<RecoveredDeliveries> {
        for_tenant(ctx, Scope::Admin, &tenant)?;
        let since = parse_time(&since).map_err(|message| invalid_argument("since", message))?;
        let recovered = hub(ctx)
            .tenancy
            .recover(&tenant, &id, since)
            .await
            .map_err(tenancy_error)?;
        Ok(RecoveredDeliveries { recovered })
    }

    /// Send a test notification (kind `switchyard.endpoint.test`) to this endpoint only,
    /// whatever its filters; it is delivered and recorded like any other.
    async fn test_endpoint(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        id: String,
    ) -> async_graphql::Result<AcceptedNotification> {
        for_tenant(ctx, Scope::Admin, &tenant)?;
        let id = hub(ctx)
            .send_endpoint_test(&tenant, &id)
            .await
            .map_err(tenancy_error)?;
        Ok(AcceptedNotification {
            id,
            duplicate: false,
        })
    }
}

/// An endpoint as you write it. Give either `url` (a webhook, signed with Standard
/// Webhooks) or `plugin` (any installed channel plugin, with `config` and `allowedHosts`;
/// the operator's only).
#[derive(InputObject)]
pub struct EndpointInput {
    /// What it is for: at most 1000 characters.
    #[graphql(default, validator(max_length = 1000))]
    description: String,
    /// The http(s) URL notifications are POSTed to.
    #[graphql(validator(max_length = 2048))]
    url: Option<String>,
    /// A channel plugin instead of a URL (the operator's only).
    #[graphql(validator(max_length = 64))]
    plugin: Option<String>,
    /// The plugin's config, a JSON object of at most 16 KiB. With `url`: the webhook
    /// plugin's other settings, such as `headers` and `timeout_ms`.
    config: Option<async_graphql::Json<Map<String, Value>>>,
    /// The hosts a `plugin` may reach. With `url`, the URL's host, always.
    #[graphql(default, validator(max_items = 16))]
    allowed_hosts: Vec<String>,
    /// Kind globs it takes (`invoice.*`); empty takes every kind.
    #[graphql(default, validator(max_items = 50))]
    kinds: Vec<String>,
    /// Attribute filters, as a JSON object of accepted values by attribute name
    /// (`{"region": ["eu"]}`): a notification must have each named attribute with one of
    /// the values.
    attributes: Option<async_graphql::Json<BTreeMap<String, Vec<String>>>>,
    /// Transforms to run before delivery: names under `transforms:` in the routes file, or
    /// transform plugins. The operator's to choose: a tenant's token sends the endpoint's
    /// current ones unchanged.
    #[graphql(default, validator(max_items = 16))]
    transforms: Vec<String>,
    /// At most this many deliveries per second, minute or hour (`50/s`).
    #[graphql(validator(max_length = 32))]
    rate_limit: Option<String>,
    /// The delays before each retry (`["5s", "5m", "2h"]`); null: the default schedule.
    #[graphql(validator(max_items = 20))]
    retry_schedule: Option<Vec<String>>,
    /// Whether it receives anything. Enabling a disabled endpoint clears why it was.
    #[graphql(default = true)]
    enabled: bool,
    /// A `plugin` endpoint's own secrets, as a JSON object of values by name (`{"token":
    /// "..."}`): sealed in the vault and never shown again. On an update, null keeps the
    /// ones it has, and an object is the whole new set. A URL endpoint takes none.
    secrets: Option<async_graphql::Json<BTreeMap<String, String>>>,
}

impl From<EndpointInput> for EndpointDraft {
    fn from(input: EndpointInput) -> EndpointDraft {
        EndpointDraft {
            description: input.description,
            url: input.url,
            plugin: input.plugin,
            config: input.config.map(|config| Value::Object(config.0)),
            allowed_hosts: input.allowed_hosts,
            kinds: input.kinds,
            attributes: input.attributes.map(|a| a.0).unwrap_or_default(),
            transforms: input.transforms,
            rate_limit: input.rate_limit,
            retry_schedule: input.retry_schedule,
            enabled: input.enabled,
            secrets: input.secrets.map(|s| s.0),
        }
    }
}

/// The mutation's path: the scope and tenant checks, the adapter, then accept, as the
/// caller's token. `key_field` names the idempotency key of the `index`th notification,
/// for a key reused.
async fn send(
    ctx: &Context<'_>,
    tenant: Option<&str>,
    variables: Value,
    key_field: fn(usize) -> String,
) -> async_graphql::Result<Vec<AcceptedNotification>> {
    let hub = hub(ctx);
    let token = match tenant {
        Some(tenant) => {
            let token = for_tenant(ctx, Scope::Send, tenant)?;
            // Nothing is accepted for a tenant that does not exist.
            if !hub
                .tenancy
                .tenant_exists(tenant)
                .await
                .map_err(tenancy_error)?
            {
                return Err(tenancy_error(TenancyError::NotFound(
                    "no tenant has this id".into(),
                )));
            }
            token
        }
        None => {
            let token = caller(ctx)?;
            auth::require(token, Scope::Send).map_err(problem_error)?;
            token
        }
    };
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
        .accept(
            &tenancy::source(GRAPHQL_SOURCE, token.tenant.as_deref()),
            Some(&token.id),
            tenant,
            drafts,
            None,
        )
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

/// A wrong argument of a field, named as GraphQL names it.
fn invalid_argument(field: &str, message: impl std::fmt::Display) -> async_graphql::Error {
    let mut problem = Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("{field}: {message}"),
    )
    .code("invalid-field");
    problem.field = Some(field.to_owned());
    problem_error(problem)
}

/// A page of a tenant listing: the store's page (one row more than asked for, which tells
/// whether another follows) and the limit asked for.
fn page(limit: Option<i32>, cursor: Option<String>) -> async_graphql::Result<(Page, u32)> {
    let limit = page_limit(limit.map(i64::from)).map_err(invalid_field)?;
    Ok((
        Page {
            after: cursor,
            limit: limit + 1,
        },
        limit,
    ))
}

/// A refusal of [`crate::tenancy`] as a GraphQL error, with the code and status the REST
/// API gives it.
fn tenancy_error(error: TenancyError) -> async_graphql::Error {
    match error {
        TenancyError::NotFound(detail) => {
            problem_error(Problem::new(StatusCode::NOT_FOUND, detail).code("not-found"))
        }
        TenancyError::Invalid { field, message } => {
            invalid_argument(&graphql_field(&field), message)
        }
        TenancyError::Conflict(detail) => {
            problem_error(Problem::new(StatusCode::CONFLICT, detail).code("conflict"))
        }
        TenancyError::Store(error) => store_error(error),
        TenancyError::Vault(error) => {
            tracing::error!(%error, "vault error");
            coded("the hub's secrets are unavailable; retry", "unavailable")
        }
        TenancyError::Unavailable => coded(TenancyError::Unavailable.to_string(), "unavailable"),
    }
}

/// A field [`crate::tenancy`] names (`allowed_hosts`) as this schema does: camel case, and
/// under `input` when it is one of [`EndpointInput`]'s.
fn graphql_field(field: &str) -> String {
    let mut camel = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                camel.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => camel.push(c),
        }
    }
    const ENDPOINT_FIELDS: &[&str] = &[
        "description",
        "url",
        "plugin",
        "config",
        "allowedHosts",
        "kinds",
        "attributes",
        "transforms",
        "rateLimit",
        "retrySchedule",
        "enabled",
    ];
    if ENDPOINT_FIELDS.contains(&camel.as_str()) {
        format!("input.{camel}")
    } else {
        camel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenancy_fields_are_named_as_the_schema_names_them() {
        assert_eq!(graphql_field("allowed_hosts"), "input.allowedHosts");
        assert_eq!(graphql_field("url"), "input.url");
        assert_eq!(graphql_field("retry_schedule"), "input.retrySchedule");
        assert_eq!(graphql_field("grace"), "grace");
        assert_eq!(graphql_field("id"), "id");
    }
}
