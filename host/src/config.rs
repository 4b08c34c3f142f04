//! One typed config for `switchyard serve`: a YAML file, then `SWITCHYARD_*` environment
//! variables on top, checked at start-up so a typo stops the hub with the file, the line
//! and the reason instead of being silently ignored.
//!
//! Every setting is optional; this is the whole file with the defaults:
//!
//! ```yaml
//! listen: 127.0.0.1:8080
//! public_url: http://127.0.0.1:8080   # the base of URLs the hub prints; default http://<listen>
//! data_dir: .switchyard
//! routes: .switchyard/routes.yaml     # default <data_dir>/routes.yaml
//! master_key_file: .switchyard/master.key   # default <data_dir>/master.key; unused when
//!                                           # SWITCHYARD_MASTER_KEY holds the key itself
//! store:
//!   url: sqlite://.switchyard/switchyard.db   # default sqlite://<data_dir>/switchyard.db
//!   retention: 30d         # delete settled notifications older than this; default: keep all
//! server:
//!   header_read_timeout: 10s   # a request's head must arrive within this; 0: no limit
//!   idle_timeout: 60s          # a connection idle this long between requests is closed;
//!                              # 0: no limit. Upgraded WebSockets keep themselves alive.
//!   max_connections: 1024      # open at once; one more is answered 503 and closed
//! graphql:
//!   max_batch: 10              # the most queries in one batched request
//!   max_complexity: 1000       # the most one request may cost, a batch's queries added up;
//!                              # a list costs its `limit` times what one item costs
//! api:
//!   max_body_bytes: 1048576
//!   idempotency_window: 24h
//! delivery:
//!   concurrency: 64        # calls in flight per channel, for channels that set none
//!   lease: 5m
//!   shutdown_grace: 30s
//! plugins:
//!   memory_limit_bytes: 67108864
//!   keep_resident_bytes: 4194304  # of each warm pool slot's memory, kept between calls
//!   cpu_deadline: 200ms
//!   call_timeout: 30s
//!   allow_loopback: false
//!   max_upload_bytes: 67108864    # the largest plugin file an admin may upload
//!   max_adapter_bytes: 67108864   # the largest component of each world the runtime
//!   max_channel_bytes: 67108864   # loads. Python and JavaScript components carry their
//!   max_transform_bytes: 67108864 # interpreter, so the caps fit them
//! endpoints:                  # tenants' endpoints (see the README's Tenants and endpoints)
//!   breaker_failures: 5        # failed attempts in a row that open an endpoint's breaker
//!   breaker_cooldown: 30s      # open this long, then one probe; doubles per failed probe
//!   breaker_max_cooldown: 10m
//!   disable_after: 5d          # failing this long without a success disables an endpoint
//! portal:                      # the customer portal (/portal)
//!   link_ttl: 10m              # a portal link must be opened within this
//!   session_ttl: 1h            # a portal session lasts this long
//!   frame_ancestors: []        # origins that may embed the portal in an iframe; none: no one
//! ws:
//!   allowed_origins: []        # browser origins allowed to open /ws; default: public_url's
//!   max_frame_bytes: 65536     # a bigger frame closes the connection with 1009
//!   send_queue: 1024           # messages waiting for a slow client before it is closed
//!   ping_interval: 20s         # a client that misses two pings is closed
//! admin:
//!   sessions: memory           # or a redis:// URL, so several processes share sessions
//!   idle_timeout: 30m
//!   absolute_timeout: 8h
//!   max_username_bytes: 64     # a longer sign-in name is refused unread: not stored, not logged
//!   password_hash_concurrency: 2   # password checks (argon2, 19 MiB each) at once; default: CPUs
//!   password_hash_wait: 2s     # how long a sign-in waits for a slot before a 503
//! roles: [api, router, worker] # the parts of the flow this process runs (`serve --roles`)
//! stream:                      # where accepted notifications go
//!   url: embedded              # the store itself; or kafka://host:9092[,host:9092]
//!   topic: switchyard.notifications
//!   partitions: 12             # used when the topic is created
//!   group: switchyard-router   # the routers' consumer group
//!   pack: 64                   # the most notifications accept puts in one Kafka record
//! queues:                      # where deliveries wait for their channel's workers
//!   url: embedded              # the store itself; or amqp://user:password@host:5672/%2f
//!   type: quorum               # or classic
//!   prefetch: 256              # unacknowledged messages per channel per worker
//!   parcel: 32                 # the most deliveries the router puts in one message
//!   delivery_limit: 5          # hand-outs of one message before it is dead-lettered
//!   prefix: switchyard         # queue names: <prefix>.<channel>, <prefix>.<channel>.dead
//! redis:
//!   url: ~                     # redis://host:6379: rate limits and the idempotency window
//!                              # shared by every process; required with a Kafka stream
//! ```
//!
//! Each setting can be overridden by an environment variable named after its path, upper
//! case, sections joined by a double underscore: `SWITCHYARD_LISTEN`,
//! `SWITCHYARD_PLUGINS__ALLOW_LOOPBACK`. Values read like YAML scalars (`true`, `8080`,
//! `24h`). Relative paths are relative to the working directory.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::bus::QueueType;
use crate::bus::{KafkaSettings, QueueBackend, RabbitSettings, StreamBackend};
use crate::runtime::{FetchPolicy, RuntimeConfig};
use crate::yaml::{self, Fields, Node, Problem};

