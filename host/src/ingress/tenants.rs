//! The REST API for tenants and their endpoints, under `/api/v1/tenants`. Every check and
//! change is [`crate::tenancy`]'s; this only translates.
//!
//! An operator's token reaches every tenant. A token made with `tenant` reaches only that
//! tenant's operations here (and nothing else of the hub): each handler starts with
//! [`Api::confine`], which refuses another tenant's token the same way whether or not the
//! tenant exists, so ids cannot be probed.

#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use poem::Request;
use poem::http::StatusCode;
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme, Tags};

use super::auth;
use super::listing::{DeliveryState, next_page, page_limit, rfc3339, unix_ms};
use super::problem::{Problem, ProblemResponse};
use super::raw_json::{RawJson, StrictJson};
use super::rest::{
    AcceptedOut, BATCH_PATH, BatchAcceptedOut, BatchIn, BatchResponse, DeliveryOut, EXAMPLE_TIME,
    NotificationIn, SEND_PATH, SendResponse, check_token, delivery_out, not_found, store_problem,
};
use crate::pipeline::Hub;
use crate::routing::endpoints;
use crate::store::{self, EndpointRow, Page, Scope, TokenRecord};
use crate::tenancy::{self, Actor, EndpointDraft, TenancyError};

type ApiResult<T> = Result<T, ProblemResponse>;

#[derive(Tags)]
enum Tag {
    /// Tenants ("applications"): the operator's customers, each with its own endpoints.
    Tenants,
    /// A tenant's endpoints: where its notifications are delivered, and how.
    Endpoints,
}

/// An API token with the `send` scope; a tenant's token reaches only its own tenant.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_send")]
pub struct TenantSendToken(pub TokenRecord);

/// An API token with the `read` scope; a tenant's token reaches only its own tenant.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_read")]
pub struct TenantReadToken(pub TokenRecord);

/// An API token with the `admin` scope; a tenant's token reaches only its own tenant.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_admin")]
pub struct TenantAdminToken(pub TokenRecord);

async fn check_send(request: &Request, bearer: Bearer) -> poem::Result<TokenRecord> {
    check_tenant_token(request, bearer, Scope::Send)
}

async fn check_read(request: &Request, bearer: Bearer) -> poem::Result<TokenRecord> {
    check_tenant_token(request, bearer, Scope::Read)
}

async fn check_admin(request: &Request, bearer: Bearer) -> poem::Result<TokenRecord> {
    check_tenant_token(request, bearer, Scope::Admin)
}

/// The token and its scope; which tenant it may reach is the handler's check (the path
/// names the tenant). An operator's token goes through [`check_token`] unchanged.
fn check_tenant_token(
    request: &Request,
    bearer: Bearer,
    scope: Scope,
) -> poem::Result<TokenRecord> {
    let hub = request
        .data::<Arc<Hub>>()
        .expect("the hub is attached to every request");
    match hub.tokens.verify(&bearer.token) {
        Some(token) if token.tenant.is_some() => {
            let tenant = token.tenant.clone().unwrap_or_default();
            auth::require_for_tenant(&token, scope, &tenant).map_err(|problem| {
                use poem::IntoResponse as _;
                poem::Error::from_response(ProblemResponse::from(problem).into_response())
            })?;
            Ok(token)
        }
        _ => check_token(request, bearer, scope),
    }
}

pub struct Api {
    hub: Arc<Hub>,
}

impl Api {
    pub fn new(hub: Arc<Hub>) -> Api {
        Api { hub }
    }

    /// Refuses a tenant's token on another tenant's path.
    fn confine(&self, token: &TokenRecord, tenant: &str) -> ApiResult<()> {
        match &token.tenant {
            Some(own) if own != tenant => Err(Problem::new(
                StatusCode::FORBIDDEN,
                "this API token is confined to another tenant",
            )
            .code("wrong-tenant")
            .into()),
            _ => Ok(()),
        }
    }

    /// Who is acting: a tenant's token may only give endpoints URLs.
    fn actor(token: &TokenRecord) -> Actor {
        if token.tenant.is_some() {
            Actor::Tenant
        } else {
            Actor::Operator
        }
    }
}

