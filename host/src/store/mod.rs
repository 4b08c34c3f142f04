//! The store: every notification, delivery and attempt, in SQLite (the embedded default) or
//! PostgreSQL (several processes sharing one database).
//!
//! In the embedded setup the store is also the bus: the `notifications` table is the stream
//! (read in `seq` order, with the reader's position committed in `stream_cursors`), and the
//! `deliveries` table is the durable delivery queue (a pending delivery is due at
//! `next_at`; a process that holds one in memory leases it by pushing `next_at` out).
//!
//! With a broker bus (Kafka and RabbitMQ) the router stores what it routed with
//! [`Store::insert_routed`]. Those deliveries are marked `on_broker`: the broker's queue
//! carries them, so the store's own queue ([`Store::lease_due`]) never hands them out, while
//! the API, attempts, replays and dead letters treat them like any other.
//!
//! On SQLite, writes go through one connection, and the pipeline hands them over in
//! batches, so one transaction (one fsync of the WAL at most) covers many notifications.
//! Reads use a pool of their own; WAL mode lets them run beside the writer. On PostgreSQL one
//! pool serves both, and the statements that several processes could race on take locks
//! (see [`Store::accept`], [`Store::commit_routing`] and [`Store::lease_due`]).

mod admin;
mod backend;
mod health;
mod plugins;
mod portal;
pub mod retention;
mod secrets;
mod tenants;
mod tokens;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::{Database, Encode, QueryBuilder, Type};

use backend::{Dialect, Pool, on_pool, on_writer};
use health::WriteHealth;

pub use admin::AdminUser;
pub use backend::{AppliedMigration, create_private_dir};
pub use plugins::{PluginVersion, UploadedPlugin};
pub use portal::{NewPortalSession, PortalSession};
pub use secrets::{SealedSecret, SecretInfo};
pub use tenants::{Changes, EndpointDelivery, EndpointRefused, EndpointRow, Page, Tenant};
pub use tokens::{NewToken, Scope, Scopes, TokenRecord};

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
    #[error("could not make the database file {path} private to its owner: {source}")]
    DatabaseFile {
        path: String,
        source: std::io::Error,
    },
    #[error("unsupported store url {0:?}: expected sqlite://PATH or postgres://...")]
    Url(String),
    /// The last write failed and none has landed since (see [`Store::check_writes`]).
    #[error("the store's last write failed and none has landed since")]
    WritesFailing,
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
    /// The tenant it was sent for: it also goes to that tenant's matching endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// One request's worth of notifications to accept in one go.
#[derive(Debug)]
pub struct AcceptBatch {
    /// The caller's `Idempotency-Key`, if it sent one.
    pub request_key: Option<RequestKey>,
    /// Whose the notifications' own idempotency keys are (see [`notification_key_owner`]):
    /// a key matches only an earlier one of the same owner.
    pub key_owner: String,
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
    /// The idempotency key of notification `index` (of the request's, from 0) was used by
    /// the same sender for a different notification (kind, attributes or payload) within
    /// the window. Nothing of the request was accepted.
    NotificationKeyReused { index: usize },
}

/// The owner of notifications' own idempotency keys: the API token and the source for a
/// token's request (`token:<token id>:<source>`), so one sender's key can neither drop
/// another's notification nor reveal its id; the source alone for a signed webhook, whose
/// signature is its sender's identity. Webhook source names have no `:`, so the two never
/// meet.
pub fn notification_key_owner(token_id: Option<&str>, source: &str) -> String {
    match token_id {
        Some(token_id) => format!("token:{token_id}:{source}"),
        None => source.to_string(),
    }
}

/// What makes a notification the same one again for its idempotency key: its kind,
/// attributes and payload (not its id, time or source).
pub fn notification_fingerprint(notification: &Notification) -> String {
    let parts = (
        &notification.kind,
        &notification.attributes,
        &notification.payload,
    );
    // The tenant counts only when there is one, so keys stored before tenants existed
    // keep their fingerprints.
    let canonical = match &notification.tenant {
        None => serde_json::to_vec(&parts),
        Some(tenant) => serde_json::to_vec(&(parts, tenant)),
    }
    .expect("strings serialise");
    crate::crypto::sha256_hex(&canonical)
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

/// How [`Store::commit_routing`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingCommit {
    /// The deliveries are stored and the cursor moved to the batch's end.
    Committed,
    /// Another router moved the cursor first (several processes share one PostgreSQL):
    /// nothing of this batch was stored. Read again from `position`.
    Superseded { position: i64 },
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
    /// A transform dropped the notification (a filter): nothing went to the channel, and
    /// the delivery is done.
    Dropped,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Error => "error",
            AttemptOutcome::Dropped => "dropped",
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
    /// The transforms that ran before the channel, in order; empty when none did.
    pub transforms: Vec<String>,
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
    pub transforms: Vec<String>,
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
    /// Only the dead letter of this delivery.
    pub delivery_id: Option<String>,
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
    writer: Pool,
    reader: Pool,
    /// Whether writes land, shared by every clone.
    health: std::sync::Arc<WriteHealth>,
}

