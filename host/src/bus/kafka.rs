//! The Kafka stream: accept publishes notifications to a topic, and the routers read it as
//! one consumer group.
//!
//! Delivery is at least once on both sides:
//!
//! - [`KafkaProducer::publish`] answers `Ok` only when every notification is acknowledged by
//!   all in-sync replicas (`acks=all`). The producer is idempotent, so librdkafka's own
//!   retries never duplicate or reorder a notification within a partition; a caller that
//!   gets `Err` and retries may still store a notification twice, which the router's
//!   dedupe on the notification id absorbs.
//! - [`KafkaConsumer`] never commits by itself: an offset is stored only when the router
//!   calls [`KafkaConsumer::commit`] after the batch's deliveries are durable, so a crash
//!   repeats a batch and never skips one.
//!
//! Packs: a record carries up to `settings.pack` notifications of one publish, as a JSON
//! array (a single notification is a JSON object, which the router reads too). The
//! broker's work is per record, so packs divide it; a pack is routed and committed as a
//! whole, like any record.
//!
//! librdkafka reconnects on its own with exponential back-off. Its log lines and errors go
//! through `tracing` (target `librdkafka`), and the ones that repeat while a broker is away
//! are logged at most once per [`REPEAT_LOG_EVERY`] with a count of those held back.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaSettings;
use crate::store::Notification;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kafka brokers {brokers} did not answer within {}: {source}", shown(.timeout))]
    Unreachable {
        brokers: String,
        timeout: Duration,
        source: KafkaError,
    },
    #[error("the Kafka client settings were refused: {0}")]
    Config(#[source] KafkaError),
    #[error("could not create Kafka topic {topic} with {partitions} partitions: {reason}")]
    CreateTopic {
        topic: String,
        partitions: i32,
        reason: String,
    },
    #[error("Kafka topic {topic} does not exist on brokers {brokers}")]
    MissingTopic { topic: String, brokers: String },
    #[error("Kafka did not acknowledge {failed} of {total} notifications: {reason}")]
    Publish {
        failed: usize,
        total: usize,
        reason: String,
    },
    #[error("a notification could not be encoded as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("subscribing to Kafka topic {topic} failed: {source}")]
    Subscribe { topic: String, source: KafkaError },
    #[error("reading the Kafka stream failed for good; the consumer must be rebuilt: {0}")]
    Consume(#[source] KafkaError),
    #[error("committing Kafka offsets failed: {0}")]
    Commit(String),
}

fn shown(duration: &Duration) -> humantime::FormattedDuration {
    humantime::format_duration(*duration)
}

/// How long a publish waits for its acknowledgements (librdkafka's `message.timeout.ms`,
/// which is what bounds a publish while the brokers are down), and a commit or a readiness
/// probe for its answer. The settings have one broker timeout, `connect_timeout`; a
/// healthy cluster answers all of these in milliseconds, so the same bound serves. At least
/// a second, because librdkafka refuses a message timeout shorter than its linger.
fn publish_timeout(settings: &KafkaSettings) -> Duration {
    settings.connect_timeout.max(Duration::from_secs(1))
}

/// A repeated librdkafka complaint (a broker refusing connections, every broker down) is
/// logged at most this often.
pub const REPEAT_LOG_EVERY: Duration = Duration::from_secs(30);

/// Settings shared by every client: where the brokers are and how librdkafka talks.
fn base_config(settings: &KafkaSettings, role: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", format!("switchyard-{role}"))
        // Idle connections closed by the broker are routine, not news.
        .set("log.connection.close", "false")
        // We create the topic with the configured partition count; a broker's auto-create
        // would silently use its own default instead.
        .set("allow.auto.create.topics", "false")
        .set_log_level(RDKafkaLogLevel::Info);
    config
}

/// The accept path's producer. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct KafkaProducer {
    /// Replaced after a failed publish (see `replace`).
    producer: RwLock<FutureProducer<Context>>,
    config: ClientConfig,
    topic: String,
    brokers: String,
    timeout: Duration,
    /// The most notifications one record carries.
    pack: usize,
}

