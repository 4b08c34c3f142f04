//! The hub: the store, the bus, the route table, the plugins and the tasks of the flow
//! (accept, route, deliver), started together and stopped in order. A process runs the
//! tasks of its roles (`serve --roles`); see [`crate::bus`] for where work travels between
//! them.

pub mod router;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::kafka::{KafkaConsumer, KafkaProducer};
use crate::bus::rabbit::RabbitQueues;
use crate::bus::shared::Shared;
use crate::bus::{QueueBackend, QueuedDelivery, StreamBackend};
use crate::config::Config;
use crate::delivery::websocket::{Inbox, InboxHost};
use crate::delivery::{self, DeliverySettings, Lanes, Recorder};
use crate::events::Events;
use crate::ingress::{Acceptor, Tokens};
use crate::plugins::Plugins;
use crate::routing::endpoints::LiveDirectory;
use crate::routing::{LiveRoutes, RouteTable};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::{DeadLetterFilter, Store};
use crate::tenancy::Tenancy;
use crate::vault::{self, KeySource, SecretStatus, Vault};

/// A running hub. Front doors hold an `Arc<Hub>`.
pub struct Hub {
    pub config: Config,
    pub store: Store,
    pub routes: Arc<LiveRoutes>,
    pub plugins: Plugins,
    pub acceptor: Acceptor,
    pub tokens: Tokens,
    /// Channel secrets, sealed in the store under the master key.
    pub vault: Arc<Vault>,
    /// Live events for WebSocket and GraphQL subscribers.
    pub events: Events,
    /// The clients listening for the `websocket` channel's notifications.
    pub inbox: Arc<Inbox>,
    /// The brokers and Redis this process uses, when config names them.
    pub bus: Bus,
    /// Tenants and their endpoints.
    pub tenancy: Tenancy,
    /// This process's channel workers, when it runs the worker role.
    lanes: Option<Lanes>,
    /// This process's name on leases.
    owner: String,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// Why a dead letter could not be replayed; it stays a dead letter.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Queue(#[from] crate::bus::rabbit::Error),
}

/// The connections to what runs outside the process, for the readiness check and replay.
#[derive(Clone, Default)]
pub struct Bus {
    pub producer: Option<Arc<KafkaProducer>>,
    pub queues: Option<Arc<RabbitQueues>>,
    pub shared: Option<Shared>,
}

impl Bus {
    /// Connects to every broker config names, so a wrong address stops the start with a
    /// message naming it.
    async fn connect(config: &Config) -> anyhow::Result<Bus> {
        let shared = match &config.redis.url {
            Some(url) => Some(
                Shared::connect(url)
                    .await
                    .context("could not connect to Redis (redis.url)")?,
            ),
            None => None,
        };
        let queues = match config.queue_backend() {
            QueueBackend::Embedded => None,
            QueueBackend::Rabbit(settings) => Some(
                RabbitQueues::connect(&settings)
                    .await
                    .context("could not connect to RabbitMQ (queues.url)")?,
            ),
        };
        let producer = match config.stream_backend() {
            StreamBackend::Kafka(settings) if config.roles.api => Some(Arc::new(
                KafkaProducer::connect(&settings)
                    .await
                    .context("could not connect to Kafka (stream.url)")?,
            )),
            _ => None,
        };
        Ok(Bus {
            producer,
            queues,
            shared,
        })
    }

    /// Why the process is not ready, if a broker it needs does not answer.
    pub async fn unready(&self) -> Option<String> {
        if let Some(producer) = &self.producer
            && let Err(error) = producer.ping().await
        {
            return Some(format!("the Kafka stream is not answering: {error}"));
        }
        if let Some(queues) = &self.queues
            && let Err(error) = queues.ping().await
        {
            return Some(format!("RabbitMQ is not answering: {error}"));
        }
        if let Some(shared) = &self.shared
            && let Err(error) = shared.ping().await
        {
            return Some(format!("Redis is not answering: {error}"));
        }
        None
    }
}

impl Hub {
    /// Opens the store, loads the routes and the plugins they name, and starts the flow.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Hub>> {
        // Owner-only: it holds the database, the master key and the plugins' cache.
        crate::store::create_private_dir(&config.data_dir).with_context(|| {
            format!(
                "could not create the data directory {}",
                config.data_dir.display()
            )
        })?;
        let store = Store::open(&config.store_url()).await.with_context(|| {
            let url = crate::bus::redacted(&config.store_url());
            format!("could not open the store at {url}")
        })?;

