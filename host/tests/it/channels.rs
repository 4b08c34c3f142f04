//! The built-in channels, each loaded into the real wasmtime runtime and delivering to a
//! local HTTP receiver: what a destination receives is what a provider would, byte for
//! byte, and every answer maps to the outcome the host acts on.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use switchyard::runtime::{Delivery, Failure, Outcome, Plugin, Receipt, RetryHint};

use crate::support::{Receiver, Recorded, Reply, delivery, grants, now_secs, runtime};

const LOOPBACK: &[&str] = &["127.0.0.1"];
const SIGNING_KEY_BYTES: &[u8] = b"a 32-byte key for signing tests!";

fn signing_key() -> String {
    format!("whsec_{}", BASE64.encode(SIGNING_KEY_BYTES))
}

async fn load(name: &str) -> Plugin {
    runtime()
        .load_builtin(name)
        .await
        .unwrap_or_else(|e| panic!("loading the built-in {name} failed: {e:?}"))
}

/// An incident with a severity attribute and a small payload, as the chat, e-mail and
/// SMS tests render it.
fn incident() -> Delivery {
    let mut d = delivery(
        "incident.opened",
        json!({"title": "DB down", "host": "db1"}),
    );
    d.notification.attributes = vec![("severity".into(), "critical".into())];
    d
}

fn reply_json(status: u16, body: Value) -> Reply {
    Reply::status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
}

#[track_caller]
fn delivered(outcome: Outcome) -> Receipt {
    match outcome {
        Outcome::Delivered(receipt) => receipt,
        other => panic!("expected delivered, got {other:?}"),
    }
}

#[track_caller]
fn retry(outcome: Outcome) -> RetryHint {
    match outcome {
        Outcome::Retry(hint) => hint,
        other => panic!("expected retry, got {other:?}"),
    }
}

#[track_caller]
fn failed(outcome: Outcome) -> Failure {
    match outcome {
        Outcome::Failed(failure) => failure,
        other => panic!("expected failed, got {other:?}"),
    }
}

#[track_caller]
fn only_request(receiver: &Receiver) -> Recorded {
    let mut requests = receiver.requests();
    assert_eq!(requests.len(), 1, "expected exactly one request");
    requests.remove(0)
}

#[tokio::test]
async fn every_builtin_channel_loads_and_names_itself() {
    for name in ["webhook", "slack", "email-http", "sms-http", "log"] {
        let plugin = load(name).await;
        assert_eq!(plugin.info().name, format!("channel-{name}"));
        assert_eq!(plugin.info().version, "0.1.0");
        assert!(!plugin.info().description.is_empty());
    }
}

// --- log -----------------------------------------------------------------------------

#[tokio::test]
async fn log_reports_every_notification_delivered() {
    let plugin = load("log").await;
    let outcome = plugin
        .deliver(&grants(json!({}), &[], &[]), incident())
        .await
        .unwrap();
    let receipt = delivered(outcome);
    assert_eq!(receipt.status, None);
    assert_eq!(receipt.detail, None);
}

// --- webhook -------------------------------------------------------------------------

