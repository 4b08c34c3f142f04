//! Tenants and their endpoints through the real hub's `/graphql`: managed end to end and
//! sent for, with the delivery checked at a local receiver against the endpoint's own
//! secret; a token confined to one tenant refused on every other tenant (existing or not),
//! on tenant CRUD and on the subscription socket; every list bounded.

use serde_json::{Value, json};

use crate::support::{
    Answer, DEADLINE, Hub, LOG_EVERYTHING as ROUTES, Receiver, Reply, eventually, run_client,
};
use crate::tenants::signed_by;

/// Runs `query` with `variables` at `/graphql` as `token`; returns the whole answer.
async fn graphql(hub: &Hub, token: &str, query: &str, variables: Value) -> Value {
    let answer = Answer::of(
        hub.anonymous(reqwest::Method::POST, "/graphql")
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(json!({ "query": query, "variables": variables }).to_string()),
    )
    .await;
    assert_eq!(answer.status, 200, "{query}: {answer}");
    answer.json()
}

/// The `data` of an answer that must have no errors.
async fn data(hub: &Hub, token: &str, query: &str, variables: Value) -> Value {
    let answer = graphql(hub, token, query, variables).await;
    assert_eq!(answer["errors"], Value::Null, "{query}: {answer}");
    answer["data"].clone()
}

/// The one error of an answer that must fail.
async fn refusal(hub: &Hub, token: &str, query: &str, variables: Value) -> Value {
    let answer = graphql(hub, token, query, variables).await;
    let errors = answer["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{query} must fail: {answer}"));
    assert_eq!(errors.len(), 1, "{query}: {answer}");
    errors[0].clone()
}

const CREATE_TENANT: &str = "mutation($id: String!, $name: String!) {
    createTenant(id: $id, name: $name) { id name createdAt } }";

const CREATE_ENDPOINT: &str = "mutation($tenant: String!, $input: EndpointInput!) {
    createEndpoint(tenant: $tenant, input: $input) {
        endpoint { id tenantId url plugin allowedHosts kinds enabled secretNames } secret } }";

const SEND: &str = "mutation($tenant: String, $input: NotificationInput!) {
    sendNotification(tenant: $tenant, input: $input) { id duplicate } }";

const TENANT: &str = "query($id: String!) {
    tenant(id: $id) { id name endpoints(limit: 10) { items { id description
        deliveries(limit: 5) { items { notificationId kind state attempts } } } } } }";

