//! The GraphQL front door, driven by the Python `gql` client against a real process:
//! introspection within the limits, a query, the mutation and its rejection, the token
//! requirement over HTTP and in the socket's `connection_init` (a socket that never sends
//! one is closed), and subscriptions over graphql-transport-ws that see the accepted and
//! delivered events of what was sent.

use crate::support::{Hub, LOG_EVERYTHING as ROUTES, run_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gql_queries_mutates_and_subscribes() {
    let hub = Hub::started(ROUTES).await;
    let http = hub.url("/graphql");
    let ws = format!("ws://127.0.0.1:{}/graphql", hub.port);
    let run = run_client("graphql_client.py", &[&http, &ws, &hub.token]).await;
    assert!(run.success, "{run:?}\n{}", hub.logs());
    let seen = run.json();

    let over_http = &seen["http"];
    assert_eq!(over_http["introspected"], true, "{seen}");
    assert_eq!(over_http["query"]["routes"]["channels"][0], "log");
    let id = over_http["sent"]["id"].as_str().unwrap();
    assert_eq!(over_http["sent"]["duplicate"], false);
    let notification = &over_http["notification"];
    assert_eq!(notification["id"], id);
    assert_eq!(notification["kind"], "gql.http");
    assert_eq!(notification["source"], "graphql");
    assert_eq!(notification["attributes"]["team"], "ops");
    assert_eq!(notification["payload"]["via"], "http");
    // The REST API sees the same notification.
    assert_eq!(hub.notification(id).await["source"], "graphql");
    let rejected = &over_http["rejected"];
    assert_eq!(rejected["extensions"]["code"], "invalid-field", "{seen}");
    assert_eq!(rejected["extensions"]["field"], "input.kind");
    assert_eq!(rejected["extensions"]["status"], 422);
    assert_eq!(over_http["anonymous_status"], 401);

    let socket = &seen["ws"];
    assert_eq!(socket["subprotocol"], "graphql-transport-ws");
    let id = socket["sent"].as_str().unwrap();
    assert_eq!(socket["accepted"]["id"], id);
    assert_eq!(socket["accepted"]["kind"], "gql.socket");
    assert_eq!(
        socket["accepted_kinds"],
        serde_json::json!(["gql.socket"]),
        "other.kind is filtered out"
    );
    let delivered = &socket["delivered"];
    assert_eq!(delivered["channel"], "log");
    assert_eq!(delivered["outcome"], "delivered");
    assert_eq!(delivered["next"], "done");
    hub.wait_until_settled(id, "delivered").await;

    assert_eq!(seen["ws_token_key"]["connected"], true, "{seen}");
    // A socket that never sends connection_init is closed after a while.
    assert_eq!(seen["ws_silent"]["close_code"], 4408, "{seen}");
    for refused in ["ws_no_token", "ws_bad_token"] {
        let outcome = &seen[refused];
        assert_eq!(outcome["connected"], false, "{refused}: {seen}");
        assert_eq!(outcome["close_code"], 4403, "{refused}: {seen}");
        assert!(
            outcome["close_reason"]
                .as_str()
                .unwrap()
                .contains("connection_init"),
            "{refused}: {seen}"
        );
    }
}
