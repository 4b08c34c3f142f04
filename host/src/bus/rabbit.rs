//! The delivery queues on RabbitMQ: one durable queue per channel, with delay queues for
//! retries and a dead-letter queue per channel.
//!
//! Names, for a prefix `p` and a channel `c`:
//!
//! - `p.c`: the channel's queue. Workers consume it with a bounded prefetch.
//! - `p.c.retry.<ms>`: one delay queue per distinct delay. Its messages expire after `<ms>`
//!   and the broker dead-letters them back to `p.c`; the queue itself expires when it has
//!   not been declared for a while, so old delays do not pile up.
//! - `p.c.dead`: deliveries whose retries ran out, poison messages, and bodies that are not
//!   deliveries at all.
//!
//! Every publish is persistent, mandatory (a publish to a queue that vanished comes back
//! instead of being dropped) and confirmed by the broker before a caller hears `Ok`; a
//! delivery is acked on its queue only after whatever replaces it (a retry, a dead letter, a
//! given-back copy) is confirmed. A failure anywhere in between leaves the message unacked,
//! and the broker hands it out again: at least once.
//!
//! Parcels: a message carries one delivery (a JSON object) or, when the router enqueues many
//! for one channel at once, a parcel of up to `settings.parcel` of them (a JSON array). The
//! broker's work per message is most of what a delivery costs it, so parcels divide that
//! cost. A worker settles each delivery of a parcel on its own: a retry, a dead letter or a
//! give-back is published as a message of its own, and the parcel is acked once every one of
//! its deliveries is settled. A parcel handed out a second time (its consumer died holding
//! it) is split into single deliveries before anyone sees it, so a poison delivery reaches
//! its delivery limit alone and never takes the rest of its parcel with it.
//!
//! Poison messages: quorum queues count hand-outs themselves (`x-delivery-limit`) and
//! dead-letter at the limit. Classic queues cannot, so a header carries the count: a
//! give-back republishes with the count raised, and a message the broker redelivers (its
//! consumer died holding it) is republished with the count raised before anyone sees it.
//!
//! Publishing and consuming use separate connections, as RabbitMQ advises: when the broker
//! throttles publishers it blocks their whole connection, and that must not stall the acks
//! of consumers.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::try_join_all;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{QueueType, QueuedDelivery, RabbitSettings};

/// Publishing channels per process: enough that concurrent callers (the router, many
/// workers settling deliveries) rarely queue behind one another in one channel's process
/// on the broker, few enough to cost nothing.
const PUBLISH_CHANNELS: usize = 4;
/// Consumers reconnect after this long at first, doubling up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Classic queues: how many times a message was handed out without being settled.
const HANDOUTS_HEADER: &str = "x-switchyard-handouts";
/// Quorum queues: the broker's own count of returns.
const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";
/// Why a message went to the dead-letter queue, for whoever reads it there.
const DEAD_REASON_HEADER: &str = "x-switchyard-dead-reason";
/// The longest delay a queue's message TTL can hold (2^32 - 1 ms, about 49 days).
const MAX_DELAY_MS: u64 = u32::MAX as u64;
/// How much longer than a delay its queue outlives its last declaration; see `DelayQueue`.
const DELAY_QUEUE_SLACK_MS: u64 = 60_000;

/// The broker's errors are boxed: they are large, and this travels in every `Result`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{url}` is not a RabbitMQ URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("RabbitMQ at {url} is unreachable: {source}")]
    Unreachable {
        url: String,
        source: Box<lapin::Error>,
    },
    #[error("RabbitMQ at {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("RabbitMQ at {url} refused to declare queue `{queue}`: {source}")]
    Declare {
        url: String,
        queue: String,
        source: Box<lapin::Error>,
    },
    #[error("RabbitMQ at {url} failed while {doing}: {source}")]
    Broker {
        url: String,
        doing: &'static str,
        source: Box<lapin::Error>,
    },
    #[error("RabbitMQ at {url} did not take {count} message(s) for queue `{queue}` ({why})")]
    NotConfirmed {
        url: String,
        queue: String,
        count: usize,
        why: &'static str,
    },
    #[error(
        "the channel to RabbitMQ at {url} closed before delivery {delivery_id} was settled; \
         the broker will hand it out again"
    )]
    Unsettled { url: String, delivery_id: String },
    #[error("RabbitMQ at {url} cancelled the consumer of queue `{queue}` (was it deleted?)")]
    Cancelled { url: String, queue: String },
    #[error("could not encode delivery {delivery_id}: {source}")]
    Encode {
        delivery_id: String,
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The RabbitMQ delivery queues. Cheap to share: hold it in an `Arc`.
pub struct RabbitQueues {
    settings: RabbitSettings,
    /// The URL with its password masked, for messages and logs.
    url: String,
    publisher: tokio::sync::Mutex<Option<Publisher>>,
    /// The consumers' connection, shared by every consumer of this process.
    consuming: tokio::sync::Mutex<Option<Arc<Connection>>>,
    /// Queues declared so far, and when: delay queues must be declared again before they
    /// expire.
    declared: Mutex<HashMap<String, Instant>>,
    /// Whether the broker was reachable last we heard, so that an outage is logged once
    /// when it starts and once when it ends.
    up: AtomicBool,
    next_channel: AtomicUsize,
}

/// The publishing connection and its confirm-mode channels.
struct Publisher {
    connection: Connection,
    channels: Vec<Channel>,
    /// Declarations go on their own channel: a refused declaration closes its channel, and
    /// that must not fail publishes in flight.
    admin: Channel,
}

impl fmt::Debug for RabbitQueues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitQueues")
            .field("url", &self.url)
            .field("prefix", &self.settings.prefix)
            .finish_non_exhaustive()
    }
}

