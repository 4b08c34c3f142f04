//! The bench's receiver: the webhook endpoint the hub delivers to, and the [`Ledger`] that
//! remembers when each notification was sent and whether it has arrived.
//!
//! Every notification carries its sequence number in its payload (`{"seq":123,...}`), so
//! the receiver needs no map from hub ids to sends: it finds `"seq":` in the body, flips
//! that bit in a bitset (a second flip is a duplicate, which at-least-once delivery allows
//! and the report counts), and records now − send time in a latency histogram.
//!
//! The receiver shares the machine's cores with the hub it measures, so it is plain
//! hyper (HTTP/1.1, keep-alive) with no routing or middleware, answers `204` with no
//! body, and checks a Standard Webhooks signature on one delivery in
//! [`SIGNATURE_SAMPLE`] only: HMAC on every request would be the bench measuring itself.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac as _};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The path the webhook channel is pointed at.
pub const HOOK_PATH: &str = "/hook";

/// One delivery in this many (by sequence number) has its signature checked.
pub const SIGNATURE_SAMPLE: u64 = 1000;

/// Latency histograms, one per group of connections, so that deliveries arriving on
/// different connections at once rarely wait for the same lock.
const HISTOGRAM_SHARDS: usize = 16;

/// The largest latency recorded exactly, in microseconds (one hour); longer ones are
/// recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// What was sent when, and what has arrived. Shared by the senders and the receiver.
pub struct Ledger {
    /// The bench's zero: every time below is microseconds since it.
    start: Instant,
    count: u64,
    /// Deliveries each notification makes (1, or a tenant's matching endpoints).
    fanout: u64,
    /// Per sequence number: the send time of its batch in µs, plus one (0: not sent yet).
    sent_at: Box<[AtomicU64]>,
    /// One bit per delivery (sequence number × fan-out + slot): seen at least once.
    seen: Box<[AtomicU64]>,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    /// Requests that named no sequence number of this run.
    strays: AtomicU64,
    /// When the latest first delivery arrived, in µs.
    last_delivery_us: AtomicU64,
    signatures_checked: AtomicU64,
    signature_failures: AtomicU64,
    latency: Box<[Mutex<Histogram<u64>>]>,
    /// The webhook channel's signing key (decoded).
    signing_key: Vec<u8>,
}

/// A summary of the receiver's side, read once the run is over.
pub struct Tally {
    pub delivered: u64,
    pub duplicates: u64,
    pub strays: u64,
    /// When the last first delivery arrived, in µs since the bench's zero.
    pub last_delivery_us: u64,
    pub signatures_checked: u64,
    pub signature_failures: u64,
    /// Send-to-arrival latency of every first delivery, in µs.
    pub latency: Histogram<u64>,
}

impl Ledger {
    /// A ledger for sequence numbers `0..count`, whose deliveries are signed with
    /// `signing_key`.
    pub fn new(count: u64, signing_key: Vec<u8>) -> Ledger {
        Ledger::with_fanout(count, 1, signing_key)
    }