/// Creates a tenant and a webhook endpoint of it as `token`; returns (endpoint id, secret).
async fn tenant_with_endpoint(hub: &Hub, token: &str, tenant: &str, url: &str) -> (String, String) {
    data(
        hub,
        token,
        CREATE_TENANT,
        json!({"id": tenant, "name": format!("Tenant {tenant}")}),
    )
    .await;
    let created = data(
        hub,
        token,
        CREATE_ENDPOINT,
        json!({"tenant": tenant, "input": {"url": url}}),
    )
    .await;
    (
        created["createEndpoint"]["endpoint"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        created["createEndpoint"]["secret"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_endpoints_are_managed_and_sent_for_through_graphql() {
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::ok());
    let hub = Hub::started(ROUTES).await;
    let token = hub.token.clone();

    let created = data(
        &hub,
        &token,
        CREATE_TENANT,
        json!({"id": "acme", "name": "Acme"}),
    )
    .await;
    assert_eq!(created["createTenant"]["id"], "acme");
    assert_eq!(created["createTenant"]["name"], "Acme");
    let created = data(
        &hub,
        &token,
        CREATE_ENDPOINT,
        json!({"tenant": "acme", "input": {"url": receiver.url("/acme/invoices"),
               "kinds": ["invoice.*"], "description": "invoices"}}),
    )
    .await;
    let endpoint = &created["createEndpoint"]["endpoint"];
    let secret = created["createEndpoint"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    assert_eq!(endpoint["tenantId"], "acme");
    assert_eq!(endpoint["plugin"], "webhook");
    assert_eq!(endpoint["allowedHosts"], json!(["127.0.0.1"]));
    assert_eq!(endpoint["enabled"], true);
    assert_eq!(endpoint["secretNames"], json!([]));
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();

    // An operator's plugin endpoint takes its own secrets; only their names come back.
    let plugin = data(
        &hub,
        &token,
        CREATE_ENDPOINT,
        json!({"tenant": "acme", "input": {"plugin": "log",
               "secrets": {"token": "graphql-secret-71c2"}}}),
    )
    .await;
    assert_eq!(
        plugin["createEndpoint"]["endpoint"]["secretNames"],
        json!(["token"])
    );
    assert!(!plugin.to_string().contains("graphql-secret-71c2"));

    // Sent for the tenant: the endpoint gets what its kinds take, signed with its secret.
    let sent = data(
        &hub,
        &token,
        SEND,
        json!({"tenant": "acme", "input": {"kind": "invoice.paid", "payload": {"n": 1}}}),
    )
    .await["sendNotification"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = data(
        &hub,
        &token,
        SEND,
        json!({"tenant": "acme", "input": {"kind": "user.created"}}),
    )
    .await["sendNotification"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = receiver.wait_for(1).await;
    hub.wait_until_settled(&sent, "delivered").await;
    hub.wait_until_settled(&other, "delivered").await;
    assert_eq!(receiver.count(), 1, "{:#?}", receiver.received());
    assert_eq!(got[0].path, "/acme/invoices");
    assert_eq!(got[0].webhook_id(), sent);
    assert!(signed_by(&got[0], &secret), "{:?}", got[0]);

    // The record: the tenant, its endpoint, the endpoint's delivery.
    let seen = eventually(DEADLINE, "the delivery in the tenant's record", || async {
        let seen = data(&hub, &token, TENANT, json!({"id": "acme"})).await;
        (seen["tenant"]["endpoints"]["items"][0]["deliveries"]["items"][0]["state"] == "DELIVERED")
            .then_some(seen)
    })
    .await;
    let listed = &seen["tenant"]["endpoints"]["items"][0];
    assert_eq!(listed["id"], endpoint_id.as_str());
    assert_eq!(listed["description"], "invoices");
    let deliveries = listed["deliveries"]["items"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{seen}");
    assert_eq!(deliveries[0]["notificationId"], sent.as_str());
    assert_eq!(deliveries[0]["kind"], "invoice.paid");
    let one = data(
        &hub,
        &token,
        "query($tenant: String!, $id: String!) { endpoint(tenant: $tenant, id: $id) { url kinds } }",
        json!({"tenant": "acme", "id": endpoint_id}),
    )
    .await;
    assert_eq!(one["endpoint"]["url"], receiver.url("/acme/invoices"));
    assert_eq!(one["endpoint"]["kinds"], json!(["invoice.*"]));

    // An unknown tenant is refused before anything is accepted.
    let count = || async {
        let answer = hub.get("/api/v1/notifications?limit=500").await;
        answer.json()["items"].as_array().unwrap().len()
    };
    let before = count().await;
    let unknown = refusal(
        &hub,
        &token,
        SEND,
        json!({"tenant": "initech", "input": {"kind": "invoice.paid"}}),
    )
    .await;
    assert_eq!(unknown["extensions"]["code"], "not-found", "{unknown}");
    assert_eq!(unknown["extensions"]["status"], 404, "{unknown}");
    assert_eq!(count().await, before);

    // A bad endpoint is refused naming the input field.
    let bad = refusal(
        &hub,
        &token,
        CREATE_ENDPOINT,
        json!({"tenant": "acme", "input": {"url": "ftp://example.com/in"}}),
    )
    .await;
    assert_eq!(bad["extensions"]["field"], "input.url", "{bad}");
    assert_eq!(bad["extensions"]["status"], 422, "{bad}");

    // Disabled and enabled again.
    const UPDATE: &str = "mutation($tenant: String!, $id: String!, $input: EndpointInput!) {
        updateEndpoint(tenant: $tenant, id: $id, input: $input) { enabled kinds } }";
    let input = |enabled: bool| json!({"url": receiver.url("/acme/invoices"), "kinds": ["invoice.*"], "enabled": enabled});
    let updated = data(
        &hub,
        &token,
        UPDATE,
        json!({"tenant": "acme", "id": endpoint_id, "input": input(false)}),
    )
    .await;
    assert_eq!(updated["updateEndpoint"]["enabled"], false);
    data(
        &hub,
        &token,
        UPDATE,
        json!({"tenant": "acme", "id": endpoint_id, "input": input(true)}),
    )
    .await;

    // A rotated secret signs what comes next, such as a test event.
    let rotated = data(
        &hub,
        &token,
        "mutation($tenant: String!, $id: String!) {
            rotateEndpointSecret(tenant: $tenant, id: $id, grace: \"0\") {
                secret previousSecretValidUntil } }",
        json!({"tenant": "acme", "id": endpoint_id}),
    )
    .await;
    let new_secret = rotated["rotateEndpointSecret"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert_eq!(
        rotated["rotateEndpointSecret"]["previousSecretValidUntil"],
        Value::Null
    );
    let test = data(
        &hub,
        &token,
        "mutation($tenant: String!, $id: String!) { testEndpoint(tenant: $tenant, id: $id) { id } }",
        json!({"tenant": "acme", "id": endpoint_id}),
    )
    .await["testEndpoint"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = receiver.wait_for(2).await;
    let tested = got
        .iter()
        .find(|r| r.webhook_id() == test)
        .unwrap_or_else(|| panic!("the test event arrived: {got:#?}"));
    assert_eq!(
        tested.json()["type"],
        "switchyard.endpoint.test",
        "{tested:?}"
    );
    assert!(signed_by(tested, &new_secret));
    assert!(!signed_by(tested, &secret));

    // Recovering: nothing died; a bad time is named.
    const RECOVER: &str = "mutation($tenant: String!, $id: String!, $since: String!) {
        recoverEndpoint(tenant: $tenant, id: $id, since: $since) { recovered } }";
    let recovered = data(
        &hub,
        &token,
        RECOVER,
        json!({"tenant": "acme", "id": endpoint_id, "since": "2000-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(recovered["recoverEndpoint"]["recovered"], 0);
    let bad = refusal(
        &hub,
        &token,
        RECOVER,
        json!({"tenant": "acme", "id": endpoint_id, "since": "yesterday"}),
    )
    .await;
    assert_eq!(bad["extensions"]["field"], "since", "{bad}");

    // Deleted: the endpoint, then the tenant.
    let deleted = data(
        &hub,
        &token,
        "mutation($tenant: String!, $id: String!) { deleteEndpoint(tenant: $tenant, id: $id) }",
        json!({"tenant": "acme", "id": endpoint_id}),
    )
    .await;
    assert_eq!(deleted["deleteEndpoint"], endpoint_id.as_str());
    let gone = data(
        &hub,
        &token,
        "query($tenant: String!, $id: String!) { endpoint(tenant: $tenant, id: $id) { id } }",
        json!({"tenant": "acme", "id": endpoint_id}),
    )
    .await;
    assert_eq!(gone["endpoint"], Value::Null);
    let renamed = data(
        &hub,
        &token,
        "mutation { renameTenant(id: \"acme\", name: \"Acme Corp\") { name } }",
        json!({}),
    )
    .await;
    assert_eq!(renamed["renameTenant"]["name"], "Acme Corp");
    let deleted = data(
        &hub,
        &token,
        "mutation { deleteTenant(id: \"acme\") }",
        json!({}),
    )
    .await;
    assert_eq!(deleted["deleteTenant"], "acme");
    let gone = data(&hub, &token, TENANT, json!({"id": "acme"})).await;
    assert_eq!(gone["tenant"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_token_reaches_only_its_own_tenant_over_graphql() {
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::ok());
    let hub = Hub::started(ROUTES).await;
    let operator = hub.token.clone();
    let (acme_endpoint, acme_secret) =
        tenant_with_endpoint(&hub, &operator, "acme", &receiver.url("/acme")).await;
    let (globex_endpoint, _) =
        tenant_with_endpoint(&hub, &operator, "globex", &receiver.url("/globex")).await;

    let answer = hub
        .post_json(
            "/api/v1/tokens",
            &json!({"name": "acme app", "scopes": ["send", "read", "admin"], "tenant": "acme"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer}");
    let acme = answer.json()["token"].as_str().unwrap().to_owned();

    // Its own tenant: read, change, send.
    let own = data(&hub, &acme, TENANT, json!({"id": "acme"})).await;
    assert_eq!(
        own["tenant"]["endpoints"]["items"][0]["id"],
        acme_endpoint.as_str()
    );
    let made = data(
        &hub,
        &acme,
        CREATE_ENDPOINT,
        json!({"tenant": "acme", "input": {"url": receiver.url("/acme/second")}}),
    )
    .await;
    assert_eq!(made["createEndpoint"]["endpoint"]["tenantId"], "acme");
    // A channel plugin is the operator's to give.
    let plugin = refusal(
        &hub,
        &acme,
        CREATE_ENDPOINT,
        json!({"tenant": "acme", "input": {"plugin": "log"}}),
    )
    .await;
    assert_eq!(plugin["extensions"]["field"], "input.plugin", "{plugin}");
    assert_eq!(plugin["extensions"]["status"], 422, "{plugin}");
    let sent = data(
        &hub,
        &acme,
        SEND,
        json!({"tenant": "acme", "input": {"kind": "order.placed"}}),
    )
    .await["sendNotification"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = receiver.wait_for(2).await;
    let at_acme = got
        .iter()
        .find(|r| r.path == "/acme")
        .unwrap_or_else(|| panic!("acme's endpoint got it: {got:#?}"));
    assert_eq!(at_acme.webhook_id(), sent);
    assert!(signed_by(at_acme, &acme_secret));

    // Another tenant's, existing or not: refused alike, so ids cannot be probed.
    let other_tenants = [
        (TENANT, json!({"id": "globex"})),
        (TENANT, json!({"id": "nobody"})),
        (
            "query($tenant: String!, $id: String!) { endpoint(tenant: $tenant, id: $id) { id } }",
            json!({"tenant": "globex", "id": globex_endpoint}),
        ),
        (
            "query($tenant: String!, $id: String!) { endpoint(tenant: $tenant, id: $id) { id } }",
            json!({"tenant": "nobody", "id": globex_endpoint}),
        ),
        (
            CREATE_ENDPOINT,
            json!({"tenant": "globex", "input": {"url": receiver.url("/stolen")}}),
        ),
        (
            "mutation($tenant: String!, $id: String!) { deleteEndpoint(tenant: $tenant, id: $id) }",
            json!({"tenant": "globex", "id": globex_endpoint}),
        ),
        (
            "mutation($tenant: String!, $id: String!) {
                rotateEndpointSecret(tenant: $tenant, id: $id) { secret } }",
            json!({"tenant": "globex", "id": globex_endpoint}),
        ),
        (
            "mutation($tenant: String!, $id: String!) { testEndpoint(tenant: $tenant, id: $id) { id } }",
            json!({"tenant": "globex", "id": globex_endpoint}),
        ),
        (
            SEND,
            json!({"tenant": "globex", "input": {"kind": "order.placed"}}),
        ),
        (
            SEND,
            json!({"tenant": "nobody", "input": {"kind": "order.placed"}}),
        ),
    ];
    let mut messages = Vec::new();
    for (query, variables) in other_tenants {
        let refused = refusal(&hub, &acme, query, variables.clone()).await;
        assert_eq!(
            refused["extensions"]["code"], "wrong-tenant",
            "{query} {variables}: {refused}"
        );
        assert_eq!(refused["extensions"]["status"], 403, "{refused}");
        messages.push(refused["message"].as_str().unwrap().to_owned());
    }
    messages.dedup();
    assert_eq!(
        messages.len(),
        1,
        "one answer whatever exists: {messages:?}"
    );
    // Globex's endpoint id under acme's own tenant: not there, not globex's data.
    let guessed = data(
        &hub,
        &acme,
        "query($tenant: String!, $id: String!) { endpoint(tenant: $tenant, id: $id) { id } }",
        json!({"tenant": "acme", "id": globex_endpoint}),
    )
    .await;
    assert_eq!(guessed["endpoint"], Value::Null);

    // Tenant CRUD and everything of the hub's own are the operator's.
    for query in [
        "{ tenants { items { id } } }",
        "mutation { createTenant(id: \"initech\", name: \"Initech\") { id } }",
        "mutation { renameTenant(id: \"acme\", name: \"Mine now\") { id } }",
        "mutation { deleteTenant(id: \"acme\") }",
        "mutation { deleteTenant(id: \"globex\") }",
        "{ notifications { items { id } } }",
        "{ deadLetters { items { deliveryId } } }",
        "{ routes { path } }",
        "mutation { sendNotification(input: {kind: \"order.placed\"}) { id } }",
    ] {
        let refused = refusal(&hub, &acme, query, json!({})).await;
        assert_eq!(
            refused["extensions"]["code"], "wrong-tenant",
            "{query}: {refused}"
        );
    }
    // Nothing of that happened.
    let tenants = data(
        &hub,
        &operator,
        "{ tenants { items { id name } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        tenants["tenants"]["items"],
        json!([{"id": "acme", "name": "Tenant acme"}, {"id": "globex", "name": "Tenant globex"}])
    );

    // The subscription socket takes the token, but no subscription is a tenant's.
    let ws = format!("ws://127.0.0.1:{}/graphql", hub.port);
    let run = run_client("graphql_tenant_socket.py", &[&ws, &acme]).await;
    assert!(run.success, "{run:?}");
    let seen = run.json();
    assert_eq!(seen["acknowledged"], true, "{seen}");
    for subscription in ["notifications", "deliveries"] {
        let errors = seen[subscription]["errors"].as_array().unwrap();
        assert_eq!(
            errors.first().map(|e| &e["extensions"]["code"]),
            Some(&json!("wrong-tenant")),
            "{subscription}: {seen}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_tenant_lists_are_bounded_and_paged() {
    let hub = Hub::started(ROUTES).await;
    let token = hub.token.clone();
    for id in ["t1", "t2", "t3"] {
        data(&hub, &token, CREATE_TENANT, json!({"id": id, "name": id})).await;
    }

    // Pages of at most `limit`, with a cursor to the next.
    const PAGE: &str = "query($limit: Int, $cursor: String) {
        tenants(limit: $limit, cursor: $cursor) { items { id } nextCursor } }";
    let first = data(&hub, &token, PAGE, json!({"limit": 2})).await;
    assert_eq!(
        first["tenants"]["items"],
        json!([{"id": "t1"}, {"id": "t2"}])
    );
    let cursor = first["tenants"]["nextCursor"].as_str().unwrap().to_owned();
    let second = data(&hub, &token, PAGE, json!({"limit": 2, "cursor": cursor})).await;
    assert_eq!(second["tenants"]["items"], json!([{"id": "t3"}]));
    assert_eq!(second["tenants"]["nextCursor"], Value::Null);

    // Limits outside 1 to 500 are refused, on every list.
    for (query, variables) in [
        (PAGE, json!({"limit": 501})),
        (PAGE, json!({"limit": 0})),
        (
            "query($limit: Int) { tenant(id: \"t1\") { endpoints(limit: $limit) { items { id } } } }",
            json!({"limit": 501}),
        ),
    ] {
        let refused = refusal(&hub, &token, query, variables.clone()).await;
        assert_eq!(
            refused["extensions"]["code"], "invalid-field",
            "{query} {variables}: {refused}"
        );
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("between 1 and 500"),
            "{refused}"
        );
    }
    let endpoint = data(
        &hub,
        &token,
        CREATE_ENDPOINT,
        json!({"tenant": "t1", "input": {"url": "https://hooks.example.com/in"}}),
    )
    .await["createEndpoint"]["endpoint"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = refusal(
        &hub,
        &token,
        "query($id: String!) { endpoint(tenant: \"t1\", id: $id) {
            deliveries(limit: 501) { items { id } } } }",
        json!({"id": endpoint}),
    )
    .await;
    assert_eq!(refused["extensions"]["code"], "invalid-field", "{refused}");

    // Nested pages cost their limits multiplied: within the limits, refused as a whole
    // before anything is read.
    let costly = graphql(
        &hub,
        &token,
        "{ tenants(limit: 500) { items { endpoints(limit: 500) { items {
            deliveries(limit: 500) { items { id } } } } } } }",
        json!({}),
    )
    .await;
    assert_eq!(costly["data"], Value::Null, "{costly}");
    let message = costly["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("complex"), "{costly}");
    // A modest nested query fits.
    data(
        &hub,
        &token,
        "{ tenants(limit: 2) { items { endpoints(limit: 5) { items {
            deliveries(limit: 5) { items { id state } } } } } } }",
        json!({}),
    )
    .await;
}
