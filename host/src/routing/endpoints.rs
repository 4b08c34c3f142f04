//! Endpoints: destinations that tenants register at run time through the API, beside the
//! operator's YAML channels.
//!
//! A notification sent for a tenant goes to each of that tenant's enabled endpoints whose
//! filters it passes, as one delivery on channel `endpoint:<id>` (a name no YAML channel can
//! have, since `:` is not allowed there). From there on it is an ordinary delivery: a lane
//! with the endpoint's rate limit, the endpoint's plugin and retry schedule, attempts, dead
//! letters and replays.
//!
//! Every process keeps a [`Directory`] in memory, indexed by tenant, so matching costs the
//! same with ten endpoints or a hundred thousand: one hash lookup, then the tenant's own
//! few endpoints. It follows the store by `updated_at` ([`LiveDirectory::run`]), so an
//! endpoint changed through another process is seen within a second.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{ChannelSpec, DEFAULT_RETRY_SCHEDULE, KindPattern, RateLimit, SecretSource};
use crate::store::{self, EndpointRow, Store, Tenant};

/// Every endpoint channel's name starts with this.
pub const CHANNEL_PREFIX: &str = "endpoint:";
/// The secret an endpoint signs with (`whsec_…`, kept in the vault).
pub const SIGNING_KEY: &str = "signing_key";
/// The rotated-out secret, still sent beside the new one until its grace ends.
pub const PREVIOUS_SIGNING_KEY: &str = "previous_signing_key";
/// The most endpoints one tenant may have: matching scans a tenant's endpoints.
pub const MAX_ENDPOINTS_PER_TENANT: usize = 100;
/// How often the directory reads what other processes changed.
const REFRESH: Duration = Duration::from_secs(1);
/// How far before the previous read each refresh starts: a change stamped by a process
/// whose clock runs behind, or committed a moment after it was stamped, is still picked up.
const REFRESH_OVERLAP_MS: i64 = 5_000;

/// The channel name of endpoint `id`.
pub fn channel_name(id: &str) -> String {
    format!("{CHANNEL_PREFIX}{id}")
}

/// The endpoint id of a channel name, when it is an endpoint's.
pub fn endpoint_id(channel: &str) -> Option<&str> {
    channel.strip_prefix(CHANNEL_PREFIX)
}

/// A tenant id: 1 to 64 of letters, digits, `_`, `-` and `.`, starting with a letter or a
/// digit, so an operator can use their own customer ids (and `.` or `..`, which clients
/// resolve away in URL paths, are not ids).
pub fn is_valid_tenant_id(id: &str) -> bool {
    id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// An endpoint ready to match and deliver.
#[derive(Debug)]
pub struct Endpoint {
    pub row: EndpointRow,
    /// `endpoint:<id>`.
    pub channel: Arc<str>,
    kinds: Vec<KindPattern>,
    /// As a YAML channel would be written: what the delivery path reads.
    pub spec: ChannelSpec,
}

impl Endpoint {
    /// Builds the endpoint from its row. Rows are checked when written (see
    /// [`crate::tenancy`]), so what does not parse here is skipped with a warning.
    pub fn from_row(row: EndpointRow, now_ms: i64) -> Result<Endpoint, String> {
        let kinds = row
            .kinds
            .iter()
            .map(|k| KindPattern::new(k))
            .collect::<Result<Vec<_>, _>>()?;
        let retry_schedule = match &row.retry_schedule {
            None => DEFAULT_RETRY_SCHEDULE.to_vec(),
            Some(delays) => delays
                .iter()
                .map(|d| crate::yaml::parse_duration(d))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let rate_limit = row
            .rate_limit
            .as_deref()
            .map(|text| RateLimit::parse(text).ok_or_else(|| format!("rate limit `{text}`")))
            .transpose()?;
        let mut config = row.config.clone();
        if let Some(url) = &row.url
            && let Some(object) = config.as_object_mut()
        {
            object.insert("url".into(), url.clone().into());
        }
        let mut secrets = BTreeMap::from([(SIGNING_KEY.to_owned(), SecretSource::Vault)]);
        for name in &row.secret_names {
            secrets.insert(name.clone(), SecretSource::Vault);
        }
        if row
            .previous_secret_until
            .is_some_and(|until| until > now_ms)
        {
            secrets.insert(PREVIOUS_SIGNING_KEY.to_owned(), SecretSource::VaultIfSet);
        }
        let spec = ChannelSpec {
            plugin: row.plugin.clone(),
            config,
            secrets,
            allowed_hosts: row.allowed_hosts.clone(),
            retry_schedule,
            rate_limit,
            concurrency: None,
            transform: row
                .transforms
                .iter()
                .map(|t| Arc::from(t.as_str()))
                .collect(),
        };
        Ok(Endpoint {
            channel: channel_name(&row.id).into(),
            kinds,
            spec,
            row,
        })
    }

    /// Whether a notification of `kind` with `attributes` is for this endpoint.
    pub fn takes<K: AsRef<str>, V: AsRef<str>>(&self, kind: &str, attributes: &[(K, V)]) -> bool {
        self.row.enabled
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k.matches(kind)))
            && self.row.attributes.iter().all(|(name, accepted)| {
                attributes.iter().any(|(key, value)| {
                    key.as_ref() == name && accepted.iter().any(|a| a == value.as_ref())
                })
            })
    }
}

