//! The GraphQL front door: the schema executed directly over a real hub (SQLite in a
//! temporary directory, the sample routes that send everything to the `log` channel, the
//! real `graphql` adapter plugin), and the HTTP layer around it through the whole app.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Request, Response, Variables};
use futures::StreamExt as _;
use metrics_exporter_prometheus::PrometheusBuilder;
use poem::EndpointExt as _;
use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::{Value, json};
use switchyard::admin::{Clock, Console};
use switchyard::config::Config;
use switchyard::events::Event;
use switchyard::ingress::graphql::{self, GraphQlSchema, MAX_DEPTH};
use switchyard::pipeline::Hub;
use switchyard::store::{Scopes, TokenRecord};

/// How long anything the hub does on its own (routing, delivering) may take.
const DEADLINE: Duration = Duration::from_secs(60);

struct Fixture {
    hub: Arc<Hub>,
    schema: GraphQlSchema,
    /// The token every request runs as, with every scope, as the front door would attach.
    caller: TokenRecord,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let hub = Hub::start(config).await.unwrap();
    let created = hub
        .tokens
        .create("fixture", Scopes::ALL, None)
        .await
        .unwrap();
    Fixture {
        caller: hub.tokens.verify(&created.token).unwrap(),
        schema: graphql::schema(hub.clone()),
        hub,
        _dir: dir,
    }
}

impl Fixture {
    async fn execute(&self, query: &str, variables: Value) -> Response {
        self.schema
            .execute(
                self.request(query)
                    .variables(Variables::from_json(variables)),
            )
            .await
    }

    /// `query` as the caller's.
    fn request(&self, query: &str) -> Request {
        Request::new(query).data(self.caller.clone())
    }

    /// Runs `query`, which must succeed, and returns its data.
    async fn data(&self, query: &str, variables: Value) -> Value {
        let response = self.execute(query, variables).await;
        assert!(response.errors.is_empty(), "{query}: {:?}", response.errors);
        response.data.into_json().unwrap()
    }

    async fn send(&self, input: Value) -> String {
        let data = self
            .data(
                "mutation($input: NotificationInput!) { sendNotification(input: $input) { id duplicate } }",
                json!({ "input": input }),
            )
            .await;
        assert_eq!(data["sendNotification"]["duplicate"], false);
        data["sendNotification"]["id"].as_str().unwrap().to_owned()
    }
}

/// The one error of a response that must have failed, as JSON.
fn only_error(response: &Response) -> Value {
    assert_eq!(response.errors.len(), 1, "{:?}", response.errors);
    serde_json::to_value(&response.errors[0]).unwrap()
}

const NOTIFICATION: &str = "query($id: String!) {
    notification(id: $id) {
        id kind source attributes payload idempotencyKey createdAt
        deliveries { channel route state attempts attemptLog { attempt outcome } }
    }
}";

