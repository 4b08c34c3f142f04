//! The plugin runtime: loads adapter, channel and transform components, checks them
//! against the contract, and calls them in a sandbox.
//!
//! Every call gets a fresh [`wasmtime::Store`], so nothing leaks from one notification to
//! the next and a plugin that traps cannot poison later calls. Pre-instantiation and the
//! pooling allocator make a fresh instance cost microseconds. Every call runs under
//!
//! - a memory cap (the pool's slot size and the store's limiter),
//! - a CPU deadline, counted in epoch ticks of guest execution, and
//! - a wall-clock timeout that also covers time spent waiting on `fetch`.
//!
//! A trap or a timeout fails that one call with a [`CallError`]; the host keeps serving.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use switchyard::runtime::{Grants, Runtime, RuntimeConfig};
//!
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let log = runtime.load_builtin("log").await?;
//! let grants = Arc::new(Grants::default());
//! # let delivery: switchyard::runtime::Delivery = todo!();
//! let outcome = log.deliver(&grants, delivery).await?;
//! # Ok(()) }
//! ```

mod bindings;
mod builtin;
mod fetch;
mod host_api;
mod load;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use bindings::types::{
    Delivery, Draft, Failure, FetchError, HttpRequest, HttpResponse, Level, Notification, Outcome,
    PluginInfo, Receipt, Rejection, Request, RetryHint, TransformContext, TransformError,
    Transformed, Transport,
};
pub use builtin::{BUILTIN_PLUGINS, world as builtin_world};
pub use fetch::{FetchPolicy, LOCAL_SUFFIX, LocalHost};
pub use load::{CONTRACT_VERSION, LEGACY_CONTRACT_VERSION, LoadError, Manifest, World};

use bindings::adapter::AdapterPre;
use bindings::channel::ChannelPre;
use bindings::transform::TransformPre;
use bindings::v0_1;
use fetch::Outbound;

/// The default of [`RuntimeConfig::keep_resident_bytes`]: see `cargo bench --bench
/// plugin_calls` (`python_trivial_channel` at 4, 16 and 64 MiB: the
/// same within 1% on 2026-12-06; JavaScript 10% faster at 64 MiB than at 4).
pub const KEEP_RESIDENT_BYTES: usize = 4 * 1024 * 1024;

/// How often the engine's epoch advances; the CPU deadline is counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Limits and switches for the runtime.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// The most linear memory one call may use.
    pub memory_limit_bytes: usize,
    /// How much of a pool slot's memory stays resident between calls, reset by restoring
    /// the pages a call dirtied rather than handing them back to the kernel. More makes
    /// interpreter-sized plugins faster and costs resident memory per warm slot.
    pub keep_resident_bytes: usize,
    /// The most CPU time one call may use, rounded up to whole epoch ticks (1 ms).
    pub cpu_deadline: Duration,
    /// The most wall-clock time one call may take, waiting on `fetch` included.
    pub call_timeout: Duration,
    /// The largest component accepted, per world.
    pub max_component_bytes: SizeCaps,
    /// How many calls may run at once; a call beyond that fails with [`CallError::Busy`].
    pub max_concurrent_calls: u32,
    /// The rules for outbound HTTP.
    pub fetch: FetchPolicy,
    /// Where compiled components are cached between runs; `None` compiles every time.
    pub cache_dir: Option<std::path::PathBuf>,
    /// The clock behind the `now` import; tests freeze it.
    pub clock: Clock,
    /// Host names the hub answers itself (see [`LocalHost`]).
    pub local_hosts: Vec<Arc<dyn LocalHost>>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            memory_limit_bytes: 64 * 1024 * 1024,
            keep_resident_bytes: KEEP_RESIDENT_BYTES,
            cpu_deadline: Duration::from_millis(200),
            call_timeout: Duration::from_secs(30),
            max_component_bytes: SizeCaps::default(),
            max_concurrent_calls: 1000,
            fetch: FetchPolicy::default(),
            cache_dir: None,
            clock: Clock::System,
            local_hosts: Vec::new(),
        }
    }
}

/// The largest component the runtime loads, per world.
///
/// Components in Python or JavaScript carry their interpreter: a trivial Python channel
/// built with componentize-py is about 18 MB, so the defaults (64 MiB) leave room for a
/// real one with its libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeCaps {
    /// For adapters.
    pub adapter: usize,
    /// For channels.
    pub channel: usize,
    /// For transforms.
    pub transform: usize,
}

