//! The store: every notification, delivery and attempt, in SQLite (the embedded default).
//!
//! In the embedded setup the store is also the bus: the `notifications` table is the stream
//! (read in `seq` order, with the reader's position committed in `stream_cursors`), and the
//! `deliveries` table is the durable delivery queue (a pending delivery is due at
//! `next_at`; a process that holds one in memory leases it by pushing `next_at` out).
//!
//! Writes go through one connection, and the pipeline hands them over in batches, so one
//! transaction (one fsync of the WAL at most) covers many notifications. Reads use a pool
//! of their own; WAL mode lets them run beside the writer.

mod admin;
mod plugins;
mod secrets;
mod tokens;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

pub use admin::AdminUser;
pub use plugins::{PluginVersion, UploadedPlugin};
pub use secrets::{SealedSecret, SecretInfo};
pub use tokens::{NewToken, TokenRecord};

/// A store failure. Callers log it; the API shows a generic 500 or 503, never this text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("could not migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("could not create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("unsupported store url {0:?}: the embedded store takes sqlite://PATH")]
    Url(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch: the store's time unit.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A notification as it is stored and handed to channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub kind: String,
    pub source: String,
    pub attributes: Vec<(String, String)>,
    /// JSON text, as the adapter produced it.
    pub payload: String,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
}

/// One request's worth of notifications to accept in one go.
#[derive(Debug)]
pub struct AcceptBatch {
    /// The caller's `Idempotency-Key`, if it sent one.
    pub request_key: Option<RequestKey>,
    /// The notifications, ids and times already assigned.
    pub notifications: Vec<Notification>,
}

/// A request-level idempotency key: a repeat with the same fingerprint gets the first
/// answer; a repeat with a different fingerprint is refused.
#[derive(Debug, Clone)]
pub struct RequestKey {
    /// Whose key it is (the API token or the source), so callers never collide.
    pub scope: String,
    pub key: String,
    /// A digest of the request body.
    pub fingerprint: String,
}

/// What became of one notification of an [`AcceptBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedItem {
    pub id: String,
    /// True when the notification's own idempotency key was seen within the window, so
    /// nothing new was created and `id` is the first notification's.
    pub duplicate: bool,
}

/// The answer to one [`AcceptBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored (or recognised as duplicates), one item per notification, in order.
    Stored(Vec<AcceptedItem>),
    /// The request's key was seen within the window with the same body: the first answer.
    Replayed(Vec<AcceptedItem>),
    /// The request's key was seen within the window with a different body.
    KeyReused,
}

/// A notification read from the stream, with its position.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    pub seq: i64,
    pub notification: Notification,
}

/// A delivery the router creates: one notification to one channel.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub notification_id: String,
    pub channel: String,
    pub route: String,
    /// `Some(owner)` when the router hands it straight to a worker in this process (leased
    /// until `next_at`); `None` when it waits in the store until a worker has room.
    pub lease_owner: Option<String>,
    pub next_at: i64,
}

/// A pending delivery taken from the store's queue.
#[derive(Debug, Clone)]
pub struct LeasedDelivery {
    pub id: String,
    pub channel: String,
    /// Attempts so far; the next attempt is `attempts + 1`.
    pub attempts: u32,
    /// Attempts made before the last replay.
    pub retry_base: u32,
    pub notification: Notification,
}

/// How an attempt went, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    Delivered,
    Retry,
    Failed,
    /// The plugin call itself failed (trap, deadline, timeout).
    Error,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Error => "error",
        }
    }
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    Done,
    RetryAt(i64),
    Dead,
}

/// One attempt to record, with the delivery's next step.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: String,
    pub attempt: u32,
    pub started_at: i64,
    pub duration_ms: i64,
    pub outcome: AttemptOutcome,
    pub status: Option<u16>,
    pub detail: Option<String>,
    pub next: NextStep,
}

