//! Delivery: channel workers lease deliveries, call the channel's plugin, record every
//! attempt, and retry or dead-letter what did not go through.
//!
//! Each channel has a **lane**: a bounded in-memory queue, its own rate limiter and its own
//! limit on calls in flight. A slow or failing destination fills only its own lane; the
//! router and the other lanes carry on. Work reaches a lane two ways:
//!
//! - the router hands over fresh deliveries when the lane has room (leased in the store
//!   for [`DeliverySettings::lease`]), and
//! - the [`poller`] leases due deliveries from the store: retries whose time has come,
//!   replayed dead letters, deliveries the router could not hand over, and leftovers of a
//!   process that died.

mod attempt;
pub mod controls;
mod poller;
mod queue_feed;
mod recorder;
pub mod websocket;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::rabbit;
use crate::events::Events;
use crate::plugins::Plugins;
use crate::routing::endpoints::{self, Endpoint, LiveDirectory};
use crate::routing::{ChannelSpec, LiveRoutes, RateLimit, RouteTable, SecretSource};
use crate::runtime::Grants;
use crate::store::{self, Store};
use crate::vault::Vault;

use controls::Admission;
pub use controls::{Announce, ControlSettings, Controls};
pub use poller::run_poller;
pub use queue_feed::run_queue_feed;
pub use recorder::{Recorder, metric_label};

/// How many deliveries a lane holds in memory. Beyond that they wait in the store.
pub const LANE_CAPACITY: usize = 4096;
/// How long opened vault secrets are reused. A secret set through this hub applies at once;
/// one set by another process (`switchyard secrets set`) within this long.
const VAULT_SECRETS_REFRESH: Duration = Duration::from_secs(10);

/// Settings for the delivery workers.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Calls in flight per channel when the channel sets no `concurrency`.
    pub concurrency: u32,
    /// How long a process may hold a delivery before the store hands it out again.
    pub lease: Duration,
    /// Where rate limits are counted across processes; `None` counts them per process.
    pub shared_limits: Option<crate::bus::shared::Shared>,
}

/// One delivery on its way to a channel.
#[derive(Debug)]
pub struct Job {
    pub delivery_id: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts made before the last replay: the retry schedule counts from here.
    pub retry_base: u32,
    pub notification: Arc<store::Notification>,
    /// Where the delivery waits while this process works on it.
    pub held: Held,
}

/// Where a delivery in hand came from, and so how it is settled once its attempt is
/// recorded, or handed back when it is not attempted.
pub enum Held {
    /// Leased from the store's queue: the attempt record itself settles it.
    Store,
    /// Taken from a RabbitMQ queue: acked, sent to a delay queue or dead-lettered after
    /// the record is written.
    Queue(Box<rabbit::Leased>),
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Held::Store => "Store",
            Held::Queue(_) => "Queue",
        })
    }
}

impl Job {
    /// A job for a delivery taken from a RabbitMQ queue.
    pub fn from_queue(leased: rabbit::Leased) -> Job {
        let delivery = &leased.delivery;
        Job {
            delivery_id: delivery.delivery_id.clone(),
            attempts: delivery.attempts,
            retry_base: delivery.retry_base,
            notification: Arc::new(delivery.notification.clone()),
            held: Held::Queue(Box::new(leased)),
        }
    }

    /// Hands the delivery back unattempted, due again after `after`.
    async fn put_back(self, store: &Store, after: Duration) {
        let result = match self.held {
            Held::Store => {
                let at = store::now_ms() + after.as_millis() as i64;
                store
                    .release(&[self.delivery_id], at)
                    .await
                    .map_err(|e| e.to_string())
            }
            Held::Queue(leased) if after.is_zero() => {
                leased.give_back().await.map_err(|e| e.to_string())
            }
            Held::Queue(leased) => leased.retry_in(after).await.map_err(|e| e.to_string()),
        };
        if let Err(error) = result {
            // Nothing is lost: the store's lease runs out, or the broker redelivers.
            tracing::warn!(%error, "could not hand a delivery back; it returns when its lease ends");
        }
    }
}

/// Everything an attempt needs, shared by all lanes.
struct Shared {
    store: Store,
    routes: Arc<LiveRoutes>,
    directory: Arc<LiveDirectory>,
    /// The circuit breakers and failure streaks of endpoints.
    controls: Controls,
    plugins: Plugins,
    vault: Arc<Vault>,
    recorder: Recorder,
    events: Events,
    /// Tracks calls in flight, so shutdown can wait for them.
    in_flight: TaskTracker,
    /// Grants built from the current route table, per channel.
    grants: Mutex<GrantsCache>,
}