impl RabbitQueues {
    /// Connects and checks the broker within `settings.connect_timeout`; a clear error
    /// naming the URL (password masked) when it cannot.
    pub async fn connect(settings: &RabbitSettings) -> Result<Arc<RabbitQueues>> {
        let url = super::redacted(&settings.url);
        if !(settings.url.starts_with("amqp://") || settings.url.starts_with("amqps://")) {
            return Err(Error::InvalidUrl {
                url,
                reason: "it must start with amqp:// or amqps://".into(),
            });
        }
        if let Err(reason) = settings.url.parse::<lapin::uri::AMQPUri>() {
            return Err(Error::InvalidUrl { url, reason });
        }
        let queues = Arc::new(RabbitQueues {
            settings: settings.clone(),
            url,
            publisher: tokio::sync::Mutex::new(None),
            consuming: tokio::sync::Mutex::new(None),
            declared: Mutex::new(HashMap::new()),
            up: AtomicBool::new(true),
            next_channel: AtomicUsize::new(0),
        });
        queues.ping().await?;
        Ok(queues)
    }

    /// The settings these queues were made with.
    pub fn settings(&self) -> &RabbitSettings {
        &self.settings
    }

    /// The name of `channel`'s queue.
    pub fn queue_name(&self, channel: &str) -> String {
        format!("{}.{channel}", self.settings.prefix)
    }

    /// The name of `channel`'s dead-letter queue.
    pub fn dead_queue_name(&self, channel: &str) -> String {
        format!("{}.{channel}.dead", self.settings.prefix)
    }

