//! Tenants and their endpoints on a real hub: endpoints registered through the API get
//! exactly their tenant's matching notifications, signed with their own secret, beside the
//! operator's YAML routes; tenant-scoped tokens reach only their own tenant.

use serde_json::{Value, json};

use crate::support::{Answer, Hub, Receiver, Reply, eventually, one_hook};
use std::time::Duration;

/// Creates tenant `id` through the API.
pub async fn create_tenant(hub: &Hub, id: &str) {
    let answer = hub
        .post_json(
            "/api/v1/tenants",
            &json!({"id": id, "name": format!("Tenant {id}")}),
        )
        .await;
    assert_eq!(answer.status, 201, "create tenant {id}: {answer}");
}

/// Creates an endpoint of `tenant` from `body`; returns (endpoint, secret).
pub async fn create_endpoint(hub: &Hub, tenant: &str, body: Value) -> (Value, String) {
    let answer = hub
        .post_json(&format!("/api/v1/tenants/{tenant}/endpoints"), &body)
        .await;
    assert_eq!(answer.status, 201, "create endpoint: {answer}");
    let json = answer.json();
    let secret = json["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{json}");
    (json["endpoint"].clone(), secret)
}

/// Sends a notification for `tenant`; returns its id.
pub async fn send_for(hub: &Hub, tenant: &str, notification: Value) -> String {
    let answer = hub
        .post_json(
            &format!("/api/v1/tenants/{tenant}/notifications"),
            &notification,
        )
        .await;
    assert_eq!(answer.status, 202, "send for {tenant}: {answer}");
    answer.json()["id"].as_str().unwrap().to_owned()
}

/// Whether `received` carries a valid Standard Webhooks signature by `secret`.
pub fn signed_by(received: &crate::support::Received, secret: &str) -> bool {
    use base64::Engine as _;
    use hmac::Mac as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let id = received.header("webhook-id").unwrap_or_default();
    let timestamp = received.header("webhook-timestamp").unwrap_or_default();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&received.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    received
        .header("webhook-signature")
        .unwrap_or_default()
        .split(' ')
        .any(|s| s == expected)
}

#[tokio::test]
async fn a_tenants_endpoints_get_its_matching_notifications_signed_with_their_own_secret() {
    let operator = Receiver::start().await;
    operator.otherwise(Reply::ok());
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::ok());
    let hub = Hub::started(&one_hook(&operator.url("/ops"), "[]", "")).await;

    create_tenant(&hub, "acme").await;
    create_tenant(&hub, "globex").await;
    let (invoices, invoices_secret) = create_endpoint(
        &hub,
        "acme",
        json!({"url": receiver.url("/acme/invoices"), "kinds": ["invoice.*"],
               "description": "invoices"}),
    )
    .await;
    let (_eu, eu_secret) = create_endpoint(
        &hub,
        "acme",
        json!({"url": receiver.url("/acme/eu"), "attributes": {"region": ["eu"]}}),
    )
    .await;
    create_endpoint(&hub, "globex", json!({"url": receiver.url("/globex")})).await;
    assert_eq!(invoices["plugin"], "webhook");
    assert_eq!(invoices["allowed_hosts"], json!(["127.0.0.1"]));

    let paid = send_for(
        &hub,
        "acme",
        json!({"kind": "invoice.paid", "attributes": {"region": "us"}, "payload": {"n": 1}}),
    )
    .await;
    let created = send_for(
        &hub,
        "acme",
        json!({"kind": "user.created", "attributes": {"region": "eu"}, "payload": {"n": 2}}),
    )
    .await;
    // The operator's own route takes every notification, tenants' included.
    operator.wait_for(2).await;
    let got = receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_now = receiver.received();
    assert_eq!(got_now.len(), 2, "{got:#?}");
    let by_path = |path: &str| {
        got_now
            .iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("nothing at {path}: {got_now:#?}"))
            .clone()
    };
    let invoice = by_path("/acme/invoices");
    assert_eq!(invoice.webhook_id(), paid);
    assert!(signed_by(&invoice, &invoices_secret));
    assert!(!signed_by(&invoice, &eu_secret));
    let eu = by_path("/acme/eu");
    assert_eq!(eu.webhook_id(), created);
    assert!(signed_by(&eu, &eu_secret));

    // The record shows the endpoint's deliveries.
    let endpoint_id = invoices["id"].as_str().unwrap();
    let listing = eventually(Duration::from_secs(10), "a delivered listing", || async {
        let answer = hub
            .get(&format!(
                "/api/v1/tenants/acme/endpoints/{endpoint_id}/deliveries"
            ))
            .await;
        let json = answer.json();
        (json["items"][0]["state"] == "delivered").then_some(json)
    })
    .await;
    assert_eq!(listing["items"].as_array().unwrap().len(), 1, "{listing}");
    assert_eq!(listing["items"][0]["notification_id"], paid.as_str());

    // A notification for an unknown tenant is refused before anything is stored.
    let answer = hub
        .post_json(
            "/api/v1/tenants/initech/notifications",
            &json!({"kind": "x", "payload": {}}),
        )
        .await;
    assert_eq!(answer.status, 404, "{answer}");
}