impl KafkaProducer {
    /// Connects, checks the brokers answer within `settings.connect_timeout` (a clear error
    /// naming them otherwise), and creates `settings.topic` with `settings.partitions` when
    /// it is missing.
    pub async fn connect(settings: &KafkaSettings) -> Result<KafkaProducer> {
        ensure_topic(settings).await?;
        let timeout = publish_timeout(settings);
        let mut config = base_config(settings, "producer");
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // The bound on a publish while the brokers are away: every message gets its
            // delivery report (success or `MessageTimedOut`) within this time.
            .set("message.timeout.ms", timeout.as_millis().to_string())
            // Accept hands over whole slices at once, so a short linger mostly just fills
            // the batches; larger batches and requests cut the per-message overhead that
            // dominates on a small machine.
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("batch.size", "1048576")
            .set("queue.buffering.max.messages", "200000");
        let producer = build_producer(&config)?;
        Ok(KafkaProducer {
            producer: RwLock::new(producer),
            config,
            topic: settings.topic.clone(),
            brokers: settings.brokers.clone(),
            timeout,
            pack: settings.pack.max(1) as usize,
        })
    }

    /// Publishes the notifications in packs of up to `settings.pack` (key: the first one's
    /// id, so a retried publish lands on the same partition; value: the pack's JSON) and
    /// returns `Ok` only when every record is acknowledged. Any failure is an `Err` after
    /// at most the publish timeout (`settings.connect_timeout`); the caller answers 503 and
    /// the sender retries.
    pub async fn publish(&self, notifications: &[Notification]) -> Result<()> {
        if notifications.is_empty() {
            return Ok(());
        }
        let producer = self.current();
        let result = self.publish_with(&producer, notifications).await;
        if let Err(Error::Publish { .. }) = &result {
            self.replace(&producer);
        }
        self.release(producer);
        result
    }

    async fn publish_with(
        &self,
        producer: &FutureProducer<Context>,
        notifications: &[Notification],
    ) -> Result<()> {
        let total = notifications.len();
        // librdkafka times every message out by itself; this deadline only guards against
        // a delivery report that never comes (it should not happen).
        let deadline = tokio::time::Instant::now() + self.timeout + Duration::from_secs(5);
        let mut pending = Vec::with_capacity(total.div_ceil(self.pack));
        let mut value = Vec::with_capacity(512);
        // Everything is queued before anything is awaited, so the whole slice travels in a
        // few large batches instead of one round trip per record.
        for (index, pack) in notifications.chunks(self.pack).enumerate() {
            value.clear();
            match pack {
                [one] => serde_json::to_writer(&mut value, one)?,
                many => serde_json::to_writer(&mut value, many)?,
            }
            let mut record = FutureRecord::to(&self.topic)
                .key(pack[0].id.as_str())
                .payload(&value);
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    // The local queue is full: wait for earlier messages to drain into the
                    // brokers rather than fail a burst the brokers can absorb.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if tokio::time::Instant::now() < deadline =>
                    {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    // What was queued before stays queued and may still arrive; the sender's
                    // retry is then a duplicate, which the router dedupes.
                    Err((error, _)) => {
                        return Err(Error::Publish {
                            failed: total - index * self.pack,
                            total,
                            reason: error.to_string(),
                        });
                    }
                }
            }
        }
        let Ok(reports) =
            tokio::time::timeout_at(deadline, futures::future::join_all(pending)).await
        else {
            return Err(Error::Publish {
                failed: total,
                total,
                reason: format!("no delivery report within {}", shown(&self.timeout)),
            });
        };
        let mut failed = 0;
        let mut first = None;
        for (report, pack) in reports.into_iter().zip(notifications.chunks(self.pack)) {
            let error = match report {
                Ok(Ok(_)) => continue,
                Ok(Err((error, _))) => error.to_string(),
                Err(_) => "the producer was shut down".to_string(),
            };
            failed += pack.len();
            first.get_or_insert(error);
        }
        match first {
            None => Ok(()),
            Some(reason) => Err(Error::Publish {
                failed,
                total,
                reason,
            }),
        }
    }

    /// For `/readyz`: the brokers answer and the topic exists.
    pub async fn ping(&self) -> Result<()> {
        let producer = self.current();
        let topic = self.topic.clone();
        let timeout = self.timeout;
        let metadata = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(topic.as_str()), timeout)
        })
        .await
        .expect("the metadata probe does not panic")
        .map_err(|source| Error::Unreachable {
            brokers: self.brokers.clone(),
            timeout,
            source,
        })?;
        let found = metadata
            .topics()
            .iter()
            .any(|topic| topic.name() == self.topic && topic.error().is_none());
        if found {
            Ok(())
        } else {
            Err(Error::MissingTopic {
                topic: self.topic.clone(),
                brokers: self.brokers.clone(),
            })
        }
    }

    fn current(&self) -> FutureProducer<Context> {
        self.producer
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn is_current(&self, producer: &FutureProducer<Context>) -> bool {
        let slot = self
            .producer
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::ptr::eq(slot.client().native_ptr(), producer.client().native_ptr())
    }

    /// After a failed publish the next one starts from a fresh producer (a new producer
    /// id). librdkafka recovers an idempotent producer from timed-out messages by bumping
    /// its epoch, which not every Kafka-compatible broker supports (tansu 0.6 does not, and
    /// then refuses the producer for good); a producer that hit a fatal error refuses
    /// everything anyway. Failures are rare, and only the first of a wave replaces it.
    fn replace(&self, failed: &FutureProducer<Context>) {
        let mut slot = self
            .producer
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !std::ptr::eq(slot.client().native_ptr(), failed.client().native_ptr()) {
            return;
        }
        match failed.client().fatal_error() {
            Some((code, reason)) => {
                tracing::error!(?code, %reason, "the Kafka producer failed for good; starting a new one")
            }
            None => {
                if let Some(held_back) = Context::new("producer").admit("replaced") {
                    tracing::warn!(
                        held_back,
                        "a Kafka publish failed; the next one starts a new producer"
                    )
                }
            }
        }
        let old = match build_producer(&self.config) {
            Ok(fresh) => std::mem::replace(&mut *slot, fresh),
            Err(error) => {
                tracing::error!(%error, "could not start a new Kafka producer");
                return;
            }
        };
        drop(slot);
        tokio::task::spawn_blocking(move || drop(old));
    }

    /// Dropping the last handle on a producer purges it and joins its thread, which blocks
    /// for up to half a second: keep that off the async workers.
    fn release(&self, producer: FutureProducer<Context>) {
        if self.is_current(&producer) {
            // Not the last handle: dropping it is only a reference count.
            drop(producer);
        } else {
            tokio::task::spawn_blocking(move || drop(producer));
        }
    }
}

