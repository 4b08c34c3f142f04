//! The built-in adapters, each loaded into the real wasmtime runtime and handed requests
//! the way the front doors hand them over: what a sender sees is the rejection or the
//! drafts the host would act on, byte for byte.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::*;
use switchyard::runtime::*;

type HmacSha256 = Hmac<Sha256>;

async fn load(runtime: &Runtime, name: &str) -> Plugin {
    runtime
        .load_builtin(name)
        .await
        .unwrap_or_else(|e| panic!("loading the built-in {name} failed: {e:?}"))
}

/// Loads `name` into a runtime on the real clock and hands it one request.
async fn call(name: &str, grants: &Arc<Grants>, request: Request) -> Result<Vec<Draft>, Rejection> {
    call_on(&runtime(), name, grants, request).await
}

async fn call_on(
    runtime: &Runtime,
    name: &str,
    grants: &Arc<Grants>,
    request: Request,
) -> Result<Vec<Draft>, Rejection> {
    load(runtime, name)
        .await
        .handle(grants, request)
        .await
        .unwrap_or_else(|e| panic!("calling {name} failed: {e}"))
}

#[track_caller]
fn accepted(result: Result<Vec<Draft>, Rejection>) -> Vec<Draft> {
    result.unwrap_or_else(|r| panic!("expected drafts, got {r:?}"))
}

#[track_caller]
fn only(result: Result<Vec<Draft>, Rejection>) -> Draft {
    let mut drafts = accepted(result);
    assert_eq!(drafts.len(), 1, "expected one draft, got {drafts:?}");
    drafts.remove(0)
}

#[track_caller]
fn rejected(result: Result<Vec<Draft>, Rejection>) -> Rejection {
    match result {
        Ok(drafts) => panic!("expected a rejection, got {drafts:?}"),
        Err(rejection) => rejection,
    }
}

/// Asserts a 422 `invalid-field` on `field` whose message holds `reason`.
#[track_caller]
fn assert_invalid_field(rejection: &Rejection, field: &str, reason: &str) {
    assert_eq!(
        (
            rejection.status,
            rejection.code.as_str(),
            rejection.field.as_deref()
        ),
        (422, "invalid-field", Some(field)),
        "{rejection:?}"
    );
    assert!(
        rejection.message.contains(field) && rejection.message.contains(reason),
        "the message should name {field} and say {reason:?}: {rejection:?}"
    );
}

fn payload(draft: &Draft) -> Value {
    serde_json::from_str(&draft.payload)
        .unwrap_or_else(|e| panic!("the payload is not JSON ({e}): {}", draft.payload))
}

fn attribute<'a>(draft: &'a Draft, name: &str) -> Option<&'a str> {
    draft
        .attributes
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn no_grants() -> Arc<Grants> {
    grants(json!({}), &[], &[])
}

fn ws_frame(body: &[u8]) -> Request {
    let mut request = http_request(&[], body);
    request.transport = Transport::WsMessage;
    request.method = "MESSAGE".into();
    request.path = "/ws".into();
    request
}

fn graphql_variables(variables: &Value) -> Request {
    let mut request = http_request(&[], variables.to_string().as_bytes());
    request.transport = Transport::Graphql;
    request.method = "MUTATION".into();
    request.path = "/graphql".into();
    request
}

#[tokio::test]
async fn every_adapter_describes_itself() {
    let runtime = runtime();
    for name in [
        "rest-json",
        "webhook-standard",
        "webhook-github",
        "ws-json",
        "graphql",
    ] {
        let plugin = load(&runtime, name).await;
        assert_eq!(plugin.world(), World::Adapter, "{name}");
        let info = plugin.info();
        assert_eq!(info.name, format!("adapter-{name}"));
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert!(!info.description.is_empty(), "{name} has no description");
    }
}

// ---------------------------------------------------------------------------------------
// rest-json

#[tokio::test]
async fn rest_json_turns_one_object_into_one_draft() {
    let body = json!({
        "kind": "invoice.paid",
        "attributes": {"severity": "critical", "attempt": 3, "urgent": true},
        "payload": {"invoice": 42, "lines": [1, 2]},
        "idempotency_key": "invoice-42-paid",
    });
    let draft = only(
        call(
            "rest-json",
            &no_grants(),
            http_request(&[], body.to_string().as_bytes()),
        )
        .await,
    );
    assert_eq!(draft.kind, "invoice.paid");
    assert_eq!(payload(&draft), json!({"invoice": 42, "lines": [1, 2]}));
    assert_eq!(draft.idempotency_key.as_deref(), Some("invoice-42-paid"));
    let mut attributes = draft.attributes.clone();
    attributes.sort();
    assert_eq!(
        attributes,
        [
            ("attempt".to_string(), "3".to_string()),
            ("severity".to_string(), "critical".to_string()),
            ("urgent".to_string(), "true".to_string()),
        ]
    );
}

