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
//!
//! # Before sign-in: nothing stored
//!
//! The sign-in form needs a CSRF token before there is anyone to keep a session for, and
//! anyone may ask for that form. So nothing is stored for it: the visitor gets a session
//! cookie holding 256 random bits that no store knows (a *pre-session*), and the form's
//! token is a digest of that cookie. Signing in checks the token against the cookie the
//! browser sent (a double-submit check). Another site can neither read that cookie
//! (`HttpOnly`) nor have it sent along (`SameSite=Strict`) nor plant one (`__Host-`), so it
//! cannot produce a matching pair; and signing in gives the session a fresh id, so the
//! pre-session cookie is worth nothing afterwards. The store therefore holds only signed-in
//! sessions, however many anonymous visitors ask for a form or `GET /api/v1/session/csrf`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem::session::{CookieConfig, RedisStorage, Session, SessionStorage};
use poem::web::cookie::{CookieJar, SameSite};
use rand::RngCore;
use redis::aio::ConnectionManager;
use serde_json::Value;
use sha2::{Digest, Sha256};

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
enum SessionStore {
    Memory(MemorySessions),
    Redis {
        storage: RedisStorage<ConnectionManager>,
        /// The same connection, for counting sessions.
        connection: ConnectionManager,
    },
}

/// Keys in Redis look like `switchyard:session:<id>`.
const REDIS_PREFIX: &str = "switchyard:session:";

/// Sessions in this process's memory, each until its expiry. Expired entries are dropped
/// when read and swept out at most once a second while sessions are written.
#[derive(Default)]
struct MemorySessions {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    sessions: HashMap<String, (BTreeMap<String, Value>, Instant)>,
    next_sweep: Option<Instant>,
}

impl MemorySessions {
    fn load(&self, id: &str) -> Option<BTreeMap<String, Value>> {
        let inner = self
            .inner
            .lock()
            .expect("the session map is never poisoned");
        let (entries, expires) = inner.sessions.get(id)?;
        (*expires > Instant::now()).then(|| entries.clone())
    }

    fn store(&self, id: &str, entries: &BTreeMap<String, Value>, ttl: Duration) {
        let now = Instant::now();
        let mut inner = self
            .inner
            .lock()
            .expect("the session map is never poisoned");
        if inner.next_sweep.is_none_or(|at| at <= now) {
            inner.sessions.retain(|_, (_, expires)| *expires > now);
            inner.next_sweep = Some(now + Duration::from_secs(1));
        }
        inner
            .sessions
            .insert(id.to_owned(), (entries.clone(), now + ttl));
    }

    fn remove(&self, id: &str) {
        let mut inner = self
            .inner
            .lock()
            .expect("the session map is never poisoned");
        inner.sessions.remove(id);
    }

    fn count(&self) -> usize {
        let now = Instant::now();
        let inner = self
            .inner
            .lock()
            .expect("the session map is never poisoned");
        inner
            .sessions
            .values()
            .filter(|(_, expires)| *expires > now)
            .count()
    }
}

/// A session store whose entries expire after `ttl` without use. Clones share the store.
#[derive(Clone)]
pub struct ExpiringSessions {
    store: Arc<SessionStore>,
    ttl: Duration,
}

impl ExpiringSessions {
    /// Sessions in `url`: `memory`, or a `redis://` URL (connected and checked now, so a
    /// wrong URL stops the start with a clear error).
    pub async fn open(url: &str, ttl: Duration) -> anyhow::Result<ExpiringSessions> {
        let store = if url == "memory" {
            SessionStore::Memory(MemorySessions::default())
        } else {
            // Named by scheme, host and port only: the URL may carry Redis's password.
            let shown = crate::bus::redacted(url);
            let client = redis::Client::open(url)
                .map_err(|e| anyhow::anyhow!("admin.sessions `{shown}` is not a Redis URL: {e}"))?;
            let connection =
                tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new(client))
                    .await
                    .map_err(|_| anyhow::anyhow!("Redis at {shown} did not answer within 5 s"))?
                    .map_err(|e| anyhow::anyhow!("could not connect to Redis at {shown}: {e}"))?;
            SessionStore::Redis {
                storage: RedisStorage::new(connection.clone()),
                connection,
            }
        };
        Ok(ExpiringSessions {
            store: Arc::new(store),
            ttl,
        })
    }

    /// How many sessions are stored and not expired. In Redis this scans the session
    /// keys, so it is for tests and diagnostics, not for every request.
    pub async fn count(&self) -> anyhow::Result<usize> {
        match &*self.store {
            SessionStore::Memory(sessions) => Ok(sessions.count()),
            SessionStore::Redis { connection, .. } => {
                let mut connection = connection.clone();
                let mut cursor: u64 = 0;
                let mut count = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{REDIS_PREFIX}*"))
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut connection)
                        .await?;
                    count += keys.len();
                    if next == 0 {
                        return Ok(count);
                    }
                    cursor = next;
                }
            }
        }
    }
}