/// SQLite allows 32766 bound values per statement and PostgreSQL 65535; stay well under.
const ROWS_PER_INSERT: usize = 500;

/// The PostgreSQL advisory lock every accept transaction holds until it commits, so
/// notifications commit in `seq` order and a router reading `seq > position` never passes
/// over one that commits late. (Any constant works; this one spells "swyd" in ASCII.)
const STREAM_LOCK: i64 = 0x7377_7964;

impl Store {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`, `postgres://...`
    /// or `postgresql://...`) and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Store> {
        let (writer, reader) = backend::connect(url).await?;
        let applied = backend::migrate(&writer).await?;
        for migration in &applied {
            tracing::info!(
                version = migration.version,
                description = %migration.description,
                "applied a store migration"
            );
        }
        Ok(Store {
            writer,
            reader,
            health: Default::default(),
        })
    }

    /// Brings the schema of the database at `url` up to date without opening a store for
    /// use; returns the migrations it applied (none when it was up to date).
    pub async fn migrate(url: &str) -> Result<Vec<AppliedMigration>> {
        let (writer, reader) = backend::connect(url).await?;
        let applied = backend::migrate(&writer).await;
        close(&writer).await;
        close(&reader).await;
        applied
    }

    /// Closes both pools, waiting for running statements.
    pub async fn close(&self) {
        close(&self.writer).await;
        close(&self.reader).await;
    }

    /// Accepts several requests' notifications in one transaction: after it returns, every
    /// stored notification is durable and on the stream.
    ///
    /// `window_ms` is how long idempotency keys are remembered.
    pub async fn accept(&self, batches: &[AcceptBatch], window_ms: i64) -> Result<Vec<Accepted>> {
        let now = now_ms();
        let fresh_after = now - window_ms;
        on_writer!(self, "accept", Landed, |pool, Db, dialect| {
            let mut tx = pool.begin().await?;
            if dialect == Dialect::Postgres {
                // Held to the commit: accepts of all processes commit one after another,
                // in the order of the `seq` values they took. It also makes the key
                // checks below see every earlier accept's keys.
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(STREAM_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut answers = Vec::with_capacity(batches.len());
            let mut to_insert: Vec<&Notification> = Vec::new();
            // Keys seen earlier in this same transaction, so two requests with one key in
            // one batch still create one notification: (scope, key) -> (id, fingerprint).
            let mut seen_in_batch: HashMap<(String, String), (String, String)> = HashMap::new();

            for batch in batches {
                if let Some(request_key) = &batch.request_key {
                    let existing: Option<(String, String)> = sqlx::query_as(
                        "SELECT fingerprint, response FROM idempotency_keys \
                         WHERE scope = $1 AND key = $2 AND created_at >= $3",
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

                // Every notification's own key is checked before any is remembered: one
                // reused for a different notification refuses the whole request.
                let scope = format!("notification:{}", batch.key_owner);
                let mut items = Vec::with_capacity(batch.notifications.len());
                let mut fresh: Vec<(&Notification, Option<String>)> = Vec::new();
                let mut in_this_request: HashMap<&str, (String, String)> = HashMap::new();
                let mut reused = None;
                for (index, notification) in batch.notifications.iter().enumerate() {
                    let Some(key) = &notification.idempotency_key else {
                        items.push(AcceptedItem {
                            id: notification.id.clone(),
                            duplicate: false,
                        });
                        fresh.push((notification, None));
                        continue;
                    };
                    let fingerprint = notification_fingerprint(notification);
                    let earlier = match in_this_request
                        .get(key.as_str())
                        .or_else(|| seen_in_batch.get(&(scope.clone(), key.clone())))
                    {
                        Some(earlier) => Some(earlier.clone()),
                        None => {
                            sqlx::query_as::<_, (String, String)>(
                                "SELECT response, fingerprint FROM idempotency_keys \
                                 WHERE scope = $1 AND key = $2 AND created_at >= $3",
                            )
                            .bind(&scope)
                            .bind(key)
                            .bind(fresh_after)
                            .fetch_optional(&mut *tx)
                            .await?
                        }
                    };
                    match earlier {
                        // A key remembered before notifications had fingerprints (empty)
                        // is taken for the same notification.
                        Some((id, first)) if first == fingerprint || first.is_empty() => {
                            let duplicate = AcceptedItem {
                                id,
                                duplicate: true,
                            };
                            items.push(duplicate);
                        }
                        Some(_) => {
                            reused = Some(index);
                            break;
                        }
                        None => {
                            in_this_request
                                .insert(key, (notification.id.clone(), fingerprint.clone()));
                            items.push(AcceptedItem {
                                id: notification.id.clone(),
                                duplicate: false,
                            });
                            fresh.push((notification, Some(fingerprint)));
                        }
                    }
                }
                if let Some(index) = reused {
                    answers.push(Accepted::NotificationKeyReused { index });
                    continue;
                }
                for (notification, fingerprint) in fresh {
                    if let (Some(key), Some(fingerprint)) =
                        (&notification.idempotency_key, fingerprint)
                    {
                        sqlx::query(REMEMBER_KEY)
                            .bind(&scope)
                            .bind(key)
                            .bind(&fingerprint)
                            .bind(&notification.id)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        seen_in_batch.insert(
                            (scope.clone(), key.clone()),
                            (notification.id.clone(), fingerprint),
                        );
                    }
                    to_insert.push(notification);
                }

                if let Some(request_key) = &batch.request_key {
                    let response = serde_json::to_string(&items).expect("items serialise");
                    sqlx::query(REMEMBER_KEY)
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
                notifications_insert::<Db>(chunk, "")
                    .build()
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(answers)
        })
    }

    /// Forgets idempotency keys older than the window.
    pub async fn purge_idempotency_keys(&self, window_ms: i64) -> Result<u64> {
        on_writer!(
            self,
            "purge_idempotency_keys",
            Nothing,
            |pool, Db, dialect| {
                let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                    .bind(now_ms() - window_ms)
                    .execute(pool)
                    .await?;
                Ok(done.rows_affected())
            }
        )
    }

    /// Where `consumer` stopped reading the stream (0 before its first commit).
    pub async fn stream_position(&self, consumer: &str) -> Result<i64> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            let position = sqlx::query_scalar::<_, i64>(
                "SELECT position FROM stream_cursors WHERE consumer = $1",
            )
            .bind(consumer)
            .fetch_optional(pool)
            .await?;
            Ok(position.unwrap_or(0))
        })
    }

    /// Up to `limit` notifications after stream position `after`, in order.
    pub async fn stream_read(&self, after: i64, limit: u32) -> Result<Vec<StreamEntry>> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            let rows: Vec<StreamRow> = sqlx::query_as(
                "SELECT seq, id, kind, source, attributes, payload, idempotency_key, created_at, tenant \
                 FROM notifications WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            rows.into_iter()
                .map(|row| {
                    Ok(StreamEntry {
                        seq: row.seq,
                        notification: row.notification.try_into()?,
                    })
                })
                .collect()
        })
    }

    /// Records what the router made of the stream from `from` up to `to`: the deliveries
    /// and the new position commit together, so a crash repeats the routing of a batch or
    /// none of it.
    ///
    /// The cursor moves only if it still stands at `from`. When another router moved it
    /// first, nothing is stored and the answer says where it stands now, so two routers on
    /// one database never both route a batch.
    pub async fn commit_routing(
        &self,
        consumer: &str,
        from: i64,
        to: i64,
        deliveries: &[NewDelivery],
    ) -> Result<RoutingCommit> {
        let now = now_ms();
        on_writer!(self, "commit_routing", Landed, |pool, Db, dialect| {
            let mut tx = pool.begin().await?;
            // The cursor first: a rival router's transaction waits here on the row lock,
            // then finds the position moved and stores nothing.
            let moved = sqlx::query(
                "INSERT INTO stream_cursors (consumer, position) VALUES ($1, $3) \
                 ON CONFLICT (consumer) DO UPDATE SET position = excluded.position \
                 WHERE stream_cursors.position = $2",
            )
            .bind(consumer)
            .bind(from)
            .bind(to)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 0 {
                let position = sqlx::query_scalar::<_, i64>(
                    "SELECT position FROM stream_cursors WHERE consumer = $1",
                )
                .bind(consumer)
                .fetch_one(&mut *tx)
                .await?;
                tx.rollback().await?;
                return Ok(RoutingCommit::Superseded { position });
            }
            for chunk in deliveries.chunks(ROWS_PER_INSERT) {
                deliveries_insert::<Db>(chunk, now, false, "")
                    .build()
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(RoutingCommit::Committed)
        })
    }

    /// Stores notifications a broker bus routed, with their deliveries, in one transaction.
    /// Repeating a batch (the router crashed before its offset was committed) is harmless:
    /// rows that exist are left as they are. No stream cursor moves.
    ///
    /// With `on_broker`, the deliveries are marked as carried by the broker's queues:
    /// [`Store::lease_due`] never hands them out (whatever their `lease_owner` says; it is
    /// not stored), while the API shows them pending and attempts, replays and dead letters
    /// work on them as on any other. Without it they wait in the store's own queue, due at
    /// their `next_at` (a Kafka stream feeding the embedded queues).
    pub async fn insert_routed(
        &self,
        notifications: &[Notification],
        deliveries: &[NewDelivery],
        on_broker: bool,
    ) -> Result<()> {
        let now = now_ms();
        let notifications: Vec<&Notification> = notifications.iter().collect();
        on_writer!(self, "insert_routed", Landed, |pool, Db, dialect| {
            let mut tx = pool.begin().await?;
            for chunk in notifications.chunks(ROWS_PER_INSERT) {
                notifications_insert::<Db>(chunk, " ON CONFLICT DO NOTHING")
                    .build()
                    .execute(&mut *tx)
                    .await?;
            }
            for chunk in deliveries.chunks(ROWS_PER_INSERT) {
                deliveries_insert::<Db>(chunk, now, on_broker, " ON CONFLICT DO NOTHING")
                    .build()
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Makes every delivery leased by a process other than `owner` due now. An SQLite
    /// store belongs to one process at a time, so at start-up any such lease is a leftover
    /// of a process that died. On PostgreSQL other processes may be running and hold those
    /// leases, so nothing is released: a dead process's leases run out, and then
    /// [`Store::lease_due`] takes them over.
    pub async fn release_foreign_leases(&self, owner: &str) -> Result<u64> {
        on_writer!(
            self,
            "release_foreign_leases",
            Nothing,
            |pool, Db, dialect| {
                if dialect == Dialect::Postgres {
                    return Ok(0);
                }
                let done = sqlx::query(
                    "UPDATE deliveries SET next_at = $1, lease_owner = NULL \
                 WHERE state = 'pending' AND NOT on_broker \
                 AND lease_owner IS NOT NULL AND lease_owner <> $2",
                )
                .bind(now_ms())
                .bind(owner)
                .execute(pool)
                .await?;
                Ok(done.rows_affected())
            }
        )
    }

    /// Leases up to `limit` due deliveries of `channel` to `owner` until `lease_until`.
    /// Deliveries on a broker's queue are never due here.
    pub async fn lease_due(
        &self,
        channel: &str,
        owner: &str,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<LeasedDelivery>> {
        let now = now_ms();
        let leased_delivery = |row: LeasedRow| -> Result<LeasedDelivery> {
            Ok(LeasedDelivery {
                id: row.delivery_id,
                channel: channel.to_string(),
                attempts: row.attempts as u32,
                retry_base: row.retry_base as u32,
                notification: row.notification.try_into()?,
            })
        };
        on_writer!(self, "lease_due", Nothing, |pool, Db, dialect| {
            if dialect == Dialect::Postgres {
                // One statement: rows another process is leasing right now are skipped,
                // not waited for, so pollers of several processes never block each other.
                let rows: Vec<LeasedRow> = sqlx::query_as(
                    "WITH due AS (SELECT id FROM deliveries \
                                  WHERE state = 'pending' AND NOT on_broker AND channel = $4 \
                                  AND next_at <= $3 ORDER BY next_at LIMIT $5 \
                                  FOR UPDATE SKIP LOCKED), \
                     leased AS (UPDATE deliveries d SET next_at = $1, lease_owner = $2, \
                                updated_at = $3 FROM due WHERE d.id = due.id \
                                RETURNING d.id, d.notification_id, d.attempts, d.retry_base) \
                     SELECT l.id AS delivery_id, l.attempts, l.retry_base, n.id, n.kind, \
                            n.source, n.attributes, n.payload, n.idempotency_key, n.created_at, n.tenant \
                     FROM leased l JOIN notifications n ON n.id = l.notification_id",
                )
                .bind(lease_until)
                .bind(owner)
                .bind(now)
                .bind(channel)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
                return rows.into_iter().map(leased_delivery).collect();
            }
            let mut tx = pool.begin().await?;
            let leased: Vec<(String, String, i64, i64)> = sqlx::query_as(
                "UPDATE deliveries SET next_at = $1, lease_owner = $2, updated_at = $3 \
                 WHERE id IN (SELECT id FROM deliveries \
                              WHERE state = 'pending' AND NOT on_broker AND channel = $4 \
                              AND next_at <= $3 ORDER BY next_at LIMIT $5) \
                 RETURNING id, notification_id, attempts, retry_base",
            )
            .bind(lease_until)
            .bind(owner)
            .bind(now)
            .bind(channel)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
            if leased.is_empty() {
                tx.commit().await?;
                return Ok(Vec::new());
            }
            // The lease just written marks this batch: one static statement (cached, unlike
            // an IN list of varying length) reads its notifications. It repeats the due
            // index's conditions word for word, or SQLite cannot use that partial index
            // and scans every delivery.
            let rows: Vec<NotificationRow> = sqlx::query_as(
                "SELECT n.id, n.kind, n.source, n.attributes, n.payload, n.idempotency_key, \
                 n.created_at, n.tenant FROM deliveries d JOIN notifications n ON n.id = d.notification_id \
                 WHERE d.state = 'pending' AND NOT d.on_broker AND d.channel = $1 \
                 AND d.next_at = $2 AND d.lease_owner = $3",
            )
            .bind(channel)
            .bind(lease_until)
            .bind(owner)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let mut notifications = HashMap::with_capacity(rows.len());
            for row in rows {
                let notification = Notification::try_from(row)?;
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
        })
    }

    /// Pending deliveries per channel in the store's own queue (those on a broker's queue
    /// are the broker's to count).
    pub async fn pending_by_channel(&self) -> Result<Vec<(String, i64)>> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            Ok(sqlx::query_as(
                "SELECT channel, COUNT(*) FROM deliveries \
                 WHERE state = 'pending' AND NOT on_broker GROUP BY channel",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// Records attempts and moves their deliveries on, in one transaction.
    pub async fn record_attempts(&self, records: &[AttemptRecord]) -> Result<()> {
        let now = now_ms();
        on_writer!(self, "record_attempts", Landed, |pool, Db, dialect| {
            let mut tx = pool.begin().await?;
            for chunk in records.chunks(ROWS_PER_INSERT) {
                let mut insert = QueryBuilder::<Db>::new(dialect.pick(
                    "INSERT OR REPLACE INTO attempts (delivery_id, attempt, started_at, \
                     duration_ms, outcome, status, detail, transforms) ",
                    "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, \
                     outcome, status, detail, transforms) ",
                ));
                insert.push_values(chunk, |mut row, r| {
                    row.push_bind(r.delivery_id.as_str())
                        .push_bind(i64::from(r.attempt))
                        .push_bind(r.started_at)
                        .push_bind(r.duration_ms)
                        .push_bind(r.outcome.as_str())
                        .push_bind(r.status.map(i32::from))
                        .push_bind(r.detail.as_deref())
                        .push_bind(
                            (!r.transforms.is_empty())
                                .then(|| serde_json::to_string(&r.transforms).unwrap_or_default()),
                        );
                });
                insert.push(dialect.pick(
                    "",
                    " ON CONFLICT (delivery_id, attempt) DO UPDATE SET \
                     started_at = excluded.started_at, duration_ms = excluded.duration_ms, \
                     outcome = excluded.outcome, status = excluded.status, \
                     detail = excluded.detail, transforms = excluded.transforms",
                ));
                insert.build().execute(&mut *tx).await?;
            }
            // The common case, delivered on the first try, is one statement per batch.
            let delivered: Vec<&str> = records
                .iter()
                .filter(|r| r.next == NextStep::Done)
                .map(|r| r.delivery_id.as_str())
                .collect();
            if !delivered.is_empty() {
                // One static statement over a JSON list of ids: prepared once, not once per
                // list length.
                sqlx::query(dialect.pick(
                    "UPDATE deliveries SET state = 'delivered', lease_owner = NULL, \
                     last_error = NULL, attempts = attempts + 1, updated_at = $1 \
                     WHERE id IN (SELECT value FROM json_each($2))",
                    "UPDATE deliveries SET state = 'delivered', lease_owner = NULL, \
                     last_error = NULL, attempts = attempts + 1, updated_at = $1 \
                     WHERE id IN (SELECT value FROM json_array_elements_text($2::json))",
                ))
                .bind(now)
                .bind(serde_json::to_string(&delivered).expect("ids serialise"))
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
                            "UPDATE deliveries SET next_at = $1, lease_owner = NULL, \
                             attempts = attempts + 1, last_error = $2, updated_at = $3 \
                             WHERE id = $4",
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
                             attempts = attempts + 1, last_error = $1, updated_at = $2 \
                             WHERE id = $3",
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
        })
    }

    /// Hands a leased delivery back without an attempt (at shutdown, or when the plugin
    /// pool was full): due again at `at`.
    pub async fn release(&self, delivery_ids: &[String], at: i64) -> Result<()> {
        on_writer!(self, "release", Nothing, |pool, Db, dialect| {
            for chunk in delivery_ids.chunks(ROWS_PER_INSERT) {
                let mut update = QueryBuilder::<Db>::new("UPDATE deliveries SET next_at = ");
                update
                    .push_bind(at)
                    .push(", lease_owner = NULL WHERE state = 'pending' AND id IN (");
                let mut ids = update.separated(", ");
                for id in chunk {
                    ids.push_bind(id.as_str());
                }
                update.push(")");
                update.build().execute(pool).await?;
            }
            Ok(())
        })
    }

    /// Puts a dead letter back in its channel's queue (the store's, or the broker's it came
    /// from) with a fresh retry schedule. Returns its channel, or `None` when there is no
    /// such dead letter.
    pub async fn replay(&self, delivery_id: &str) -> Result<Option<String>> {
        let now = now_ms();
        on_writer!(self, "replay", Nothing, |pool, Db, dialect| {
            Ok(sqlx::query_scalar::<_, String>(
                "UPDATE deliveries SET state = 'pending', retry_base = attempts, next_at = $1, \
                 lease_owner = NULL, updated_at = $1 WHERE id = $2 AND state = 'dead' \
                 RETURNING channel",
            )
            .bind(now)
            .bind(delivery_id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// One notification by id.
    pub async fn notification(&self, id: &str) -> Result<Option<Notification>> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            let row: Option<NotificationRow> = sqlx::query_as(
                "SELECT id, kind, source, attributes, payload, idempotency_key, created_at, tenant \
                 FROM notifications WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            row.map(Notification::try_from).transpose()
        })
    }

    /// A notification's deliveries, each with its attempts.
    pub async fn deliveries_of(&self, notification_id: &str) -> Result<Vec<DeliveryDetail>> {
        let (rows, attempts): (Vec<DeliveryRow>, Vec<AttemptRow>) =
            on_pool!(&self.reader, |pool, Db, dialect| {
                let rows = sqlx::query_as(
                    "SELECT id, notification_id, channel, route, state, attempts, next_at, \
                     last_error, created_at, updated_at FROM deliveries \
                     WHERE notification_id = $1 ORDER BY created_at, channel",
                )
                .bind(notification_id)
                .fetch_all(pool)
                .await?;
                let attempts = sqlx::query_as(
                    "SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.outcome, \
                     a.status, a.detail, a.transforms FROM deliveries d \
                     JOIN attempts a ON a.delivery_id = d.id \
                     WHERE d.notification_id = $1 ORDER BY a.delivery_id, a.attempt",
                )
                .bind(notification_id)
                .fetch_all(pool)
                .await?;
                (rows, attempts)
            });
        let mut logs: HashMap<String, Vec<AttemptDetail>> = HashMap::new();
        for attempt in attempts {
            logs.entry(attempt.delivery_id)
                .or_default()
                .push(AttemptDetail {
                    attempt: attempt.attempt as u32,
                    started_at: attempt.started_at,
                    duration_ms: attempt.duration_ms,
                    outcome: attempt.outcome,
                    status: attempt.status.map(|s| s as u16),
                    detail: attempt.detail,
                    transforms: attempt
                        .transforms
                        .and_then(|names| serde_json::from_str(&names).ok())
                        .unwrap_or_default(),
                });
        }
        Ok(rows
            .into_iter()
            .map(|row| DeliveryDetail {
                next_at: (row.state == "pending").then_some(row.next_at),
                attempt_log: logs.remove(&row.id).unwrap_or_default(),
                id: row.id,
                notification_id: row.notification_id,
                channel: row.channel,
                route: row.route,
                state: row.state,
                attempts: row.attempts as u32,
                last_error: row.last_error,
                created_at: row.created_at,
                updated_at: row.updated_at,
            })
            .collect())
    }

    /// Notifications matching `filter`, newest first, with their stream positions (the
    /// page cursor).
    pub async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<(i64, Notification)>> {
        let rows: Vec<StreamRow> = on_pool!(&self.reader, |pool, Db, dialect| {
            let mut query = QueryBuilder::<Db>::new(
                "SELECT seq, id, kind, source, attributes, payload, idempotency_key, created_at, tenant \
                 FROM notifications n WHERE 1 = 1",
            );
            if let Some(kind) = &filter.kind {
                // A trailing `*` lists a family of kinds, as routes match them. (The
                // PostgreSQL column compares bytewise, as SQLite does, so the range is the
                // same on both.)
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
                        " AND EXISTS (SELECT 1 FROM deliveries d \
                         WHERE d.notification_id = n.id AND d.state = ",
                    )
                    .push_bind(state.clone())
                    .push(")");
            }
            query
                .push(" ORDER BY seq DESC LIMIT ")
                .push_bind(i64::from(filter.limit));
            query.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|row| Ok((row.seq, row.notification.try_into()?)))
            .collect()
    }

    /// Dead letters matching `filter`, most recently dead first.
    pub async fn list_dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>> {
        let rows: Vec<DeadLetterRow> = on_pool!(&self.reader, |pool, Db, dialect| {
            let mut query = QueryBuilder::<Db>::new(
                "SELECT d.id, d.notification_id, n.kind, d.channel, d.route, d.attempts, \
                 d.last_error, d.updated_at FROM deliveries d \
                 JOIN notifications n ON n.id = d.notification_id WHERE d.state = 'dead'",
            );
            if let Some(channel) = &filter.channel {
                query.push(" AND d.channel = ").push_bind(channel.clone());
            }
            if let Some(id) = &filter.delivery_id {
                query.push(" AND d.id = ").push_bind(id.clone());
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
                .push_bind(i64::from(filter.limit));
            query.build_query_as().fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|row| DeadLetter {
                delivery_id: row.id,
                notification_id: row.notification_id,
                kind: row.kind,
                channel: row.channel,
                route: row.route,
                attempts: row.attempts as u32,
                last_error: row.last_error,
                dead_at: row.updated_at,
            })
            .collect())
    }

    /// Whether writes land: `Ok` at once unless the last write failed and none has
    /// landed since; `/readyz` asks. While writes fail, it answers
    /// [`Error::WritesFailing`] for `retry_after` after the last failure (what a refused
    /// sender is told to wait), then tries a small write of its own, so that a hub with
    /// no traffic (a load balancer stopped sending it any when it went unready) becomes
    /// ready again once its disk or database takes writes.
    pub async fn check_writes(&self, retry_after: std::time::Duration) -> Result<()> {
        if !self.health.failing() {
            return Ok(());
        }
        if self
            .health
            .since_last_failure()
            .is_some_and(|since| since < retry_after)
        {
            return Err(Error::WritesFailing);
        }
        on_writer!(self, "write_probe", Landed, |pool, Db, dialect| {
            let mut tx = pool.begin().await?;
            if dialect == Dialect::Sqlite {
                // Writing the header's user version, unchanged, dirties a page, so the
                // commit appends to the WAL as any write does. Nothing reads the value.
                let version: i64 = sqlx::query_scalar("PRAGMA user_version")
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(&format!("PRAGMA user_version = {version}"))
                    .execute(&mut *tx)
                    .await?;
            } else {
                // A transaction id makes the commit write its record to the WAL.
                sqlx::query("SELECT txid_current()")
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Whether the database answers; `/readyz` asks.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            sqlx::query("SELECT 1").execute(pool).await?;
            Ok(())
        })
    }
}

async fn close(pool: &Pool) {
    on_pool!(pool, |pool, Db, dialect| pool.close().await)
}

/// Stores an idempotency key, replacing an expired one under the same name.
const REMEMBER_KEY: &str = "INSERT INTO idempotency_keys \
     (scope, key, fingerprint, response, created_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, \
     response = excluded.response, created_at = excluded.created_at";

/// `INSERT INTO notifications ... VALUES ...` for `chunk`, followed by `tail`.
fn notifications_insert<'a, DB>(chunk: &[&'a Notification], tail: &str) -> QueryBuilder<'a, DB>
where
    DB: Database,
    DB::Arguments<'a>: Default,
    &'a str: Encode<'a, DB> + Type<DB>,
    String: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut insert = QueryBuilder::<DB>::new(
        "INSERT INTO notifications \
         (id, kind, source, attributes, payload, idempotency_key, created_at, tenant) ",
    );
    insert.push_values(chunk.iter().copied(), |mut row, n: &'a Notification| {
        row.push_bind(n.id.as_str())
            .push_bind(n.kind.as_str())
            .push_bind(n.source.as_str())
            .push_bind(serde_json::to_string(&n.attributes).expect("pairs serialise"))
            .push_bind(n.payload.as_str())
            .push_bind(n.idempotency_key.as_deref())
            .push_bind(n.created_at)
            .push_bind(n.tenant.as_deref());
    });
    insert.push(tail);
    insert
}

/// `INSERT INTO deliveries ... VALUES ...` for `chunk`, pending and created `now`,
/// followed by `tail`. Deliveries `on_broker` keep no lease: the broker holds them.
fn deliveries_insert<'a, DB>(
    chunk: &'a [NewDelivery],
    now: i64,
    on_broker: bool,
    tail: &str,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    DB::Arguments<'a>: Default,
    &'a str: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
    bool: Encode<'a, DB> + Type<DB>,
{
    let pending: &'a str = "pending";
    let mut insert = QueryBuilder::<DB>::new(
        "INSERT INTO deliveries (id, notification_id, channel, route, state, next_at, \
         lease_owner, on_broker, created_at, updated_at) ",
    );
    insert.push_values(chunk, |mut row, d| {
        row.push_bind(d.id.as_str())
            .push_bind(d.notification_id.as_str())
            .push_bind(d.channel.as_str())
            .push_bind(d.route.as_str())
            .push_bind(pending)
            .push_bind(d.next_at)
            .push_bind(if on_broker {
                None
            } else {
                d.lease_owner.as_deref()
            })
            .push_bind(on_broker)
            .push_bind(now)
            .push_bind(now);
    });
    insert.push(tail);
    insert
}

/// A notification's columns, as both databases return them.
#[derive(sqlx::FromRow)]
struct NotificationRow {
    id: String,
    kind: String,
    source: String,
    /// JSON array of `[name, value]` pairs.
    attributes: String,
    payload: String,
    idempotency_key: Option<String>,
    created_at: i64,
    tenant: Option<String>,
}

impl TryFrom<NotificationRow> for Notification {
    type Error = Error;

    fn try_from(row: NotificationRow) -> Result<Notification> {
        let attributes =
            serde_json::from_str(&row.attributes).map_err(|e| sqlx::Error::ColumnDecode {
                index: "attributes".into(),
                source: Box::new(e),
            })?;
        Ok(Notification {
            id: row.id,
            kind: row.kind,
            source: row.source,
            attributes,
            payload: row.payload,
            idempotency_key: row.idempotency_key,
            created_at: row.created_at,
            tenant: row.tenant,
        })
    }
}

#[derive(sqlx::FromRow)]
struct StreamRow {
    seq: i64,
    #[sqlx(flatten)]
    notification: NotificationRow,
}

#[derive(sqlx::FromRow)]
struct LeasedRow {
    delivery_id: String,
    attempts: i64,
    retry_base: i64,
    #[sqlx(flatten)]
    notification: NotificationRow,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    notification_id: String,
    channel: String,
    route: String,
    state: String,
    attempts: i64,
    next_at: i64,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct DeadLetterRow {
    id: String,
    notification_id: String,
    kind: String,
    channel: String,
    route: String,
    attempts: i64,
    last_error: Option<String>,
    updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    delivery_id: String,
    attempt: i64,
    started_at: i64,
    duration_ms: i64,
    outcome: String,
    status: Option<i32>,
    detail: Option<String>,
    transforms: Option<String>,
}
