//! Portal sessions: the cookie, its digest in the store, and the CSRF token of its forms.
//!
//! A portal session is not an admin session, and neither opens the other's pages: its
//! cookie has its own name and path, it is kept in its own table (the admin's sessions are
//! in memory or Redis), and it names a tenant, never a user.
//!
//! The cookie holds 256 random bits. The store keeps only their digest, so a copy of the
//! database opens no session. A session lasts `portal.session_ttl` from the link's
//! opening, and using it does not extend it: a portal is opened from the operator's
//! product, which can always mint a fresh link.
//!
//! The CSRF token of a session's forms is a digest of its cookie (under another label than
//! the stored digest): it can only be made by whoever holds the cookie, which `HttpOnly`
//! keeps from scripts and the browser keeps from other sites, and showing it in a page
//! does not give the cookie away. So there is nothing more to store.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem::http::{HeaderMap, HeaderValue, header};
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::crypto;

/// The cookie's name. `__Secure-` makes browsers refuse it unless it is `Secure` and set
/// over HTTPS (or from `localhost`). Not `__Host-`, which would force `Path=/`: the portal
/// cookie goes only to `/portal`, so no other part of the hub ever receives it.
pub const COOKIE_NAME: &str = "__Secure-switchyard-portal";
const COOKIE_PATH: &str = "/portal";

/// A new session's cookie value: 256 random bits, URL-safe.
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The digest under which the store keeps the session.
pub fn session_digest(session_id: &str) -> String {
    hex::encode(
        Sha256::new()
            .chain_update(b"switchyard portal session\0")
            .chain_update(session_id.as_bytes())
            .finalize(),
    )
}

/// The CSRF token of the session's forms.
pub fn csrf_token(session_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(
        Sha256::new()
            .chain_update(b"switchyard portal csrf\0")
            .chain_update(session_id.as_bytes())
            .finalize(),
    )
}

/// Whether `presented` is the CSRF token of `session_id`, compared in constant time.
pub fn csrf_ok(session_id: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|presented| {
        crypto::constant_time_eq(csrf_token(session_id).as_bytes(), presented.as_bytes())
    })
}

/// The session cookie the request carries, when it has the shape of one made here.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
        .filter(|value| looks_like_an_id(value))
}

/// The `Set-Cookie` that starts a session, gone from the browser when the session ends.
///
/// `SameSite=None`, not the admin console's `Strict`: the portal is made to be embedded in
/// the operator's product, an iframe on another site, and a browser sends `Strict` or
/// `Lax` cookies to such a frame on no request at all, so the session would never reach
/// the pages it opened. What `SameSite` would have stopped, other sites' forms posting
/// with the cookie, is stopped by the CSRF token every form carries (and by refusing
/// state changes that a browser marks as cross-site); reading pages from another site is
/// stopped by the browser's same-origin policy, and framing them by `frame-ancestors`.
///
/// `Partitioned` (CHIPS) keys the cookie to the top-level site it was set under: browsers
/// that block third-party cookies still keep a partitioned one, so the embed works there
/// too, and a session opened inside one operator's page is not sent to frames on any
/// other site. Browsers that do not know the attribute ignore it.
pub fn start_cookie(session_id: &str, lasts: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={session_id}; Path={COOKIE_PATH}; Max-Age={}; Secure; HttpOnly; \
         SameSite=None; Partitioned",
        lasts.as_secs()
    ))
    .expect("a session id is URL-safe text")
}

/// The `Set-Cookie` that drops the session cookie.
pub fn end_cookie() -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}=; Path={COOKIE_PATH}; Max-Age=0; Secure; HttpOnly; SameSite=None; \
         Partitioned"
    ))
    .expect("ASCII")
}

/// Whether a cookie value has the shape of the ids made here (43 URL-safe characters).
fn looks_like_an_id(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others_and_must_look_like_one() {
        let id = new_session_id();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!(
                "__Host-switchyard-session=x; {COOKIE_NAME}={id}; other=1"
            ))
            .unwrap(),
        );
        assert_eq!(session_cookie(&headers), Some(id));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE_NAME}=short")).unwrap(),
        );
        assert_eq!(session_cookie(&headers), None);
        // The admin console's cookie is not a portal session.
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("__Host-switchyard-session={}", new_session_id()))
                .unwrap(),
        );
        assert_eq!(session_cookie(&headers), None);
    }

    #[test]
    fn csrf_tokens_belong_to_one_session_and_reveal_neither_its_cookie_nor_digest() {
        let (a, b) = (new_session_id(), new_session_id());
        assert!(csrf_ok(&a, Some(&csrf_token(&a))));
        assert!(!csrf_ok(&a, Some(&csrf_token(&b))));
        assert!(!csrf_ok(&a, None));
        assert!(!csrf_ok(&a, Some("")));
        assert_ne!(csrf_token(&a), a);
        assert_ne!(csrf_token(&a), session_digest(&a));
    }

    #[test]
    fn the_cookie_is_secure_http_only_and_scoped_to_the_portal() {
        let set = start_cookie(&new_session_id(), Duration::from_secs(3600));
        let set = set.to_str().unwrap();
        for attribute in [
            "Path=/portal;",
            "Max-Age=3600;",
            "Secure;",
            "HttpOnly;",
            "SameSite=None;",
        ] {
            assert!(set.contains(attribute), "{set} lacks {attribute}");
        }
        assert!(end_cookie().to_str().unwrap().contains("Max-Age=0;"));
    }
}
