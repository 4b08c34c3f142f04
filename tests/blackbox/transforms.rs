//! Transforms on real deliveries: the built-in `pick` and `template`, and uploaded Rust
//! transforms that drop, split and trap (`tests/plugins/transform-*`), each named by a
//! route or a channel; and a channel built against contract 0.1.0 still delivering.
//!
//! What must hold: a transform's work reaches the receiver, a drop delivers nothing and
//! says so, a split delivers every part under its own stable id, a trap is recorded and
//! retried as the channel says and then dead-lettered, never lost; and every attempt
//! record names the transforms that ran.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::{Hub, Receiver, Reply, webhook_channel, write_atomically};

/// Uploads `component` as plugin `name` through the API; asserts 200 and the world the
/// hub read from it.
pub async fn upload(hub: &Hub, name: &str, component: Vec<u8>, world: &str) {
    // multipart/form-data by hand: two fields, `name` and `file`.
    let boundary = "switchyard-blackbox-upload";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}.wasm\"\r\n\
         Content-Type: application/wasm\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&component);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let request = hub
        .api(reqwest::Method::POST, "/api/v1/plugins")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    let answer = crate::support::Answer::of(request).await;
    assert_eq!(answer.status, 200, "upload {name}: {answer}");
    assert_eq!(answer.json()["world"], world, "upload {name}: {answer}");
}

fn test_plugin(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("SWITCHYARD_TEST_PLUGINS")).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replaces the routes file and has the hub load it now; asserts it was taken.
pub async fn load_routes(hub: &Hub, routes: &str) {
    write_atomically(&hub.routes_path(), routes);
    let answer = hub.post_json("/api/v1/routes/reload", &json!({})).await;
    assert_eq!(answer.status, 200, "reload: {answer}\n{routes}");
}

/// The one delivery of notification `id`, once settled in `state`.
async fn delivery(hub: &Hub, id: &str, state: &str) -> Value {
    let notification = hub.wait_until_settled(id, state).await;
    let deliveries = notification["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{notification:#}");
    deliveries[0].clone()
}