/// The file read when none is named.
pub const DEFAULT_FILE: &str = "switchyard.yaml";
/// The prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "SWITCHYARD_";
/// The value of `stream.url` and `queues.url` that keeps them in the store.
pub const EMBEDDED: &str = "embedded";
/// How long start-up waits for a broker before it stops with an error.
const BROKER_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Environment variables with the prefix that are not settings.
const ENV_NOT_SETTINGS: &[&str] = &[
    // Names the file; the caller reads it.
    "SWITCHYARD_CONFIG",
    // For the test harness: the compiled test plugins, and the test command's Python with
    // the third-party clients and where it keeps it.
    "SWITCHYARD_TEST_PLUGINS",
    "SWITCHYARD_TEST_PYTHON",
    "SWITCHYARD_PYTHON_VENV",
    // The RabbitMQ the integration tests use.
    "SWITCHYARD_TEST_RABBITMQ",
    // The PostgreSQL the store's tests create their databases on.
    "SWITCHYARD_TEST_POSTGRES",
    // The test command's Kafka-compatible broker, for the Kafka stream's tests.
    "SWITCHYARD_TEST_KAFKA",
    // The Python and JavaScript plugin tools and test plugins (`tests/polyglot`).
    "SWITCHYARD_POLYGLOT_PLUGINS",
    "SWITCHYARD_JS_TOOLCHAIN",
    // The vault's master key itself, which the vault reads so that it never sits in a
    // `Config`.
    crate::vault::MASTER_KEY_ENV,
    // The first admin's name and password, read once by `serve` and `admin create-user`.
    "SWITCHYARD_ADMIN_USER",
    "SWITCHYARD_ADMIN_PASSWORD",
];

/// Everything `switchyard serve` is configured by.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The address the HTTP server binds.
    pub listen: SocketAddr,
    /// The base of URLs the hub prints and hands out; `None` means `http://<listen>`.
    pub public_url: Option<String>,
    /// Where the embedded store, the routes file and the plugin cache live.
    pub data_dir: PathBuf,
    /// The routes file; `None` means `<data_dir>/routes.yaml`. See [`Config::routes_path`].
    pub routes: Option<PathBuf>,
    /// The vault's master key file; `None` means `<data_dir>/master.key`. See
    /// [`Config::master_key_path`].
    pub master_key_file: Option<PathBuf>,
    /// The store.
    pub store: StoreConfig,
    /// The HTTP server's connections.
    pub server: ServerConfig,
    /// The GraphQL front door's limits.
    pub graphql: GraphqlConfig,
    /// The REST API.
    pub api: ApiConfig,
    /// The channel workers.
    pub delivery: DeliveryConfig,
    /// The plugin sandbox.
    pub plugins: PluginsConfig,
    /// The admin console and its sessions.
    pub admin: AdminConfig,
    /// The WebSocket front door.
    pub ws: WsConfig,
    /// Tenants' endpoints: the circuit breaker and auto-disable.
    pub endpoints: crate::delivery::ControlSettings,
    /// The customer portal.
    pub portal: PortalConfig,
    /// The parts of the flow this process runs.
    pub roles: Roles,
    /// The stream of accepted notifications.
    pub stream: StreamConfig,
    /// The delivery queues.
    pub queues: QueuesConfig,
    /// Redis, for what several processes must share.
    pub redis: RedisConfig,
}

/// The parts of the flow one process runs. Several processes on the same store and brokers
/// split the work by role, or each runs all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// The front doors: REST, webhooks, WebSocket, GraphQL, and the admin console.
    pub api: bool,
    /// Reads the stream and puts deliveries on their channels' queues.
    pub router: bool,
    /// Takes deliveries off the queues and calls the channel plugins.
    pub worker: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        api: true,
        router: true,
        worker: true,
    };

    /// Parses `api,router,worker` (any non-empty subset, any order).
    pub fn parse(names: &[String]) -> Result<Roles, String> {
        let mut roles = Roles {
            api: false,
            router: false,
            worker: false,
        };
        for name in names {
            match name.as_str() {
                "api" => roles.api = true,
                "router" => roles.router = true,
                "worker" => roles.worker = true,
                other => {
                    return Err(format!(
                        "unknown role `{other}`; the roles are api, router and worker"
                    ));
                }
            }
        }
        if roles
            == (Roles {
                api: false,
                router: false,
                worker: false,
            })
        {
            return Err("name at least one role: api, router or worker".into());
        }
        Ok(roles)
    }
}

impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [
            (self.api, "api"),
            (self.router, "router"),
            (self.worker, "worker"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        f.write_str(&names.join(","))
    }
}

/// The `stream` section.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// `embedded` or `kafka://host:port[,host:port]`.
    pub url: String,
    pub topic: String,
    pub partitions: i32,
    pub group: String,
    pub pack: u32,
}

/// The `queues` section.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuesConfig {
    /// `embedded` or an `amqp://` URL.
    pub url: String,
    pub queue_type: QueueType,
    pub prefetch: u16,
    pub parcel: u32,
    pub delivery_limit: u32,
    pub prefix: String,
}

/// The `redis` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RedisConfig {
    /// A `redis://` URL, or `None` when every process keeps its own limits.
    pub url: Option<String>,
}

/// The `ws` section.
#[derive(Debug, Clone, PartialEq)]
pub struct WsConfig {
    /// Browser origins (`https://app.example.com`) allowed to open `/ws`; empty means the
    /// origin of `public_url`. Clients that send no `Origin` (not browsers) are not checked.
    pub allowed_origins: Vec<String>,
    /// The largest frame accepted.
    pub max_frame_bytes: usize,
    /// How many outgoing messages may wait for a client before it counts as too slow.
    pub send_queue: usize,
    /// How often the server pings.
    pub ping_interval: Duration,
}

/// The `admin` section.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Where sessions live: `memory` (one process) or a `redis://` URL.
    pub sessions: String,
    /// A session unused for this long is over.
    pub idle_timeout: Duration,
    /// A session is over this long after sign-in, however busy.
    pub absolute_timeout: Duration,
    /// The longest sign-in username, in bytes: a longer one gets the wrong-password answer
    /// and is never looked up, stored (the lockout counts per name) or logged.
    pub max_username_bytes: usize,
    /// Password checks (argon2id: ~19 MiB and tens of milliseconds each) running at once;
    /// the default is the number of CPUs.
    pub password_hash_concurrency: usize,
    /// How long a sign-in waits for a free password-check slot before it is answered 503.
    pub password_hash_wait: Duration,
}