fn build_producer(config: &ClientConfig) -> Result<FutureProducer<Context>> {
    FutureProducer::from_config_and_context(config, Context::new("producer")).map_err(Error::Config)
}

/// A router's membership of the consumer group `settings.group`.
pub struct KafkaConsumer {
    /// Shared with the blocking tasks that commit and probe; librdkafka calls are
    /// thread-safe.
    consumer: Arc<StreamConsumer<Context>>,
    topic: String,
    timeout: Duration,
}

/// What one [`KafkaConsumer::next_batch`] read.
#[derive(Debug, Default)]
pub struct StreamBatch {
    /// In stream order within each partition.
    pub notifications: Vec<Notification>,
    /// Messages that were not notifications: logged and skipped, but their offsets are
    /// committed with the batch so they are not read again.
    pub malformed: usize,
    /// Per partition, the offset after the last message read: what a commit stores.
    offsets: BTreeMap<i32, i64>,
}

impl StreamBatch {
    /// No message at all was read (not even a malformed one), so there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

impl KafkaConsumer {
    /// Joins the group with auto commit off, starting at the earliest offset when the group
    /// has none committed. Checks the brokers answer within `settings.connect_timeout` and
    /// creates the topic when missing, as the producer does, so routers may start first.
    pub async fn connect(settings: &KafkaSettings) -> Result<KafkaConsumer> {
        ensure_topic(settings).await?;
        let mut config = base_config(settings, "router");
        config
            .set("group.id", &settings.group)
            // Offsets move only in `commit`, after the batch is durable downstream. With
            // the offset store off as well, librdkafka never commits on its own, not even
            // on a rebalance, so a batch in hand is never marked done.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: StreamConsumer<Context> =
            StreamConsumer::from_config_and_context(&config, Context::new("router"))
                .map_err(Error::Config)?;
        consumer
            .subscribe(&[settings.topic.as_str()])
            .map_err(|source| Error::Subscribe {
                topic: settings.topic.clone(),
                source,
            })?;
        Ok(KafkaConsumer {
            consumer: Arc::new(consumer),
            topic: settings.topic.clone(),
            timeout: publish_timeout(settings),
        })
    }