/// One tenant in the directory.
#[derive(Debug, Default)]
struct TenantEntry {
    /// The row, when the tenant itself has been read (endpoints may arrive first).
    tenant: Option<Tenant>,
    endpoints: Vec<Arc<Endpoint>>,
}

/// Every live tenant and endpoint, indexed for matching.
#[derive(Debug, Default)]
pub struct Directory {
    tenants: HashMap<String, TenantEntry>,
    endpoints: HashMap<String, Arc<Endpoint>>,
}

impl Directory {
    /// The endpoints of `tenant` that take a notification of `kind` with `attributes`.
    pub fn targets<K: AsRef<str>, V: AsRef<str>>(
        &self,
        tenant: &str,
        kind: &str,
        attributes: &[(K, V)],
    ) -> Vec<Arc<Endpoint>> {
        match self.tenants.get(tenant) {
            Some(entry) => entry
                .endpoints
                .iter()
                .filter(|e| e.takes(kind, attributes))
                .cloned()
                .collect(),
            None => Vec::new(),
        }
    }

    /// The endpoint with channel name `channel`.
    pub fn by_channel(&self, channel: &str) -> Option<&Arc<Endpoint>> {
        self.endpoints.get(endpoint_id(channel)?)
    }

    /// Whether tenant `id` exists (as far as this directory has seen).
    pub fn has_tenant(&self, id: &str) -> bool {
        self.tenants.get(id).is_some_and(|t| t.tenant.is_some())
    }

    pub fn tenant_count(&self) -> usize {
        self.tenants.values().filter(|t| t.tenant.is_some()).count()
    }

    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// Endpoints whose previous secret's grace has ended.
    fn expired_previous(&self, now_ms: i64) -> Vec<String> {
        self.endpoints
            .values()
            .filter(|e| e.row.previous_secret_until.is_some_and(|t| t <= now_ms))
            .map(|e| e.row.id.clone())
            .collect()
    }

    fn apply_tenant(&mut self, tenant: Tenant) {
        if tenant.deleted_at.is_some() {
            if let Some(entry) = self.tenants.remove(&tenant.id) {
                for endpoint in entry.endpoints {
                    self.endpoints.remove(&endpoint.row.id);
                }
            }
            return;
        }
        let id = tenant.id.clone();
        self.tenants.entry(id).or_default().tenant = Some(tenant);
    }

    fn apply_endpoint(&mut self, row: EndpointRow, now_ms: i64) {
        let id = row.id.clone();
        if let Some(old) = self.endpoints.get(&id)
            && old.row.updated_at > row.updated_at
        {
            return;
        }
        self.remove_endpoint(&id);
        if row.deleted_at.is_some() {
            return;
        }
        match Endpoint::from_row(row, now_ms) {
            Ok(endpoint) => {
                let endpoint = Arc::new(endpoint);
                self.tenants
                    .entry(endpoint.row.tenant_id.clone())
                    .or_default()
                    .endpoints
                    .push(endpoint.clone());
                self.endpoints.insert(id, endpoint);
            }
            Err(problem) => {
                tracing::warn!(endpoint = %id, %problem, "an endpoint in the store does not parse; it receives nothing");
            }
        }
    }

    fn remove_endpoint(&mut self, id: &str) {
        if let Some(old) = self.endpoints.remove(id)
            && let Some(entry) = self.tenants.get_mut(&old.row.tenant_id)
        {
            entry.endpoints.retain(|e| e.row.id != id);
        }
    }
}