/// The `store` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoreConfig {
    /// A `sqlite://` or `postgres://` URL; `None` means the SQLite file in the data dir.
    /// See [`Config::store_url`].
    pub url: Option<String>,
    /// How long notifications are kept once all their deliveries are delivered or dead;
    /// `None` keeps them forever. See `store::retention`.
    pub retention: Option<Duration>,
}

/// The `server` section: what one client's connections may hold, so that slow or idle
/// ones cannot crowd out the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// How long a request's head may take to arrive: from the connection's start for its
    /// first request, from the first byte for later ones. Zero is no limit.
    pub header_read_timeout: Duration,
    /// How long a connection may sit idle between requests. Zero is no limit.
    pub idle_timeout: Duration,
    /// The most connections open at once (upgraded WebSockets included).
    pub max_connections: usize,
}

/// The `graphql` section.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphqlConfig {
    /// The most queries in one batched request.
    pub max_batch: usize,
    /// The most one request may cost: one query, or a batch's queries added up.
    pub max_complexity: usize,
}

/// The `portal` section: the customer portal's links, sessions and embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct PortalConfig {
    /// How long a portal link may wait before it is opened.
    pub link_ttl: Duration,
    /// How long a portal session lasts (it is not extended).
    pub session_ttl: Duration,
    /// The origins (`https://app.example.com`) allowed to frame the portal; empty: none.
    pub frame_ancestors: Vec<String>,
}

/// The `api` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// How long an idempotency key is remembered.
    pub idempotency_window: Duration,
}

/// Calls in flight per channel when neither the channel nor `delivery.concurrency` sets it.
/// Enough for a fast receiver to keep a hub busy: more connections than the throughput needs
/// cost CPU on both ends (`switchyard bench` measured it; see the README's Benchmarks).
pub const DEFAULT_CONCURRENCY: u32 = 64;

/// The `delivery` section.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// Calls in flight per channel, for channels whose route entry sets no `concurrency`.
    pub concurrency: u32,
    /// How long a worker owns a leased delivery before another may take it over.
    pub lease: Duration,
    /// How long shutdown waits for calls in flight.
    pub shutdown_grace: Duration,
}

/// The `plugins` section: the sandbox every plugin call runs in.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginsConfig {
    /// The most linear memory one call may use.
    pub memory_limit_bytes: usize,
    /// How much of each warm pool slot's memory stays resident between calls.
    pub keep_resident_bytes: usize,
    /// The most CPU time one call may use.
    pub cpu_deadline: Duration,
    /// The most wall-clock time one call may take, outbound HTTP included.
    pub call_timeout: Duration,
    /// Lets plugins reach loopback addresses; for tests and local receivers only.
    pub allow_loopback: bool,
    /// The largest plugin component an admin may upload.
    pub max_upload_bytes: usize,
    /// The largest component of each world the runtime loads.
    pub max_component_bytes: crate::runtime::SizeCaps,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from(".switchyard"),
            routes: None,
            master_key_file: None,
            store: StoreConfig::default(),
            server: ServerConfig {
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                max_connections: 1024,
            },
            graphql: GraphqlConfig {
                max_batch: 10,
                max_complexity: 1000,
            },
            api: ApiConfig {
                max_body_bytes: 1024 * 1024,
                idempotency_window: Duration::from_secs(24 * 3600),
            },
            delivery: DeliveryConfig {
                concurrency: DEFAULT_CONCURRENCY,
                lease: Duration::from_secs(5 * 60),
                shutdown_grace: Duration::from_secs(30),
            },
            plugins: PluginsConfig {
                memory_limit_bytes: 64 * 1024 * 1024,
                keep_resident_bytes: crate::runtime::KEEP_RESIDENT_BYTES,
                cpu_deadline: Duration::from_millis(200),
                call_timeout: Duration::from_secs(30),
                allow_loopback: false,
                max_upload_bytes: 64 * 1024 * 1024,
                max_component_bytes: crate::runtime::SizeCaps::default(),
            },
            endpoints: crate::delivery::ControlSettings::default(),
            portal: PortalConfig {
                link_ttl: Duration::from_secs(10 * 60),
                session_ttl: Duration::from_secs(3600),
                frame_ancestors: Vec::new(),
            },
            ws: WsConfig {
                allowed_origins: Vec::new(),
                max_frame_bytes: 64 * 1024,
                send_queue: 1024,
                ping_interval: Duration::from_secs(20),
            },
            admin: AdminConfig {
                sessions: "memory".to_owned(),
                idle_timeout: Duration::from_secs(30 * 60),
                absolute_timeout: Duration::from_secs(8 * 3600),
                max_username_bytes: crate::admin::users::MAX_USERNAME_BYTES,
                password_hash_concurrency: crate::crypto::default_hash_concurrency(),
                password_hash_wait: Duration::from_secs(2),
            },
            roles: Roles::ALL,
            stream: StreamConfig {
                url: EMBEDDED.to_owned(),
                topic: "switchyard.notifications".to_owned(),
                partitions: 12,
                group: "switchyard-router".to_owned(),
                pack: 64,
            },
            queues: QueuesConfig {
                url: EMBEDDED.to_owned(),
                queue_type: QueueType::Quorum,
                // A message stays unacknowledged until its deliveries' attempts are
                // recorded, which takes a batch write, so the window must hold many
                // deliveries: 256 parcels of up to 32 ran the broker bench as fast as 2048
                // did (11.7k/s), while keeping what one worker holds, and so how long the
                // last of it waits for its attempt, well within RabbitMQ's 30-minute
                // consumer timeout for any but the slowest channels.
                prefetch: 256,
                parcel: 32,
                delivery_limit: 5,
                prefix: "switchyard".to_owned(),
            },
            redis: RedisConfig::default(),
        }
    }
}

