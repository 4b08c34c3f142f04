//! Portal link tokens: what a link carries, and its signature.
//!
//! A token is `<claims>.<mac>`, both base64url without padding. The claims are JSON:
//! the version, the tenant and when it was created (so a link to a deleted tenant never
//! opens a later tenant given the same id), when the link expires (Unix ms) and the
//! link's random id. The MAC is HMAC-SHA256 over the encoded claims exactly as they
//! travel, so nothing has to be re-encoded the same way to check it, under a key derived
//! from the vault's master key
//! ([`crate::vault::Vault::derived_keys`]): every process of a deployment shares that key,
//! so a link minted by one opens on another, and it survives restarts. While a master key
//! rotation runs, the older keys of the ring still check links signed before it; once it
//! has retired them, such links stop opening (they last minutes, and new ones are minted).
//!
//! Nothing in a token is secret (a tenant id, a time, a random id); it must only be
//! unforgeable. That the link opens at most once is the store's part (see
//! [`crate::store::Store::open_portal_session`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac as _;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::crypto;

/// What the key that signs links is derived for.
pub const KEY_PURPOSE: &str = "portal-link";

/// 2 added `born`; a version 1 link (minted before) is refused, and a new one asked for.
const VERSION: u8 = 2;
/// Far longer than any token made here (a 64-character tenant id gives about 250): a
/// longer one is refused before anything is decoded or hashed.
const MAX_TOKEN_LEN: usize = 1024;
const MAC_LEN: usize = 32;

/// What a link says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    v: u8,
    pub tenant: String,
    /// When the tenant was created (Unix ms): ids can be reused after a delete, and the
    /// link is for this tenant only, not a later one with its id.
    pub born: i64,
    /// When the link stops opening, in Unix ms.
    pub exp: i64,
    /// The link's id: opening the link spends it.
    pub id: String,
}

impl Claims {
    /// A new link to the portal of `tenant`, created at `born`, with a fresh random id.
    pub fn new(tenant: &str, born: i64, expires_at_ms: i64) -> Claims {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        Claims {
            v: VERSION,
            tenant: tenant.to_owned(),
            born,
            exp: expires_at_ms,
            id: URL_SAFE_NO_PAD.encode(id),
        }
    }
}

/// The token for `claims`, signed with `key`.
pub fn sign(key: &[u8; 32], claims: &Claims) -> String {
    let encoded = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let mac = URL_SAFE_NO_PAD.encode(mac(key, &encoded));
    format!("{encoded}.{mac}")
}

/// The claims of `token` when one of `keys` signed it; `None` for anything else. Expiry is
/// the caller's to check: a signed but expired token still says whose it was.
pub fn verify(keys: &[[u8; 32]], token: &str) -> Option<Claims> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (encoded, presented) = token.split_once('.')?;
    let presented = URL_SAFE_NO_PAD.decode(presented).ok()?;
    if presented.len() != MAC_LEN {
        return None;
    }
    // Every key is tried in full: which one matched is no secret, but the comparison is
    // constant-time, so how much of a forged MAC was right is.
    let signed = keys
        .iter()
        .any(|key| crypto::constant_time_eq(&mac(key, encoded), &presented));
    if !signed {
        return None;
    }
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
    (claims.v == VERSION).then_some(claims)
}

fn mac(key: &[u8; 32], encoded_claims: &str) -> [u8; MAC_LEN] {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(b"switchyard portal link\0");
    mac.update(encoded_claims.as_bytes());
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const OTHER_KEY: [u8; 32] = [8; 32];

    #[test]
    fn a_signed_token_verifies_under_its_key_or_a_ring_that_holds_it() {
        let claims = Claims::new("acme", 1_795_000_000_000, 1_795_910_400_000);
        let token = sign(&KEY, &claims);
        assert_eq!(verify(&[KEY], &token), Some(claims.clone()));
        assert_eq!(verify(&[OTHER_KEY, KEY], &token), Some(claims));
        assert_eq!(verify(&[OTHER_KEY], &token), None);
        assert_eq!(verify(&[], &token), None);
    }

    #[test]
    fn links_get_distinct_ids() {
        assert_ne!(
            Claims::new("acme", 1_795_000_000_000, 0).id,
            Claims::new("acme", 1_795_000_000_000, 0).id
        );
    }

    #[test]
    fn any_change_to_a_token_is_refused() {
        let token = sign(
            &KEY,
            &Claims::new("acme", 1_795_000_000_000, 1_795_910_400_000),
        );
        let (claims, mac) = token.split_once('.').unwrap();
        // Another tenant's claims under this token's MAC.
        let globex = sign(
            &KEY,
            &Claims::new("globex", 1_795_000_000_000, 1_795_910_400_000),
        );
        let (globex_claims, _) = globex.split_once('.').unwrap();
        assert_eq!(verify(&[KEY], &format!("{globex_claims}.{mac}")), None);
        // Every single character changed, one at a time.
        for (index, original) in token.char_indices() {
            let replacement = if original == 'A' { 'B' } else { 'A' };
            let mut tampered = token.clone();
            tampered.replace_range(index..index + 1, &replacement.to_string());
            assert_eq!(verify(&[KEY], &tampered), None, "changed at {index}");
        }
        let malformed: [&str; 7] = [
            "",
            ".",
            claims,
            &format!("{claims}."),
            &format!("{claims}.{mac}.x"),
            &format!("{claims}.{}", &mac[..10]),
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ];
        for malformed in malformed {
            assert_eq!(verify(&[KEY], malformed), None, "{malformed:?}");
        }
    }

    #[test]
    fn a_well_signed_token_of_another_version_is_refused() {
        let mut claims = Claims::new("acme", 1_795_000_000_000, 0);
        claims.v = VERSION + 1;
        assert_eq!(verify(&[KEY], &sign(&KEY, &claims)), None);
        // A version 1 link (no `born`) is refused too.
        let v1 = URL_SAFE_NO_PAD.encode(r#"{"v":1,"tenant":"acme","exp":0,"id":"x"}"#);
        let token = format!("{v1}.{}", URL_SAFE_NO_PAD.encode(mac(&KEY, &v1)));
        assert_eq!(verify(&[KEY], &token), None);
    }
}
