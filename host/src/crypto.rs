//! Cryptographic helpers shared across the flow: API tokens and their digests.
//!
//! API tokens carry 256 bits from the OS's CSPRNG, so a fast unsalted SHA-256 digest is
//! enough to store them (there is nothing to brute-force); argon2 is for passwords.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every API token starts with this, so secret scanners and people can tell what it is.
pub const TOKEN_PREFIX: &str = "sy_";

/// A new API token: the prefix and 32 random bytes in hex.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// The SHA-256 digest under which a token is stored.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// SHA-256 in hex, for fingerprints of request bodies.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_digest_stably() {
        let a = generate_token();
        let b = generate_token();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert_eq!(token_digest(&a), token_digest(&a));
        assert!(constant_time_eq(&token_digest(&a), &token_digest(&a)));
        assert!(!constant_time_eq(&token_digest(&a), &token_digest(&b)));
    }
}
