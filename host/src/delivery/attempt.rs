//! One attempt: run the transforms the routes name, call the channel's plugin with what
//! they made, then decide what becomes of the delivery.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Job, Shared, Slot};
use crate::events::Event;
use crate::routing::endpoints::Endpoint;
use crate::routing::{Route, RouteTable, TransformSpec};
use crate::runtime::{self, CallError, Outcome, TransformContext, TransformError, Transformed};
use crate::store::{self, AttemptOutcome, AttemptRecord, NextStep};

/// The longest a `Retry-After` may push a retry out.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// When the plugin pool is full, the delivery goes back to the queue for this long.
const BUSY_BACKOFF: Duration = Duration::from_millis(200);
/// When a channel has left the routes file, its deliveries wait this long between looks.
const CHANNEL_GONE_BACKOFF: Duration = Duration::from_secs(60);
/// The most notifications the transforms of one delivery may make (by splitting).
const MAX_PARTS: usize = 100;
/// The largest payload a transform may produce, as JSON text: what the API accepts in one
/// request by default.
const MAX_TRANSFORMED_PAYLOAD: usize = 1024 * 1024;

pub(super) async fn run(
    shared: Arc<Shared>,
    channel: String,
    table: Arc<RouteTable>,
    job: Job,
    _slot: Slot,
) {
    let Some(destination) = shared.destination(&table, &channel) else {
        // Kept, not dead-lettered: the channel may come back with the next routes file (an
        // endpoint's deliveries are dead-lettered when it is deleted, so this one is new
        // and this process's directory has yet to see it).
        tracing::warn!(%channel, delivery = %job.delivery_id, "the channel is not in the routes file nor an endpoint; the delivery waits for it");
        job.put_back(&shared.store, CHANNEL_GONE_BACKOFF).await;
        return;
    };
    let spec = &*destination;
    let attempt = job.attempts + 1;
    let started_at = store::now_ms();
    let clock = Instant::now();

    let mut trail = Trail::default();
    let result = match shared.plugins.channel(&spec.plugin).await {
        Ok(plugin) => match shared.grants(&table, &channel, &destination).await {
            Ok(grants) => {
                trail.granted.push(grants.clone());
                let endpoint = destination.endpoint().map(|e| &**e);
                match transform(
                    &shared, &table, endpoint, &channel, &job, attempt, &mut trail,
                )
                .await
                {
                    Ok(parts) if parts.is_empty() => {
                        Err(Failure::Dropped(std::mem::take(&mut trail.dropped_because)))
                    }
                    Ok(parts) => {
                        let outcome = deliver_all(&plugin, &grants, parts, attempt, &channel).await;
                        metrics::histogram!("switchyard_plugin_call_seconds", "plugin" => spec.plugin.clone())
                            .record(clock.elapsed().as_secs_f64());
                        outcome
                    }
                    Err(failure) => Err(failure),
                }
            }
            Err(reason) => Err(Failure::Secrets(reason)),
        },
        Err(reason) => Err(Failure::Load(reason)),
    };

    if let Err(Failure::Call(CallError::Busy { .. })) = &result {
        // Not an attempt: the plugin never ran.
        job.put_back(&shared.store, BUSY_BACKOFF).await;
        return;
    }

    if let Ok(Outcome::Failed(failure)) = &result
        && failure.disable
    {
        tracing::warn!(%channel, reason = ?failure.reason, "the destination says it is gone; check the channel's config");
    }
    let mut record = decide(
        &job,
        attempt,
        started_at,
        clock.elapsed(),
        &result,
        &spec.retry_schedule,
    );
    record.transforms = trail.transforms;
    // Every text in the record that a plugin wrote loses the secrets this attempt granted.
    record.detail = record.detail.map(|detail| {
        let secrets = trail.granted.iter().flat_map(|g| g.secrets.values());
        runtime::scrub(detail, secrets.map(String::as_str))
    });
    if shared.events.has_subscribers() {
        shared.events.publish(Event::DeliveryAttempted {
            delivery_id: record.delivery_id.clone(),
            notification_id: job.notification.id.clone(),
            kind: job.notification.kind.clone(),
            channel: channel.clone(),
            attempt,
            outcome: record.outcome.as_str().to_owned(),
            status: record.status,
            next: match record.next {
                NextStep::Done => "done",
                NextStep::RetryAt(_) => "retry",
                NextStep::Dead => "dead",
            }
            .to_owned(),
        });
    }
    let delivered = matches!(
        record.outcome,
        AttemptOutcome::Delivered | AttemptOutcome::Dropped
    );
    shared.recorder.record(&channel, record, job.held).await;
    if let Some(endpoint) = destination.endpoint() {
        shared.controls.settle(endpoint, delivered).await;
    }
}