#[tokio::test]
async fn a_sent_notification_is_stored_routed_and_delivered() {
    let f = fixture().await;
    let id = f
        .send(json!({
            "kind": "invoice.paid",
            "attributes": { "team": "billing" },
            "payload": { "amount": 42 },
            "idempotencyKey": "inv-1",
        }))
        .await;

    let deadline = tokio::time::Instant::now() + DEADLINE;
    let notification = loop {
        let data = f.data(NOTIFICATION, json!({ "id": id })).await;
        let n = data["notification"].clone();
        if n["deliveries"][0]["state"] == "delivered" {
            break n;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never delivered: {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(notification["kind"], "invoice.paid");
    assert_eq!(notification["source"], graphql::GRAPHQL_SOURCE);
    assert_eq!(notification["attributes"], json!({ "team": "billing" }));
    assert_eq!(notification["payload"], json!({ "amount": 42 }));
    assert_eq!(notification["idempotencyKey"], "inv-1");
    let delivery = &notification["deliveries"][0];
    assert_eq!(delivery["channel"], "log");
    assert_eq!(
        delivery["attemptLog"],
        json!([{ "attempt": 1, "outcome": "delivered" }])
    );

    // The same notification with the same idempotency key: nothing new, the first id back.
    let again = f
        .data(
            "mutation { sendNotification(input: {kind: \"invoice.paid\", attributes: {team: \"billing\"}, payload: {amount: 42}, idempotencyKey: \"inv-1\"}) { id duplicate } }",
            json!({}),
        )
        .await;
    assert_eq!(
        again["sendNotification"],
        json!({ "id": id, "duplicate": true })
    );

    // The same key on a different notification is refused as a 409, not taken for a repeat.
    let reused = f
        .execute(
            "mutation { sendNotification(input: {kind: \"invoice.paid\", idempotencyKey: \"inv-1\"}) { id duplicate } }",
            json!({}),
        )
        .await;
    let error = only_error(&reused);
    assert_eq!(error["extensions"]["status"], 409, "{error}");
    assert_eq!(
        error["extensions"]["code"], "idempotency-key-reused",
        "{error}"
    );

    // An unknown id is null, not an error.
    let missing = f.data(NOTIFICATION, json!({ "id": "nope" })).await;
    assert_eq!(missing["notification"], Value::Null);
}

#[tokio::test]
async fn the_list_filters_by_kind_and_source_and_pages() {
    let f = fixture().await;
    let mut ids = Vec::new();
    for kind in ["order.created", "order.paid", "user.created"] {
        ids.push(f.send(json!({ "kind": kind })).await);
    }
    let list = "query($kind: String, $source: String, $limit: Int, $cursor: String) {
        notifications(kind: $kind, source: $source, limit: $limit, cursor: $cursor) {
            items { id kind } nextCursor
        }
    }";

    let orders = f.data(list, json!({ "kind": "order.*" })).await;
    let kinds: Vec<&str> = orders["notifications"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["order.paid", "order.created"], "newest first");

    let from_rest = f.data(list, json!({ "source": "api" })).await;
    assert_eq!(from_rest["notifications"]["items"], json!([]));

    let first = f.data(list, json!({ "limit": 2 })).await;
    assert_eq!(first["notifications"]["items"][0]["id"], ids[2].as_str());
    let cursor = first["notifications"]["nextCursor"].as_str().unwrap();
    let rest = f.data(list, json!({ "limit": 2, "cursor": cursor })).await;
    assert_eq!(rest["notifications"]["items"][0]["id"], ids[0].as_str());
    assert_eq!(rest["notifications"]["nextCursor"], Value::Null);

    let error = only_error(&f.execute(list, json!({ "limit": 0 })).await);
    assert_eq!(error["message"], "limit 0 is not between 1 and 500");
    assert_eq!(error["extensions"]["code"], "invalid-field");
}

#[tokio::test]
async fn routes_plugins_and_dead_letters_are_readable() {
    let f = fixture().await;
    let data = f
        .data(
            "{ routes { path text warnings channels routes { name to } }
               plugins { name world version }
               deadLetters { items { deliveryId } nextCursor } }",
            json!({}),
        )
        .await;
    let routes = &data["routes"];
    assert!(routes["path"].as_str().unwrap().ends_with("routes.yaml"));
    assert!(routes["text"].as_str().unwrap().contains("channels:"));
    assert_eq!(routes["channels"], json!(["log"]));
    assert_eq!(routes["routes"][0]["to"], json!(["log"]));
    let plugins = data["plugins"].as_array().unwrap();
    assert!(
        plugins
            .iter()
            .any(|p| p["name"] == "log" && p["world"] == "channel"),
        "{plugins:?}"
    );
    assert_eq!(data["deadLetters"]["items"], json!([]));
}

#[tokio::test]
async fn the_adapter_rejection_is_the_error_with_its_code_and_field() {
    let f = fixture().await;
    let send = "mutation($input: NotificationInput!) { sendNotification(input: $input) { id } }";

    let response = f
        .execute(send, json!({ "input": { "kind": "invoice.paid", "attributes": { "region": { "eu": true } } } }))
        .await;
    let error = only_error(&response);
    assert_eq!(error["extensions"]["code"], "invalid-field");
    assert_eq!(error["extensions"]["field"], "input.attributes.region");
    assert_eq!(error["extensions"]["status"], 422);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("string, number or boolean"),
        "{error}"
    );

    let error = only_error(&f.execute(send, json!({ "input": { "kind": "" } })).await);
    assert_eq!(error["extensions"]["field"], "input.kind");

    // Nothing of either was accepted.
    let list = f
        .data("{ notifications { items { id } } }", json!({}))
        .await;
    assert_eq!(list["notifications"]["items"], json!([]));

    // The batch goes through the adapter too: its path names the item at fault.
    let error = only_error(
        &f.execute(
            "mutation { sendNotifications(inputs: [{kind: \"a.b\"}, {kind: \"\"}]) { id } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(error["extensions"]["field"], "inputs[1].kind");
    let both = f
        .data(
            "mutation { sendNotifications(inputs: [{kind: \"a.b\"}, {kind: \"c.d\"}]) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(both["sendNotifications"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_over_deep_or_over_complex_query_is_refused() {
    let f = fixture().await;
    // Introspection is the one place the schema nests without end.
    let nested = |levels: usize| {
        format!(
            "{{ __type(name: \"Notification\") {{ {}name{} }} }}",
            "ofType { ".repeat(levels),
            " }".repeat(levels)
        )
    };
    // `__type`, the `ofType`s and `name` are the depth.
    let fits = f.execute(&nested(MAX_DEPTH - 2), json!({})).await;
    assert!(fits.errors.is_empty(), "{:?}", fits.errors);
    let error = only_error(&f.execute(&nested(MAX_DEPTH), json!({})).await);
    assert_eq!(error["message"], "Query is nested too deep.");
    assert!(f.execute(&nested(MAX_DEPTH), json!({})).await.data == async_graphql::Value::Null);

    // Each notification's deliveries cost a read of the store: asked for under many
    // aliases, they add up past the limit.
    let aliases: String = (0..100)
        .map(|i| format!("n{i}: notifications {{ items {{ deliveries {{ id }} }} }} "))
        .collect();
    let error = only_error(&f.execute(&format!("{{ {aliases} }}"), json!({})).await);
    assert_eq!(error["message"], "Query is too complex.");
}

#[tokio::test]
async fn subscriptions_get_the_accepted_and_delivered_events_of_their_kind() {
    let f = fixture().await;
    let mut accepted = f.schema.execute_stream(
        f.request("subscription { notifications(kind: \"order.*\") { id kind source } }"),
    );
    let mut delivered = f.schema.execute_stream(f.request(
        "subscription { deliveries(kind: \"order.*\", channel: \"log\") { notificationId channel outcome next } }",
    ));
    // A subscription takes its receiver when first polled; nothing has happened yet.
    for stream in [&mut accepted, &mut delivered] {
        let nothing = tokio::time::timeout(Duration::from_millis(100), stream.next()).await;
        assert!(nothing.is_err(), "no event yet");
    }

    f.send(json!({ "kind": "user.created" })).await;
    let id = f.send(json!({ "kind": "order.paid" })).await;

    let event = tokio::time::timeout(DEADLINE, accepted.next())
        .await
        .unwrap()
        .unwrap();
    assert!(event.errors.is_empty(), "{:?}", event.errors);
    assert_eq!(
        event.data.into_json().unwrap()["notifications"],
        json!({ "id": id, "kind": "order.paid", "source": "graphql" }),
        "the user.created one is filtered out"
    );
    let event = tokio::time::timeout(DEADLINE, delivered.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event.data.into_json().unwrap()["deliveries"],
        json!({ "notificationId": id, "channel": "log", "outcome": "delivered", "next": "done" })
    );

    let error = only_error(
        &f.schema
            .execute_stream(f.request("subscription { notifications(kind: \"a[b]\") { id } }"))
            .next()
            .await
            .unwrap(),
    );
    assert_eq!(error["extensions"]["code"], "invalid-field");
}

#[tokio::test]
async fn a_lagging_subscriber_gets_an_error_and_its_stream_ends() {
    let f = fixture().await;
    let mut stream = f
        .schema
        .execute_stream(f.request("subscription { notifications { id } }"));
    assert!(
        tokio::time::timeout(Duration::from_millis(100), stream.next())
            .await
            .is_err()
    );
    // More events than the broadcast holds, before the subscriber reads one.
    for i in 0..5000 {
        f.hub.events.publish(Event::NotificationAccepted {
            id: format!("n{i}"),
            kind: "load.test".into(),
            source: "api".into(),
            attributes: vec![],
            created_at: 0,
        });
    }
    let response = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .unwrap()
        .unwrap();
    let error = only_error(&response);
    assert_eq!(error["extensions"]["code"], "lagged");
    assert!(
        error["message"].as_str().unwrap().contains("missed"),
        "{error}"
    );
    let end = tokio::time::timeout(DEADLINE, stream.next()).await.unwrap();
    assert!(end.is_none(), "the stream ends after the error");
}

// ---- Over HTTP ------------------------------------------------------------------------

async fn app(f: &Fixture) -> TestClient<BoxEndpoint<'static>> {
    let console = Console::open(&f.hub.config.admin, Clock::system())
        .await
        .unwrap();
    let metrics = PrometheusBuilder::new().build_recorder().handle();
    let app = switchyard::server::app(f.hub.clone(), metrics, "http://localhost".into(), console);
    TestClient::new(app.map_to_response().boxed())
}

#[tokio::test]
async fn over_http_a_token_is_required_and_get_is_graphiql() {
    let f = fixture().await;
    let client = app(&f).await;
    let token = f
        .hub
        .tokens
        .create("graphql-test", Scopes::ALL, None)
        .await
        .unwrap()
        .token;
    let body = json!({ "query": "{ routes { channels } }" });

    let anonymous = client.post("/graphql").body_json(&body).send().await;
    anonymous.assert_status(StatusCode::UNAUTHORIZED);
    let wrong = client
        .post("/graphql")
        .header("authorization", "Bearer sy_not_a_token")
        .body_json(&body)
        .send()
        .await;
    wrong.assert_status(StatusCode::UNAUTHORIZED);

    let ok = client
        .post("/graphql")
        .header("authorization", format!("Bearer {token}"))
        .body_json(&body)
        .send()
        .await;
    ok.assert_status_is_ok();
    ok.assert_json(json!({ "data": { "routes": { "channels": ["log"] } } }))
        .await;

    // An over-deep query over HTTP: a 200 with the error, as GraphQL answers.
    let deep = format!(
        "{{ __type(name: \"Query\") {{ {}name{} }} }}",
        "ofType { ".repeat(MAX_DEPTH),
        " }".repeat(MAX_DEPTH)
    );
    let refused = client
        .post("/graphql")
        .header("authorization", format!("Bearer {token}"))
        .body_json(&json!({ "query": deep }))
        .send()
        .await;
    let body: Value = refused.0.into_body().into_json().await.unwrap();
    assert_eq!(body["errors"][0]["message"], "Query is nested too deep.");

    let page = client.get("/graphql").send().await;
    page.assert_status_is_ok();
    let html = page.0.into_body().into_string().await.unwrap();
    assert!(html.contains("graphiql"), "{html}");
}

#[tokio::test]
async fn a_page_costs_its_limit_times_an_item() {
    let f = fixture().await;
    let page =
        "query($limit: Int) { notifications(limit: $limit) { items { id deliveries { state } } } }";
    // 20 items of 13 points fit; 500 of them, or a limit given as a variable, do not.
    f.data(page, json!({ "limit": 20 })).await;
    let error = only_error(&f.execute(page, json!({ "limit": 500 })).await);
    assert_eq!(error["message"], "Query is too complex.");
    let inline = "{ deadLetters(limit: 500) { items { deliveryId notificationId kind channel } } }";
    assert_eq!(
        only_error(&f.execute(inline, json!({})).await)["message"],
        "Query is too complex."
    );
    // An invalid limit is refused by the field, not by its cost.
    let error = only_error(&f.execute(page, json!({ "limit": 100000 })).await);
    assert_eq!(error["message"], "limit 100000 is not between 1 and 500");
}

#[tokio::test]
async fn over_http_a_batch_is_capped_in_size_and_costed_as_a_whole() {
    let f = fixture().await;
    let client = app(&f).await;
    let token = f
        .hub
        .tokens
        .create("graphql-batch", Scopes::ALL, None)
        .await
        .unwrap()
        .token;
    let post = |body: Value| {
        client
            .post("/graphql")
            .header("authorization", format!("Bearer {token}"))
            .body_json(&body)
            .send()
    };

    let cheap = json!({ "query": "{ routes { channels } }" });
    let eleven: Vec<Value> = (0..11).map(|_| cheap.clone()).collect();
    let refused = post(json!(eleven)).await;
    refused.assert_status(StatusCode::BAD_REQUEST);
    let body: Value = refused.0.into_body().into_json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "batch-too-large",
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 10"),
        "{body}"
    );

    let ten: Vec<Value> = (0..10).map(|_| cheap.clone()).collect();
    let answered = post(json!(ten)).await;
    answered.assert_status_is_ok();
    let body: Value = answered.0.into_body().into_json().await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 10);
    assert!(
        body.as_array()
            .unwrap()
            .iter()
            .all(|a| a["errors"].is_null()),
        "{body}"
    );

    // Each page alone fits (1 + 300 * 2 points); two of them do not.
    let page = json!({ "query": "{ notifications(limit: 300) { items { id } } }" });
    let answered = post(json!([page, page])).await;
    answered.assert_status_is_ok();
    let body: Value = answered.0.into_body().into_json().await.unwrap();
    assert!(body[0]["errors"].is_null(), "{body}");
    assert_eq!(
        body[1]["errors"][0]["extensions"]["code"], "too-costly",
        "{body}"
    );
    assert_eq!(body[1]["data"], Value::Null, "{body}");
}