    /// Puts deliveries on their channels' queues (declaring queues on first use),
    /// persistent, in parcels of up to `settings.parcel` per message, and returns `Ok` only
    /// when the broker has confirmed every message.
    pub async fn enqueue(&self, deliveries: &[QueuedDelivery]) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut by_channel: Vec<(&str, Vec<&QueuedDelivery>)> = Vec::new();
        for delivery in deliveries {
            match by_channel
                .iter_mut()
                .find(|(channel, _)| *channel == delivery.channel)
            {
                Some((_, list)) => list.push(delivery),
                None => by_channel.push((&delivery.channel, vec![delivery])),
            }
        }
        let parcel = self.settings.parcel.max(1) as usize;
        let mut messages = Vec::new();
        let mut wanted = Vec::with_capacity(by_channel.len() * 2);
        for (channel, list) in &by_channel {
            let queue = self.queue_name(channel);
            for chunk in list.chunks(parcel) {
                messages.push((queue.clone(), encode_parcel(chunk)?));
            }
            wanted.push(self.work_queue(channel));
            wanted.push(self.dead_queue(channel));
        }
        let channel = self.publishing_channel(&wanted).await?;
        let properties = delivery_properties(None);
        let publishes = messages.iter().map(|(queue, body)| {
            channel.basic_publish(
                ShortString::from(""),
                queue.as_str().into(),
                mandatory(),
                body,
                properties.clone(),
            )
        });
        // Every publish is sent before any confirm is awaited: the broker confirms them as
        // a stream, so a batch costs about one round trip, not one per message.
        let confirms = try_join_all(publishes)
            .await
            .map_err(|e| self.publish_failed(e))?;
        let confirmations = try_join_all(confirms)
            .await
            .map_err(|e| self.publish_failed(e))?;
        for ((queue, _), confirmation) in messages.iter().zip(confirmations) {
            self.check_confirmation(queue, confirmation)?;
        }
        Ok(())
    }

    /// Consumes `channel`'s queue with at most `settings.prefetch` unacked messages, for
    /// as long as `stop` is not cancelled, reconnecting with back-off when the broker goes
    /// away. The receiver ends once `stop` is cancelled; deliveries still held by the
    /// caller can be settled after that.
    pub fn consume(
        self: &Arc<Self>,
        channel: &str,
        stop: CancellationToken,
    ) -> mpsc::Receiver<Leased> {
        // The broker bounds what is unacked; the local buffer never needs more room than that.
        let (sender, receiver) = mpsc::channel(usize::from(self.settings.prefetch.max(1)));
        let consumer = Consumer {
            queues: self.clone(),
            channel: channel.to_string(),
            sender,
            stop,
        };
        tokio::spawn(consumer.run());
        receiver
    }

    /// Whether the broker answers, for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        let admin = {
            let mut publisher = self.publisher().await?;
            publisher.as_mut().expect("connected above").admin.clone()
        };
        // A passive declaration of an exchange every broker has: a round trip that changes
        // nothing.
        let check = admin.exchange_declare(
            "amq.direct".into(),
            lapin::ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        );
        match tokio::time::timeout(self.settings.connect_timeout, check).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(self.lost(source, "checking the broker")),
            Err(_) => Err(Error::Timeout {
                url: self.url.clone(),
                timeout: self.settings.connect_timeout,
            }),
        }
    }

    /// Locks the publisher, connecting first when there is no live connection.
    async fn publisher(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Publisher>>> {
        let mut guard = self.publisher.lock().await;
        let alive = guard
            .as_ref()
            .is_some_and(|p| p.connection.status().connected());
        if !alive {
            *guard = None;
            let connection = self.open_connection("publish").await?;
            let publisher = self.open_publisher(connection).await?;
            *guard = Some(publisher);
            self.back_up();
        }
        Ok(guard)
    }

    async fn open_publisher(&self, connection: Connection) -> Result<Publisher> {
        let mut channels = Vec::with_capacity(PUBLISH_CHANNELS);
        for _ in 0..PUBLISH_CHANNELS {
            channels.push(self.confirm_channel(&connection).await?);
        }
        let admin = connection
            .create_channel()
            .await
            .map_err(|e| self.lost(e, "opening a channel"))?;
        Ok(Publisher {
            connection,
            channels,
            admin,
        })
    }

    async fn confirm_channel(&self, connection: &Connection) -> Result<Channel> {
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| self.lost(e, "opening a channel"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.lost(e, "turning on publisher confirms"))?;
        Ok(channel)
    }

    /// A confirm-mode channel to publish on, once the `wanted` queues are declared.
    async fn publishing_channel(&self, wanted: &[QueueSpec]) -> Result<Channel> {
        let mut guard = self.publisher().await?;
        let publisher = guard.as_mut().expect("connected above");
        for spec in wanted {
            if !self.needs_declaring(spec) {
                continue;
            }
            if !publisher.admin.status().connected() {
                publisher.admin = publisher
                    .connection
                    .create_channel()
                    .await
                    .map_err(|e| self.lost(e, "opening a channel"))?;
            }
            self.declare(&publisher.admin, spec).await?;
        }
        let index = self.next_channel.fetch_add(1, Ordering::Relaxed) % PUBLISH_CHANNELS;
        if !publisher.channels[index].status().connected() {
            publisher.channels[index] = self.confirm_channel(&publisher.connection).await?;
        }
        Ok(publisher.channels[index].clone())
    }

    fn needs_declaring(&self, spec: &QueueSpec) -> bool {
        let declared = self.declared.lock().expect("declared lock");
        match declared.get(&spec.name) {
            None => true,
            Some(at) => spec
                .redeclare_after
                .is_some_and(|after| at.elapsed() >= after),
        }
    }

    async fn declare(&self, channel: &Channel, spec: &QueueSpec) -> Result<()> {
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(spec.name.as_str().into(), options, spec.arguments.clone())
            .await
            .map_err(|source| {
                if is_connection_error(&source) {
                    self.lost(source, "declaring a queue")
                } else {
                    Error::Declare {
                        url: self.url.clone(),
                        queue: spec.name.clone(),
                        source: Box::new(source),
                    }
                }
            })?;
        self.declared
            .lock()
            .expect("declared lock")
            .insert(spec.name.clone(), Instant::now());
        Ok(())
    }

    /// Publishes one message and waits for its confirm.
    async fn publish_one(
        &self,
        wanted: &[QueueSpec],
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<()> {
        let channel = self.publishing_channel(wanted).await?;
        let confirmation = channel
            .basic_publish("".into(), queue.into(), mandatory(), body, properties)
            .await
            .map_err(|e| self.publish_failed(e))?
            .await
            .map_err(|e| self.publish_failed(e))?;
        self.check_confirmation(queue, confirmation)
    }

    fn check_confirmation(&self, queue: &str, confirmation: Confirmation) -> Result<()> {
        let why = match confirmation {
            Confirmation::Ack(None) => return Ok(()),
            Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => {
                // Returned as unroutable: the queue is gone (deleted by hand?). Declare it
                // again next time.
                self.declared.lock().expect("declared lock").remove(queue);
                "the queue does not exist"
            }
            Confirmation::Nack(None) => "the broker refused it",
            Confirmation::NotRequested => "no publisher confirm",
        };
        Err(Error::NotConfirmed {
            url: self.url.clone(),
            queue: queue.to_string(),
            count: 1,
            why,
        })
    }

    fn publish_failed(&self, source: lapin::Error) -> Error {
        self.lost(source, "publishing")
    }

    /// Turns a lapin error into ours, noting an outage when the connection is gone.
    fn lost(&self, source: lapin::Error, doing: &'static str) -> Error {
        if is_connection_error(&source) {
            self.went_away(&source);
            Error::Unreachable {
                url: self.url.clone(),
                source: Box::new(source),
            }
        } else {
            Error::Broker {
                url: self.url.clone(),
                doing,
                source: Box::new(source),
            }
        }
    }

    fn went_away(&self, error: &dyn fmt::Display) {
        if self.up.swap(false, Ordering::SeqCst) {
            tracing::warn!(url = %self.url, %error, "RabbitMQ went away; publishes fail and consumers reconnect with back-off until it is back");
        }
    }

    fn back_up(&self) {
        if !self.up.swap(true, Ordering::SeqCst) {
            tracing::info!(url = %self.url, "RabbitMQ is back");
        }
    }

    async fn open_connection(&self, role: &str) -> Result<Connection> {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("switchyard {role} ({})", std::process::id()).into());
        let timeout = self.settings.connect_timeout;
        match tokio::time::timeout(timeout, Connection::connect(&self.settings.url, properties))
            .await
        {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(source)) => {
                self.went_away(&source);
                Err(Error::Unreachable {
                    url: self.url.clone(),
                    source: Box::new(source),
                })
            }
            Err(_) => {
                self.went_away(&format!("no answer within {timeout:?}"));
                Err(Error::Timeout {
                    url: self.url.clone(),
                    timeout,
                })
            }
        }
    }

    /// The consumers' connection, opened again when it is gone.
    async fn consuming_connection(&self) -> Result<Arc<Connection>> {
        let mut guard = self.consuming.lock().await;
        if let Some(connection) = guard.as_ref()
            && connection.status().connected()
        {
            return Ok(connection.clone());
        }
        *guard = None;
        let connection = Arc::new(self.open_connection("consume").await?);
        *guard = Some(connection.clone());
        self.back_up();
        Ok(connection)
    }

    fn type_arguments(&self) -> FieldTable {
        let mut arguments = FieldTable::default();
        let kind = match self.settings.queue_type {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        };
        arguments.insert("x-queue-type".into(), long_string(kind));
        arguments
    }

    /// Quorum queues dead-letter at least once, which needs the overflow mode that refuses
    /// publishes rather than dropping messages (no length limit is set, so it never fires).
    fn dead_letter_arguments(&self, arguments: &mut FieldTable, to: &str) {
        arguments.insert("x-dead-letter-exchange".into(), long_string(""));
        arguments.insert("x-dead-letter-routing-key".into(), long_string(to));
        if self.settings.queue_type == QueueType::Quorum {
            arguments.insert(
                "x-dead-letter-strategy".into(),
                long_string("at-least-once"),
            );
            arguments.insert("x-overflow".into(), long_string("reject-publish"));
        }
    }

    fn work_queue(&self, channel: &str) -> QueueSpec {
        let mut arguments = self.type_arguments();
        if self.settings.queue_type == QueueType::Quorum {
            // The broker dead-letters a message once it has been returned more than
            // `x-delivery-limit` times, that is after limit + 1 hand-outs; ours counts
            // hand-outs.
            let limit = self.delivery_limit() - 1;
            arguments.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(limit.into()),
            );
            self.dead_letter_arguments(&mut arguments, &self.dead_queue_name(channel));
        }
        QueueSpec {
            name: self.queue_name(channel),
            arguments,
            redeclare_after: None,
        }
    }

    fn dead_queue(&self, channel: &str) -> QueueSpec {
        QueueSpec {
            name: self.dead_queue_name(channel),
            arguments: self.type_arguments(),
            redeclare_after: None,
        }
    }

    /// The delay queue for `delay`. It expires when not declared for twice its delay plus a
    /// minute; publishing does not count as use, so it is declared again whenever its last
    /// declaration is more than delay + 30 s old. A message published then leaves it by
    /// delay + (delay + 30 s) after that declaration, 30 s before the queue could expire.
    fn delay_queue(&self, channel: &str, delay: Duration) -> QueueSpec {
        let ttl = (delay.as_millis() as u64).min(MAX_DELAY_MS);
        let expires = (2 * ttl + DELAY_QUEUE_SLACK_MS).min(MAX_DELAY_MS);
        let mut arguments = self.type_arguments();
        arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl as i64));
        arguments.insert("x-expires".into(), AMQPValue::LongLongInt(expires as i64));
        self.dead_letter_arguments(&mut arguments, &self.queue_name(channel));
        QueueSpec {
            name: format!("{}.{channel}.retry.{ttl}", self.settings.prefix),
            arguments,
            redeclare_after: Some(Duration::from_millis(
                expires
                    .saturating_sub(ttl)
                    .saturating_sub(DELAY_QUEUE_SLACK_MS / 2),
            )),
        }
    }

    fn delivery_limit(&self) -> u32 {
        self.settings.delivery_limit.max(1)
    }
}

