//! The poller leases due deliveries from the store into lanes with room: retries whose
//! time has come, replayed dead letters, deliveries the router could not hand over, and
//! the leftovers of a process that died.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Held, Job, Lanes};
use crate::store;

/// The most deliveries leased in one query.
const LEASE_BATCH: usize = 512;
/// The most endpoints with due deliveries served in one pass.
const ENDPOINTS_PER_PASS: u32 = 256;
/// How long the poller rests when nothing was due.
const IDLE: Duration = Duration::from_millis(100);

/// Runs until `stop` fires. With `endpoints_only`, only endpoints' deliveries are leased
/// (a broker carries the YAML channels').
pub async fn run_poller(
    lanes: Lanes,
    owner: String,
    endpoints_only: bool,
    stop: CancellationToken,
) {
    loop {
        let busy = match poll_once(&lanes, &owner, endpoints_only).await {
            Ok(busy) => busy,
            Err(error) => {
                tracing::error!(%error, "could not lease due deliveries");
                false
            }
        };
        if !busy {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(IDLE) => {}
            }
        } else if stop.is_cancelled() {
            return;
        }
    }
}

/// One pass over the channels with due deliveries; true when it leased a full batch, so
/// there is likely more.
async fn poll_once(lanes: &Lanes, owner: &str, endpoints_only: bool) -> store::Result<bool> {
    let mut busy = false;
    if !endpoints_only {
        let table = lanes.routes().current();
        // Only channels in the routes file: one that left it keeps its deliveries until it
        // comes back.
        for (channel, _) in table.channels() {
            busy |= lease_into(lanes, owner, channel).await?;
        }
    }
    // Endpoints are too many to ask after one by one: the store says which have work.
    let due = lanes
        .store()
        .due_endpoint_channels(ENDPOINTS_PER_PASS)
        .await?;
    busy |= due.len() == ENDPOINTS_PER_PASS as usize;
    for channel in due {
        busy |= lease_into(lanes, owner, &channel).await?;
    }
    Ok(busy)
}

/// Leases due deliveries of `channel` into its lane, as many as it has room for; true
/// when that filled the batch.
async fn lease_into(lanes: &Lanes, owner: &str, channel: &str) -> store::Result<bool> {
    let sender = lanes.sender(channel);
    let room = sender.capacity().min(LEASE_BATCH);
    if room == 0 {
        return Ok(false);
    }
    let lease_until = store::now_ms() + lanes.lease().as_millis() as i64;
    let leased = lanes
        .store()
        .lease_due(channel, owner, lease_until, room as u32)
        .await?;
    let busy = leased.len() == room;
    let mut refused = Vec::new();
    for delivery in leased {
        let job = Job {
            delivery_id: delivery.id,
            attempts: delivery.attempts,
            retry_base: delivery.retry_base,
            notification: std::sync::Arc::new(delivery.notification),
            held: Held::Store,
        };
        // Only the router also fills lanes, so room rarely vanishes; if it does, the
        // delivery goes back to the store at once rather than waiting out its lease.
        if let Err(error) = sender.try_send(job) {
            refused.push(error.into_inner().delivery_id);
        }
    }
    if !refused.is_empty() {
        lanes.store().release(&refused, store::now_ms()).await?;
    }
    Ok(busy)
}
