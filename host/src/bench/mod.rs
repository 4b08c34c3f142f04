//! `switchyard bench`: a built-in load generator that measures the whole hub, end to end.
//!
//! # What runs
//!
//! - The **hub**: `switchyard serve` from this same binary, as a child process in a fresh
//!   temporary data dir (SQLite store, `routes.yaml`, log), on a free loopback port; see
//!   [`hub`]. Its routes send every notification to one `webhook` channel.
//! - The **receiver**: a small HTTP server in this process that the webhook channel
//!   delivers to; see [`receiver`].
//! - The **senders**: `--connections` tasks, each POSTing one batch of `--batch`
//!   notifications at a time to `/api/v1/notifications/batch`, the real front door.
//!
//! So every notification takes the full path: HTTP, the `rest-json` adapter plugin, the
//! durable accept, the router, the delivery queue, the `webhook` channel plugin, the
//! hub's outbound HTTP client, and a signed request to the receiver.
//!
//! # What is measured
//!
//! Notification `i` carries `{"seq": i, "pad": "..."}` as its payload. A sender notes
//! the time just before it POSTs a batch; the receiver looks the sequence number up when
//! the delivery arrives. From that:
//!
//! - **accepted/s**: N ÷ (first send → last `202`). What the front door and the durable
//!   accept sustain.
//! - **delivered/s**: N ÷ (first send → last first delivery). The end-to-end throughput,
//!   which is what the targets are about.
//! - **end-to-end latency** p50/p90/p99/max: batch POSTed → delivery received, for each
//!   notification's first delivery. Under a saturating load this is mostly queueing: it
//!   says how far delivery runs behind accept, not how fast an idle hub is.
//! - **duplicates**: deliveries after the first (allowed by at-least-once; normally 0).
//! - **signatures**: one delivery in [`receiver::SIGNATURE_SAMPLE`] has its Standard
//!   Webhooks signature checked; any failure fails the run.
//! - **CPU** of the hub and of the bench over the run, from `/proc`: both share the
//!   machine's cores, so this says whose work the time went to.
//! - **peak RSS** (VmHWM) of the hub, read just before it is stopped, and of the bench.
//!
//! # Tenants
//!
//! With `--tenants N` every batch is sent for one tenant, picked at random, through
//! `/api/v1/tenants/{tenant}/notifications/batch`, and goes to that tenant's matching
//! endpoints rather than to the YAML channel. The tenants and their endpoints
//! (`--endpoints-per-tenant`, in the shape of [`tenants::SHAPE`]) are written into the
//! hub's store before it starts; see [`tenants`]. The report then also says when the
//! router had routed everything (its stream position, read from the store).
//!
//! A batch answered `503`, `429`, `408`, `502` or `504`, or lost to a connection error, is
//! sent again after a back-off with the same `Idempotency-Key`, so a retry never creates
//! a second notification; retries are counted.

mod hub;
pub mod receiver;
pub mod tenants;
pub mod ws;

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngCore as _;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use tokio::task::JoinSet;

use crate::routing::endpoints;
use crate::store::Store;
use hub::HubProcess;
use receiver::{Ledger, Receiver, Tally};

/// The target on a 2-core machine for the embedded default: a million delivered within a
/// minute.
const EMBEDDED_TARGET_PER_SECOND: u32 = 16_000;
/// The target with Kafka or RabbitMQ on the same 2 cores, which then run the brokers too.
const BROKERS_TARGET_PER_SECOND: u32 = 10_000;

/// The delivery rate this run is held to: the brokers' when the hub's environment puts the
/// stream or the queues on one.
fn target_per_second(hub_env: &[(String, String)]) -> u32 {
    let on_brokers = hub_env.iter().any(|(name, value)| {
        matches!(
            name.as_str(),
            "SWITCHYARD_STREAM__URL" | "SWITCHYARD_QUEUES__URL"
        ) && value.trim() != "embedded"
    });
    if on_brokers {
        BROKERS_TARGET_PER_SECOND
    } else {
        EMBEDDED_TARGET_PER_SECOND
    }
}

/// How often the progress display and the hub's health are checked.
const TICK: Duration = Duration::from_millis(200);

/// How often a plain status line is printed when stderr is not a terminal (CI, logs).
const PLAIN_STATUS_EVERY: Duration = Duration::from_secs(5);

/// How often the hub is asked for dead letters: one means the run cannot complete.
const DEAD_LETTER_CHECK_EVERY: Duration = Duration::from_secs(5);

/// How many times one batch is sent before the run gives up.
const MAX_ATTEMPTS: u32 = 20;