/// A queue and the arguments it is declared with.
struct QueueSpec {
    name: String,
    arguments: FieldTable,
    /// Declared again after this long (delay queues, which expire); `None`: once is enough.
    redeclare_after: Option<Duration>,
}

/// One consumer of one channel's queue, across reconnections.
struct Consumer {
    queues: Arc<RabbitQueues>,
    channel: String,
    sender: mpsc::Sender<Leased>,
    stop: CancellationToken,
}

/// Why a subscription ended.
enum Ended {
    /// `stop` fired or nobody takes deliveries any more.
    Done,
    Lost(Error),
}

impl Consumer {
    async fn run(self) {
        let queue = self.queues.queue_name(&self.channel);
        let mut backoff = FIRST_BACKOFF;
        // Channel-level trouble (the connection is fine) is logged per consumer, once.
        let mut failing = false;
        loop {
            if self.stop.is_cancelled() || self.sender.is_closed() {
                return;
            }
            let ended = match self.subscribe(&queue).await {
                Ok((channel, stream)) => {
                    backoff = FIRST_BACKOFF;
                    if failing {
                        tracing::info!(%queue, "consuming again");
                        failing = false;
                    }
                    self.pump(channel, stream).await
                }
                Err(error) => Ended::Lost(error),
            };
            match ended {
                Ended::Done => return,
                Ended::Lost(error) => {
                    if self.queues.up.load(Ordering::SeqCst) && !failing {
                        tracing::warn!(%queue, %error, "consumer stopped; it starts again with back-off");
                        failing = true;
                    }
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn subscribe(&self, queue: &str) -> Result<(Arc<Channel>, lapin::Consumer)> {
        let queues = &self.queues;
        let connection = queues.consuming_connection().await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| queues.lost(e, "opening a channel"))?;
        channel
            .basic_qos(queues.settings.prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(|e| queues.lost(e, "setting the prefetch"))?;
        for spec in [
            queues.work_queue(&self.channel),
            queues.dead_queue(&self.channel),
        ] {
            if queues.needs_declaring(&spec) {
                queues.declare(&channel, &spec).await?;
            }
        }
        let stream = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| queues.lost(e, "starting a consumer"))?;
        Ok((Arc::new(channel), stream))
    }

    /// Hands deliveries to the receiver until the subscription ends.
    async fn pump(&self, channel: Arc<Channel>, mut stream: lapin::Consumer) -> Ended {
        loop {
            let next = tokio::select! {
                biased;
                _ = self.stop.cancelled() => return self.cancel(&channel, stream).await,
                next = stream.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => return Ended::Lost(self.queues.lost(error, "consuming")),
                None => {
                    return Ended::Lost(Error::Cancelled {
                        url: self.queues.url.clone(),
                        queue: self.queues.queue_name(&self.channel),
                    });
                }
            };
            let admitted = match self.admit(&channel, message).await {
                Ok(admitted) => admitted,
                Err(error) => return Ended::Lost(error),
            };
            for leased in admitted {
                tokio::select! {
                    biased;
                    _ = self.stop.cancelled() => {
                        // Unsent leases are dropped here, which gives them back.
                        return self.cancel(&channel, stream).await;
                    }
                    sent = self.sender.send(leased) => if sent.is_err() {
                        return self.cancel(&channel, stream).await;
                    },
                }
            }
        }
    }

    /// Stops the subscription; what the broker had already sent goes back to the queue.
    async fn cancel(&self, channel: &Channel, mut stream: lapin::Consumer) -> Ended {
        let _ = channel
            .basic_cancel(stream.tag(), BasicCancelOptions::default())
            .await;
        // After the cancel-ok the stream yields what was prefetched and then ends.
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(1), stream.next()).await
        {
            let _ = message
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await;
        }
        Ended::Done
    }

    /// Decides what becomes of a message the broker handed us: the deliveries a worker is
    /// to attempt, or none when it was settled here (dead-lettered, republished to count a
    /// redelivery, or a returned parcel split up). An error means the message could not be
    /// settled; the subscription is dropped so that the broker hands out everything on it
    /// again.
    async fn admit(
        &self,
        channel: &Arc<Channel>,
        message: lapin::message::Delivery,
    ) -> Result<Vec<Leased>> {
        let queues = &self.queues;
        let queue = queues.queue_name(&self.channel);
        let mut deliveries = match decode(&message.data) {
            Ok(deliveries) => deliveries,
            Err(error) => {
                tracing::error!(%queue, %error, bytes = message.data.len(), "a message on the queue is not a delivery; it goes to the dead-letter queue");
                let reason = format!("not a delivery: {error}");
                self.settle_elsewhere(&message, &queues.dead_queue(&self.channel), &reason, None)
                    .await?;
                return Ok(Vec::new());
            }
        };
        let handouts = match queues.settings.queue_type {
            QueueType::Quorum => header_count(&message.properties, DELIVERY_COUNT_HEADER),
            QueueType::Classic => {
                header_count(&message.properties, HANDOUTS_HEADER) + u32::from(message.redelivered)
            }
        };
        if deliveries.len() > 1 {
            if handouts > 0 {
                // Its last consumer died holding it: one of its deliveries may be what
                // killed it. Each goes back on its own, counted, so the limit finds it.
                self.split(&message, &deliveries, handouts).await?;
                return Ok(Vec::new());
            }
            let parcel = Arc::new(Parcel {
                acker: Mutex::new(Some(message.acker)),
                open: AtomicUsize::new(deliveries.len()),
                abandoned: AtomicBool::new(false),
            });
            return Ok(deliveries
                .into_iter()
                .map(|delivery| Leased {
                    delivery,
                    handouts: 0,
                    queues: queues.clone(),
                    hold: Some(Hold::Part(parcel.clone())),
                    channel: channel.clone(),
                })
                .collect());
        }
        let delivery = deliveries.pop().expect("decode never yields an empty list");
        if queues.settings.queue_type == QueueType::Classic {
            if handouts >= queues.delivery_limit() {
                tracing::warn!(%queue, delivery = %delivery.delivery_id, handouts, "the delivery came back unsettled too often; it goes to the dead-letter queue");
                let reason = format!("handed out {handouts} times without being settled");
                self.settle_elsewhere(&message, &queues.dead_queue(&self.channel), &reason, None)
                    .await?;
                return Ok(Vec::new());
            }
            if message.redelivered {
                // The broker's redelivery flag is all a classic queue says about a consumer
                // that died holding the message; the count must travel with the message, so
                // it goes back to the queue carrying the raised count.
                self.settle_elsewhere(
                    &message,
                    &queues.work_queue(&self.channel),
                    "",
                    Some(handouts),
                )
                .await?;
                return Ok(Vec::new());
            }
        }
        Ok(vec![Leased {
            delivery,
            handouts,
            queues: queues.clone(),
            hold: Some(Hold::Whole(message.acker)),
            channel: channel.clone(),
        }])
    }

    /// Puts each delivery of a returned parcel back on the channel's queue as a message of
    /// its own, carrying the parcel's hand-out count (classic queues; a quorum queue counts
    /// each new message afresh), then acks the parcel.
    async fn split(
        &self,
        message: &lapin::message::Delivery,
        deliveries: &[QueuedDelivery],
        handouts: u32,
    ) -> Result<()> {
        let queues = &self.queues;
        let work = queues.work_queue(&self.channel);
        let wanted = [work, queues.dead_queue(&self.channel)];
        let properties = delivery_properties(Some(handouts));
        for delivery in deliveries {
            queues
                .publish_one(
                    &wanted,
                    &wanted[0].name,
                    &encode(delivery)?,
                    properties.clone(),
                )
                .await?;
        }
        tracing::info!(queue = %wanted[0].name, deliveries = deliveries.len(), handouts, "a parcel came back unsettled; its deliveries go back one by one");
        self.ack_replaced(message, "(a split parcel)").await
    }

    /// Publishes a copy of `message` to `to` (raw body, so even an undecodable one), waits
    /// for the confirm, then acks the original.
    async fn settle_elsewhere(
        &self,
        message: &lapin::message::Delivery,
        to: &QueueSpec,
        reason: &str,
        handouts: Option<u32>,
    ) -> Result<()> {
        let queues = &self.queues;
        let mut headers = message.properties.headers().clone().unwrap_or_default();
        if !reason.is_empty() {
            headers.insert(DEAD_REASON_HEADER.into(), long_string(reason));
        }
        if let Some(handouts) = handouts {
            headers.insert(
                HANDOUTS_HEADER.into(),
                AMQPValue::LongLongInt(handouts.into()),
            );
        }
        let properties = message
            .properties
            .clone()
            .with_headers(headers)
            .with_delivery_mode(2);
        let wanted = [
            queues.work_queue(&self.channel),
            queues.dead_queue(&self.channel),
        ];
        queues
            .publish_one(&wanted, &to.name, &message.data, properties)
            .await?;
        self.ack_replaced(message, "(republished)").await
    }

    /// Acks a message whose content was published again elsewhere; `what` names it in the
    /// error when the ack does not go through.
    async fn ack_replaced(&self, message: &lapin::message::Delivery, what: &str) -> Result<()> {
        match message.acker.ack(BasicAckOptions::default()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Unsettled {
                url: self.queues.url.clone(),
                delivery_id: what.into(),
            }),
            Err(error) => Err(self.queues.lost(error, "acknowledging")),
        }
    }
}

/// A delivery handed to a worker. Settle it with exactly one of [`Leased::ack`],
/// [`Leased::retry_in`], [`Leased::dead`] or [`Leased::give_back`]; one dropped unsettled is
/// given back to the broker (and counts towards the delivery limit).
pub struct Leased {
    pub delivery: QueuedDelivery,
    /// How many times it was handed out before without being settled.
    pub handouts: u32,
    queues: Arc<RabbitQueues>,
    /// `None` once settled.
    hold: Option<Hold>,
    /// Keeps the consumer's channel open until this delivery is settled: closing it would
    /// hand the delivery to someone else mid-attempt. Shared: cloning a `Channel` itself
    /// is a dozen reference counts, too many per message.
    channel: Arc<Channel>,
}

/// What settling a delivery acts on.
enum Hold {
    /// The delivery is the whole message.
    Whole(Acker),
    /// The delivery is one of a parcel's.
    Part(Arc<Parcel>),
}

/// A message carrying several deliveries, acked when the last of them is settled.
struct Parcel {
    acker: Mutex<Option<Acker>>,
    /// Deliveries not yet settled.
    open: AtomicUsize,
    /// Set when a delivery could not be handed back on its own: then the whole parcel goes
    /// back to the queue instead of being acked.
    abandoned: AtomicBool,
}

impl Parcel {
    /// One delivery is settled; the last one acks the parcel (or, if one was abandoned,
    /// returns it to the queue) and says how that went.
    async fn settle_one(&self) -> Option<lapin::Result<bool>> {
        if self.open.fetch_sub(1, Ordering::AcqRel) != 1 {
            return None;
        }
        let acker = self.acker.lock().expect("parcel lock").take()?;
        Some(if self.abandoned.load(Ordering::Acquire) {
            let requeue = BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            };
            acker.nack(requeue).await
        } else {
            acker.ack(BasicAckOptions::default()).await
        })
    }
}

