//! The router reads the stream in order, matches each notification against the current
//! route table, and turns it into one delivery per target channel.
//!
//! The deliveries and the router's new stream position are committed together, so after a
//! crash the router repeats the last batch or none of it; it never skips one. A fresh
//! delivery goes straight to its channel's lane when the lane has room; otherwise it waits
//! in the store for the poller, so one slow channel never holds the router up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::delivery::{Job, Lanes};
use crate::store::{self, NewDelivery, Store};

/// The router's name on the stream.
pub const CONSUMER: &str = "router";
/// The most notifications routed in one transaction.
const BATCH: u32 = 2048;

/// Runs until `stop` fires, then finishes the batch in hand.
pub async fn run(
    store: Store,
    lanes: Lanes,
    owner: String,
    stream: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut position = loop {
        match store.stream_position(CONSUMER).await {
            Ok(position) => break position,
            Err(error) => {
                tracing::error!(%error, "could not read the router's stream position");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    while !stop.is_cancelled() {
        match route_batch(&store, &lanes, &owner, position).await {
            Ok(Some(next)) => position = next,
            Ok(None) => {
                // Caught up. The timeout covers a wake-up that raced with the read.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = stream.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            Err(error) => {
                tracing::error!(%error, "routing failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

/// Routes the notifications after `position`; returns the new position, or `None` when
/// there was nothing to read.
async fn route_batch(
    store: &Store,
    lanes: &Lanes,
    owner: &str,
    position: i64,
) -> store::Result<Option<i64>> {
    let entries = store.stream_read(position, BATCH).await?;
    let Some(last) = entries.last().map(|entry| entry.seq) else {
        return Ok(None);
    };
    let table = lanes.routes().current();
    let now = store::now_ms();
    let lease_until = now + lanes.lease().as_millis() as i64;
    let mut deliveries = Vec::new();
    let mut handovers = Vec::new();
    let mut unrouted = 0u64;
    for entry in entries {
        let notification = Arc::new(entry.notification);
        let targets = table.targets(&notification.kind, &notification.attributes);
        if targets.is_empty() {
            unrouted += 1;
        }
        for target in targets {
            let id = uuid::Uuid::now_v7().to_string();
            let room = lanes.sender(&target.channel).try_reserve_owned().ok();
            deliveries.push(NewDelivery {
                id: id.clone(),
                notification_id: notification.id.clone(),
                channel: target.channel.to_string(),
                route: target.route.to_string(),
                lease_owner: room.as_ref().map(|_| owner.to_string()),
                next_at: if room.is_some() { lease_until } else { now },
            });
            if let Some(room) = room {
                let job = Job {
                    delivery_id: id,
                    attempts: 0,
                    retry_base: 0,
                    notification: notification.clone(),
                };
                handovers.push((room, job));
            }
        }
    }
    store.commit_routing(CONSUMER, last, &deliveries).await?;
    for (room, job) in handovers {
        room.send(job);
    }
    if unrouted > 0 {
        metrics::counter!("switchyard_notifications_unrouted_total").increment(unrouted);
    }
    Ok(Some(last))
}
