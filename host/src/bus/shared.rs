//! What several switchyard processes must agree on, kept in Redis: the idempotency window of
//! a Kafka-streamed accept, and each channel's rate limit.
//!
//! Keys:
//! - `switchyard:idem:req:<scope>:<key>`: a request's `Idempotency-Key`, its body's
//!   fingerprint and its answer; expires with the window.
//! - `switchyard:idem:n:<owner>:<key>`: a notification's own idempotency key, as
//!   `<id> <fingerprint>` of the first notification that carried it; expires with the
//!   window. The owner is `token:<token id>:<source>`, or the source for a signed webhook
//!   (see [`crate::store::notification_key_owner`]).
//! - `switchyard:rate:<channel>:<window>`: calls granted to `channel` in one window of its
//!   rate limit, across every process; expires two windows later.

use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use crate::routing::RateLimit;
use crate::store::{AcceptedItem, Notification, RequestKey, notification_fingerprint};

/// How long start-up waits for Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a window's calls one process claims at once: small enough that the processes
/// share a window fairly, large enough that a busy channel asks Redis rarely.
const RATE_CLAIM_SHARE: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Redis at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connection to the Redis that the processes share. Cheap to clone.
#[derive(Clone)]
pub struct Shared {
    redis: ConnectionManager,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared(redis)")
    }
}

/// What a request's idempotency key holds.
#[derive(Serialize, Deserialize)]
struct RequestRecord {
    fingerprint: String,
    items: Vec<AcceptedItem>,
}

/// What became of a request's key when it was claimed.
pub enum RequestClaim {
    /// The key is ours now: go on with the request.
    Claimed,
    /// The key was used within the window for the same body: its answer.
    Replayed(Vec<AcceptedItem>),
    /// The key was used within the window for a different body.
    Reused,
}

/// What became of a notification's own idempotency key when it was claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationClaim {
    /// New (or the notification has no key): it is this notification's now.
    New,
    /// Its sender used it within the window for the same notification: the first one's id.
    Duplicate(String),
    /// Its sender used it within the window for a different notification.
    Reused,
}

