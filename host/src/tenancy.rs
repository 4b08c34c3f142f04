//! Tenants and endpoints as users manage them: every check and every change, shared by
//! the REST API, GraphQL, the admin console and the customer portal, so each front end
//! only translates. Matching and delivering are [`crate::routing::endpoints`] and
//! [`crate::delivery`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rand::RngCore as _;

use crate::plugins::Plugins;
use crate::routing::endpoints::{
    self, LiveDirectory, MAX_ENDPOINTS_PER_TENANT, PREVIOUS_SIGNING_KEY, SIGNING_KEY,
};
use crate::routing::{KindPattern, LiveRoutes, PluginCatalog as _, RateLimit};
use crate::runtime::World;
use crate::store::{self, EndpointRefused, EndpointRow, Page, Store, Tenant};
use crate::vault::{self, Vault};

/// The kind of the notification a "send test event" makes. It goes only to the endpoint
/// named in its `endpoint` attribute, whatever that endpoint's filters.
pub const TEST_KIND: &str = "switchyard.endpoint.test";
/// The kind of the notification sent when an endpoint is disabled for failing.
pub const DISABLED_KIND: &str = "switchyard.endpoint.disabled";
/// The source of the hub's own notifications.
pub const SOURCE: &str = "switchyard";
/// How the source of what a tenant's own token sent begins (`tenant:api`,
/// `tenant:graphql`): such a notification goes to that tenant's endpoints only, never to
/// the operator's YAML routes, which a tenant must not reach (a pager, the team's chat).
pub const TENANT_SENT_PREFIX: &str = "tenant:";

/// The source of a notification sent through `front_door` (`api`, `graphql`) with a token
/// confined to `token_tenant`, if it is.
pub fn source<'a>(front_door: &'a str, token_tenant: Option<&str>) -> std::borrow::Cow<'a, str> {
    match token_tenant {
        None => front_door.into(),
        Some(_) => format!("{TENANT_SENT_PREFIX}{front_door}").into(),
    }
}

/// The grace of a rotated-out secret when none is asked for: a day, as receivers need to
/// deploy the new one.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
/// The longest grace that can be asked for.
pub const MAX_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

const MAX_DESCRIPTION: usize = 1000;
const MAX_URL: usize = 2048;
const MAX_KINDS: usize = 50;
const MAX_TEXT: usize = 255;
const MAX_ATTRIBUTES: usize = 20;
const MAX_CONFIG_BYTES: usize = 16 * 1024;
const MAX_ALLOWED_HOSTS: usize = 16;
const MAX_RETRIES: usize = 20;
const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 3600);
const MAX_SECRETS: usize = 16;
const MAX_SECRET_NAME: usize = 64;
const MAX_SECRET_VALUE: usize = 8 * 1024;

/// Why a change was refused. The texts are for the caller: they name fields and limits,
/// never values from the store or secrets.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Vault(#[from] vault::Error),
    #[error("the hub could not store that right now; nothing was done; retry")]
    Unavailable,
}

fn full(tenant: &str) -> TenancyError {
    TenancyError::Conflict(format!(
        "tenant `{tenant}` has {MAX_ENDPOINTS_PER_TENANT} endpoints, the most one may have"
    ))
}

/// A transform runs with the operator's secrets and reaches the operator's hosts, on a
/// payload the tenant may have written: only the operator attaches one.
fn operator_transforms() -> TenancyError {
    invalid(
        "transforms",
        "only the operator chooses an endpoint's transforms; send the endpoint's current `transforms` unchanged",
    )
}

fn invalid(field: &str, message: impl Into<String>) -> TenancyError {
    TenancyError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

pub type Result<T, E = TenancyError> = std::result::Result<T, E>;

/// Who is making a change: an operator may give an endpoint any channel plugin; a tenant
/// (a tenant-scoped token, the portal) only a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Operator,
    Tenant,
}