/// A tenancy error as the API's problem.
pub(super) fn tenancy_problem(error: TenancyError) -> ProblemResponse {
    match error {
        TenancyError::NotFound(detail) => not_found(detail),
        TenancyError::Invalid { field, message } => {
            let mut problem = Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{field}: {message}"),
            )
            .code("invalid-field");
            problem.field = Some(field);
            problem.into()
        }
        TenancyError::Conflict(detail) => Problem::new(StatusCode::CONFLICT, detail)
            .code("conflict")
            .into(),
        TenancyError::Store(error) => store_problem(error),
        TenancyError::Unavailable => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the hub could not store that right now; nothing was done; retry",
        )
        .into(),
        TenancyError::Vault(error) => {
            tracing::error!(%error, "vault error");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hub's secrets are unavailable; retry",
            )
            .into()
        }
    }
}

// ---- Schemas --------------------------------------------------------------------------

const EXAMPLE_ENDPOINT_ID: &str = "019ae0d2-7a10-7c3b-8e21-4b5c6d7e8f90";

#[derive(Object, serde::Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
struct TenantIn {
    /// Your id for the tenant, such as your customer's id: 1 to 64 of letters, digits,
    /// `_`, `-` and `.`, starting with a letter or a digit.
    #[oai(validator(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
    ))]
    id: String,
    /// A name people recognise: 1 to 100 characters.
    #[oai(validator(min_length = 1, max_length = 100, pattern = r"\S"))]
    name: String,
}

impl Example for TenantIn {
    fn example() -> Self {
        TenantIn {
            id: "cus_8f14e45f".into(),
            name: "Acme Corp".into(),
        }
    }
}

#[derive(Object, serde::Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    /// The new name: 1 to 100 characters.
    #[oai(validator(min_length = 1, max_length = 100, pattern = r"\S"))]
    name: String,
}

