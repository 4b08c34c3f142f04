//! Delivery controls for endpoints: a circuit breaker, so a failing receiver is probed
//! rather than hammered, and auto-disable after a long enough run of failures.
//!
//! - **Breaker** (per process, in memory): after `breaker_failures` failed attempts in a
//!   row the endpoint's breaker opens, and its deliveries go back to the queue, unattempted,
//!   until the cooldown ends. Then one attempt goes through as a probe: if it delivers, the
//!   breaker closes; if not, it opens again for twice as long, up to `breaker_max_cooldown`.
//! - **Failure streak** (in the store, so every process and a restart see it): the first
//!   failure after a success records `failing_since`; the next success clears it. Only
//!   these changes are written, never every attempt.
//! - **Auto-disable**: a failure when the streak is older than `disable_after` disables the
//!   endpoint and announces it with a notification of kind `switchyard.endpoint.disabled`
//!   for the endpoint's tenant, which routes like any other (YAML routes for the operator,
//!   the tenant's other endpoints).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::routing::endpoints::Endpoint;
use crate::store::{self, Store};

/// The breaker and auto-disable settings (`endpoints.*` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct ControlSettings {
    /// Failed attempts in a row that open an endpoint's breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before the first probe.
    pub breaker_cooldown: Duration,
    /// The longest it stays open after failed probes.
    pub breaker_max_cooldown: Duration,
    /// How long an endpoint may fail without a success before it is disabled.
    pub disable_after: Duration,
}

