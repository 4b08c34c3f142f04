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
