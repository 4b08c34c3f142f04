//! Payload retention: notifications older than `store.retention` whose deliveries are all
//! settled (delivered or dead) are deleted, with their deliveries and attempts.
//!
//! Deletion walks the stream from its oldest end in windows of [`WINDOW`] notifications,
//! one short transaction each, so the SQLite writer is never held for long and no
//! statement scans more than a window. A notification that still has a pending delivery
//! is kept (and revisited on the next pass) however old it is.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::backend::on_pool;
use super::{Result, Store, now_ms};

/// Notifications looked at per transaction.
const WINDOW: i64 = 500;
/// How often a pass runs.
const PERIOD: Duration = Duration::from_secs(60);
/// The pause between two windows of one pass, so the pipeline's writes get their turn.
const BETWEEN_WINDOWS: Duration = Duration::from_millis(20);

/// Deletes settled notifications older than `retention` every minute until `stop` fires.
/// Failures are logged and retried on the next pass.
pub async fn run_retention(store: Store, retention: Duration, stop: CancellationToken) {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let mut ticks = tokio::time::interval(PERIOD);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let cutoff = now_ms().saturating_sub(retention_ms);
        let mut after = 0;
        let mut deleted = 0;
        loop {
            match store.delete_settled_window(cutoff, after).await {
                Ok(Some(pass)) => {
                    deleted += pass.deleted;
                    after = pass.last_seq;
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "could not delete expired notifications");
                    break;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(BETWEEN_WINDOWS) => {}
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "deleted notifications past their retention");
        }
    }
}

/// What one window of a retention pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionWindow {
    /// Notifications deleted.
    pub deleted: u64,
    /// The last stream position looked at: the next window starts after it.
    pub last_seq: i64,
}

impl Store {
    /// Deletes, in one transaction, the notifications among the next [`WINDOW`] after
    /// stream position `after` that were created before `cutoff` (Unix ms), that every
    /// stream consumer has read, and whose deliveries are all delivered or dead, with those
    /// deliveries and their attempts. `None` when there is nothing old left to look at.
    pub async fn delete_settled_window(
        &self,
        cutoff: i64,
        after: i64,
    ) -> Result<Option<RetentionWindow>> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            let mut tx = pool.begin().await?;
            let window: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT seq, created_at FROM notifications WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(WINDOW)
            .fetch_all(&mut *tx)
            .await?;
            // Times grow with positions (give or take a clock step), so once the oldest
            // unvisited notification is recent, so is the rest.
            let (Some(&(_, first_created)), Some(&(last_seq, _))) = (window.first(), window.last())
            else {
                return Ok(None);
            };
            if first_created >= cutoff {
                return Ok(None);
            }
            // A notification no consumer has read yet has no deliveries only because it
            // is not routed yet. Without cursors (a broker bus), everything stored is
            // routed.
            let (read_by_all,): (Option<i64>,) =
                sqlx::query_as("SELECT MIN(position) FROM stream_cursors")
                    .fetch_one(&mut *tx)
                    .await?;
            let upto = read_by_all.map_or(last_seq, |position| position.min(last_seq));

            // Attempts, then deliveries, of the window's old notifications that have no
            // pending delivery.
            sqlx::query(
                "DELETE FROM attempts WHERE delivery_id IN (\
                   SELECT d.id FROM notifications n \
                   JOIN deliveries d ON d.notification_id = n.id \
                   WHERE n.seq > $1 AND n.seq <= $2 AND n.created_at < $3 \
                   AND NOT EXISTS (SELECT 1 FROM deliveries p \
                                   WHERE p.notification_id = n.id AND p.state = 'pending'))",
            )
            .bind(after)
            .bind(upto)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM deliveries WHERE notification_id IN (\
                   SELECT n.id FROM notifications n \
                   WHERE n.seq > $1 AND n.seq <= $2 AND n.created_at < $3 \
                   AND NOT EXISTS (SELECT 1 FROM deliveries p \
                                   WHERE p.notification_id = n.id AND p.state = 'pending'))",
            )
            .bind(after)
            .bind(upto)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
            // Then the notifications left without deliveries: a replay that made one
            // pending again in between keeps its notification.
            let deleted = sqlx::query(
                "DELETE FROM notifications \
                 WHERE seq > $1 AND seq <= $2 AND created_at < $3 \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d \
                                 WHERE d.notification_id = notifications.id)",
            )
            .bind(after)
            .bind(upto)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(Some(RetentionWindow {
                deleted,
                // Past the unread part nothing more can go this pass.
                last_seq: if upto < last_seq { i64::MAX } else { last_seq },
            }))
        })
    }
}