/// Why the config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named file could not be read (a file named explicitly must exist).
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file or the environment holds bad settings: one line per problem, each naming
    /// `file:line:column` or `VARIABLE=value`.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// `pub type Result<T, E = ConfigError>`, as every module has one.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

impl Config {
    /// Reads the config: `file` if given (it must exist), else `./switchyard.yaml` if it
    /// exists, else the defaults; then applies the `SWITCHYARD_*` variables in `env`.
    /// Every problem in the file and the environment is reported, not just the first.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let mut config = Config::default();
        let mut problems = Vec::new();
        let path = match file {
            Some(path) => Some(path.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.exists()),
        };
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let origin = path.display().to_string();
            for problem in config.apply_yaml(&text) {
                problems.push(problem.render(&origin));
            }
        }
        problems.extend(config.apply_env(env));
        if problems.is_empty() {
            problems.extend(config.cross_check());
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Parses a config from YAML text alone (no environment), naming `origin` in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Config> {
        let mut config = Config::default();
        let problems = config.apply_yaml(text);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(
                problems.iter().map(|p| p.render(origin)).collect(),
            ));
        }
        let problems = config.cross_check();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(
                problems.iter().map(|p| format!("{origin}: {p}")).collect(),
            ))
        }
    }

    /// The routes file: `routes`, or `<data_dir>/routes.yaml`.
    pub fn routes_path(&self) -> PathBuf {
        self.routes
            .clone()
            .unwrap_or_else(|| self.data_dir.join("routes.yaml"))
    }

    /// The vault's master key file: `master_key_file`, or `<data_dir>/master.key`.
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// The store URL: `store.url`, or the SQLite file `<data_dir>/switchyard.db`.
    pub fn store_url(&self) -> String {
        self.store.url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.data_dir.join("switchyard.db").display())
        })
    }

    /// The stream backend `stream` names.
    pub fn stream_backend(&self) -> StreamBackend {
        match self.stream.url.strip_prefix("kafka://") {
            None => StreamBackend::Embedded,
            Some(brokers) => StreamBackend::Kafka(KafkaSettings {
                brokers: brokers.trim_end_matches('/').to_owned(),
                topic: self.stream.topic.clone(),
                partitions: self.stream.partitions,
                group: self.stream.group.clone(),
                pack: self.stream.pack,
                connect_timeout: BROKER_CONNECT_TIMEOUT,
            }),
        }
    }

    /// The queue backend `queues` names.
    pub fn queue_backend(&self) -> QueueBackend {
        if self.queues.url == EMBEDDED {
            return QueueBackend::Embedded;
        }
        QueueBackend::Rabbit(RabbitSettings {
            url: self.queues.url.clone(),
            queue_type: self.queues.queue_type,
            prefetch: self.queues.prefetch,
            parcel: self.queues.parcel,
            delivery_limit: self.queues.delivery_limit,
            prefix: self.queues.prefix.clone(),
            connect_timeout: BROKER_CONNECT_TIMEOUT,
        })
    }

    /// Settings that are each fine alone but not together.
    fn cross_check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.stream_backend() != StreamBackend::Embedded && self.redis.url.is_none() {
            problems.push(
                "stream.url names Kafka, so set redis.url too: with a Kafka stream the \
                 idempotency window is kept in Redis, where every process sees it"
                    .to_owned(),
            );
        }
        problems
    }

    /// The base of URLs the hub prints: `public_url` without a trailing `/`, or
    /// `http://<listen>`.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The plugin runtime's settings from the `plugins` section; compiled components are
    /// cached under `<data_dir>/cache`.
    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig {
            memory_limit_bytes: self.plugins.memory_limit_bytes,
            keep_resident_bytes: self.plugins.keep_resident_bytes,
            cpu_deadline: self.plugins.cpu_deadline,
            call_timeout: self.plugins.call_timeout,
            fetch: FetchPolicy {
                allow_loopback: self.plugins.allow_loopback,
                ..FetchPolicy::default()
            },
            // wasmtime wants an absolute cache path; the data dir may be relative.
            cache_dir: std::path::absolute(self.data_dir.join("cache")).ok(),
            max_component_bytes: self.plugins.max_component_bytes,
            ..RuntimeConfig::default()
        }
    }

    /// Applies the settings in a YAML document; returns the problems, with lines.
    fn apply_yaml(&mut self, text: &str) -> Vec<Problem> {
        let root = match yaml::parse(text) {
            Ok(Some(root)) => root,
            Ok(None) => return Vec::new(),
            Err(problems) => return problems,
        };
        let mut problems = Vec::new();
        let top_level: Vec<&str> = section_names("");
        let Some(fields) = Fields::new(&root, "the config", &top_level, &mut problems) else {
            return problems;
        };
        for key in top_level {
            let Some(node) = fields.get(key) else {
                continue;
            };
            if let Some(setting) = SETTINGS.iter().find(|s| s.key == key) {
                if let Err(reason) = (setting.apply)(self, node) {
                    problems.push(Problem::at(node, reason));
                }
                continue;
            }
            // Not a setting, so a section: its keys are the settings `key.*`.
            let prefix = format!("{key}.");
            let names = section_names(&prefix);
            let what = format!("the `{key}` section");
            let Some(section) = Fields::new(node, &what, &names, &mut problems) else {
                continue;
            };
            for name in names {
                let Some(value) = section.get(name) else {
                    continue;
                };
                let setting = SETTINGS
                    .iter()
                    .find(|s| s.key.strip_prefix(&prefix) == Some(name))
                    .expect("section_names lists only settings");
                if let Err(reason) = (setting.apply)(self, value) {
                    problems.push(Problem::at(value, reason));
                }
            }
        }
        // Settings are applied in table order; report in file order.
        problems.sort_by_key(|p| (p.line, p.column));
        problems
    }

    /// Applies the `SWITCHYARD_*` variables; returns the problems as `VAR=value: reason`.
    fn apply_env(&mut self, env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
        let mut problems = Vec::new();
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .filter(|(name, _)| !ENV_NOT_SETTINGS.contains(&name.as_str()))
            .collect();
        // The environment has no order; sorting makes the messages stable.
        env.sort();
        for (name, value) in env {
            let key = name[ENV_PREFIX.len()..]
                .to_ascii_lowercase()
                .replace("__", ".");
            match SETTINGS.iter().find(|s| s.key == key) {
                Some(setting) => {
                    if let Err(reason) = (setting.apply)(self, &Node::plain(value.clone())) {
                        problems.push(format!("{name}={value}: {reason}"));
                    }
                }
                None => problems.push(format!(
                    "{name}: unknown setting `{key}`; known: {}",
                    SETTINGS
                        .iter()
                        .map(|s| s.key)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        problems
    }
}

/// One setting: its dotted path and how a YAML value sets it. One table serves the file,
/// the environment and the "known settings" lists, so they cannot drift apart.
struct Setting {
    key: &'static str,
    apply: fn(&mut Config, &Node) -> Result<(), String>,
}

const SETTINGS: &[Setting] = &[
    Setting {
        key: "listen",
        apply: |c, n| {
            c.listen = socket_addr(n)?;
            Ok(())
        },
    },
    Setting {
        key: "public_url",
        apply: |c, n| {
            c.public_url = optional_string(n)?;
            Ok(())
        },
    },
    Setting {
        key: "data_dir",
        apply: |c, n| {
            c.data_dir = PathBuf::from(string(n)?);
            Ok(())
        },
    },
    Setting {
        key: "routes",
        apply: |c, n| {
            c.routes = optional_string(n)?.map(PathBuf::from);
            Ok(())
        },
    },
    Setting {
        key: "master_key_file",
        apply: |c, n| {
            c.master_key_file = optional_string(n)?.map(PathBuf::from);
            Ok(())
        },
    },
    Setting {
        key: "store.url",
        apply: |c, n| {
            c.store.url = optional_string(n)?;
            Ok(())
        },
    },
    Setting {
        key: "store.retention",
        apply: |c, n| {
            c.store.retention = if n.is_null() {
                None
            } else {
                Some(duration(n)?)
            };
            Ok(())
        },
    },
    Setting {
        key: "server.header_read_timeout",
        apply: |c, n| {
            c.server.header_read_timeout = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "server.idle_timeout",
        apply: |c, n| {
            c.server.idle_timeout = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "server.max_connections",
        apply: |c, n| {
            c.server.max_connections = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "graphql.max_batch",
        apply: |c, n| {
            c.graphql.max_batch = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "graphql.max_complexity",
        apply: |c, n| {
            c.graphql.max_complexity = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "api.max_body_bytes",
        apply: |c, n| {
            c.api.max_body_bytes = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "api.idempotency_window",
        apply: |c, n| {
            c.api.idempotency_window = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "delivery.concurrency",
        apply: |c, n| {
            c.delivery.concurrency = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "delivery.lease",
        apply: |c, n| {
            c.delivery.lease = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "delivery.shutdown_grace",
        apply: |c, n| {
            c.delivery.shutdown_grace = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "plugins.memory_limit_bytes",
        apply: |c, n| {
            c.plugins.memory_limit_bytes = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "plugins.keep_resident_bytes",
        apply: |c, n| {
            c.plugins.keep_resident_bytes = integer(n, 0)?;
            Ok(())
        },
    },
    Setting {
        key: "plugins.cpu_deadline",
        apply: |c, n| {
            c.plugins.cpu_deadline = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "plugins.call_timeout",
        apply: |c, n| {
            c.plugins.call_timeout = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "plugins.allow_loopback",
        apply: |c, n| {
            c.plugins.allow_loopback = boolean(n)?;
            Ok(())
        },
    },
    Setting {
        key: "plugins.max_upload_bytes",
        apply: |c, n| {
            c.plugins.max_upload_bytes = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "plugins.max_adapter_bytes",
        apply: |c, n| {
            c.plugins.max_component_bytes.adapter = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "plugins.max_channel_bytes",
        apply: |c, n| {
            c.plugins.max_component_bytes.channel = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "plugins.max_transform_bytes",
        apply: |c, n| {
            c.plugins.max_component_bytes.transform = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "endpoints.breaker_failures",
        apply: |c, n| {
            c.endpoints.breaker_failures = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "endpoints.breaker_cooldown",
        apply: |c, n| {
            c.endpoints.breaker_cooldown = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "endpoints.breaker_max_cooldown",
        apply: |c, n| {
            c.endpoints.breaker_max_cooldown = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "endpoints.disable_after",
        apply: |c, n| {
            c.endpoints.disable_after = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "portal.link_ttl",
        apply: |c, n| {
            c.portal.link_ttl = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "portal.session_ttl",
        apply: |c, n| {
            c.portal.session_ttl = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "portal.frame_ancestors",
        apply: |c, n| {
            let origins = string_list(n)?;
            if let Some(wrong) = origins
                .iter()
                .find(|o| !crate::portal::is_origin_source(o.trim().trim_end_matches('/')))
            {
                return Err(format!(
                    "`{wrong}` is not an origin such as https://app.example.com \
                     (a port, and `*.` for subdomains, are allowed)"
                ));
            }
            c.portal.frame_ancestors = origins;
            Ok(())
        },
    },
    Setting {
        key: "ws.allowed_origins",
        apply: |c, n| {
            c.ws.allowed_origins = string_list(n)?;
            Ok(())
        },
    },
    Setting {
        key: "ws.max_frame_bytes",
        apply: |c, n| {
            c.ws.max_frame_bytes = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "ws.send_queue",
        apply: |c, n| {
            c.ws.send_queue = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "ws.ping_interval",
        apply: |c, n| {
            c.ws.ping_interval = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "admin.sessions",
        apply: |c, n| {
            let value = string(n)?;
            if value != "memory" && !value.starts_with("redis://") {
                return Err(format!(
                    "expected `memory` or a redis:// URL, found `{value}`"
                ));
            }
            c.admin.sessions = value;
            Ok(())
        },
    },
    Setting {
        key: "admin.idle_timeout",
        apply: |c, n| {
            c.admin.idle_timeout = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "admin.absolute_timeout",
        apply: |c, n| {
            c.admin.absolute_timeout = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "admin.max_username_bytes",
        apply: |c, n| {
            c.admin.max_username_bytes = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "admin.password_hash_concurrency",
        apply: |c, n| {
            c.admin.password_hash_concurrency = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "admin.password_hash_wait",
        apply: |c, n| {
            c.admin.password_hash_wait = duration(n)?;
            Ok(())
        },
    },
    Setting {
        key: "roles",
        apply: |c, n| {
            c.roles = Roles::parse(&string_list(n)?)?;
            Ok(())
        },
    },
    Setting {
        key: "stream.url",
        apply: |c, n| {
            let value = string(n)?;
            let brokers = value.strip_prefix("kafka://");
            if value != EMBEDDED && brokers.is_none_or(|b| b.trim_matches('/').is_empty()) {
                return Err(format!(
                    "expected `embedded` or kafka://host:port[,host:port], found `{value}`"
                ));
            }
            c.stream.url = value;
            Ok(())
        },
    },
    Setting {
        key: "stream.topic",
        apply: |c, n| {
            c.stream.topic = string(n)?;
            Ok(())
        },
    },
    Setting {
        key: "stream.partitions",
        apply: |c, n| {
            c.stream.partitions = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "stream.group",
        apply: |c, n| {
            c.stream.group = string(n)?;
            Ok(())
        },
    },
    Setting {
        key: "stream.pack",
        apply: |c, n| {
            c.stream.pack = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "queues.url",
        apply: |c, n| {
            let value = string(n)?;
            if value != EMBEDDED && !value.starts_with("amqp://") && !value.starts_with("amqps://")
            {
                return Err(format!(
                    "expected `embedded` or an amqp:// URL, found `{value}`"
                ));
            }
            c.queues.url = value;
            Ok(())
        },
    },
    Setting {
        key: "queues.type",
        apply: |c, n| {
            c.queues.queue_type = match string(n)?.as_str() {
                "quorum" => QueueType::Quorum,
                "classic" => QueueType::Classic,
                other => return Err(format!("expected quorum or classic, found `{other}`")),
            };
            Ok(())
        },
    },
    Setting {
        key: "queues.prefetch",
        apply: |c, n| {
            c.queues.prefetch = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "queues.parcel",
        apply: |c, n| {
            c.queues.parcel = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "queues.delivery_limit",
        apply: |c, n| {
            c.queues.delivery_limit = integer(n, 1)?;
            Ok(())
        },
    },
    Setting {
        key: "queues.prefix",
        apply: |c, n| {
            c.queues.prefix = string(n)?;
            Ok(())
        },
    },
    Setting {
        key: "redis.url",
        apply: |c, n| {
            let value = optional_string(n)?;
            if let Some(url) = &value
                && !url.starts_with("redis://")
                && !url.starts_with("rediss://")
            {
                return Err(format!("expected a redis:// URL, found `{url}`"));
            }
            c.redis.url = value;
            Ok(())
        },
    },
];

/// The names directly under `prefix` ("" for the top level, "plugins." for a section), in
/// table order, without duplicates.
fn section_names(prefix: &str) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for setting in SETTINGS {
        if let Some(rest) = setting.key.strip_prefix(prefix) {
            let name = rest.split('.').next().unwrap_or(rest);
            let name = &setting.key[prefix.len()..prefix.len() + name.len()];
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// A YAML list of strings, or one comma-separated string (as an environment variable
/// gives it).
fn string_list(node: &Node) -> Result<Vec<String>, String> {
    match node.as_sequence() {
        Some(items) => items.iter().map(string).collect(),
        None if node.is_null() => Ok(Vec::new()),
        None => Ok(string(node)?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
    }
}

fn scalar(node: &Node, expected: &str) -> Result<String, String> {
    match node.scalar_text() {
        Some(text) if !node.is_null() => Ok(text.to_owned()),
        _ => Err(format!("expected {expected}, found {}", node.describe())),
    }
}

fn string(node: &Node) -> Result<String, String> {
    scalar(node, "a string")
}

fn optional_string(node: &Node) -> Result<Option<String>, String> {
    if node.is_null() {
        Ok(None)
    } else {
        string(node).map(Some)
    }
}

fn socket_addr(node: &Node) -> Result<SocketAddr, String> {
    if node.as_sequence().is_some() {
        return Err(
            "expected an address like 127.0.0.1:8080, found a list (quote IPv6 \
                    addresses: \"[::1]:8080\")"
                .into(),
        );
    }
    let text = scalar(node, "an address like 127.0.0.1:8080")?;
    text.parse()
        .map_err(|error| format!("{error} (expected an address like 127.0.0.1:8080)"))
}

fn integer<T: TryFrom<u64>>(node: &Node, minimum: u64) -> Result<T, String> {
    let text = scalar(node, "a whole number")?;
    let value: u64 = text
        .parse()
        .map_err(|_| format!("expected a whole number, found {text:?}"))?;
    if value < minimum {
        return Err(format!("must be at least {minimum}, found {value}"));
    }
    T::try_from(value).map_err(|_| format!("{value} is too large"))
}

fn duration(node: &Node) -> Result<Duration, String> {
    yaml::parse_duration(&scalar(node, "a duration like 5s")?)
}

fn boolean(node: &Node) -> Result<bool, String> {
    match scalar(node, "true or false")?.as_str() {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        other => Err(format!("expected true or false, found {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("switchyard.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn invalid(error: ConfigError) -> Vec<String> {
        match error {
            ConfigError::Invalid(problems) => problems,
            other => panic!("expected Invalid, got {other}"),
        }
    }

    #[test]
    fn defaults_and_derived_paths() {
        let config = Config::from_yaml("", "switchyard.yaml").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.public_url(), "http://127.0.0.1:8080");
        assert_eq!(config.routes_path(), Path::new(".switchyard/routes.yaml"));
        assert_eq!(config.store_url(), "sqlite://.switchyard/switchyard.db");
        assert_eq!(config.api.max_body_bytes, 1024 * 1024);
        assert_eq!(config.api.idempotency_window, Duration::from_secs(86400));
        assert_eq!(config.delivery.concurrency, 64);
        assert_eq!(config.delivery.lease, Duration::from_secs(300));
        assert_eq!(config.plugins.cpu_deadline, Duration::from_millis(200));
        assert!(!config.plugins.allow_loopback);
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "listen: 0.0.0.0:9000\ndata_dir: /var/lib/switchyard\npublic_url: https://hub.example.com/\n\
             api:\n  idempotency_window: 1h\ndelivery:\n  concurrency: 8\n  lease: 0s\n\
             plugins:\n  allow_loopback: false\n  memory_limit_bytes: 1000000\n",
        );
        let config = Config::load(
            Some(&path),
            env(&[
                ("SWITCHYARD_LISTEN", "127.0.0.1:7000"),
                ("SWITCHYARD_PLUGINS__ALLOW_LOOPBACK", "true"),
                ("SWITCHYARD_API__MAX_BODY_BYTES", "2048"),
                ("SWITCHYARD_CONFIG", "ignored.yaml"),
                ("SWITCHYARD_TEST_PLUGINS", "whatever"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(config.data_dir, Path::new("/var/lib/switchyard"));
        assert_eq!(config.public_url(), "https://hub.example.com");
        assert_eq!(
            config.store_url(),
            "sqlite:///var/lib/switchyard/switchyard.db"
        );
        assert_eq!(config.api.idempotency_window, Duration::from_secs(3600));
        assert_eq!(config.api.max_body_bytes, 2048);
        assert_eq!(config.delivery.concurrency, 8);
        assert_eq!(config.delivery.lease, Duration::ZERO);
        assert!(config.plugins.allow_loopback);

        let runtime = config.runtime_config();
        assert!(runtime.fetch.allow_loopback);
        assert_eq!(runtime.memory_limit_bytes, 1_000_000);
        assert_eq!(
            runtime.cache_dir.as_deref(),
            Some(Path::new("/var/lib/switchyard/cache"))
        );
    }

    #[test]
    fn frame_ancestors_must_be_origins() {
        let config = Config::from_yaml(
            "portal:\n  frame_ancestors: [https://app.example.com, 'https://*.example.org:8443/']\n",
            "switchyard.yaml",
        )
        .unwrap();
        assert_eq!(config.portal.frame_ancestors.len(), 2);
        for wrong in [
            "'*'",
            "\"https://a.example.com; script-src *\"",
            "app.example.com",
        ] {
            let yaml = format!("portal:\n  frame_ancestors: [{wrong}]\n");
            let problems = invalid(Config::from_yaml(&yaml, "switchyard.yaml").unwrap_err());
            assert!(
                problems[0].starts_with("switchyard.yaml:2:")
                    && problems[0].contains("not an origin"),
                "{wrong}: {problems:?}"
            );
        }
    }

    #[test]
    fn a_named_file_must_exist() {
        let error =
            Config::load(Some(Path::new("/nonexistent/switchyard.yaml")), no_env()).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }), "{error}");
        assert!(error.to_string().contains("/nonexistent/switchyard.yaml"));
    }

    #[test]
    fn file_errors_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "# comment\nlisten: 127.0.0.1:8080\nlisen: oops\ndelivery:\n  lease: 5 parsecs\n  concurency: 3\n",
        );
        let problems = invalid(Config::load(Some(&path), no_env()).unwrap_err());
        let origin = path.display().to_string();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].starts_with(&format!(
                "{origin}:3:1: unknown field `lisen`, expected one of `listen`, `public_url`"
            )),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].starts_with(&format!("{origin}:5:10: invalid duration \"5 parsecs\"")),
            "{}",
            problems[1]
        );
        assert!(
            problems[2].starts_with(&format!("{origin}:6:3: unknown field `concurency`")),
            "{}",
            problems[2]
        );
    }

    #[test]
    fn brokers_and_roles_are_chosen_each_on_its_own() {
        let config = Config::from_yaml("", "switchyard.yaml").unwrap();
        assert_eq!(config.roles, Roles::ALL);
        assert_eq!(config.stream_backend(), StreamBackend::Embedded);
        assert_eq!(config.queue_backend(), QueueBackend::Embedded);

        let config = Config::from_yaml(
            "roles: [api, worker]\nstream:\n  url: kafka://k1:9092,k2:9092\n  topic: events\n\
             queues:\n  url: amqp://user:pw@rabbit:5672/%2f\n  type: classic\n  prefetch: 10\n\
             redis:\n  url: redis://cache:6379\n",
            "switchyard.yaml",
        )
        .unwrap();
        assert_eq!(
            config.roles,
            Roles {
                api: true,
                router: false,
                worker: true
            }
        );
        let StreamBackend::Kafka(kafka) = config.stream_backend() else {
            panic!("Kafka was chosen");
        };
        assert_eq!(kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(kafka.topic, "events");
        let QueueBackend::Rabbit(rabbit) = config.queue_backend() else {
            panic!("RabbitMQ was chosen");
        };
        assert_eq!(rabbit.queue_type, QueueType::Classic);
        assert_eq!(rabbit.prefetch, 10);

        // RabbitMQ alone, with the embedded stream and the SQLite store.
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "");
        let config = Config::load(
            Some(&path),
            env(&[
                ("SWITCHYARD_QUEUES__URL", "amqp://127.0.0.1:5672/%2f"),
                ("SWITCHYARD_ROLES", "router,worker"),
            ]),
        )
        .unwrap();
        assert_eq!(config.stream_backend(), StreamBackend::Embedded);
        assert!(matches!(config.queue_backend(), QueueBackend::Rabbit(_)));
        assert_eq!(config.roles.to_string(), "router,worker");
    }

    #[test]
    fn broker_mistakes_are_refused_with_the_reason() {
        let problems = invalid(
            Config::from_yaml(
                "roles: [api, cook]\nstream:\n  url: kafka:/k1\nqueues:\n  type: mirrored\n\
                 redis:\n  url: localhost:6379\n",
                "switchyard.yaml",
            )
            .unwrap_err(),
        );
        assert_eq!(
            problems,
            [
                "switchyard.yaml:1:8: unknown role `cook`; the roles are api, router and worker",
                "switchyard.yaml:3:8: expected `embedded` or kafka://host:port[,host:port], found `kafka:/k1`",
                "switchyard.yaml:5:9: expected quorum or classic, found `mirrored`",
                "switchyard.yaml:7:8: expected a redis:// URL, found `localhost:6379`",
            ]
        );
        let problems = invalid(
            Config::from_yaml("stream:\n  url: kafka://k1:9092\n", "switchyard.yaml").unwrap_err(),
        );
        assert!(
            problems[0].contains("stream.url names Kafka, so set redis.url too"),
            "{problems:?}"
        );
    }

    #[test]
    fn type_errors_in_the_file() {
        let problems = invalid(
            Config::from_yaml(
                "listen: nope\napi: 3\nplugins:\n  allow_loopback: maybe\ndelivery:\n  concurrency: 0\n",
                "switchyard.yaml",
            )
            .unwrap_err(),
        );
        assert_eq!(
            problems,
            [
                "switchyard.yaml:1:9: invalid socket address syntax (expected an address like 127.0.0.1:8080)",
                "switchyard.yaml:2:6: the `api` section must be a mapping, found a number",
                "switchyard.yaml:4:19: expected true or false, found \"maybe\"",
                "switchyard.yaml:6:16: must be at least 1, found 0",
            ]
        );
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "");
        let problems = invalid(
            Config::load(
                Some(&path),
                env(&[
                    ("SWITCHYARD_LISTEN", "nope"),
                    ("SWITCHYARD_LISEN", "127.0.0.1:1"),
                    ("SWITCHYARD_DELIVERY__LEASE", "soon"),
                ]),
            )
            .unwrap_err(),
        );
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].starts_with("SWITCHYARD_DELIVERY__LEASE=soon: invalid duration"));
        assert!(
            problems[1].starts_with(
                "SWITCHYARD_LISEN: unknown setting `lisen`; known: listen, public_url, data_dir"
            ),
            "{}",
            problems[1]
        );
        assert!(problems[1].contains("plugins.allow_loopback"));
        assert_eq!(
            problems[2],
            "SWITCHYARD_LISTEN=nope: invalid socket address syntax (expected an address like 127.0.0.1:8080)"
        );
    }

    #[test]
    fn the_master_key_file_defaults_to_the_data_dir_and_the_key_is_no_setting() {
        let config = Config::from_yaml("data_dir: /srv/switchyard\n", "switchyard.yaml").unwrap();
        assert_eq!(
            config.master_key_path(),
            Path::new("/srv/switchyard/master.key")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "master_key_file: /etc/switchyard/master.key\n");
        let config = Config::load(
            Some(&path),
            env(&[
                ("SWITCHYARD_MASTER_KEY_FILE", "/run/secrets/master.key"),
                // The key itself is read by the vault, never kept in the config.
                ("SWITCHYARD_MASTER_KEY", "not-a-setting"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.master_key_path(),
            Path::new("/run/secrets/master.key")
        );
    }

    #[test]
    fn store_retention_is_a_duration_and_keeps_everything_by_default() {
        assert_eq!(Config::default().store.retention, None);
        let config = Config::from_yaml("store:\n  retention: 30d\n", "switchyard.yaml").unwrap();
        assert_eq!(
            config.store.retention,
            Some(Duration::from_secs(30 * 24 * 3600))
        );
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "");
        let config = Config::load(
            Some(&path),
            env(&[
                ("SWITCHYARD_STORE__RETENTION", "12h"),
                ("SWITCHYARD_TEST_POSTGRES", "postgres://not-a-setting"),
            ]),
        )
        .unwrap();
        assert_eq!(config.store.retention, Some(Duration::from_secs(12 * 3600)));
        let problems = invalid(
            Config::from_yaml("store:\n  retention: forever\n", "switchyard.yaml").unwrap_err(),
        );
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].starts_with("switchyard.yaml:2:14: invalid duration"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn empty_sections_and_null_optionals_are_fine() {
        let config =
            Config::from_yaml("api:\nplugins: {}\npublic_url:\n", "switchyard.yaml").unwrap();
        assert_eq!(config, Config::default());
    }
}
