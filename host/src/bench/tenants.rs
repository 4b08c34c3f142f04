//! `switchyard bench --tenants N --endpoints-per-tenant M`: the same pipeline, but every
//! notification is sent for a tenant and goes to that tenant's matching endpoints instead
//! of a YAML channel.
//!
//! Every tenant gets the same [`SHAPE`] of endpoints (kind globs, some attribute filters),
//! so runs with 1 tenant and with 10,000 differ only in how many endpoints the hub's
//! directory holds. The criterion bench `endpoints` builds its directories from the same
//! shape.
//!
//! The tenants and endpoints are written into the hub's store before the hub starts, in
//! large transactions (the same columns and JSON encodings as the store writes), and
//! each endpoint's signing secret is sealed into the vault through [`Vault::set`], as
//! creating an endpoint through the API does. Every endpoint signs with the bench's one
//! key, so the receiver can check a sample of signatures; each is sealed on its own, under
//! its own endpoint's name.
//!
//! The rows are dated as if made one a second until a second ago, as tenants and endpoints
//! made through the API over time would be.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use sqlx::QueryBuilder;

use crate::routing::endpoints::{self, SIGNING_KEY};
use crate::store::{self, EndpointRow, Store, Tenant};
use crate::vault::{KeySource, Vault};

/// The kind every tenant notification of the bench has.
pub const KIND: &str = "bench.tick";

/// The attributes every tenant notification of the bench carries, as JSON.
pub const ATTRIBUTES_JSON: &str = r#"{"region":"eu","tier":"gold"}"#;

/// The same attributes, as the hub holds them.
pub fn attributes() -> Vec<(String, String)> {
    vec![
        ("region".to_owned(), "eu".to_owned()),
        ("tier".to_owned(), "gold".to_owned()),
    ]
}

/// One endpoint of a tenant's shape: kind globs, attribute filters, and whether a
/// notification of [`KIND`] with [`attributes`] is for it.
pub struct Template {
    pub kinds: &'static [&'static str],
    pub attributes: &'static [(&'static str, &'static [&'static str])],
    pub matches: bool,
}

/// The endpoints of every tenant, in order; a tenant with more than ten repeats them. Two
/// of the ten take the bench's notifications; the other eight fail on the kind, on an
/// attribute value, or on an attribute the notification does not carry, so matching has
/// to look at all ten.
pub const SHAPE: [Template; 10] = [
    Template {
        kinds: &["order.*"],
        attributes: &[],
        matches: false,
    },
    Template {
        kinds: &["bench.*"],
        attributes: &[],
        matches: true,
    },
    Template {
        kinds: &["bench.tick"],
        attributes: &[("region", &["us", "ca"])],
        matches: false,
    },
    Template {
        kinds: &["*.tick"],
        attributes: &[("region", &["eu", "uk"]), ("tier", &["gold", "platinum"])],
        matches: true,
    },
    Template {
        kinds: &["invoice.*", "payment.*"],
        attributes: &[],
        matches: false,
    },
    Template {
        kinds: &["bench.?ick"],
        attributes: &[("tier", &["bronze"])],
        matches: false,
    },
    Template {
        kinds: &["user.*"],
        attributes: &[("tier", &["gold"])],
        matches: false,
    },
    Template {
        kinds: &[],
        attributes: &[("plan", &["pro"])],
        matches: false,
    },
    Template {
        kinds: &["audit.*.done", "bench.tock"],
        attributes: &[],
        matches: false,
    },
    Template {
        kinds: &["bench.*"],
        attributes: &[("region", &["apac"])],
        matches: false,
    },
];

/// How many of a tenant's first `per_tenant` endpoints take a bench notification: the
/// deliveries each notification makes.
pub fn fanout(per_tenant: u32) -> u32 {
    (0..per_tenant as usize)
        .filter(|i| SHAPE[i % SHAPE.len()].matches)
        .count() as u32
}

/// Tenant number `i`'s id.
pub fn tenant_id(i: u32) -> String {
    format!("tenant-{i:05}")
}

/// The tenant rows, all created at `now`.
pub fn tenants(count: u32, now: i64) -> Vec<Tenant> {
    (0..count)
        .map(|i| Tenant {
            id: tenant_id(i),
            name: format!("Bench tenant {i}"),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        })
        .collect()
}

