//! Inbound webhooks at `/hooks/{source}`, sent by Python `requests` from
//! `tests/clients/hooks_send.py`, which signs them as Standard Webhooks or GitHub senders
//! do: a good one is accepted once and delivered once however often it is redelivered; a
//! bad signature, a stale timestamp, an oversize body and an unknown source are refused
//! with problems, and accept nothing.

use serde_json::{Value, json};

use crate::support::{Hub, Receiver, run_client, webhook_channel};

/// The `shop` source's Standard Webhooks secret (base64 of 32 bytes).
const SHOP_SECRET: &str = "whsec_c2hvcC1zb3VyY2Uta2V5LTAxMjM0NTY3ODlhYmNkZWY=";
/// The `github` source's secret, used byte for byte as GitHub does.
const GITHUB_SECRET: &str = "blackbox-github-secret";

/// Two sources, `shop` (Standard Webhooks) and `github`, whose secrets come from the
/// environment, and everything going to `channels` (YAML entries under `channels:`).
fn routes(channels: &str, to: &str) -> String {
    format!(
        "sources:\n  shop:\n    adapter: webhook-standard\n    secret: ${{SHOP_SECRET}}\n  \
         github:\n    adapter: webhook-github\n    secret: ${{GITHUB_SECRET}}\n\
         channels:\n{channels}routes:\n  - name: all\n    match: {{ kind: \"*\" }}\n    \
         to: [{to}]\n"
    )
}

async fn hub_with(routes: &str, extra_env: &[(&str, &str)]) -> Hub {
    let mut hub = Hub::new(routes)
        .env("SHOP_SECRET", SHOP_SECRET)
        .env("GITHUB_SECRET", GITHUB_SECRET);
    for (name, value) in extra_env {
        hub = hub.env(name, value);
    }
    hub.start().await;
    hub
}

/// Sends with `hooks_send.py` to `/hooks/{source}`; returns one answer per send.
async fn send(hub: &Hub, source: &str, args: &[&str]) -> Vec<Value> {
    let url = hub.url(&format!("/hooks/{source}"));
    let mut all = vec![url.as_str()];
    all.extend_from_slice(args);
    let run = run_client("hooks_send.py", &all).await;
    assert!(
        run.success,
        "hooks_send.py {all:?} failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    match run.json() {
        Value::Array(answers) => answers,
        other => panic!("hooks_send.py printed {other}, not a list of answers"),
    }
}

/// The one answer of a single send.
async fn send_once(hub: &Hub, source: &str, args: &[&str]) -> Value {
    let mut answers = send(hub, source, args).await;
    assert_eq!(answers.len(), 1, "one send, one answer: {answers:?}");
    answers.pop().expect("one answer")
}

/// Asserts `answer` is a 202 with one notification; returns its id and `duplicate`.
fn accepted_one(answer: &Value) -> (String, bool) {
    assert_eq!(answer["status"], 202, "expected 202: {answer}");
    let notifications = answer["body"]["notifications"]
        .as_array()
        .unwrap_or_else(|| panic!("no notifications in {answer}"));
    assert_eq!(notifications.len(), 1, "one notification: {answer}");
    let id = notifications[0]["id"].as_str().expect("an id").to_owned();
    let duplicate = notifications[0]["duplicate"].as_bool().expect("duplicate");
    (id, duplicate)
}

/// Asserts `answer` is an `application/problem+json` with `status`; returns its body.
fn problem(answer: &Value, status: u16) -> &Value {
    assert_eq!(answer["status"], status, "expected {status}: {answer}");
    assert!(
        answer["content_type"]
            .as_str()
            .is_some_and(|ct| ct.starts_with("application/problem+json")),
        "a problem body: {answer}"
    );
    let body = &answer["body"];
    assert_eq!(body["status"], status, "the problem's status: {answer}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "the problem says what is wrong: {answer}"
    );
    body
}

