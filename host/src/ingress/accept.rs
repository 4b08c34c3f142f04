//! Accept: give each draft an id, dedupe on idempotency keys, and make it durable on the
//! stream before anyone hears "202".
//!
//! Requests queue for one writer task, which stores everything that queued while the
//! previous transaction ran in the next one (group commit). Under load one transaction
//! carries thousands of notifications; when idle, a lone request goes straight through.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::events::{Event, Events};
use crate::runtime::Draft;
use crate::store::{self, AcceptBatch, Accepted, AcceptedItem, Notification, RequestKey, Store};

/// The most notifications in one accept transaction.
const MAX_NOTIFICATIONS_PER_COMMIT: usize = 8192;

/// Why a request could not be accepted. Nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("the hub could not store the notification; nothing was accepted; retry")]
    Unavailable,
    #[error("the hub is shutting down; retry")]
    ShuttingDown,
}

/// Either way nothing was accepted and the sender should retry: 503.
impl From<AcceptError> for super::Problem {
    fn from(error: AcceptError) -> Self {
        super::Problem::new(
            poem::http::StatusCode::SERVICE_UNAVAILABLE,
            error.to_string(),
        )
    }
}

struct Job {
    batch: AcceptBatch,
    reply: oneshot::Sender<Result<Accepted, AcceptError>>,
}

/// The front doors' way into the pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Acceptor {
    queue: mpsc::Sender<Job>,
}

impl Acceptor {
    /// Starts the writer task. `stream` is woken after every commit.
    pub fn start(
        store: Store,
        stream: Arc<Notify>,
        idempotency_window_ms: i64,
        events: Events,
    ) -> Acceptor {
        let (queue, jobs) = mpsc::channel(4096);
        tokio::spawn(run(store, jobs, stream, idempotency_window_ms, events));
        Acceptor { queue }
    }

    /// Accepts `drafts` from `source`. Returns once they are durable (or known duplicates).
    pub async fn accept(
        &self,
        source: &str,
        drafts: Vec<Draft>,
        request_key: Option<RequestKey>,
    ) -> Result<Accepted, AcceptError> {
        let now = store::now_ms();
        let notifications = drafts
            .into_iter()
            .map(|draft| Notification {
                id: uuid::Uuid::now_v7().to_string(),
                kind: draft.kind,
                source: source.to_string(),
                attributes: draft.attributes,
                payload: draft.payload,
                idempotency_key: draft.idempotency_key,
                created_at: now,
            })
            .collect();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            batch: AcceptBatch {
                request_key,
                notifications,
            },
            reply,
        };
        self.queue
            .send(job)
            .await
            .map_err(|_| AcceptError::ShuttingDown)?;
        answer.await.map_err(|_| AcceptError::ShuttingDown)?
    }
}

async fn run(
    store: Store,
    mut jobs: mpsc::Receiver<Job>,
    stream: Arc<Notify>,
    window_ms: i64,
    events: Events,
) {
    while let Some(first) = jobs.recv().await {
        let mut size = first.batch.notifications.len();
        let mut group = vec![first];
        while size < MAX_NOTIFICATIONS_PER_COMMIT {
            match jobs.try_recv() {
                Ok(job) => {
                    size += job.batch.notifications.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let (batches, replies): (Vec<AcceptBatch>, Vec<_>) =
            group.into_iter().map(|job| (job.batch, job.reply)).unzip();
        match store.accept(&batches, window_ms).await {
            Ok(answers) => {
                stream.notify_one();
                for (batch, answer) in batches.iter().zip(&answers) {
                    if let Accepted::Stored(items) = answer {
                        let fresh = items.iter().filter(|item| !item.duplicate).count();
                        if let Some(first) = batch.notifications.first() {
                            metrics::counter!("switchyard_notifications_accepted_total", "source" => first.source.clone())
                                .increment(fresh as u64);
                        }
                        if events.has_subscribers() {
                            publish_accepted(&events, batch, items);
                        }
                    }
                }
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(error) => {
                tracing::error!(%error, "could not store accepted notifications");
                for reply in replies {
                    let _ = reply.send(Err(AcceptError::Unavailable));
                }
            }
        }
    }
}

/// Tells subscribers about the notifications of `batch` that were new.
fn publish_accepted(events: &Events, batch: &AcceptBatch, items: &[AcceptedItem]) {
    for (notification, item) in batch.notifications.iter().zip(items) {
        if !item.duplicate {
            events.publish(Event::NotificationAccepted {
                id: notification.id.clone(),
                kind: notification.kind.clone(),
                source: notification.source.clone(),
                attributes: notification.attributes.clone(),
                created_at: notification.created_at,
            });
        }
    }
}
