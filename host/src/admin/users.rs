//! Admin users: argon2id password hashes, sign-in with per-account lockout.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use crate::crypto::{Busy, HashLimiter};
use crate::store::{self, Store};

/// OWASP's argon2id minimum: 19 MiB of memory, two passes, one lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// This many failed sign-ins on one username within [`LOCKOUT_WINDOW_MS`] lock it.
pub const MAX_FAILURES: i64 = 10;
/// 15 minutes.
pub const LOCKOUT_WINDOW_MS: i64 = 15 * 60 * 1000;

/// The longest username, in bytes, by default (`admin.max_username_bytes`); `create-user`
/// never makes a longer one.
pub const MAX_USERNAME_BYTES: usize = 64;

/// The shortest password `create-user` accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id hashes any password")
        .to_string()
}

/// Whether `password` matches the PHC string `hash`. The parameters come from the string,
/// so hashes made with stronger settings later still verify.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Verified against when the username does not exist, so an unknown user costs the same
/// time as a wrong password and the two cannot be told apart.
static DECOY_HASH: LazyLock<String> = LazyLock::new(|| hash_password("decoy password"));

/// A password of 20 characters from a 56-letter alphabet without look-alikes (~116 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown user or wrong password: one answer for both.
    #[error("Wrong username or password.")]
    WrongCredentials,
    /// Too many failures on this username lately.
    #[error("This account is locked after too many failed sign-ins. Try again in 15 minutes.")]
    Locked,
    /// Every password-hashing slot is busy: nothing was checked or counted.
    #[error("Too many sign-ins at once; try again in a moment.")]
    Busy,
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// What bounds the cost of a sign-in attempt.
#[derive(Clone)]
pub struct SignInLimits {
    /// A longer username is refused before it is looked up, counted or logged: no admin
    /// can have it, and failures are stored per username.
    pub max_username_bytes: usize,
    /// Password checks run under this limit.
    pub hashing: HashLimiter,
}

impl SignInLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &crate::config::AdminConfig) -> SignInLimits {
        SignInLimits {
            max_username_bytes: config.max_username_bytes,
            hashing: HashLimiter::new(config.password_hash_concurrency, config.password_hash_wait),
        }
    }
}

/// Checks a username and password at time `now`. Failures count per username as typed,
/// whether or not the user exists, and whatever address they come from.
///
/// A username over `limits.max_username_bytes` gets the same answer as a wrong password
/// and leaves no trace: it is not looked up, counted or logged.
pub async fn sign_in(
    store: &Store,
    limits: &SignInLimits,
    username: &str,
    password: &str,
    now: i64,
) -> Result<String, SignInError> {
    if username.len() > limits.max_username_bytes {
        return Err(SignInError::WrongCredentials);
    }
    let window_start = now - LOCKOUT_WINDOW_MS;
    if store.login_failures_since(username, window_start).await? >= MAX_FAILURES {
        return Err(SignInError::Locked);
    }
    let user = store.admin_user(username).await?;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| DECOY_HASH.clone());
    let password = password.to_owned();
    // ~20 ms of CPU and 19 MiB: off the async workers, and only so many at once. A refusal
    // for lack of a slot is not a failure of this username.
    let matches = limits
        .hashing
        .run(move || verify_password(&hash, &password))
        .await
        .map_err(|Busy| SignInError::Busy)?;
    match user {
        Some(user) if matches => {
            store.clear_login_failures(username).await?;
            Ok(user.username)
        }
        _ => {
            store
                .record_login_failure(username, now, window_start)
                .await?;
            Err(SignInError::WrongCredentials)
        }
    }
}

/// Ends the lockout of `username` (`switchyard admin unlock`): forgets its failed
/// sign-ins. Returns how many were forgotten.
pub async fn unlock(store: &Store, username: &str) -> Result<u64, store::Error> {
    store.clear_login_failures(username).await
}

/// Adds an admin; refuses a taken name or a short password.
pub async fn create_user(store: &Store, username: &str, password: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !username.trim().is_empty() && username.len() <= MAX_USERNAME_BYTES,
        "a username is 1 to {MAX_USERNAME_BYTES} bytes"
    );
    anyhow::ensure!(
        password.chars().count() >= MIN_PASSWORD_CHARS,
        "a password needs at least {MIN_PASSWORD_CHARS} characters"
    );
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await?;
    anyhow::ensure!(
        store.create_admin_user(username, &hash).await?,
        "there is already an admin called `{username}`"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_the_minimum_cost_and_verify() {
        let hash = hash_password("correct horse battery staple");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(&hash, "correct horse battery staple"));
        assert!(!verify_password(&hash, "correct horse battery stapler"));
        assert!(!verify_password("not a hash", "anything"));
        assert_ne!(
            hash,
            hash_password("correct horse battery staple"),
            "salted"
        );
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate_password();
        assert_eq!(a.chars().count(), 20);
        assert_ne!(a, generate_password());
    }
}
