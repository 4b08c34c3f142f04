//! Cryptographic helpers shared across the flow: API tokens and their digests, and the
//! limit on password hashing.
//!
//! API tokens carry 256 bits from the OS's CSPRNG, so a fast unsalted SHA-256 digest is
//! enough to store them (there is nothing to brute-force); argon2 is for passwords.

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

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

/// Runs password hashes (argon2, ~19 MiB and tens of milliseconds each) at most
/// `concurrency` at a time. A hash that cannot start within `wait` is refused with
/// [`Busy`] rather than queued, so a flood of sign-ins costs a bounded amount of memory
/// and the queue never grows past what can be served promptly.
#[derive(Clone)]
pub struct HashLimiter {
    permits: Arc<Semaphore>,
    wait: Duration,
}

/// Every password-hashing slot stayed taken for the whole wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many sign-ins at once; retry in a moment")]
pub struct Busy;

impl HashLimiter {
    /// At most `concurrency` hashes at once (at least one); others wait up to `wait`.
    pub fn new(concurrency: usize, wait: Duration) -> HashLimiter {
        HashLimiter {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            wait,
        }
    }

    /// Runs `hash` on a blocking thread once a slot is free, or gives up after the wait.
    pub async fn run<T: Send + 'static>(
        &self,
        hash: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .expect("the semaphore is never closed");
        let outcome = tokio::task::spawn_blocking(move || {
            let outcome = hash();
            drop(permit);
            outcome
        })
        .await;
        Ok(outcome.expect("password hashing does not panic"))
    }
}

/// The default number of password hashes at once: one per CPU.
pub fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_beyond_the_limit_wait_then_are_refused() {
        let limiter = HashLimiter::new(1, Duration::from_millis(100));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let holder = {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter
                    .run(move || {
                        started_tx.send(()).unwrap();
                        hold.recv().unwrap();
                    })
                    .await
            })
        };
        started.await.unwrap();
        let waited = std::time::Instant::now();
        assert_eq!(limiter.run(|| 1).await, Err(Busy));
        assert!(waited.elapsed() >= Duration::from_millis(100));
        release.send(()).unwrap();
        assert_eq!(holder.await.unwrap(), Ok(()));
        // The slot is free again.
        assert_eq!(limiter.run(|| 2).await, Ok(2));
    }

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