/// An endpoint as a user writes it. Its `Debug` shows the secrets' names only.
#[derive(Clone, Default)]
pub struct EndpointDraft {
    pub description: String,
    /// Where to POST (signed with Standard Webhooks by the `webhook` plugin)...
    pub url: Option<String>,
    /// ...or which channel plugin delivers, with its config and the hosts it may reach.
    pub plugin: Option<String>,
    pub config: Option<serde_json::Value>,
    pub allowed_hosts: Vec<String>,
    /// Kind globs; empty takes every kind.
    pub kinds: Vec<String>,
    pub attributes: BTreeMap<String, Vec<String>>,
    pub transforms: Vec<String>,
    pub rate_limit: Option<String>,
    pub retry_schedule: Option<Vec<String>>,
    pub enabled: bool,
    /// A `plugin` endpoint's own secrets (name -> value), sealed in the vault and never
    /// shown again. On an update, `None` keeps the ones it has; `Some` is the whole new set.
    pub secrets: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for EndpointDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointDraft")
            .field("description", &self.description)
            .field("url", &self.url)
            .field("plugin", &self.plugin)
            .field("config", &self.config)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("kinds", &self.kinds)
            .field("attributes", &self.attributes)
            .field("transforms", &self.transforms)
            .field("rate_limit", &self.rate_limit)
            .field("retry_schedule", &self.retry_schedule)
            .field("enabled", &self.enabled)
            .field(
                "secrets",
                &self.secrets.as_ref().map(|s| s.keys().collect::<Vec<_>>()),
            )
            .finish()
    }
}

/// A new endpoint and its signing secret, which is shown this once.
#[derive(Debug)]
pub struct Created {
    pub endpoint: EndpointRow,
    pub secret: String,
}

/// Tenants and endpoints, checked and kept.
#[derive(Clone)]
pub struct Tenancy {
    store: Store,
    directory: Arc<LiveDirectory>,
    vault: Arc<Vault>,
    routes: Arc<LiveRoutes>,
    plugins: Plugins,
}

/// A fresh Standard Webhooks signing secret: `whsec_` and 24 random bytes in base64.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

impl Tenancy {
    pub fn new(
        store: Store,
        directory: Arc<LiveDirectory>,
        vault: Arc<Vault>,
        routes: Arc<LiveRoutes>,
        plugins: Plugins,
    ) -> Tenancy {
        Tenancy {
            store,
            directory,
            vault,
            routes,
            plugins,
        }
    }

    pub fn directory(&self) -> &Arc<LiveDirectory> {
        &self.directory
    }

    /// Reads back what this process just wrote, so its own directory has it at once.
    async fn sync(&self) {
        if let Err(error) = self.directory.refresh().await {
            tracing::warn!(%error, "could not read endpoint changes back; they apply within a second");
        }
    }

    // ---- Tenants ---------------------------------------------------------------------

    pub async fn create_tenant(&self, id: &str, name: &str) -> Result<Tenant> {
        if !endpoints::is_valid_tenant_id(id) {
            return Err(invalid(
                "id",
                "a tenant id is 1 to 64 of letters, digits, `_`, `-` and `.`, starting with a letter or a digit",
            ));
        }
        let name = check_name(name)?;
        if !self.store.create_tenant(id, &name).await? {
            return Err(TenancyError::Conflict(format!(
                "a tenant with id `{id}` exists"
            )));
        }
        self.sync().await;
        self.tenant(id).await
    }

    pub async fn tenant(&self, id: &str) -> Result<Tenant> {
        self.store.tenant(id).await?.ok_or_else(|| no_tenant(id))
    }

    /// Whether tenant `id` exists: the directory first, then the store, as a tenant made
    /// through another process may not have reached this one's directory yet.
    pub async fn tenant_exists(&self, id: &str) -> Result<bool> {
        if self.directory.read().has_tenant(id) {
            return Ok(true);
        }
        Ok(self.store.tenant(id).await?.is_some())
    }

    pub async fn tenants(&self, page: &Page) -> Result<Vec<Tenant>> {
        Ok(self.store.list_tenants(page).await?)
    }

    pub async fn rename_tenant(&self, id: &str, name: &str) -> Result<Tenant> {
        let name = check_name(name)?;
        if !self.store.rename_tenant(id, &name).await? {
            return Err(no_tenant(id));
        }
        self.sync().await;
        self.tenant(id).await
    }