fn transforms_of(attempt: &Value) -> Vec<String> {
    attempt["transforms"]
        .as_array()
        .unwrap_or_else(|| panic!("no transforms list in {attempt:#}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn transforms_reshape_filter_and_split_deliveries_and_a_trap_loses_nothing() {
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::ok());
    let mut hub = Hub::new(&crate::support::one_hook(
        &receiver.url("/unused"),
        "[]",
        "",
    ));
    hub.start().await;
    upload(&hub, "t-drop", test_plugin("transform-drop"), "transform").await;
    upload(&hub, "t-split", test_plugin("transform-split"), "transform").await;
    upload(&hub, "t-trap", test_plugin("transform-trap"), "transform").await;
    upload(
        &hub,
        "old-channel",
        test_plugin("contract-0-1-0"),
        "channel",
    )
    .await;

    let routes = format!(
        "transforms:\n  \
           redact: {{ plugin: pick, config: {{ drop: [email] }} }}\n  \
           shape:\n    plugin: template\n    \
             config: {{ template: {{ text: \"{{{{kind}}}}: {{{{payload.title}}}}\", n: \"{{{{payload.n}}}}\" }} }}\n\
         channels:\n{hook}{split}{trap}  old: {{ plugin: old-channel }}\n\
         routes:\n  \
           - {{ name: shaped, match: {{ kind: \"shaped.*\" }}, to: [hook], transform: [shape] }}\n  \
           - {{ name: filtered, match: {{ kind: \"filter.*\" }}, to: [hook], transform: [t-drop] }}\n  \
           - {{ name: split, match: {{ kind: \"split.*\" }}, to: [split-hook] }}\n  \
           - {{ name: trapped, match: {{ kind: \"trap.*\" }}, to: [trap-hook] }}\n  \
           - {{ name: old, match: {{ kind: \"old.*\" }}, to: [old] }}\n",
        hook = webhook_channel(
            "hook",
            &receiver.url("/hook"),
            "[]",
            "    transform: [redact]\n"
        ),
        split = webhook_channel(
            "split-hook",
            &receiver.url("/split"),
            "[]",
            "    transform: [t-split]\n"
        ),
        trap = webhook_channel(
            "trap-hook",
            &receiver.url("/trap"),
            "[50ms, 50ms]",
            "    transform: t-trap\n"
        ),
    );
    load_routes(&hub, &routes).await;

    // Reshaped by the route's `template`, then the channel's `pick`.
    let shaped = hub
        .send(json!({"kind": "shaped.order", "payload": {"title": "hi", "n": 7, "email": "a@b"}}))
        .await;
    let delivered = delivery(&hub, &shaped, "delivered").await;
    let attempt = &delivered["attempt_log"][0];
    assert_eq!(transforms_of(attempt), ["shape", "redact"], "{delivered:#}");
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].path, "/hook");
    assert!(got[0].signature_is_valid());
    assert_eq!(
        got[0].webhook_id(),
        shaped,
        "the id survives the transforms"
    );
    assert_eq!(
        got[0].json()["data"],
        json!({"text": "shaped.order: hi", "n": 7})
    );

    // A filter: what it drops goes nowhere and says why; what it keeps goes on.
    let dropped = hub
        .send(json!({"kind": "filter.x", "payload": {"drop": true, "email": "a@b"}}))
        .await;
    let kept = hub
        .send(json!({"kind": "filter.x", "payload": {"drop": false, "email": "a@b"}}))
        .await;
    let record = delivery(&hub, &dropped, "delivered").await;
    let attempt = &record["attempt_log"][0];
    assert_eq!(attempt["outcome"], "dropped", "{record:#}");
    assert_eq!(transforms_of(attempt), ["t-drop"], "{record:#}");
    assert!(
        attempt["detail"].as_str().unwrap().contains("t-drop"),
        "{record:#}"
    );
    let record = delivery(&hub, &kept, "delivered").await;
    assert_eq!(
        transforms_of(&record["attempt_log"][0]),
        ["t-drop", "redact"],
        "{record:#}"
    );
    let got = receiver.wait_for(2).await;
    assert_eq!(
        got.len(),
        2,
        "the dropped notification reached the receiver"
    );
    assert_eq!(got[1].webhook_id(), kept);
    assert_eq!(got[1].json()["data"], json!({"drop": false}));

    // A split: each part is delivered, in order, under `<id>.<n>`.
    let split = hub
        .send(json!({"kind": "split.batch", "payload": {"items": [{"a": 1}, {"a": 2}, {"a": 3}]}}))
        .await;
    let record = delivery(&hub, &split, "delivered").await;
    assert_eq!(transforms_of(&record["attempt_log"][0]), ["t-split"]);
    let got = receiver.wait_for(5).await;
    let parts: Vec<(String, Value)> = got[2..]
        .iter()
        .map(|r| (r.webhook_id(), r.json()["data"].clone()))
        .collect();
    assert_eq!(
        parts,
        [1, 2, 3].map(|n| (format!("{split}.{n}"), json!({"a": n}))),
        "{record:#}"
    );

    // A trap: recorded on every attempt, retried on the channel's schedule, then
    // dead-lettered with the notification kept for a replay.
    let trapped = hub.send(json!({"kind": "trap.now", "payload": {}})).await;
    let record = delivery(&hub, &trapped, "dead").await;
    let attempts = record["attempt_log"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{record:#}");
    for attempt in attempts {
        assert_eq!(attempt["outcome"], "error", "{record:#}");
        assert_eq!(transforms_of(attempt), ["t-trap"], "{record:#}");
        let detail = attempt["detail"].as_str().unwrap();
        assert!(detail.contains("trapped"), "{record:#}");
    }
    let dead = hub.get("/api/v1/dead-letters").await;
    assert!(
        dead.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["notification_id"] == trapped.as_str()),
        "{dead}"
    );
    assert_eq!(receiver.count(), 5, "nothing trapped reached a receiver");

    // A channel built against contract 0.1.0 still delivers.
    let old = hub.send(json!({"kind": "old.one", "payload": {}})).await;
    let record = delivery(&hub, &old, "delivered").await;
    assert_eq!(
        record["attempt_log"][0]["transforms"],
        json!([]),
        "{record:#}"
    );
    let plugins = hub.get("/api/v1/plugins").await;
    assert!(
        plugins
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "old-channel" && p["world"] == "channel"),
        "{plugins}"
    );
}
