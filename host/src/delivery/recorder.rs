//! The recorder writes attempts to the store in batches: many workers' attempts share one
//! transaction, which is what lets SQLite keep up with thousands of deliveries a second.
//!
//! A delivery taken from a broker queue is settled there only after its record is written
//! (acked, sent on to its retry, or dead-lettered), so a crash in between repeats the
//! attempt rather than losing it.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::Held;
use crate::bus::rabbit;
use crate::store::{self, AttemptRecord, NextStep, Store};

/// The most attempts written in one transaction.
const MAX_BATCH: usize = 2048;
/// How long the recorder waits for more attempts after the first of a batch. Attempts
/// finish one at a time, so without a wait most transactions held the one or two that had
/// finished since the last, and each of their statements is a hand-off to the SQLite
/// connection's thread and back. Meanwhile the delivery stays leased (a broker delivery
/// unacknowledged); a shutdown's flush is written at once.
const LINGER: Duration = Duration::from_millis(10);

enum Message {
    Attempt {
        channel: String,
        record: AttemptRecord,
        held: Held,
    },
    Flush(oneshot::Sender<()>),
}

/// Hands attempts to the recording task. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Message>,
}

impl Recorder {
    /// Starts the recording task.
    pub fn start(store: Store) -> Recorder {
        let (queue, messages) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(run(store, messages));
        Recorder { queue }
    }

    /// Queues one attempt. The delivery stays leased until the record is written, so a
    /// crash before that repeats the attempt rather than losing it.
    pub async fn record(&self, channel: &str, record: AttemptRecord, held: Held) {
        let message = Message::Attempt {
            channel: channel.to_string(),
            record,
            held,
        };
        if self.queue.send(message).await.is_err() {
            tracing::error!(
                "the recorder has stopped; an attempt was not recorded and will be repeated"
            );
        }
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

async fn run(store: Store, mut messages: mpsc::Receiver<Message>) {
    // Two parallel lists, so the records go to the store without copying.
    let mut records: Vec<AttemptRecord> = Vec::with_capacity(MAX_BATCH);
    let mut channels: Vec<String> = Vec::with_capacity(MAX_BATCH);
    // Broker deliveries to settle once the batch is written: (index in `records`, lease).
    let mut unsettled: Vec<(usize, Box<rabbit::Leased>)> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = messages.recv().await {
        let linger_until = Instant::now() + LINGER;
        let mut next = Some(first);
        loop {
            while let Some(message) = next.take() {
                match message {
                    Message::Attempt {
                        channel,
                        record,
                        held,
                    } => {
                        if let Held::Queue(leased) = held {
                            unsettled.push((records.len(), leased));
                        }
                        records.push(record);
                        channels.push(channel);
                    }
                    Message::Flush(done) => waiting.push(done),
                }
                if records.len() < MAX_BATCH {
                    next = messages.try_recv().ok();
                }
            }
            if records.len() >= MAX_BATCH || !waiting.is_empty() {
                break;
            }
            match tokio::time::timeout_at(linger_until, messages.recv()).await {
                Ok(Some(message)) => next = Some(message),
                // The linger is over, or every sender is gone: write what there is.
                Ok(None) | Err(_) => break,
            }
        }
        if !records.is_empty() {
            write(&store, &records).await;
            settle(&records, unsettled.drain(..)).await;
            count(&channels, &records);
            records.clear();
            channels.clear();
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes one batch, retrying until the store takes it: dropping records would lose the
/// attempt history, and the leases keep the deliveries safe meanwhile.
async fn write(store: &Store, records: &[AttemptRecord]) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match store.record_attempts(records).await {
            Ok(()) => return,
            Err(error) => {
                tracing::error!(%error, attempts = records.len(), "could not record attempts; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Settles recorded broker deliveries, all at once: each waits for its broker's confirm.
async fn settle(
    records: &[AttemptRecord],
    unsettled: impl Iterator<Item = (usize, Box<rabbit::Leased>)>,
) {
    let settling = unsettled.map(|(index, mut leased)| {
        let record = &records[index];
        async move {
            match record.next {
                NextStep::Done => leased.ack().await,
                NextStep::RetryAt(at) => {
                    leased.delivery.attempts = record.attempt;
                    let wait = (at - store::now_ms()).max(0) as u64;
                    leased.retry_in(Duration::from_millis(wait)).await
                }
                NextStep::Dead => leased.dead().await,
            }
        }
    });
    let failures: Vec<rabbit::Error> = futures::future::join_all(settling)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if let Some(error) = failures.first() {
        // One line for the batch: when the broker goes away, every delivery in flight fails
        // the same way. The broker hands them out again; their next attempt is recorded as
        // the one after this.
        tracing::warn!(deliveries = failures.len(), %error, "could not settle recorded deliveries on their queues; they will be redelivered");
    }
}

fn count(channels: &[String], records: &[AttemptRecord]) {
    for (channel, record) in channels.iter().zip(records) {
        let name = match record.next {
            NextStep::Done => "switchyard_deliveries_delivered_total",
            NextStep::RetryAt(_) => "switchyard_deliveries_retried_total",
            NextStep::Dead => "switchyard_deliveries_dead_lettered_total",
        };
        metrics::counter!(name, "channel" => metric_label(channel)).increment(1);
    }
}

/// The `channel` label of a metric: tenants' endpoints, which may be thousands, share one
/// label (`endpoints`), so a time series per endpoint never swamps the metrics.
pub fn metric_label(channel: &str) -> String {
    if crate::routing::endpoints::endpoint_id(channel).is_some() {
        "endpoints".to_owned()
    } else {
        channel.to_owned()
    }
}
