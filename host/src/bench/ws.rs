//! `switchyard bench-ws`: the WebSocket front door's two rates, against a real hub process.
//!
//! 1. **Ingest**: `--connections` sockets send `--count` notifications, one per text frame,
//!    each keeping up to `--in-flight` frames unacknowledged. The rate counts acks, and an
//!    ack means the notification is durable. The routes match nothing, so the hub's CPU
//!    goes to the front door, the adapter and accept, not to deliveries.
//! 2. **Fan-out**: `--subscribers` sockets subscribe to accepted notifications; then
//!    `--fanout-count` notifications are sent, and every subscriber must receive every one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::hub::{self, HubProcess};

/// The bench's options.
#[derive(clap::Args, Debug, Clone)]
pub struct WsBenchArgs {
    /// Notifications to send in the ingest phase.
    #[arg(long, short = 'n', default_value_t = 200_000)]
    pub count: u64,
    /// Sockets sending in the ingest phase.
    #[arg(long, default_value_t = 10)]
    pub connections: u32,
    /// Frames each sending socket keeps unacknowledged.
    #[arg(long, default_value_t = 128)]
    pub in_flight: u32,
    /// Subscribed sockets in the fan-out phase (0 skips it).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: u32,
    /// Notifications every subscriber must receive.
    #[arg(long, default_value_t = 1000)]
    pub fanout_count: u64,
    /// Give up on a phase after this long.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Routes that match nothing the bench sends: no deliveries, only ingest.
const ROUTES: &str = "# Written by `switchyard bench-ws`: nothing the bench sends matches.
channels:
  log: { plugin: log }
routes:
  - name: nothing
    match: { kind: \"never.*\" }
    to: [log]
";

pub async fn run(args: WsBenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("switchyard-bench-ws-")
        .tempdir()
        .context("could not create a temporary directory")?;
    std::fs::write(dir.path().join("routes.yaml"), ROUTES)?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    eprintln!("Starting the hub in {} ...", dir.path().display());
    let hub = HubProcess::start(dir.path(), None, &client).await?;
    let url = format!("{}/ws", hub.url.replacen("http://", "ws://", 1));
    let result = phases(&args, &url, &hub).await;
    let log = hub.log.clone();
    let peak_rss = hub::peak_rss(Some(hub.pid()));
    hub.stop().await?;
    result.with_context(|| format!("the hub's log is {}", log.display()))?;
    if let Some(rss) = peak_rss {
        println!("hub peak RSS      {} MiB", rss / (1024 * 1024));
    }
    Ok(())
}

async fn phases(args: &WsBenchArgs, url: &str, hub: &HubProcess) -> anyhow::Result<()> {
    let cpu_before = hub::cpu_time(Some(hub.pid()));
    let started = Instant::now();
    let acked = tokio::time::timeout(args.timeout, ingest(args, url, &hub.token))
        .await
        .context("the ingest phase timed out")??;
    let took = started.elapsed();
    let cpu = hub::cpu_time(Some(hub.pid()))
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    println!(
        "ingest            {acked} notifications over {} sockets in {:.2} s: {:.0}/s",
        args.connections,
        took.as_secs_f64(),
        acked as f64 / took.as_secs_f64()
    );
    if let Some(cpu) = cpu {
        println!(
            "  hub CPU         {:.2} cores, {:.1} µs per notification",
            cpu.as_secs_f64() / took.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / acked as f64
        );
    }
    if args.subscribers > 0 {
        fan_out(args, url, &hub.token).await?;
    }
    Ok(())
}

async fn connect(
    url: &str,
    token: &str,
) -> anyhow::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("could not open {url}"))?;
    Ok(socket)
}

fn frame(n: u64) -> String {
    format!(
        r#"{{"kind":"bench.ws","attributes":{{"n":"{n}"}},"payload":{{"n":{n},"pad":"{}"}}}}"#,
        "x".repeat(200)
    )
}