impl Shared {
    /// Connects, and checks Redis answers.
    pub async fn connect(url: &str) -> Result<Shared> {
        let unreachable = |reason: String| Error::Unreachable {
            url: super::redacted(url),
            reason,
        };
        let client = redis::Client::open(url).map_err(|e| unreachable(e.to_string()))?;
        let mut redis = tokio::time::timeout(CONNECT_TIMEOUT, ConnectionManager::new(client))
            .await
            .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut redis)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Shared { redis })
    }

    /// For `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Claims a request's idempotency key for `window`, recording the answer it will get
    /// (`items`) so that a repeat arriving meanwhile gets the same ids.
    pub async fn claim_request(
        &self,
        key: &RequestKey,
        items: &[AcceptedItem],
        window: Duration,
    ) -> Result<RequestClaim> {
        let name = request_key_name(key);
        let record = serde_json::to_string(&RequestRecord {
            fingerprint: key.fingerprint.clone(),
            items: items.to_vec(),
        })
        .expect("a record serialises");
        let mut redis = self.redis.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(&name)
            .arg(&record)
            .arg("NX")
            .arg("PX")
            .arg(window.as_millis() as u64)
            .query_async(&mut redis)
            .await?;
        if set.is_some() {
            return Ok(RequestClaim::Claimed);
        }
        let existing: Option<String> = redis.get(&name).await?;
        let Some(existing) =
            existing.and_then(|text| serde_json::from_str::<RequestRecord>(&text).ok())
        else {
            // It expired between the two commands: the window is over, so it is ours.
            return Box::pin(self.claim_request(key, items, window)).await;
        };
        Ok(if existing.fingerprint == key.fingerprint {
            RequestClaim::Replayed(existing.items)
        } else {
            RequestClaim::Reused
        })
    }

    /// Replaces a claimed request's answer with the final one.
    pub async fn settle_request(
        &self,
        key: &RequestKey,
        items: &[AcceptedItem],
        window: Duration,
    ) -> Result<()> {
        let record = serde_json::to_string(&RequestRecord {
            fingerprint: key.fingerprint.clone(),
            items: items.to_vec(),
        })
        .expect("a record serialises");
        let _: () = self
            .redis
            .clone()
            .pset_ex(request_key_name(key), record, window.as_millis() as u64)
            .await?;
        Ok(())
    }

    /// Gives back what a request claimed when it was not accepted after all, so its retry
    /// is not mistaken for a repeat.
    pub async fn release(
        &self,
        request: Option<&RequestKey>,
        key_owner: &str,
        notifications: &[&Notification],
    ) -> Result<()> {
        let mut names: Vec<String> = request.map(request_key_name).into_iter().collect();
        names.extend(
            notifications
                .iter()
                .filter_map(|n| notification_key_name(key_owner, n)),
        );
        if names.is_empty() {
            return Ok(());
        }
        let _: () = self.redis.clone().del(names).await?;
        Ok(())
    }

    /// Claims each notification's own idempotency key, as `key_owner`'s, for `window`: what
    /// became of each (see [`NotificationClaim`]).
    pub async fn claim_notifications(
        &self,
        key_owner: &str,
        notifications: &[&Notification],
        window: Duration,
    ) -> Result<Vec<NotificationClaim>> {
        let keyed: Vec<(usize, String, String)> = notifications
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let name = notification_key_name(key_owner, n)?;
                Some((i, name, notification_fingerprint(n)))
            })
            .collect();
        let mut answers = vec![NotificationClaim::New; notifications.len()];
        if keyed.is_empty() {
            return Ok(answers);
        }
        // One round trip: SET NX for every key, then GET, which returns our own value
        // where the SET won and the first holder's where it lost.
        let mut pipe = redis::pipe();
        for (i, name, fingerprint) in &keyed {
            pipe.cmd("SET")
                .arg(name)
                .arg(format!("{} {fingerprint}", notifications[*i].id))
                .arg("NX")
                .arg("PX")
                .arg(window.as_millis() as u64)
                .ignore();
        }
        for (_, name, _) in &keyed {
            pipe.get(name);
        }
        let holders: Vec<Option<String>> = pipe.query_async(&mut self.redis.clone()).await?;
        for ((i, _, fingerprint), holder) in keyed.iter().zip(holders) {
            let Some(holder) = holder else {
                // It expired between the SET and the GET: the window is over.
                continue;
            };
            // A value without a fingerprint was written before notifications had one; it
            // is taken for the same notification.
            let (first_id, first_fingerprint) = holder.split_once(' ').unwrap_or((&holder, ""));
            if first_id == notifications[*i].id {
                continue;
            }
            answers[*i] = if first_fingerprint.is_empty() || first_fingerprint == fingerprint {
                NotificationClaim::Duplicate(first_id.to_string())
            } else {
                NotificationClaim::Reused
            };
        }
        Ok(answers)
    }

    /// A rate limiter for one channel that counts every process's calls.
    pub fn limiter(&self, channel: &str, limit: RateLimit) -> SharedLimiter {
        SharedLimiter {
            redis: self.redis.clone(),
            channel: channel.to_owned(),
            limit,
            window: 0,
            tokens: 0,
            local: governor::RateLimiter::direct(crate::delivery::quota(&limit)),
            redis_down: false,
        }
    }
}

fn request_key_name(key: &RequestKey) -> String {
    format!("switchyard:idem:req:{}:{}", key.scope, key.key)
}

fn notification_key_name(key_owner: &str, notification: &Notification) -> Option<String> {
    let key = notification.idempotency_key.as_ref()?;
    Some(format!("switchyard:idem:n:{key_owner}:{key}"))
}

/// One channel's share of a rate limit counted in Redis, in fixed windows of the limit's
/// period. A process claims calls a few at a time and spends them locally; calls left when
/// the window ends are dropped, so the processes together stay under the limit.
pub struct SharedLimiter {
    redis: ConnectionManager,
    channel: String,
    limit: RateLimit,
    /// The window the local tokens belong to.
    window: u64,
    tokens: u32,
    /// Used while Redis is unreachable, so deliveries go on at this process's own pace
    /// rather than stopping.
    local: governor::DefaultDirectRateLimiter,
    redis_down: bool,
}