async fn notifications_from(hub: &Hub, source: &str) -> Vec<Value> {
    let answer = hub
        .get(&format!("/api/v1/notifications?source={source}"))
        .await;
    assert_eq!(answer.status, 200, "list notifications: {answer}");
    answer.json()["items"]
        .as_array()
        .cloned()
        .expect("a list of items")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_is_delivered_once_however_often_it_is_sent() {
    let receiver = Receiver::start().await;
    let channel = webhook_channel("hook", &receiver.url("/in"), "[100ms]", "");
    let hub = hub_with(&routes(&channel, "hook"), &[]).await;
    let payload = r#"{"type": "invoice.paid", "invoice": 42}"#;
    let args = [
        "--secret",
        SHOP_SECRET,
        "--id",
        "msg_replayed",
        "--payload",
        payload,
    ];

    // The very same request twice (a sender retrying after a lost answer), then a
    // redelivery signed anew at a later time: one notification, the same id each time.
    let repeated = send(&hub, "shop", &[&args[..], &["--repeat", "2"]].concat()).await;
    let (id, first_duplicate) = accepted_one(&repeated[0]);
    assert!(!first_duplicate, "the first send is new: {repeated:?}");
    for answer in [&repeated[1], &send_once(&hub, "shop", &args).await] {
        assert_eq!(accepted_one(answer), (id.clone(), true), "{answer}");
    }
    assert_eq!(notifications_from(&hub, "shop").await.len(), 1);

    let notification = hub.wait_until_settled(&id, "delivered").await;
    assert_eq!(notification["kind"], "invoice.paid");
    assert_eq!(notification["source"], "shop");
    assert_eq!(notification["attributes"]["webhook_id"], "msg_replayed");
    assert_eq!(notification["idempotency_key"], "msg_replayed");
    assert_eq!(notification["deliveries"].as_array().map(Vec::len), Some(1));

    // A different webhook goes through after it; by then the receiver has the first one
    // exactly once.
    let (second, _) = accepted_one(&send_once(&hub, "shop", &["--secret", SHOP_SECRET]).await);
    hub.wait_until_settled(&second, "delivered").await;
    let received = receiver.received();
    let ids: Vec<String> = received.iter().map(|r| r.webhook_id()).collect();
    assert_eq!(ids, [id.clone(), second], "one delivery per notification");
    let delivered = &received[0];
    assert!(
        delivered.signature_is_valid(),
        "the hub signs what it sends"
    );
    let body = delivered.json();
    assert_eq!(body["source"], "shop");
    assert_eq!(body["data"], json!({"type": "invoice.paid", "invoice": 42}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhooks_are_refused_with_problems_and_accept_nothing() {
    let log = "  log:\n    plugin: log\n";
    // A small body limit keeps the oversize request small.
    let hub = hub_with(
        &routes(log, "log"),
        &[("SWITCHYARD_API__MAX_BODY_BYTES", "65536")],
    )
    .await;

    let tampered = send_once(&hub, "shop", &["--secret", SHOP_SECRET, "--tamper"]).await;
    assert_eq!(problem(&tampered, 401)["code"], "invalid-signature");

    let stale = ["--secret", SHOP_SECRET, "--timestamp-offset", "-3600"];
    let stale = send_once(&hub, "shop", &stale).await;
    assert_eq!(problem(&stale, 401)["code"], "stale-timestamp");

    let wrong_key = "whsec_d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktISE=";
    let unsigned_by_us = send_once(&hub, "shop", &["--secret", wrong_key]).await;
    problem(&unsigned_by_us, 401);

    let oversize = send_once(&hub, "shop", &["--secret", SHOP_SECRET, "--pad", "70000"]).await;
    problem(&oversize, 413);

    // Anyone may call /hooks/*: the 404 must not list the hub's integrations.
    let unknown = send_once(&hub, "shopp", &["--secret", SHOP_SECRET]).await;
    let unknown = problem(&unknown, 404);
    assert_eq!(unknown["code"], "unknown-source", "{unknown}");
    let text = unknown.to_string();
    assert!(
        !text.contains("shop") && !text.contains("github"),
        "the 404 names no configured source: {text}"
    );

    let github = ["--scheme", "github", "--secret", "not-the-secret"];
    let forged = send_once(&hub, "github", &github).await;
    assert_eq!(problem(&forged, 401)["code"], "invalid-signature");

    let answer = hub.get("/api/v1/notifications").await;
    assert_eq!(answer.json()["items"], json!([]), "nothing was accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_event_becomes_a_routable_notification() {
    let receiver = Receiver::start().await;
    let channel = webhook_channel("hook", &receiver.url("/in"), "[100ms]", "");
    let hub = hub_with(&routes(&channel, "hook"), &[]).await;
    let github = ["--scheme", "github", "--secret", GITHUB_SECRET];

    // GitHub's ping proves the setup and carries nothing to route.
    let ping = send_once(
        &hub,
        "github",
        &[&github[..], &["--event", "ping"]].concat(),
    )
    .await;
    assert_eq!(ping["status"], 202, "{ping}");
    assert_eq!(ping["body"]["notifications"], json!([]), "{ping}");

    let payload = r#"{"action": "opened", "repository": {"full_name": "acme/widgets"}}"#;
    let event = [&github[..], &["--payload", payload, "--id", "guid-1"]].concat();
    let (id, duplicate) = accepted_one(&send_once(&hub, "github", &event).await);
    assert!(!duplicate);
    let notification = hub.wait_until_settled(&id, "delivered").await;
    assert_eq!(notification["kind"], "github.issues.opened");
    assert_eq!(notification["source"], "github");
    assert_eq!(notification["attributes"]["repository"], "acme/widgets");
    // Keyed on the signature, not the unsigned delivery id, so a replay is a duplicate.
    assert!(
        notification["idempotency_key"]
            .as_str()
            .is_some_and(|key| key.starts_with("sha256:") && key.len() == 7 + 64),
        "{notification}"
    );
    assert_eq!(receiver.received()[0].webhook_id(), id);
}
