//! Operating the hub: graceful shutdown, metrics, health checks and the API docs.

use std::time::Duration;

use serde_json::json;

use crate::support::{DEADLINE, EXIT_TIMEOUT, Hub, Receiver, Reply, eventually, one_hook};

/// SIGTERM while a slow receiver holds deliveries in flight: the hub lets them finish,
/// records them, and exits 0. After a restart they are delivered and nothing is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_deliveries_in_flight() {
    const IN_FLIGHT: usize = 5;
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::ok().after(Duration::from_secs(1)));
    let mut hub = Hub::started(&one_hook(
        &receiver.url("/hook"),
        "[100ms]",
        "    concurrency: 8\n",
    ))
    .await;

    let mut ids = Vec::new();
    for n in 0..IN_FLIGHT {
        ids.push(hub.send(json!({"kind": "slow", "payload": {"n": n}})).await);
    }
    // Every request has reached the receiver, which takes a second to answer each.
    receiver.wait_for(IN_FLIGHT).await;
    hub.sigterm();
    let status = hub.wait_exit(EXIT_TIMEOUT).await;
    assert!(
        status.success(),
        "the hub exited with {status} after SIGTERM"
    );

    hub.start().await;
    for id in &ids {
        let notification = hub.notification(id).await;
        let delivery = &notification["deliveries"][0];
        assert_eq!(
            delivery["state"], "delivered",
            "a delivery in flight at SIGTERM was not recorded: {notification:#}"
        );
        assert_eq!(delivery["attempts"], 1, "{notification:#}");
    }
    // Recorded as delivered, so the restarted hub has nothing to send: send one more and,
    // once it has arrived, check nothing else did.
    let last = hub.send(json!({"kind": "after.restart"})).await;
    hub.wait_until_settled(&last, "delivered").await;
    assert_eq!(receiver.count(), IN_FLIGHT + 1, "{:?}", receiver.received());
}

/// The value of the Prometheus sample `name` whose labels include `label`, if any.
fn sample(metrics: &str, name: &str, label: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

/// Health checks, metrics per channel, the OpenAPI spec and the docs page.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_metrics_and_docs() {
    let receiver = Receiver::start().await;
    let hub = Hub::started(&one_hook(&receiver.url("/hook"), "[100ms]", "")).await;

    for path in ["/healthz", "/readyz"] {
        let answer = crate::support::Answer::of(hub.anonymous(reqwest::Method::GET, path)).await;
        assert_eq!(answer.status, 200, "{path}: {answer}");
    }

    let id = hub.send(json!({"kind": "metrics.test"})).await;
    hub.wait_until_settled(&id, "delivered").await;
    // Counters are bumped once the attempt is recorded; poll for them.
    let metrics = eventually(DEADLINE, "the delivered counter", || async {
        let answer = hub.get("/metrics").await;
        let text = answer.text();
        (answer.status == 200
            && sample(
                &text,
                "switchyard_deliveries_delivered_total",
                "channel=\"hook\"",
            )
            .is_some_and(|n| n >= 1.0))
        .then_some(text)
    })
    .await;
    assert!(
        sample(
            &metrics,
            "switchyard_notifications_accepted_total",
            "source=\"api\""
        )
        .is_some_and(|n| n >= 1.0),
        "no accepted counter:\n{metrics}"
    );

    let spec = hub.get("/openapi.json").await;
    assert_eq!(spec.status, 200, "{spec}");
    let spec = spec.json();
    let paths = spec["paths"].as_object().expect("the spec has paths");
    for path in [
        "/api/v1/notifications",
        "/api/v1/notifications/batch",
        "/api/v1/notifications/{id}",
        "/api/v1/dead-letters",
        "/api/v1/dead-letters/{delivery_id}/replay",
        "/api/v1/routes",
        "/api/v1/routes/reload",
        "/api/v1/routes/validate",
        "/api/v1/plugins",
    ] {
        assert!(
            paths.contains_key(path),
            "the spec lacks {path}: {:?}",
            paths.keys()
        );
    }

    let docs = crate::support::Answer::of(hub.anonymous(reqwest::Method::GET, "/docs")).await;
    assert_eq!(docs.status, 200, "{docs}");
    assert!(docs.content_type().starts_with("text/html"), "{docs}");
    assert!(docs.text().to_lowercase().contains("swagger"), "{docs}");

    let plugins = hub.get("/api/v1/plugins").await;
    assert_eq!(plugins.status, 200, "{plugins}");
    assert!(
        plugins
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "webhook"),
        "{plugins}"
    );
}