impl SharedLimiter {
    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }

    /// Waits until the channel may make one more call.
    pub async fn until_ready(&mut self) {
        let period_ms = (self.limit.per.as_millis() as u64).max(1);
        loop {
            let now = crate::store::now_ms() as u64;
            let window = now / period_ms;
            if window == self.window && self.tokens > 0 {
                self.tokens -= 1;
                return;
            }
            match self.claim(window, period_ms).await {
                Ok(granted) => {
                    if self.redis_down {
                        tracing::info!(channel = %self.channel, "Redis is back; the channel's rate limit is shared again");
                        self.redis_down = false;
                    }
                    self.window = window;
                    self.tokens = granted;
                    if granted == 0 {
                        let next = (window + 1) * period_ms;
                        tokio::time::sleep(Duration::from_millis(next.saturating_sub(now))).await;
                    }
                }
                Err(error) => {
                    if !self.redis_down {
                        tracing::warn!(channel = %self.channel, %error, "Redis is unreachable; the channel's rate limit holds per process until it is back");
                        self.redis_down = true;
                    }
                    self.local.until_ready().await;
                    return;
                }
            }
        }
    }

    /// Claims up to a share of `window`'s calls; returns how many were granted.
    async fn claim(&mut self, window: u64, period_ms: u64) -> Result<u32> {
        let want = (self.limit.count / RATE_CLAIM_SHARE).max(1);
        let key = format!("switchyard:rate:{}:{window}", self.channel);
        let (total,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, want)
            .pexpire(&key, (period_ms * 2) as i64)
            .ignore()
            .query_async(&mut self.redis)
            .await?;
        let before = total.saturating_sub(want as u64);
        let left = (self.limit.count as u64).saturating_sub(before);
        Ok(left.min(want as u64) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `redis-server` of its own on a free loopback port, stopped when dropped.
    struct RedisServer {
        child: std::process::Child,
        url: String,
    }

    impl RedisServer {
        fn start() -> Option<RedisServer> {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .ok()?;
            Some(RedisServer {
                child,
                url: format!("redis://127.0.0.1:{port}"),
            })
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn notification(id: &str, payload: &str) -> Notification {
        Notification {
            id: id.into(),
            kind: "invoice.paid".into(),
            source: "api".into(),
            attributes: Vec::new(),
            payload: payload.into(),
            idempotency_key: Some("invoice-42".into()),
            created_at: 0,
            tenant: None,
        }
    }

    /// The Kafka path's keys agree with the store's: a key is its owner's (token and
    /// source), a repeat of the same notification is a duplicate of the first, and the
    /// same key with another notification is refused.
    #[tokio::test]
    async fn a_notification_key_is_its_owners_and_carries_its_fingerprint() {
        let Some(server) = RedisServer::start() else {
            panic!("this test needs `redis-server` on the PATH");
        };
        let mut shared = None;
        for _ in 0..100 {
            if let Ok(connected) = Shared::connect(&server.url).await {
                shared = Some(connected);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let shared = shared.expect("redis-server answers within 5 s");
        let window = Duration::from_secs(60);
        let (a, b) = ("token:a:api", "token:b:api");
        let first = notification("n1", "{\"invoice\":42}");
        let claim = |owner: &'static str, n: Notification| {
            let shared = shared.clone();
            async move {
                shared
                    .claim_notifications(owner, &[&n], window)
                    .await
                    .unwrap()
            }
        };

        assert_eq!(claim(a, first.clone()).await, [NotificationClaim::New]);
        // Another owner's same key: its own.
        assert_eq!(
            claim(b, notification("n2", "{\"invoice\":42}")).await,
            [NotificationClaim::New]
        );
        // The same owner, the same notification: the first one's id.
        assert_eq!(
            claim(a, notification("n3", "{\"invoice\":42}")).await,
            [NotificationClaim::Duplicate("n1".into())]
        );
        // The same owner, another notification under the key: refused.
        assert_eq!(
            claim(a, notification("n4", "{\"invoice\":43}")).await,
            [NotificationClaim::Reused]
        );
        // Within one request, a repeat of its own key is a duplicate of its first.
        let (x, y) = (
            Notification {
                idempotency_key: Some("k2".into()),
                ..notification("n5", "{}")
            },
            Notification {
                idempotency_key: Some("k2".into()),
                ..notification("n6", "{}")
            },
        );
        let claims = shared
            .claim_notifications(a, &[&x, &y], window)
            .await
            .unwrap();
        assert_eq!(
            claims,
            [
                NotificationClaim::New,
                NotificationClaim::Duplicate("n5".into())
            ]
        );
    }
}