#[derive(Default)]
struct GrantsCache {
    table: Option<Arc<RouteTable>>,
    vault_generation: u64,
    by_channel: HashMap<String, CachedGrants>,
    /// How many entries the last sweep left.
    swept_len: usize,
}

impl GrantsCache {
    /// Keeps `grants` for `channel`. Entries of endpoints deleted or changed since are
    /// swept out whenever the map has doubled since the last sweep, so the map stays within
    /// twice what is live (a delete on another process clears nothing here) at an
    /// amortised cost per insert.
    fn insert(&mut self, channel: &str, cached: CachedGrants) {
        if self.by_channel.len() >= (2 * self.swept_len).max(SWEEP_GRANTS_FROM) {
            self.by_channel
                .retain(|_, cached| cached.endpoint.as_ref().is_none_or(still_held));
            self.swept_len = self.by_channel.len();
        }
        self.by_channel.insert(channel.to_owned(), cached);
    }
}

/// Sweeps start once the cache holds this many entries.
const SWEEP_GRANTS_FROM: usize = 1024;

/// Whether anything but this cache (the directory, an attempt in flight) still holds
/// `endpoint`: the directory drops its `Arc` when the endpoint is deleted or changed.
fn still_held(endpoint: &Arc<Endpoint>) -> bool {
    Arc::strong_count(endpoint) > 1
}

struct CachedGrants {
    grants: Arc<Grants>,
    /// When secrets opened from the vault are to be read again; `None` when it has none.
    stale_at: Option<Instant>,
    /// For an endpoint, the directory's copy the grants were built from: a change to the
    /// endpoint replaces that copy, so only its own grants are built again, not every
    /// endpoint's whenever any tenant edits one. Held, not just compared by address, so
    /// the address cannot be reused by a newer copy while this entry stands.
    endpoint: Option<Arc<Endpoint>>,
}

impl CachedGrants {
    fn serves(&self, endpoint: Option<&Arc<Endpoint>>) -> bool {
        let same_endpoint = match (&self.endpoint, endpoint) {
            (Some(cached), Some(current)) => Arc::ptr_eq(cached, current),
            (None, None) => true,
            _ => false,
        };
        same_endpoint && self.stale_at.is_none_or(|at| Instant::now() < at)
    }
}

/// The lanes of every channel, created on first use.
#[derive(Clone)]
pub struct Lanes {
    shared: Arc<Shared>,
    settings: DeliverySettings,
    lanes: LaneMap,
    stop: CancellationToken,
    /// Every lane's task, so shutdown can wait for them to let go of their jobs.
    lane_tasks: TaskTracker,
}

impl Lanes {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        routes: Arc<LiveRoutes>,
        directory: Arc<LiveDirectory>,
        controls: Controls,
        plugins: Plugins,
        vault: Arc<Vault>,
        recorder: Recorder,
        events: Events,
        settings: DeliverySettings,
    ) -> Lanes {
        Lanes {
            shared: Arc::new(Shared {
                store,
                routes,
                directory,
                controls,
                plugins,
                vault,
                recorder,
                events,
                in_flight: TaskTracker::new(),
                grants: Mutex::default(),
            }),
            settings,
            lanes: Arc::default(),
            stop: CancellationToken::new(),
            lane_tasks: TaskTracker::new(),
        }
    }

    /// The sender of `channel`'s lane, starting the lane if needed.
    pub fn sender(&self, channel: &str) -> mpsc::Sender<Job> {
        let mut lanes = self.lanes.lock().expect("lanes lock");
        if let Some(sender) = lanes.get(channel) {
            return sender.clone();
        }
        let (sender, receiver) = mpsc::channel(LANE_CAPACITY);
        lanes.insert(channel.to_string(), sender.clone());
        let lane = Lane {
            channel: channel.to_string(),
            shared: self.shared.clone(),
            default_concurrency: self.settings.concurrency,
            shared_limits: self.settings.shared_limits.clone(),
            stop: self.stop.clone(),
            lanes: endpoints::endpoint_id(channel)
                .is_some()
                .then(|| self.lanes.clone()),
        };
        self.lane_tasks.spawn(lane.run(receiver));
        sender
    }

    /// Free slots per lane, for the poller.
    pub fn room(&self, channel: &str) -> usize {
        self.sender(channel).capacity()
    }

    pub fn lease(&self) -> Duration {
        self.settings.lease
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    pub fn routes(&self) -> &Arc<LiveRoutes> {
        &self.shared.routes
    }

    /// Stops taking jobs, waits up to `grace` for the calls in flight and their records,
    /// and hands the jobs still queued back to the store.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.cancel();
        self.lane_tasks.close();
        self.lane_tasks.wait().await;
        self.shared.in_flight.close();
        if tokio::time::timeout(grace, self.shared.in_flight.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "calls still in flight after {grace:?}; their deliveries will be retried"
            );
        }
        self.shared.recorder.flush().await;
    }
}