impl Default for SizeCaps {
    fn default() -> Self {
        SizeCaps {
            adapter: 64 * 1024 * 1024,
            channel: 64 * 1024 * 1024,
            transform: 64 * 1024 * 1024,
        }
    }
}

impl SizeCaps {
    /// The cap for `world`.
    pub fn get(&self, world: World) -> usize {
        match world {
            World::Adapter => self.adapter,
            World::Channel => self.channel,
            World::Transform => self.transform,
        }
    }

    /// The largest cap: what a file of unknown world may have before it is compiled.
    pub fn largest(&self) -> usize {
        self.adapter.max(self.channel).max(self.transform)
    }
}

/// The longest text from a plugin that the host keeps: a reason, a detail, a log line.
pub const MAX_PLUGIN_TEXT: usize = 4096;

/// What the host keeps of a text a plugin wrote (a reason, a detail, a log line): every
/// secret value the call was granted replaced by `***`, so a plugin that echoes one shows
/// it to no reader of the records or the log, and the whole cut to [`MAX_PLUGIN_TEXT`]
/// bytes, so a plugin cannot fill the store with one attempt.
/// Takes the text by value, so the common case (no secret in it, short) copies nothing.
pub fn scrub<'a>(mut text: String, secrets: impl IntoIterator<Item = &'a str>) -> String {
    for secret in secrets {
        if !secret.is_empty() && text.contains(secret) {
            text = text.replace(secret, "***");
        }
    }
    if text.len() > MAX_PLUGIN_TEXT {
        let mut end = MAX_PLUGIN_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// The time source behind the `now` import.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The system clock.
    System,
    /// A fixed time, for tests and replays.
    Fixed(SystemTime),
}

impl Clock {
    fn now_ms(&self) -> u64 {
        let now = match self {
            Clock::System => SystemTime::now(),
            Clock::Fixed(at) => *at,
        };
        now.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// What the routes file grants one configured use of a plugin.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// The plugin's `config`, handed over as JSON by the `config` import.
    pub config: serde_json::Value,
    /// The decrypted secrets the plugin may read by name.
    pub secrets: HashMap<String, String>,
    /// The hosts `fetch` may reach: exact names or `*.example.com`.
    pub allowed_hosts: Vec<String>,
}

/// Why one call into a plugin failed. The plugin is still usable afterwards.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The plugin trapped: a panic, an out-of-bounds access, a stack overflow, or memory
    /// exhausted under the cap.
    #[error("plugin {plugin} trapped: {detail}")]
    Trap {
        /// The plugin's name.
        plugin: String,
        /// What the trap said.
        detail: String,
    },
    /// The plugin used up its CPU deadline.
    #[error("plugin {plugin} ran past its CPU deadline of {deadline:?}")]
    CpuDeadline {
        /// The plugin's name.
        plugin: String,
        /// The deadline it exceeded.
        deadline: Duration,
    },
    /// The call took longer than the wall-clock timeout.
    #[error("plugin {plugin} did not answer within {timeout:?}")]
    Timeout {
        /// The plugin's name.
        plugin: String,
        /// The timeout it exceeded.
        timeout: Duration,
    },
    /// Every instance slot is in use; try again shortly.
    #[error("plugin {plugin} could not start: {detail}")]
    Busy {
        /// The plugin's name.
        plugin: String,
        /// What the allocator said.
        detail: String,
    },
    /// The plugin was asked to do what its world does not export.
    #[error("plugin {plugin} is a {actual}, not a {expected}")]
    WrongWorld {
        /// The plugin's name.
        plugin: String,
        /// The world the call needs.
        expected: World,
        /// The world the plugin implements.
        actual: World,
    },
}

/// The runtime could not start: the engine's configuration or the HTTP client was refused.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the plugin runtime: {0}")]
pub struct StartError(String);

/// The plugin runtime: one engine, one linker, one outbound HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<State>,
    outbound: Outbound,
    config: RuntimeConfig,
}

impl Runtime {
    /// Builds the engine and starts the epoch ticker that enforces CPU deadlines.
    pub fn new(config: RuntimeConfig) -> Result<Self, StartError> {
        Self::start(config).map_err(|e| StartError(format!("{e:#}")))
    }

