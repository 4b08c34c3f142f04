//! The router reads the stream in order, matches each notification against the current
//! route table, and turns it into one delivery per target channel on that channel's queue.
//!
//! Nothing moves the router's place on the stream before the batch's deliveries are durable
//! where the workers take them from, so after a crash the router repeats the last batch or
//! none of it; it never skips one.
//!
//! - Embedded stream and queues: the deliveries and the new stream position are committed in
//!   one transaction. A fresh delivery goes straight to its channel's lane. The router reads
//!   no further ahead than the lanes can take ([`Headroom`]): a notification waiting on the
//!   stream costs nothing, while a delivery that misses its lane waits in the store and
//!   costs the poller a lease and a second read. A lane that stays full (a slow or
//!   rate-limited channel) is not waited for: its deliveries wait in the store for the
//!   poller, so one slow channel never holds the router up.
//! - A RabbitMQ queue: the deliveries are stored, then published with confirms, and only
//!   then is the position (store cursor or Kafka offset) committed. A repeated batch makes
//!   the same delivery ids, so the store keeps one row per delivery, and a delivery the
//!   broker got twice carries the same notification id both times.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::bus::kafka::{self, KafkaConsumer};
use crate::bus::rabbit::{self, RabbitQueues};
use crate::bus::{KafkaSettings, QueuedDelivery};
use crate::delivery::{Held, Job, LANE_CAPACITY, Lanes};
use crate::routing::endpoints::{self, Directory, LiveDirectory};
use crate::routing::{LiveRoutes, RouteTable};
use crate::store::{self, NewDelivery, Notification, RoutingCommit, Store};
use crate::tenancy;