/// Runs a load test of the whole pipeline against a hub started for the purpose.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// How many notifications to send.
    #[arg(long, short = 'n', default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Notifications per batch request (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub batch: u64,
    /// Batch requests in flight at once, each on its own keep-alive connection.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub connections: u32,
    /// Roughly how many bytes of JSON each notification's payload is (padded).
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// Deliveries in flight to the receiver: the webhook channel's `concurrency`. The
    /// default is the hub's own default; the receiver answers within a millisecond, so more
    /// calls in flight add connections and plugin instances but no throughput.
    #[arg(long, default_value_t = crate::config::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub delivery_concurrency: u32,
    /// Give up if not everything is delivered this long after the first send.
    #[arg(long, default_value = "600s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Keep the temporary data dir (store, routes, hub log) and print where it is.
    #[arg(long)]
    pub keep: bool,
    /// The hub's store (`postgres://...`, or `sqlite://PATH`); default: a fresh SQLite
    /// file in the temporary data dir. Give it an empty database: the bench counts on
    /// nothing else being in it.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Send every batch for one of this many tenants (picked at random per batch), whose
    /// endpoints are seeded into the hub's store before it starts (see
    /// `--endpoints-per-tenant`). Without it, notifications go to the YAML channel only.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub tenants: Option<u32>,
    /// Endpoints per tenant with `--tenants`, following the bench's shape of ten (kind
    /// globs and attribute filters; two of each ten take the bench's notifications).
    #[arg(long, value_name = "M", default_value_t = 10, requires = "tenants",
          value_parser = clap::value_parser!(u32).range(2..=endpoints::MAX_ENDPOINTS_PER_TENANT as i64))]
    pub endpoints_per_tenant: u32,
    /// With `--tenants`: while sending, change this many endpoints a second (a random
    /// one's description, written to the store as a portal on another process would), to
    /// see what tenants editing their endpoints cost the deliveries.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "tenants",
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub endpoint_edits_per_second: u32,
}

impl BenchArgs {
    /// Deliveries each notification makes.
    fn fanout(&self) -> u64 {
        match self.tenants {
            Some(_) => u64::from(tenants::fanout(self.endpoints_per_tenant)),
            None => 1,
        }
    }
}

/// Runs the bench and prints its report. Fails if not every notification was delivered
/// in time, if a signature did not verify, or if the hub failed.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("switchyard-bench-")
        .tempdir()
        .context("could not create a temporary directory")?;
    let result = bench(&args, dir.path()).await;
    // On failure the hub's log is the first thing to read, so the dir stays.
    if args.keep || result.is_err() {
        let path = dir.keep();
        eprintln!(
            "The bench's data dir (store, routes, hub.log) is kept in {}",
            path.display()
        );
    }
    result
}

async fn bench(args: &BenchArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let ledger = Arc::new(Ledger::with_fanout(args.count, args.fanout(), key.to_vec()));
    let receiver = Receiver::start(ledger.clone())
        .await
        .context("could not start the bench's receiver")?;
    let routes = routes_yaml(
        &receiver.url(),
        &BASE64.encode(key),
        args.delivery_concurrency,
        // With tenants, the YAML route takes none of the bench's notifications.
        if args.tenants.is_some() {
            "yaml.*"
        } else {
            "*"
        },
    );
    std::fs::write(dir.join("routes.yaml"), routes).context("could not write routes.yaml")?;

    let mut tenancy = None;
    if let Some(count) = args.tenants {
        let store_url = args
            .store
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.join("switchyard.db").display()));
        eprintln!(
            "Seeding {} tenants with {} endpoints each ...",
            thousands(u64::from(count)),
            args.endpoints_per_tenant
        );
        let (seeded, store) = tenants::seed(
            &store_url,
            &dir.join("master.key"),
            count,
            args.endpoints_per_tenant,
            &receiver.url(),
            &format!("whsec_{}", BASE64.encode(key)),
        )
        .await
        .context("could not seed the tenants and endpoints")?;
        eprintln!(
            "Seeded {} endpoints: rows in {:.1} s, secrets in {:.1} s",
            thousands(seeded.endpoints),
            seeded.rows.as_secs_f64(),
            seeded.secrets.as_secs_f64()
        );
        tenancy = Some((seeded, store));
    }

    let client = reqwest::Client::builder()
        // The hub is on loopback; a proxy from the environment must not be in the way.
        .no_proxy()
        .pool_max_idle_per_host(args.connections as usize)
        .timeout(Duration::from_secs(60))
        .build()?;
    eprintln!("Starting the hub in {} ...", dir.display());
    let started = Instant::now();
    let mut hub = HubProcess::start(dir, args.store.as_deref(), &client).await?;
    let hub_start = started.elapsed();
    let hub_ready_rss = hub::rss(hub.pid());

    let store = tenancy.as_ref().map(|(_, store)| store);
    let outcome = drive(args, &client, &mut hub, &ledger, store).await;
    let hub_peak_rss = hub::peak_rss(Some(hub.pid()));
    let log = hub.log.clone();
    let stopped = hub.stop().await;
    drop(receiver);
    let (seeded, store) = tenancy.unzip();
    if let Some(store) = store {
        store.close().await;
    }
    let outcome = outcome.with_context(|| format!("the hub's log is {}", log.display()))?;

    let report = Report {
        args,
        load: &outcome.load,
        tally: ledger.tally(),
        hub_cpu: outcome.hub_cpu,
        bench_cpu: outcome.bench_cpu,
        machine_busy: outcome.machine_busy,
        hub_threads: outcome.hub_threads,
        hub_peak_rss,
        bench_peak_rss: hub::peak_rss(None),
        timed_out: outcome.timed_out,
        dead_letters: outcome.dead_letters,
        routed_us: outcome.routed_us,
        seeded,
        hub_start,
        hub_ready_rss,
    };
    println!("{report}");
    stopped?;
    report.verdict()
}