/// The directory this process routes and delivers with, kept in step with the store.
pub struct LiveDirectory {
    store: Store,
    directory: RwLock<Directory>,
    /// When (this process's clock) the previous read began; 0 before the first.
    last_read: AtomicI64,
}

impl LiveDirectory {
    /// Reads every tenant and endpoint.
    pub async fn load(store: Store) -> store::Result<Arc<LiveDirectory>> {
        let live = Arc::new(LiveDirectory {
            store,
            directory: RwLock::default(),
            last_read: AtomicI64::new(0),
        });
        live.refresh().await?;
        Ok(live)
    }

    /// Reads what changed since the previous read began (and a little before).
    ///
    /// The window is anchored to when the previous read began, not to the newest row seen:
    /// anchored to a row, a quiet directory would read that row, and every row stamped with
    /// it (a bulk import), again every second for ever. Returns how many rows it read.
    pub async fn refresh(&self) -> store::Result<usize> {
        let started = store::now_ms();
        let previous = self.last_read.load(Ordering::Acquire);
        let since = if previous == 0 {
            0
        } else {
            previous - REFRESH_OVERLAP_MS
        };
        let changes = self.store.tenancy_changes(since).await?;
        let read = changes.tenants.len() + changes.endpoints.len();
        self.apply(changes);
        self.last_read.store(started, Ordering::Release);
        Ok(read)
    }

    /// Applies rows read from the store (or just written by this process). A row read again
    /// unchanged leaves its endpoint's `Arc` as it was: the delivery side keys what it
    /// builds from an endpoint (its grants) by that `Arc`.
    pub fn apply(&self, changes: store::Changes) {
        if changes.tenants.is_empty() && changes.endpoints.is_empty() {
            return;
        }
        let now = store::now_ms();
        let mut directory = self.directory.write().expect("directory lock");
        for tenant in changes.tenants {
            let known = directory
                .tenants
                .get(&tenant.id)
                .and_then(|t| t.tenant.as_ref());
            if known.is_none_or(|k| k != &tenant) {
                directory.apply_tenant(tenant);
            }
        }
        for row in changes.endpoints {
            let known = directory.endpoints.get(&row.id).map(|e| &e.row);
            if known != Some(&row) && !(known.is_none() && row.deleted_at.is_some()) {
                directory.apply_endpoint(row, now);
            }
        }
    }