/// One channel's lane: takes jobs in order, paces them by the channel's rate limit and
/// runs up to its concurrency of them at once.
struct Lane {
    channel: String,
    shared: Arc<Shared>,
    default_concurrency: u32,
    shared_limits: Option<crate::bus::shared::Shared>,
    stop: CancellationToken,
    /// For an endpoint's lane, the map it is listed in: it leaves it after
    /// [`IDLE_LANE`] without work, as there may be thousands of endpoints.
    lanes: Option<LaneMap>,
}

/// Every lane's sender, by channel.
type LaneMap = Arc<Mutex<HashMap<String, mpsc::Sender<Job>>>>;

/// How long an endpoint's lane waits for work before it stops.
const IDLE_LANE: Duration = Duration::from_secs(60);
/// How long a disabled endpoint's deliveries wait before they are looked at again.
const DISABLED_BACKOFF: Duration = Duration::from_secs(60);

/// A channel's rate limit, counted in this process or across all of them.
enum Pace {
    Local(RateLimit, DefaultDirectRateLimiter),
    Shared(crate::bus::shared::SharedLimiter),
}

impl Pace {
    fn limit(&self) -> &RateLimit {
        match self {
            Pace::Local(limit, _) => limit,
            Pace::Shared(limiter) => limiter.limit(),
        }
    }

    async fn until_ready(&mut self) {
        match self {
            Pace::Local(_, limiter) => limiter.until_ready().await,
            Pace::Shared(limiter) => limiter.until_ready().await,
        }
    }
}

impl Lane {
    async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        let mut concurrency = self.default_concurrency;
        let slots = Arc::new(Semaphore::new(concurrency as usize));
        let mut pace: Option<Pace> = None;
        loop {
            let job = tokio::select! {
                biased;
                _ = self.stop.cancelled() => break,
                job = jobs.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
                _ = tokio::time::sleep(IDLE_LANE), if self.lanes.is_some() => {
                    // Unlisted under the lock, so nothing new is sent here; whatever a
                    // sender had already reserved goes back to the store below.
                    if let Some(lanes) = &self.lanes {
                        lanes.lock().expect("lanes lock").remove(&self.channel);
                    }
                    break;
                }
            };
            // The table, not a copy of the channel's spec: the attempt borrows the spec from
            // it, so nothing is cloned per delivery.
            let table = self.shared.routes.current();
            let destination = self.shared.destination(&table, &self.channel);
            if let Some(endpoint) = destination.as_ref().and_then(Destination::endpoint) {
                let wait = if !endpoint.row.enabled {
                    Some(DISABLED_BACKOFF)
                } else {
                    match self.shared.controls.admit(&self.channel) {
                        Admission::Wait(wait) => Some(wait),
                        Admission::Go => None,
                    }
                };
                if let Some(wait) = wait {
                    self.hand_back_after(job, wait);
                    continue;
                }
            }
            let spec = destination.as_deref();

            // Follow the channel's limits as the routes file changes them.
            let wanted = spec
                .and_then(|s| s.concurrency)
                .unwrap_or(self.default_concurrency)
                .max(1);
            if wanted > concurrency {
                slots.add_permits((wanted - concurrency) as usize);
            } else if wanted < concurrency {
                slots.forget_permits((concurrency - wanted) as usize);
            }
            concurrency = wanted;
            let wanted_rate = spec.and_then(|s| s.rate_limit);
            if pace.as_ref().map(Pace::limit) != wanted_rate.as_ref() {
                pace = wanted_rate.map(|limit| match &self.shared_limits {
                    Some(shared) => Pace::Shared(shared.limiter(&self.channel, limit)),
                    None => Pace::Local(limit, RateLimiter::direct(quota(&limit))),
                });
            }

            if let Some(pace) = &mut pace {
                tokio::select! {
                    biased;
                    _ = self.stop.cancelled() => { self.hand_back(job); break; }
                    _ = pace.until_ready() => {}
                }
            }
            let slot = tokio::select! {
                biased;
                _ = self.stop.cancelled() => { self.hand_back(job); break; }
                slot = slots.clone().acquire_owned() => slot.expect("lane semaphore is never closed"),
            };
            let shared = self.shared.clone();
            let channel = self.channel.clone();
            self.shared
                .in_flight
                .spawn(attempt::run(shared, channel, table, job, slot));
        }
        // Whatever is still queued goes back, due now, for the next process: to the store
        // in one statement; a broker's deliveries go back when this process's consumer
        // closes, as unacknowledged messages do.
        jobs.close();
        let mut left = Vec::new();
        // recv, not try_recv: the router reserves room before it stores a batch and sends
        // after, so a job may still arrive after the close. recv waits for it, and ends once
        // the buffer is empty and no reserved room is left; a job dropped here instead would
        // wait out its whole lease.
        while let Some(job) = jobs.recv().await {
            if let Held::Store = job.held {
                left.push(job.delivery_id);
            }
        }
        if !left.is_empty()
            && let Err(error) = self.shared.store.release(&left, store::now_ms()).await
        {
            tracing::warn!(channel = %self.channel, %error, "could not hand queued deliveries back; they return when their lease ends");
        }
    }

    fn hand_back(&self, job: Job) {
        self.hand_back_after(job, Duration::ZERO);
    }

    /// Hands `job` back unattempted, due again after `after`.
    fn hand_back_after(&self, job: Job, after: Duration) {
        let store = self.shared.store.clone();
        self.shared
            .in_flight
            .spawn(async move { job.put_back(&store, after).await });
    }
}

