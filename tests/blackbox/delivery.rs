//! The happy path, and the destination answers that end a delivery at once.

use serde_json::json;

use crate::support::{Hub, Receiver, Reply, one_hook, webhook_channel};

/// A notification reaches a local receiver signed per Standard Webhooks, and the API then
/// shows its delivery as delivered in one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notification_is_delivered_with_a_valid_signature() {
    let receiver = Receiver::start().await;
    let hub = Hub::started(&one_hook(&receiver.url("/hook"), "[100ms]", "")).await;

    let id = hub
        .send(json!({
            "kind": "invoice.paid",
            "attributes": {"region": "eu"},
            "payload": {"invoice": 42, "text": "héllo"},
        }))
        .await;

    let received = receiver.wait_for(1).await;
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hook");
    // The receiver dedupes on webhook-id, so it must be the id the API gave.
    assert_eq!(request.webhook_id(), id);
    assert!(
        request
            .header("webhook-timestamp")
            .is_some_and(|t| t.parse::<u64>().is_ok()),
        "webhook-timestamp is whole seconds: {request:?}"
    );
    assert!(
        request.signature_is_valid(),
        "the signature does not verify over the received body: {request:?}"
    );
    let body = request.json();
    assert_eq!(body["type"], "invoice.paid");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["attributes"]["region"], "eu");
    assert_eq!(body["data"], json!({"invoice": 42, "text": "héllo"}));

    let notification = hub.wait_until_settled(&id, "delivered").await;
    let deliveries = notification["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{notification:#}");
    let delivery = &deliveries[0];
    assert_eq!(delivery["channel"], "hook");
    assert_eq!(delivery["route"], "all");
    assert_eq!(delivery["attempts"], 1, "{notification:#}");
    let log = delivery["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 1, "{notification:#}");
    assert_eq!(log[0]["attempt"], 1);
    assert_eq!(log[0]["outcome"], "delivered");
    assert_eq!(log[0]["status"], 200);
    assert_eq!(receiver.count(), 1, "delivered once, so sent once");
}

/// 410 Gone means the destination is gone for good: dead after one attempt, even though
/// the schedule would allow retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gone_is_dead_after_one_attempt() {
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::status(410));
    let hub = Hub::started(&one_hook(
        &receiver.url("/hook"),
        "[100ms, 100ms, 100ms]",
        "",
    ))
    .await;

    let id = hub.send(json!({"kind": "gone.test"})).await;

    let notification = hub.wait_until_settled(&id, "dead").await;
    let delivery = &notification["deliveries"][0];
    assert_eq!(
        delivery["attempts"], 1,
        "no retries after 410: {notification:#}"
    );
    let log = delivery["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 1, "{notification:#}");
    assert_eq!(log[0]["outcome"], "failed");
    assert_eq!(log[0]["status"], 410);
    assert_eq!(receiver.count(), 1);

    // It is a dead letter like any other.
    let dead = hub.get("/api/v1/dead-letters?channel=hook").await;
    assert_eq!(dead.status, 200, "{dead}");
    let items = dead.json()["items"].as_array().unwrap().clone();
    assert!(
        items.iter().any(|d| d["notification_id"] == id.as_str()),
        "{items:#?}"
    );
}

/// A 302 is not followed: the redirect target never hears from the hub and the delivery
/// fails (a receiver that moved must be reconfigured, not chased).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redirects_are_not_followed() {
    let target = Receiver::start().await;
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::status(302).header("location", &target.url("/moved")));
    let hub = Hub::started(&one_hook(&receiver.url("/hook"), "[]", "")).await;

    let id = hub.send(json!({"kind": "redirect.test"})).await;

    let notification = hub.wait_until_settled(&id, "dead").await;
    let delivery = &notification["deliveries"][0];
    let log = delivery["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 1, "{notification:#}");
    assert_eq!(log[0]["outcome"], "failed", "{notification:#}");
    assert_eq!(receiver.count(), 1);
    assert_eq!(
        target.count(),
        0,
        "the redirect was followed: {:?}",
        target.received()
    );
}

/// A channel whose destination hangs fills its own lane, and the router routes on past it:
/// every other channel still gets every notification. The lane holds 4,096 deliveries, so
/// 5,000 notifications overflow it; the rest of the slow channel's deliveries wait in the
/// store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_channel_does_not_hold_up_the_others() {
    const TOTAL: usize = 5_000;
    let hanging = Receiver::start().await;
    hanging.otherwise(Reply::ok().after(std::time::Duration::from_secs(120)));
    let fast = Receiver::start().await;
    let routes = format!(
        "channels:\n{}{}routes:\n  - name: all\n    match: {{ kind: \"*\" }}\n    \
         to: [hanging, fast]\n",
        webhook_channel(
            "hanging",
            &hanging.url("/hook"),
            "[1s]",
            "    concurrency: 1\n"
        ),
        webhook_channel("fast", &fast.url("/hook"), "[1s]", ""),
    );
    let hub = Hub::started(&routes).await;

    for batch in 0..TOTAL / 1_000 {
        let notifications: Vec<_> = (batch * 1_000..(batch + 1) * 1_000)
            .map(|seq| json!({"kind": "load.item", "payload": {"seq": seq}}))
            .collect();
        let answer = hub
            .post_json(
                "/api/v1/notifications/batch",
                &json!({ "notifications": notifications }),
            )
            .await;
        assert_eq!(answer.status, 202, "{}", answer.text());
    }

    let received = fast.wait_for(TOTAL).await;
    let mut seqs: Vec<u64> = received
        .iter()
        .map(|request| request.json()["data"]["seq"].as_u64().expect("a seq"))
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs.len(),
        TOTAL,
        "every notification reached the fast channel"
    );
    // One call at a time, each held until the hub's 15 s response timeout: a handful at
    // most, however slow the machine running the test.
    let calls = hanging.count();
    assert!(
        (1..10).contains(&calls),
        "the hanging channel took {calls} calls"
    );
}