    /// Deletes the tenant, its endpoints and their secrets, and revokes its tokens (every
    /// process stops taking them within a second). Past deliveries and attempts stay
    /// (retention removes them); pending ones become dead letters.
    pub async fn delete_tenant(&self, id: &str) -> Result<()> {
        let Some(endpoint_ids) = self.store.delete_tenant(id).await? else {
            return Err(no_tenant(id));
        };
        for endpoint in endpoint_ids {
            self.forget_secrets(&endpoint).await;
        }
        self.sync().await;
        Ok(())
    }

    // ---- Endpoints -------------------------------------------------------------------

    pub async fn create_endpoint(
        &self,
        tenant: &str,
        draft: EndpointDraft,
        actor: Actor,
    ) -> Result<Created> {
        // Checked here to fail before sealing anything, and again as the row is stored.
        if !self.tenant_exists(tenant).await? {
            return Err(no_tenant(tenant));
        }
        let page = Page {
            after: None,
            limit: MAX_ENDPOINTS_PER_TENANT as u32,
        };
        if self.store.list_endpoints(tenant, &page).await?.len() >= MAX_ENDPOINTS_PER_TENANT {
            return Err(full(tenant));
        }
        if actor == Actor::Tenant && !draft.transforms.is_empty() {
            return Err(operator_transforms());
        }
        let now = store::now_ms();
        let mut draft = draft;
        let secrets = draft.secrets.take().unwrap_or_default();
        let mut row = self.check(tenant, draft, actor)?;
        row.secret_names = check_secrets(&secrets, &row)?;
        row.id = uuid::Uuid::now_v7().to_string();
        row.created_at = now;
        row.updated_at = now;
        let secret = generate_secret();
        // The secrets first: an endpoint that exists always has the ones it names.
        let channel = endpoints::channel_name(&row.id);
        self.vault.set(&channel, SIGNING_KEY, &secret).await?;
        for (name, value) in &secrets {
            self.vault.set(&channel, name, value).await?;
        }
        let refused = match self
            .store
            .insert_endpoint(&row, MAX_ENDPOINTS_PER_TENANT)
            .await?
        {
            Ok(()) => None,
            Err(EndpointRefused::NoTenant) => Some(no_tenant(tenant)),
            Err(EndpointRefused::Full) => Some(full(tenant)),
        };
        // Refused, nothing names this channel: its secrets go. (After a store error they
        // stay: the row may have been stored all the same, and would need them.)
        if let Some(error) = refused {
            self.forget_secrets(&row.id).await;
            return Err(error);
        }
        self.sync().await;
        Ok(Created {
            endpoint: row,
            secret,
        })
    }

    pub async fn endpoint(&self, tenant: &str, id: &str) -> Result<EndpointRow> {
        self.store
            .endpoint(tenant, id)
            .await?
            .ok_or_else(|| no_endpoint(tenant, id))
    }

    pub async fn endpoints(&self, tenant: &str, page: &Page) -> Result<Vec<EndpointRow>> {
        if !self.tenant_exists(tenant).await? {
            return Err(no_tenant(tenant));
        }
        Ok(self.store.list_endpoints(tenant, page).await?)
    }

    pub async fn update_endpoint(
        &self,
        tenant: &str,
        id: &str,
        draft: EndpointDraft,
        actor: Actor,
    ) -> Result<EndpointRow> {
        let current = self.endpoint(tenant, id).await?;
        // Not even to a URL: that would throw away the operator's plugin and its secrets.
        if actor == Actor::Tenant && current.url.is_none() {
            return Err(invalid(
                "plugin",
                "this endpoint's channel plugin was chosen by the operator; only the operator can change it",
            ));
        }
        if actor == Actor::Tenant && draft.transforms != current.transforms {
            return Err(operator_transforms());
        }
        let mut draft = draft;
        let secrets = draft.secrets.take();
        let mut row = self.check(tenant, draft, actor)?;
        row.id = id.to_owned();
        let channel = endpoints::channel_name(id);
        match &secrets {
            Some(secrets) => {
                row.secret_names = check_secrets(secrets, &row)?;
                // New values before the row names them, so no delivery finds one missing.
                for (name, value) in secrets {
                    self.vault.set(&channel, name, value).await?;
                }
            }
            // Kept, unless it is a URL endpoint now: the webhook plugin takes none.
            None if row.url.is_none() => row.secret_names = current.secret_names.clone(),
            None => {}
        }
        if !self.store.update_endpoint(&row).await? {
            return Err(no_endpoint(tenant, id));
        }
        for name in &current.secret_names {
            if !row.secret_names.contains(name) {
                self.vault.remove(&channel, name).await?;
            }
        }
        self.sync().await;
        self.endpoint(tenant, id).await
    }