/// `count` per `per`, with bursts of up to `count`.
pub(crate) fn quota(limit: &RateLimit) -> Quota {
    let count = NonZeroU32::new(limit.count.max(1)).expect("at least one");
    let period = (limit.per / count.get()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .expect("period is positive")
        .allow_burst(count)
}

/// Where a lane delivers: a YAML channel of the table in force, or a tenant's endpoint.
enum Destination<'t> {
    Channel(&'t ChannelSpec),
    Endpoint(Arc<Endpoint>),
}

impl std::ops::Deref for Destination<'_> {
    type Target = ChannelSpec;

    fn deref(&self) -> &ChannelSpec {
        match self {
            Destination::Channel(spec) => spec,
            Destination::Endpoint(endpoint) => &endpoint.spec,
        }
    }
}

impl Destination<'_> {
    fn endpoint(&self) -> Option<&Arc<Endpoint>> {
        match self {
            Destination::Endpoint(endpoint) => Some(endpoint),
            Destination::Channel(_) => None,
        }
    }
}

impl Shared {
    /// What `channel` delivers to now.
    fn destination<'t>(&self, table: &'t RouteTable, channel: &str) -> Option<Destination<'t>> {
        if endpoints::endpoint_id(channel).is_some() {
            self.directory.endpoint(channel).map(Destination::Endpoint)
        } else {
            table.channel(channel).map(Destination::Channel)
        }
    }

    /// The grants for `channel` under the current table, built once per table (and, for
    /// an endpoint, per version of it) and kept until the vault changes or, when they hold
    /// vault secrets, for a short while. The error says why the channel's secrets could not
    /// be had; the attempt is retried.
    async fn grants(
        &self,
        table: &Arc<RouteTable>,
        channel: &str,
        destination: &Destination<'_>,
    ) -> Result<Arc<Grants>, String> {
        let spec: &ChannelSpec = destination;
        let endpoint = destination.endpoint();
        let vault_generation = self.vault.generation();
        {
            let mut cache = self.grants.lock().expect("grants lock");
            let same_table = cache
                .table
                .as_ref()
                .is_some_and(|cached| Arc::ptr_eq(cached, table));
            if !same_table || cache.vault_generation != vault_generation {
                cache.table = Some(table.clone());
                cache.vault_generation = vault_generation;
                cache.by_channel.clear();
                cache.swept_len = 0;
            }
            if let Some(cached) = cache.by_channel.get(channel)
                && cached.serves(endpoint)
            {
                return Ok(cached.grants.clone());
            }
        }
        // Not under the lock: opening vault secrets reads the store.
        let mut secrets = HashMap::with_capacity(spec.secrets.len());
        let mut from_vault = false;
        for (name, source) in &spec.secrets {
            let value = match source {
                SecretSource::Given(value) => value.clone(),
                SecretSource::Vault => {
                    from_vault = true;
                    self.vault_secret(channel, name).await?
                }
                SecretSource::VaultIfSet => {
                    from_vault = true;
                    match self.vault.get(channel, name).await {
                        Ok(Some(value)) => value,
                        Ok(None) => continue,
                        Err(_) => self.vault_secret(channel, name).await?,
                    }
                }
            };
            secrets.insert(name.clone(), value);
        }
        let grants = Arc::new(Grants {
            config: spec.config.clone(),
            secrets,
            allowed_hosts: spec.allowed_hosts.clone(),
        });
        let mut cache = self.grants.lock().expect("grants lock");
        let still_current = cache
            .table
            .as_ref()
            .is_some_and(|cached| Arc::ptr_eq(cached, table))
            && cache.vault_generation == vault_generation;
        if still_current {
            cache.insert(
                channel,
                CachedGrants {
                    grants: grants.clone(),
                    stale_at: from_vault.then(|| Instant::now() + VAULT_SECRETS_REFRESH),
                    endpoint: endpoint.cloned(),
                },
            );
        }
        Ok(grants)
    }

    async fn vault_secret(&self, channel: &str, name: &str) -> Result<String, String> {
        match self.vault.get(channel, name).await {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(format!(
                "secret `{name}` of channel `{channel}` is not set in the vault; set it with \
                 `switchyard secrets set {channel} {name}` or on the admin page"
            )),
            Err(crate::vault::Error::Store(error)) => {
                // Database errors go to the log; the attempt record says only what failed.
                tracing::warn!(%channel, secret = %name, %error, "could not read a vault secret");
                Err(format!(
                    "could not read secret `{name}` of channel `{channel}` from the store"
                ))
            }
            Err(error) => Err(error.to_string()),
        }
    }
}