    /// Waits up to `wait` for a first message, then takes what is already there, up to
    /// `max`. A message that is not a notification is logged, counted in the batch and
    /// skipped. An empty batch means nothing arrived in time.
    ///
    /// Errors librdkafka recovers from by itself (a broker down, a coordinator moving) are
    /// logged, rate-limited, and waited out within `wait`; only a fatal error is an `Err`.
    /// Cancel-safe: a message is taken from the consumer only when it is returned.
    pub async fn next_batch(&self, max: usize, wait: Duration) -> Result<StreamBatch> {
        let mut batch = StreamBatch::default();
        if max == 0 {
            return Ok(batch);
        }
        let mut stream = self.consumer.stream();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) | Ok(None) => return Ok(batch),
                Ok(Some(Ok(message))) => {
                    batch.take(&message);
                    break;
                }
                Ok(Some(Err(error))) => self.consumer.context().consume_error(error)?,
            }
        }
        while batch.offsets_read() < max {
            match stream.next().now_or_never() {
                Some(Some(Ok(message))) => batch.take(&message),
                Some(Some(Err(error))) => {
                    // What was read is already past the consumer's position: hand it over
                    // even when the consumer just failed for good, so it is not lost.
                    if let Err(error) = self.consumer.context().consume_error(error) {
                        tracing::error!(%error, "the Kafka consumer failed after reading a batch");
                    }
                    break;
                }
                _ => break,
            }
        }
        Ok(batch)
    }

    /// Commits the batch's offsets: the router calls this only after the batch's deliveries
    /// are stored and enqueued. Partitions this member no longer owns (a rebalance moved
    /// them while the batch was in hand) are left alone: their new owner re-reads them from
    /// the last commit, and committing ours could move its newer offset back.
    pub async fn commit(&self, batch: &StreamBatch) -> Result<()> {
        if batch.offsets.is_empty() {
            return Ok(());
        }
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let offsets = batch.offsets.clone();
        let task = tokio::task::spawn_blocking(move || -> Result<()> {
            let assigned = consumer
                .assignment()
                .map_err(|error| Error::Commit(error.to_string()))?;
            let mut list = TopicPartitionList::new();
            for (&partition, &next) in &offsets {
                if assigned.find_partition(&topic, partition).is_none() {
                    tracing::info!(
                        partition,
                        next,
                        "not committing a partition this router no longer owns"
                    );
                    continue;
                }
                list.add_partition_offset(&topic, partition, Offset::Offset(next))
                    .map_err(|error| Error::Commit(error.to_string()))?;
            }
            if list.count() == 0 {
                return Ok(());
            }
            consumer
                .commit(&list, CommitMode::Sync)
                .map_err(|error| Error::Commit(error.to_string()))
        });
        // A synchronous commit waits for the group coordinator, which may be away; the
        // blocking task finishes on its own, but the router gets its answer in time.
        match tokio::time::timeout(self.timeout, task).await {
            Ok(joined) => joined.expect("the commit does not panic"),
            Err(_) => Err(Error::Commit(format!(
                "no answer from the group coordinator within {}",
                humantime::format_duration(self.timeout)
            ))),
        }
    }

    /// Leaves the group at once, so its partitions move to the other routers now rather
    /// than after the session times out. Dropping the consumer does the same, but blocks
    /// the calling thread while it does.
    pub async fn close(self) {
        let consumer = self.consumer;
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    }
}

impl StreamBatch {
    fn take(&mut self, message: &BorrowedMessage<'_>) {
        self.offsets
            .insert(message.partition(), message.offset() + 1);
        let decoded = match message.payload() {
            Some(payload) => decode(payload).map_err(|error| error.to_string()),
            None => Err("the message has no value".to_string()),
        };
        match decoded {
            Ok(Decoded::One(notification)) => self.notifications.push(notification),
            Ok(Decoded::Pack(pack)) => self.notifications.extend(pack),
            Err(reason) => {
                self.malformed += 1;
                tracing::warn!(
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    %reason,
                    "skipping a stream message that is not a notification"
                );
            }
        }
    }

    fn offsets_read(&self) -> usize {
        self.notifications.len() + self.malformed
    }
}

/// What one record carries.
enum Decoded {
    One(Notification),
    Pack(Vec<Notification>),
}

/// A record's value: one notification (an object) or a pack (an array).
fn decode(value: &[u8]) -> serde_json::Result<Decoded> {
    if value.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
        let pack: Vec<Notification> = serde_json::from_slice(value)?;
        if pack.is_empty() {
            return Err(serde::de::Error::custom("an empty pack"));
        }
        Ok(Decoded::Pack(pack))
    } else {
        serde_json::from_slice(value).map(Decoded::One)
    }
}