impl Example for TenantPatch {
    fn example() -> Self {
        TenantPatch {
            name: "Acme Corporation".into(),
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct TenantOut {
    id: String,
    name: String,
    /// When it was created (RFC 3339).
    created_at: String,
}

impl Example for TenantOut {
    fn example() -> Self {
        TenantOut {
            id: "cus_8f14e45f".into(),
            name: "Acme Corp".into(),
            created_at: EXAMPLE_TIME.into(),
        }
    }
}

fn tenant_out(tenant: store::Tenant) -> TenantOut {
    TenantOut {
        id: tenant.id,
        name: tenant.name,
        created_at: rfc3339(tenant.created_at),
    }
}

#[derive(Object)]
#[oai(example)]
struct TenantPage {
    items: Vec<TenantOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[oai(nullable)]
    next_cursor: Option<String>,
}

impl Example for TenantPage {
    fn example() -> Self {
        TenantPage {
            items: vec![TenantOut::example()],
            next_cursor: None,
        }
    }
}

/// An endpoint as you write it. Give either `url` (a webhook, signed with Standard
/// Webhooks) or `plugin` (any installed channel plugin, with `config` and `allowed_hosts`;
/// operators only).
#[derive(Object, serde::Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
struct EndpointIn {
    /// What it is for: at most 1000 characters.
    #[oai(default, validator(max_length = 1000))]
    #[serde(default)]
    description: String,
    /// The http(s) URL notifications are POSTed to.
    #[oai(nullable, validator(max_length = 2048))]
    #[serde(default)]
    url: Option<String>,
    /// A channel plugin instead of a URL (operators only).
    #[oai(nullable, validator(max_length = 64))]
    #[serde(default)]
    plugin: Option<String>,
    /// The plugin's config (a JSON object of at most 16 KiB). With `url`: the webhook
    /// plugin's other settings, such as `headers` and `timeout_ms`.
    #[oai(nullable)]
    #[serde(default)]
    config: Option<BTreeMap<String, serde_json::Value>>,
    /// The hosts a `plugin` may reach. With `url`, the URL's host, always.
    #[oai(default, validator(max_items = 16))]
    #[serde(default)]
    allowed_hosts: Vec<String>,
    /// Kind globs it takes (`invoice.*`; `*` is any run of characters, `?` one); empty
    /// takes every kind.
    #[oai(default, validator(max_items = 50))]
    #[serde(default)]
    kinds: Vec<String>,
    /// Attribute filters: a notification must have each named attribute with one of the
    /// listed values.
    #[oai(default)]
    #[serde(default)]
    attributes: BTreeMap<String, Vec<String>>,
    /// Transforms to run before delivery: names under `transforms:` in the routes file, or
    /// transform plugins. The operator's to choose: a tenant's token sends the endpoint's
    /// current ones unchanged.
    #[oai(default, validator(max_items = 16))]
    #[serde(default)]
    transforms: Vec<String>,
    /// At most this many deliveries per second, minute or hour (`50/s`, `3000/m`, `10/h`),
    /// across every process.
    #[oai(
        nullable,
        validator(max_length = 32, pattern = r"^[1-9][0-9]{0,8}/[smh]$")
    )]
    #[serde(default)]
    rate_limit: Option<String>,
    /// The delays before each retry (`["5s", "5m", "2h"]`; at most 20, each at most 24h).
    /// Null: the default schedule (8 attempts over about a day).
    #[oai(nullable, validator(max_items = 20))]
    #[serde(default)]
    retry_schedule: Option<Vec<String>>,
    /// Whether it receives anything. Enabling a disabled endpoint clears why it was.
    #[oai(default = "default_true")]
    #[serde(default = "default_true")]
    enabled: bool,
    /// A `plugin` endpoint's own secrets, such as a bot token: name -> value, at most 16,
    /// each value at most 8 KiB. Sealed in the vault and never shown again (answers list
    /// the names). On an update, null or absent keeps the ones it has, and an object is
    /// the whole new set. A URL endpoint takes none: it signs with its signing secret.
    #[oai(nullable, write_only)]
    #[serde(default)]
    secrets: Option<BTreeMap<String, String>>,
}

fn default_true() -> bool {
    true
}

impl Example for EndpointIn {
    fn example() -> Self {
        EndpointIn {
            description: "Invoices to the billing service".into(),
            url: Some("https://billing.acme.example/webhooks".into()),
            plugin: None,
            config: None,
            allowed_hosts: Vec::new(),
            kinds: vec!["invoice.*".into()],
            attributes: BTreeMap::from([("region".into(), vec!["eu".into()])]),
            transforms: Vec::new(),
            rate_limit: Some("50/s".into()),
            retry_schedule: None,
            enabled: true,
            secrets: None,
        }
    }
}

impl From<EndpointIn> for EndpointDraft {
    fn from(input: EndpointIn) -> EndpointDraft {
        EndpointDraft {
            description: input.description,
            url: input.url,
            plugin: input.plugin,
            config: input
                .config
                .map(|map| serde_json::Value::Object(map.into_iter().collect())),
            allowed_hosts: input.allowed_hosts,
            kinds: input.kinds,
            attributes: input.attributes,
            transforms: input.transforms,
            rate_limit: input.rate_limit,
            retry_schedule: input.retry_schedule,
            enabled: input.enabled,
            secrets: input.secrets,
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct EndpointOut {
    id: String,
    tenant_id: String,
    description: String,
    /// The URL, for a webhook endpoint.
    #[oai(nullable)]
    url: Option<String>,
    /// The channel plugin that delivers (`webhook` for a URL).
    plugin: String,
    config: BTreeMap<String, serde_json::Value>,
    allowed_hosts: Vec<String>,
    kinds: Vec<String>,
    attributes: BTreeMap<String, Vec<String>>,
    transforms: Vec<String>,
    #[oai(nullable)]
    rate_limit: Option<String>,
    #[oai(nullable)]
    retry_schedule: Option<Vec<String>>,
    enabled: bool,
    /// Why it was disabled, when the hub disabled it.
    #[oai(nullable)]
    disabled_reason: Option<String>,
    /// Since when every attempt has failed (RFC 3339); null while it delivers.
    #[oai(nullable)]
    failing_since: Option<String>,
    /// Until when the rotated-out secret is still sent (RFC 3339).
    #[oai(nullable)]
    previous_secret_valid_until: Option<String>,
    /// The names of a `plugin` endpoint's own secrets (their values are never shown).
    secret_names: Vec<String>,
    created_at: String,
    updated_at: String,
}

impl Example for EndpointOut {
    fn example() -> Self {
        let input = EndpointIn::example();
        EndpointOut {
            id: EXAMPLE_ENDPOINT_ID.into(),
            tenant_id: "cus_8f14e45f".into(),
            description: input.description,
            url: input.url,
            plugin: "webhook".into(),
            config: BTreeMap::new(),
            allowed_hosts: vec!["billing.acme.example".into()],
            kinds: input.kinds,
            attributes: input.attributes,
            transforms: Vec::new(),
            rate_limit: input.rate_limit,
            retry_schedule: None,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            previous_secret_valid_until: None,
            secret_names: Vec::new(),
            created_at: EXAMPLE_TIME.into(),
            updated_at: EXAMPLE_TIME.into(),
        }
    }
}

fn endpoint_out(row: EndpointRow) -> EndpointOut {
    EndpointOut {
        config: match row.config {
            serde_json::Value::Object(map) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        },
        id: row.id,
        tenant_id: row.tenant_id,
        description: row.description,
        url: row.url,
        plugin: row.plugin,
        allowed_hosts: row.allowed_hosts,
        kinds: row.kinds,
        attributes: row.attributes,
        transforms: row.transforms,
        rate_limit: row.rate_limit,
        retry_schedule: row.retry_schedule,
        enabled: row.enabled,
        disabled_reason: row.disabled_reason,
        failing_since: row.failing_since.map(rfc3339),
        previous_secret_valid_until: row.previous_secret_until.map(rfc3339),
        secret_names: row.secret_names,
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
    }
}

#[derive(Object)]
#[oai(example)]
struct NewEndpointOut {
    endpoint: EndpointOut,
    /// The endpoint's signing secret (`whsec_…`). It is shown only now; rotate it to get a
    /// new one.
    secret: String,
}

impl Example for NewEndpointOut {
    fn example() -> Self {
        NewEndpointOut {
            endpoint: EndpointOut::example(),
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct EndpointPage {
    items: Vec<EndpointOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[oai(nullable)]
    next_cursor: Option<String>,
}

impl Example for EndpointPage {
    fn example() -> Self {
        EndpointPage {
            items: vec![EndpointOut::example()],
            next_cursor: None,
        }
    }
}

#[derive(Object, serde::Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
struct RotateIn {
    /// How long the old secret is still sent beside the new one, in seconds: at most 7
    /// days (604800); 0 ends it now. Default: a day.
    #[oai(nullable, validator(minimum(value = "0"), maximum(value = "604800")))]
    #[serde(default)]
    grace_seconds: Option<u32>,
}

impl Example for RotateIn {
    fn example() -> Self {
        RotateIn {
            grace_seconds: Some(86400),
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct RotateOut {
    /// The new signing secret, shown only now.
    secret: String,
    /// Until when the old one is still sent too (RFC 3339); null when it is not.
    #[oai(nullable)]
    previous_secret_valid_until: Option<String>,
}

impl Example for RotateOut {
    fn example() -> Self {
        RotateOut {
            secret: "whsec_c2VjcmV0LXR3by1mb3ItdGhlLWV4YW1wbGU=".into(),
            previous_secret_valid_until: Some(EXAMPLE_TIME.into()),
        }
    }
}

#[derive(Object, serde::Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
struct RecoverIn {
    /// Replay every delivery to the endpoint that died at or after this time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    since: time::OffsetDateTime,
}

impl Example for RecoverIn {
    fn example() -> Self {
        RecoverIn {
            since: time::OffsetDateTime::parse(
                EXAMPLE_TIME,
                &time::format_description::well_known::Rfc3339,
            )
            .expect("the example time is RFC 3339"),
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct RecoverOut {
    /// How many dead deliveries went back to the endpoint's queue.
    recovered: u64,
}

impl Example for RecoverOut {
    fn example() -> Self {
        RecoverOut { recovered: 42 }
    }
}

#[derive(Object)]
#[oai(example)]
struct EndpointDeliveryOut {
    id: String,
    notification_id: String,
    kind: String,
    state: DeliveryState,
    attempts: u32,
    /// When the next attempt is due, while pending (RFC 3339).
    #[oai(nullable)]
    next_attempt_at: Option<String>,
    #[oai(nullable)]
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
}

impl Example for EndpointDeliveryOut {
    fn example() -> Self {
        EndpointDeliveryOut {
            id: "019ae0d2-5c1e-8a3b-9f10-2b4c6d8e0a12".into(),
            notification_id: "019ae0d2-5c1e-7a3b-9f10-2b4c6d8e0a12".into(),
            kind: "invoice.paid".into(),
            state: DeliveryState::Delivered,
            attempts: 1,
            next_attempt_at: None,
            last_error: None,
            created_at: EXAMPLE_TIME.into(),
            updated_at: EXAMPLE_TIME.into(),
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct EndpointDeliveryPage {
    items: Vec<EndpointDeliveryOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[oai(nullable)]
    next_cursor: Option<String>,
}

impl Example for EndpointDeliveryPage {
    fn example() -> Self {
        EndpointDeliveryPage {
            items: vec![EndpointDeliveryOut::example()],
            next_cursor: None,
        }
    }
}

#[derive(ApiResponse)]
enum CreatedTenant {
    /// Created.
    #[oai(status = 201)]
    Created(Json<TenantOut>),
}

#[derive(ApiResponse)]
enum CreatedEndpoint {
    /// Created. The answer holds the signing secret, shown only now.
    #[oai(status = 201)]
    Created(Json<NewEndpointOut>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
enum TestSent {
    /// Accepted: the test notification is durable and goes to this endpoint only.
    #[oai(status = 202)]
    Accepted(Json<AcceptedOut>),
}

#[derive(poem_openapi::Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
enum StateFilter {
    Pending,
    Delivered,
    Dead,
}

fn page(cursor: Option<String>, limit: Option<u32>) -> ApiResult<(Page, u32)> {
    let limit =
        page_limit(limit.map(i64::from)).map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e))?;
    Ok((
        Page {
            after: cursor,
            limit: limit + 1,
        },
        limit,
    ))
}

#[OpenApi(prefix_path = "/api/v1")]
impl Api {
    /// Create a tenant.
    ///
    /// A tenant (an "application") is one of your customers: it registers endpoints, and
    /// notifications sent for it go to them.
    #[oai(
        path = "/tenants",
        method = "post",
        tag = "Tag::Tenants",
        operation_id = "createTenant"
    )]
    async fn create_tenant(
        &self,
        token: TenantAdminToken,
        body: StrictJson<TenantIn>,
    ) -> ApiResult<CreatedTenant> {
        auth::require(&token.0, Scope::Admin)?;
        let tenant = self
            .hub
            .tenancy
            .create_tenant(&body.0.id, &body.0.name)
            .await
            .map_err(tenancy_problem)?;
        Ok(CreatedTenant::Created(Json(tenant_out(tenant))))
    }

    /// List tenants, by id.
    #[oai(
        path = "/tenants",
        method = "get",
        tag = "Tag::Tenants",
        operation_id = "listTenants"
    )]
    async fn list_tenants(
        &self,
        token: TenantReadToken,
        /// The `next_cursor` of the page before.
        cursor: Query<Option<String>>,
        /// How many, 1 to 500 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<TenantPage>> {
        auth::require(&token.0, Scope::Read)?;
        let (page, limit) = page(cursor.0, limit.0)?;
        let mut rows = self
            .hub
            .tenancy
            .tenants(&page)
            .await
            .map_err(tenancy_problem)?;
        let next_cursor = next_page(&mut rows, limit, |t| t.id.clone());
        Ok(Json(TenantPage {
            items: rows.into_iter().map(tenant_out).collect(),
            next_cursor,
        }))
    }

    /// Get a tenant.
    #[oai(
        path = "/tenants/:tenant",
        method = "get",
        tag = "Tag::Tenants",
        operation_id = "getTenant"
    )]
    async fn get_tenant(
        &self,
        token: TenantReadToken,
        tenant: Path<String>,
    ) -> ApiResult<Json<TenantOut>> {
        self.confine(&token.0, &tenant.0)?;
        let tenant = self
            .hub
            .tenancy
            .tenant(&tenant.0)
            .await
            .map_err(tenancy_problem)?;
        Ok(Json(tenant_out(tenant)))
    }

    /// Rename a tenant.
    #[oai(
        path = "/tenants/:tenant",
        method = "patch",
        tag = "Tag::Tenants",
        operation_id = "renameTenant"
    )]
    async fn rename_tenant(
        &self,
        token: TenantAdminToken,
        tenant: Path<String>,
        body: StrictJson<TenantPatch>,
    ) -> ApiResult<Json<TenantOut>> {
        auth::require(&token.0, Scope::Admin)?;
        let tenant = self
            .hub
            .tenancy
            .rename_tenant(&tenant.0, &body.0.name)
            .await
            .map_err(tenancy_problem)?;
        Ok(Json(tenant_out(tenant)))
    }

    /// Delete a tenant and its endpoints.
    ///
    /// Their pending deliveries become dead letters; the record of past deliveries stays.
    #[oai(
        path = "/tenants/:tenant",
        method = "delete",
        tag = "Tag::Tenants",
        operation_id = "deleteTenant"
    )]
    async fn delete_tenant(
        &self,
        token: TenantAdminToken,
        tenant: Path<String>,
    ) -> ApiResult<Deleted> {
        auth::require(&token.0, Scope::Admin)?;
        self.hub
            .tenancy
            .delete_tenant(&tenant.0)
            .await
            .map_err(tenancy_problem)?;
        Ok(Deleted::Deleted)
    }

    /// Send a notification for a tenant.
    ///
    /// As `POST /api/v1/notifications`; it also goes to the tenant's matching endpoints.
    #[oai(
        path = "/tenants/:tenant/notifications",
        method = "post",
        tag = "Tag::Tenants",
        operation_id = "sendTenantNotification"
    )]
    async fn send(
        &self,
        token: TenantSendToken,
        tenant: Path<String>,
        body: RawJson<NotificationIn>,
        /// As for `POST /api/v1/notifications`: a repeat within the window gets the first
        /// answer.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
    ) -> ApiResult<SendResponse> {
        self.confine(&token.0, &tenant.0)?;
        self.known_tenant(&tenant.0).await?;
        let (mut items, replayed) = super::rest::Api::new(self.hub.clone())
            .accept(
                &token.0,
                SEND_PATH,
                Some(&tenant.0),
                body,
                idempotency_key.0,
            )
            .await?;
        let item = items.pop().expect("exactly one");
        Ok(SendResponse::Accepted(
            Json(item.into()),
            replayed.then_some(true),
        ))
    }

    /// Send a batch of notifications for a tenant (up to 1000).
    #[oai(
        path = "/tenants/:tenant/notifications/batch",
        method = "post",
        tag = "Tag::Tenants",
        operation_id = "sendTenantNotificationBatch"
    )]
    async fn send_batch(
        &self,
        token: TenantSendToken,
        tenant: Path<String>,
        body: RawJson<BatchIn>,
        /// As for a single send: a repeat within the window gets the first answer.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
    ) -> ApiResult<BatchResponse> {
        self.confine(&token.0, &tenant.0)?;
        self.known_tenant(&tenant.0).await?;
        let (items, replayed) = super::rest::Api::new(self.hub.clone())
            .accept(
                &token.0,
                BATCH_PATH,
                Some(&tenant.0),
                body,
                idempotency_key.0,
            )
            .await?;
        Ok(BatchResponse::Accepted(
            Json(BatchAcceptedOut {
                notifications: items.into_iter().map(Into::into).collect(),
            }),
            replayed.then_some(true),
        ))
    }

    /// Create an endpoint.
    ///
    /// The answer holds its signing secret (`whsec_…`), shown only now.
    #[oai(
        path = "/tenants/:tenant/endpoints",
        method = "post",
        tag = "Tag::Endpoints",
        operation_id = "createEndpoint"
    )]
    async fn create_endpoint(
        &self,
        token: TenantAdminToken,
        tenant: Path<String>,
        body: StrictJson<EndpointIn>,
    ) -> ApiResult<CreatedEndpoint> {
        self.confine(&token.0, &tenant.0)?;
        let created = self
            .hub
            .tenancy
            .create_endpoint(&tenant.0, body.0.into(), Api::actor(&token.0))
            .await
            .map_err(tenancy_problem)?;
        Ok(CreatedEndpoint::Created(Json(NewEndpointOut {
            endpoint: endpoint_out(created.endpoint),
            secret: created.secret,
        })))
    }