/// Keeps the slot of a call for as long as the call runs.
type Slot = OwnedSemaphorePermit;

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(count: u32) -> Vec<Arc<Endpoint>> {
        crate::bench::tenants::endpoint_rows("acme", count, "http://127.0.0.1:9/", 1)
            .into_iter()
            .map(|row| Arc::new(Endpoint::from_row(row, 1).unwrap()))
            .collect()
    }

    fn cached(endpoint: Option<&Arc<Endpoint>>) -> CachedGrants {
        CachedGrants {
            grants: Arc::new(Grants::default()),
            stale_at: None,
            endpoint: endpoint.cloned(),
        }
    }

    #[test]
    fn grants_serve_only_the_endpoint_copy_they_were_built_from() {
        let [endpoint, changed]: [Arc<Endpoint>; 2] = endpoints(2).try_into().unwrap();
        assert!(cached(Some(&endpoint)).serves(Some(&endpoint)));
        assert!(!cached(Some(&endpoint)).serves(Some(&changed)));
        assert!(!cached(Some(&endpoint)).serves(None));
        assert!(cached(None).serves(None));
        let mut stale = cached(None);
        stale.stale_at = Some(Instant::now());
        assert!(!stale.serves(None));
    }

    #[test]
    fn grants_of_endpoints_the_directory_dropped_are_swept_out() {
        // Just under the size a sweep starts at: a YAML channel and endpoints.
        let mut directory = endpoints(SWEEP_GRANTS_FROM as u32 - 1);
        let mut cache = GrantsCache::default();
        cache.insert("yaml", cached(None));
        for (i, endpoint) in directory.iter().enumerate() {
            cache.insert(&format!("endpoint:{i}"), cached(Some(endpoint)));
        }
        assert_eq!(cache.by_channel.len(), SWEEP_GRANTS_FROM);
        // The directory still holds the first half; it dropped the rest.
        directory.truncate(SWEEP_GRANTS_FROM / 2);
        cache.insert("one more", cached(None));
        assert_eq!(cache.by_channel.len(), SWEEP_GRANTS_FROM / 2 + 2);
        assert!(cache.by_channel.contains_key("yaml"));
        assert!(cache.by_channel.contains_key("endpoint:0"));
        assert!(!cache.by_channel.contains_key("endpoint:1000"));
        assert_eq!(cache.swept_len, SWEEP_GRANTS_FROM / 2 + 1);
    }
}
