//! Tenants and their endpoints, as rows. What they mean (checking, matching, delivering)
//! lives in [`crate::routing::endpoints`]; this is only how they are kept.
//!
//! Deletions are soft for a while (`deleted_at`), because every process keeps an in-memory
//! directory that follows the tables by `updated_at`: a row that vanished outright would
//! never be seen to go.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::QueryBuilder;

use super::backend::{on_pool, on_writer};
use super::{Result, Store, now_ms};

/// A tenant (an "application"): one customer of the operator's product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

/// An endpoint as stored. The JSON columns are parsed; secrets are not here (they are in
/// the vault, under the endpoint's channel name), only the names of its plugin's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRow {
    pub id: String,
    pub tenant_id: String,
    pub description: String,
    pub url: Option<String>,
    pub plugin: String,
    pub config: serde_json::Value,
    pub allowed_hosts: Vec<String>,
    pub kinds: Vec<String>,
    pub attributes: BTreeMap<String, Vec<String>>,
    pub transforms: Vec<String>,
    pub rate_limit: Option<String>,
    pub retry_schedule: Option<Vec<String>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    /// The names of the secrets its channel plugin reads from the vault, besides the
    /// signing secret (operators' plugin endpoints only).
    pub secret_names: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    tenant_id: String,
    description: String,
    url: Option<String>,
    plugin: String,
    config: String,
    allowed_hosts: String,
    kinds: String,
    attributes: String,
    transforms: String,
    rate_limit: Option<String>,
    retry_schedule: Option<String>,
    enabled: bool,
    disabled_reason: Option<String>,
    previous_secret_until: Option<i64>,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
    secret_names: String,
}

const COLUMNS: &str = "id, tenant_id, description, url, plugin, config, allowed_hosts, kinds, \
     attributes, transforms, rate_limit, retry_schedule, enabled, disabled_reason, \
     previous_secret_until, failing_since, created_at, updated_at, deleted_at, secret_names";

fn json<T: serde::de::DeserializeOwned>(column: &'static str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        sqlx::Error::ColumnDecode {
            index: column.into(),
            source: Box::new(e),
        }
        .into()
    })
}

impl TryFrom<Row> for EndpointRow {
    type Error = super::Error;

    fn try_from(row: Row) -> Result<EndpointRow> {
        Ok(EndpointRow {
            config: json("config", &row.config)?,
            allowed_hosts: json("allowed_hosts", &row.allowed_hosts)?,
            kinds: json("kinds", &row.kinds)?,
            attributes: json("attributes", &row.attributes)?,
            transforms: json("transforms", &row.transforms)?,
            secret_names: json("secret_names", &row.secret_names)?,
            retry_schedule: row
                .retry_schedule
                .as_deref()
                .map(|text| json("retry_schedule", text))
                .transpose()?,
            id: row.id,
            tenant_id: row.tenant_id,
            description: row.description,
            url: row.url,
            plugin: row.plugin,
            rate_limit: row.rate_limit,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            previous_secret_until: row.previous_secret_until,
            failing_since: row.failing_since,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: row.deleted_at,
        })
    }
}

/// Dead-letters a deleted endpoint's pending deliveries: nothing will deliver them, and
/// dead letters say why.
const BURY_PENDING: &str = "UPDATE deliveries SET state = 'dead', \
     last_error = 'the endpoint was deleted', updated_at = $1 \
     WHERE channel LIKE 'endpoint:%' AND channel = $2 AND state = 'pending'";

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

/// One delivery to an endpoint, for its tenant.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EndpointDelivery {
    pub id: String,
    pub notification_id: String,
    pub kind: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: i64,
    pub next_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One page of a listing: rows after `after` (an id), at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: u32,
}

/// Why [`Store::insert_endpoint`] stored nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointRefused {
    /// No live tenant has the endpoint's `tenant_id`.
    NoTenant,
    /// The tenant has as many endpoints as it may.
    Full,
}

/// What changed since a time: the directory applies these.
#[derive(Debug, Default)]
pub struct Changes {
    pub tenants: Vec<Tenant>,
    pub endpoints: Vec<EndpointRow>,
}