/// What the load phase leaves for the report.
struct Outcome {
    load: Arc<Load>,
    /// When the router's stream position reached the last notification, in the ledger's
    /// µs (read only with `--tenants`).
    routed_us: Option<u64>,
    timed_out: bool,
    dead_letters: Option<String>,
    hub_cpu: Option<Duration>,
    bench_cpu: Option<Duration>,
    machine_busy: Option<Duration>,
    hub_threads: Vec<(String, usize, Duration)>,
}

/// The CPU each group of same-named threads used between two [`hub::thread_cpu`]
/// readings, most first: (name, threads, time). Threads that exited in between are
/// missing, so the sum can fall short of the process's total.
fn cpu_by_thread_name(
    before: &[(u32, String, Duration)],
    after: &[(u32, String, Duration)],
) -> Vec<(String, usize, Duration)> {
    let mut groups: std::collections::BTreeMap<&str, (usize, Duration)> = Default::default();
    for (tid, name, time) in after {
        let earlier = before
            .iter()
            .find(|(t, _, _)| t == tid)
            .map_or(Duration::ZERO, |(_, _, time)| *time);
        let group = groups.entry(name).or_default();
        group.0 += 1;
        group.1 += time.saturating_sub(earlier);
    }
    let mut groups: Vec<_> = groups
        .into_iter()
        .map(|(name, (threads, time))| (name.to_owned(), threads, time))
        .collect();
    groups.sort_by_key(|group| std::cmp::Reverse(group.2));
    groups
}

