//! Hot reload: editing the routes file of a running hub changes where notifications go.

use serde_json::json;

use crate::support::{DEADLINE, Hub, Receiver, eventually, webhook_channel, write_atomically};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edited_routes_file_is_picked_up() {
    let first = Receiver::start().await;
    let second = Receiver::start().await;
    let before = format!(
        "channels:\n{}routes:\n  - name: all\n    match: {{ kind: \"*\" }}\n    to: [one]\n",
        webhook_channel("one", &first.url("/one"), "[100ms]", "")
    );
    let hub = Hub::started(&before).await;

    let id = hub.send(json!({"kind": "reload.before"})).await;
    hub.wait_until_settled(&id, "delivered").await;

    // Add a second channel and send everything to both, as an operator's editor would.
    let after = format!(
        "channels:\n{}{}routes:\n  - name: all\n    match: {{ kind: \"*\" }}\n    to: [one, two]\n",
        webhook_channel("one", &first.url("/one"), "[100ms]", ""),
        webhook_channel("two", &second.url("/two"), "[100ms]", "")
    );
    write_atomically(&hub.routes_path(), &after);

    // The hub watches the file; wait until the API shows the new table in force.
    eventually(DEADLINE, "the edited routes to be in force", || async {
        let routes = hub.get("/api/v1/routes").await;
        (routes.status == 200 && routes.json()["text"] == after.as_str()).then_some(())
    })
    .await;

    let id = hub.send(json!({"kind": "reload.after"})).await;
    let notification = hub.wait_until_settled(&id, "delivered").await;
    let mut channels: Vec<&str> = notification["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["channel"].as_str().unwrap())
        .collect();
    channels.sort();
    assert_eq!(channels, ["one", "two"], "{notification:#}");
    assert!(
        second
            .received()
            .iter()
            .any(|r| r.webhook_id() == id && r.signature_is_valid()),
        "the new channel's receiver did not get {id}: {:?}",
        second.received()
    );
    assert!(first.received().iter().any(|r| r.webhook_id() == id));
    // The notification from before the edit went only where the old table said.
    assert_eq!(second.count(), 1, "{:?}", second.received());
}