/// The endpoint rows of tenant `tenant`: `per_tenant` of them, following [`SHAPE`], all
/// POSTing to `url` (the receiver's). The `n`th matching endpoint gets `?s=n` so the
/// receiver can tell a notification's deliveries apart; the others `?s=none`.
pub fn endpoint_rows(tenant: &str, per_tenant: u32, url: &str, now: i64) -> Vec<EndpointRow> {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let mut slot = 0;
    (0..per_tenant as usize)
        .map(|i| {
            let template = &SHAPE[i % SHAPE.len()];
            let query = if template.matches {
                slot += 1;
                format!("?s={}", slot - 1)
            } else {
                "?s=none".to_owned()
            };
            EndpointRow {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: tenant.to_owned(),
                description: format!("bench endpoint {i}"),
                url: Some(format!("{url}{query}")),
                plugin: "webhook".to_owned(),
                config: serde_json::json!({}),
                allowed_hosts: vec![host.clone()],
                kinds: template.kinds.iter().map(|k| (*k).to_owned()).collect(),
                attributes: template
                    .attributes
                    .iter()
                    .map(|(name, values)| {
                        (
                            (*name).to_owned(),
                            values.iter().map(|v| (*v).to_owned()).collect(),
                        )
                    })
                    .collect::<BTreeMap<_, _>>(),
                transforms: Vec::new(),
                rate_limit: None,
                // As the YAML channel of the default bench.
                retry_schedule: Some(vec!["1s".into(), "2s".into(), "5s".into()]),
                enabled: true,
                disabled_reason: None,
                previous_secret_until: None,
                failing_since: None,
                created_at: now,
                updated_at: now,
                deleted_at: None,
                secret_names: Vec::new(),
            }
        })
        .collect()
}

/// Every tenant and endpoint, as a directory applies them (what the criterion bench fills
/// its directories with).
pub fn changes(tenant_count: u32, per_tenant: u32, url: &str) -> store::Changes {
    let now = store::now_ms();
    let tenants = tenants(tenant_count, now);
    let endpoints = tenants
        .iter()
        .flat_map(|t| endpoint_rows(&t.id, per_tenant, url, now))
        .collect();
    store::Changes { tenants, endpoints }
}

/// What seeding took.
pub struct Seeded {
    pub tenants: u32,
    pub endpoints: u64,
    /// Writing the tenant and endpoint rows.
    pub rows: Duration,
    /// Sealing the signing secrets into the vault.
    pub secrets: Duration,
}

/// Rows per multi-row INSERT: 19 columns × 500 stays under SQLite's 32766 bound values.
const ROWS_PER_INSERT: usize = 500;
/// Secrets sealed at once (the store has one writer; this only overlaps the round trips).
const SECRETS_IN_FLIGHT: usize = 16;

/// Inserts tenants and endpoint rows on `$connection` (of database `$Db`) in one
/// transaction, with multi-row INSERTs of the store's columns and JSON encodings.
macro_rules! insert_rows {
    ($connection:ident, $Db:ty, $tenants:expr, $endpoints:expr) => {{
        let mut tx = sqlx::Connection::begin(&mut $connection).await?;
        for chunk in $tenants.chunks(ROWS_PER_INSERT) {
            QueryBuilder::<$Db>::new(
                "INSERT INTO tenants (id, name, created_at, updated_at, deleted_at) ",
            )
            .push_values(chunk, |mut row, t: &Tenant| {
                row.push_bind(&t.id)
                    .push_bind(&t.name)
                    .push_bind(t.created_at)
                    .push_bind(t.updated_at)
                    .push_bind(t.deleted_at);
            })
            .build()
            .execute(&mut *tx)
            .await?;
        }
        for chunk in $endpoints.chunks(ROWS_PER_INSERT) {
            QueryBuilder::<$Db>::new(
                "INSERT INTO endpoints (id, tenant_id, description, url, plugin, config, \
                 allowed_hosts, kinds, attributes, transforms, rate_limit, retry_schedule, \
                 enabled, disabled_reason, previous_secret_until, failing_since, created_at, \
                 updated_at, deleted_at) ",
            )
            .push_values(chunk, |mut row, e: &EndpointRow| {
                row.push_bind(&e.id)
                    .push_bind(&e.tenant_id)
                    .push_bind(&e.description)
                    .push_bind(&e.url)
                    .push_bind(&e.plugin)
                    .push_bind(to_json(&e.config))
                    .push_bind(to_json(&e.allowed_hosts))
                    .push_bind(to_json(&e.kinds))
                    .push_bind(to_json(&e.attributes))
                    .push_bind(to_json(&e.transforms))
                    .push_bind(&e.rate_limit)
                    .push_bind(e.retry_schedule.as_ref().map(to_json))
                    .push_bind(e.enabled)
                    .push_bind(&e.disabled_reason)
                    .push_bind(e.previous_secret_until)
                    .push_bind(e.failing_since)
                    .push_bind(e.created_at)
                    .push_bind(e.updated_at)
                    .push_bind(e.deleted_at);
            })
            .build()
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }};
}

/// Writes `tenant_count` tenants with `per_tenant` endpoints each into the store at
/// `store_url` (creating and migrating it if needed), and seals every endpoint's signing
/// secret `secret` into the vault whose key file is `key_file` (or
/// `SWITCHYARD_MASTER_KEY`). For a hub that has not started yet. Returns the store, still
/// open, for the bench to read the router's position from.
pub async fn seed(
    store_url: &str,
    key_file: &Path,
    tenant_count: u32,
    per_tenant: u32,
    url: &str,
    secret: &str,
) -> anyhow::Result<(Seeded, Store)> {
    let store = Store::open(store_url)
        .await
        .context("could not open the hub's store to seed it")?;
    let now = store::now_ms();
    let mut tenants = tenants(tenant_count, now);
    let mut endpoints: Vec<EndpointRow> = Vec::with_capacity(tenants.len() * per_tenant as usize);
    for tenant in &tenants {
        endpoints.extend(endpoint_rows(&tenant.id, per_tenant, url, now));
    }
    // One a second, tenants first, the newest a second ago (see the module's docs).
    let total = (tenants.len() + endpoints.len()) as i64;
    let mut times = (0..total).map(|i| now - (total - i) * 1000);
    for tenant in &mut tenants {
        let at = times.next().expect("one time per row");
        (tenant.created_at, tenant.updated_at) = (at, at);
    }
    for endpoint in &mut endpoints {
        let at = times.next().expect("one time per row");
        (endpoint.created_at, endpoint.updated_at) = (at, at);
    }

    let started = Instant::now();
    // A connection of our own, beside the store's: the store writes one row at a time.
    if store_url.starts_with("sqlite://") {
        let options: sqlx::sqlite::SqliteConnectOptions = store_url.parse()?;
        let mut connection = sqlx::ConnectOptions::connect(
            &options
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10)),
        )
        .await?;
        insert_rows!(connection, sqlx::Sqlite, &tenants, &endpoints);
        sqlx::Connection::close(connection).await?;
    } else {
        let options: sqlx::postgres::PgConnectOptions = store_url.parse()?;
        let mut connection = sqlx::ConnectOptions::connect(&options).await?;
        insert_rows!(connection, sqlx::Postgres, &tenants, &endpoints);
        sqlx::Connection::close(connection).await?;
    }
    let rows = started.elapsed();

    let started = Instant::now();
    let vault = Vault::open(
        store.clone(),
        KeySource::from_env_or_file(key_file.to_owned()),
    )
    .await
    .context("could not open the vault to seal the endpoints' secrets")?;
    let mut sealing = futures::stream::iter(endpoints.iter().map(|endpoint| {
        let channel = endpoints::channel_name(&endpoint.id);
        let vault = &vault;
        async move { vault.set(&channel, SIGNING_KEY, secret).await }
    }))
    .buffer_unordered(SECRETS_IN_FLIGHT);
    while let Some(result) = sealing.next().await {
        result.context("could not seal an endpoint's signing secret")?;
    }
    drop(sealing);
    let secrets = started.elapsed();
    let seeded = Seeded {
        tenants: tenant_count,
        endpoints: endpoints.len() as u64,
        rows,
        secrets,
    };
    Ok((seeded, store))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