    /// A ledger for sequence numbers `0..count`, each delivered `fanout` times: to URLs
    /// that end in `?s=0` ... `?s=<fanout - 1>` (see [`slot`]).
    pub fn with_fanout(count: u64, fanout: u64, signing_key: Vec<u8>) -> Ledger {
        let fanout = fanout.max(1);
        let histogram = || {
            Mutex::new(
                Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                    .expect("the bounds and precision are valid"),
            )
        };
        Ledger {
            start: Instant::now(),
            count,
            sent_at: (0..count).map(|_| AtomicU64::new(0)).collect(),
            fanout,
            seen: (0..(count * fanout).div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            strays: AtomicU64::new(0),
            last_delivery_us: AtomicU64::new(0),
            signatures_checked: AtomicU64::new(0),
            signature_failures: AtomicU64::new(0),
            latency: (0..HISTOGRAM_SHARDS).map(|_| histogram()).collect(),
            signing_key,
        }
    }

    /// Microseconds since the bench's zero.
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Notes that `seqs` are being sent now. Called just before their batch is POSTed,
    /// and only for the first attempt: a retried batch's latency includes the retry.
    pub fn mark_sent(&self, seqs: Range<u64>) {
        let now = self.now_us() + 1;
        for seq in seqs {
            self.sent_at[seq as usize].store(now, Ordering::Release);
        }
    }

    /// Deliveries the run expects: every notification's, to each of its slots.
    pub fn expected(&self) -> u64 {
        self.count * self.fanout
    }

    /// First deliveries so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Duplicate deliveries so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// The receiver's side of the run, with the latency shards merged.
    pub fn tally(&self) -> Tally {
        let mut latency = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .expect("the bounds and precision are valid");
        for shard in &self.latency {
            let shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            latency.add(&*shard).expect("shards have the same bounds");
        }
        Tally {
            delivered: self.delivered(),
            duplicates: self.duplicates(),
            strays: self.strays.load(Ordering::Relaxed),
            last_delivery_us: self.last_delivery_us.load(Ordering::Relaxed),
            signatures_checked: self.signatures_checked.load(Ordering::Relaxed),
            signature_failures: self.signature_failures.load(Ordering::Relaxed),
            latency,
        }
    }

    /// Records one webhook request that arrived on a connection using latency `shard`,
    /// for delivery slot `slot` of its notification (`None`: no slot of this run).
    fn receive(&self, shard: usize, slot: Option<u64>, headers: &HeaderMap, body: &[u8]) {
        let now = self.now_us();
        let (Some(seq), Some(slot)) = (
            find_seq(body).filter(|&seq| seq < self.count),
            slot.filter(|&slot| slot < self.fanout),
        ) else {
            self.strays.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let unit = seq * self.fanout + slot;
        if seq.is_multiple_of(SIGNATURE_SAMPLE) {
            self.signatures_checked.fetch_add(1, Ordering::Relaxed);
            if !verify_signature(&self.signing_key, headers, body) {
                self.signature_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        let bit = 1u64 << (unit % 64);
        let before = self.seen[(unit / 64) as usize].fetch_or(bit, Ordering::AcqRel);
        if before & bit != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let sent = self.sent_at[seq as usize].load(Ordering::Acquire);
        // `sent` is 0 only if a delivery could beat its own send, which cannot happen; if
        // it ever does, a latency of 0 is less wrong than one since the bench started.
        let latency = match sent {
            0 => 0,
            sent => now.saturating_sub(sent - 1),
        };
        self.latency[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .saturating_record(latency.max(1));
        self.last_delivery_us.fetch_max(now, Ordering::Relaxed);
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }
}

/// The delivery slot a request's query names: none is slot 0 (a YAML channel's one
/// delivery), `s=<n>` is slot n, anything else (`s=none`: an endpoint that should not
/// have matched) is `None`.
fn slot(query: Option<&str>) -> Option<u64> {
    let Some(query) = query else {
        return Some(0);
    };
    match query.split('&').find_map(|pair| pair.strip_prefix("s=")) {
        Some(n) => n.parse().ok(),
        None => Some(0),
    }
}

/// The first `"seq":<digits>` in a body. The webhook channel serialises the payload
/// compactly, so no whitespace handling beyond a leading space is needed.
fn find_seq(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"seq\":";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = body[at..].strip_prefix(b" ").unwrap_or(&body[at..]);
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// Checks a Standard Webhooks signature: `webhook-signature` holds space-separated
/// `v1,<base64 HMAC-SHA256>` entries over `{webhook-id}.{webhook-timestamp}.{body}`, and
/// one must match.
fn verify_signature(key: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signatures)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        .any(|given| given.as_slice() == expected.as_slice())
}

/// The running receiver. Dropping it stops accepting connections.
pub struct Receiver {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Listens on an ephemeral loopback port and records every delivery in `ledger`.
    pub async fn start(ledger: Arc<Ledger>) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut connections = 0usize;
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors, most likely: wait for some to close
                        // rather than spinning.
                        tracing::warn!(%error, "bench receiver could not accept a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shard = connections % HISTOGRAM_SHARDS;
                connections += 1;
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(ledger.clone(), shard, request));
                    // A connection error only ends that connection; the hub retries.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Receiver { addr, task })
    }

    /// The URL the webhook channel posts to.
    pub fn url(&self) -> String {
        format!("http://{}{HOOK_PATH}", self.addr)
    }
}

async fn handle(
    ledger: Arc<Ledger>,
    shard: usize,
    request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let status = if request.method() != Method::POST || request.uri().path() != HOOK_PATH {
        StatusCode::NOT_FOUND
    } else {
        let (parts, body) = request.into_parts();
        match body.collect().await {
            Ok(body) => {
                let slot = slot(parts.uri.query());
                ledger.receive(shard, slot, &parts.headers, &body.to_bytes());
                StatusCode::NO_CONTENT
            }
            // The hub sees the failed request and retries the delivery.
            Err(_) => StatusCode::BAD_REQUEST,
        }
    };
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_sequence_number_in_a_webhook_body() {
        let body = br#"{"type":"bench.tick","id":"x","data":{"pad":"xxxx","seq":1234567}}"#;
        assert_eq!(find_seq(body), Some(1_234_567));
        assert_eq!(find_seq(br#"{"data":{"seq": 7}}"#), Some(7));
        assert_eq!(find_seq(br#"{"data":{}}"#), None);
        assert_eq!(find_seq(br#"{"data":{"seq":"x"}}"#), None);
    }

    #[test]
    fn verifies_the_standard_webhooks_specification_vector() {
        // From the Standard Webhooks specification's test vectors.
        let key = BASE64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let mut headers = HeaderMap::new();
        headers.insert(
            "webhook-id",
            "msg_p5jXN8AQM9LWM0D4loKWxJek".parse().unwrap(),
        );
        headers.insert("webhook-timestamp", "1614265330".parse().unwrap());
        headers.insert(
            "webhook-signature",
            "v1,bm9ldHUjKzFob2VudXRob2VodWUzMjRvdWVvdW9ldQo= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
                .parse()
                .unwrap(),
        );
        assert!(verify_signature(&key, &headers, body));
        assert!(!verify_signature(&key, &headers, b"{}"));
    }

    #[test]
    fn counts_first_deliveries_duplicates_and_strays() {
        let ledger = Ledger::new(100, b"key".to_vec());
        ledger.mark_sent(0..100);
        let headers = HeaderMap::new();
        ledger.receive(0, Some(0), &headers, br#"{"data":{"seq":5}}"#);
        ledger.receive(1, Some(0), &headers, br#"{"data":{"seq":5}}"#);
        ledger.receive(2, Some(0), &headers, br#"{"data":{"seq":99}}"#);
        ledger.receive(3, Some(0), &headers, br#"{"data":{"seq":100}}"#);
        // seq 0 is sampled and has no signature.
        ledger.receive(3, Some(0), &headers, br#"{"data":{"seq":0}}"#);
        let tally = ledger.tally();
        assert_eq!(tally.delivered, 3);
        assert_eq!(tally.duplicates, 1);
        assert_eq!(tally.strays, 1);
        assert_eq!(tally.signatures_checked, 1);
        assert_eq!(tally.signature_failures, 1);
        assert_eq!(tally.latency.len(), 3);
    }

    #[test]
    fn counts_each_slot_of_a_fanout_once() {
        let ledger = Ledger::with_fanout(10, 2, b"key".to_vec());
        ledger.mark_sent(0..10);
        let headers = HeaderMap::new();
        assert_eq!(slot(None), Some(0));
        assert_eq!(slot(Some("s=1")), Some(1));
        assert_eq!(slot(Some("s=none")), None);
        ledger.receive(0, slot(Some("s=0")), &headers, br#"{"data":{"seq":5}}"#);
        ledger.receive(0, slot(Some("s=1")), &headers, br#"{"data":{"seq":5}}"#);
        ledger.receive(0, slot(Some("s=1")), &headers, br#"{"data":{"seq":5}}"#);
        ledger.receive(0, slot(Some("s=2")), &headers, br#"{"data":{"seq":5}}"#);
        ledger.receive(0, slot(Some("s=none")), &headers, br#"{"data":{"seq":5}}"#);
        let tally = ledger.tally();
        assert_eq!(ledger.expected(), 20);
        assert_eq!(tally.delivered, 2);
        assert_eq!(tally.duplicates, 1);
        assert_eq!(tally.strays, 2);
    }
}