/// Delivers what the transforms made, in order: the first part that is not delivered
/// decides the attempt, and a retry repeats them all (receivers dedupe on each part's id).
async fn deliver_all(
    plugin: &runtime::Plugin,
    grants: &Arc<runtime::Grants>,
    parts: Vec<runtime::Notification>,
    attempt: u32,
    channel: &str,
) -> Result<Outcome, Failure> {
    let count = parts.len();
    let mut last = None;
    for notification in parts {
        let delivery = runtime::Delivery {
            notification,
            attempt,
            channel: channel.to_owned(),
        };
        let outcome = plugin
            .deliver(grants, delivery)
            .await
            .map_err(Failure::Call)?;
        if !matches!(outcome, Outcome::Delivered(_)) {
            return Ok(outcome);
        }
        last = Some(outcome);
    }
    match last {
        Some(Outcome::Delivered(mut receipt)) if count > 1 => {
            let last = receipt.detail.take();
            receipt.detail = Some(format!(
                "{count} notifications delivered{}",
                last.map(|d| format!("; the last: {d}")).unwrap_or_default()
            ));
            Ok(Outcome::Delivered(receipt))
        }
        Some(outcome) => Ok(outcome),
        None => Err(Failure::Dropped(String::new())),
    }
}

/// What an attempt's transforms left for its record.
#[derive(Default)]
struct Trail {
    /// The transforms called, in order.
    transforms: Vec<String>,
    /// Why the last part was dropped, when one was.
    dropped_because: String,
    /// The grants of every plugin the attempt called, whose secrets no record may show.
    granted: Vec<Arc<runtime::Grants>>,
}