    fn start(config: RuntimeConfig) -> Result<Self, wasmtime::Error> {
        let engine = Engine::new(&engine_config(&config)?)?;
        let mut linker = Linker::new(&engine);
        // WASI is linked because Rust's std imports it, but the context each call gets
        // has no files, no sockets, no environment and a frozen clock: see `State::new`.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::host::add_to_linker::<_, wasmtime::component::HasSelf<State>>(
            &mut linker,
            |state| state,
        )?;
        bindings::types::add_to_linker::<_, wasmtime::component::HasSelf<State>>(
            &mut linker,
            |state| state,
        )?;
        // Contract 0.1.0: the same host functions under the old name, and its `types`
        // interface, which holds only types and so needs only to exist.
        v0_1::host::add_to_linker::<_, wasmtime::component::HasSelf<State>>(
            &mut linker,
            |state| state,
        )?;
        linker.instance(&format!(
            "switchyard:plugin/types@{LEGACY_CONTRACT_VERSION}"
        ))?;
        let outbound = Outbound::new(config.fetch.clone(), config.local_hosts.clone())
            .map_err(|e| wasmtime::Error::msg(format!("cannot build the HTTP client: {e}")))?;

        // The ticker holds only a weak reference, so it stops when the runtime is dropped.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("switchyard-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| wasmtime::Error::msg(format!("cannot start the epoch ticker: {e}")))?;

        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                outbound,
                config,
            }),
        })
    }

    /// The runtime's limits.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Loads a component from bytes under `name`, after checking that it implements one of
    /// the worlds at a contract version this host speaks, fits its world's size cap, and
    /// imports nothing the host lacks.
    pub async fn load(&self, name: &str, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let caps = self.inner.config.max_component_bytes;
        load::check_header(bytes, caps.largest())?;
        let component = self.compile(bytes).await?;
        let manifest = load::manifest(&self.inner.engine, &component, bytes.len())?;
        if bytes.len() > caps.get(manifest.world) {
            return Err(LoadError::TooLargeForWorld {
                size: bytes.len(),
                max: caps.get(manifest.world),
                world: manifest.world,
            });
        }
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Imports(format!("{e:#}")))?;
        let exports = |e: wasmtime::Error| LoadError::Exports(format!("{e:#}"));
        let legacy = manifest.contract_version == LEGACY_CONTRACT_VERSION;
        let world = match (manifest.world, legacy) {
            (World::Adapter, false) => Typed::Adapter(AdapterPre::new(pre).map_err(exports)?),
            (World::Channel, false) => Typed::Channel(ChannelPre::new(pre).map_err(exports)?),
            (World::Transform, _) => Typed::Transform(TransformPre::new(pre).map_err(exports)?),
            (World::Adapter, true) => {
                Typed::AdapterV1(v0_1::adapter::AdapterPre::new(pre).map_err(exports)?)
            }
            (World::Channel, true) => {
                Typed::ChannelV1(v0_1::channel::ChannelPre::new(pre).map_err(exports)?)
            }
        };
        let mut plugin = Plugin {
            inner: Arc::new(PluginInner {
                name: name.to_string(),
                manifest,
                info: PluginInfo {
                    name: name.to_string(),
                    version: String::new(),
                    description: String::new(),
                },
                world,
                runtime: self.clone(),
            }),
        };
        let info = plugin
            .call_info()
            .await
            .map_err(|e| LoadError::Info(e.to_string()))?;
        Arc::get_mut(&mut plugin.inner)
            .expect("the plugin is not shared yet")
            .info = info;
        Ok(plugin)
    }

    /// Loads a built-in plugin by name, such as `webhook` or `rest-json`.
    pub async fn load_builtin(&self, name: &str) -> Result<Plugin, LoadError> {
        let bytes = builtin::get(name).ok_or_else(|| LoadError::UnknownBuiltin {
            name: name.to_string(),
            known: BUILTIN_PLUGINS
                .iter()
                .map(|(n, _, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        self.load(name, bytes).await
    }

    /// Compiles a component, or takes its compiled code from the cache: wasmtime keys the
    /// cache by a hash of the bytes and of the engine's settings, so a restart or a second
    /// process loads a known component without compiling it again (an interpreter-sized
    /// component takes tens of seconds to compile on two cores). Compiling runs on a
    /// blocking thread, so it never stalls the requests and deliveries on this one.
    async fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        let engine = self.inner.engine.clone();
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
            .await
            .map_err(|e| LoadError::Compile(format!("the compiler stopped: {e}")))?
            .map_err(|e| LoadError::Compile(format!("{e:#}")))
    }

    fn store(&self, plugin: &PluginInner, grants: Arc<Grants>) -> Store<State> {
        let inner = &self.inner;
        let mut store = Store::new(
            &inner.engine,
            State::new(plugin.name.clone(), grants, self.clone()),
        );
        store.limiter(|state| &mut state.limits);
        // Each expiry of the deadline is one tick of guest execution; yielding there keeps
        // a busy plugin from holding an executor thread, and the count enforces the budget.
        let budget = inner
            .config
            .cpu_deadline
            .as_micros()
            .div_ceil(EPOCH_TICK.as_micros());
        let budget = budget.max(1) as u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            state.cpu_ticks += 1;
            if state.cpu_ticks > budget {
                state.cpu_exhausted = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }
}

fn engine_config(config: &RuntimeConfig) -> Result<wasmtime::Config, wasmtime::Error> {
    let mut engine = wasmtime::Config::new();
    engine.wasm_component_model(true);
    engine.epoch_interruption(true);
    engine.max_wasm_stack(1024 * 1024);
    engine.async_stack_size(2 * 1024 * 1024);
    // Map every memory image copy-on-write, however sparse, rather than copying a sparse
    // one segment by segment into each fresh instance: a trivial JavaScript channel's call
    // took 10% less (`cargo bench --bench plugin_calls`, 2026-12-06).
    engine.memory_guaranteed_dense_image_size(config.memory_limit_bytes as u64);

    let mut pool = wasmtime::PoolingAllocationConfig::default();
    let slots = config.max_concurrent_calls;
    pool.total_component_instances(slots);
    pool.total_core_instances(slots * 4);
    pool.total_memories(slots);
    pool.total_tables(slots * 4);
    pool.total_stacks(slots);
    pool.max_memories_per_component(2);
    pool.max_core_instances_per_component(16);
    pool.max_tables_per_component(8);
    pool.max_memory_size(config.memory_limit_bytes);
    // Reset a returned slot by restoring only the pages the call dirtied (found with
    // Linux's PAGEMAP_SCAN) and keep them resident, instead of handing memory back to the
    // kernel and page-faulting it in again on the next call: that round trip was most of
    // the cost of a small call. Where the ioctl is missing this falls back to madvise.
    // An interpreter's heap (Python's, JavaScript's) lies megabytes into its memory: with
    // only the first few kept, every call of a trivial Python channel faulted its heap in
    // again.
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    pool.linear_memory_keep_resident(config.keep_resident_bytes);
    pool.table_keep_resident(1024 * 1024);
    engine.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));

    if let Some(dir) = &config.cache_dir {
        let mut cache = wasmtime::CacheConfig::new();
        cache.with_directory(dir);
        engine.cache(Some(wasmtime::Cache::new(cache)?));
    }
    Ok(engine)
}

/// Calls `$function` of export `$interface` of a fresh instance of `$pre` in
/// [`Plugin::run`]. A macro because each world and contract version has its own generated
/// types, so no one function can take them all.
macro_rules! call {
    ($plugin:expr, $grants:expr, $pre:expr, $interface:ident, $function:ident($($arg:expr),*)) => {
        $plugin
            .run($grants.clone(), async |store| {
                let instance = $pre.instantiate_async(&mut *store).await?;
                instance.$interface().$function(&mut *store $(, $arg)*).await
            })
            .await
    };
}

/// A loaded, validated plugin. Cheap to clone; every call gets a fresh instance.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    name: String,
    manifest: Manifest,
    info: PluginInfo,
    world: Typed,
    runtime: Runtime,
}

