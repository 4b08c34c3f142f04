//! Accept: give each draft an id, dedupe on idempotency keys, and make it durable on the
//! stream before anyone hears "202".
//!
//! Requests queue for one writer task, which stores everything that queued while the
//! previous transaction ran in the next one (group commit). Under load one transaction
//! carries thousands of notifications; when idle, a lone request goes straight through.
//!
//! With a Kafka stream the writer publishes instead, the same way: everything that queued
//! meanwhile goes out in one go, and each request hears back once every broker ack for its
//! notifications is in. The idempotency window is then kept in Redis, where every process
//! sees it; the router stores the notifications as it reads them from the stream.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use std::time::Duration;

use crate::bus::kafka::KafkaProducer;
use crate::bus::shared::{NotificationClaim, RequestClaim, Shared};
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

/// Either way nothing was accepted and the sender should retry: 503, which carries
/// `Retry-After` (see [`super::ProblemResponse`]). While the store's commits fail (a full
/// disk, a lost database), every request gets this, until one commits again.
impl From<AcceptError> for super::Problem {
    fn from(error: AcceptError) -> Self {
        super::Problem::new(
            poem::http::StatusCode::SERVICE_UNAVAILABLE,
            error.to_string(),
        )
        .code("unavailable")
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

    /// Starts the publishing task for a Kafka stream.
    pub fn start_kafka(
        producer: Arc<KafkaProducer>,
        shared: Shared,
        idempotency_window: Duration,
        events: Events,
    ) -> Acceptor {
        let (queue, jobs) = mpsc::channel(4096);
        tokio::spawn(run_kafka(
            producer,
            shared,
            jobs,
            idempotency_window,
            events,
        ));
        Acceptor { queue }
    }

    /// Accepts `drafts` from `source`, sent with API token `token_id` (none for a signed
    /// webhook), for `tenant` when given. Returns once they are durable (or known duplicates). The notifications' own
    /// idempotency keys are the token's and the source's: another sender's never match.
    pub async fn accept(
        &self,
        source: &str,
        token_id: Option<&str>,
        tenant: Option<&str>,
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
                tenant: tenant.map(str::to_owned),
            })
            .collect();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            batch: AcceptBatch {
                request_key,
                // A sender's keys are its own per tenant: the same key for two tenants is
                // two notifications.
                key_owner: match tenant {
                    None => store::notification_key_owner(token_id, source),
                    Some(tenant) => format!(
                        "{}/tenant/{tenant}",
                        store::notification_key_owner(token_id, source)
                    ),
                },
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

/// Takes the first job and whatever else queued behind it, up to a commit's worth.
async fn next_group(jobs: &mut mpsc::Receiver<Job>) -> Option<Vec<Job>> {
    let first = jobs.recv().await?;
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
    Some(group)
}

/// Counts and announces the new notifications of an accepted batch.
fn accepted(events: &Events, batch: &AcceptBatch, items: &[AcceptedItem]) {
    let fresh = items.iter().filter(|item| !item.duplicate).count();
    if let Some(first) = batch.notifications.first() {
        metrics::counter!("switchyard_notifications_accepted_total", "source" => first.source.clone())
            .increment(fresh as u64);
    }
    if events.has_subscribers() {
        publish_accepted(events, batch, items);
    }
}

async fn run(
    store: Store,
    mut jobs: mpsc::Receiver<Job>,
    stream: Arc<Notify>,
    window_ms: i64,
    events: Events,
) {
    while let Some(group) = next_group(&mut jobs).await {
        let (batches, replies): (Vec<AcceptBatch>, Vec<_>) =
            group.into_iter().map(|job| (job.batch, job.reply)).unzip();
        match store.accept(&batches, window_ms).await {
            Ok(answers) => {
                stream.notify_one();
                for (batch, answer) in batches.iter().zip(&answers) {
                    if let Accepted::Stored(items) = answer {
                        accepted(&events, batch, items);
                    }
                }
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(error) => {
                // The store logs when its writes start failing and when they land again;
                // one line per refused group would flood the log for as long as it lasts.
                tracing::debug!(%error, "could not store accepted notifications");
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

/// A request on its way to Kafka: its answer so far, and what it claimed in Redis.
struct Publishing {
    job: Job,
    /// `None` while it is still to be published.
    answer: Option<Result<Accepted, AcceptError>>,
    items: Vec<AcceptedItem>,
    claimed_request: bool,
}

async fn run_kafka(
    producer: Arc<KafkaProducer>,
    shared: Shared,
    mut jobs: mpsc::Receiver<Job>,
    window: Duration,
    events: Events,
) {
    let mut outage = false;
    while let Some(group) = next_group(&mut jobs).await {
        // Dedupe every request at once: each is a round trip or two to Redis.
        let mut requests: Vec<Publishing> =
            futures::future::join_all(group.into_iter().map(|job| dedupe(&shared, job, window)))
                .await;

        let fresh: Vec<Notification> = requests
            .iter()
            .filter(|r| r.answer.is_none())
            .flat_map(|r| {
                r.job
                    .batch
                    .notifications
                    .iter()
                    .zip(&r.items)
                    .filter(|(_, item)| !item.duplicate)
                    .map(|(n, _)| n.clone())
            })
            .collect();
        let published = if fresh.is_empty() {
            Ok(())
        } else {
            producer.publish(&fresh).await
        };
        // Logged when an outage starts and when it ends, not for every request meanwhile.
        match &published {
            Err(error) if !outage => {
                outage = true;
                tracing::error!(%error, notifications = fresh.len(), "could not publish accepted notifications to Kafka; senders get 503 until it is back");
            }
            Err(error) => tracing::debug!(%error, "Kafka is still refusing notifications"),
            Ok(()) if outage && !fresh.is_empty() => {
                outage = false;
                tracing::info!("publishing to Kafka again");
            }
            Ok(()) => {}
        }

        let finishing = requests.iter_mut().filter(|r| r.answer.is_none()).map(|r| {
            let published = published.is_ok();
            let shared = &shared;
            async move {
                let batch = &r.job.batch;
                if published {
                    if let Some(key) = &batch.request_key
                        && let Err(error) = shared.settle_request(key, &r.items, window).await
                    {
                        // The claim already holds the same ids; only duplicate flags differ.
                        tracing::warn!(%error, "could not record a request's final answer in Redis");
                    }
                    r.answer = Some(Ok(Accepted::Stored(r.items.clone())));
                } else {
                    forget_claims(shared, r).await;
                    r.answer = Some(Err(AcceptError::Unavailable));
                }
            }
        });
        futures::future::join_all(finishing).await;

        for request in requests {
            let answer = request.answer.expect("every request has its answer");
            if let Ok(Accepted::Stored(items)) = &answer {
                accepted(&events, &request.job.batch, items);
            }
            let _ = request.job.reply.send(answer);
        }
    }
}

/// Claims a request's idempotency keys in Redis: its `Idempotency-Key`, then each
/// notification's own key. A request whose key was seen gets its answer at once.
async fn dedupe(shared: &Shared, job: Job, window: Duration) -> Publishing {
    let provisional: Vec<AcceptedItem> = job
        .batch
        .notifications
        .iter()
        .map(|n| AcceptedItem {
            id: n.id.clone(),
            duplicate: false,
        })
        .collect();
    let mut request = Publishing {
        job,
        answer: None,
        items: provisional,
        claimed_request: false,
    };
    if let Some(key) = &request.job.batch.request_key {
        match shared.claim_request(key, &request.items, window).await {
            Ok(RequestClaim::Claimed) => request.claimed_request = true,
            Ok(RequestClaim::Replayed(items)) => {
                request.answer = Some(Ok(Accepted::Replayed(items)));
                return request;
            }
            Ok(RequestClaim::Reused) => {
                request.answer = Some(Ok(Accepted::KeyReused));
                return request;
            }
            Err(error) => {
                tracing::error!(%error, "could not check an idempotency key in Redis; the sender gets 503");
                request.answer = Some(Err(AcceptError::Unavailable));
                return request;
            }
        }
    }
    let batch = &request.job.batch;
    let notifications: Vec<&Notification> = batch.notifications.iter().collect();
    match shared
        .claim_notifications(&batch.key_owner, &notifications, window)
        .await
    {
        Ok(claims) => {
            let mut reused = None;
            for (index, (item, claim)) in request.items.iter_mut().zip(claims).enumerate() {
                match claim {
                    NotificationClaim::New => {}
                    NotificationClaim::Duplicate(first) => {
                        item.id = first;
                        item.duplicate = true;
                    }
                    NotificationClaim::Reused => {
                        // Not ours to release: the key stays its first sender's.
                        item.duplicate = true;
                        reused.get_or_insert(index);
                    }
                }
            }
            if let Some(index) = reused {
                forget_claims(shared, &request).await;
                request.answer = Some(Ok(Accepted::NotificationKeyReused { index }));
            }
        }
        Err(error) => {
            tracing::error!(%error, "could not check idempotency keys in Redis; the sender gets 503");
            forget_claims(shared, &request).await;
            request.answer = Some(Err(AcceptError::Unavailable));
        }
    }
    request
}

/// Gives back the keys a request claimed, when it was not accepted after all.
async fn forget_claims(shared: &Shared, request: &Publishing) {
    let batch = &request.job.batch;
    let claimed: Vec<&Notification> = batch
        .notifications
        .iter()
        .zip(&request.items)
        .filter(|(n, item)| !item.duplicate && n.idempotency_key.is_some())
        .map(|(n, _)| n)
        .collect();
    let request_key = batch
        .request_key
        .as_ref()
        .filter(|_| request.claimed_request);
    if let Err(error) = shared
        .release(request_key, &batch.key_owner, &claimed)
        .await
    {
        // They expire with the window; until then a retry is taken for a repeat.
        tracing::warn!(%error, "could not release idempotency keys in Redis");
    }
}