    pub async fn delete_endpoint(&self, tenant: &str, id: &str) -> Result<()> {
        if !self.store.delete_endpoint(tenant, id).await? {
            return Err(no_endpoint(tenant, id));
        }
        self.forget_secrets(id).await;
        self.sync().await;
        Ok(())
    }

    /// A new signing secret, returned this once. The old one is still sent beside it for
    /// `grace` (zero: not at all), so receivers can switch without losing a delivery.
    /// Returns the new secret and until when the old one is still sent, if it is.
    pub async fn rotate_secret(
        &self,
        tenant: &str,
        id: &str,
        grace: Duration,
    ) -> Result<(String, Option<i64>)> {
        if grace > MAX_GRACE {
            return Err(invalid(
                "grace",
                format!(
                    "the grace is at most {}",
                    crate::yaml::format_duration(MAX_GRACE)
                ),
            ));
        }
        self.endpoint(tenant, id).await?;
        let channel = endpoints::channel_name(id);
        let secret = generate_secret();
        let old = self.vault.get(&channel, SIGNING_KEY).await?;
        let mut previous_until = None;
        if let (Some(old), false) = (old, grace.is_zero()) {
            self.vault.set(&channel, PREVIOUS_SIGNING_KEY, &old).await?;
            let until = store::now_ms() + grace.as_millis() as i64;
            self.store
                .set_previous_secret_until(id, Some(until), false)
                .await?;
            previous_until = Some(until);
        } else {
            self.vault.remove(&channel, PREVIOUS_SIGNING_KEY).await?;
            self.store
                .set_previous_secret_until(id, None, false)
                .await?;
        }
        self.vault.set(&channel, SIGNING_KEY, &secret).await?;
        self.sync().await;
        Ok((secret, previous_until))
    }

    /// Destroys endpoint `id`'s rotated-out secret once its grace has ended.
    pub async fn expire_previous_secret(&self, id: &str) {
        match self.store.set_previous_secret_until(id, None, true).await {
            Ok(true) => {
                let channel = endpoints::channel_name(id);
                if let Err(error) = self.vault.remove(&channel, PREVIOUS_SIGNING_KEY).await {
                    tracing::warn!(endpoint = %id, %error, "could not remove a rotated-out secret");
                }
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(endpoint = %id, %error, "could not end a rotated-out secret's grace")
            }
        }
    }

    /// Puts every delivery to the endpoint that died since `since` (Unix ms) back on its
    /// queue with a fresh schedule. Returns how many.
    pub async fn recover(&self, tenant: &str, id: &str, since: i64) -> Result<u64> {
        self.endpoint(tenant, id).await?;
        Ok(self
            .store
            .recover_channel(&endpoints::channel_name(id), since)
            .await?)
    }

    async fn forget_secrets(&self, id: &str) {
        let channel = endpoints::channel_name(id);
        if let Err(error) = self.vault.remove_channel(&channel).await {
            tracing::warn!(endpoint = %id, %error, "could not remove a deleted endpoint's secrets");
        }
    }

