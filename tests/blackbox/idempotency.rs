//! Idempotency: a repeated request creates nothing new and is delivered once.

use serde_json::{Value, json};

use crate::support::{Answer, Hub, Receiver, one_hook};

async fn send_with_key(hub: &Hub, key: &str, body: &Value) -> Answer {
    Answer::of(
        hub.api(reqwest::Method::POST, "/api/v1/notifications")
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body.to_string()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeats_are_answered_once_and_delivered_once() {
    let receiver = Receiver::start().await;
    // One call in flight at a time: deliveries reach the receiver in the order they were
    // accepted, so once the last notification has arrived, any duplicate of an earlier one
    // would have arrived too.
    let hub = Hub::started(&one_hook(
        &receiver.url("/hook"),
        "[100ms]",
        "    concurrency: 1\n",
    ))
    .await;

    // The Idempotency-Key header: the repeat gets the stored answer, marked replayed.
    let body = json!({"kind": "idem.header", "payload": {"order": 1}});
    let first = send_with_key(&hub, "order-1-create", &body).await;
    assert_eq!(first.status, 202, "{first}");
    assert_eq!(
        first.header("idempotent-replayed"),
        None,
        "{first:?}",
        first = first.headers
    );
    let header_id = first.json()["id"].as_str().unwrap().to_owned();

    let repeat = send_with_key(&hub, "order-1-create", &body).await;
    assert_eq!(repeat.status, 202, "{repeat}");
    assert_eq!(repeat.json()["id"], header_id.as_str(), "{repeat}");
    assert_eq!(
        repeat.header("idempotent-replayed").as_deref(),
        Some("true"),
        "{:?}",
        repeat.headers
    );

    // The same key with another body is a client mistake, not a repeat.
    let other = json!({"kind": "idem.header", "payload": {"order": 2}});
    let conflict = send_with_key(&hub, "order-1-create", &other).await;
    let problem = conflict.problem(409);
    assert_eq!(problem["code"], "idempotency-key-reused", "{conflict}");

    // A body-level idempotency_key: the second send is a duplicate of the first.
    let keyed = json!({"kind": "idem.body", "idempotency_key": "invoice-9-paid"});
    let first = hub.post_json("/api/v1/notifications", &keyed).await;
    assert_eq!(first.status, 202, "{first}");
    assert_eq!(first.json()["duplicate"], false, "{first}");
    let body_id = first.json()["id"].as_str().unwrap().to_owned();
    let second = hub.post_json("/api/v1/notifications", &keyed).await;
    assert_eq!(second.status, 202, "{second}");
    assert_eq!(second.json()["duplicate"], true, "{second}");
    assert_eq!(second.json()["id"], body_id.as_str(), "{second}");

    // The last one in: once it has arrived, everything before it has too.
    let sentinel = hub.send(json!({"kind": "idem.sentinel"})).await;
    hub.wait_until_settled(&sentinel, "delivered").await;
    hub.wait_until_settled(&header_id, "delivered").await;
    hub.wait_until_settled(&body_id, "delivered").await;

    let ids: Vec<String> = receiver.received().iter().map(|r| r.webhook_id()).collect();
    let count = |id: &str| ids.iter().filter(|x| *x == id).count();
    assert_eq!(count(&header_id), 1, "received: {ids:?}");
    assert_eq!(count(&body_id), 1, "received: {ids:?}");
    assert_eq!(ids.len(), 3, "received: {ids:?}");

    // And the store holds one notification of each kind.
    for kind in ["idem.header", "idem.body"] {
        let page = hub.get(&format!("/api/v1/notifications?kind={kind}")).await;
        assert_eq!(page.status, 200, "{page}");
        let items = page.json()["items"].as_array().unwrap().len();
        assert_eq!(items, 1, "notifications of kind {kind}: {page}");
    }
}

/// A batch repeated with the same Idempotency-Key gets the same ids back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeated_batch_gets_the_same_ids() {
    let receiver = Receiver::start().await;
    let hub = Hub::started(&one_hook(&receiver.url("/hook"), "[100ms]", "")).await;
    let body = json!({"notifications": [
        {"kind": "batch.one", "payload": {"seq": 1}},
        {"kind": "batch.two", "payload": {"seq": 2}},
    ]});
    let send = || async {
        Answer::of(
            hub.api(reqwest::Method::POST, "/api/v1/notifications/batch")
                .header("content-type", "application/json")
                .header("idempotency-key", "batch-1")
                .body(body.to_string()),
        )
        .await
    };
    let first = send().await;
    assert_eq!(first.status, 202, "{first}");
    let repeat = send().await;
    assert_eq!(repeat.status, 202, "{repeat}");
    assert_eq!(
        repeat.json()["notifications"],
        first.json()["notifications"],
        "{repeat}"
    );
    assert_eq!(
        repeat.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    let ids: Vec<String> = first.json()["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    for id in &ids {
        hub.wait_until_settled(id, "delivered").await;
    }
}

/// A notification's own `idempotency_key` is its sender's: another API token using the same
/// key gets a notification of its own (not the first sender's id, its notification dropped);
/// the same sender repeating the key with another notification gets 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notification_key_belongs_to_its_sender() {
    let receiver = Receiver::start().await;
    let mut hub = Hub::new(&one_hook(&receiver.url("/hook"), "[100ms]", ""));
    let output = hub
        .command(&["token", "create", "other-sender", "--scope", "send"])
        .output()
        .expect("can run `token create`");
    assert!(output.status.success(), "{output:?}");
    let other = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    hub.start().await;
    let send_as = |token: String, path: &'static str, body: Value| {
        let request = hub
            .anonymous(reqwest::Method::POST, path)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string());
        Answer::of(request)
    };
    let mine = hub.token.clone();
    let keyed =
        json!({"kind": "idem.owned", "payload": {"order": 1}, "idempotency_key": "order-1"});

    let first = send_as(mine.clone(), "/api/v1/notifications", keyed.clone()).await;
    assert_eq!(first.status, 202, "{first}");
    assert_eq!(first.json()["duplicate"], false, "{first}");
    let my_id = first.json()["id"].as_str().unwrap().to_owned();

    // Another token, the same key: its own notification, not a duplicate of mine.
    let theirs = send_as(other.clone(), "/api/v1/notifications", keyed.clone()).await;
    assert_eq!(theirs.status, 202, "{theirs}");
    assert_eq!(theirs.json()["duplicate"], false, "{theirs}");
    let their_id = theirs.json()["id"].as_str().unwrap().to_owned();
    assert_ne!(
        their_id, my_id,
        "another sender never gets my notification's id"
    );

    // Each sender's repeat is a duplicate of its own first.
    for (token, id) in [(&mine, &my_id), (&other, &their_id)] {
        let again = send_as(token.clone(), "/api/v1/notifications", keyed.clone()).await;
        assert_eq!(again.status, 202, "{again}");
        assert_eq!(again.json()["duplicate"], true, "{again}");
        assert_eq!(again.json()["id"], id.as_str(), "{again}");
    }

    // The same key with a different notification is refused.
    let changed =
        json!({"kind": "idem.owned", "payload": {"order": 2}, "idempotency_key": "order-1"});
    let conflict = send_as(mine.clone(), "/api/v1/notifications", changed.clone()).await;
    let problem = conflict.problem(409);
    assert_eq!(problem["code"], "idempotency-key-reused", "{conflict}");
    assert_eq!(problem["field"], "idempotency_key", "{conflict}");

    // In a batch, the whole batch is refused and the problem names the notification; the
    // batch's other, new key was not taken.
    let batch = json!({"notifications": [
        {"kind": "idem.owned", "idempotency_key": "order-3"},
        changed,
    ]});
    let conflict = send_as(mine.clone(), "/api/v1/notifications/batch", batch).await;
    let problem = conflict.problem(409);
    assert_eq!(
        problem["field"], "notifications[1].idempotency_key",
        "{conflict}"
    );
    let batch = json!({"notifications": [
        {"kind": "idem.owned", "idempotency_key": "order-3"},
        keyed,
    ]});
    let accepted = send_as(mine.clone(), "/api/v1/notifications/batch", batch).await;
    assert_eq!(accepted.status, 202, "{accepted}");
    let items = accepted.json()["notifications"].clone();
    assert_eq!(items[0]["duplicate"], false, "order-3 is new: {accepted}");
    assert_eq!(items[1]["duplicate"], true, "{accepted}");
    assert_eq!(items[1]["id"], my_id.as_str(), "{accepted}");

    // Both senders' notifications are delivered, each once.
    hub.wait_until_settled(&my_id, "delivered").await;
    hub.wait_until_settled(&their_id, "delivered").await;
    let order_3 = items[0]["id"].as_str().unwrap();
    hub.wait_until_settled(order_3, "delivered").await;
    let ids: Vec<String> = receiver.received().iter().map(|r| r.webhook_id()).collect();
    for id in [&my_id, &their_id] {
        assert_eq!(
            ids.iter().filter(|x| *x == id).count(),
            1,
            "{id} in {ids:?}"
        );
    }
}