        let key_source = KeySource::from_env_or_file(config.master_key_path());
        let vault = Vault::open(store.clone(), key_source.clone())
            .await
            .with_context(|| {
                format!(
                    "could not open the secrets vault with the keys in {}",
                    key_source.describe()
                )
            })?;
        let vault = Arc::new(vault);

        // The `websocket` channel reaches the clients of `/ws` through this inbox, which
        // the runtime answers in-process for plugins granted its host name.
        let inbox = Arc::new(Inbox::default());
        let runtime = Runtime::new(RuntimeConfig {
            local_hosts: vec![Arc::new(InboxHost(inbox.clone()))],
            ..config.runtime_config()
        })?;
        let plugins = Plugins::open(runtime, store.clone()).await?;

        // Routes may name uploaded plugins as well as the built-ins.
        let routes_path = config.routes_path();
        write_sample_routes(&routes_path)?;
        let table =
            RouteTable::load(&routes_path, &plugins).map_err(|error| anyhow::anyhow!("{error}"))?;
        for warning in table.warnings() {
            tracing::warn!("{warning}");
        }
        let routes = Arc::new(LiveRoutes::with_catalog(
            routes_path,
            table,
            Arc::new(plugins.clone()),
        ));
        load_plugins(&plugins, &routes.current()).await?;

        let roles = config.roles;
        let bus = Bus::connect(&config).await?;
        let owner = uuid::Uuid::now_v7().to_string();
        // A SQLite store belongs to one process, so leases held by any other owner are a
        // dead run's: take them back now rather than when they run out. A shared store's
        // other owners may be alive; their leases run out on their own.
        let embedded_worker = roles.worker && bus.queues.is_none();
        if embedded_worker && config.store_url().starts_with("sqlite:") {
            let released = store.release_foreign_leases(&owner).await?;
            if released > 0 {
                tracing::info!(
                    deliveries = released,
                    "picked up deliveries a previous run left in flight"
                );
            }
        }

        let stream = Arc::new(Notify::new());
        let window_ms = config.api.idempotency_window.as_millis() as i64;
        let events = Events::default();
        let acceptor = match (&bus.producer, &bus.shared) {
            (Some(producer), Some(shared)) => Acceptor::start_kafka(
                producer.clone(),
                shared.clone(),
                config.api.idempotency_window,
                events.clone(),
            ),
            _ => Acceptor::start(store.clone(), stream.clone(), window_ms, events.clone()),
        };
        let directory = LiveDirectory::load(store.clone())
            .await
            .context("could not read the tenants and endpoints")?;
        let tenancy = Tenancy::new(
            store.clone(),
            directory.clone(),
            vault.clone(),
            routes.clone(),
            plugins.clone(),
        );
        // An endpoint disabled for failing is announced like any other notification.
        let announce: delivery::Announce = {
            let acceptor = acceptor.clone();
            let directory = directory.clone();
            Arc::new(move |notification| {
                let acceptor = acceptor.clone();
                let directory = directory.clone();
                Box::pin(async move {
                    // So the disabled endpoint is not among those its own announcement
                    // is routed to here.
                    if let Err(error) = directory.refresh().await {
                        tracing::debug!(%error, "could not read endpoint changes");
                    }
                    let tenant = notification.tenant.clone();
                    let draft = crate::runtime::Draft {
                        kind: notification.kind,
                        attributes: notification.attributes,
                        payload: notification.payload,
                        idempotency_key: notification.idempotency_key,
                    };
                    let accepted = acceptor
                        .accept(
                            crate::tenancy::SOURCE,
                            None,
                            tenant.as_deref(),
                            vec![draft],
                            None,
                        )
                        .await;
                    if let Err(error) = accepted {
                        tracing::error!(%error, "could not announce a disabled endpoint");
                    }
                })
            })
        };
        let controls = delivery::Controls::new(config.endpoints.clone(), store.clone(), announce);
        let lanes = roles.worker.then(|| {
            Lanes::new(
                store.clone(),
                routes.clone(),
                directory.clone(),
                controls,
                plugins.clone(),
                vault.clone(),
                Recorder::start(store.clone()),
                events.clone(),
                DeliverySettings {
                    concurrency: config.delivery.concurrency,
                    lease: config.delivery.lease,
                    shared_limits: bus.shared.clone(),
                },
            )
        });
        let tokens = Tokens::load(store.clone()).await?;

        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        if roles.router {
            let outlet = match &bus.queues {
                Some(queues) => router::Outlet::Queues(queues.clone()),
                None => router::Outlet::Embedded {
                    lanes: lanes.clone(),
                    owner: owner.clone(),
                },
            };
            match config.stream_backend() {
                StreamBackend::Embedded => {
                    tasks.spawn(router::run(
                        store.clone(),
                        routes.clone(),
                        directory.clone(),
                        outlet,
                        stream,
                        stop.clone(),
                    ));
                }
                StreamBackend::Kafka(settings) => {
                    // Joined here, not in the task, so a wrong address stops the start.
                    let consumer = KafkaConsumer::connect(&settings)
                        .await
                        .context("could not join the routers' Kafka consumer group")?;
                    tasks.spawn(router::run_kafka(
                        store.clone(),
                        routes.clone(),
                        directory.clone(),
                        outlet,
                        consumer,
                        settings,
                        stop.clone(),
                    ));
                }
            }
        }
        if let Some(lanes) = &lanes {
            if let Some(queues) = &bus.queues {
                tasks.spawn(delivery::run_queue_feed(
                    lanes.clone(),
                    queues.clone(),
                    stop.clone(),
                ));
            }
            // Endpoints' deliveries always wait in the store's queue.
            tasks.spawn(delivery::run_poller(
                lanes.clone(),
                owner.clone(),
                bus.queues.is_some(),
                stop.clone(),
            ));
        }
        {
            let tenancy = tenancy.clone();
            tasks.spawn(directory.clone().run(
                move |endpoint| {
                    let tenancy = tenancy.clone();
                    async move { tenancy.expire_previous_secret(&endpoint).await }
                },
                stop.clone(),
            ));
        }
        tasks.spawn(watch_routes(routes.clone(), plugins.clone(), stop.clone()));
        if let Some(retention) = config.store.retention {
            tasks.spawn(crate::store::retention::run_retention(
                store.clone(),
                retention,
                stop.clone(),
            ));
        }
        tasks.spawn(housekeeping(
            store.clone(),
            routes.clone(),
            window_ms,
            stop.clone(),
        ));