    /// Checks a draft and turns it into a row (id and times unset).
    fn check(&self, tenant: &str, draft: EndpointDraft, actor: Actor) -> Result<EndpointRow> {
        if draft.description.chars().count() > MAX_DESCRIPTION {
            return Err(invalid(
                "description",
                format!("at most {MAX_DESCRIPTION} characters"),
            ));
        }
        let (url, plugin, allowed_hosts) = match (&draft.url, &draft.plugin) {
            (Some(url), None) => {
                let host = check_url(url)?;
                (Some(url.clone()), "webhook".to_owned(), vec![host])
            }
            (None, Some(plugin)) => {
                if actor == Actor::Tenant {
                    return Err(invalid(
                        "plugin",
                        "only the operator can give an endpoint a channel plugin; give a `url`",
                    ));
                }
                if self.plugins.world(plugin) != Some(World::Channel) {
                    return Err(invalid(
                        "plugin",
                        format!("`{plugin}` is not an installed channel plugin"),
                    ));
                }
                if draft.allowed_hosts.len() > MAX_ALLOWED_HOSTS {
                    return Err(invalid(
                        "allowed_hosts",
                        format!("at most {MAX_ALLOWED_HOSTS} hosts"),
                    ));
                }
                let mut hosts = Vec::new();
                for host in &draft.allowed_hosts {
                    let host = host.trim().to_ascii_lowercase();
                    if host.is_empty()
                        || host.len() > MAX_TEXT
                        || !host
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
                    {
                        return Err(invalid(
                            "allowed_hosts",
                            "each host is a host name such as `api.example.com`",
                        ));
                    }
                    hosts.push(host);
                }
                (None, plugin.clone(), hosts)
            }
            _ => {
                return Err(invalid(
                    "url",
                    "give either `url` (a webhook) or `plugin` (a channel plugin), not both",
                ));
            }
        };
        let config = draft.config.unwrap_or_else(|| serde_json::json!({}));
        if !config.is_object() {
            return Err(invalid("config", "the config is a JSON object"));
        }
        if serde_json::to_string(&config).map_or(0, |c| c.len()) > MAX_CONFIG_BYTES {
            return Err(invalid(
                "config",
                format!("at most {MAX_CONFIG_BYTES} bytes of JSON"),
            ));
        }
        // A URL endpoint's config is the webhook plugin's, which refuses unknown keys: say
        // so now rather than at every delivery.
        if url.is_some()
            && let Some(key) = config.as_object().and_then(|c| {
                c.keys()
                    .find(|k| !["headers", "timeout_ms"].contains(&k.as_str()))
            })
        {
            return Err(invalid(
                "config",
                format!(
                    "a URL endpoint's config takes `headers` and `timeout_ms`, not `{}`",
                    shorten(key)
                ),
            ));
        }
        if draft.kinds.len() > MAX_KINDS {
            return Err(invalid("kinds", format!("at most {MAX_KINDS} patterns")));
        }
        for kind in &draft.kinds {
            if kind.is_empty() || kind.len() > MAX_TEXT {
                return Err(invalid(
                    "kinds",
                    format!("each pattern is 1 to {MAX_TEXT} characters"),
                ));
            }
            KindPattern::new(kind).map_err(|problem| invalid("kinds", problem))?;
        }
        if draft.attributes.len() > MAX_ATTRIBUTES
            || draft.attributes.iter().any(|(name, values)| {
                name.is_empty()
                    || name.len() > MAX_TEXT
                    || values.is_empty()
                    || values.len() > MAX_ATTRIBUTES
                    || values.iter().any(|v| v.len() > MAX_TEXT)
            })
        {
            return Err(invalid(
                "attributes",
                format!(
                    "at most {MAX_ATTRIBUTES} names, each with 1 to {MAX_ATTRIBUTES} accepted values of at most {MAX_TEXT} characters"
                ),
            ));
        }
        if draft.transforms.len() > crate::routing::MAX_TRANSFORMS {
            return Err(invalid(
                "transforms",
                format!("at most {} transforms", crate::routing::MAX_TRANSFORMS),
            ));
        }
        let table = self.routes.current();
        for name in &draft.transforms {
            if table.transform(name).is_none() && self.plugins.world(name) != Some(World::Transform)
            {
                return Err(invalid(
                    "transforms",
                    format!(
                        "`{}` is neither a transform in the routes file nor an installed transform plugin",
                        shorten(name)
                    ),
                ));
            }
        }
        if let Some(limit) = &draft.rate_limit
            && RateLimit::parse(limit).is_none()
        {
            return Err(invalid(
                "rate_limit",
                "write N/s, N/m or N/h with N at least 1, like 50/s",
            ));
        }
        if let Some(schedule) = &draft.retry_schedule {
            if schedule.len() > MAX_RETRIES {
                return Err(invalid(
                    "retry_schedule",
                    format!("at most {MAX_RETRIES} retries"),
                ));
            }
            for delay in schedule {
                let parsed = crate::yaml::parse_duration(delay)
                    .map_err(|_| invalid("retry_schedule", "write each delay like 5s, 5m or 2h"))?;
                if parsed > MAX_RETRY_DELAY {
                    return Err(invalid("retry_schedule", "each delay is at most 24h"));
                }
            }
        }
        Ok(EndpointRow {
            id: String::new(),
            tenant_id: tenant.to_owned(),
            description: draft.description,
            url,
            plugin,
            config,
            allowed_hosts,
            kinds: draft.kinds,
            attributes: draft.attributes,
            transforms: draft.transforms,
            rate_limit: draft.rate_limit,
            retry_schedule: draft.retry_schedule,
            enabled: draft.enabled,
            disabled_reason: None,
            previous_secret_until: None,
            failing_since: None,
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
            secret_names: Vec::new(),
        })
    }
}

