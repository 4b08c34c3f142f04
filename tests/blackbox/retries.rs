//! Retries on a compressed schedule, Retry-After, dead letters and replay.

use serde_json::{Value, json};

use crate::support::{Answer, DEADLINE, Hub, Receiver, Reply, epoch_ms, eventually, one_hook};

fn attempt_log(notification: &Value) -> Vec<Value> {
    notification["deliveries"][0]["attempt_log"]
        .as_array()
        .expect("an attempt log")
        .clone()
}

fn outcomes(log: &[Value]) -> Vec<String> {
    log.iter()
        .map(|a| a["outcome"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Two 503s then a 200: delivered on the third attempt, every attempt logged, and every
/// request carries the same webhook-id and a valid signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_are_retried_until_delivered() {
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(503), Reply::status(503)]);
    let hub = Hub::started(&one_hook(
        &receiver.url("/hook"),
        "[100ms, 100ms, 100ms]",
        "",
    ))
    .await;

    let id = hub
        .send(json!({"kind": "retry.test", "payload": {"n": 1}}))
        .await;

    let notification = hub.wait_until_settled(&id, "delivered").await;
    let delivery = &notification["deliveries"][0];
    assert_eq!(delivery["attempts"], 3, "{notification:#}");
    let log = attempt_log(&notification);
    assert_eq!(
        outcomes(&log),
        ["retry", "retry", "delivered"],
        "{notification:#}"
    );
    assert_eq!(log[0]["status"], 503);
    assert_eq!(log[1]["status"], 503);
    assert_eq!(log[2]["status"], 200);
    let numbers: Vec<&Value> = log.iter().map(|a| &a["attempt"]).collect();
    assert_eq!(numbers, [1, 2, 3]);

    let received = receiver.received();
    assert_eq!(received.len(), 3, "{received:?}");
    for request in &received {
        // Receivers dedupe on webhook-id: a retry must not look like a new message.
        assert_eq!(request.webhook_id(), id);
        assert!(request.signature_is_valid(), "{request:?}");
    }
}

/// A 429 with `Retry-After: 1` pushes the next attempt at least a second out, although
/// the schedule says 50 ms. Measured on the hub's own record of when attempts started.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_after_is_honoured() {
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(429).header("retry-after", "1")]);
    let hub = Hub::started(&one_hook(&receiver.url("/hook"), "[50ms, 50ms]", "")).await;

    let id = hub.send(json!({"kind": "retry.after"})).await;

    let notification = hub.wait_until_settled(&id, "delivered").await;
    let log = attempt_log(&notification);
    assert_eq!(outcomes(&log), ["retry", "delivered"], "{notification:#}");
    assert_eq!(log[0]["status"], 429);
    let gap = epoch_ms(&log[1]["started_at"]) - epoch_ms(&log[0]["started_at"]);
    assert!(
        gap >= 950,
        "attempt 2 started {gap} ms after attempt 1; Retry-After asked for 1 s: {notification:#}"
    );
    // The receiver's clock agrees.
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    let seen = received[1].at.duration_since(received[0].at).unwrap();
    assert!(seen.as_millis() >= 950, "the receiver saw a {seen:?} gap");
}

/// A receiver that always fails: with one retry allowed the delivery is dead after two
/// attempts and listed as a dead letter. Once the receiver recovers, a replay delivers
/// it, under the same notification id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_can_be_replayed() {
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::status(500));
    let hub = Hub::started(&one_hook(&receiver.url("/hook"), "[100ms]", "")).await;

    let id = hub
        .send(json!({"kind": "dead.test", "payload": {"n": 7}}))
        .await;

    let notification = hub.wait_until_settled(&id, "dead").await;
    let delivery = notification["deliveries"][0].clone();
    assert_eq!(delivery["attempts"], 2, "{notification:#}");
    assert_eq!(outcomes(&attempt_log(&notification)), ["retry", "retry"]);
    assert!(
        delivery["last_error"].is_string(),
        "a dead delivery says why: {notification:#}"
    );
    let delivery_id = delivery["id"].as_str().unwrap().to_owned();

    let dead = hub.get("/api/v1/dead-letters?channel=hook").await;
    assert_eq!(dead.status, 200, "{dead}");
    let items = dead.json()["items"].as_array().unwrap().clone();
    let letter = items
        .iter()
        .find(|d| d["delivery_id"] == delivery_id.as_str())
        .unwrap_or_else(|| panic!("delivery {delivery_id} is not a dead letter: {items:#?}"));
    assert_eq!(letter["notification_id"], id.as_str());
    assert_eq!(letter["channel"], "hook");
    assert_eq!(letter["attempts"], 2);
    assert!(letter["last_error"].is_string(), "{letter:#}");

    // The receiver recovers; replay.
    receiver.otherwise(Reply::ok());
    let replay = Answer::of(hub.api(
        reqwest::Method::POST,
        &format!("/api/v1/dead-letters/{delivery_id}/replay"),
    ))
    .await;
    assert_eq!(replay.status, 200, "{replay}");
    assert_eq!(replay.json()["delivery_id"], delivery_id.as_str());

    let notification = hub.wait_until_settled(&id, "delivered").await;
    assert_eq!(notification["id"], id.as_str());
    assert_eq!(
        notification["deliveries"][0]["attempts"], 3,
        "{notification:#}"
    );
    assert_eq!(
        outcomes(&attempt_log(&notification)),
        ["retry", "retry", "delivered"]
    );
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.webhook_id() == id));

    // Delivered, so no longer a dead letter; and a second replay finds nothing to replay.
    let after = eventually(DEADLINE, "the dead letter to leave the list", || async {
        let items = hub.get("/api/v1/dead-letters?channel=hook").await.json()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (!items
            .iter()
            .any(|d| d["delivery_id"] == delivery_id.as_str()))
        .then_some(items)
    })
    .await;
    assert!(after.is_empty(), "{after:#?}");
    let again = Answer::of(hub.api(
        reqwest::Method::POST,
        &format!("/api/v1/dead-letters/{delivery_id}/replay"),
    ))
    .await;
    again.problem(404);
}