/// Sends everything, shows progress, and waits for the receiver to see everything (or the
/// timeout, or a failure).
async fn drive(
    args: &BenchArgs,
    client: &reqwest::Client,
    hub: &mut HubProcess,
    ledger: &Arc<Ledger>,
    store: Option<&Store>,
) -> anyhow::Result<Outcome> {
    let load = Arc::new(Load::new(args, client.clone(), hub, ledger.clone()));
    let hub_cpu_before = hub::cpu_time(Some(hub.pid()));
    let hub_threads_before = hub::thread_cpu(hub.pid());
    let machine_busy_before = hub::machine_busy();
    let bench_cpu_before = hub::cpu_time(None);

    let progress = Progress::new(&load, ledger, hub.pid());
    let mut senders = JoinSet::new();
    for _ in 0..args.connections {
        senders.spawn(load.clone().send_all());
    }
    let edits = Arc::new(AtomicU64::new(0));
    let editor = match (store, args.tenants, args.endpoint_edits_per_second) {
        (Some(store), Some(tenant_count), per_second) if per_second > 0 => Some(tokio::spawn(
            tenants::edit_endpoints(store.clone(), tenant_count, per_second, edits.clone()),
        )),
        _ => None,
    };

    let deadline = Instant::now() + args.timeout;
    let mut next_dead_letter_check = Instant::now() + DEAD_LETTER_CHECK_EVERY;
    let mut timed_out = false;
    let mut dead_letters = None;
    let mut routed_us = None;
    loop {
        tokio::time::sleep(TICK).await;
        progress.show(&load, ledger);
        // The embedded stream's positions are 1, 2, ... in a fresh store: the router has
        // routed everything once its position is the count.
        if let (Some(store), None) = (store, routed_us)
            && store
                .stream_position(crate::pipeline::router::CONSUMER)
                .await
                .is_ok_and(|position| position >= args.count as i64)
        {
            routed_us = Some(ledger.now_us());
        }
        while let Some(joined) = senders.try_join_next() {
            if let Err(error) = joined.context("a sender task panicked")? {
                progress.abandon();
                return Err(error);
            }
        }
        if ledger.delivered() >= ledger.expected() {
            break;
        }
        if let Err(error) = hub.check_running() {
            progress.abandon();
            return Err(error);
        }
        if Instant::now() >= next_dead_letter_check {
            next_dead_letter_check += DEAD_LETTER_CHECK_EVERY;
            dead_letters = load.dead_letters().await;
            if dead_letters.is_some() {
                break;
            }
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
    }
    progress.finish(ledger);
    // Senders still running (a timeout or dead letters cut the run short) are stopped.
    senders.abort_all();
    if let Some(editor) = editor {
        editor.abort();
        eprintln!(
            "Changed {} endpoints while sending",
            thousands(edits.load(Ordering::Relaxed))
        );
    }

    let spent = |before: Option<Duration>, pid| Some(hub::cpu_time(pid)?.saturating_sub(before?));
    Ok(Outcome {
        hub_cpu: spent(hub_cpu_before, Some(hub.pid())),
        bench_cpu: spent(bench_cpu_before, None),
        machine_busy: hub::machine_busy()
            .zip(machine_busy_before)
            .map(|(after, before)| after.saturating_sub(before)),
        hub_threads: cpu_by_thread_name(&hub_threads_before, &hub::thread_cpu(hub.pid())),
        routed_us,
        load,
        timed_out,
        dead_letters,
    })
}

/// The routes file: every notification of a kind matching `kinds` to one webhook channel
/// pointed at the receiver.
fn routes_yaml(url: &str, signing_key: &str, concurrency: u32, kinds: &str) -> String {
    format!(
        r#"# Written by `switchyard bench`.
channels:
  bench:
    plugin: webhook
    config: {{ url: "{url}" }}
    secrets: {{ signing_key: "whsec_{signing_key}" }}
    allowed_hosts: ["127.0.0.1"]
    concurrency: {concurrency}
    retry: {{ schedule: [1s, 2s, 5s] }}
routes:
  - name: everything
    match: {{ kind: "{kinds}" }}
    to: [bench]
"#
    )
}

/// The sending side: shared by the sender tasks, which take batches in order.
struct Load {
    client: reqwest::Client,
    /// The hub's base URL.
    url: String,
    batch_url: String,
    /// With `--tenants`: how many; each batch goes to a random one's batch URL.
    tenants: Option<u32>,
    authorization: String,
    ledger: Arc<Ledger>,
    count: u64,
    batch: u64,
    payload_bytes: usize,
    /// A random prefix for the idempotency keys, so reruns against a kept store never
    /// collide.
    run_id: String,
    /// The next batch to send.
    next_batch: AtomicU64,
    /// Notifications in batches POSTed at least once.
    sent: AtomicU64,
    /// Notifications answered `202`.
    accepted: AtomicU64,
    /// Notifications the hub answered `duplicate: true` (a retried batch whose first
    /// attempt had in fact been stored gets its first answer back, so this stays 0).
    duplicates: AtomicU64,
    /// Batch re-sends.
    retries: AtomicU64,
    /// When the last `202` arrived, in the ledger's µs.
    last_accept_us: AtomicU64,
    /// When the first batch was POSTed, in the ledger's µs (+1; 0: not yet).
    first_send_us: AtomicU64,
}

/// A `202` to a batch.
#[derive(Deserialize)]
struct BatchAnswer {
    notifications: Vec<AcceptedItem>,
}

#[derive(Deserialize)]
struct AcceptedItem {
    duplicate: bool,
}

/// What one attempt to send a batch came to.
enum Attempt {
    Accepted,
    Retry(String),
}

impl Load {
    fn new(
        args: &BenchArgs,
        client: reqwest::Client,
        hub: &HubProcess,
        ledger: Arc<Ledger>,
    ) -> Self {
        let mut run_id = [0u8; 8];
        rand::rng().fill_bytes(&mut run_id);
        Load {
            client,
            url: hub.url.clone(),
            batch_url: format!("{}/api/v1/notifications/batch", hub.url),
            tenants: args.tenants,
            authorization: format!("Bearer {}", hub.token),
            ledger,
            count: args.count,
            batch: args.batch,
            payload_bytes: args.payload_bytes,
            run_id: hex::encode(run_id),
            next_batch: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            last_accept_us: AtomicU64::new(0),
            first_send_us: AtomicU64::new(0),
        }
    }

    /// One sender: takes the next batch until none is left.
    async fn send_all(self: Arc<Self>) -> anyhow::Result<()> {
        loop {
            let index = self.next_batch.fetch_add(1, Ordering::Relaxed);
            let first = index.saturating_mul(self.batch);
            if first >= self.count {
                return Ok(());
            }
            let seqs = first..(first + self.batch).min(self.count);
            let (url, attributes) = match self.tenants {
                None => (None, None),
                Some(count) => {
                    let tenant =
                        tenants::tenant_id(rand::Rng::random_range(&mut rand::rng(), 0..count));
                    let url = format!("{}/api/v1/tenants/{tenant}/notifications/batch", self.url);
                    (Some(url), Some(tenants::ATTRIBUTES_JSON))
                }
            };
            let body = batch_body(seqs.clone(), self.payload_bytes, attributes);
            self.ledger.mark_sent(seqs.clone());
            let _ = self.first_send_us.compare_exchange(
                0,
                self.ledger.now_us() + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            let n = seqs.end - seqs.start;
            self.sent.fetch_add(n, Ordering::Relaxed);
            let url = url.as_deref().unwrap_or(&self.batch_url);
            self.send_batch(index, url, body, n).await?;
        }
    }

    /// Sends one batch until it is accepted, retrying what the hub or the network says is
    /// temporary.
    async fn send_batch(&self, index: u64, url: &str, body: Bytes, n: u64) -> anyhow::Result<()> {
        let key = format!("bench-{}-{index}", self.run_id);
        let mut backoff = Duration::from_millis(50);
        for attempt in 1..=MAX_ATTEMPTS {
            match self.attempt(url, &key, body.clone(), n).await? {
                Attempt::Accepted => {
                    self.accepted.fetch_add(n, Ordering::Relaxed);
                    self.last_accept_us
                        .fetch_max(self.ledger.now_us(), Ordering::Relaxed);
                    return Ok(());
                }
                Attempt::Retry(why) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(batch = index, attempt, "retrying: {why}");
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Attempt::Retry(why) => {
                    bail!("batch {index} was not accepted after {MAX_ATTEMPTS} attempts: {why}")
                }
            }
        }
        unreachable!("the last attempt returns or fails")
    }

    async fn attempt(&self, url: &str, key: &str, body: Bytes, n: u64) -> anyhow::Result<Attempt> {
        let response = match self
            .client
            .post(url)
            .header(AUTHORIZATION, &self.authorization)
            .header(CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .body(body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => return Ok(Attempt::Retry(format!("{error:#}"))),
        };
        let status = response.status();
        let text = match response.bytes().await {
            Ok(text) => text,
            Err(error) => return Ok(Attempt::Retry(format!("reading the answer: {error:#}"))),
        };
        match status {
            StatusCode::ACCEPTED => {
                let answer: BatchAnswer =
                    serde_json::from_slice(&text).context("the hub's 202 is not a batch answer")?;
                if answer.notifications.len() as u64 != n {
                    bail!(
                        "the hub accepted {} notifications of a batch of {n}",
                        answer.notifications.len()
                    );
                }
                let duplicates = answer.notifications.iter().filter(|i| i.duplicate).count();
                self.duplicates
                    .fetch_add(duplicates as u64, Ordering::Relaxed);
                Ok(Attempt::Accepted)
            }
            StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT => Ok(Attempt::Retry(format!(
                "{status}: {}",
                String::from_utf8_lossy(&text)
            ))),
            _ => bail!(
                "the hub answered {status} to a batch: {}",
                String::from_utf8_lossy(&text)
            ),
        }
    }

    /// A few dead letters, if the hub has any (best effort: `None` when it cannot say).
    async fn dead_letters(&self) -> Option<String> {
        let response = self
            .client
            .get(format!("{}/api/v1/dead-letters?limit=3", self.url))
            .header(AUTHORIZATION, &self.authorization)
            .send()
            .await
            .ok()?;
        let page: serde_json::Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
        let items = page.get("items")?.as_array()?;
        (!items.is_empty()).then(|| serde_json::to_string_pretty(items).unwrap_or_default())
    }

    fn first_send_us(&self) -> Option<u64> {
        self.first_send_us.load(Ordering::Relaxed).checked_sub(1)
    }
}

/// The progress bar on a terminal; a status line every few seconds elsewhere.
struct Progress {
    bar: ProgressBar,
    plain: bool,
    started: Instant,
    hub_pid: u32,
    /// The counters at the last plain status line, for rates over the interval.
    last: std::sync::Mutex<Snapshot>,
}

/// Counters at one moment, for rates between two moments.
struct Snapshot {
    at: Instant,
    accepted: u64,
    delivered: u64,
    hub_cpu: Option<Duration>,
    bench_cpu: Option<Duration>,
}

impl Snapshot {
    fn take(load: &Load, ledger: &Ledger, hub_pid: u32) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            accepted: load.accepted.load(Ordering::Relaxed),
            delivered: ledger.delivered(),
            hub_cpu: hub::cpu_time(Some(hub_pid)),
            bench_cpu: hub::cpu_time(None),
        }
    }
}

impl Progress {
    fn new(load: &Load, ledger: &Ledger, hub_pid: u32) -> Progress {
        let bar = ProgressBar::new(ledger.expected());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} delivered \
                 ({per_sec})\n  {msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        Progress {
            bar,
            plain: !std::io::stderr().is_terminal(),
            started: Instant::now(),
            hub_pid,
            last: std::sync::Mutex::new(Snapshot::take(load, ledger, hub_pid)),
        }
    }

    fn show(&self, load: &Load, ledger: &Ledger) {
        let accepted = load.accepted.load(Ordering::Relaxed);
        let accepting = if accepted < load.count {
            let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
            format!("{}/s", thousands((accepted as f64 / elapsed) as u64))
        } else {
            "all".to_owned()
        };
        let message = format!(
            "sent {} · accepted {} ({accepting}) · batch retries {} · duplicates {}",
            thousands(load.sent.load(Ordering::Relaxed)),
            thousands(accepted),
            load.retries.load(Ordering::Relaxed),
            ledger.duplicates(),
        );
        self.bar.set_position(ledger.delivered());
        self.bar.set_message(message);
        if !self.plain {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.at.elapsed() < PLAIN_STATUS_EVERY {
            return;
        }
        // Rates and CPU over the interval since the last line: they show the phases
        // (accepting and delivering, then only delivering) and whose CPU each one costs.
        let now = Snapshot::take(load, ledger, self.hub_pid);
        let seconds = now.at.duration_since(last.at).as_secs_f64();
        let rate = |now: u64, before: u64| thousands(((now - before) as f64 / seconds) as u64);
        let cpu = |now: Option<Duration>, before: Option<Duration>| match (now, before) {
            (Some(now), Some(before)) => format!(
                "{:.0}%",
                100.0 * now.saturating_sub(before).as_secs_f64() / seconds
            ),
            _ => "?".to_owned(),
        };
        eprintln!(
            "[{:>6.1}s] accepted {} (+{}/s) · delivered {} (+{}/s) · batch retries {} · \
             duplicates {} · CPU hub {} bench {}",
            self.started.elapsed().as_secs_f64(),
            thousands(now.accepted),
            rate(now.accepted, last.accepted),
            thousands(now.delivered),
            rate(now.delivered, last.delivered),
            load.retries.load(Ordering::Relaxed),
            ledger.duplicates(),
            cpu(now.hub_cpu, last.hub_cpu),
            cpu(now.bench_cpu, last.bench_cpu),
        );
        *last = now;
    }

    fn finish(&self, ledger: &Ledger) {
        self.bar.set_position(ledger.delivered());
        self.bar.finish();
    }

    fn abandon(&self) {
        self.bar.abandon();
    }
}

/// Everything the run measured.
struct Report<'a> {
    args: &'a BenchArgs,
    load: &'a Load,
    tally: Tally,
    hub_cpu: Option<Duration>,
    bench_cpu: Option<Duration>,
    /// Busy CPU time of the whole machine over the run, every process's.
    machine_busy: Option<Duration>,
    /// The hub's CPU by thread name over the run: (name, threads, time).
    hub_threads: Vec<(String, usize, Duration)>,
    hub_peak_rss: Option<u64>,
    bench_peak_rss: Option<u64>,
    timed_out: bool,
    dead_letters: Option<String>,
    /// With `--tenants`: when the router had routed every notification, in µs.
    routed_us: Option<u64>,
    /// With `--tenants`: what was seeded, and how long it took.
    seeded: Option<tenants::Seeded>,
    /// From starting the hub to its first `200` from `/readyz` (the token is made first).
    hub_start: Duration,
    /// The hub's resident memory once it was ready, before the load.
    hub_ready_rss: Option<u64>,
}

impl Report<'_> {
    /// Seconds from the first send to `end_us`.
    fn span(&self, end_us: u64) -> Option<f64> {
        let start = self.load.first_send_us()?;
        Some(end_us.saturating_sub(start) as f64 / 1e6).filter(|s| *s > 0.0)
    }

    fn complete(&self) -> bool {
        self.tally.delivered >= self.args.count * self.args.fanout()
    }

    /// The run's pass or fail, after the report is printed.
    fn verdict(&self) -> anyhow::Result<()> {
        if let Some(dead) = &self.dead_letters {
            bail!("deliveries were dead-lettered, so the run cannot complete:\n{dead}");
        }
        if self.timed_out {
            bail!(
                "only {} of {} deliveries were made within {:?}",
                thousands(self.tally.delivered),
                thousands(self.args.count * self.args.fanout()),
                self.args.timeout
            );
        }
        if self.tally.signature_failures > 0 {
            bail!(
                "{} of {} sampled deliveries had a signature that did not verify",
                self.tally.signature_failures,
                self.tally.signatures_checked
            );
        }
        Ok(())
    }
}

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let args = self.args;
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let accepted = self.load.accepted.load(Ordering::Relaxed);
        let rate = |n: u64, span: Option<f64>| match span {
            Some(s) => format!(
                "{} in {s:.2} s = {}/s",
                thousands(n),
                thousands((n as f64 / s) as u64)
            ),
            None => thousands(n),
        };
        let accept_span = self.span(self.load.last_accept_us.load(Ordering::Relaxed));
        let deliver_span = self.span(self.tally.last_delivery_us);
        let ms = |q: f64| self.tally.latency.value_at_quantile(q) as f64 / 1000.0;
        let mib = |bytes: Option<u64>| match bytes {
            Some(b) => format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0)),
            None => "n/a".to_owned(),
        };
        let cpu = |time: Option<Duration>| match (time, deliver_span) {
            (Some(t), Some(wall)) => format!(
                "{:.1} s ({:.2} cores)",
                t.as_secs_f64(),
                t.as_secs_f64() / wall
            ),
            (Some(t), None) => format!("{:.1} s", t.as_secs_f64()),
            _ => "n/a".to_owned(),
        };

        writeln!(f)?;
        writeln!(f, "switchyard bench")?;
        writeln!(
            f,
            "  load              {} notifications, batches of {}, {} connections, ~{} B payloads",
            thousands(args.count),
            args.batch,
            args.connections,
            args.payload_bytes
        )?;
        let store = args
            .store
            .as_deref()
            .map_or_else(|| "SQLite (temporary)".to_owned(), crate::bus::redacted);
        writeln!(
            f,
            "  hub               store {store}, webhook channel concurrency {}",
            args.delivery_concurrency
        )?;
        // Brokers are chosen by environment (SWITCHYARD_STREAM__URL, ...); shown here.
        let passed = hub::passed_through_env();
        if !passed.is_empty() {
            let env: Vec<String> = passed
                .iter()
                .map(|(k, v)| format!("{k}={}", crate::bus::redacted(v)))
                .collect();
            writeln!(f, "  hub env           {}", env.join(" "))?;
        }
        if let (Some(count), Some(seeded)) = (args.tenants, &self.seeded) {
            writeln!(
                f,
                "  tenants           {} × {} endpoints = {}; {} per notification (shape: \
                 bench::tenants::SHAPE); batches for random tenants",
                thousands(u64::from(count)),
                args.endpoints_per_tenant,
                thousands(seeded.endpoints),
                plural(args.fanout(), "delivery", "deliveries"),
            )?;
            writeln!(
                f,
                "  seeded            rows {:.1} s · secrets sealed {:.1} s · hub ready {:.1} s later",
                seeded.rows.as_secs_f64(),
                seeded.secrets.as_secs_f64(),
                self.hub_start.as_secs_f64()
            )?;
        }
        writeln!(
            f,
            "  machine           {cores} cores (shared by the hub and the bench)"
        )?;
        writeln!(f, "  accepted          {}", rate(accepted, accept_span))?;
        if args.tenants.is_some() {
            let routed = self.routed_us.and_then(|us| self.span(us));
            match routed {
                Some(_) => writeln!(
                    f,
                    "  routed            {} (router's stream position, read every {} ms)",
                    rate(args.count, routed),
                    TICK.as_millis()
                )?,
                None => writeln!(
                    f,
                    "  routed            n/a (the router's position never reached the count)"
                )?,
            }
        }
        let target = target_per_second(&passed);
        let verdict = match deliver_span {
            // The target is the YAML pipeline's.
            Some(_) if self.complete() && args.tenants.is_some() => String::new(),
            Some(s) if self.complete() => {
                let per_second = args.count as f64 / s;
                let met = if per_second >= f64::from(target) {
                    "met"
                } else {
                    "MISSED"
                };
                format!("  (target ≥ {}/s: {met})", thousands(u64::from(target)))
            }
            _ => "  (INCOMPLETE)".to_owned(),
        };
        writeln!(
            f,
            "  delivered         {}{verdict}",
            rate(self.tally.delivered, deliver_span)
        )?;
        if args.fanout() > 1
            && let Some(s) = deliver_span
        {
            writeln!(
                f,
                "                    = {}/s notifications with all {} deliveries",
                thousands((args.count as f64 / s) as u64),
                args.fanout()
            )?;
        }
        if self.tally.latency.is_empty() {
            writeln!(f, "  e2e latency       n/a")?;
        } else {
            writeln!(
                f,
                "  e2e latency       p50 {:.1} ms · p90 {:.1} ms · p99 {:.1} ms · max {:.1} ms",
                ms(0.5),
                ms(0.9),
                ms(0.99),
                self.tally.latency.max() as f64 / 1000.0
            )?;
        }
        writeln!(
            f,
            "  duplicates        {} delivered twice or more; {} answered duplicate by the API",
            thousands(self.tally.duplicates),
            thousands(self.load.duplicates.load(Ordering::Relaxed))
        )?;
        writeln!(
            f,
            "  batch retries     {}",
            thousands(self.load.retries.load(Ordering::Relaxed))
        )?;
        writeln!(
            f,
            "  signatures        {} sampled, {} failed",
            self.tally.signatures_checked, self.tally.signature_failures
        )?;
        if self.tally.strays > 0 {
            writeln!(
                f,
                "  strays            {} requests with no sequence number of this run",
                self.tally.strays
            )?;
        }
        writeln!(
            f,
            "  CPU (whole run)   hub {} · bench {}",
            cpu(self.hub_cpu),
            cpu(self.bench_cpu)
        )?;
        let per = |time: Option<Duration>, n: u64| match time {
            Some(t) if n > 0 => format!("{:.0} µs", t.as_secs_f64() * 1e6 / n as f64),
            _ => "n/a".to_owned(),
        };
        writeln!(
            f,
            "  CPU per notif.    hub {} · bench {}{}",
            per(self.hub_cpu, args.count),
            per(self.bench_cpu, args.count),
            if args.fanout() > 1 {
                format!(
                    " (hub per delivery {})",
                    per(self.hub_cpu, args.count * args.fanout())
                )
            } else {
                String::new()
            }
        )?;
        // Another build or test on the same cores slows the hub down; say so, since the
        // numbers above cannot.
        if let (Some(busy), Some(hub), Some(bench)) =
            (self.machine_busy, self.hub_cpu, self.bench_cpu)
        {
            let others = busy.saturating_sub(hub + bench);
            writeln!(f, "  other processes   {}", cpu(Some(others)))?;
        }
        if !self.hub_threads.is_empty() {
            let groups: Vec<String> = self
                .hub_threads
                .iter()
                .filter(|(_, _, time)| !time.is_zero())
                .map(|(name, threads, time)| {
                    format!("{name} ×{threads} {:.1} s", time.as_secs_f64())
                })
                .collect();
            writeln!(f, "  hub CPU by thread {}", groups.join(" · "))?;
        }
        writeln!(
            f,
            "  peak RSS          hub {} (when ready: {}) · bench {}",
            mib(self.hub_peak_rss),
            mib(self.hub_ready_rss),
            mib(self.bench_peak_rss)
        )?;
        Ok(())
    }
}