    /// List a tenant's endpoints.
    #[oai(
        path = "/tenants/:tenant/endpoints",
        method = "get",
        tag = "Tag::Endpoints",
        operation_id = "listEndpoints"
    )]
    async fn list_endpoints(
        &self,
        token: TenantReadToken,
        tenant: Path<String>,
        /// The `next_cursor` of the page before.
        cursor: Query<Option<String>>,
        /// How many, 1 to 500 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<EndpointPage>> {
        self.confine(&token.0, &tenant.0)?;
        let (page, limit) = page(cursor.0, limit.0)?;
        let mut rows = self
            .hub
            .tenancy
            .endpoints(&tenant.0, &page)
            .await
            .map_err(tenancy_problem)?;
        let next_cursor = next_page(&mut rows, limit, |e| e.id.clone());
        Ok(Json(EndpointPage {
            items: rows.into_iter().map(endpoint_out).collect(),
            next_cursor,
        }))
    }

    /// Get an endpoint.
    #[oai(
        path = "/tenants/:tenant/endpoints/:endpoint",
        method = "get",
        tag = "Tag::Endpoints",
        operation_id = "getEndpoint"
    )]
    async fn get_endpoint(
        &self,
        token: TenantReadToken,
        tenant: Path<String>,
        endpoint: Path<String>,
    ) -> ApiResult<Json<EndpointOut>> {
        self.confine(&token.0, &tenant.0)?;
        let row = self
            .hub
            .tenancy
            .endpoint(&tenant.0, &endpoint.0)
            .await
            .map_err(tenancy_problem)?;
        Ok(Json(endpoint_out(row)))
    }

    /// Replace an endpoint's settings.
    ///
    /// Everything but its id, secret and history. Enabling a disabled endpoint clears why
    /// it was disabled.
    #[oai(
        path = "/tenants/:tenant/endpoints/:endpoint",
        method = "put",
        tag = "Tag::Endpoints",
        operation_id = "updateEndpoint"
    )]
    async fn update_endpoint(
        &self,
        token: TenantAdminToken,
        tenant: Path<String>,
        endpoint: Path<String>,
        body: StrictJson<EndpointIn>,
    ) -> ApiResult<Json<EndpointOut>> {
        self.confine(&token.0, &tenant.0)?;
        let row = self
            .hub
            .tenancy
            .update_endpoint(&tenant.0, &endpoint.0, body.0.into(), Api::actor(&token.0))
            .await
            .map_err(tenancy_problem)?;
        Ok(Json(endpoint_out(row)))
    }

    /// Delete an endpoint.
    ///
    /// Its pending deliveries become dead letters; its secrets are destroyed.
    #[oai(
        path = "/tenants/:tenant/endpoints/:endpoint",
        method = "delete",
        tag = "Tag::Endpoints",
        operation_id = "deleteEndpoint"
    )]
    async fn delete_endpoint(
        &self,
        token: TenantAdminToken,
        tenant: Path<String>,
        endpoint: Path<String>,
    ) -> ApiResult<Deleted> {
        self.confine(&token.0, &tenant.0)?;
        self.hub
            .tenancy
            .delete_endpoint(&tenant.0, &endpoint.0)
            .await
            .map_err(tenancy_problem)?;
        Ok(Deleted::Deleted)
    }

    /// Rotate an endpoint's signing secret.
    ///
    /// The new secret is shown only now. During the grace both secrets sign every
    /// delivery (two signatures in `webhook-signature`), so receivers can switch safely.
    #[oai(
        path = "/tenants/:tenant/endpoints/:endpoint/secret/rotate",
        method = "post",
        tag = "Tag::Endpoints",
        operation_id = "rotateEndpointSecret"
    )]
    async fn rotate_secret(
        &self,
        token: TenantAdminToken,
        tenant: Path<String>,
        endpoint: Path<String>,
        body: StrictJson<RotateIn>,
    ) -> ApiResult<Json<RotateOut>> {
        self.confine(&token.0, &tenant.0)?;
        let grace = body
            .0
            .grace_seconds
            .map_or(tenancy::DEFAULT_GRACE, |s| Duration::from_secs(s.into()));
        let (secret, until) = self
            .hub
            .tenancy
            .rotate_secret(&tenant.0, &endpoint.0, grace)
            .await
            .map_err(tenancy_problem)?;
        Ok(Json(RotateOut {
            secret,
            previous_secret_valid_until: until.map(rfc3339),
        }))
    }

    /// Replay an endpoint's failed deliveries since a time.
    ///
    /// Every delivery to the endpoint that died at or after `since` goes back to its
    /// queue with a fresh retry schedule.
    #[oai(
        path = "/tenants/:tenant/endpoints/:endpoint/recover",
        method = "post",
        tag = "Tag::Endpoints",
        operation_id = "recoverEndpoint"
    )]
    async fn recover(
        &self,
        token: TenantAdminToken,
        tenant: Path<String>,
        endpoint: Path<String>,
        body: StrictJson<RecoverIn>,
    ) -> ApiResult<Json<RecoverOut>> {
        self.confine(&token.0, &tenant.0)?;
        let since = unix_ms(body.0.since);
        let recovered = self
            .hub
            .tenancy
            .recover(&tenant.0, &endpoint.0, since)
            .await
            .map_err(tenancy_problem)?;
        Ok(Json(RecoverOut { recovered }))
    }

    /// Send a test notification to one endpoint.
    ///
    /// Kind `switchyard.endpoint.test`; it goes to this endpoint only, whatever its
    /// filters, and is delivered and recorded like any other.
    #[oai(
        path = "/tenants/:tenant/endpoints/:endpoint/test",
        method = "post",
        tag = "Tag::Endpoints",
        operation_id = "testEndpoint"
    )]
    async fn test_endpoint(
        &self,
        token: TenantAdminToken,
        tenant: Path<String>,
        endpoint: Path<String>,
    ) -> ApiResult<TestSent> {
        self.confine(&token.0, &tenant.0)?;
        let id = self
            .hub
            .send_endpoint_test(&tenant.0, &endpoint.0)
            .await
            .map_err(tenancy_problem)?;
        Ok(TestSent::Accepted(Json(AcceptedOut::from(
            store::AcceptedItem {
                id,
                duplicate: false,
            },
        ))))
    }

    /// List an endpoint's deliveries, newest first.
    #[oai(
        path = "/tenants/:tenant/endpoints/:endpoint/deliveries",
        method = "get",
        tag = "Tag::Endpoints",
        operation_id = "listEndpointDeliveries"
    )]
    async fn list_deliveries(
        &self,
        token: TenantReadToken,
        tenant: Path<String>,
        endpoint: Path<String>,
        /// Only deliveries in this state.
        state: Query<Option<StateFilter>>,
        /// The `next_cursor` of the page before.
        cursor: Query<Option<String>>,
        /// How many, 1 to 500 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<EndpointDeliveryPage>> {
        self.confine(&token.0, &tenant.0)?;
        let (_, limit) = page(None, limit.0)?;
        self.hub
            .tenancy
            .endpoint(&tenant.0, &endpoint.0)
            .await
            .map_err(tenancy_problem)?;
        let state = state.0.map(|s| match s {
            StateFilter::Pending => "pending",
            StateFilter::Delivered => "delivered",
            StateFilter::Dead => "dead",
        });
        let mut rows = self
            .hub
            .store
            .endpoint_deliveries(
                &endpoints::channel_name(&endpoint.0),
                cursor.0.as_deref(),
                state,
                limit + 1,
            )
            .await
            .map_err(store_problem)?;
        let next_cursor = next_page(&mut rows, limit, |d| d.id.clone());
        Ok(Json(EndpointDeliveryPage {
            items: rows
                .into_iter()
                .map(|d| EndpointDeliveryOut {
                    next_attempt_at: (d.state == "pending").then(|| rfc3339(d.next_at)),
                    state: DeliveryState::parse(&d.state),
                    id: d.id,
                    notification_id: d.notification_id,
                    kind: d.kind,
                    attempts: d.attempts as u32,
                    last_error: d.last_error,
                    created_at: rfc3339(d.created_at),
                    updated_at: rfc3339(d.updated_at),
                })
                .collect(),
            next_cursor,
        }))
    }

    /// Get one of an endpoint's deliveries with every attempt.
    #[oai(
        path = "/tenants/:tenant/endpoints/:endpoint/deliveries/:delivery",
        method = "get",
        tag = "Tag::Endpoints",
        operation_id = "getEndpointDelivery"
    )]
    async fn get_delivery(
        &self,
        token: TenantReadToken,
        tenant: Path<String>,
        endpoint: Path<String>,
        delivery: Path<String>,
    ) -> ApiResult<Json<DeliveryOut>> {
        self.confine(&token.0, &tenant.0)?;
        let detail = self
            .hub
            .endpoint_delivery(&tenant.0, &endpoint.0, &delivery.0)
            .await
            .map_err(tenancy_problem)?;
        Ok(Json(delivery_out(detail)))
    }

    /// Replay one of an endpoint's dead deliveries.
    #[oai(
        path = "/tenants/:tenant/endpoints/:endpoint/deliveries/:delivery/replay",
        method = "post",
        tag = "Tag::Endpoints",
        operation_id = "replayEndpointDelivery"
    )]
    async fn replay_delivery(
        &self,
        token: TenantAdminToken,
        tenant: Path<String>,
        endpoint: Path<String>,
        delivery: Path<String>,
    ) -> ApiResult<Json<DeliveryOut>> {
        self.confine(&token.0, &tenant.0)?;
        let detail = self
            .hub
            .replay_endpoint_delivery(&tenant.0, &endpoint.0, &delivery.0)
            .await
            .map_err(tenancy_problem)?;
        Ok(Json(delivery_out(detail)))
    }
}

impl Api {
    /// 404 for a tenant that does not exist, before anything is accepted for it.
    async fn known_tenant(&self, tenant: &str) -> ApiResult<()> {
        if self
            .hub
            .tenancy
            .tenant_exists(tenant)
            .await
            .map_err(tenancy_problem)?
        {
            Ok(())
        } else {
            Err(not_found("no tenant has this id"))
        }
    }
}