impl Store {
    /// Creates tenant `id`; false when a live tenant has that id. A deleted one's id can be
    /// taken again (its endpoints stay deleted).
    pub async fn create_tenant(&self, id: &str, name: &str) -> Result<bool> {
        let now = now_ms();
        on_writer!(self, "create_tenant", Nothing, |pool, Db, dialect| {
            let done = sqlx::query(
                "INSERT INTO tenants (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, created_at = excluded.created_at, \
                 updated_at = excluded.updated_at, deleted_at = NULL \
                 WHERE tenants.deleted_at IS NOT NULL",
            )
            .bind(id)
            .bind(name)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The live tenant `id`.
    pub async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            Ok(sqlx::query_as(
                "SELECT id, name, created_at, updated_at, deleted_at FROM tenants \
                 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Live tenants by id.
    pub async fn list_tenants(&self, page: &Page) -> Result<Vec<Tenant>> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            Ok(sqlx::query_as(
                "SELECT id, name, created_at, updated_at, deleted_at FROM tenants \
                 WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2",
            )
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(i64::from(page.limit))
            .fetch_all(pool)
            .await?)
        })
    }

    /// Renames tenant `id`; false when there is no such live tenant.
    pub async fn rename_tenant(&self, id: &str, name: &str) -> Result<bool> {
        on_writer!(self, "rename_tenant", Nothing, |pool, Db, dialect| {
            let done = sqlx::query(
                "UPDATE tenants SET name = $1, updated_at = $2 WHERE id = $3 AND deleted_at IS NULL",
            )
            .bind(name)
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Deletes tenant `id` and its endpoints, revokes its tokens and ends its portal
    /// sessions; `None` when there is no such live tenant. Returns the deleted endpoints'
    /// ids (their secrets are for the caller to remove).
    pub async fn delete_tenant(&self, id: &str) -> Result<Option<Vec<String>>> {
        let now = now_ms();
        on_writer!(self, "delete_tenant", Nothing, |pool, Db, dialect| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE tenants SET deleted_at = $1, updated_at = $1 WHERE id = $2 AND deleted_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(None);
            }
            let ids: Vec<String> = sqlx::query_scalar(
                "UPDATE endpoints SET deleted_at = $1, updated_at = $1 \
                 WHERE tenant_id = $2 AND deleted_at IS NULL RETURNING id",
            )
            .bind(now)
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            // Its tokens go with it: a tenant made later with the same id is someone else.
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE tenant = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE portal_sessions SET expires_at = $1 WHERE tenant_id = $2 AND expires_at > $1",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            for endpoint in &ids {
                sqlx::query(BURY_PENDING)
                    .bind(now)
                    .bind(format!("endpoint:{endpoint}"))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(Some(ids))
        })
    }

    /// Stores a new endpoint (its id and times already set) when its tenant is live and
    /// has fewer than `max` endpoints. The check and the insert are one transaction that
    /// holds the tenant (its row, locked, on PostgreSQL; the write lock on SQLite), so
    /// creates in parallel cannot all pass the cap, and none lands on a tenant being
    /// deleted.
    pub async fn insert_endpoint(
        &self,
        endpoint: &EndpointRow,
        max: usize,
    ) -> Result<Result<(), EndpointRefused>> {
        on_writer!(self, "insert_endpoint", Nothing, |pool, Db, dialect| {
            let mut tx = pool
                .begin_with(dialect.pick("BEGIN IMMEDIATE", "BEGIN"))
                .await?;
            let live: Option<String> = sqlx::query_scalar(dialect.pick(
                "SELECT id FROM tenants WHERE id = $1 AND deleted_at IS NULL",
                "SELECT id FROM tenants WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
            ))
            .bind(&endpoint.tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
            if live.is_none() {
                return Ok(Err(EndpointRefused::NoTenant));
            }
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM endpoints WHERE tenant_id = $1 AND deleted_at IS NULL",
            )
            .bind(&endpoint.tenant_id)
            .fetch_one(&mut *tx)
            .await?;
            if count >= max as i64 {
                return Ok(Err(EndpointRefused::Full));
            }
            sqlx::query(&format!(
                "INSERT INTO endpoints ({COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
            ))
            .bind(&endpoint.id)
            .bind(&endpoint.tenant_id)
            .bind(&endpoint.description)
            .bind(&endpoint.url)
            .bind(&endpoint.plugin)
            .bind(to_json(&endpoint.config))
            .bind(to_json(&endpoint.allowed_hosts))
            .bind(to_json(&endpoint.kinds))
            .bind(to_json(&endpoint.attributes))
            .bind(to_json(&endpoint.transforms))
            .bind(&endpoint.rate_limit)
            .bind(endpoint.retry_schedule.as_ref().map(to_json))
            .bind(endpoint.enabled)
            .bind(&endpoint.disabled_reason)
            .bind(endpoint.previous_secret_until)
            .bind(endpoint.failing_since)
            .bind(endpoint.created_at)
            .bind(endpoint.updated_at)
            .bind(endpoint.deleted_at)
            .bind(to_json(&endpoint.secret_names))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Ok(()))
        })
    }

    /// Replaces what a user may change of endpoint `endpoint.id` of its tenant: destination,
    /// filters, limits, transforms and whether it is enabled. Enabling it again clears why
    /// it was disabled and its failure streak. False when there is no such live endpoint.
    pub async fn update_endpoint(&self, endpoint: &EndpointRow) -> Result<bool> {
        on_writer!(self, "update_endpoint", Nothing, |pool, Db, dialect| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE endpoints SET description = $1, url = $2, plugin = $3, config = $4, \
                 allowed_hosts = $5, kinds = $6, attributes = $7, transforms = $8, \
                 rate_limit = $9, retry_schedule = $10, \
                 disabled_reason = CASE WHEN $11 THEN NULL ELSE disabled_reason END, \
                 failing_since = CASE WHEN $11 AND NOT enabled THEN NULL ELSE failing_since END, \
                 enabled = $11, updated_at = $12, secret_names = $15 \
                 WHERE id = $13 AND tenant_id = $14 AND deleted_at IS NULL",
            )
            .bind(&endpoint.description)
            .bind(&endpoint.url)
            .bind(&endpoint.plugin)
            .bind(to_json(&endpoint.config))
            .bind(to_json(&endpoint.allowed_hosts))
            .bind(to_json(&endpoint.kinds))
            .bind(to_json(&endpoint.attributes))
            .bind(to_json(&endpoint.transforms))
            .bind(&endpoint.rate_limit)
            .bind(endpoint.retry_schedule.as_ref().map(to_json))
            .bind(endpoint.enabled)
            .bind(now_ms())
            .bind(&endpoint.id)
            .bind(&endpoint.tenant_id)
            .bind(to_json(&endpoint.secret_names))
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            if endpoint.enabled {
                // Deliveries held back while it was disabled are due again now, not when
                // their hold would have ended.
                sqlx::query(
                    "UPDATE deliveries SET next_at = $1 WHERE channel LIKE 'endpoint:%' \
                     AND channel = $2 AND state = 'pending' AND lease_owner IS NULL \
                     AND next_at > $1",
                )
                .bind(now_ms())
                .bind(format!("endpoint:{}", endpoint.id))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The live endpoint `id` of `tenant`.
    pub async fn endpoint(&self, tenant: &str, id: &str) -> Result<Option<EndpointRow>> {
        let row: Option<Row> = on_pool!(&self.reader, |pool, Db, dialect| {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM endpoints WHERE id = $1 AND tenant_id = $2 \
                 AND deleted_at IS NULL"
            ))
            .bind(id)
            .bind(tenant)
            .fetch_optional(pool)
            .await?
        });
        row.map(EndpointRow::try_from).transpose()
    }

    /// `tenant`'s live endpoints, oldest first.
    pub async fn list_endpoints(&self, tenant: &str, page: &Page) -> Result<Vec<EndpointRow>> {
        let rows: Vec<Row> = on_pool!(&self.reader, |pool, Db, dialect| {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM endpoints WHERE tenant_id = $1 AND deleted_at IS NULL \
                 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(tenant)
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(i64::from(page.limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(EndpointRow::try_from).collect()
    }

    /// Deletes endpoint `id` of `tenant`; false when there is no such live endpoint.
    pub async fn delete_endpoint(&self, tenant: &str, id: &str) -> Result<bool> {
        let now = now_ms();
        on_writer!(self, "delete_endpoint", Nothing, |pool, Db, dialect| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE endpoints SET deleted_at = $1, updated_at = $1 \
                 WHERE id = $2 AND tenant_id = $3 AND deleted_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query(BURY_PENDING)
                .bind(now)
                .bind(format!("endpoint:{id}"))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Removes the rows of tenants and endpoints deleted before `cutoff` (Unix ms), which
    /// every directory has long seen go. Returns how many rows went.
    pub async fn purge_deleted_tenancy(&self, cutoff: i64) -> Result<u64> {
        on_writer!(
            self,
            "purge_deleted_tenancy",
            Nothing,
            |pool, Db, dialect| {
                let mut tx = pool.begin().await?;
                let endpoints = sqlx::query("DELETE FROM endpoints WHERE deleted_at < $1")
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let tenants = sqlx::query("DELETE FROM tenants WHERE deleted_at < $1")
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(endpoints + tenants)
            }
        )
    }

    /// Every tenant and endpoint row changed at or after `since` (deleted ones included),
    /// for the directories. `since = 0` reads everything.
    pub async fn tenancy_changes(&self, since: i64) -> Result<Changes> {
        let (tenants, rows): (Vec<Tenant>, Vec<Row>) =
            on_pool!(&self.reader, |pool, Db, dialect| {
                let tenants = sqlx::query_as(
                    "SELECT id, name, created_at, updated_at, deleted_at FROM tenants \
                     WHERE updated_at >= $1",
                )
                .bind(since)
                .fetch_all(pool)
                .await?;
                let rows = sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM endpoints WHERE updated_at >= $1"
                ))
                .bind(since)
                .fetch_all(pool)
                .await?;
                (tenants, rows)
            });
        Ok(Changes {
            tenants,
            endpoints: rows
                .into_iter()
                .map(EndpointRow::try_from)
                .collect::<Result<_>>()?,
        })
    }

    /// Starts (`Some`) or ends (`None`) endpoint `id`'s failure streak. Only a change is
    /// written, so a streak keeps the time it began.
    pub async fn set_endpoint_failing(&self, id: &str, since: Option<i64>) -> Result<()> {
        on_writer!(
            self,
            "set_endpoint_failing",
            Nothing,
            |pool, Db, dialect| {
                let statement = if since.is_some() {
                    "UPDATE endpoints SET failing_since = $1, updated_at = $2 \
                 WHERE id = $3 AND failing_since IS NULL AND deleted_at IS NULL"
                } else {
                    "UPDATE endpoints SET failing_since = $1, updated_at = $2 \
                 WHERE id = $3 AND failing_since IS NOT NULL AND deleted_at IS NULL"
                };
                sqlx::query(statement)
                    .bind(since)
                    .bind(now_ms())
                    .bind(id)
                    .execute(pool)
                    .await?;
                Ok(())
            }
        )
    }

    /// Disables endpoint `id` for `reason` if it is enabled; true when this call did it (so
    /// exactly one process announces it).
    pub async fn disable_endpoint(&self, id: &str, reason: &str) -> Result<bool> {
        on_writer!(self, "disable_endpoint", Nothing, |pool, Db, dialect| {
            let done = sqlx::query(
                "UPDATE endpoints SET enabled = $1, disabled_reason = $2, updated_at = $3 \
                 WHERE id = $4 AND enabled = $5 AND deleted_at IS NULL",
            )
            .bind(false)
            .bind(reason)
            .bind(now_ms())
            .bind(id)
            .bind(true)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Sets until when endpoint `id`'s previous signing secret is still sent (`None`: no
    /// longer). With `only_if_past`, only when that time has passed (the sweeper's
    /// change, so a fresh rotation is never undone).
    pub async fn set_previous_secret_until(
        &self,
        id: &str,
        until: Option<i64>,
        only_if_past: bool,
    ) -> Result<bool> {
        let now = now_ms();
        on_writer!(
            self,
            "set_previous_secret_until",
            Nothing,
            |pool, Db, dialect| {
                let statement = if only_if_past {
                    "UPDATE endpoints SET previous_secret_until = $1, updated_at = $2 \
                 WHERE id = $3 AND previous_secret_until <= $2"
                } else {
                    "UPDATE endpoints SET previous_secret_until = $1, updated_at = $2 \
                 WHERE id = $3 AND deleted_at IS NULL"
                };
                let done = sqlx::query(statement)
                    .bind(until)
                    .bind(now)
                    .bind(id)
                    .execute(pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }
        )
    }

    /// Endpoints whose previous signing secret's grace has ended.
    pub async fn expired_previous_secrets(&self) -> Result<Vec<String>> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            Ok(sqlx::query_scalar(
                "SELECT id FROM endpoints WHERE previous_secret_until <= $1 LIMIT 1000",
            )
            .bind(now_ms())
            .fetch_all(pool)
            .await?)
        })
    }

    /// Puts every dead delivery of `channel` that died at or after `since` back on the
    /// store's queue with a fresh retry schedule. Returns how many.
    pub async fn recover_channel(&self, channel: &str, since: i64) -> Result<u64> {
        let now = now_ms();
        on_writer!(self, "recover_channel", Nothing, |pool, Db, dialect| {
            let done = sqlx::query(
                "UPDATE deliveries SET state = 'pending', retry_base = attempts, next_at = $1, \
                 lease_owner = NULL, on_broker = $2, updated_at = $1 \
                 WHERE channel LIKE 'endpoint:%' AND channel = $3 AND state = 'dead' \
                 AND updated_at >= $4",
            )
            .bind(now)
            .bind(false)
            .bind(channel)
            .bind(since)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Endpoint channels with deliveries due on the store's queue, at most `limit`.
    pub async fn due_endpoint_channels(&self, limit: u32) -> Result<Vec<String>> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            // SQLite's planner, once its statistics are gathered, has been seen to choose
            // deliveries_by_endpoint, which walks every endpoint delivery ever made (116 ms
            // a poll with 200,000 of them): the partial index of due ones is named here.
            Ok(sqlx::query_scalar(dialect.pick(
                "SELECT DISTINCT channel FROM deliveries INDEXED BY deliveries_endpoints_due \
                 WHERE state = 'pending' AND NOT on_broker AND channel LIKE 'endpoint:%' \
                 AND next_at <= $1 LIMIT $2",
                "SELECT DISTINCT channel FROM deliveries WHERE state = 'pending' \
                 AND NOT on_broker AND channel LIKE 'endpoint:%' AND next_at <= $1 LIMIT $2",
            ))
            .bind(now_ms())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?)
        })
    }

    /// Endpoint channel `channel`'s deliveries, newest first: before delivery id `before`
    /// when given, only in `state` when given, at most `limit`.
    pub async fn endpoint_deliveries(
        &self,
        channel: &str,
        before: Option<&str>,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EndpointDelivery>> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            let mut query = QueryBuilder::<Db>::new(
                "SELECT d.id, d.notification_id, n.kind, d.state, d.attempts, d.next_at, \
                 d.last_error, d.created_at, d.updated_at FROM deliveries d \
                 JOIN notifications n ON n.id = d.notification_id \
                 WHERE d.channel LIKE 'endpoint:%' AND d.channel = ",
            );
            query.push_bind(channel);
            if let Some(before) = before {
                query.push(" AND d.id < ").push_bind(before);
            }
            if let Some(state) = state {
                query.push(" AND d.state = ").push_bind(state);
            }
            query
                .push(" ORDER BY d.id DESC LIMIT ")
                .push_bind(i64::from(limit));
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    /// The channel and notification of delivery `id`.
    pub async fn delivery_place(&self, id: &str) -> Result<Option<(String, String)>> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            Ok(
                sqlx::query_as("SELECT channel, notification_id FROM deliveries WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }
}
