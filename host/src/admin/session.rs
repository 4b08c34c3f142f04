//! Admin sessions: where they live, how long they last, and their CSRF tokens.
//!
//! poem's `ServerSession` does the cookie and the id: 256 random bits, a new id when a
//! session is renewed (the old one is removed from the store), and removal on purge. This
//! module adds what it leaves to the application:
//! - the idle and absolute timeouts, checked against an injectable [`Clock`] on every
//!   request, so an expired session is over even if its storage entry lingers;
//! - a storage TTL of the idle timeout, so abandoned sessions do not pile up;
//! - the CSRF synchronizer token each session carries;
//! - a key prefix in Redis, which is usually shared with other data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem::session::{CookieConfig, MemoryStorage, RedisStorage, Session, SessionStorage};
use poem::web::cookie::SameSite;
use rand::RngCore;
use redis::aio::ConnectionManager;
use serde_json::Value;

use crate::crypto;

/// The session cookie. `__Host-` makes browsers insist on `Secure`, `Path=/` and no
/// `Domain`, so no other host or path can set or shadow it.
pub const COOKIE_NAME: &str = "__Host-switchyard-session";

const USER: &str = "user";
const CSRF: &str = "csrf";
const SIGNED_IN_AT: &str = "signed_in_at";
const LAST_SEEN: &str = "last_seen";

/// The time the session rules see, in Unix milliseconds. Tests substitute their own.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(crate::store::now_ms))
    }

    /// A clock that reads `now`, for tests that move time.
    pub fn from_fn(now: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

/// The cookie's attributes, each set explicitly rather than left to defaults.
pub fn cookie_config() -> CookieConfig {
    CookieConfig::default()
        .name(COOKIE_NAME)
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        // No Max-Age: the cookie ends with the browser; the server ends the session.
        .max_age(None)
}

/// Where sessions are kept: in this process, or in Redis for several processes.
pub enum SessionStore {
    Memory(MemoryStorage),
    Redis(RedisStorage<ConnectionManager>),
}

/// Keys in Redis look like `switchyard:session:<id>`.
const REDIS_PREFIX: &str = "switchyard:session:";

/// A [`SessionStore`] whose entries expire after `ttl` without use.
pub struct ExpiringSessions {
    store: SessionStore,
    ttl: Duration,
}

impl ExpiringSessions {
    /// Sessions in `url`: `memory`, or a `redis://` URL (connected and checked now, so a
    /// wrong URL stops the start with a clear error).
    pub async fn open(url: &str, ttl: Duration) -> anyhow::Result<ExpiringSessions> {
        let store = if url == "memory" {
            SessionStore::Memory(MemoryStorage::new())
        } else {
            let client = redis::Client::open(url)
                .map_err(|e| anyhow::anyhow!("admin.sessions `{url}` is not a Redis URL: {e}"))?;
            let connection =
                tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new(client))
                    .await
                    .map_err(|_| anyhow::anyhow!("Redis at {url} did not answer within 5 s"))?
                    .map_err(|e| anyhow::anyhow!("could not connect to Redis at {url}: {e}"))?;
            SessionStore::Redis(RedisStorage::new(connection))
        };
        Ok(ExpiringSessions { store, ttl })
    }
}

impl SessionStorage for ExpiringSessions {
    async fn load_session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> poem::Result<Option<BTreeMap<String, Value>>> {
        match &self.store {
            SessionStore::Memory(s) => s.load_session(session_id).await,
            SessionStore::Redis(s) => s.load_session(&redis_key(session_id)).await,
        }
    }

    async fn update_session<'a>(
        &'a self,
        session_id: &'a str,
        entries: &'a BTreeMap<String, Value>,
        _expires: Option<Duration>,
    ) -> poem::Result<()> {
        let ttl = Some(self.ttl);
        match &self.store {
            SessionStore::Memory(s) => s.update_session(session_id, entries, ttl).await,
            SessionStore::Redis(s) => s.update_session(&redis_key(session_id), entries, ttl).await,
        }
    }

    async fn remove_session<'a>(&'a self, session_id: &'a str) -> poem::Result<()> {
        match &self.store {
            SessionStore::Memory(s) => s.remove_session(session_id).await,
            SessionStore::Redis(s) => s.remove_session(&redis_key(session_id)).await,
        }
    }
}

fn redis_key(session_id: &str) -> String {
    format!("{REDIS_PREFIX}{session_id}")
}

/// The session rules: timeouts and CSRF tokens.
#[derive(Clone)]
pub struct SessionRules {
    pub clock: Clock,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
}

/// The admin a request is signed in as.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub username: String,
    pub csrf_token: String,
}

impl SessionRules {
    /// Who this session is signed in as, or `None`. A session past its idle or absolute
    /// timeout is emptied and given a new id, so its old cookie is worthless from here on.
    pub fn signed_in(&self, session: &Session) -> Option<SignedIn> {
        let username: String = session.get(USER)?;
        let now = self.clock.now_ms();
        let signed_in_at: i64 = session.get(SIGNED_IN_AT).unwrap_or(i64::MIN);
        let last_seen: i64 = session.get(LAST_SEEN).unwrap_or(i64::MIN);
        let idle = now.saturating_sub(last_seen) > self.idle_timeout.as_millis() as i64;
        let too_old = now.saturating_sub(signed_in_at) > self.absolute_timeout.as_millis() as i64;
        if idle || too_old {
            session.clear();
            session.renew();
            return None;
        }
        session.set(LAST_SEEN, now);
        Some(SignedIn {
            username,
            csrf_token: self.csrf_token(session),
        })
    }

    /// The session's CSRF token, made on first use: a session that is not signed in has
    /// one too, so the sign-in form carries one.
    pub fn csrf_token(&self, session: &Session) -> String {
        if let Some(token) = session.get::<String>(CSRF) {
            return token;
        }
        let token = random_token();
        session.set(CSRF, &token);
        token
    }

    /// Whether `presented` is this session's CSRF token, compared in constant time.
    pub fn csrf_ok(&self, session: &Session, presented: Option<&str>) -> bool {
        match (session.get::<String>(CSRF), presented) {
            (Some(expected), Some(presented)) => {
                crypto::constant_time_eq(expected.as_bytes(), presented.as_bytes())
            }
            _ => false,
        }
    }

    /// Signs `username` in on this session. The session gets a new id (the pre-login id is
    /// removed from the store) and a new CSRF token.
    pub fn sign_in(&self, session: &Session, username: &str) -> SignedIn {
        let now = self.clock.now_ms();
        let csrf_token = random_token();
        session.clear();
        session.renew();
        session.set(USER, username);
        session.set(SIGNED_IN_AT, now);
        session.set(LAST_SEEN, now);
        session.set(CSRF, &csrf_token);
        SignedIn {
            username: username.to_owned(),
            csrf_token,
        }
    }
}

/// 256 random bits, URL-safe.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