/// The pre-instantiated component, typed by its world and contract version.
enum Typed {
    Adapter(AdapterPre<State>),
    Channel(ChannelPre<State>),
    Transform(TransformPre<State>),
    AdapterV1(v0_1::adapter::AdapterPre<State>),
    ChannelV1(v0_1::channel::ChannelPre<State>),
}

impl Plugin {
    /// The name it was loaded under.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Adapter, channel or transform.
    pub fn world(&self) -> World {
        self.inner.manifest.world
    }

    /// What the component declares: world, contract version, imports.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// What the plugin says about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.inner.info
    }

    /// Hands one inbound request to an adapter.
    pub async fn handle(
        &self,
        grants: &Arc<Grants>,
        request: Request,
    ) -> Result<Result<Vec<Draft>, Rejection>, CallError> {
        match &self.inner.world {
            Typed::Adapter(pre) => call!(
                self,
                grants,
                pre,
                switchyard_plugin_inbound,
                call_handle(&request)
            ),
            Typed::AdapterV1(pre) => call!(
                self,
                grants,
                pre,
                switchyard_plugin_inbound,
                call_handle(&request)
            ),
            _ => Err(self.wrong_world(World::Adapter)),
        }
    }

    /// Makes one delivery attempt through a channel.
    pub async fn deliver(
        &self,
        grants: &Arc<Grants>,
        delivery: Delivery,
    ) -> Result<Outcome, CallError> {
        match &self.inner.world {
            Typed::Channel(pre) => call!(
                self,
                grants,
                pre,
                switchyard_plugin_outbound,
                call_deliver(&delivery)
            ),
            Typed::ChannelV1(pre) => call!(
                self,
                grants,
                pre,
                switchyard_plugin_outbound,
                call_deliver(&delivery)
            ),
            _ => Err(self.wrong_world(World::Channel)),
        }
    }

    /// Runs a transform on one notification on its way to a channel.
    pub async fn transform(
        &self,
        grants: &Arc<Grants>,
        notification: Notification,
        context: TransformContext,
    ) -> Result<Result<Transformed, TransformError>, CallError> {
        match &self.inner.world {
            Typed::Transform(pre) => call!(
                self,
                grants,
                pre,
                switchyard_plugin_transformer,
                call_transform(&notification, &context)
            ),
            _ => Err(self.wrong_world(World::Transform)),
        }
    }

    async fn call_info(&self) -> Result<PluginInfo, CallError> {
        let grants = &Arc::new(Grants::default());
        match &self.inner.world {
            Typed::Adapter(pre) => call!(self, grants, pre, switchyard_plugin_inbound, call_info()),
            Typed::Channel(pre) => {
                call!(self, grants, pre, switchyard_plugin_outbound, call_info())
            }
            Typed::Transform(pre) => call!(
                self,
                grants,
                pre,
                switchyard_plugin_transformer,
                call_info()
            ),
            Typed::AdapterV1(pre) => {
                call!(self, grants, pre, switchyard_plugin_inbound, call_info())
            }
            Typed::ChannelV1(pre) => {
                call!(self, grants, pre, switchyard_plugin_outbound, call_info())
            }
        }
    }

    /// Runs `call` in a fresh store under the wall-clock timeout, and turns whatever went
    /// wrong into a [`CallError`] that names the plugin.
    async fn run<R>(
        &self,
        grants: Arc<Grants>,
        call: impl AsyncFnOnce(&mut Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let runtime = &self.inner.runtime;
        let config = &runtime.inner.config;
        let mut store = runtime.store(&self.inner, grants);
        let result = tokio::time::timeout(config.call_timeout, call(&mut store)).await;
        let plugin = self.inner.name.clone();
        match result {
            Err(_) => Err(CallError::Timeout {
                plugin,
                timeout: config.call_timeout,
            }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) if store.data().cpu_exhausted => Err(CallError::CpuDeadline {
                plugin,
                deadline: config.cpu_deadline,
            }),
            Ok(Err(error)) => match error.downcast_ref::<wasmtime::Trap>() {
                // The trap's own words ("call stack exhausted"); the wasm backtrace that
                // the error also carries means nothing to whoever reads the log.
                Some(trap) => Err(CallError::Trap {
                    plugin,
                    detail: trap.to_string(),
                }),
                None => {
                    let detail = format!("{:#}", error.root_cause());
                    if error
                        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                        .is_some()
                    {
                        Err(CallError::Busy { plugin, detail })
                    } else {
                        Err(CallError::Trap { plugin, detail })
                    }
                }
            },
        }
    }

    fn wrong_world(&self, expected: World) -> CallError {
        CallError::WrongWorld {
            plugin: self.inner.name.clone(),
            expected,
            actual: self.world(),
        }
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.name)
            .field("world", &self.world())
            .field("info", &self.inner.info)
            .finish()
    }
}

/// What one call's store holds.
struct State {
    plugin: String,
    grants: Arc<Grants>,
    runtime: Runtime,
    limits: StoreLimits,
    wasi: WasiCtx,
    table: ResourceTable,
    /// Epoch ticks of guest execution so far, against the CPU deadline.
    cpu_ticks: u64,
    /// Set when the CPU deadline stopped the call, so the trap is reported as such.
    cpu_exhausted: bool,
}

impl State {
    fn new(plugin: String, grants: Arc<Grants>, runtime: Runtime) -> Self {
        let limit = runtime.inner.config.memory_limit_bytes;
        let wasi = WasiCtx::builder()
            // Time comes from the `now` import only, so tests can freeze it and a plugin
            // cannot use the clock as a side channel.
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        State {
            plugin,
            grants,
            runtime,
            limits: StoreLimitsBuilder::new()
                .memory_size(limit)
                .trap_on_grow_failure(false)
                .build(),
            wasi,
            table: ResourceTable::new(),
            cpu_ticks: 0,
            cpu_exhausted: false,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A clock that always reads zero: WASI's clocks are there for Rust's std, not for time.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}
