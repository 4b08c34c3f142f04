//! Tenants' endpoints under the delivery controls, on a real hub: secret rotation checked
//! by the Standard Webhooks reference library from PyPI, the circuit breaker on a
//! compressed clock, auto-disable and its announcement, bulk recovery, a rate limit shared
//! by two processes through Redis, and endpoints managed with a client generated from the
//! served spec.
//!
//! Assertions are on counts (at the receivers and in the attempt records) and on lower
//! bounds of gaps the hub must keep, never on how fast a loaded machine is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::brokers::{REDIS_URL, TestDatabase};
use crate::support::{
    Answer, DEADLINE, Hub, LOG_EVERYTHING, Received, Receiver, Reply, epoch_ms, eventually,
    webhook_channel,
};
use crate::tenants::{create_endpoint, create_tenant, send_for, signed_by};

// ---- Helpers ---------------------------------------------------------------------------

/// RFC 3339 with milliseconds, as the API takes times.
fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

fn endpoint_path(tenant: &str, endpoint: &str) -> String {
    format!("/api/v1/tenants/{tenant}/endpoints/{endpoint}")
}

/// `GET` of endpoint `endpoint` of `tenant`, which must be 200.
async fn get_endpoint(hub: &Hub, tenant: &str, endpoint: &str) -> Value {
    let answer = hub.get(&endpoint_path(tenant, endpoint)).await;
    assert_eq!(answer.status, 200, "GET endpoint: {answer}");
    answer.json()
}