impl Default for ControlSettings {
    fn default() -> ControlSettings {
        ControlSettings {
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            breaker_max_cooldown: Duration::from_secs(10 * 60),
            // As Svix does.
            disable_after: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

/// Announces that an endpoint was disabled: accepts the notification like any other.
pub type Announce = Arc<dyn Fn(store::Notification) -> BoxFuture<'static, ()> + Send + Sync>;

/// Whether an attempt may go ahead now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// The breaker is open: try again after this long.
    Wait(Duration),
}

#[derive(Debug, Default)]
struct Breaker {
    /// Failed attempts in a row.
    failures: u32,
    /// While open: until when.
    open_until: Option<Instant>,
    /// How many times it opened without a success since.
    trips: u32,
    /// A probe is in flight: the others keep waiting.
    probing: bool,
    /// This process wrote the start of the failure streak (the directory may not show it
    /// yet), and when.
    streak_since: Option<i64>,
}

/// The breakers of every endpoint this process delivers to. Cheap to clone.
#[derive(Clone)]
pub struct Controls {
    settings: ControlSettings,
    store: Store,
    announce: Announce,
    breakers: Arc<Mutex<HashMap<Arc<str>, Breaker>>>,
    /// The endpoint rows (by `updated_at`) whose failure streak this process has ended:
    /// until the directory shows the change, later successes need not end it again.
    ended: Arc<Mutex<HashMap<Arc<str>, i64>>>,
}

impl Controls {
    pub fn new(settings: ControlSettings, store: Store, announce: Announce) -> Controls {
        Controls {
            settings,
            store,
            announce,
            breakers: Arc::default(),
            ended: Arc::default(),
        }
    }

    /// Whether an attempt to `channel` may go now.
    pub fn admit(&self, channel: &str) -> Admission {
        self.admit_at(channel, Instant::now())
    }

    fn admit_at(&self, channel: &str, now: Instant) -> Admission {
        let mut breakers = self.breakers.lock().expect("breakers lock");
        let Some(breaker) = breakers.get_mut(channel) else {
            return Admission::Go;
        };
        match breaker.open_until {
            None => Admission::Go,
            Some(until) if now < until => Admission::Wait(until - now),
            Some(_) if breaker.probing => Admission::Wait(self.settings.breaker_cooldown),
            Some(_) => {
                breaker.probing = true;
                Admission::Go
            }
        }
    }

    /// Records how an attempt to `endpoint` went, and acts on it.
    pub async fn settle(&self, endpoint: &Endpoint, delivered: bool) {
        let now_ms = store::now_ms();
        let (start_streak, end_streak, since) = {
            let mut breakers = self.breakers.lock().expect("breakers lock");
            if delivered {
                let ours = breakers.remove(&endpoint.channel);
                let mut ended = self.ended.lock().expect("ended lock");
                let already = ended.get(&endpoint.channel) == Some(&endpoint.row.updated_at);
                let streak = (endpoint.row.failing_since.is_some() && !already)
                    || ours.is_some_and(|b| b.streak_since.is_some());
                if streak {
                    ended.insert(endpoint.channel.clone(), endpoint.row.updated_at);
                } else if endpoint.row.failing_since.is_none() {
                    ended.remove(&endpoint.channel);
                }
                (false, streak, None)
            } else {
                let breaker = breakers.entry(endpoint.channel.clone()).or_default();
                self.failed(breaker, Instant::now());
                let since = endpoint.row.failing_since.or(breaker.streak_since);
                if since.is_none() {
                    breaker.streak_since = Some(now_ms);
                }
                (since.is_none(), false, since)
            }
        };
        let id = &endpoint.row.id;
        if start_streak || end_streak {
            let since = start_streak.then_some(now_ms);
            if let Err(error) = self.store.set_endpoint_failing(id, since).await {
                tracing::warn!(endpoint = %id, %error, "could not record an endpoint's failure streak");
            }
        }
        let Some(since) = since else { return };
        if now_ms - since < self.settings.disable_after.as_millis() as i64 {
            return;
        }
        let reason = format!(
            "every attempt failed for {}",
            crate::yaml::format_duration(Duration::from_secs(((now_ms - since) / 1000) as u64))
        );
        match self.store.disable_endpoint(id, &reason).await {
            Ok(true) => {
                tracing::warn!(endpoint = %id, tenant = %endpoint.row.tenant_id, %reason, "disabled a failing endpoint");
                metrics::counter!("switchyard_endpoints_disabled_total").increment(1);
                (self.announce)(disabled_notification(endpoint, since, now_ms, &reason)).await;
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(endpoint = %id, %error, "could not disable a failing endpoint")
            }
        }
    }

    fn failed(&self, breaker: &mut Breaker, now: Instant) {
        breaker.failures += 1;
        let reopen = breaker.probing || breaker.open_until.is_some();
        breaker.probing = false;
        if reopen || breaker.failures >= self.settings.breaker_failures {
            if breaker.open_until.is_none() {
                metrics::counter!("switchyard_endpoint_breaker_opened_total").increment(1);
            }
            let cooldown =
                self.settings.breaker_cooldown * 2u32.saturating_pow(breaker.trips.min(16));
            breaker.open_until = Some(now + cooldown.min(self.settings.breaker_max_cooldown));
            breaker.trips += 1;
        }
    }
}

/// The operational event for a disabled endpoint, sent for its tenant.
fn disabled_notification(
    endpoint: &Endpoint,
    failing_since: i64,
    now_ms: i64,
    reason: &str,
) -> store::Notification {
    let row = &endpoint.row;
    let payload = serde_json::json!({
        "endpoint_id": row.id,
        "tenant_id": row.tenant_id,
        "description": row.description,
        "failing_since_ms": failing_since,
        "disabled_at_ms": now_ms,
        "reason": reason,
    });
    store::Notification {
        id: uuid::Uuid::now_v7().to_string(),
        kind: crate::tenancy::DISABLED_KIND.to_owned(),
        source: crate::tenancy::SOURCE.to_owned(),
        attributes: vec![("endpoint".to_owned(), row.id.clone())],
        payload: payload.to_string(),
        // Disabled once per streak: a repeat (another process racing) is the same event.
        idempotency_key: Some(format!("endpoint-disabled:{}:{failing_since}", row.id)),
        created_at: now_ms,
        tenant: Some(row.tenant_id.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn controls(failures: u32) -> (Controls, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let store = Store::open(&url).await.unwrap();
        let settings = ControlSettings {
            breaker_failures: failures,
            breaker_cooldown: Duration::from_secs(10),
            breaker_max_cooldown: Duration::from_secs(25),
            disable_after: Duration::from_secs(3600),
        };
        let announce: Announce = Arc::new(|_| Box::pin(async {}));
        (Controls::new(settings, store, announce), dir)
    }

    fn fail(controls: &Controls, channel: &str, now: Instant) {
        let mut breakers = controls.breakers.lock().unwrap();
        let breaker = breakers.entry(Arc::from(channel)).or_default();
        controls.failed(breaker, now);
    }

    #[tokio::test]
    async fn the_breaker_opens_after_failures_in_a_row_then_lets_one_probe_through() {
        let (controls, _dir) = controls(3).await;
        let start = Instant::now();
        let ch = "endpoint:a";
        for _ in 0..2 {
            fail(&controls, ch, start);
            assert_eq!(controls.admit_at(ch, start), Admission::Go);
        }
        fail(&controls, ch, start);
        assert_eq!(
            controls.admit_at(ch, start),
            Admission::Wait(Duration::from_secs(10))
        );
        let later = start + Duration::from_secs(10);
        // One probe; the rest wait.
        assert_eq!(controls.admit_at(ch, later), Admission::Go);
        assert!(matches!(controls.admit_at(ch, later), Admission::Wait(_)));
        // The probe failed: open twice as long, then capped.
        fail(&controls, ch, later);
        assert_eq!(
            controls.admit_at(ch, later),
            Admission::Wait(Duration::from_secs(20))
        );
        let again = later + Duration::from_secs(20);
        assert_eq!(controls.admit_at(ch, again), Admission::Go);
        fail(&controls, ch, again);
        assert_eq!(
            controls.admit_at(ch, again),
            Admission::Wait(Duration::from_secs(25))
        );
        // Other endpoints are not affected.
        assert_eq!(controls.admit_at("endpoint:b", again), Admission::Go);
        // A success closes it.
        controls.breakers.lock().unwrap().remove(ch);
        assert_eq!(controls.admit_at(ch, again), Admission::Go);
    }
}