impl fmt::Debug for Leased {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leased")
            .field("delivery", &self.delivery)
            .field("handouts", &self.handouts)
            .finish_non_exhaustive()
    }
}

impl Leased {
    /// The attempt is recorded and the delivery is done.
    pub async fn ack(mut self) -> Result<()> {
        self.settle_ack().await
    }

    /// Publishes `self.delivery` (the caller has updated `attempts`) to a delay queue that
    /// returns it to the channel's queue after `delay`, waits for the confirm, then acks.
    pub async fn retry_in(mut self, delay: Duration) -> Result<()> {
        let queues = self.queues.clone();
        let channel = self.delivery.channel.clone();
        let spec = queues.delay_queue(&channel, delay);
        let body = encode(&self.delivery)?;
        let wanted = [
            queues.work_queue(&channel),
            queues.dead_queue(&channel),
            spec,
        ];
        queues
            .publish_one(&wanted, &wanted[2].name, &body, delivery_properties(None))
            .await?;
        self.settle_ack().await
    }

    /// Publishes to the channel's dead-letter queue `<prefix>.<channel>.dead`, waits for
    /// the confirm, then acks.
    pub async fn dead(mut self) -> Result<()> {
        let queues = self.queues.clone();
        let channel = self.delivery.channel.clone();
        let body = encode(&self.delivery)?;
        let wanted = [queues.work_queue(&channel), queues.dead_queue(&channel)];
        queues
            .publish_one(&wanted, &wanted[1].name, &body, delivery_properties(None))
            .await?;
        self.settle_ack().await
    }