/// The router's name on the embedded stream.
pub const CONSUMER: &str = "router";
/// The most notifications routed in one go.
const BATCH: u32 = 2048;
/// The router waits for every lane to have room for this many deliveries before it reads
/// on, so batches stay large enough to be cheap to commit.
const MIN_ROOM: usize = 256;
/// How long the router waits for a full lane before it counts the lane as slow and routes
/// on past it. A lane that drains at thousands a second frees `MIN_ROOM` well within this.
const LANE_GRACE: Duration = Duration::from_millis(50);
/// How often the router looks again while it waits for a lane.
const LANE_RECHECK: Duration = Duration::from_millis(2);
/// The longest the router waits between tries while the store or a broker is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Queue(#[from] rabbit::Error),
    #[error(transparent)]
    Stream(#[from] kafka::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the router puts deliveries.
#[derive(Clone)]
pub enum Outlet {
    /// The store's queue. `lanes` are this process's workers, when it runs that role:
    /// fresh deliveries go straight to them, leased under `owner`.
    Embedded { lanes: Option<Lanes>, owner: String },
    /// A RabbitMQ queue per channel.
    Queues(Arc<RabbitQueues>),
}

/// Runs the router on the embedded stream until `stop` fires, then finishes the batch in
/// hand. `stream` is woken after every accept.
pub async fn run(
    store: Store,
    routes: Arc<LiveRoutes>,
    directory: Arc<LiveDirectory>,
    outlet: Outlet,
    stream: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut trouble = Trouble::default();
    let mut position = loop {
        match store.stream_position(CONSUMER).await {
            Ok(position) => break position,
            Err(error) => {
                let wait = trouble.failed("could not read the router's stream position", &error);
                if sleep_or_stop(wait, &stop).await {
                    return;
                }
            }
        }
    };
    trouble.recovered();
    let mut headroom = Headroom::default();
    while !stop.is_cancelled() {
        let limit = match &outlet {
            Outlet::Embedded {
                lanes: Some(lanes), ..
            } => match headroom.next_read(lanes, &routes.current(), Instant::now()) {
                Some(limit) => limit,
                None => {
                    if sleep_or_stop(LANE_RECHECK, &stop).await {
                        return;
                    }
                    continue;
                }
            },
            _ => BATCH,
        };
        match route_embedded(&store, &routes, &directory, &outlet, position, limit).await {
            Ok(Some(next)) => {
                trouble.recovered();
                position = next;
            }
            Ok(None) => {
                trouble.recovered();
                // Caught up. The timeout covers a wake-up that raced with the read.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = stream.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            Err(error) => {
                let wait = trouble.failed("routing failed; retrying", &error);
                if sleep_or_stop(wait, &stop).await {
                    return;
                }
                // Another router may have routed the batch meanwhile.
                if let Ok(current) = store.stream_position(CONSUMER).await {
                    position = current;
                }
            }
        }
    }
}

/// Routes up to `limit` notifications after `position`; returns the new position, or `None`
/// when there was nothing to read. When another router (another process on the same database)
/// committed first, nothing is handed over and the new position is where that one stopped.
async fn route_embedded(
    store: &Store,
    routes: &LiveRoutes,
    directory: &LiveDirectory,
    outlet: &Outlet,
    position: i64,
    limit: u32,
) -> Result<Option<i64>> {
    let entries = store.stream_read(position, limit).await?;
    let Some(last) = entries.last().map(|entry| entry.seq) else {
        return Ok(None);
    };
    let table = routes.current();
    match outlet {
        Outlet::Embedded { lanes, owner } => {
            let notifications = entries.into_iter().map(|entry| entry.notification);
            let (deliveries, handovers) = plan_embedded(
                &table,
                &directory.read(),
                notifications,
                lanes.as_ref(),
                owner,
            );
            let commit = store
                .commit_routing(CONSUMER, position, last, &deliveries)
                .await?;
            if let RoutingCommit::Superseded { position } = commit {
                // Another router committed this batch first; the lane room reserved for
                // it goes back as `handovers` drops.
                return Ok(Some(position));
            }
            for (room, job) in handovers {
                room.send(job);
            }
        }
        Outlet::Queues(queues) => {
            let notifications: Vec<Notification> = entries
                .into_iter()
                .map(|entry| entry.notification)
                .collect();
            let plan = plan_queued(&table, &directory.read(), &notifications);
            store.insert_routed(&[], &plan.on_broker, true).await?;
            store.insert_routed(&[], &plan.in_store, false).await?;
            queues.enqueue(&plan.queued).await?;
            let commit = store.commit_routing(CONSUMER, position, last, &[]).await?;
            if let RoutingCommit::Superseded { position } = commit {
                return Ok(Some(position));
            }
        }
    }
    Ok(Some(last))
}

/// Runs the router as `consumer`, a member of the Kafka consumer group, until `stop`
/// fires, then leaves the group so the other routers take its partitions over at once.
/// `settings` let it join again if the client gives up.
pub async fn run_kafka(
    store: Store,
    routes: Arc<LiveRoutes>,
    directory: Arc<LiveDirectory>,
    outlet: Outlet,
    consumer: KafkaConsumer,
    settings: KafkaSettings,
    stop: CancellationToken,
) {
    let mut trouble = Trouble::default();
    let mut consumer = Some(consumer);
    while !stop.is_cancelled() {
        let Some(member) = &consumer else {
            match KafkaConsumer::connect(&settings).await {
                Ok(member) => consumer = Some(member),
                Err(error) => {
                    let wait = trouble.failed("could not join the routers' Kafka group", &error);
                    if sleep_or_stop(wait, &stop).await {
                        break;
                    }
                }
            }
            continue;
        };
        let batch = tokio::select! {
            _ = stop.cancelled() => break,
            batch = member.next_batch(BATCH as usize, Duration::from_millis(200)) => batch,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                let wait = trouble.failed("could not read the Kafka stream; retrying", &error);
                if let kafka::Error::Consume(_) = error {
                    // The client has given up for good: join the group afresh.
                    if let Some(member) = consumer.take() {
                        member.close().await;
                    }
                }
                if sleep_or_stop(wait, &stop).await {
                    break;
                }
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        // The batch stays in hand until its deliveries are durable: its offsets are
        // committed only then. Stopping meanwhile leaves it to the next router.
        loop {
            match route_stream_batch(&store, &routes, &directory, &outlet, &batch.notifications)
                .await
            {
                Ok(()) => break,
                Err(error) => {
                    let wait = trouble.failed("routing failed; retrying the batch", &error);
                    if sleep_or_stop(wait, &stop).await {
                        if let Some(member) = consumer.take() {
                            member.close().await;
                        }
                        return;
                    }
                }
            }
        }
        match member.commit(&batch).await {
            Ok(()) => trouble.recovered(),
            // Not fatal: the batch is routed; if this router dies before a later commit
            // succeeds, the next one repeats it with the same delivery ids.
            Err(error) => {
                trouble.failed("could not commit the router's Kafka offsets", &error);
            }
        }
    }
    if let Some(member) = consumer {
        member.close().await;
    }
}

/// Stores a batch read from Kafka with its deliveries, and puts them on their queues.
async fn route_stream_batch(
    store: &Store,
    routes: &LiveRoutes,
    directory: &LiveDirectory,
    outlet: &Outlet,
    notifications: &[Notification],
) -> Result<()> {
    let table = routes.current();
    let plan = plan_queued(&table, &directory.read(), notifications);
    match outlet {
        Outlet::Embedded { .. } => {
            // The poller hands them to the lanes.
            let mut deliveries = plan.on_broker;
            deliveries.extend(plan.in_store);
            store
                .insert_routed(notifications, &deliveries, false)
                .await?;
        }
        Outlet::Queues(queues) => {
            store
                .insert_routed(notifications, &plan.on_broker, true)
                .await?;
            // Repeated after a crash, this makes the same rows again: their ids follow
            // from the notification and the endpoint.
            store.insert_routed(&[], &plan.in_store, false).await?;
            queues.enqueue(&plan.queued).await?;
        }
    }
    let unrouted = plan.unrouted;
    if unrouted > 0 {
        metrics::counter!("switchyard_notifications_unrouted_total").increment(unrouted as u64);
    }
    Ok(())
}

/// The deliveries of an embedded batch, and those of them that go straight to a lane with
/// room (leased by `owner` until the lease runs out).
fn plan_embedded(
    table: &RouteTable,
    directory: &Directory,
    notifications: impl Iterator<Item = Notification>,
    lanes: Option<&Lanes>,
    owner: &str,
) -> (
    Vec<NewDelivery>,
    Vec<(tokio::sync::mpsc::OwnedPermit<Job>, Job)>,
) {
    let now = store::now_ms();
    let lease_until = lanes.map_or(now, |lanes| now + lanes.lease().as_millis() as i64);
    let mut deliveries = Vec::new();
    let mut handovers = Vec::new();
    let mut unrouted = 0u64;
    for notification in notifications {
        let notification = Arc::new(notification);
        let targets = targets(table, directory, &notification);
        if targets.is_empty() {
            unrouted += 1;
        }
        for (channel, route) in targets {
            let id = uuid::Uuid::now_v7().to_string();
            let room = lanes.and_then(|lanes| lanes.sender(&channel).try_reserve_owned().ok());
            deliveries.push(NewDelivery {
                id: id.clone(),
                notification_id: notification.id.clone(),
                channel: channel.to_string(),
                route,
                lease_owner: room.as_ref().map(|_| owner.to_string()),
                next_at: if room.is_some() { lease_until } else { now },
            });
            if let Some(room) = room {
                let job = Job {
                    delivery_id: id,
                    attempts: 0,
                    retry_base: 0,
                    notification: notification.clone(),
                    held: Held::Store,
                };
                handovers.push((room, job));
            }
        }
    }
    if unrouted > 0 {
        metrics::counter!("switchyard_notifications_unrouted_total").increment(unrouted);
    }
    (deliveries, handovers)
}

/// What a batch bound for broker queues makes: the deliveries to YAML channels, as stored
/// and as published, and those to endpoints, which wait in the store's queue (a broker
/// queue per endpoint would be thousands of queues).
struct QueuedPlan {
    on_broker: Vec<NewDelivery>,
    queued: Vec<QueuedDelivery>,
    in_store: Vec<NewDelivery>,
    unrouted: usize,
}

/// Plans a batch bound for broker queues. Delivery ids follow from the notification and
/// the channel, so routing a batch again after a crash makes the same deliveries.
fn plan_queued(
    table: &RouteTable,
    directory: &Directory,
    notifications: &[Notification],
) -> QueuedPlan {
    let now = store::now_ms();
    let mut plan = QueuedPlan {
        on_broker: Vec::new(),
        queued: Vec::new(),
        in_store: Vec::new(),
        unrouted: 0,
    };
    for notification in notifications {
        let targets = targets(table, directory, notification);
        if targets.is_empty() {
            plan.unrouted += 1;
        }
        for (channel, route) in targets {
            let id = delivery_id(&notification.id, &channel);
            let delivery = NewDelivery {
                id: id.clone(),
                notification_id: notification.id.clone(),
                channel: channel.to_string(),
                route,
                lease_owner: None,
                next_at: now,
            };
            if endpoints::endpoint_id(&channel).is_some() {
                plan.in_store.push(delivery);
                continue;
            }
            plan.on_broker.push(delivery);
            plan.queued.push(QueuedDelivery {
                delivery_id: id,
                channel: channel.to_string(),
                attempts: 0,
                retry_base: 0,
                notification: notification.clone(),
            });
        }
    }
    plan
}

/// Where a notification goes, each with what chose it: the YAML routes' channels, then,
/// for a notification sent for a tenant, that tenant's matching endpoints (credited to
/// `tenant:<id>`). What a tenant's own token sent goes to its endpoints only, and a test
/// event only to the endpoint it names. Public for the `endpoints` benchmark.
pub fn targets(
    table: &RouteTable,
    directory: &Directory,
    notification: &Notification,
) -> Vec<(Arc<str>, String)> {
    let Some(tenant) = &notification.tenant else {
        return table
            .targets(&notification.kind, &notification.attributes)
            .into_iter()
            .map(|t| (t.channel, t.route.to_string()))
            .collect();
    };
    let credit = || format!("tenant:{tenant}");
    if notification.kind == tenancy::TEST_KIND && notification.source == tenancy::SOURCE {
        let endpoint = notification
            .attributes
            .iter()
            .find(|(name, _)| name == "endpoint")
            .and_then(|(_, id)| directory.by_channel(&endpoints::channel_name(id)))
            .filter(|e| &e.row.tenant_id == tenant);
        return endpoint
            .map(|e| vec![(e.channel.clone(), credit())])
            .unwrap_or_default();
    }
    let mut targets: Vec<(Arc<str>, String)> =
        if notification.source.starts_with(tenancy::TENANT_SENT_PREFIX) {
            Vec::new()
        } else {
            table
                .targets(&notification.kind, &notification.attributes)
                .into_iter()
                .map(|t| (t.channel, t.route.to_string()))
                .collect()
        };
    for endpoint in directory.targets(tenant, &notification.kind, &notification.attributes) {
        targets.push((endpoint.channel.clone(), credit()));
    }
    targets
}

/// The id of `notification_id`'s delivery to `channel`: a UUID (version 8) that starts
/// with the notification's time, when its id is a UUIDv7 (as accept makes them), followed
/// by bytes of the SHA-256 of the two.
///
/// The same pair always gives the same id, so a batch routed twice makes the same
/// deliveries. Leading with the time keeps new ids at the end of the store's indexes, as
/// the embedded bus's UUIDv7s are: random keys would land on a different index page each,
/// and writing those pages back was what cost the store most on the brokers' path.
pub fn delivery_id(notification_id: &str, channel: &str) -> String {
    let digest = Sha256::new()
        .chain_update(notification_id)
        .chain_update([0])
        .chain_update(channel)
        .finalize();
    let mut bytes: [u8; 16] = digest[..16].try_into().expect("a SHA-256 has 32 bytes");
    if let Ok(notification) = uuid::Uuid::parse_str(notification_id)
        && notification.get_version_num() == 7
    {
        // The first 48 bits of a UUIDv7 are its Unix time in milliseconds.
        bytes[..6].copy_from_slice(&notification.as_bytes()[..6]);
        bytes[6..].copy_from_slice(&digest[..10]);
    }
    uuid::Uuid::new_v8(bytes).to_string()
}

/// How far the embedded router may read ahead: no further than the lanes can take, except
/// for lanes that stay full.
///
/// A delivery handed straight to its lane is leased as it is stored. One that finds its
/// lane full is stored due, and the poller must lease it and read its notification again
/// later: under a backlog, leaving that work out cut the hub's CPU per notification in
/// `switchyard bench` by 8%. So the router leaves a backlog on the stream instead, and
/// reads only as many notifications as the fullest lane has room for. A lane that has not
/// had room for [`MIN_ROOM`] within [`LANE_GRACE`] is slow: the router stops waiting for
/// it, and its deliveries wait in the store, until it is half empty again.
#[derive(Default)]
struct Headroom {
    /// Lanes below `MIN_ROOM`, and since when.
    full_since: HashMap<String, Instant>,
    /// Lanes the router no longer waits for.
    slow: HashSet<String>,
}

impl Headroom {
    /// How many notifications to read now, or `None` to wait a moment for a lane.
    fn next_read(&mut self, lanes: &Lanes, table: &RouteTable, now: Instant) -> Option<u32> {
        self.next_read_with(
            table.channels().map(|(name, _)| (name, lanes.room(name))),
            now,
        )
    }

    /// The same, given each channel's free room.
    fn next_read_with<'a>(
        &mut self,
        rooms: impl Iterator<Item = (&'a str, usize)>,
        now: Instant,
    ) -> Option<u32> {
        let mut limit = BATCH as usize;
        let mut wait = false;
        for (channel, room) in rooms {
            if room >= LANE_CAPACITY / 2 && self.slow.remove(channel) {
                tracing::debug!(%channel, "lane has room again; the router waits for it");
            }
            if self.slow.contains(channel) {
                continue;
            }
            if room >= MIN_ROOM {
                self.full_since.remove(channel);
                limit = limit.min(room);
                continue;
            }
            let since = *self.full_since.entry(channel.to_owned()).or_insert(now);
            if now.duration_since(since) >= LANE_GRACE {
                tracing::debug!(%channel, "lane stays full; its deliveries wait in the store");
                self.full_since.remove(channel);
                self.slow.insert(channel.to_owned());
            } else {
                wait = true;
            }
        }
        (!wait).then_some(limit as u32)
    }
}

/// Sleeps `wait` unless `stop` fires first; true when it did.
async fn sleep_or_stop(wait: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(wait) => false,
    }
}

/// Backs off while something the router needs is down, and logs the outage once when it
/// starts and once when it ends rather than at every try.
#[derive(Default)]
struct Trouble {
    failures: u32,
}

impl Trouble {
    /// Logs the first failure of an outage; returns how long to wait before the next try.
    fn failed(&mut self, what: &str, error: &dyn std::fmt::Display) -> Duration {
        if self.failures == 0 {
            tracing::error!(%error, "{what}");
        } else {
            tracing::debug!(%error, failures = self.failures + 1, "{what}");
        }
        self.failures += 1;
        let wait = Duration::from_millis(100) * 2u32.saturating_pow(self.failures.min(8));
        wait.min(MAX_BACKOFF)
    }

    fn recovered(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "the router is routing again");
            self.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_follow_from_notification_and_channel() {
        let id = delivery_id("n1", "ops");
        assert_eq!(id, delivery_id("n1", "ops"));
        assert_ne!(id, delivery_id("n1", "sms"));
        assert_ne!(id, delivery_id("n2", "ops"));
        // No ambiguity from concatenation.
        assert_ne!(delivery_id("ab", "c"), delivery_id("a", "bc"));
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 8);
    }

    #[test]
    fn the_router_reads_no_further_than_the_lanes_can_take() {
        let mut headroom = Headroom::default();
        let now = Instant::now();
        let empty = LANE_CAPACITY;
        assert_eq!(
            headroom.next_read_with([("a", empty), ("b", empty)].into_iter(), now),
            Some(BATCH)
        );
        assert_eq!(
            headroom.next_read_with([("a", empty), ("b", 700)].into_iter(), now),
            Some(700)
        );
    }

    #[test]
    fn the_router_waits_for_a_full_lane_only_briefly() {
        let mut headroom = Headroom::default();
        let start = Instant::now();
        let full = [("fast", LANE_CAPACITY), ("slow", 3)];
        // Full: the router waits, as a lane that drains frees room within the grace.
        assert_eq!(headroom.next_read_with(full.into_iter(), start), None);
        let later = start + LANE_GRACE / 2;
        assert_eq!(headroom.next_read_with(full.into_iter(), later), None);
        // Still full after the grace: slow, and routed past.
        let after = start + LANE_GRACE;
        assert_eq!(
            headroom.next_read_with(full.into_iter(), after),
            Some(BATCH)
        );
        // Some room is not enough to be waited for again...
        let some = [("fast", LANE_CAPACITY), ("slow", MIN_ROOM)];
        assert_eq!(
            headroom.next_read_with(some.into_iter(), after),
            Some(BATCH)
        );
        // ...half empty is.
        let half = [("fast", LANE_CAPACITY), ("slow", LANE_CAPACITY / 2)];
        assert_eq!(
            headroom.next_read_with(half.into_iter(), after),
            Some(BATCH.min((LANE_CAPACITY / 2) as u32))
        );
        assert_eq!(headroom.next_read_with(full.into_iter(), after), None);
    }

    #[test]
    fn delivery_ids_of_uuidv7_notifications_sort_by_time() {
        let earlier = uuid::Uuid::new_v7(uuid::Timestamp::from_unix_time(1_700_000_000, 0, 0, 0));
        let later = uuid::Uuid::new_v7(uuid::Timestamp::from_unix_time(1_700_000_001, 0, 0, 0));
        let (earlier, later) = (earlier.to_string(), later.to_string());
        for channel in ["a", "ops", "zzz"] {
            let first = delivery_id(&earlier, channel);
            assert!(first < delivery_id(&later, "a"), "{first}");
            // The time is the notification's, so the id starts the same way.
            assert_eq!(first[..13], earlier[..13]);
            assert_eq!(first, delivery_id(&earlier, channel));
        }
        assert_ne!(delivery_id(&earlier, "a"), delivery_id(&earlier, "b"));
    }
}