/// Checks a `plugin` endpoint's own secrets; returns their names. The messages name the
/// rule broken, never a value.
fn check_secrets(secrets: &BTreeMap<String, String>, row: &EndpointRow) -> Result<Vec<String>> {
    if secrets.is_empty() {
        return Ok(Vec::new());
    }
    if row.url.is_some() {
        return Err(invalid(
            "secrets",
            "a URL endpoint signs with its own signing secret and takes no others; `secrets` are for a channel `plugin`",
        ));
    }
    if secrets.len() > MAX_SECRETS {
        return Err(invalid("secrets", format!("at most {MAX_SECRETS} secrets")));
    }
    for (name, value) in secrets {
        if name.len() > MAX_SECRET_NAME || !crate::routing::is_valid_secret_name(name) {
            return Err(invalid(
                "secrets",
                format!(
                    "a secret name is 1 to {MAX_SECRET_NAME} of letters, digits, `_`, `-` or `.`"
                ),
            ));
        }
        if name == SIGNING_KEY || name == PREVIOUS_SIGNING_KEY {
            return Err(invalid(
                "secrets",
                format!(
                    "`{name}` is the endpoint's signing secret, which the hub generates; rotate it instead"
                ),
            ));
        }
        if value.is_empty() || value.len() > MAX_SECRET_VALUE {
            return Err(invalid(
                "secrets",
                format!("`{name}` must be 1 to {MAX_SECRET_VALUE} bytes"),
            ));
        }
    }
    Ok(secrets.keys().cloned().collect())
}

impl crate::pipeline::Hub {
    /// Sends a test notification (kind [`TEST_KIND`]) to endpoint `id` of `tenant` only.
    /// Returns the notification's id once it is durable.
    pub async fn send_endpoint_test(&self, tenant: &str, id: &str) -> Result<String> {
        let endpoint = self.tenancy.endpoint(tenant, id).await?;
        let draft = crate::runtime::Draft {
            kind: TEST_KIND.to_owned(),
            attributes: vec![("endpoint".to_owned(), endpoint.id.clone())],
            payload: serde_json::json!({
                "message": "a test notification from Switchyard",
                "endpoint_id": endpoint.id,
            })
            .to_string(),
            idempotency_key: None,
        };
        match self
            .acceptor
            .accept(SOURCE, None, Some(tenant), vec![draft], None)
            .await
        {
            Ok(store::Accepted::Stored(mut items)) | Ok(store::Accepted::Replayed(mut items)) => {
                Ok(items.pop().map(|item| item.id).unwrap_or_default())
            }
            Ok(_) => Err(TenancyError::Conflict(
                "the test notification was not accepted".into(),
            )),
            Err(error) => {
                tracing::error!(%error, "could not accept a test notification");
                Err(TenancyError::Unavailable)
            }
        }
    }