    /// Not attempted (shutting down, the plugin pool was busy): back to the queue now.
    /// It counts towards the delivery limit.
    pub async fn give_back(mut self) -> Result<()> {
        if let (QueueType::Quorum, Some(Hold::Whole(_))) =
            (self.queues.settings.queue_type, &self.hold)
        {
            // The broker counts the return itself.
            let Some(Hold::Whole(acker)) = self.hold.take() else {
                unreachable!("matched above")
            };
            let requeue = BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            };
            return self.settled(acker.nack(requeue).await);
        }
        // A classic queue's count travels in a header; one delivery of a parcel cannot be
        // returned by itself, so it goes back as a message of its own.
        self.republish_alone().await?;
        self.settle_ack().await
    }

    /// Publishes this delivery to its channel's queue as a message of its own, its
    /// hand-out count raised.
    async fn republish_alone(&self) -> Result<()> {
        let queues = &self.queues;
        let channel = &self.delivery.channel;
        let body = encode(&self.delivery)?;
        let wanted = [queues.work_queue(channel), queues.dead_queue(channel)];
        let properties = delivery_properties(Some(self.handouts + 1));
        queues
            .publish_one(&wanted, &wanted[0].name, &body, properties)
            .await
    }

    async fn settle_ack(&mut self) -> Result<()> {
        let result = match self.hold.take().expect("a lease is settled once") {
            Hold::Whole(acker) => acker.ack(BasicAckOptions::default()).await,
            Hold::Part(parcel) => match parcel.settle_one().await {
                Some(result) => result,
                None => return Ok(()),
            },
        };
        self.settled(result)
    }

    fn settled(&self, result: lapin::Result<bool>) -> Result<()> {
        match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Unsettled {
                url: self.queues.url.clone(),
                delivery_id: self.delivery.delivery_id.clone(),
            }),
            Err(error) if is_connection_error(&error) || !self.channel.status().connected() => {
                let _ = self.queues.lost(error, "settling a delivery");
                Err(Error::Unsettled {
                    url: self.queues.url.clone(),
                    delivery_id: self.delivery.delivery_id.clone(),
                })
            }
            Err(error) => Err(self.queues.lost(error, "settling a delivery")),
        }
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        // Unsettled (a worker bailed out, or shutdown dropped the receiver with deliveries
        // in it): return it now rather than hold a prefetch slot until the channel closes.
        let Some(hold) = self.hold.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let channel = self.channel.clone();
        match hold {
            Hold::Whole(acker) => {
                runtime.spawn(async move {
                    let requeue = BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    };
                    let _ = acker.nack(requeue).await;
                    drop(channel);
                });
            }
            Hold::Part(parcel) => {
                let alone = Leased {
                    delivery: self.delivery.clone(),
                    handouts: self.handouts,
                    queues: self.queues.clone(),
                    hold: None,
                    channel,
                };
                runtime.spawn(async move {
                    // Back on its own; failing that, the whole parcel goes back once its
                    // other deliveries are settled.
                    if alone.republish_alone().await.is_err() {
                        parcel.abandoned.store(true, Ordering::Release);
                    }
                    let _ = parcel.settle_one().await;
                });
            }
        }
    }
}