/// Sends `count` frames over `connections` sockets; returns how many were acked.
async fn ingest(args: &WsBenchArgs, url: &str, token: &str) -> anyhow::Result<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let mut sockets = JoinSet::new();
    for _ in 0..args.connections {
        let socket = connect(url, token).await?;
        let next = next.clone();
        let (count, in_flight) = (args.count, args.in_flight as usize);
        sockets.spawn(async move {
            let (mut sink, mut stream) = socket.split();
            let window = Arc::new(Semaphore::new(in_flight));
            let reader_window = window.clone();
            let reader = tokio::spawn(async move {
                let mut acked = 0u64;
                while let Some(message) = stream.next().await {
                    let Message::Text(text) = message? else {
                        continue;
                    };
                    if !text.contains("\"ack\"") {
                        bail!("the hub did not accept a frame: {text}");
                    }
                    acked += 1;
                    reader_window.add_permits(1);
                }
                anyhow::Ok(acked)
            });
            let mut sent = 0u64;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                window.acquire().await?.forget();
                sink.send(Message::text(frame(n))).await?;
                sent += 1;
            }
            // Every frame acked: then close, which ends the reader.
            let _ = window.acquire_many(in_flight as u32).await?;
            sink.send(Message::Close(None)).await?;
            let acked = reader.await??;
            if acked != sent {
                bail!("sent {sent} frames but {acked} were acked");
            }
            anyhow::Ok(acked)
        });
    }
    let mut acked = 0;
    while let Some(done) = sockets.join_next().await {
        acked += done??;
    }
    Ok(acked)
}

/// Subscribes `subscribers` sockets, sends `fanout_count` notifications, and checks that
/// every subscriber receives every one.
async fn fan_out(args: &WsBenchArgs, url: &str, token: &str) -> anyhow::Result<()> {
    let expected = args.fanout_count;
    let mut subscribers = JoinSet::new();
    let subscribed = Arc::new(Semaphore::new(0));
    for _ in 0..args.subscribers {
        let mut socket = connect(url, token).await?;
        let subscribed = subscribed.clone();
        subscribers.spawn(async move {
            socket
                .send(Message::text(
                    r#"{"op":"subscribe","events":["notifications"],"kind":"bench.*"}"#,
                ))
                .await?;
            let mut received = 0u64;
            while let Some(message) = socket.next().await {
                let Message::Text(text) = message? else {
                    continue;
                };
                if text.contains("\"subscribed\"") {
                    subscribed.add_permits(1);
                } else if text.contains("\"notification_accepted\"") {
                    received += 1;
                    if received == expected {
                        break;
                    }
                }
            }
            let _ = socket.close(None).await;
            anyhow::Ok(received)
        });
    }
    let _ = subscribed.acquire_many(args.subscribers).await?;
    eprintln!(
        "{} subscribers ready; sending {expected} notifications",
        args.subscribers
    );

    let started = Instant::now();
    let sender = WsBenchArgs {
        count: expected,
        connections: 1,
        ..args.clone()
    };
    ingest(&sender, url, token).await?;
    let mut complete = 0u32;
    let mut short = Vec::new();
    let deadline = tokio::time::sleep(args.timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            done = subscribers.join_next() => match done {
                Some(done) => {
                    let received = done??;
                    if received == expected { complete += 1 } else { short.push(received) }
                }
                None => break,
            },
            () = &mut deadline => bail!("the fan-out phase timed out with {complete} subscribers complete"),
        }
    }
    let took = started.elapsed();
    if !short.is_empty() {
        bail!(
            "{} subscribers missed events (received {:?} of {expected})",
            short.len(),
            &short[..short.len().min(10)]
        );
    }
    let messages = u64::from(complete) * expected;
    println!(
        "fan-out           {complete} subscribers each received all {expected} events in {:.2} s: {:.0} messages/s",
        took.as_secs_f64(),
        messages as f64 / took.as_secs_f64()
    );
    Ok(())
}