/// Checks a received request the way a Standard Webhooks receiver does, and returns its
/// timestamp.
#[track_caller]
fn verify_standard_webhook(request: &Recorded, id: &str) -> u64 {
    assert_eq!(request.header("webhook-id"), Some(id));
    let timestamp = request
        .header("webhook-timestamp")
        .expect("webhook-timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_KEY_BYTES).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    assert_eq!(request.header("webhook-signature"), Some(expected.as_str()));
    timestamp
        .parse()
        .expect("webhook-timestamp is whole seconds")
}

#[tokio::test]
async fn webhook_posts_signed_json_that_verifies() {
    let receiver = Receiver::start().await;
    let plugin = load("webhook").await;
    let grants = grants(
        json!({
            "url": format!("{}/hooks/ops?team=payments", receiver.url),
            "headers": {"x-api-key": "key-123"},
        }),
        &[("signing_key", &signing_key())],
        LOOPBACK,
    );
    let mut d = delivery("invoice.paid", json!({"amount": 4200, "currency": "EUR"}));
    d.notification.created_at_ms = 1_709_208_000_007;
    d.notification.attributes = vec![("region".into(), "eu".into())];

    let before = now_secs();
    let receipt = delivered(plugin.deliver(&grants, d).await.unwrap());
    let after = now_secs();
    assert_eq!(receipt.status, Some(200));

    let request = only_request(&receiver);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/ops");
    assert_eq!(request.query, "team=payments");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-api-key"), Some("key-123"));
    let timestamp = verify_standard_webhook(&request, "ntf_test_1");
    assert!(
        (before..=after).contains(&timestamp),
        "webhook-timestamp {timestamp} is not the attempt's time ({before}..={after})"
    );
    assert_eq!(
        request.json(),
        json!({
            "type": "invoice.paid",
            "timestamp": "2024-02-29T12:00:00.007Z",
            "id": "ntf_test_1",
            "source": "api",
            "attributes": {"region": "eu"},
            "data": {"amount": 4200, "currency": "EUR"},
        })
    );
}

#[tokio::test]
async fn webhook_retries_a_server_error_with_the_same_webhook_id() {
    let receiver = Receiver::start_with(|_| Reply::status(500)).await;
    let plugin = load("webhook").await;
    let grants = grants(
        json!({"url": receiver.url}),
        &[("signing_key", &signing_key())],
        LOOPBACK,
    );

    for attempt in 1..=2 {
        let mut d = delivery("invoice.paid", json!({"amount": 1}));
        d.attempt = attempt;
        let hint = retry(plugin.deliver(&grants, d).await.unwrap());
        assert_eq!(hint.status, Some(500));
        assert_eq!(hint.after_ms, None);
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        verify_standard_webhook(request, "ntf_test_1");
    }
}

#[tokio::test]
async fn webhook_honours_retry_after_on_429() {
    let receiver = Receiver::start_with(|_| Reply::status(429).header("retry-after", "7")).await;
    let plugin = load("webhook").await;
    let grants = grants(
        json!({"url": receiver.url}),
        &[("signing_key", &signing_key())],
        LOOPBACK,
    );
    let hint = retry(
        plugin
            .deliver(&grants, delivery("invoice.paid", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(hint.status, Some(429));
    assert_eq!(hint.after_ms, Some(7000));
}

#[tokio::test]
async fn webhook_fails_and_asks_to_disable_on_410() {
    let receiver = Receiver::start_with(|_| Reply::status(410)).await;
    let plugin = load("webhook").await;
    let grants = grants(
        json!({"url": receiver.url}),
        &[("signing_key", &signing_key())],
        LOOPBACK,
    );
    let failure = failed(
        plugin
            .deliver(&grants, delivery("invoice.paid", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(failure.status, Some(410));
    assert!(failure.disable);
}

#[tokio::test]
async fn webhook_never_follows_a_redirect() {
    let receiver = Receiver::start_with(|request| {
        if request.path == "/moved" {
            Reply::status(200)
        } else {
            Reply::status(302).header("location", "/moved")
        }
    })
    .await;
    let plugin = load("webhook").await;
    let grants = grants(
        json!({"url": format!("{}/hook", receiver.url)}),
        &[("signing_key", &signing_key())],
        LOOPBACK,
    );
    let failure = failed(
        plugin
            .deliver(&grants, delivery("invoice.paid", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(failure.status, Some(302));
    assert!(!failure.disable);
    // The reason says it was a redirect, but not where to: a redirect's path can be as
    // secret as the webhook URL it came from.
    assert!(
        failure.reason.contains("redirect") && !failure.reason.contains("/moved"),
        "the reason names the redirect by its origin only: {}",
        failure.reason
    );
    assert_eq!(only_request(&receiver).path, "/hook");
}

#[tokio::test]
async fn webhook_without_a_signing_key_fails_without_sending() {
    let receiver = Receiver::start().await;
    let plugin = load("webhook").await;
    let grants = grants(json!({"url": receiver.url}), &[], LOOPBACK);
    let failure = failed(
        plugin
            .deliver(&grants, delivery("invoice.paid", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(failure.reason, "secret signing_key is not set");
    assert_eq!(failure.status, None);
    assert!(!failure.disable);
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn webhook_to_a_host_it_was_not_granted_is_denied() {
    let receiver = Receiver::start().await;
    let plugin = load("webhook").await;
    // The same receiver under another name: only the grant stands in the way.
    let url = receiver.url.replace("127.0.0.1", "localhost");
    let grants = grants(
        json!({"url": url}),
        &[("signing_key", &signing_key())],
        LOOPBACK,
    );
    let failure = failed(
        plugin
            .deliver(&grants, delivery("invoice.paid", json!({})))
            .await
            .unwrap(),
    );
    assert!(
        failure.reason.contains("denied"),
        "the reason says denied: {}",
        failure.reason
    );
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn webhook_refuses_bad_config() {
    let receiver = Receiver::start().await;
    let plugin = load("webhook").await;
    let key = signing_key();
    for (config, expected) in [
        (json!({"uri": receiver.url}), "unknown field `uri`"),
        (json!({}), "missing field `url`"),
        (
            json!({"url": receiver.url, "headers": {"Webhook-Signature": "v1,forged"}}),
            "headers.Webhook-Signature",
        ),
    ] {
        let grants = grants(config, &[("signing_key", &key)], LOOPBACK);
        let failure = failed(
            plugin
                .deliver(&grants, delivery("invoice.paid", json!({})))
                .await
                .unwrap(),
        );
        assert!(
            failure.reason.contains(expected),
            "{:?} should mention {expected:?}",
            failure.reason
        );
    }
    let grants = grants(
        json!({"url": receiver.url}),
        &[("signing_key", "whsec_not base64!")],
        LOOPBACK,
    );
    let failure = failed(
        plugin
            .deliver(&grants, delivery("invoice.paid", json!({})))
            .await
            .unwrap(),
    );
    assert!(failure.reason.starts_with("secret signing_key: "));
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn webhook_retries_when_its_own_timeout_runs_out() {
    let receiver = Receiver::start_with(|_| Reply::status(200).delay(Duration::from_secs(3))).await;
    let plugin = load("webhook").await;
    let grants = grants(
        json!({"url": receiver.url, "timeout_ms": 200}),
        &[("signing_key", &signing_key())],
        LOOPBACK,
    );
    let hint = retry(
        plugin
            .deliver(&grants, delivery("invoice.paid", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(hint.status, None);
    assert!(hint.reason.contains("timed out"), "{}", hint.reason);
}

// --- slack ---------------------------------------------------------------------------

#[tokio::test]
async fn slack_posts_the_rendered_message_to_the_secret_url() {
    let receiver = Receiver::start().await;
    let plugin = load("slack").await;
    let grants = grants(
        json!({
            // The secret wins over the config URL, which would fail to connect.
            "url": "http://127.0.0.1:9/never",
            "template": "[{{attributes.severity}}] {{kind}}: {{payload.title}} on {{payload.host}}",
            "username": "switchyard",
            "icon_emoji": ":rotating_light:",
            "channel": "#ops",
        }),
        &[(
            "webhook_url",
            &format!("{}/services/T000/B000/XXXX", receiver.url),
        )],
        LOOPBACK,
    );
    let receipt = delivered(plugin.deliver(&grants, incident()).await.unwrap());
    assert_eq!(receipt.status, Some(200));

    let request = only_request(&receiver);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/services/T000/B000/XXXX");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({
            "text": "[critical] incident.opened: DB down on db1",
            "username": "switchyard",
            "icon_emoji": ":rotating_light:",
            "channel": "#ops",
        })
    );
}

#[tokio::test]
async fn slack_uses_the_config_url_and_the_default_template() {
    let receiver = Receiver::start().await;
    let plugin = load("slack").await;
    let grants = grants(
        json!({"url": format!("{}/hooks/chat", receiver.url)}),
        &[],
        LOOPBACK,
    );
    let d = delivery("build.failed", json!({"branch": "main"}));
    delivered(plugin.deliver(&grants, d).await.unwrap());

    let request = only_request(&receiver);
    assert_eq!(request.path, "/hooks/chat");
    assert_eq!(
        request.json(),
        json!({"text": r#"*build.failed* from api: {"branch":"main"}"#})
    );
}

#[tokio::test]
async fn slack_retries_a_server_error() {
    let receiver = Receiver::start_with(|_| Reply::status(503)).await;
    let plugin = load("slack").await;
    let grants = grants(json!({}), &[("webhook_url", &receiver.url)], LOOPBACK);
    let hint = retry(plugin.deliver(&grants, incident()).await.unwrap());
    assert_eq!(hint.status, Some(503));
}

#[tokio::test]
async fn slack_without_a_url_fails() {
    let plugin = load("slack").await;
    let grants = grants(json!({"template": "{{kind}}"}), &[], LOOPBACK);
    let failure = failed(plugin.deliver(&grants, incident()).await.unwrap());
    assert!(failure.reason.contains("webhook_url"), "{}", failure.reason);
}

// --- email-http ----------------------------------------------------------------------

#[tokio::test]
async fn email_posts_what_a_mail_api_expects() {
    let receiver = Receiver::start_with(|_| reply_json(200, json!({"id": "msg_123"}))).await;
    let plugin = load("email-http").await;
    let grants = grants(
        json!({
            "endpoint": format!("{}/emails", receiver.url),
            "from": "Switchyard <alerts@example.com>",
            "to": ["ops@example.com", "oncall@example.com"],
            // The line break must not reach the subject header.
            "subject": "[{{attributes.severity}}]\n{{payload.title}}",
            "text": "{{payload.title}} on {{payload.host}} ({{id}})",
            "html": "<p><b>{{payload.title}}</b> on {{payload.host}}</p>",
        }),
        &[("api_token", "re_test_123")],
        LOOPBACK,
    );
    let receipt = delivered(plugin.deliver(&grants, incident()).await.unwrap());
    assert_eq!(receipt.status, Some(200));
    assert_eq!(receipt.detail.as_deref(), Some("msg_123"));

    let request = only_request(&receiver);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/emails");
    assert_eq!(request.header("authorization"), Some("Bearer re_test_123"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({
            "from": "Switchyard <alerts@example.com>",
            "to": ["ops@example.com", "oncall@example.com"],
            "subject": "[critical] DB down",
            "text": "DB down on db1 (ntf_test_1)",
            "html": "<p><b>DB down</b> on db1</p>",
        })
    );
}

#[tokio::test]
async fn email_defaults_to_a_readable_summary() {
    let receiver = Receiver::start().await;
    let plugin = load("email-http").await;
    let grants = grants(
        json!({
            "endpoint": receiver.url,
            "from": "alerts@example.com",
            "to": "ops@example.com",
        }),
        &[("api_token", "re_test_123")],
        LOOPBACK,
    );
    let mut d = delivery("incident.opened", json!({"title": "DB down"}));
    d.notification.attributes = vec![("severity".into(), "critical".into())];
    let receipt = delivered(plugin.deliver(&grants, d).await.unwrap());
    assert_eq!(
        receipt.detail, None,
        "a plain `ok` answer carries no message id"
    );

    assert_eq!(
        only_request(&receiver).json(),
        json!({
            "from": "alerts@example.com",
            "to": ["ops@example.com"],
            "subject": "incident.opened",
            "text": "incident.opened from api\n\nNotification: ntf_test_1\nAttributes:\n  severity: critical\n\nPayload:\n{\n  \"title\": \"DB down\"\n}\n",
        })
    );
}

#[tokio::test]
async fn email_retries_a_server_error() {
    let receiver = Receiver::start_with(|_| Reply::status(502)).await;
    let plugin = load("email-http").await;
    let grants = grants(
        json!({"endpoint": receiver.url, "from": "a@example.com", "to": "b@example.com"}),
        &[("api_token", "re_test_123")],
        LOOPBACK,
    );
    let hint = retry(plugin.deliver(&grants, incident()).await.unwrap());
    assert_eq!(hint.status, Some(502));
}

#[tokio::test]
async fn email_without_a_token_or_recipients_fails_without_sending() {
    let receiver = Receiver::start().await;
    let plugin = load("email-http").await;
    let config = json!({"endpoint": receiver.url, "from": "a@example.com", "to": "b@example.com"});
    let failure = failed(
        plugin
            .deliver(&grants(config, &[], LOOPBACK), incident())
            .await
            .unwrap(),
    );
    assert_eq!(failure.reason, "secret api_token is not set");

    for (to, expected) in [(json!([]), "no recipients"), (json!(7), "`to` must be")] {
        let config = json!({"endpoint": receiver.url, "from": "a@example.com", "to": to});
        let grants = grants(config, &[("api_token", "re_test_123")], LOOPBACK);
        let failure = failed(plugin.deliver(&grants, incident()).await.unwrap());
        assert!(failure.reason.contains(expected), "{}", failure.reason);
    }
    assert!(receiver.requests().is_empty());
}

// --- sms-http ------------------------------------------------------------------------

fn form(request: &Recorded) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

#[tokio::test]
async fn sms_posts_a_twilio_form_with_basic_auth() {
    let receiver =
        Receiver::start_with(|_| reply_json(201, json!({"sid": "SM0123", "status": "queued"})))
            .await;
    let plugin = load("sms-http").await;
    let grants = grants(
        json!({
            "endpoint": format!("{}/2010-04-01/Accounts/AC123/Messages.json", receiver.url),
            "from": "+15550100",
            "to": "+15550199",
            "account_sid": "AC123",
            "template": "{{attributes.severity}} {{kind}}: {{payload.title}} & more",
        }),
        &[("auth_token", "tok_secret")],
        LOOPBACK,
    );
    let receipt = delivered(plugin.deliver(&grants, incident()).await.unwrap());
    assert_eq!(receipt.status, Some(201));
    assert_eq!(receipt.detail.as_deref(), Some("SM0123"));

    let request = only_request(&receiver);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/2010-04-01/Accounts/AC123/Messages.json");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Basic {}", BASE64.encode("AC123:tok_secret")).as_str())
    );
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        form(&request),
        [
            ("To", "+15550199"),
            ("From", "+15550100"),
            ("Body", "critical incident.opened: DB down & more"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
}

#[tokio::test]
async fn sms_with_an_api_token_uses_bearer_and_cuts_long_bodies() {
    let receiver = Receiver::start().await;
    let plugin = load("sms-http").await;
    let grants = grants(
        json!({"endpoint": receiver.url, "from": "+15550100", "to": "+15550199"}),
        &[("api_token", "sk_test_9")],
        LOOPBACK,
    );
    // Two-byte characters, so a cut by bytes would land inside one.
    let long = "é".repeat(2000);
    let d = delivery("incident.opened", json!({"log": long}));
    delivered(plugin.deliver(&grants, d).await.unwrap());

    let request = only_request(&receiver);
    assert_eq!(request.header("authorization"), Some("Bearer sk_test_9"));
    let form = form(&request);
    let body = &form
        .iter()
        .find(|(k, _)| k == "Body")
        .expect("a Body field")
        .1;
    let full = format!("incident.opened: {}", json!({"log": long}));
    let expected: String = full.chars().take(1600).collect();
    assert_eq!(body.chars().count(), 1600);
    assert_eq!(*body, expected);
}

#[tokio::test]
async fn sms_retries_a_server_error() {
    let receiver = Receiver::start_with(|_| Reply::status(500)).await;
    let plugin = load("sms-http").await;
    let grants = grants(
        json!({"endpoint": receiver.url, "from": "+15550100", "to": "+15550199"}),
        &[("api_token", "sk_test_9")],
        LOOPBACK,
    );
    let hint = retry(plugin.deliver(&grants, incident()).await.unwrap());
    assert_eq!(hint.status, Some(500));
}

#[tokio::test]
async fn sms_without_usable_credentials_fails_without_sending() {
    let receiver = Receiver::start().await;
    let plugin = load("sms-http").await;
    let config = json!({"endpoint": receiver.url, "from": "+15550100", "to": "+15550199"});
    for (secrets, expected) in [
        (&[][..], "no credentials"),
        (
            &[("auth_token", "tok_secret")][..],
            "needs config account_sid",
        ),
    ] {
        let grants = grants(config.clone(), secrets, LOOPBACK);
        let failure = failed(plugin.deliver(&grants, incident()).await.unwrap());
        assert!(failure.reason.contains(expected), "{}", failure.reason);
    }
    assert!(receiver.requests().is_empty());
}