/// `n` and the noun, singular or plural.
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The JSON of one batch request for notifications `seqs`, each payload padded to about
/// `payload_bytes`, each with `attributes` (a JSON object) when given. Written by hand: it
/// is the bench's hottest code after the receiver, and the shape never changes.
fn batch_body(seqs: Range<u64>, payload_bytes: usize, attributes: Option<&str>) -> Bytes {
    // `{"seq":N,"pad":""}` is 17 bytes plus the digits; the pad makes up the rest.
    const PAD: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    let mut body =
        String::with_capacity(32 + (seqs.end - seqs.start) as usize * (payload_bytes + 48));
    body.push_str(r#"{"notifications":["#);
    for seq in seqs.clone() {
        if seq != seqs.start {
            body.push(',');
        }
        let digits = seq.checked_ilog10().unwrap_or(0) as usize + 1;
        let mut pad = payload_bytes.saturating_sub(17 + digits);
        body.push_str(r#"{"kind":"bench.tick","#);
        if let Some(attributes) = attributes {
            let _ = write!(body, r#""attributes":{attributes},"#);
        }
        let _ = write!(body, r#""payload":{{"seq":{seq},"pad":""#);
        while pad > 0 {
            let chunk = pad.min(PAD.len());
            body.push_str(&PAD[..chunk]);
            pad -= chunk;
        }
        body.push_str(r#""}}"#);
    }
    body.push_str("]}");
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn the_target_follows_the_backends() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(target_per_second(&env(&[])), 16_000);
        assert_eq!(
            target_per_second(&env(&[("SWITCHYARD_STREAM__URL", "embedded")])),
            16_000
        );
        assert_eq!(
            target_per_second(&env(&[("SWITCHYARD_QUEUES__URL", "amqp://h:5672/%2f")])),
            10_000
        );
        assert_eq!(
            target_per_second(&env(&[("SWITCHYARD_STREAM__URL", "kafka://h:9092")])),
            10_000
        );
    }

    #[test]
    fn pads_payloads_to_the_requested_size() {
        let body = batch_body(98..101, 256, None);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let items = value["notifications"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        for (item, seq) in items.iter().zip(98..) {
            assert_eq!(item["kind"], "bench.tick");
            assert_eq!(item["payload"]["seq"], seq);
            assert_eq!(serde_json::to_string(&item["payload"]).unwrap().len(), 256);
        }
        let body = batch_body(0..2, 256, Some(tenants::ATTRIBUTES_JSON));
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for item in value["notifications"].as_array().unwrap() {
            assert_eq!(item["kind"], tenants::KIND);
            assert_eq!(item["attributes"]["region"], "eu");
            assert_eq!(serde_json::to_string(&item["payload"]).unwrap().len(), 256);
        }
    }
}