fn encode(delivery: &QueuedDelivery) -> Result<Vec<u8>> {
    serde_json::to_vec(delivery).map_err(|source| Error::Encode {
        delivery_id: delivery.delivery_id.clone(),
        source,
    })
}

/// One delivery as an object, several as a parcel (an array).
fn encode_parcel(deliveries: &[&QueuedDelivery]) -> Result<Vec<u8>> {
    match deliveries {
        [one] => encode(one),
        many => serde_json::to_vec(many).map_err(|source| Error::Encode {
            delivery_id: many[0].delivery_id.clone(),
            source,
        }),
    }
}

/// The deliveries a message carries: one (an object) or a parcel (an array of at least
/// one).
fn decode(body: &[u8]) -> serde_json::Result<Vec<QueuedDelivery>> {
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    if first == Some(&b'[') {
        let deliveries: Vec<QueuedDelivery> = serde_json::from_slice(body)?;
        if deliveries.is_empty() {
            return Err(serde::de::Error::custom("an empty parcel"));
        }
        Ok(deliveries)
    } else {
        Ok(vec![serde_json::from_slice(body)?])
    }
}

fn delivery_properties(handouts: Option<u32>) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        // Persistent: survives a broker restart.
        .with_delivery_mode(2);
    match handouts {
        Some(handouts) => {
            let mut headers = FieldTable::default();
            headers.insert(
                HANDOUTS_HEADER.into(),
                AMQPValue::LongLongInt(handouts.into()),
            );
            properties.with_headers(headers)
        }
        None => properties,
    }
}

fn mandatory() -> BasicPublishOptions {
    BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    }
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

/// A numeric header, 0 when absent or not a number.
fn header_count(properties: &BasicProperties, name: &str) -> u32 {
    let Some(value) = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name))
    else {
        return 0;
    };
    let count: i64 = match value {
        AMQPValue::ShortShortInt(v) => (*v).into(),
        AMQPValue::ShortShortUInt(v) => (*v).into(),
        AMQPValue::ShortInt(v) => (*v).into(),
        AMQPValue::ShortUInt(v) => (*v).into(),
        AMQPValue::LongInt(v) => (*v).into(),
        AMQPValue::LongUInt(v) => (*v).into(),
        AMQPValue::LongLongInt(v) => *v,
        _ => 0,
    };
    u32::try_from(count.max(0)).unwrap_or(u32::MAX)
}

/// Whether the error means the connection (not just a channel) is gone.
fn is_connection_error(error: &lapin::Error) -> bool {
    error.is_io_error()
        || error.is_amqp_hard_error()
        || matches!(
            error.kind(),
            lapin::ErrorKind::InvalidConnectionState(_) | lapin::ErrorKind::MissingHeartbeatError
        )
}