#[tokio::test]
async fn a_tenant_token_reaches_only_its_own_tenant() {
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::ok());
    let hub = Hub::started(&one_hook(&receiver.url("/ops"), "[]", "")).await;
    create_tenant(&hub, "acme").await;
    create_tenant(&hub, "globex").await;
    let (globex_endpoint, _) =
        create_endpoint(&hub, "globex", json!({"url": receiver.url("/globex")})).await;
    let globex_id = globex_endpoint["id"].as_str().unwrap();

    let answer = hub
        .post_json(
            "/api/v1/tokens",
            &json!({"name": "acme portal", "scopes": ["send", "read", "admin"], "tenant": "acme"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer}");
    let acme_token = answer.json()["token"].as_str().unwrap().to_owned();
    let as_acme = |method: reqwest::Method, path: &str| {
        reqwest::Client::new()
            .request(method, hub.url(path))
            .bearer_auth(&acme_token)
    };

    // Its own tenant: yes.
    let own = Answer::of(
        as_acme(reqwest::Method::POST, "/api/v1/tenants/acme/endpoints")
            .header("content-type", "application/json")
            .body(json!({"url": receiver.url("/acme")}).to_string()),
    )
    .await;
    assert_eq!(own.status, 201, "{own}");
    // A plugin endpoint is the operator's to make.
    let plugin = Answer::of(
        as_acme(reqwest::Method::POST, "/api/v1/tenants/acme/endpoints")
            .header("content-type", "application/json")
            .body(json!({"plugin": "log"}).to_string()),
    )
    .await;
    assert_eq!(plugin.problem(422)["field"], "plugin");
    // Nor are an operator's endpoints and transforms the tenant's to change: a transform
    // runs with the operator's secrets, on a payload the tenant wrote.
    let (operators, _) = create_endpoint(&hub, "acme", json!({"plugin": "log"})).await;
    let operators_path = format!(
        "/api/v1/tenants/acme/endpoints/{}",
        operators["id"].as_str().unwrap()
    );
    let taken_over = Answer::of(
        as_acme(reqwest::Method::PUT, &operators_path)
            .header("content-type", "application/json")
            .body(json!({"url": receiver.url("/acme")}).to_string()),
    )
    .await;
    assert_eq!(taken_over.problem(422)["field"], "plugin");
    assert_eq!(hub.get(&operators_path).await.json()["plugin"], "log");
    let transformed = Answer::of(
        as_acme(reqwest::Method::POST, "/api/v1/tenants/acme/endpoints")
            .header("content-type", "application/json")
            .body(json!({"url": receiver.url("/acme"), "transforms": ["redact"]}).to_string()),
    )
    .await;
    assert_eq!(transformed.problem(422)["field"], "transforms");

    // What it sends goes to its own endpoints, not to the operator's routes (`/ops`).
    let sent = Answer::of(
        as_acme(reqwest::Method::POST, "/api/v1/tenants/acme/notifications")
            .header("content-type", "application/json")
            .body(json!({"kind": "incident.opened", "payload": {}}).to_string()),
    )
    .await;
    assert_eq!(sent.status, 202, "{sent}");
    let id = sent.json()["id"].as_str().unwrap().to_owned();
    hub.wait_until_settled(&id, "delivered").await;
    let record = hub.notification(&id).await;
    assert_eq!(record["source"], "tenant:api", "{record:#}");
    let channels: Vec<&str> = record["deliveries"]
        .as_array()
        .unwrap_or_else(|| panic!("{record:#}"))
        .iter()
        .map(|d| d["channel"].as_str().unwrap())
        .collect();
    assert_eq!(
        channels.len(),
        2,
        "acme's URL and log endpoints: {record:#}"
    );
    assert!(
        channels.iter().all(|c| c.starts_with("endpoint:")),
        "{record:#}"
    );
    assert!(
        receiver.received().iter().all(|r| r.path != "/ops"),
        "a tenant reached the operator's route"
    );

    // Another tenant's, existing or not, and guessed ids: refused alike.
    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/tenants/globex".to_owned()),
        (
            reqwest::Method::GET,
            "/api/v1/tenants/globex/endpoints".to_owned(),
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/tenants/globex/endpoints/{globex_id}"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/tenants/globex/endpoints/{globex_id}"),
        ),
        (
            reqwest::Method::GET,
            "/api/v1/tenants/nobody/endpoints".to_owned(),
        ),
    ] {
        let answer = Answer::of(as_acme(method.clone(), &path)).await;
        assert_eq!(
            answer.problem(403)["code"],
            "wrong-tenant",
            "{method} {path}"
        );
    }
    // Globex's endpoint id under acme's path: not found, not globex's data.
    let guessed = Answer::of(as_acme(
        reqwest::Method::GET,
        &format!("/api/v1/tenants/acme/endpoints/{globex_id}"),
    ))
    .await;
    assert_eq!(guessed.status, 404, "{guessed}");
    // Nothing of the hub's own: notifications, tokens, routes, tenants.
    for path in [
        "/api/v1/notifications",
        "/api/v1/tokens",
        "/api/v1/routes",
        "/api/v1/tenants",
        "/api/v1/dead-letters",
    ] {
        let answer = Answer::of(as_acme(reqwest::Method::GET, path)).await;
        assert_eq!(answer.problem(403)["code"], "wrong-tenant", "{path}");
    }
}