/// Runs the transforms the routes name for this delivery, in order, each over every
/// notification the one before it made. Returns what the channel gets: one notification
/// when nothing splits, none when a transform drops it.
async fn transform(
    shared: &Shared,
    table: &RouteTable,
    endpoint: Option<&Endpoint>,
    channel: &str,
    job: &Job,
    attempt: u32,
    trail: &mut Trail,
) -> Result<Vec<runtime::Notification>, Failure> {
    let original = &job.notification;
    let mut parts = vec![wit_notification(original)];
    let (route, chain): (Option<&Route>, Vec<(&str, Cow<'_, TransformSpec>)>) = match endpoint {
        // An endpoint's own list: transforms of the routes file, or transform plugins
        // named directly (which run with no config).
        Some(endpoint) if !endpoint.spec.transform.is_empty() => {
            let chain = endpoint.spec.transform.iter().map(|name| {
                let spec = match table.transform(name) {
                    Some(spec) => Cow::Borrowed(spec),
                    None => Cow::Owned(TransformSpec::bare(name)),
                };
                (&**name, spec)
            });
            (None, chain.collect())
        }
        Some(_) => return Ok(parts),
        // Most tables have no transforms: then there is nothing to look up per attempt.
        None if !table.has_transforms() => return Ok(parts),
        None => {
            let (route, chain) =
                table.transforms_for(&original.kind, &original.attributes, channel);
            let chain = chain
                .into_iter()
                .map(|(name, spec)| (name, Cow::Borrowed(spec)));
            (route, chain.collect())
        }
    };
    for (name, spec) in chain {
        let plugin = shared
            .plugins
            .transform(&spec.plugin)
            .await
            .map_err(|reason| Failure::Load(format!("transform `{name}`: {reason}")))?;
        trail.transforms.push(name.to_owned());
        trail.granted.push(spec.grants.clone());
        let context = TransformContext {
            route: route.map(|r| r.name.to_string()).unwrap_or_default(),
            channel: channel.to_owned(),
            attempt,
        };
        let mut next = Vec::with_capacity(parts.len());
        for part in parts {
            let (id, source, created_at_ms) =
                (part.id.clone(), part.source.clone(), part.created_at_ms);
            let clock = Instant::now();
            let result = plugin.transform(&spec.grants, part, context.clone()).await;
            metrics::histogram!("switchyard_plugin_call_seconds", "plugin" => spec.plugin.clone())
                .record(clock.elapsed().as_secs_f64());
            let made = match result.map_err(Failure::Call)? {
                Ok(Transformed::Keep(mut kept)) => {
                    kept.id = id.clone();
                    vec![kept]
                }
                Ok(Transformed::Split(split)) if split.is_empty() => {
                    trail.dropped_because =
                        format!("transform `{name}` split the notification into none");
                    Vec::new()
                }
                Ok(Transformed::Split(split)) => {
                    if split.len() > MAX_PARTS {
                        return Err(Failure::Transform {
                            name: name.to_owned(),
                            error: TransformError {
                                reason: format!(
                                    "split into {} notifications; at most {MAX_PARTS} are allowed",
                                    split.len()
                                ),
                                retry: false,
                            },
                        });
                    }
                    split
                        .into_iter()
                        .enumerate()
                        .map(|(index, mut made)| {
                            made.id = format!("{id}.{}", index + 1);
                            made
                        })
                        .collect()
                }
                Ok(Transformed::Drop(reason)) => {
                    trail.dropped_because = format!("dropped by transform `{name}`: {reason}");
                    Vec::new()
                }
                Err(error) => {
                    return Err(Failure::Transform {
                        name: name.to_owned(),
                        error,
                    });
                }
            };
            for mut made in made {
                // The id (set above), source and creation time are the host's: a
                // transform changes only what is delivered.
                made.source = source.clone();
                made.created_at_ms = created_at_ms;
                if let Err(reason) = check_made(&made) {
                    return Err(Failure::Transform {
                        name: name.to_owned(),
                        error: TransformError {
                            reason,
                            retry: false,
                        },
                    });
                }
                next.push(made);
            }
            if next.len() > MAX_PARTS {
                return Err(Failure::Transform {
                    name: name.to_owned(),
                    error: TransformError {
                        reason: format!("made more than {MAX_PARTS} notifications"),
                        retry: false,
                    },
                });
            }
        }
        parts = next;
        if parts.is_empty() {
            break;
        }
    }
    Ok(parts)
}

/// What a transform made must still be a notification the API would have accepted: the
/// same rules for its kind and attributes as the JSON adapters apply (see the SDK's
/// `drafts`), and a payload that is JSON of a bounded size.
fn check_made(made: &runtime::Notification) -> Result<(), String> {
    const MAX_TEXT: usize = 256;
    const MAX_ATTRIBUTES: usize = 64;
    let kind_ok = !made.kind.is_empty()
        && made.kind.len() <= MAX_TEXT
        && made
            .kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if !kind_ok {
        return Err(format!(
            "made a notification whose kind is not 1 to {MAX_TEXT} of letters, digits and . _ - :"
        ));
    }
    if made.attributes.len() > MAX_ATTRIBUTES {
        return Err(format!(
            "made a notification with {} attributes; at most {MAX_ATTRIBUTES} are allowed",
            made.attributes.len()
        ));
    }
    let too_long = |text: &str| text.len() > MAX_TEXT && text.chars().nth(MAX_TEXT).is_some();
    for (name, value) in &made.attributes {
        if name.is_empty() || too_long(name) || too_long(value) {
            return Err(format!(
                "made an attribute whose name is not 1 to {MAX_TEXT} characters or whose value \
                 is longer than {MAX_TEXT}"
            ));
        }
    }
    if made.payload.len() > MAX_TRANSFORMED_PAYLOAD {
        return Err(format!(
            "made a payload of {} bytes; at most {MAX_TRANSFORMED_PAYLOAD} are allowed",
            made.payload.len()
        ));
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(&made.payload).is_err() {
        return Err("made a payload that is not JSON".into());
    }
    Ok(())
}

enum Failure {
    Call(CallError),
    Load(String),
    /// A transform refused the notification; `retry` in its error says whether trying
    /// again may help.
    Transform {
        name: String,
        error: TransformError,
    },
    /// Not a failure: a transform dropped the notification, so nothing goes to the
    /// channel and the delivery is done. Carries the reason for the record.
    Dropped(String),
    /// The channel's secrets could not be had (one is not set in the vault, say). Recorded
    /// as an attempt, so the reason shows in the delivery's history, and retried on the
    /// schedule, so setting the secret lets the delivery through.
    Secrets(String),
}

/// Turns a call's result into the attempt's record and the delivery's next step.
fn decide(
    job: &Job,
    attempt: u32,
    started_at: i64,
    took: Duration,
    result: &Result<Outcome, Failure>,
    schedule: &[Duration],
) -> AttemptRecord {
    let retry_or_dead = |after: Option<Duration>| {
        // Retries made since the last replay, this one included.
        let made = (attempt - job.retry_base) as usize;
        match schedule.get(made - 1) {
            Some(delay) => {
                let wait = after.map_or(*delay, |after| (*delay).max(after.min(MAX_RETRY_AFTER)));
                NextStep::RetryAt(store::now_ms() + wait.as_millis() as i64)
            }
            None => NextStep::Dead,
        }
    };
    let (outcome, status, detail, next) = match result {
        Ok(Outcome::Delivered(receipt)) => (
            AttemptOutcome::Delivered,
            receipt.status,
            receipt.detail.clone(),
            NextStep::Done,
        ),
        Ok(Outcome::Retry(hint)) => (
            AttemptOutcome::Retry,
            hint.status,
            Some(hint.reason.clone()),
            retry_or_dead(hint.after_ms.map(Duration::from_millis)),
        ),
        Ok(Outcome::Failed(failure)) => (
            AttemptOutcome::Failed,
            failure.status,
            Some(failure.reason.clone()),
            NextStep::Dead,
        ),
        Err(Failure::Call(error)) => (
            AttemptOutcome::Error,
            None,
            Some(error.to_string()),
            retry_or_dead(None),
        ),
        Err(Failure::Load(reason) | Failure::Secrets(reason)) => (
            AttemptOutcome::Error,
            None,
            Some(reason.clone()),
            retry_or_dead(None),
        ),
        Err(Failure::Transform { name, error }) => (
            AttemptOutcome::Error,
            None,
            Some(format!("transform `{name}` failed: {}", error.reason)),
            if error.retry {
                retry_or_dead(None)
            } else {
                NextStep::Dead
            },
        ),
        Err(Failure::Dropped(reason)) => (
            AttemptOutcome::Dropped,
            None,
            Some(reason.clone()),
            NextStep::Done,
        ),
    };
    AttemptRecord {
        delivery_id: job.delivery_id.clone(),
        attempt,
        started_at,
        duration_ms: took.as_millis() as i64,
        outcome,
        status,
        detail,
        transforms: Vec::new(),
        next,
    }
}

fn wit_notification(notification: &store::Notification) -> runtime::Notification {
    runtime::Notification {
        id: notification.id.clone(),
        kind: notification.kind.clone(),
        source: notification.source.clone(),
        attributes: notification.attributes.clone(),
        payload: notification.payload.clone(),
        created_at_ms: notification.created_at as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Failure as PluginFailure, Receipt, RetryHint};

    fn job(attempts: u32, retry_base: u32) -> Job {
        Job {
            delivery_id: "d1".into(),
            attempts,
            retry_base,
            notification: Arc::new(store::Notification {
                id: "n1".into(),
                kind: "k".into(),
                source: "api".into(),
                attributes: vec![],
                payload: "{}".into(),
                idempotency_key: None,
                created_at: 0,
                tenant: None,
            }),
            held: super::super::Held::Store,
        }
    }

    fn next_after(job: &Job, result: Result<Outcome, Failure>, schedule: &[Duration]) -> NextStep {
        let attempt = job.attempts + 1;
        decide(job, attempt, 0, Duration::ZERO, &result, schedule).next
    }

    fn retry(after_ms: Option<u64>) -> Result<Outcome, Failure> {
        Ok(Outcome::Retry(RetryHint {
            status: Some(503),
            after_ms,
            reason: "busy".into(),
        }))
    }

    fn due_in(next: NextStep) -> i64 {
        match next {
            NextStep::RetryAt(at) => at - store::now_ms(),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn delivered_is_done_and_failed_is_dead() {
        let delivered = Ok(Outcome::Delivered(Receipt {
            status: Some(200),
            detail: None,
        }));
        assert_eq!(next_after(&job(0, 0), delivered, &[]), NextStep::Done);
        let failed = Ok(Outcome::Failed(PluginFailure {
            status: Some(410),
            reason: "gone".into(),
            disable: true,
        }));
        let schedule = [Duration::from_secs(5)];
        assert_eq!(next_after(&job(0, 0), failed, &schedule), NextStep::Dead);
    }

    #[test]
    fn retries_follow_the_schedule_then_die() {
        let schedule = [Duration::from_secs(5), Duration::from_secs(300)];
        let first = due_in(next_after(&job(0, 0), retry(None), &schedule));
        assert!((4_900..=5_100).contains(&first), "{first}");
        let second = due_in(next_after(&job(1, 0), retry(None), &schedule));
        assert!((299_900..=300_100).contains(&second), "{second}");
        assert_eq!(
            next_after(&job(2, 0), retry(None), &schedule),
            NextStep::Dead
        );
    }

    #[test]
    fn retry_after_pushes_a_retry_out_but_never_pulls_it_in() {
        let schedule = [Duration::from_secs(5)];
        let later = due_in(next_after(&job(0, 0), retry(Some(60_000)), &schedule));
        assert!((59_900..=60_100).contains(&later), "{later}");
        let sooner = due_in(next_after(&job(0, 0), retry(Some(1)), &schedule));
        assert!((4_900..=5_100).contains(&sooner), "{sooner}");
    }

    #[test]
    fn a_replay_restarts_the_schedule() {
        let schedule = [Duration::from_secs(5)];
        assert_eq!(
            next_after(&job(3, 0), retry(None), &schedule),
            NextStep::Dead
        );
        let after_replay = next_after(&job(3, 3), retry(None), &schedule);
        assert!(matches!(after_replay, NextStep::RetryAt(_)));
    }

    #[test]
    fn a_missing_secret_is_retried() {
        let schedule = [Duration::from_secs(5)];
        let error = Err(Failure::Secrets("secret `k` is not set".into()));
        let record = decide(&job(0, 0), 1, 0, Duration::ZERO, &error, &schedule);
        assert!(matches!(record.next, NextStep::RetryAt(_)));
        assert_eq!(record.outcome, AttemptOutcome::Error);
        assert_eq!(record.detail.as_deref(), Some("secret `k` is not set"));
    }

    #[test]
    fn a_plugin_error_is_retried() {
        let schedule = [Duration::from_secs(5)];
        let error = Err(Failure::Load("no such plugin".into()));
        assert!(matches!(
            next_after(&job(0, 0), error, &schedule),
            NextStep::RetryAt(_)
        ));
    }
}