/// Changes one random endpoint's description `per_second` times a second, for ever (the
/// caller aborts it), counting the changes in `edits`. A failed change is skipped: the
/// bench measures deliveries, and the hub's log says what went wrong.
pub async fn edit_endpoints(
    store: Store,
    tenant_count: u32,
    per_second: u32,
    edits: Arc<AtomicU64>,
) {
    let mut every = tokio::time::interval(Duration::from_secs(1) / per_second);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let page = store::Page {
        after: None,
        limit: endpoints::MAX_ENDPOINTS_PER_TENANT as u32,
    };
    loop {
        every.tick().await;
        let tenant = tenant_id(rand::random_range(0..tenant_count));
        let Ok(mut rows) = store.list_endpoints(&tenant, &page).await else {
            continue;
        };
        if rows.is_empty() {
            continue;
        }
        let mut row = rows.swap_remove(rand::random_range(0..rows.len()));
        let n = edits.fetch_add(1, Ordering::Relaxed);
        row.description = format!("bench endpoint, edit {n}");
        let _ = store.update_endpoint(&row).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_of_ten_take_the_bench_notification() {
        assert_eq!(fanout(10), 2);
        assert_eq!(fanout(1), 0);
        assert_eq!(fanout(20), 4);
        let now = store::now_ms();
        let attributes = attributes();
        let parsed: BTreeMap<String, String> = serde_json::from_str(ATTRIBUTES_JSON).unwrap();
        assert_eq!(parsed.into_iter().collect::<Vec<_>>(), attributes);
        let rows = endpoint_rows("t", 10, "http://127.0.0.1:9/hook", now);
        let mut slots = Vec::new();
        for (row, template) in rows.into_iter().zip(SHAPE.iter()) {
            let url = row.url.clone().unwrap();
            let endpoint = endpoints::Endpoint::from_row(row, now).unwrap();
            assert_eq!(endpoint.takes(KIND, &attributes), template.matches, "{url}");
            if template.matches {
                slots.push(url);
            }
        }
        assert_eq!(
            slots,
            ["http://127.0.0.1:9/hook?s=0", "http://127.0.0.1:9/hook?s=1"]
        );
    }
}