        Ok(Arc::new(Hub {
            config,
            store,
            routes,
            plugins,
            acceptor,
            tokens,
            vault,
            events,
            inbox,
            bus,
            tenancy,
            lanes,
            owner,
            stop,
            tasks,
        }))
    }

    /// This process's lease owner id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Seals `value` as `channel`'s secret `name`. Only secrets the routes in force take
    /// from the vault (`secrets: [name]`) can be set here, so a typo cannot store a secret
    /// nothing reads. Deliveries use the new value from their next attempt.
    pub async fn set_channel_secret(
        &self,
        channel: &str,
        name: &str,
        value: &str,
    ) -> vault::Result<()> {
        if !vault::is_declared(&self.routes.current(), channel, name) {
            return Err(vault::Error::NotDeclared {
                channel: channel.to_owned(),
                name: name.to_owned(),
            });
        }
        self.vault.set(channel, name, value).await
    }

    /// Every vault secret the routes in force name, set or not, and every stored one,
    /// without values.
    pub async fn channel_secrets(&self) -> vault::Result<Vec<SecretStatus>> {
        let stored = self.vault.stored().await?;
        Ok(vault::secret_statuses(&self.routes.current(), stored))
    }

    /// Puts a dead letter back on its channel's queue with a fresh retry schedule. Returns
    /// the channel, or `None` when there is no such dead letter.
    pub async fn replay(&self, delivery_id: &str) -> Result<Option<String>, ReplayError> {
        let Some(queues) = &self.bus.queues else {
            return Ok(self.store.replay(delivery_id).await?);
        };
        // On the broker first: if that fails, the delivery is still a dead letter and the
        // replay can simply be asked for again.
        let filter = DeadLetterFilter {
            delivery_id: Some(delivery_id.to_owned()),
            limit: 1,
            ..DeadLetterFilter::default()
        };
        let Some(dead) = self.store.list_dead_letters(&filter).await?.pop() else {
            return Ok(None);
        };
        if crate::routing::endpoints::endpoint_id(&dead.channel).is_some() {
            // Endpoints' deliveries wait in the store's queue, broker or not.
            return Ok(self.store.replay(delivery_id).await?);
        }
        let Some(notification) = self.store.notification(&dead.notification_id).await? else {
            return Ok(None);
        };
        queues
            .enqueue(&[QueuedDelivery {
                delivery_id: dead.delivery_id,
                channel: dead.channel,
                attempts: dead.attempts,
                retry_base: dead.attempts,
                notification,
            }])
            .await?;
        Ok(self.store.replay(delivery_id).await?)
    }

    /// Reloads the routes file now; on error the old table stays.
    pub async fn reload_routes(&self) -> Result<Arc<RouteTable>, crate::routing::RoutesError> {
        let table = self.routes.reload()?;
        if let Err(error) = load_plugins(&self.plugins, &table).await {
            tracing::error!(%error, "a plugin the new routes name does not load");
        }
        Ok(table)
    }

    /// Stops the flow in order: the router and poller stop taking work, calls in flight
    /// finish (up to the shutdown grace) and are recorded, and the store closes. Whatever
    /// was queued but not started stays pending in the store for the next start.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        if let Some(lanes) = &self.lanes {
            lanes.shutdown(self.config.delivery.shutdown_grace).await;
        }
        self.store.close().await;
    }
}