/// A delivery with its attempts, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryDetail {
    pub id: String,
    pub notification_id: String,
    pub channel: String,
    pub route: String,
    pub state: String,
    pub attempts: u32,
    pub next_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub attempt_log: Vec<AttemptDetail>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptDetail {
    pub attempt: u32,
    pub started_at: i64,
    pub duration_ms: i64,
    pub outcome: String,
    pub status: Option<u16>,
    pub detail: Option<String>,
}

/// A filter for listing notifications, newest first.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub kind: Option<String>,
    pub source: Option<String>,
    /// Only notifications with at least one delivery in this state.
    pub delivery_state: Option<String>,
    /// Only notifications created at or after this time.
    pub since: Option<i64>,
    /// The page cursor: only notifications before this stream position.
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// A filter for listing dead letters, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    pub channel: Option<String>,
    /// The page cursor: only dead letters that died before this (time, id).
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// A dead letter, for the API.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub delivery_id: String,
    pub notification_id: String,
    pub kind: String,
    pub channel: String,
    pub route: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub dead_at: i64,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: SqlitePool,
    reader: SqlitePool,
}

/// SQLite allows 32766 bound values per statement; stay well under it.
const ROWS_PER_INSERT: usize = 500;

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Store> {
        let path = url
            .strip_prefix("sqlite://")
            .ok_or_else(|| Error::Url(url.to_string()))?;
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| Error::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL survives a crash of the process (kill -9): a commit is in the
            // WAL before it returns. Only a power loss can take the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // 16 MiB of page cache. Larger caches cost more at every commit (SQLite walks
            // the cache when a transaction ends), and commits are frequent here.
            .pragma("cache_size", "-16384")
            .pragma("temp_store", "memory");
        // One writer: SQLite serialises writers anyway, and one connection lets the
        // pipeline's batches queue in memory instead of on the database lock.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Store { writer, reader })
    }

    /// Closes both pools, waiting for running statements.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// Accepts several requests' notifications in one transaction: after it returns, every
    /// stored notification is durable and on the stream.
    ///
    /// `window_ms` is how long idempotency keys are remembered.
    pub async fn accept(&self, batches: &[AcceptBatch], window_ms: i64) -> Result<Vec<Accepted>> {
        let now = now_ms();
        let fresh_after = now - window_ms;
        let mut tx = self.writer.begin().await?;
        let mut answers = Vec::with_capacity(batches.len());
        let mut to_insert: Vec<&Notification> = Vec::new();
        // Keys seen earlier in this same transaction, so two requests with one key in one
        // batch still create one notification.
        let mut seen_in_batch: HashMap<(String, String), String> = HashMap::new();

        for batch in batches {
            if let Some(request_key) = &batch.request_key {
                let existing: Option<(String, String)> = sqlx::query_as(
                    "SELECT fingerprint, response FROM idempotency_keys \
                     WHERE scope = ? AND key = ? AND created_at >= ?",
                )
                .bind(&request_key.scope)
                .bind(&request_key.key)
                .bind(fresh_after)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((fingerprint, response)) = existing {
                    if fingerprint == request_key.fingerprint {
                        let items = serde_json::from_str(&response).unwrap_or_default();
                        answers.push(Accepted::Replayed(items));
                    } else {
                        answers.push(Accepted::KeyReused);
                    }
                    continue;
                }
            }

            let mut items = Vec::with_capacity(batch.notifications.len());
            for notification in &batch.notifications {
                let Some(key) = &notification.idempotency_key else {
                    items.push(AcceptedItem {
                        id: notification.id.clone(),
                        duplicate: false,
                    });
                    to_insert.push(notification);
                    continue;
                };
                let scope = format!("notification:{}", notification.source);
                let batch_key = (scope.clone(), key.clone());
                let earlier = match seen_in_batch.get(&batch_key) {
                    Some(id) => Some(id.clone()),
                    None => {
                        sqlx::query_scalar::<_, String>(
                            "SELECT response FROM idempotency_keys \
                             WHERE scope = ? AND key = ? AND created_at >= ?",
                        )
                        .bind(&scope)
                        .bind(key)
                        .bind(fresh_after)
                        .fetch_optional(&mut *tx)
                        .await?
                    }
                };
                match earlier {
                    Some(id) => items.push(AcceptedItem {
                        id,
                        duplicate: true,
                    }),
                    None => {
                        sqlx::query(
                            "INSERT OR REPLACE INTO idempotency_keys \
                             (scope, key, fingerprint, response, created_at) VALUES (?, ?, '', ?, ?)",
                        )
                        .bind(&scope)
                        .bind(key)
                        .bind(&notification.id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        seen_in_batch.insert(batch_key, notification.id.clone());
                        items.push(AcceptedItem {
                            id: notification.id.clone(),
                            duplicate: false,
                        });
                        to_insert.push(notification);
                    }
                }
            }

            if let Some(request_key) = &batch.request_key {
                let response = serde_json::to_string(&items).expect("items serialise");
                sqlx::query(
                    "INSERT OR REPLACE INTO idempotency_keys \
                     (scope, key, fingerprint, response, created_at) VALUES (?, ?, ?, ?, ?)",
                )
                .bind(&request_key.scope)
                .bind(&request_key.key)
                .bind(&request_key.fingerprint)
                .bind(&response)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            answers.push(Accepted::Stored(items));
        }

        for chunk in to_insert.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO notifications \
                 (id, kind, source, attributes, payload, idempotency_key, created_at) ",
            );
            insert.push_values(chunk, |mut row, n| {
                row.push_bind(&n.id)
                    .push_bind(&n.kind)
                    .push_bind(&n.source)
                    .push_bind(serde_json::to_string(&n.attributes).expect("pairs serialise"))
                    .push_bind(&n.payload)
                    .push_bind(&n.idempotency_key)
                    .push_bind(n.created_at);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(answers)
    }

    /// Forgets idempotency keys older than the window.
    pub async fn purge_idempotency_keys(&self, window_ms: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(now_ms() - window_ms)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    /// Where `consumer` stopped reading the stream (0 before its first commit).
    pub async fn stream_position(&self, consumer: &str) -> Result<i64> {
        let position =
            sqlx::query_scalar::<_, i64>("SELECT position FROM stream_cursors WHERE consumer = ?")
                .bind(consumer)
                .fetch_optional(&self.writer)
                .await?;
        Ok(position.unwrap_or(0))
    }

    /// Up to `limit` notifications after stream position `after`, in order.
    pub async fn stream_read(&self, after: i64, limit: u32) -> Result<Vec<StreamEntry>> {
        let rows = sqlx::query(
            "SELECT seq, id, kind, source, attributes, payload, idempotency_key, created_at \
             FROM notifications WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StreamEntry {
                    seq: row.try_get("seq")?,
                    notification: notification_from_row(row)?,
                })
            })
            .collect()
    }

    /// Records what the router made of the stream up to `position`: the deliveries and the
    /// new position commit together, so a crash repeats the routing of a batch or none of it.
    pub async fn commit_routing(
        &self,
        consumer: &str,
        position: i64,
        deliveries: &[NewDelivery],
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        for chunk in deliveries.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO deliveries (id, notification_id, channel, route, state, next_at, \
                 lease_owner, created_at, updated_at) ",
            );
            insert.push_values(chunk, |mut row, d| {
                row.push_bind(&d.id)
                    .push_bind(&d.notification_id)
                    .push_bind(&d.channel)
                    .push_bind(&d.route)
                    .push_bind("pending")
                    .push_bind(d.next_at)
                    .push_bind(&d.lease_owner)
                    .push_bind(now)
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO stream_cursors (consumer, position) VALUES (?, ?) \
             ON CONFLICT (consumer) DO UPDATE SET position = excluded.position",
        )
        .bind(consumer)
        .bind(position)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes every delivery leased by a process other than `owner` due now. The embedded
    /// store belongs to one process at a time, so at start-up any such lease is a leftover
    /// of a process that died.
    pub async fn release_foreign_leases(&self, owner: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE deliveries SET next_at = ?, lease_owner = NULL \
             WHERE state = 'pending' AND lease_owner IS NOT NULL AND lease_owner <> ?",
        )
        .bind(now_ms())
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    /// Leases up to `limit` due deliveries of `channel` to `owner` until `lease_until`.
    pub async fn lease_due(
        &self,
        channel: &str,
        owner: &str,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<LeasedDelivery>> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let leased: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "UPDATE deliveries SET next_at = ?, lease_owner = ?, updated_at = ? \
             WHERE id IN (SELECT id FROM deliveries \
                          WHERE state = 'pending' AND channel = ? AND next_at <= ? \
                          ORDER BY next_at LIMIT ?) \
             RETURNING id, notification_id, attempts, retry_base",
        )
        .bind(lease_until)
        .bind(owner)
        .bind(now)
        .bind(channel)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if leased.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        // The lease just written marks this batch: one static statement (cached, unlike an
        // IN list of varying length) reads its notifications.
        let rows = sqlx::query(
            "SELECT n.id, n.kind, n.source, n.attributes, n.payload, n.idempotency_key, n.created_at \
             FROM deliveries d JOIN notifications n ON n.id = d.notification_id \
             WHERE d.state = 'pending' AND d.channel = ? AND d.next_at = ? AND d.lease_owner = ?",
        )
        .bind(channel)
        .bind(lease_until)
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut notifications = HashMap::with_capacity(rows.len());
        for row in &rows {
            let notification = notification_from_row(row)?;
            notifications.insert(notification.id.clone(), notification);
        }
        Ok(leased
            .into_iter()
            .filter_map(|(id, notification_id, attempts, retry_base)| {
                Some(LeasedDelivery {
                    id,
                    channel: channel.to_string(),
                    attempts: attempts as u32,
                    retry_base: retry_base as u32,
                    notification: notifications.get(&notification_id)?.clone(),
                })
            })
            .collect())
    }

    /// Pending deliveries per channel.
    pub async fn pending_by_channel(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT channel, count(*) FROM deliveries WHERE state = 'pending' GROUP BY channel",
        )
        .fetch_all(&self.reader)
        .await?)
    }

    /// Records attempts and moves their deliveries on, in one transaction.
    pub async fn record_attempts(&self, records: &[AttemptRecord]) -> Result<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        for chunk in records.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT OR REPLACE INTO attempts \
                 (delivery_id, attempt, started_at, duration_ms, outcome, status, detail) ",
            );
            insert.push_values(chunk, |mut row, r| {
                row.push_bind(&r.delivery_id)
                    .push_bind(r.attempt)
                    .push_bind(r.started_at)
                    .push_bind(r.duration_ms)
                    .push_bind(r.outcome.as_str())
                    .push_bind(r.status)
                    .push_bind(&r.detail);
            });
            insert.build().execute(&mut *tx).await?;
        }
        // The common case, delivered on the first try, is one statement per chunk.
        let delivered: Vec<&AttemptRecord> = records
            .iter()
            .filter(|r| r.next == NextStep::Done)
            .collect();
        if !delivered.is_empty() {
            // One static statement over a JSON list of ids: prepared once, not once per
            // list length.
            let ids: Vec<&str> = delivered.iter().map(|r| r.delivery_id.as_str()).collect();
            sqlx::query(
                "UPDATE deliveries SET state = 'delivered', lease_owner = NULL, last_error = NULL, \
                 attempts = attempts + 1, updated_at = ? WHERE id IN (SELECT value FROM json_each(?))",
            )
            .bind(now)
            .bind(serde_json::to_string(&ids).expect("ids serialise"))
            .execute(&mut *tx)
            .await?;
        }
        for record in records.iter().filter(|r| r.next != NextStep::Done) {
            let error = record
                .detail
                .clone()
                .or_else(|| record.status.map(|status| format!("HTTP status {status}")));
            match record.next {
                NextStep::RetryAt(at) => {
                    sqlx::query(
                        "UPDATE deliveries SET next_at = ?, lease_owner = NULL, \
                         attempts = attempts + 1, last_error = ?, updated_at = ? WHERE id = ?",
                    )
                    .bind(at)
                    .bind(&error)
                    .bind(now)
                    .bind(&record.delivery_id)
                    .execute(&mut *tx)
                    .await?;
                }
                NextStep::Dead => {
                    sqlx::query(
                        "UPDATE deliveries SET state = 'dead', lease_owner = NULL, \
                         attempts = attempts + 1, last_error = ?, updated_at = ? WHERE id = ?",
                    )
                    .bind(&error)
                    .bind(now)
                    .bind(&record.delivery_id)
                    .execute(&mut *tx)
                    .await?;
                }
                NextStep::Done => unreachable!("filtered above"),
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Hands a leased delivery back without an attempt (at shutdown, or when the plugin
    /// pool was full): due again at `at`.
    pub async fn release(&self, delivery_ids: &[String], at: i64) -> Result<()> {
        for chunk in delivery_ids.chunks(ROWS_PER_INSERT) {
            let mut update = QueryBuilder::<Sqlite>::new("UPDATE deliveries SET next_at = ");
            update
                .push_bind(at)
                .push(", lease_owner = NULL WHERE state = 'pending' AND id IN (");
            let mut ids = update.separated(", ");
            for id in chunk {
                ids.push_bind(id);
            }
            update.push(")");
            update.build().execute(&self.writer).await?;
        }
        Ok(())
    }

    /// Puts a dead letter back in its channel's queue with a fresh retry schedule.
    /// Returns false when there is no such dead letter.
    pub async fn replay(&self, delivery_id: &str) -> Result<Option<String>> {
        let now = now_ms();
        let channel = sqlx::query_scalar::<_, String>(
            "UPDATE deliveries SET state = 'pending', retry_base = attempts, next_at = ?, \
             lease_owner = NULL, updated_at = ? WHERE id = ? AND state = 'dead' \
             RETURNING channel",
        )
        .bind(now)
        .bind(now)
        .bind(delivery_id)
        .fetch_optional(&self.writer)
        .await?;
        Ok(channel)
    }

    /// One notification by id.
    pub async fn notification(&self, id: &str) -> Result<Option<Notification>> {
        let row = sqlx::query(
            "SELECT id, kind, source, attributes, payload, idempotency_key, created_at \
             FROM notifications WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(notification_from_row).transpose()?)
    }

    /// A notification's deliveries, each with its attempts.
    pub async fn deliveries_of(&self, notification_id: &str) -> Result<Vec<DeliveryDetail>> {
        let rows = sqlx::query(
            "SELECT id, notification_id, channel, route, state, attempts, next_at, last_error, \
             created_at, updated_at FROM deliveries WHERE notification_id = ? ORDER BY created_at, channel",
        )
        .bind(notification_id)
        .fetch_all(&self.reader)
        .await?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            let state: String = row.try_get("state")?;
            let attempt_rows = sqlx::query(
                "SELECT attempt, started_at, duration_ms, outcome, status, detail \
                 FROM attempts WHERE delivery_id = ? ORDER BY attempt",
            )
            .bind(&id)
            .fetch_all(&self.reader)
            .await?;
            let attempt_log = attempt_rows
                .iter()
                .map(|a| {
                    Ok(AttemptDetail {
                        attempt: a.try_get::<i64, _>("attempt")? as u32,
                        started_at: a.try_get("started_at")?,
                        duration_ms: a.try_get("duration_ms")?,
                        outcome: a.try_get("outcome")?,
                        status: a.try_get::<Option<i64>, _>("status")?.map(|s| s as u16),
                        detail: a.try_get("detail")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            deliveries.push(DeliveryDetail {
                next_at: if state == "pending" {
                    Some(row.try_get("next_at")?)
                } else {
                    None
                },
                id,
                notification_id: row.try_get("notification_id")?,
                channel: row.try_get("channel")?,
                route: row.try_get("route")?,
                state,
                attempts: row.try_get::<i64, _>("attempts")? as u32,
                last_error: row.try_get("last_error")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                attempt_log,
            });
        }
        Ok(deliveries)
    }

    /// Notifications matching `filter`, newest first, with their stream positions (the
    /// page cursor).
    pub async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<(i64, Notification)>> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT seq, id, kind, source, attributes, payload, idempotency_key, created_at \
             FROM notifications n WHERE 1 = 1",
        );
        if let Some(kind) = &filter.kind {
            // A trailing `*` lists a family of kinds, as routes match them.
            match kind.strip_suffix('*') {
                Some(prefix) => {
                    query
                        .push(" AND kind >= ")
                        .push_bind(prefix.to_string())
                        .push(" AND kind < ")
                        .push_bind(format!("{prefix}\u{10FFFF}"));
                }
                None => {
                    query.push(" AND kind = ").push_bind(kind.clone());
                }
            }
        }
        if let Some(source) = &filter.source {
            query.push(" AND source = ").push_bind(source.clone());
        }
        if let Some(since) = filter.since {
            query.push(" AND created_at >= ").push_bind(since);
        }
        if let Some(before) = filter.before_seq {
            query.push(" AND seq < ").push_bind(before);
        }
        if let Some(state) = &filter.delivery_state {
            query
                .push(
                    " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id AND d.state = ",
                )
                .push_bind(state.clone())
                .push(")");
        }
        query
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(filter.limit);
        let rows = query.build().fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("seq")?, notification_from_row(row)?)))
            .collect()
    }

    /// Dead letters matching `filter`, most recently dead first.
    pub async fn list_dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT d.id, d.notification_id, n.kind, d.channel, d.route, d.attempts, \
             d.last_error, d.updated_at FROM deliveries d \
             JOIN notifications n ON n.id = d.notification_id WHERE d.state = 'dead'",
        );
        if let Some(channel) = &filter.channel {
            query.push(" AND d.channel = ").push_bind(channel.clone());
        }
        if let Some((at, id)) = &filter.before {
            query
                .push(" AND (d.updated_at < ")
                .push_bind(*at)
                .push(" OR (d.updated_at = ")
                .push_bind(*at)
                .push(" AND d.id < ")
                .push_bind(id.clone())
                .push("))");
        }
        query
            .push(" ORDER BY d.updated_at DESC, d.id DESC LIMIT ")
            .push_bind(filter.limit);
        let rows = query.build().fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| {
                Ok(DeadLetter {
                    delivery_id: row.try_get(0)?,
                    notification_id: row.try_get(1)?,
                    kind: row.try_get(2)?,
                    channel: row.try_get(3)?,
                    route: row.try_get(4)?,
                    attempts: row.try_get::<i64, _>(5)? as u32,
                    last_error: row.try_get(6)?,
                    dead_at: row.try_get(7)?,
                })
            })
            .collect()
    }

    /// Whether the database answers; `/readyz` asks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }
}

fn notification_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Notification, sqlx::Error> {
    let attributes: String = row.try_get("attributes")?;
    Ok(Notification {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        source: row.try_get("source")?,
        attributes: serde_json::from_str(&attributes).map_err(|e| sqlx::Error::ColumnDecode {
            index: "attributes".into(),
            source: Box::new(e),
        })?,
        payload: row.try_get("payload")?,
        idempotency_key: row.try_get("idempotency_key")?,
        created_at: row.try_get("created_at")?,
    })
}