impl SessionStorage for ExpiringSessions {
    async fn load_session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> poem::Result<Option<BTreeMap<String, Value>>> {
        match &*self.store {
            SessionStore::Memory(s) => Ok(s.load(session_id)),
            SessionStore::Redis { storage, .. } => {
                storage.load_session(&redis_key(session_id)).await
            }
        }
    }

    async fn update_session<'a>(
        &'a self,
        session_id: &'a str,
        entries: &'a BTreeMap<String, Value>,
        _expires: Option<Duration>,
    ) -> poem::Result<()> {
        // An empty session (one that timed out and was cleared) is not worth keeping: its
        // cookie then works as a pre-session cookie.
        if entries.is_empty() {
            return self.remove_session(session_id).await;
        }
        let ttl = Some(self.ttl);
        match &*self.store {
            SessionStore::Memory(s) => {
                s.store(session_id, entries, self.ttl);
                Ok(())
            }
            SessionStore::Redis { storage, .. } => {
                storage
                    .update_session(&redis_key(session_id), entries, ttl)
                    .await
            }
        }
    }

    async fn remove_session<'a>(&'a self, session_id: &'a str) -> poem::Result<()> {
        match &*self.store {
            SessionStore::Memory(s) => {
                s.remove(session_id);
                Ok(())
            }
            SessionStore::Redis { storage, .. } => {
                storage.remove_session(&redis_key(session_id)).await
            }
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
            csrf_token: signed_in_csrf_token(session),
        })
    }

    /// The CSRF token for this request's forms. A session that has one (a signed-in
    /// session) keeps it; otherwise it is the pre-session token, derived from the session
    /// cookie, which is set here when the request came without one. Nothing is stored.
    pub fn csrf_token(&self, session: &Session, cookies: &CookieJar) -> String {
        if let Some(token) = session.get::<String>(CSRF) {
            return token;
        }
        let cookie = cookie_config();
        let pre_session = match cookie.get_cookie_value(cookies) {
            Some(id) if looks_like_an_id(&id) => id,
            _ => {
                let id = random_token();
                cookie.set_cookie_value(cookies, &id);
                id
            }
        };
        pre_session_token(&pre_session)
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

    /// For signing in: the session's own CSRF token, or, for a visitor without a stored
    /// session, the pre-session token of the cookie it sent.
    pub fn sign_in_csrf_ok(
        &self,
        session: &Session,
        cookies: &CookieJar,
        presented: Option<&str>,
    ) -> bool {
        if session.get::<String>(CSRF).is_some() {
            return self.csrf_ok(session, presented);
        }
        match (cookie_config().get_cookie_value(cookies), presented) {
            (Some(id), Some(presented)) if looks_like_an_id(&id) => {
                crypto::constant_time_eq(pre_session_token(&id).as_bytes(), presented.as_bytes())
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

/// The CSRF token of a signed-in session: set at sign-in; made here for a session signed
/// in before sessions carried one.
fn signed_in_csrf_token(session: &Session) -> String {
    if let Some(token) = session.get::<String>(CSRF) {
        return token;
    }
    let token = random_token();
    session.set(CSRF, &token);
    token
}

/// The CSRF token of a pre-session: a digest of its cookie, so the token in a page does
/// not give away the cookie (which `HttpOnly` keeps from scripts).
fn pre_session_token(id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"switchyard pre-session csrf\0")
        .chain_update(id.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// Whether a cookie value has the shape of the ids made here (43 URL-safe characters).
fn looks_like_an_id(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// 256 random bits, URL-safe.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