    /// Reads the directory.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        self.directory.read().expect("directory lock")
    }

    /// The endpoint with channel name `channel`.
    pub fn endpoint(&self, channel: &str) -> Option<Arc<Endpoint>> {
        self.read().by_channel(channel).cloned()
    }

    /// Follows the store until `stop` fires. `expire` is called with every endpoint whose
    /// previous secret's grace has ended, so that secret can be destroyed.
    pub async fn run<F, Fut>(self: Arc<Self>, expire: F, stop: CancellationToken)
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
            match self.refresh().await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("reading endpoint changes again");
                }
                Ok(_) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "could not read endpoint changes; retrying");
                }
                Err(_) => {}
            }
            let expired = self.read().expired_previous(store::now_ms());
            for id in expired {
                expire(id).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, tenant: &str, kinds: &[&str]) -> EndpointRow {
        EndpointRow {
            id: id.into(),
            tenant_id: tenant.into(),
            description: String::new(),
            url: Some("https://example.com/hook".into()),
            plugin: "webhook".into(),
            config: serde_json::json!({}),
            allowed_hosts: vec!["example.com".into()],
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            attributes: BTreeMap::new(),
            transforms: Vec::new(),
            rate_limit: None,
            retry_schedule: None,
            enabled: true,
            disabled_reason: None,
            previous_secret_until: None,
            failing_since: None,
            created_at: 1,
            updated_at: 1,
            deleted_at: None,
            secret_names: Vec::new(),
        }
    }

    fn tenant(id: &str) -> Tenant {
        Tenant {
            id: id.into(),
            name: id.into(),
            created_at: 1,
            updated_at: 1,
            deleted_at: None,
        }
    }

    fn ids(endpoints: Vec<Arc<Endpoint>>) -> Vec<String> {
        endpoints.into_iter().map(|e| e.row.id.clone()).collect()
    }

    #[test]
    fn a_tenant_gets_only_its_own_matching_endpoints() {
        let mut directory = Directory::default();
        directory.apply_tenant(tenant("acme"));
        directory.apply_tenant(tenant("globex"));
        directory.apply_endpoint(row("a1", "acme", &["invoice.*"]), 0);
        directory.apply_endpoint(row("a2", "acme", &[]), 0);
        directory.apply_endpoint(row("g1", "globex", &["invoice.*"]), 0);
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            ids(directory.targets("acme", "invoice.paid", &none)),
            ["a1", "a2"]
        );
        assert_eq!(
            ids(directory.targets("acme", "user.created", &none)),
            ["a2"]
        );
        assert_eq!(
            ids(directory.targets("globex", "invoice.paid", &none)),
            ["g1"]
        );
        assert!(
            directory
                .targets("initech", "invoice.paid", &none)
                .is_empty()
        );
    }

    #[test]
    fn attribute_filters_and_disabled_endpoints() {
        let mut directory = Directory::default();
        let mut filtered = row("a1", "acme", &[]);
        filtered
            .attributes
            .insert("region".into(), vec!["eu".into(), "uk".into()]);
        directory.apply_endpoint(filtered, 0);
        let mut off = row("a2", "acme", &[]);
        off.enabled = false;
        directory.apply_endpoint(off, 0);
        assert_eq!(
            ids(directory.targets("acme", "x", &[("region", "uk")])),
            ["a1"]
        );
        assert!(
            directory
                .targets("acme", "x", &[("region", "us")])
                .is_empty()
        );
    }

    #[test]
    fn changes_replace_and_deletions_remove() {
        let mut directory = Directory::default();
        directory.apply_tenant(tenant("acme"));
        directory.apply_endpoint(row("a1", "acme", &["a.*"]), 0);
        let mut changed = row("a1", "acme", &["b.*"]);
        changed.updated_at = 2;
        directory.apply_endpoint(changed, 0);
        let none: [(&str, &str); 0] = [];
        assert!(directory.targets("acme", "a.x", &none).is_empty());
        assert_eq!(ids(directory.targets("acme", "b.x", &none)), ["a1"]);
        // An older row read late does not undo a newer one.
        directory.apply_endpoint(row("a1", "acme", &["a.*"]), 0);
        assert_eq!(ids(directory.targets("acme", "b.x", &none)), ["a1"]);
        let mut gone = row("a1", "acme", &["b.*"]);
        gone.updated_at = 3;
        gone.deleted_at = Some(3);
        directory.apply_endpoint(gone, 0);
        assert!(directory.targets("acme", "b.x", &none).is_empty());
        assert!(directory.by_channel("endpoint:a1").is_none());
        directory.apply_endpoint(row("a2", "acme", &[]), 0);
        let mut deleted = tenant("acme");
        deleted.deleted_at = Some(4);
        directory.apply_tenant(deleted);
        assert_eq!(directory.endpoint_count(), 0);
    }

    #[test]
    fn a_url_endpoint_delivers_with_the_webhook_plugin_and_its_secrets() {
        let mut rotated = row("a1", "acme", &[]);
        rotated.previous_secret_until = Some(2_000);
        let endpoint = Endpoint::from_row(rotated.clone(), 1_000).unwrap();
        assert_eq!(&*endpoint.channel, "endpoint:a1");
        assert_eq!(endpoint.spec.config["url"], "https://example.com/hook");
        assert!(endpoint.spec.secrets.contains_key(PREVIOUS_SIGNING_KEY));
        let later = Endpoint::from_row(rotated, 2_000).unwrap();
        assert!(!later.spec.secrets.contains_key(PREVIOUS_SIGNING_KEY));
        assert_eq!(later.spec.retry_schedule, DEFAULT_RETRY_SCHEDULE.to_vec());
    }

    #[test]
    fn tenant_ids() {
        assert!(is_valid_tenant_id("cus_123.eu-1"));
        assert!(!is_valid_tenant_id(""));
        assert!(!is_valid_tenant_id("a/b"));
        assert!(!is_valid_tenant_id(&"a".repeat(65)));
        assert!(!is_valid_tenant_id(".."));
        assert!(!is_valid_tenant_id("-a"));
        assert_eq!(endpoint_id("endpoint:x"), Some("x"));
        assert_eq!(endpoint_id("ops"), None);
    }
}