/// Checks the brokers answer, then creates the topic unless it exists.
async fn ensure_topic(settings: &KafkaSettings) -> Result<()> {
    let timeout = settings.connect_timeout;
    let unreachable = |source| Error::Unreachable {
        brokers: settings.brokers.clone(),
        timeout,
        source,
    };
    let admin: AdminClient<Context> = base_config(settings, "admin")
        .create_with_context(Context::new("admin"))
        .map_err(Error::Config)?;
    let admin = Arc::new(admin);
    let probe = admin.clone();
    // All topics, not just ours: asking for one by name is what makes some brokers
    // auto-create it with their default partition count.
    let metadata = tokio::task::spawn_blocking(move || probe.inner().fetch_metadata(None, timeout))
        .await
        .expect("the metadata probe does not panic")
        .map_err(unreachable)?;
    if metadata
        .topics()
        .iter()
        .any(|topic| topic.name() == settings.topic && topic.error().is_none())
    {
        return Ok(());
    }
    // -1: the brokers' own default replication factor, so a cluster's durability setting
    // applies without a setting of ours.
    let topic = NewTopic::new(
        &settings.topic,
        settings.partitions,
        TopicReplication::Fixed(-1),
    );
    let options = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let create_failed = |reason: String| Error::CreateTopic {
        topic: settings.topic.clone(),
        partitions: settings.partitions,
        reason,
    };
    let results = admin
        .create_topics([&topic], &options)
        .await
        .map_err(|error| create_failed(error.to_string()))?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(
                topic = %settings.topic,
                partitions = settings.partitions,
                "created the Kafka topic"
            ),
            // Another process created it between our look and our request.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(create_failed(code.to_string())),
        }
    }
    Ok(())
}

/// Last time each kind of complaint was logged, and how many were held back since, for
/// the whole process: a producer replaced after a failure must not start with a clean
/// slate, or an outage logs once per replacement. Keys are a role with a librdkafka
/// facility or error code: a small, fixed set.
static RECENT: std::sync::LazyLock<Mutex<HashMap<String, (Instant, u64)>>> =
    std::sync::LazyLock::new(Mutex::default);

/// Routes librdkafka's logs and errors into `tracing`, holding back repeats.
struct Context {
    role: &'static str,
}

impl Context {
    fn new(role: &'static str) -> Context {
        Context { role }
    }

    /// `Some(held back since the last time)` when `key` may be logged now.
    fn admit(&self, key: &str) -> Option<u64> {
        let key = format!("{}:{key}", self.role);
        let key = key.as_str();
        let mut recent = RECENT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        match recent.get_mut(key) {
            Some((at, held)) if now.duration_since(*at) < REPEAT_LOG_EVERY => {
                *held += 1;
                None
            }
            Some(entry) => {
                let held = entry.1;
                *entry = (now, 0);
                Some(held)
            }
            None => {
                recent.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    }

    /// A consumer error: `Err` only when the consumer is finished.
    fn consume_error(&self, error: KafkaError) -> Result<()> {
        if let KafkaError::MessageConsumptionFatal(_) = error {
            return Err(Error::Consume(error));
        }
        let key = match error.rdkafka_error_code() {
            Some(code) => format!("{code:?}"),
            None => error.to_string(),
        };
        if let Some(held_back) = self.admit(&key) {
            tracing::warn!(
                target: "librdkafka",
                role = self.role,
                held_back,
                %error,
                "reading the Kafka stream: retrying"
            );
        }
        Ok(())
    }
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::error!(target: "librdkafka", role = self.role, facility, "{message}")
            }
            // librdkafka's "errors" are mostly connection failures it retries by itself:
            // worth a warning, not one every reconnect.
            RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning => {
                if let Some(held_back) = self.admit(facility) {
                    tracing::warn!(target: "librdkafka", role = self.role, facility, held_back, "{message}")
                }
            }
            RDKafkaLogLevel::Notice => {
                tracing::info!(target: "librdkafka", role = self.role, facility, "{message}")
            }
            RDKafkaLogLevel::Info => {
                tracing::debug!(target: "librdkafka", role = self.role, facility, "{message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::trace!(target: "librdkafka", role = self.role, facility, "{message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let fatal = matches!(
            error,
            KafkaError::MessageConsumptionFatal(_) | KafkaError::Global(RDKafkaErrorCode::Fatal)
        );
        if fatal {
            tracing::error!(target: "librdkafka", role = self.role, %error, reason);
            return;
        }
        let key = match error.rdkafka_error_code() {
            Some(code) => format!("{code:?}"),
            None => error.to_string(),
        };
        if let Some(held_back) = self.admit(&key) {
            tracing::warn!(target: "librdkafka", role = self.role, held_back, %error, reason);
        }
    }
}

impl ConsumerContext for Context {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &TopicPartitionList| {
            list.elements()
                .iter()
                .map(|element| element.partition().to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(partitions = %partitions(list), "Kafka partitions assigned to this router")
            }
            Rebalance::Revoke(list) => {
                tracing::info!(partitions = %partitions(list), "Kafka partitions taken from this router")
            }
            Rebalance::Error(error) => tracing::warn!(%error, "Kafka rebalance failed"),
        }
    }
}