    /// Delivery `delivery` of endpoint `id` of `tenant`, with its attempts; not found when
    /// it is another endpoint's, whoever's that is.
    pub async fn endpoint_delivery(
        &self,
        tenant: &str,
        id: &str,
        delivery: &str,
    ) -> Result<store::DeliveryDetail> {
        self.tenancy.endpoint(tenant, id).await?;
        let not_found = || {
            TenancyError::NotFound(format!(
                "endpoint `{}` has no delivery with id `{}`",
                shorten(id),
                shorten(delivery)
            ))
        };
        let Some((channel, notification)) = self.store.delivery_place(delivery).await? else {
            return Err(not_found());
        };
        if channel != endpoints::channel_name(id) {
            return Err(not_found());
        }
        self.store
            .deliveries_of(&notification)
            .await?
            .into_iter()
            .find(|d| d.id == delivery)
            .ok_or_else(not_found)
    }

    /// Replays dead delivery `delivery` of endpoint `id` of `tenant`.
    pub async fn replay_endpoint_delivery(
        &self,
        tenant: &str,
        id: &str,
        delivery: &str,
    ) -> Result<store::DeliveryDetail> {
        let detail = self.endpoint_delivery(tenant, id, delivery).await?;
        if detail.state != "dead" {
            return Err(TenancyError::Conflict(format!(
                "delivery `{}` is {}, not dead; only dead deliveries are replayed",
                shorten(delivery),
                detail.state
            )));
        }
        self.store.replay(delivery).await?;
        self.endpoint_delivery(tenant, id, delivery).await
    }
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(invalid("name", "a name is 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

/// Checks a webhook URL and returns its host (what the plugin may reach).
fn check_url(url: &str) -> Result<String> {
    if url.len() > MAX_URL {
        return Err(invalid("url", format!("at most {MAX_URL} characters")));
    }
    let parsed = url::Url::parse(url).map_err(|_| invalid("url", "not an absolute http(s) URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("url", "the URL's scheme is http or https"));
    }
    let host = match parsed.host_str() {
        Some(host) if !host.is_empty() => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
        _ => return Err(invalid("url", "the URL has no host")),
    };
    // The hub answers these names itself (the WebSocket inbox): not a place to send to.
    let local = crate::runtime::LOCAL_SUFFIX;
    let name = host.trim_end_matches('.');
    if name.ends_with(local) || name == &local[1..] {
        return Err(invalid(
            "url",
            format!("names under `{}` are the hub's own", &local[1..]),
        ));
    }
    Ok(host)
}

/// A name from the caller, cut short for a message.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 64 {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(64).collect::<String>())
    }
}

fn no_tenant(id: &str) -> TenancyError {
    TenancyError::NotFound(format!("no tenant has id `{}`", shorten(id)))
}

fn no_endpoint(tenant: &str, id: &str) -> TenancyError {
    TenancyError::NotFound(format!(
        "tenant `{}` has no endpoint with id `{}`",
        shorten(tenant),
        shorten(id)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_standard_webhooks_secrets() {
        let secret = generate_secret();
        assert!(secret.starts_with("whsec_"));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&secret[6..])
            .unwrap();
        assert_eq!(bytes.len(), 24);
        assert_ne!(secret, generate_secret());
    }

    #[test]
    fn a_draft_shows_its_secrets_names_only() {
        let draft = EndpointDraft {
            plugin: Some("slack".into()),
            secrets: Some(BTreeMap::from([("token".into(), "xoxb-4f2a".into())])),
            ..EndpointDraft::default()
        };
        let shown = format!("{draft:?}");
        assert!(
            shown.contains("\"token\"") && !shown.contains("xoxb-4f2a"),
            "{shown}"
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            check_url("https://Hooks.Example.com/x?y=1").unwrap(),
            "hooks.example.com"
        );
        assert_eq!(check_url("http://127.0.0.1:8080/h").unwrap(), "127.0.0.1");
        assert!(check_url("ftp://example.com").is_err());
        for local in [
            "http://websocket.switchyard.local/inbox",
            "http://WebSocket.Switchyard.Local./inbox",
            "https://switchyard.local",
        ] {
            assert!(check_url(local).is_err(), "{local}");
        }
        assert!(check_url("example.com/x").is_err());
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(MAX_URL))).is_err());
    }
}