#[tokio::test]
async fn rest_json_accepts_arrays_and_wrapped_batches_in_order() {
    let plugin = load(&runtime(), "rest-json").await;
    let grants = no_grants();
    for body in [
        r#"[{"kind": "a.one"}, {"kind": "b.two", "payload": [1]}]"#,
        r#"{"notifications": [{"kind": "a.one"}, {"kind": "b.two", "payload": [1]}]}"#,
    ] {
        let drafts = accepted(
            plugin
                .handle(&grants, http_request(&[], body.as_bytes()))
                .await
                .unwrap(),
        );
        let summary: Vec<(&str, &str, Option<&str>)> = drafts
            .iter()
            .map(|d| {
                (
                    d.kind.as_str(),
                    d.payload.as_str(),
                    d.idempotency_key.as_deref(),
                )
            })
            .collect();
        assert_eq!(summary, [("a.one", "null", None), ("b.two", "[1]", None)]);
    }
}

#[tokio::test]
async fn rest_json_schema_errors_name_the_field_and_the_reason() {
    let plugin = load(&runtime(), "rest-json").await;
    let grants = no_grants();
    let reject = async |body: &str| {
        rejected(
            plugin
                .handle(&grants, http_request(&[], body.as_bytes()))
                .await
                .unwrap(),
        )
    };

    let r = reject(r#"{"payload": {"a": 1}}"#).await;
    assert_invalid_field(&r, "kind", "is required");

    let r = reject(r#"{"notifications": [{"kind": "ok"}, {"kind": 7}]}"#).await;
    assert_invalid_field(
        &r,
        "notifications[1].kind",
        "must be a string, not a number",
    );

    let r = reject(r#"{"kind": "a", "colour": "red"}"#).await;
    assert_invalid_field(&r, "colour", "unknown field");

    let r = reject(r#"[{"kind": "a"}, {"kind": "b", "attributes": {"x": {"deep": 1}}}]"#).await;
    assert_invalid_field(
        &r,
        "[1].attributes.x",
        "must be a string, number or boolean",
    );

    let r = reject(r#"{"kind": "invoice paid"}"#).await;
    assert_invalid_field(&r, "kind", "use letters, digits");

    let r = reject(r#"{"notifications": []}"#).await;
    assert_invalid_field(&r, "notifications", "at least one");

    let r = reject("42").await;
    assert_invalid_field(&r, "$", "not a number");
}

#[tokio::test]
async fn rest_json_malformed_json_is_a_400_that_says_where() {
    let r = rejected(
        call(
            "rest-json",
            &no_grants(),
            http_request(&[], b"{\n  \"kind\": \"a.b\",\n}"),
        )
        .await,
    );
    assert_eq!(
        (r.status, r.code.as_str(), r.field),
        (400, "invalid-json", None)
    );
    assert!(r.message.contains("line 3"), "{}", r.message);
}

// ---------------------------------------------------------------------------------------
// webhook-standard

/// The test vector published with the Standard Webhooks specification.
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SW_TIMESTAMP: u64 = 1614265330;
const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SW_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

/// Another key, as a sender that is rotating away from it would still sign with.
const OLD_SECRET: &str = "whsec_b2xkIGtleSwgcmV0aXJlZCBsYXN0IHdlZWs=";

/// Signs as a Standard Webhooks sender does, independently of the SDK.
fn sw_sign(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> String {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = HmacSha256::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

fn sw_request(id: &str, timestamp: &str, signature: &str, body: &[u8]) -> Request {
    http_request(
        &[
            ("content-type", "application/json"),
            ("webhook-id", id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signature),
        ],
        body,
    )
}

fn sw_vector(signature: &str, body: &[u8]) -> Request {
    sw_request(SW_ID, &SW_TIMESTAMP.to_string(), signature, body)
}

fn sw_grants(secret: &str) -> Arc<Grants> {
    grants(json!({}), &[("secret", secret)], &[])
}

#[tokio::test]
async fn webhook_standard_accepts_the_specification_vector() {
    assert_eq!(
        sw_sign(SW_SECRET, SW_ID, SW_TIMESTAMP, SW_BODY),
        SW_SIGNATURE,
        "the test's own signer disagrees with the specification"
    );
    let draft = only(
        call_on(
            &runtime_at(SW_TIMESTAMP),
            "webhook-standard",
            &sw_grants(SW_SECRET),
            sw_vector(SW_SIGNATURE, SW_BODY),
        )
        .await,
    );
    assert_eq!(draft.kind, "webhook.received");
    assert_eq!(payload(&draft), json!({"test": 2432232314u64}));
    assert_eq!(draft.idempotency_key.as_deref(), Some(SW_ID));
    assert_eq!(
        draft.attributes,
        [("webhook_id".to_string(), SW_ID.to_string())]
    );
}

/// Up to five `v1` signatures are looked at; a header with more is refused with
/// `too-many-signatures` at once, however large the body: 40,000 made-up signatures over a
/// 1 MiB body come back well within the CPU deadline that hashing them all would hit.
#[tokio::test]
async fn webhook_standard_refuses_more_than_five_signatures() {
    let plugin = load(&runtime_at(SW_TIMESTAMP), "webhook-standard").await;
    let grants = sw_grants(SW_SECRET);
    let decoy = "v1,bm9wZQ==";
    let five = format!("{decoy} {decoy} {decoy} {decoy} {SW_SIGNATURE}");
    only(
        plugin
            .handle(&grants, sw_vector(&five, SW_BODY))
            .await
            .unwrap(),
    );
    let six = format!("{SW_SIGNATURE} {decoy} {decoy} {decoy} {decoy} {decoy}");
    let r = rejected(
        plugin
            .handle(&grants, sw_vector(&six, SW_BODY))
            .await
            .unwrap(),
    );
    assert_eq!((r.status, r.code.as_str()), (401, "too-many-signatures"));

    let body = format!(r#"{{"pad": "{}"}}"#, "a".repeat(1024 * 1024));
    let flood = vec!["v1,AAAA"; 40_000].join(" ");
    let started = std::time::Instant::now();
    let r = rejected(
        plugin
            .handle(&grants, sw_vector(&flood, body.as_bytes()))
            .await
            .unwrap(),
    );
    assert_eq!((r.status, r.code.as_str()), (401, "too-many-signatures"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn webhook_standard_refuses_a_wrong_signature_or_a_tampered_body() {
    let plugin = load(&runtime_at(SW_TIMESTAMP), "webhook-standard").await;
    let grants = sw_grants(SW_SECRET);
    let other_key = sw_sign(OLD_SECRET, SW_ID, SW_TIMESTAMP, SW_BODY);
    let cases: [(&str, &str, &[u8]); 5] = [
        ("signed with another key", &other_key, SW_BODY),
        ("tampered body", SW_SIGNATURE, br#"{"test": 2432232315}"#),
        (
            "flipped signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
            SW_BODY,
        ),
        (
            "unknown scheme",
            "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            SW_BODY,
        ),
        ("not base64", "v1,!!!", SW_BODY),
    ];
    for (case, signature, body) in cases {
        let r = rejected(
            plugin
                .handle(&grants, sw_vector(signature, body))
                .await
                .unwrap(),
        );
        assert_eq!(
            (r.status, r.code.as_str()),
            (401, "invalid-signature"),
            "{case}: {r:?}"
        );
        assert!(r.message.contains("webhook-signature"), "{case}: {r:?}");
    }
}

#[tokio::test]
async fn webhook_standard_refuses_timestamps_outside_five_minutes() {
    let default = sw_grants(SW_SECRET);
    for now in [SW_TIMESTAMP + 301, SW_TIMESTAMP - 301] {
        let r = rejected(
            call_on(
                &runtime_at(now),
                "webhook-standard",
                &default,
                sw_vector(SW_SIGNATURE, SW_BODY),
            )
            .await,
        );
        assert_eq!(
            (r.status, r.code.as_str()),
            (401, "stale-timestamp"),
            "{r:?}"
        );
        assert!(r.message.contains("301s"), "{r:?}");
    }
    for now in [SW_TIMESTAMP + 300, SW_TIMESTAMP - 300] {
        only(
            call_on(
                &runtime_at(now),
                "webhook-standard",
                &default,
                sw_vector(SW_SIGNATURE, SW_BODY),
            )
            .await,
        );
    }

    // A source may widen the window, for a sender whose clock is known to drift.
    let wide = grants(
        json!({"tolerance_secs": 600}),
        &[("secret", SW_SECRET)],
        &[],
    );
    only(
        call_on(
            &runtime_at(SW_TIMESTAMP + 301),
            "webhook-standard",
            &wide,
            sw_vector(SW_SIGNATURE, SW_BODY),
        )
        .await,
    );

    let r = rejected(
        call_on(
            &runtime_at(SW_TIMESTAMP),
            "webhook-standard",
            &default,
            sw_request(SW_ID, "2021-02-25T15:02:10Z", SW_SIGNATURE, SW_BODY),
        )
        .await,
    );
    assert_eq!(
        (r.status, r.code.as_str()),
        (401, "invalid-timestamp"),
        "{r:?}"
    );
}

#[tokio::test]
async fn webhook_standard_names_a_missing_header() {
    let plugin = load(&runtime_at(SW_TIMESTAMP), "webhook-standard").await;
    let grants = sw_grants(SW_SECRET);
    let timestamp = SW_TIMESTAMP.to_string();
    let all = [
        ("webhook-id", SW_ID),
        ("webhook-timestamp", timestamp.as_str()),
        ("webhook-signature", SW_SIGNATURE),
    ];
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let headers: Vec<(&str, &str)> = all
            .iter()
            .copied()
            .filter(|(name, _)| *name != missing)
            .collect();
        let r = rejected(
            plugin
                .handle(&grants, http_request(&headers, SW_BODY))
                .await
                .unwrap(),
        );
        assert_eq!(
            (r.status, r.code.as_str()),
            (401, "missing-header"),
            "{r:?}"
        );
        assert!(r.message.contains(missing), "{missing}: {r:?}");
    }
}

#[tokio::test]
async fn webhook_standard_reads_headers_in_any_case() {
    let timestamp = SW_TIMESTAMP.to_string();
    let request = http_request(
        &[
            ("Webhook-Id", SW_ID),
            ("WEBHOOK-TIMESTAMP", &timestamp),
            ("Webhook-Signature", SW_SIGNATURE),
        ],
        SW_BODY,
    );
    let draft = only(
        call_on(
            &runtime_at(SW_TIMESTAMP),
            "webhook-standard",
            &sw_grants(SW_SECRET),
            request,
        )
        .await,
    );
    assert_eq!(draft.idempotency_key.as_deref(), Some(SW_ID));
}

#[tokio::test]
async fn webhook_standard_accepts_rotating_keys_on_both_sides() {
    let runtime = runtime_at(SW_TIMESTAMP);
    let plugin = load(&runtime, "webhook-standard").await;

    // The sender signs with its retired key and its current one.
    let stale = sw_sign(OLD_SECRET, SW_ID, SW_TIMESTAMP, SW_BODY);
    let both = format!("{stale} {SW_SIGNATURE}");
    let draft = only(
        plugin
            .handle(&sw_grants(SW_SECRET), sw_vector(&both, SW_BODY))
            .await
            .unwrap(),
    );
    assert_eq!(draft.idempotency_key.as_deref(), Some(SW_ID));

    // The receiver holds the old and the new secret; senders still on either pass.
    let grants = sw_grants(&format!("{OLD_SECRET}\n  {SW_SECRET}"));
    for signature in [stale.as_str(), SW_SIGNATURE] {
        only(
            plugin
                .handle(&grants, sw_vector(signature, SW_BODY))
                .await
                .unwrap(),
        );
    }
    let unknown = sw_sign("whsec_bm90IG9uZSBvZiBvdXJz", SW_ID, SW_TIMESTAMP, SW_BODY);
    let r = rejected(
        plugin
            .handle(&grants, sw_vector(&unknown, SW_BODY))
            .await
            .unwrap(),
    );
    assert_eq!((r.status, r.code.as_str()), (401, "invalid-signature"));
}

#[tokio::test]
async fn webhook_standard_without_a_usable_secret_refuses_everything() {
    let plugin = load(&runtime_at(SW_TIMESTAMP), "webhook-standard").await;
    for grants in [
        no_grants(),
        sw_grants(""),
        sw_grants("whsec_not*base64"),
        sw_grants(&format!("{SW_SECRET} whsec_%%%")),
    ] {
        let r = rejected(
            plugin
                .handle(&grants, sw_vector(SW_SIGNATURE, SW_BODY))
                .await
                .unwrap(),
        );
        assert_eq!(
            (r.status, r.code.as_str(), r.message.as_str()),
            (
                401,
                "invalid-signature",
                "this source has no signing secret configured"
            ),
            "{:?}",
            grants.secrets
        );
    }

    // A broken config cannot verify anything either, and says nothing more to the sender.
    for config in [
        json!({"tolerance_secs": "5m"}),
        json!({"kind": "not a kind"}),
    ] {
        let grants = grants(config.clone(), &[("secret", SW_SECRET)], &[]);
        let r = rejected(
            plugin
                .handle(&grants, sw_vector(SW_SIGNATURE, SW_BODY))
                .await
                .unwrap(),
        );
        assert_eq!(
            (r.status, r.code.as_str()),
            (401, "invalid-signature"),
            "{config}"
        );
    }
}

#[tokio::test]
async fn webhook_standard_takes_the_kind_from_type_or_config() {
    let runtime = runtime();
    let plugin = load(&runtime, "webhook-standard").await;
    let now = now_secs();
    let signed = |id: &str, body: &[u8]| {
        sw_request(
            id,
            &now.to_string(),
            &sw_sign(SW_SECRET, id, now, body),
            body,
        )
    };

    let body =
        json!({"type": "invoice.paid", "timestamp": "2024-02-29T12:00:00Z", "data": {"id": 7}});
    let bytes = body.to_string().into_bytes();
    let draft = only(
        plugin
            .handle(&sw_grants(SW_SECRET), signed("msg_1", &bytes))
            .await
            .unwrap(),
    );
    assert_eq!(draft.kind, "invoice.paid");
    assert_eq!(payload(&draft), body);
    assert_eq!(draft.idempotency_key.as_deref(), Some("msg_1"));
    assert_eq!(attribute(&draft, "webhook_id"), Some("msg_1"));

    let configured = grants(json!({"kind": "shop.event"}), &[("secret", SW_SECRET)], &[]);
    let draft = only(
        plugin
            .handle(&configured, signed("msg_2", br#"[1, 2, 3]"#))
            .await
            .unwrap(),
    );
    assert_eq!(
        (draft.kind.as_str(), draft.payload.as_str()),
        ("shop.event", "[1,2,3]")
    );

    let r = rejected(
        plugin
            .handle(&configured, signed("msg_3", br#"{"type": "invoice paid"}"#))
            .await
            .unwrap(),
    );
    assert_invalid_field(&r, "type", "use letters, digits");

    let r = rejected(
        plugin
            .handle(&configured, signed("msg_4", br#"{"type": 12}"#))
            .await
            .unwrap(),
    );
    assert_invalid_field(&r, "type", "must be a string");

    let r = rejected(
        plugin
            .handle(&configured, signed("msg_5", b"type=invoice.paid"))
            .await
            .unwrap(),
    );
    assert_eq!((r.status, r.code.as_str()), (400, "invalid-json"), "{r:?}");
}

// ---------------------------------------------------------------------------------------
// webhook-github

const GH_SECRET: &str = "a GitHub webhook secret";

/// `sha256=<hex HMAC-SHA256 of the body>`, as GitHub signs.
fn gh_sign(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// The idempotency key the adapter gives a delivery with `signature`: the signature.
fn gh_replay_key(signature: &str) -> String {
    signature.replacen("sha256=", "sha256:", 1)
}

fn gh_request(event: &str, signature: &str, body: &[u8]) -> Request {
    http_request(
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("X-Hub-Signature-256", signature),
        ],
        body,
    )
}

fn gh_grants() -> Arc<Grants> {
    grants(json!({}), &[("secret", GH_SECRET)], &[])
}

fn issue_opened() -> Vec<u8> {
    json!({
        "action": "opened",
        "issue": {"number": 1347, "title": "Found a bug"},
        "repository": {"id": 1296269, "full_name": "octocat/Hello-World"},
        "sender": {"login": "octocat"},
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn webhook_github_maps_an_event_with_an_action() {
    let body = issue_opened();
    let draft = only(
        call(
            "webhook-github",
            &gh_grants(),
            gh_request("issues", &gh_sign(GH_SECRET, &body), &body),
        )
        .await,
    );
    assert_eq!(draft.kind, "github.issues.opened");
    assert_eq!(
        draft.attributes,
        [
            ("event".to_string(), "issues".to_string()),
            ("action".to_string(), "opened".to_string()),
            ("repository".to_string(), "octocat/Hello-World".to_string()),
        ]
    );
    assert_eq!(
        draft.idempotency_key,
        Some(gh_replay_key(&gh_sign(GH_SECRET, &body)))
    );
    assert_eq!(
        payload(&draft),
        serde_json::from_slice::<Value>(&body).unwrap()
    );
}

#[tokio::test]
async fn webhook_github_maps_an_event_without_an_action_or_repository() {
    let plugin = load(&runtime(), "webhook-github").await;
    let grants = gh_grants();

    let push = br#"{"ref": "refs/heads/main", "repository": {"full_name": "octocat/Hello-World"}}"#;
    let draft = only(
        plugin
            .handle(&grants, gh_request("push", &gh_sign(GH_SECRET, push), push))
            .await
            .unwrap(),
    );
    assert_eq!(draft.kind, "github.push");
    assert_eq!(attribute(&draft, "event"), Some("push"));
    assert_eq!(attribute(&draft, "action"), None);
    assert_eq!(attribute(&draft, "repository"), Some("octocat/Hello-World"));

    // An organization-level event has no repository; a non-string action is not an action.
    let org = br#"{"action": {"odd": true}, "organization": {"login": "github"}}"#;
    let draft = only(
        plugin
            .handle(
                &grants,
                gh_request("organization", &gh_sign(GH_SECRET, org), org),
            )
            .await
            .unwrap(),
    );
    assert_eq!(draft.kind, "github.organization");
    assert_eq!(
        draft.attributes,
        [("event".to_string(), "organization".to_string()),]
    );
}

#[tokio::test]
async fn webhook_github_verifies_the_published_example_and_accepts_ping_with_no_draft() {
    // The example in GitHub's "Validating webhook deliveries" documentation.
    let body = b"Hello, World!";
    let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(gh_sign("It's a Secret to Everybody", body), signature);

    let plugin = load(&runtime(), "webhook-github").await;
    let documented = grants(json!({}), &[("secret", "It's a Secret to Everybody")], &[]);
    let drafts = accepted(
        plugin
            .handle(&documented, gh_request("ping", signature, body))
            .await
            .unwrap(),
    );
    assert!(drafts.is_empty(), "a ping routes nothing: {drafts:?}");

    // A ping is still verified.
    let r = rejected(
        plugin
            .handle(&gh_grants(), gh_request("ping", signature, body))
            .await
            .unwrap(),
    );
    assert_eq!((r.status, r.code.as_str()), (401, "invalid-signature"));
}

#[tokio::test]
async fn webhook_github_refuses_missing_or_wrong_signatures() {
    let plugin = load(&runtime(), "webhook-github").await;
    let grants = gh_grants();
    let body = issue_opened();
    let good = gh_sign(GH_SECRET, &body);

    let cases = [
        (
            "another secret",
            gh_sign("not the secret", &body),
            body.clone(),
        ),
        ("tampered body", good.clone(), {
            let mut b = body.clone();
            b[12] ^= 1;
            b
        }),
        (
            "sha1 scheme",
            good.replacen("sha256=", "sha1=", 1),
            body.clone(),
        ),
        ("not hex", "sha256=zz".to_string(), body.clone()),
        (
            "truncated",
            good[..good.len() - 2].to_string(),
            body.clone(),
        ),
    ];
    for (case, signature, body) in cases {
        let r = rejected(
            plugin
                .handle(&grants, gh_request("issues", &signature, &body))
                .await
                .unwrap(),
        );
        assert_eq!(
            (r.status, r.code.as_str()),
            (401, "invalid-signature"),
            "{case}: {r:?}"
        );
        assert!(r.message.contains("X-Hub-Signature-256"), "{case}: {r:?}");
    }

    let unsigned = http_request(
        &[("X-GitHub-Event", "issues"), ("X-GitHub-Delivery", "d-1")],
        &body,
    );
    let r = rejected(plugin.handle(&grants, unsigned).await.unwrap());
    assert_eq!((r.status, r.code.as_str()), (401, "missing-header"));
    assert!(r.message.contains("X-Hub-Signature-256"), "{r:?}");

    let r = rejected(
        plugin
            .handle(&no_grants(), gh_request("issues", &good, &body))
            .await
            .unwrap(),
    );
    assert_eq!(
        (r.status, r.code.as_str(), r.message.as_str()),
        (
            401,
            "invalid-signature",
            "this source has no signing secret configured"
        )
    );
}

#[tokio::test]
async fn webhook_github_reads_lowercase_headers_and_form_bodies() {
    let plugin = load(&runtime(), "webhook-github").await;
    let json_body = issue_opened();
    let form: String = form_body(&json_body);
    let request = http_request(
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-github-event", "issues"),
            ("x-github-delivery", "d-2"),
            ("x-hub-signature-256", &gh_sign(GH_SECRET, form.as_bytes())),
        ],
        form.as_bytes(),
    );
    let draft = only(plugin.handle(&gh_grants(), request).await.unwrap());
    assert_eq!(draft.kind, "github.issues.opened");
    assert_eq!(attribute(&draft, "delivery"), None);
    assert_eq!(
        draft.idempotency_key,
        Some(gh_replay_key(&gh_sign(GH_SECRET, form.as_bytes())))
    );
    assert_eq!(
        payload(&draft),
        serde_json::from_slice::<Value>(&json_body).unwrap()
    );
}

/// The signature covers the body only: a captured delivery sent again with another
/// delivery id, or even another event name, still verifies. Its idempotency key is the
/// signature, so the hub counts it as a duplicate within the idempotency window; another
/// body gets another key.
#[tokio::test]
async fn webhook_github_replays_of_one_signed_body_share_one_idempotency_key() {
    let plugin = load(&runtime(), "webhook-github").await;
    let grants = gh_grants();
    let body = issue_opened();
    let signature = gh_sign(GH_SECRET, &body);
    let send = |event: &'static str, delivery: &'static str| {
        http_request(
            &[
                ("Content-Type", "application/json"),
                ("X-GitHub-Event", event),
                ("X-GitHub-Delivery", delivery),
                ("X-Hub-Signature-256", &signature),
            ],
            &body,
        )
    };
    let original = only(
        plugin
            .handle(&grants, send("issues", "guid-1"))
            .await
            .unwrap(),
    );
    let replayed = only(
        plugin
            .handle(&grants, send("issues", "guid-2"))
            .await
            .unwrap(),
    );
    let relabelled = only(
        plugin
            .handle(&grants, send("deployment", "guid-3"))
            .await
            .unwrap(),
    );
    let key = Some(gh_replay_key(&signature));
    assert_eq!(original.idempotency_key, key);
    assert_eq!(replayed.idempotency_key, key);
    assert_eq!(relabelled.idempotency_key, key);
    // The unsigned headers still say what they say: the kind follows X-GitHub-Event, which
    // is why the key must not.
    assert_eq!(relabelled.kind, "github.deployment.opened");
    assert_eq!(replayed.attributes, original.attributes);

    let mut other = issue_opened();
    other.extend_from_slice(b" ");
    let other_signature = gh_sign(GH_SECRET, &other);
    let different = only(
        plugin
            .handle(&grants, gh_request("issues", &other_signature, &other))
            .await
            .unwrap(),
    );
    assert_ne!(different.idempotency_key, key);
}

/// `payload=<urlencoded JSON>`, as GitHub posts with the form content type.
fn form_body(json: &[u8]) -> String {
    let encoded: String = json
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("payload={encoded}")
}

#[tokio::test]
async fn webhook_github_refuses_unusable_events_and_bodies() {
    let plugin = load(&runtime(), "webhook-github").await;
    let grants = gh_grants();
    let body = issue_opened();
    let signature = gh_sign(GH_SECRET, &body);

    let no_event = http_request(&[("X-Hub-Signature-256", &signature)], &body);
    let r = rejected(plugin.handle(&grants, no_event).await.unwrap());
    assert_eq!((r.status, r.code.as_str()), (400, "missing-header"));
    assert!(r.message.contains("X-GitHub-Event"), "{r:?}");

    let r = rejected(
        plugin
            .handle(&grants, gh_request("issues opened", &signature, &body))
            .await
            .unwrap(),
    );
    assert_eq!(
        (r.status, r.code.as_str()),
        (400, "invalid-header"),
        "{r:?}"
    );

    let odd = br#"{"action": "re opened"}"#;
    let r = rejected(
        plugin
            .handle(&grants, gh_request("issues", &gh_sign(GH_SECRET, odd), odd))
            .await
            .unwrap(),
    );
    assert_invalid_field(&r, "action", "cannot be part of the kind");

    let r = rejected(
        plugin
            .handle(
                &grants,
                gh_request("issues", &gh_sign(GH_SECRET, b"{"), b"{"),
            )
            .await
            .unwrap(),
    );
    assert_eq!((r.status, r.code.as_str()), (400, "invalid-json"), "{r:?}");
}

// ---------------------------------------------------------------------------------------
// ws-json

#[tokio::test]
async fn ws_json_turns_a_frame_into_drafts() {
    let plugin = load(&runtime(), "ws-json").await;
    let frame = br#"{"notifications": [
        {"kind": "build.failed", "attributes": {"branch": "main"}, "payload": {"run": 9}},
        {"kind": "build.fixed", "idempotency_key": "run-10"}
    ]}"#;
    let drafts = accepted(plugin.handle(&no_grants(), ws_frame(frame)).await.unwrap());
    assert_eq!(drafts.len(), 2);
    assert_eq!(drafts[0].kind, "build.failed");
    assert_eq!(attribute(&drafts[0], "branch"), Some("main"));
    assert_eq!(payload(&drafts[0]), json!({"run": 9}));
    assert_eq!(drafts[0].idempotency_key, None);
    assert_eq!(
        (drafts[1].kind.as_str(), drafts[1].payload.as_str()),
        ("build.fixed", "null")
    );
    assert_eq!(drafts[1].idempotency_key.as_deref(), Some("run-10"));
}

#[tokio::test]
async fn ws_json_refuses_other_transports_bad_text_and_bad_schema() {
    let plugin = load(&runtime(), "ws-json").await;
    let grants = no_grants();
    let good = br#"{"kind": "build.failed"}"#;

    for transport in [Transport::Http, Transport::Graphql] {
        let mut request = ws_frame(good);
        request.transport = transport;
        let r = rejected(plugin.handle(&grants, request).await.unwrap());
        assert_eq!(
            (r.status, r.code.as_str()),
            (400, "wrong-transport"),
            "{r:?}"
        );
    }

    let r = rejected(
        plugin
            .handle(&grants, ws_frame(b"{\"kind\": \"caf\xe9\"}"))
            .await
            .unwrap(),
    );
    assert_eq!(
        (r.status, r.code.as_str()),
        (400, "invalid-encoding"),
        "{r:?}"
    );

    let r = rejected(
        plugin
            .handle(&grants, ws_frame(b"[{\"kind\": \"a\"},\n {\"kind\": }]"))
            .await
            .unwrap(),
    );
    assert_eq!((r.status, r.code.as_str()), (400, "invalid-json"), "{r:?}");
    assert!(r.message.contains("line 2"), "{r:?}");

    let r = rejected(
        plugin
            .handle(
                &grants,
                ws_frame(br#"[{"kind": "a"}, {"kind": "b", "extra": 1}]"#),
            )
            .await
            .unwrap(),
    );
    assert_invalid_field(&r, "[1].extra", "unknown field");
}

// ---------------------------------------------------------------------------------------
// graphql

#[tokio::test]
async fn graphql_turns_input_into_one_draft() {
    let draft = only(
        call(
            "graphql",
            &no_grants(),
            graphql_variables(&json!({"input": {
                "kind": "incident.opened",
                "attributes": {"severity": "critical"},
                "payload": {"title": "DB down"},
                "idempotency_key": "inc-1",
            }})),
        )
        .await,
    );
    assert_eq!(draft.kind, "incident.opened");
    assert_eq!(
        draft.attributes,
        [("severity".to_string(), "critical".to_string())]
    );
    assert_eq!(payload(&draft), json!({"title": "DB down"}));
    assert_eq!(draft.idempotency_key.as_deref(), Some("inc-1"));
}

#[tokio::test]
async fn graphql_turns_inputs_into_drafts_in_order() {
    let drafts = accepted(
        call(
            "graphql",
            &no_grants(),
            graphql_variables(&json!({
                "input": null,
                "inputs": [{"kind": "a.one"}, {"kind": "b.two", "payload": 2}, {"kind": "c.three"}],
            })),
        )
        .await,
    );
    let kinds: Vec<(&str, &str)> = drafts
        .iter()
        .map(|d| (d.kind.as_str(), d.payload.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("a.one", "null"), ("b.two", "2"), ("c.three", "null")]
    );
}

#[tokio::test]
async fn graphql_errors_name_the_path_from_the_variable() {
    let plugin = load(&runtime(), "graphql").await;
    let grants = no_grants();
    let reject = async |variables: Value| {
        rejected(
            plugin
                .handle(&grants, graphql_variables(&variables))
                .await
                .unwrap(),
        )
    };

    let r = reject(json!({"input": {"payload": {}}})).await;
    assert_invalid_field(&r, "input.kind", "is required");

    let r = reject(json!({"inputs": [{"kind": "a"}, {"kind": "b"}, {"kind": ["c"]}]})).await;
    assert_invalid_field(&r, "inputs[2].kind", "must be a string, not an array");

    let r = reject(json!({"inputs": [{"kind": "a", "attributes": {"region": null}}]})).await;
    assert_invalid_field(&r, "inputs[0].attributes.region", "not null");

    let r = reject(json!({"input": {"kind": "a"}, "dryRun": true})).await;
    assert_invalid_field(&r, "dryRun", "unknown variable");

    let r = reject(json!({"input": {"kind": "a"}, "inputs": [{"kind": "b"}]})).await;
    assert_invalid_field(&r, "inputs", "not both");

    let r = reject(json!({})).await;
    assert_invalid_field(&r, "input", "is required");

    let r = reject(json!({"input": [{"kind": "a"}]})).await;
    assert_invalid_field(&r, "input", "must be an object, not an array");

    let r = reject(json!({"inputs": {"kind": "a"}})).await;
    assert_invalid_field(&r, "inputs", "must be a list, not an object");

    let r = reject(json!({"inputs": []})).await;
    assert_invalid_field(&r, "inputs", "at least one");

    let r = reject(json!({"inputs": [{"kind": "a"}, "b"]})).await;
    assert_invalid_field(&r, "inputs[1]", "must be an object, not a string");

    let r = rejected(
        plugin
            .handle(&grants, {
                let mut request = graphql_variables(&json!({}));
                request.body = b"{\"input\": ".to_vec();
                request
            })
            .await
            .unwrap(),
    );
    assert_eq!((r.status, r.code.as_str()), (400, "invalid-json"), "{r:?}");
}
