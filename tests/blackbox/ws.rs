//! The WebSocket front door, driven by the Python `websockets` library against a real
//! process: acks and errors per frame, authentication and origin checks, subscriptions
//! with a kind filter, the frame cap and a slow consumer.

use serde_json::Value;

use crate::support::{DEADLINE, Hub, LOG_EVERYTHING as ROUTES, eventually, run_client};

fn ws_url(hub: &Hub) -> String {
    format!("ws://127.0.0.1:{}/ws", hub.port)
}

async fn client(hub: &Hub, scenario: &str, token: &str, origin: Option<&str>) -> Value {
    let url = ws_url(hub);
    let mut args = vec![scenario, url.as_str(), token];
    args.extend(origin);
    let run = run_client("ws_client.py", &args).await;
    assert!(run.success, "{run:?}\n{}", hub.logs());
    run.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_are_acked_with_ids_or_answered_with_errors() {
    let hub = Hub::started(ROUTES).await;
    let seen = client(&hub, "basic", &hub.token, None).await;
    let answers = seen["answers"].as_array().unwrap();
    assert_eq!(answers[0]["type"], "ack", "{seen}");
    assert_eq!(answers[0]["seq"], 1);
    let id = answers[0]["ids"][0].as_str().unwrap();
    assert_eq!(hub.notification(id).await["kind"], "ws.hello");
    assert_eq!(answers[1]["type"], "error");
    assert_eq!(answers[1]["status"], 422);
    assert_eq!(answers[1]["code"], "invalid-field");
    assert_eq!(answers[2]["code"], "binary-frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_needs_a_token_and_an_allowed_origin() {
    let hub = Hub::started(ROUTES).await;
    let no_token = client(&hub, "refused", "", None).await;
    assert_eq!(no_token["status"], 401);
    let bad_token = client(&hub, "refused", "sy_not-a-token", None).await;
    assert_eq!(bad_token["status"], 401);
    let foreign = client(&hub, "refused", &hub.token, Some("https://evil.example")).await;
    assert_eq!(foreign["status"], 403);
    // The hub's own origin is allowed by default.
    let own = format!("http://127.0.0.1:{}", hub.port);
    let own = client(&hub, "refused", &hub.token, Some(&own)).await;
    assert_eq!(own["status"], 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_the_events_their_filter_selects() {
    let hub = Hub::started(ROUTES).await;
    let seen = client(&hub, "subscribe", &hub.token, None).await;
    let events = seen["events"].as_array().unwrap();
    assert!(
        events.iter().all(|e| e["kind"] == "sub.thing"),
        "only sub.* events: {seen}"
    );
    let id = seen["acks"]["3"].as_str().unwrap();
    assert_eq!(events[0]["type"], "notification_accepted", "{seen}");
    assert_eq!(events[0]["id"], id);
    let delivered = events.last().unwrap();
    assert_eq!(delivered["type"], "delivery_attempted");
    assert_eq!(delivered["notification_id"], id);
    assert_eq!(delivered["channel"], "log");
    assert_eq!(delivered["outcome"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_cap_closes_with_1009() {
    let hub = Hub::started(ROUTES).await;
    let seen = client(&hub, "oversize", &hub.token, None).await;
    assert_eq!(seen["code"], 1009, "{seen}");
    assert!(seen["reason"].as_str().unwrap().contains("65536"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_with_a_reason() {
    let mut hub = Hub::new(ROUTES).env("SWITCHYARD_WS__SEND_QUEUE", "16");
    hub.start().await;
    let seen = client(&hub, "slow", &hub.token, None).await;
    assert_eq!(seen["code"], 1008, "{seen}");
    assert!(
        seen["reason"].as_str().unwrap().contains("slow consumer"),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_keep_an_idle_connection_open() {
    let mut hub = Hub::new(ROUTES).env("SWITCHYARD_WS__PING_INTERVAL", "1s");
    hub.start().await;
    // Four seconds idle is past twice the ping interval: only the pongs keep it open.
    let seen = client(&hub, "idle", &hub.token, None).await;
    assert_eq!(seen["answer"]["type"], "ack", "{seen}");
}

/// The `websocket` channel: a notification routed to it waits (retrying) while nobody
/// listens, reaches a client that starts listening, and is delivered once acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_channel_delivers_to_a_listening_client_that_acks() {
    let hub = Hub::started(
        r#"
channels:
  in-app:
    plugin: websocket
    allowed_hosts: [websocket.switchyard.local]
    retry: { schedule: [500ms, 500ms, 500ms, 500ms, 500ms, 500ms, 500ms, 500ms, 500ms, 500ms] }
routes:
  - name: in-app
    match: { kind: "inapp.*" }
    to: [in-app]
"#,
    )
    .await;
    let id = hub
        .send(serde_json::json!({"kind": "inapp.hello", "payload": {"text": "hi"}}))
        .await;
    // Nobody listens yet: the first attempt is a retry that says so.
    let first = eventually(DEADLINE, "a first attempt", || async {
        let n = hub.notification(&id).await;
        let log = n["deliveries"][0]["attempt_log"].as_array().cloned()?;
        log.first().cloned()
    })
    .await;
    assert_eq!(first["outcome"], "retry", "{first}");
    assert!(
        first["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("no client listens"),
        "{first}"
    );

    let seen = client(&hub, "listen", &hub.token, None).await;
    assert_eq!(seen["notification"]["id"], id.as_str(), "{seen}");
    assert_eq!(seen["notification"]["payload"]["text"], "hi");
    hub.wait_until_settled(&id, "delivered").await;
}

/// A browser opens the socket with its admin session cookie; without its own Origin the
/// same cookie is refused, which is what stops another site from using it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_session_opens_a_socket_from_the_hubs_origin_only() {
    const PASSWORD: &str = "websocket admin password";
    let mut hub = Hub::new(ROUTES).env("SWITCHYARD_ADMIN_PASSWORD", PASSWORD);
    hub.start().await;
    let cookie = crate::admin::sign_in(&hub, "admin", PASSWORD).await;

    let own = format!("http://127.0.0.1:{}", hub.port);
    let seen = client(&hub, "cookie", &cookie, Some(&own)).await;
    assert_eq!(seen["status"], 101, "{seen}");
    assert_eq!(seen["answer"]["type"], "ack", "{seen}");

    let no_origin = client(&hub, "cookie", &cookie, None).await;
    assert_eq!(no_origin["status"], 401, "{no_origin}");
    let foreign = client(&hub, "cookie", &cookie, Some("https://evil.example")).await;
    assert_eq!(foreign["status"], 403, "{foreign}");
}