/// Writes the sample routes file when there is none, so the first start routes something.
fn write_sample_routes(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
    }
    std::fs::write(path, crate::routing::SAMPLE)
        .with_context(|| format!("could not write the sample routes to {}", path.display()))?;
    tracing::info!(path = %path.display(), "wrote a sample routes file");
    Ok(())
}

/// Compiles the plugins `table` names, so errors show now and first calls are not slow.
async fn load_plugins(plugins: &Plugins, table: &RouteTable) -> anyhow::Result<()> {
    plugins
        .adapter(crate::ingress::REST_ADAPTER)
        .await
        .map_err(anyhow::Error::msg)?;
    for (name, channel) in table.channels() {
        plugins
            .channel(&channel.plugin)
            .await
            .map_err(|error| anyhow::anyhow!("channel `{name}`: {error}"))?;
    }
    for (name, source) in table.sources() {
        plugins
            .adapter(&source.adapter)
            .await
            .map_err(|error| anyhow::anyhow!("source `{name}`: {error}"))?;
    }
    Ok(())
}

/// Reloads the routes when the file changes.
async fn watch_routes(routes: Arc<LiveRoutes>, plugins: Plugins, stop: CancellationToken) {
    let mut tables = routes.subscribe();
    let watcher = routes.clone().watch();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            changed = tables.changed() => {
                if changed.is_err() {
                    break;
                }
                let table = tables.borrow_and_update().clone();
                if let Err(error) = load_plugins(&plugins, &table).await {
                    tracing::error!(%error, "a plugin the new routes name does not load");
                }
            }
        }
    }
    watcher.abort();
}

/// How long a deleted tenant's or endpoint's row is kept: each process's directory learns
/// of the deletion from it (within a second, or when it can read the store again).
const DELETED_TENANCY_KEPT_MS: i64 = 24 * 3600 * 1000;

/// Periodic chores: forget expired idempotency keys and long-deleted tenants and
/// endpoints, sample queue depths for `/metrics`.
async fn housekeeping(
    store: Store,
    routes: Arc<LiveRoutes>,
    idempotency_window_ms: i64,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(5));
    let mut tick: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        tick += 1;
        if tick % 720 == 1 {
            match store.purge_idempotency_keys(idempotency_window_ms).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "forgot expired idempotency keys"),
                Err(error) => tracing::warn!(%error, "could not purge idempotency keys"),
            }
            match store
                .purge_deleted_tenancy(crate::store::now_ms() - DELETED_TENANCY_KEPT_MS)
                .await
            {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "purged deleted tenants and endpoints"),
                Err(error) => {
                    tracing::warn!(%error, "could not purge deleted tenants and endpoints")
                }
            }
        }
        match store.pending_by_channel().await {
            Ok(depths) => {
                let mut by_label: std::collections::HashMap<String, i64> =
                    std::collections::HashMap::new();
                for (channel, depth) in depths {
                    *by_label
                        .entry(delivery::metric_label(&channel))
                        .or_default() += depth;
                }
                let depths = by_label;
                let table = routes.current();
                let channels = table
                    .channels()
                    .map(|(name, _)| name.to_string())
                    .chain(depths.keys().cloned());
                for channel in channels {
                    let depth = depths.get(&channel).copied().unwrap_or(0);
                    metrics::gauge!("switchyard_queue_depth", "channel" => channel)
                        .set(depth as f64);
                }
            }
            Err(error) => tracing::warn!(%error, "could not sample queue depths"),
        }
    }
}
