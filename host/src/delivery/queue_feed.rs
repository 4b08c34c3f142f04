//! With RabbitMQ queues, the queue feed fills the lanes: one consumer per channel in the
//! routes file, started as channels appear. The broker's prefetch bounds what this process
//! holds; a full lane stops the consumer taking more, and the rest wait on the broker.

use std::collections::HashSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Job, Lanes};
use crate::bus::rabbit::RabbitQueues;

/// Runs until `stop` fires.
pub async fn run_queue_feed(lanes: Lanes, queues: Arc<RabbitQueues>, stop: CancellationToken) {
    let mut tables = lanes.routes().subscribe();
    let mut consuming: HashSet<String> = HashSet::new();
    loop {
        let table = lanes.routes().current();
        // A channel that leaves the routes file keeps its consumer: its deliveries wait in
        // the lane for it to come back, as they do in the store.
        for (channel, _) in table.channels() {
            if consuming.insert(channel.to_owned()) {
                let deliveries = queues.consume(channel, stop.clone());
                tokio::spawn(feed(lanes.clone(), channel.to_owned(), deliveries));
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = tables.changed() => if changed.is_err() { return },
        }
    }
}

async fn feed(
    lanes: Lanes,
    channel: String,
    mut deliveries: tokio::sync::mpsc::Receiver<crate::bus::rabbit::Leased>,
) {
    let lane = lanes.sender(&channel);
    while let Some(leased) = deliveries.recv().await {
        if lane.send(Job::from_queue(leased)).await.is_err() {
            // The lanes are shutting down; unacknowledged messages go back to the broker.
            return;
        }
    }
}