/// Every delivery of the endpoint, newest first (one page of 500).
async fn deliveries(hub: &Hub, tenant: &str, endpoint: &str) -> Vec<Value> {
    let path = format!("{}/deliveries?limit=500", endpoint_path(tenant, endpoint));
    let answer = hub.get(&path).await;
    assert_eq!(answer.status, 200, "list deliveries: {answer}");
    let page = answer.json();
    assert!(page["next_cursor"].is_null(), "more than a page: {page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

/// One delivery of the endpoint with its attempt log.
async fn delivery(hub: &Hub, tenant: &str, endpoint: &str, id: &str) -> Value {
    let path = format!("{}/deliveries/{id}", endpoint_path(tenant, endpoint));
    let answer = hub.get(&path).await;
    assert_eq!(answer.status, 200, "GET delivery: {answer}");
    answer.json()
}

/// Rotates the endpoint's secret with `body` (`{"grace_seconds": …}`); returns the answer.
async fn rotate(hub: &Hub, tenant: &str, endpoint: &str, body: Value) -> Value {
    let path = format!("{}/secret/rotate", endpoint_path(tenant, endpoint));
    let answer = hub.post_json(&path, &body).await;
    assert_eq!(answer.status, 200, "rotate {body}: {answer}");
    let json = answer.json();
    assert!(
        json["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "{json}"
    );
    json
}

/// The request with `webhook-id` `id` at `receiver`, once it has arrived.
async fn arrival(receiver: &Receiver, id: &str) -> Received {
    eventually(DEADLINE, &format!("a request for {id}"), || {
        let found = receiver
            .received()
            .into_iter()
            .find(|r| r.header("webhook-id").as_deref() == Some(id));
        std::future::ready(found)
    })
    .await
}

/// Whether each of `secrets` verifies `received`, as `standardwebhooks.Webhook(secret)
/// .verify(body, headers)` says (tests/clients/verify_webhook.py).
async fn verified_by(dir: &Path, received: &Received, secrets: &[&str]) -> Vec<bool> {
    let headers: BTreeMap<String, String> = received
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let request = json!({
        "headers": headers,
        "body_base64": base64::engine::general_purpose::STANDARD.encode(&received.body),
    });
    let path = dir.join(format!("request-{}.json", rand::random::<u64>()));
    std::fs::write(&path, request.to_string()).expect("can write the request file");
    let mut args = vec![path.to_str().expect("a UTF-8 path")];
    args.extend_from_slice(secrets);
    let run = crate::support::run_client("verify_webhook.py", &args).await;
    assert!(run.success, "verify_webhook.py failed: {run:?}");
    let results = run.json()["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(results.len(), secrets.len(), "{run:?}");
    results
        .iter()
        .map(|r| r["verified"].as_bool().expect("a verdict"))
        .collect()
}

/// How many signatures `webhook-signature` carries.
fn signatures(received: &Received) -> usize {
    received
        .header("webhook-signature")
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .count()
}

/// Milliseconds from `earlier` to `later`, arrivals at a receiver.
fn gap_ms(earlier: &Received, later: &Received) -> i64 {
    match later.at.duration_since(earlier.at) {
        Ok(gap) => gap.as_millis() as i64,
        Err(before) => -(before.duration().as_millis() as i64),
    }
}

// ---- 1. Rotation -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_and_the_one_before_both_verify_with_standardwebhooks_during_the_grace() {
    let receiver = Receiver::start().await;
    let hub = Hub::started(LOG_EVERYTHING).await;
    create_tenant(&hub, "acme").await;
    let (endpoint, first) =
        create_endpoint(&hub, "acme", json!({"url": receiver.url("/acme")})).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let send = |n: u32| {
        send_for(
            &hub,
            "acme",
            json!({"kind": "rotation.check", "payload": {"n": n}}),
        )
    };

    // Before any rotation: the library verifies with the one secret.
    let n0 = send(0).await;
    let got = arrival(&receiver, &n0).await;
    assert_eq!(signatures(&got), 1);
    assert_eq!(
        verified_by(hub.dir(), &got, &[first.as_str()]).await,
        [true]
    );

    // A rotation with an hour's grace: both secrets sign, and either verifies alone.
    let rotated = rotate(&hub, "acme", &id, json!({"grace_seconds": 3600})).await;
    let second = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let until = epoch_ms(&rotated["previous_secret_valid_until"]);
    let hour_from_now = store_ms_now() + 3_600_000;
    assert!(
        (until - hour_from_now).abs() < 60_000,
        "the grace ends in an hour: {rotated}"
    );
    let shown = get_endpoint(&hub, "acme", &id).await;
    assert!(
        (epoch_ms(&shown["previous_secret_valid_until"]) - until).abs() < 1000,
        "the endpoint shows the grace's end: {shown}"
    );
    let n1 = send(1).await;
    let got = arrival(&receiver, &n1).await;
    assert_eq!(signatures(&got), 2, "{:?}", got.header("webhook-signature"));
    assert_eq!(
        verified_by(hub.dir(), &got, &[first.as_str(), &second]).await,
        [true, true],
        "Webhook(old).verify and Webhook(new).verify both pass during the grace"
    );

    // Rotating again with no grace: only the newest signs.
    let rotated = rotate(&hub, "acme", &id, json!({"grace_seconds": 0})).await;
    assert!(
        rotated["previous_secret_valid_until"].is_null(),
        "{rotated}"
    );
    let third = rotated["secret"].as_str().unwrap().to_owned();
    let n2 = send(2).await;
    let got = arrival(&receiver, &n2).await;
    assert_eq!(signatures(&got), 1);
    assert_eq!(
        verified_by(hub.dir(), &got, &[first.as_str(), &second, &third]).await,
        [false, false, true]
    );

    // A short grace: the one before signs while it lasts; once it ends the hub destroys
    // it, and only the newest signs.
    let rotated = rotate(&hub, "acme", &id, json!({"grace_seconds": 2})).await;
    let fourth = rotated["secret"].as_str().unwrap().to_owned();
    let until = epoch_ms(&rotated["previous_secret_valid_until"]);
    let n3 = send(3).await;
    let got = arrival(&receiver, &n3).await;
    let verdicts = verified_by(hub.dir(), &got, &[third.as_str(), &fourth]).await;
    assert!(verdicts[1], "the new secret signs at once");
    // The attempt's time is `webhook-timestamp` (whole seconds, rounded down): when the
    // attempt began surely before the grace ended, the old secret must have signed too.
    let attempt_second: i64 = got.header("webhook-timestamp").unwrap().parse().unwrap();
    if (attempt_second + 1) * 1000 <= until {
        assert!(verdicts[0], "within the grace the old secret signs too");
    }
    let ended = eventually(DEADLINE, "the short grace to end", || async {
        let shown = get_endpoint(&hub, "acme", &id).await;
        shown["previous_secret_valid_until"]
            .is_null()
            .then_some(shown)
    })
    .await;
    assert!(
        store_ms_now() >= until,
        "the grace was ended early: {ended}"
    );
    // Destroyed in the vault too, not only unused: the store keeps no sealed copy. (The
    // operator's `switchyard secrets list` leaves endpoints' secrets out, so the vault's
    // table is read directly, read-only.)
    assert_eq!(
        vault_names(&hub, &id).await,
        ["signing_key"],
        "the rotated-out secret is gone from the vault"
    );
    let n4 = send(4).await;
    let got = arrival(&receiver, &n4).await;
    assert_eq!(signatures(&got), 1, "{:?}", got.header("webhook-signature"));
    assert_eq!(
        verified_by(hub.dir(), &got, &[third.as_str(), &fourth]).await,
        [false, true]
    );
    // The receiver's own check agrees with the library's.
    assert!(signed_by(&got, &fourth) && !signed_by(&got, &third));
}

/// The names of the secrets the vault keeps for endpoint `id`, read from the hub's SQLite
/// store.
async fn vault_names(hub: &Hub, id: &str) -> Vec<String> {
    let url = format!(
        "sqlite://{}?mode=ro",
        hub.dir().join("switchyard.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("can open the hub's store read-only");
    let names =
        sqlx::query_scalar("SELECT name FROM channel_secrets WHERE channel = $1 ORDER BY name")
            .bind(format!("endpoint:{id}"))
            .fetch_all(&pool)
            .await
            .expect("can read the vault's table");
    pool.close().await;
    names
}

/// Now as the store writes times.
fn store_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---- 2. Circuit breaker -------------------------------------------------------------------

/// The breaker's cooldown and its cap in
/// [`the_breaker_opens_after_three_failures_then_probes_once_per_cooldown`]: long enough
/// that the test reads the attempt records between two probes even on a loaded machine.
const COOLDOWN_MS: i64 = 2_000;
const MAX_COOLDOWN_MS: i64 = 4_000;
/// What the receiver's and the hub's clocks may disagree by (one machine: timer
/// granularity only).
const SLACK_MS: i64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_after_three_failures_then_probes_once_per_cooldown() {
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::status(500));
    let mut hub = Hub::new(LOG_EVERYTHING)
        .env("SWITCHYARD_ENDPOINTS__BREAKER_FAILURES", "3")
        .env("SWITCHYARD_ENDPOINTS__BREAKER_COOLDOWN", "2s")
        .env("SWITCHYARD_ENDPOINTS__BREAKER_MAX_COOLDOWN", "4s");
    hub.start().await;
    create_tenant(&hub, "acme").await;
    // Without the breaker these retries would come every 100 ms.
    let (endpoint, _) = create_endpoint(
        &hub,
        "acme",
        json!({"url": receiver.url("/flaky"), "retry_schedule": vec!["100ms"; 20]}),
    )
    .await;
    let id = endpoint["id"].as_str().unwrap().to_owned();

    // One notification: its first three attempts fail in a row, and the breaker opens.
    let first = send_for(
        &hub,
        "acme",
        json!({"kind": "order.created", "payload": {"n": 1}}),
    )
    .await;
    receiver.wait_for(3).await;
    // Two more while it is open: they wait with the first.
    let more = [
        send_for(
            &hub,
            "acme",
            json!({"kind": "order.created", "payload": {"n": 2}}),
        )
        .await,
        send_for(
            &hub,
            "acme",
            json!({"kind": "order.created", "payload": {"n": 3}}),
        )
        .await,
    ];
    let failing = get_endpoint(&hub, "acme", &id).await;
    assert!(
        failing["failing_since"].is_string(),
        "the failure streak is recorded: {failing}"
    );

    // The probe after the cooldown: one attempt, which fails too.
    let got = receiver.wait_for(4).await;
    let before_probe = &got[..3];
    assert!(
        before_probe.iter().all(|r| r.webhook_id() == first),
        "only the first notification was attempted before the breaker opened: {:?}",
        got.iter().map(Received::webhook_id).collect::<Vec<_>>()
    );
    let open_for = gap_ms(&got[2], &got[3]);
    assert!(
        open_for >= COOLDOWN_MS - SLACK_MS,
        "nothing may reach the receiver for the cooldown after the third failure; the probe \
         came after {open_for} ms"
    );
    // The attempt records say the same: four attempts, none delivered, none for the
    // deliveries held back. (The probe's record is written just after its answer.)
    let records = eventually(DEADLINE, "the probe's attempt record", || async {
        let listed = deliveries(&hub, "acme", &id).await;
        let attempts: u64 = listed.iter().map(|d| d["attempts"].as_u64().unwrap()).sum();
        (attempts >= 4).then_some(listed)
    })
    .await;
    assert_eq!(records.len(), 3, "{records:#?}");
    assert!(
        records.iter().all(|d| d["state"] == "pending"),
        "{records:#?}"
    );
    assert_eq!(
        records
            .iter()
            .map(|d| d["attempts"].as_u64().unwrap())
            .sum::<u64>(),
        4,
        "{records:#?}"
    );
    assert_eq!(
        receiver.count(),
        4,
        "no attempt while the probe was in flight"
    );

    // The receiver recovers. The failed probe doubled the cooldown; the next probe
    // delivers, the breaker closes, and every held delivery goes through.
    receiver.otherwise(Reply::ok());
    let mut ids = BTreeSet::from([first.clone()]);
    ids.extend(more.iter().cloned());
    let settled = eventually(DEADLINE, "all three delivered", || async {
        let listed = deliveries(&hub, "acme", &id).await;
        (listed.len() == 3 && listed.iter().all(|d| d["state"] == "delivered")).then_some(listed)
    })
    .await;
    let got = receiver.received();
    let reopened_for = gap_ms(&got[3], &got[4]);
    assert!(
        reopened_for >= MAX_COOLDOWN_MS - SLACK_MS,
        "a failed probe keeps the breaker open twice as long; the next came after \
         {reopened_for} ms"
    );
    let seen: BTreeSet<String> = got.iter().map(Received::webhook_id).collect();
    assert_eq!(seen, ids);
    // Every request at the receiver is in the attempt log, and nothing else is.
    let mut logged = 0;
    for listed in &settled {
        let detail = delivery(&hub, "acme", &id, listed["id"].as_str().unwrap()).await;
        let log = detail["attempt_log"].as_array().unwrap();
        let notification = listed["notification_id"].as_str().unwrap();
        let arrived = got
            .iter()
            .filter(|r| r.webhook_id() == notification)
            .count();
        assert_eq!(log.len(), arrived, "{detail:#}");
        assert_eq!(detail["attempts"].as_u64(), Some(log.len() as u64));
        let (last, failed) = log.split_last().unwrap();
        assert_eq!(last["outcome"], "delivered", "{detail:#}");
        assert!(
            failed
                .iter()
                .all(|a| a["status"] == 500 && a["outcome"] != "delivered"),
            "{detail:#}"
        );
        logged += log.len();
    }
    assert_eq!(logged, got.len());
    assert_eq!(got.len(), 4 + 3, "four failures, then each delivered once");
    let healthy = get_endpoint(&hub, "acme", &id).await;
    assert!(healthy["failing_since"].is_null(), "{healthy}");
    assert_eq!(healthy["enabled"], true);
}

// ---- 3. Auto-disable ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_too_long_is_disabled_announced_and_can_be_enabled_again() {
    let operator = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.otherwise(Reply::status(500));
    let sibling = Receiver::start().await;
    // The operator hears of disabled endpoints through a YAML route on the event's kind.
    let routes = format!(
        "channels:\n{}routes:\n  - name: disabled-endpoints\n    \
         match: {{ kind: \"switchyard.endpoint.disabled\" }}\n    to: [ops]\n",
        webhook_channel("ops", &operator.url("/ops"), "[100ms]", "")
    );
    let mut hub = Hub::new(&routes)
        .env("SWITCHYARD_ENDPOINTS__DISABLE_AFTER", "2s")
        // The breaker stays out of the way: every retry is attempted.
        .env("SWITCHYARD_ENDPOINTS__BREAKER_FAILURES", "1000");
    hub.start().await;
    create_tenant(&hub, "acme").await;
    // No kind filter: it would take the announcement of its own disabling, were that
    // routed to it.
    let body = json!({
        "url": failing.url("/orders"),
        "retry_schedule": vec!["200ms"; 20],
        "description": "orders",
    });
    let (endpoint, _) = create_endpoint(&hub, "acme", body.clone()).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let (_, sibling_secret) = create_endpoint(
        &hub,
        "acme",
        json!({"url": sibling.url("/ops-events"), "kinds": ["switchyard.endpoint.*"]}),
    )
    .await;

    let order = send_for(
        &hub,
        "acme",
        json!({"kind": "order.created", "payload": {}}),
    )
    .await;
    let disabled = eventually(DEADLINE, "the endpoint to be disabled", || async {
        let shown = get_endpoint(&hub, "acme", &id).await;
        (shown["enabled"] == false).then_some(shown)
    })
    .await;
    let reason = disabled["disabled_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("fail"), "{disabled}");
    let since = epoch_ms(&disabled["failing_since"]);
    let disabled_at = epoch_ms(&disabled["updated_at"]);
    assert!(
        disabled_at - since >= 2_000,
        "disabled only after failing for disable_after: {disabled}"
    );

    // The operator and the tenant's other endpoint both get the announcement: the same
    // notification, the sibling's copy signed with its own secret.
    let to_operator = operator.wait_for(1).await[0].clone();
    let to_sibling = sibling.wait_for(1).await[0].clone();
    for got in [&to_operator, &to_sibling] {
        let event = got.json();
        assert_eq!(event["type"], "switchyard.endpoint.disabled", "{event}");
        assert_eq!(event["source"], "switchyard", "{event}");
        assert_eq!(event["attributes"]["endpoint"], id.as_str(), "{event}");
        assert_eq!(event["data"]["endpoint_id"], id.as_str(), "{event}");
        assert_eq!(event["data"]["tenant_id"], "acme", "{event}");
        assert_eq!(event["data"]["description"], "orders", "{event}");
        assert_eq!(event["data"]["reason"], reason, "{event}");
    }
    assert_eq!(to_operator.webhook_id(), to_sibling.webhook_id());
    assert!(to_operator.signature_is_valid());
    assert!(signed_by(&to_sibling, &sibling_secret));

    // Disabled, it gets nothing more; the announcement was made once.
    let attempts = failing.count();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = failing.received()[attempts..].to_vec();
    assert!(
        late.len() <= 1,
        "a disabled endpoint is not attempted (one attempt may have been in flight): {late:#?}"
    );
    let announced_to_self = failing
        .received()
        .iter()
        .filter(|r| r.json()["type"] == "switchyard.endpoint.disabled")
        .count();
    assert_eq!(
        announced_to_self, 0,
        "the disabled endpoint itself is not sent its own announcement"
    );
    assert_eq!(operator.count(), 1, "announced once");
    assert_eq!(sibling.count(), 1, "announced once");
    let listed = deliveries(&hub, "acme", &id).await;
    assert!(
        listed
            .iter()
            .any(|d| d["notification_id"] == order.as_str() && d["state"] == "pending"),
        "the order waits, neither delivered nor dead: {listed:#?}"
    );
    assert!(
        listed
            .iter()
            .all(|d| d["notification_id"] != to_operator.webhook_id().as_str()),
        "the announcement was not routed to the endpoint it is about: {listed:#?}"
    );

    // Enabled again (the receiver is fixed): the reason and the streak are cleared, and
    // it delivers again.
    failing.otherwise(Reply::ok());
    let mut enabled = body.clone();
    enabled["enabled"] = json!(true);
    let answer = Answer::of(
        hub.api(reqwest::Method::PUT, &endpoint_path("acme", &id))
            .header("content-type", "application/json")
            .body(enabled.to_string()),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer}");
    let shown = answer.json();
    assert_eq!(shown["enabled"], true, "{shown}");
    assert!(shown["disabled_reason"].is_null(), "{shown}");
    assert!(shown["failing_since"].is_null(), "{shown}");
    let next = send_for(&hub, "acme", json!({"kind": "order.paid", "payload": {}})).await;
    let got = arrival(&failing, &next).await;
    assert_eq!(got.path, "/orders");
    eventually(DEADLINE, "the new order delivered", || async {
        let listed = deliveries(&hub, "acme", &id).await;
        listed
            .iter()
            .any(|d| d["notification_id"] == next.as_str() && d["state"] == "delivered")
            .then_some(())
    })
    .await;
    let shown = get_endpoint(&hub, "acme", &id).await;
    assert_eq!(shown["enabled"], true, "{shown}");
    assert!(shown["disabled_reason"].is_null(), "{shown}");
    // The order held while it was disabled is not waited for here: it is due again only
    // when its hand-back ends, up to a minute after enabling.
}

// ---- 4. Bulk recovery ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_replays_the_dead_deliveries_since_a_time_and_only_for_the_tenant() {
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::status(500));
    let hub = Hub::started(LOG_EVERYTHING).await;
    create_tenant(&hub, "acme").await;
    create_tenant(&hub, "globex").await;
    let (endpoint, _) = create_endpoint(
        &hub,
        "acme",
        json!({"url": receiver.url("/acme"), "retry_schedule": []}),
    )
    .await;
    let id = endpoint["id"].as_str().unwrap().to_owned();

    let before = rfc3339(SystemTime::now() - Duration::from_secs(1));
    let mut sent = BTreeSet::new();
    for n in 0..4 {
        sent.insert(
            send_for(
                &hub,
                "acme",
                json!({"kind": "invoice.paid", "payload": {"n": n}}),
            )
            .await,
        );
    }
    eventually(DEADLINE, "four dead deliveries", || async {
        let listed = deliveries(&hub, "acme", &id).await;
        (listed.len() == 4 && listed.iter().all(|d| d["state"] == "dead")).then_some(())
    })
    .await;
    assert_eq!(
        receiver.count(),
        4,
        "one attempt each: the schedule has no retries"
    );
    let after = rfc3339(SystemTime::now() + Duration::from_secs(1));
    receiver.otherwise(Reply::ok());

    let recover_path = format!("{}/recover", endpoint_path("acme", &id));
    // Since a time after they died: none.
    let none = hub.post_json(&recover_path, &json!({"since": after})).await;
    assert_eq!(none.status, 200, "{none}");
    assert_eq!(none.json()["recovered"], 0, "{none}");

    // Another tenant's token cannot recover them, on acme's path or its own.
    let answer = hub
        .post_json(
            "/api/v1/tokens",
            &json!({"name": "globex admin", "scopes": ["send", "read", "admin"], "tenant": "globex"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer}");
    let globex_token = answer.json()["token"].as_str().unwrap().to_owned();
    let as_globex = |path: String| {
        Answer::of(
            reqwest::Client::new()
                .post(hub.url(&path))
                .bearer_auth(&globex_token)
                .header("content-type", "application/json")
                .body(json!({"since": before}).to_string()),
        )
    };
    let refused = as_globex(recover_path.clone()).await;
    assert_eq!(refused.problem(403)["code"], "wrong-tenant", "{refused}");
    let elsewhere = as_globex(format!("{}/recover", endpoint_path("globex", &id))).await;
    assert_eq!(elsewhere.status, 404, "{elsewhere}");
    assert!(
        deliveries(&hub, "acme", &id)
            .await
            .iter()
            .all(|d| d["state"] == "dead"),
        "nothing was recovered by the refused calls"
    );
    assert_eq!(receiver.count(), 4);

    // Since a time before they died: all four, each delivered once more.
    let all = hub
        .post_json(&recover_path, &json!({"since": before}))
        .await;
    assert_eq!(all.status, 200, "{all}");
    assert_eq!(all.json()["recovered"], 4, "{all}");
    let listed = eventually(DEADLINE, "the recovered deliveries delivered", || async {
        let listed = deliveries(&hub, "acme", &id).await;
        listed
            .iter()
            .all(|d| d["state"] == "delivered")
            .then_some(listed)
    })
    .await;
    assert_eq!(listed.len(), 4);
    for d in &listed {
        assert_eq!(d["attempts"], 2, "{d}");
    }
    let got = receiver.wait_for(8).await;
    assert_eq!(got.len(), 8);
    let delivered: BTreeSet<String> = got[4..].iter().map(Received::webhook_id).collect();
    assert_eq!(delivered, sent);
    // Recovered deliveries are not dead any more, so a second recover finds none.
    let again = hub
        .post_json(&recover_path, &json!({"since": before}))
        .await;
    assert_eq!(again.json()["recovered"], 0, "{again}");
}

// ---- 5. A rate limit shared through Redis -----------------------------------------------------

/// A fixed master key, so both processes open the endpoint secrets in the shared store.
const SHARED_MASTER_KEY: &str = "c2hhcmVkLW1hc3Rlci1rZXktZm9yLWJsYWNrYm94LTA=";

/// `switchyard_deliveries_delivered_total` of a hub for tenants' endpoints (which share
/// the label `channel="endpoints"`).
async fn delivered_by(hub: &Hub) -> u64 {
    let metrics = reqwest::get(hub.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("switchyard_deliveries_delivered_total")
                && line.contains("channel=\"endpoints\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Notifications in the burst at the rate-limited endpoint, and its limit.
const BURST: usize = 60;
const PER_SECOND: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endpoint_rate_limit_holds_across_two_processes_through_redis() {
    let database = TestDatabase::create("switchyard_rate").await;
    let receiver = Receiver::start().await;
    // Two whole hubs (api, router, worker) on one PostgreSQL database and one Redis, with
    // the embedded stream and queues: endpoints' deliveries wait in the store's queue
    // whatever the queues are. The rate limit is counted in Redis under the endpoint's
    // channel, `endpoint:<uuid>`, a name no other test has.
    let hub = || {
        Hub::new(LOG_EVERYTHING)
            .env("SWITCHYARD_STORE__URL", &database.url())
            .env("SWITCHYARD_REDIS__URL", REDIS_URL)
            .env("SWITCHYARD_MASTER_KEY", SHARED_MASTER_KEY)
    };
    let mut one = hub();
    one.start().await;
    let mut two = hub();
    two.start().await;

    create_tenant(&one, "acme").await;
    let (endpoint, secret) = create_endpoint(
        &one,
        "acme",
        json!({"url": receiver.url("/limited"), "kinds": ["burst.*"],
               "rate_limit": format!("{PER_SECOND}/s")}),
    )
    .await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    create_endpoint(
        &one,
        "acme",
        json!({"url": receiver.url("/warm"), "kinds": ["warm.*"]}),
    )
    .await;
    // The other process reads both from the store.
    let seen = two.get(&endpoint_path("acme", &id)).await;
    assert_eq!(seen.status, 200, "{seen}");

    // Warm up: until each process has delivered to an endpoint (so its directory has
    // both, and its first call's start-up cost is behind it), an unlimited endpoint gets
    // a notification through each.
    eventually(DEADLINE, "both processes to deliver", || async {
        for via in [&one, &two] {
            send_for(via, "acme", json!({"kind": "warm.up", "payload": {}})).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        (delivered_by(&one).await > 0 && delivered_by(&two).await > 0).then_some(())
    })
    .await;
    // Every warm-up recorded, so the counters from here on are the burst's.
    let warm = eventually(DEADLINE, "the warm-ups delivered", || async {
        let counts = (delivered_by(&one).await, delivered_by(&two).await);
        (counts.0 + counts.1 == receiver.count() as u64).then_some(counts)
    })
    .await;

    // The burst, alternately through each process, so each routes about half and hands
    // them to its own lane.
    let mut ids = BTreeSet::new();
    for n in 0..BURST {
        let via = if n % 2 == 0 { &one } else { &two };
        ids.insert(
            send_for(
                via,
                "acme",
                json!({"kind": "burst.item", "payload": {"n": n}}),
            )
            .await,
        );
    }
    let limited = || -> Vec<Received> {
        receiver
            .received()
            .into_iter()
            .filter(|r| r.path == "/limited")
            .collect()
    };
    eventually(
        Duration::from_secs(120),
        &format!("{BURST} deliveries at the receiver"),
        || std::future::ready((limited().len() >= BURST).then_some(())),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = limited();
    assert_eq!(got.len(), BURST, "each delivered once");
    let seen: BTreeSet<String> = got.iter().map(Received::webhook_id).collect();
    assert_eq!(seen, ids);
    assert!(got.iter().all(|r| signed_by(r, &secret)));
    let (by_one, by_two) = eventually(
        Duration::from_secs(30),
        "the hubs' delivered counters",
        || async {
            let counts = (
                delivered_by(&one).await - warm.0,
                delivered_by(&two).await - warm.1,
            );
            (counts.0 + counts.1 >= BURST as u64).then_some(counts)
        },
    )
    .await;

    let mut times: Vec<SystemTime> = got.iter().map(|r| r.at).collect();
    times.sort();
    let span = times[BURST - 1].duration_since(times[0]).unwrap();
    let mut per_second: BTreeMap<u64, usize> = BTreeMap::new();
    for t in &times {
        let ms = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        *per_second.entry(ms / 1000).or_default() += 1;
    }
    eprintln!(
        "{BURST} at {PER_SECOND}/s: first to last {span:?}; {by_one} by one process, {by_two} \
         by the other; arrivals per wall-clock second: {:?}",
        per_second.values().collect::<Vec<_>>()
    );
    assert!(
        by_one > 0 && by_two > 0,
        "both processes delivered, so the limit had to be shared: {by_one} and {by_two}"
    );
    assert_eq!(by_one + by_two, BURST as u64);
    // 60 at 5/s, counted in one-second windows shared by both processes: twelve windows,
    // so at least ten seconds from first to last. Each process counting alone would let
    // its half through in six windows, five seconds or so.
    assert!(
        span >= Duration::from_secs(8),
        "{BURST} deliveries at {PER_SECOND}/s across two processes took only {span:?}"
    );
    // Within any one second: at most two windows' worth (a fixed window lets a burst
    // straddle its edge), and room for one more arriving late on a loaded machine.
    let busiest = times
        .iter()
        .map(|start| {
            times
                .iter()
                .filter(|t| {
                    t.duration_since(*start)
                        .is_ok_and(|d| d < Duration::from_secs(1))
                })
                .count()
        })
        .max()
        .unwrap();
    assert!(
        busiest <= 3 * PER_SECOND,
        "{busiest} deliveries arrived within one second at {PER_SECOND}/s"
    );
    drop((one, two));
}

// ---- 7. Endpoints through the generated client ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generated_python_client_manages_tenants_and_endpoints() {
    let receiver = Receiver::start().await;
    let hub = Hub::started(LOG_EVERYTHING).await;
    let out = crate::contract::generate_python_client(&hub).await;
    let mut client = crate::support::client_command(
        "generated_endpoints.py",
        &[&hub.url(""), &hub.token, &receiver.url("/generated")],
    );
    // `--meta none` writes the package itself into `out`; its parent is the import root.
    client.env("PYTHONPATH", out.parent().expect("a parent"));
    let output = tokio::time::timeout(Duration::from_secs(180), client.output())
        .await
        .expect("the generated client's script ends within 3 minutes")
        .expect("can run generated_endpoints.py");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{printed}");
    assert!(
        output.status.success(),
        "the script failed (its output is above)"
    );
    assert!(printed.contains("all done"), "{printed}");
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].path, "/generated");
    assert_eq!(got[0].json()["type"], "generated.hello");
}

/// PUTs `body` to endpoint `endpoint` of `tenant`.
async fn put_endpoint(hub: &Hub, tenant: &str, endpoint: &str, body: &Value) -> Answer {
    Answer::of(
        hub.api(reqwest::Method::PUT, &endpoint_path(tenant, endpoint))
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

#[tokio::test]
async fn a_plugin_endpoint_delivers_with_its_own_secrets_which_never_come_back_out() {
    let provider = Receiver::start().await;
    provider.otherwise(Reply::ok());
    let hub = Hub::started("routes: []\n").await;
    create_tenant(&hub, "acme").await;
    let first = "tok-first-6f1d0c";
    let second = "tok-second-94ab2e";
    let mut body = json!({
        "plugin": "email-http",
        "config": {"endpoint": provider.url("/send"), "from": "hub@acme.example",
                   "to": ["ops@acme.example"]},
        "allowed_hosts": ["127.0.0.1"],
        "secrets": {"api_token": first},
    });
    let answer = hub.post_json("/api/v1/tenants/acme/endpoints", &body).await;
    assert_eq!(answer.status, 201, "{answer}");
    assert!(!answer.text().contains(first), "{answer}");
    let endpoint = answer.json()["endpoint"].clone();
    let id = endpoint["id"].as_str().unwrap().to_owned();
    assert_eq!(endpoint["secret_names"], json!(["api_token"]), "{endpoint}");
    assert_eq!(vault_names(&hub, &id).await, ["api_token", "signing_key"]);

    // The plugin reads it at delivery.
    let sent = send_for(&hub, "acme", json!({"kind": "mail", "payload": {}})).await;
    let got = provider.wait_for(1).await;
    assert_eq!(
        got[0].header("authorization").as_deref(),
        Some(format!("Bearer {first}").as_str()),
        "{sent}"
    );

    // Never shown again: not in a read, nor in a listing.
    for path in [
        endpoint_path("acme", &id),
        "/api/v1/tenants/acme/endpoints".to_owned(),
    ] {
        let answer = hub.get(&path).await;
        assert_eq!(answer.status, 200, "{answer}");
        assert!(!answer.text().contains(first), "{path} shows the secret");
    }

    // Replaced through an update; an update without `secrets` keeps them.
    body["secrets"] = json!({"api_token": second});
    let answer = put_endpoint(&hub, "acme", &id, &body).await;
    assert_eq!(answer.status, 200, "{answer}");
    assert!(!answer.text().contains(second));
    body.as_object_mut().unwrap().remove("secrets");
    body["description"] = json!("renamed");
    let answer = put_endpoint(&hub, "acme", &id, &body).await;
    assert_eq!(
        answer.json()["secret_names"],
        json!(["api_token"]),
        "{answer}"
    );
    send_for(&hub, "acme", json!({"kind": "mail", "payload": {}})).await;
    let got = provider.wait_for(2).await;
    assert_eq!(
        got[1].header("authorization").as_deref(),
        Some(format!("Bearer {second}").as_str())
    );

    // Mistakes are named without quoting the value.
    for (secrets, url) in [
        (json!({"signing_key": "mine-0a8d"}), None),
        (json!({"bad name": "mine-0a8d"}), None),
        (json!({"api_token": ""}), None),
        (
            json!({"api_token": "mine-0a8d"}),
            Some(provider.url("/hook")),
        ),
    ] {
        let mut wrong = body.clone();
        wrong["secrets"] = secrets.clone();
        if let Some(url) = url {
            wrong = json!({"url": url, "secrets": secrets});
        }
        let answer = put_endpoint(&hub, "acme", &id, &wrong).await;
        assert_eq!(
            answer.problem(422)["field"],
            "secrets",
            "{secrets}: {answer}"
        );
        assert!(!answer.text().contains("mine-0a8d"), "{answer}");
    }

    // An empty set removes them; deleting the endpoint destroys every secret it had.
    body["secrets"] = json!({});
    let answer = put_endpoint(&hub, "acme", &id, &body).await;
    assert_eq!(answer.json()["secret_names"], json!([]), "{answer}");
    assert_eq!(vault_names(&hub, &id).await, ["signing_key"]);
    body["secrets"] = json!({"api_token": first});
    assert_eq!(put_endpoint(&hub, "acme", &id, &body).await.status, 200);
    let answer = Answer::of(hub.api(reqwest::Method::DELETE, &endpoint_path("acme", &id))).await;
    assert_eq!(answer.status, 204, "{answer}");
    assert!(vault_names(&hub, &id).await.is_empty());
    assert!(!hub.logs().contains(first) && !hub.logs().contains(second));
}
