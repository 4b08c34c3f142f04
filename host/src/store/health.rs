//! Whether the store's writes are landing, as the pipeline's writes last found: `/readyz`
//! and the accept path read it, and it says in the log when writes start failing and when
//! they land again, once each rather than once per request.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Error;

/// What a successful write proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Proof {
    /// It committed rows: writes land again.
    Landed,
    /// It may have changed nothing (a lease that found no due delivery commits no page),
    /// so it says nothing about whether the disk takes writes. Its failure still counts.
    Nothing,
}

#[derive(Debug, Default)]
pub(super) struct WriteHealth {
    /// Set by a failed write, cleared by one that landed: the one word the hot path reads.
    failing: AtomicBool,
    /// When the last write failed.
    last_failure: Mutex<Option<Instant>>,
}

impl WriteHealth {
    /// Notes how the write `operation` went, and passes its result on.
    pub(super) fn observe<T>(
        &self,
        operation: &'static str,
        proof: Proof,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        match &result {
            Ok(_) if proof == Proof::Landed => self.landed(),
            Ok(_) => {}
            Err(error) => self.failed(operation, error),
        }
        result
    }

    /// Whether the last write failed (and none has landed since).
    pub(super) fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// How long ago the last write failed, if one ever did.
    pub(super) fn since_last_failure(&self) -> Option<Duration> {
        self.last_failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .map(|at| at.elapsed())
    }

    fn landed(&self) {
        // One relaxed load on every commit; the swap only when recovering.
        if self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!("store writes succeed again; the hub accepts notifications");
        }
    }

    fn failed(&self, operation: &'static str, error: &Error) {
        metrics::counter!("switchyard_store_commit_failures_total", "operation" => operation)
            .increment(1);
        if is_about_the_rows(error) {
            // The database refused these rows (a constraint), not writes as such.
            return;
        }
        *self
            .last_failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
        if !self.failing.swap(true, Ordering::AcqRel) {
            tracing::error!(
                %error,
                operation,
                "store writes are failing; senders get 503 and /readyz fails until a commit lands"
            );
        } else {
            tracing::debug!(%error, operation, "a store write failed again");
        }
    }
}

/// Whether `error` is the database refusing particular rows (a unique, foreign-key, not-null
/// or check constraint) rather than failing to write at all.
fn is_about_the_rows(error: &Error) -> bool {
    match error {
        Error::Database(sqlx::Error::Database(database)) => {
            !matches!(database.kind(), sqlx::error::ErrorKind::Other)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Error {
        Error::Database(sqlx::Error::Io(std::io::Error::from_raw_os_error(28)))
    }

    #[test]
    fn a_failure_sets_the_flag_until_a_write_lands() {
        let health = WriteHealth::default();
        assert!(!health.failing());
        assert!(health.since_last_failure().is_none());
        assert!(
            health
                .observe::<()>("accept", Proof::Landed, Err(full()))
                .is_err()
        );
        assert!(health.failing());
        assert!(health.since_last_failure().is_some());
        // A write that proves nothing (an empty lease) does not end the outage.
        health.observe("lease", Proof::Nothing, Ok(())).unwrap();
        assert!(health.failing());
        health.observe("accept", Proof::Landed, Ok(())).unwrap();
        assert!(!health.failing());
    }
}
