//! The `webhook-github` adapter: verifies a GitHub webhook delivery and turns its event into
//! one draft.
//!
//! GitHub signs the raw body with the webhook's secret and sends
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`; the tag is checked in constant time. The
//! body is the event's JSON, either raw (`application/json`) or as the `payload` field of a
//! form (`application/x-www-form-urlencoded`), the two content types GitHub offers.
//!
//! The draft:
//! - kind `github.<X-GitHub-Event>`, plus `.<action>` when the body has a string `action`,
//!   such as `github.push` or `github.issues.opened`;
//! - attributes `event`, `action` (when there is one) and `repository` (the body's
//!   `repository.full_name`, when there is one), for routes to match on;
//! - payload: the event's JSON;
//! - idempotency key: `sha256:<hex>`, the verified signature itself (the HMAC of the body),
//!   so the same signed body counts once within the hub's idempotency window whatever
//!   delivery id comes with it (GitHub's own redelivery keeps the body, so it is a
//!   duplicate too). The delivery id is not an attribute: a replay under a new id is then
//!   the same notification, answered as a duplicate; a replay under another event name is
//!   a different notification under a used key, refused with 409 `idempotency-key-reused`.
//!
//! # What the signature does not cover
//!
//! GitHub signs the body only. `X-GitHub-Event` and `X-GitHub-Delivery` are not signed, and
//! a GitHub delivery carries no timestamp, so:
//! - someone who captures a delivery can send its body again at any later time, with any
//!   delivery id: the signature still verifies;
//! - they can send it with another `X-GitHub-Event`, which changes the kind (and the
//!   `event` attribute) routes see.
//!
//! Keying idempotency on the signature rather than on the delivery id makes a replay
//! within the idempotency window (`api.idempotency_window`, 24 h by default) a duplicate
//! that creates nothing, whatever headers it carries. A replay after the window is
//! accepted again: nothing in a GitHub delivery can tell it from a new event. Where that
//! matters, keep the webhook secret rotating, accept only GitHub's published hook
//! addresses at the edge, and let consumers check what they can against the body itself
//! (which is signed): `repository`, `sender`, and the event's own ids and timestamps.
//!
//! A `ping` (sent when the webhook is created) is verified and accepted with no draft:
//! it proves the setup works and carries nothing to route.
//!
//! Config: none. Secrets:
//! - `secret` (required): the webhook secret as entered on GitHub, used byte for byte.
//!
//! Rejections: 401 `missing-header` without `X-Hub-Signature-256`; 401 `invalid-signature`
//! when it is malformed or wrong, or when this source has no secret configured (logged as
//! an error); 400 `missing-header` without `X-GitHub-Event`; 400 `invalid-header` for an
//! event name or delivery id that cannot be used; 400 `invalid-json`; 422 `invalid-field`
//! on `action` when it cannot be part of a kind.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use switchyard_sdk::drafts::{self, MAX_TEXT_LEN};
use switchyard_sdk::{Adapter, Draft, Rejection, Request, export_adapter};

type HmacSha256 = Hmac<Sha256>;

const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

struct GitHub;

impl Adapter for GitHub {
    fn handle(request: Request) -> Result<Vec<Draft>, Rejection> {
        let tag = verify(&request)?;

        let Some(event) = request.header("X-GitHub-Event") else {
            return Err(Rejection::bad_request(
                "missing-header",
                "the X-GitHub-Event header is missing",
            ));
        };
        if event == "ping" {
            return Ok(Vec::new());
        }
        let delivery = request.header("X-GitHub-Delivery");
        if delivery.is_some_and(|d| d.is_empty() || d.len() > MAX_TEXT_LEN) {
            return Err(Rejection::bad_request(
                "invalid-header",
                format!("X-GitHub-Delivery must be 1 to {MAX_TEXT_LEN} bytes"),
            ));
        }

        let body = body(&request)?;
        let action = match body.get("action") {
            Some(Value::String(action)) => Some(action.as_str()),
            _ => None,
        };
        let mut kind = format!("github.{event}");
        drafts::check_kind(&kind).map_err(|reason| {
            Rejection::bad_request("invalid-header", format!("X-GitHub-Event {reason}"))
        })?;
        if let Some(action) = action {
            kind = format!("{kind}.{action}");
            drafts::check_kind(&kind).map_err(|reason| {
                Rejection::invalid_field("action", format!("cannot be part of the kind: {reason}"))
            })?;
        }

        let mut draft = Draft::new(kind, &body).attribute("event", event);
        if let Some(action) = action {
            draft = draft.attribute("action", action);
        }
        if let Some(repository) = body
            .pointer("/repository/full_name")
            .and_then(Value::as_str)
        {
            draft = draft.attribute("repository", repository);
        }
        Ok(vec![draft.idempotency_key(replay_key(&tag))])
    }
}

/// The idempotency key of a verified delivery: its signature. The delivery id is not
/// signed, so keying on it would let a captured body be accepted again under a new id;
/// the signature is fixed by the body and the secret, so a replay is a duplicate.
fn replay_key(tag: &[u8]) -> String {
    format!("sha256:{}", hex::encode(tag))
}

/// Checks `X-Hub-Signature-256` against the body; returns the verified tag.
fn verify(request: &Request) -> Result<Vec<u8>, Rejection> {
    let Some(secret) = switchyard_sdk::secret("secret").filter(|s| !s.is_empty()) else {
        switchyard_sdk::error!("secret `secret` is not set, so no delivery can be verified");
        return Err(Rejection::unauthorized(
            "this source has no signing secret configured",
        ));
    };
    let Some(header) = request.header(SIGNATURE_HEADER) else {
        return Err(Rejection::new(
            401,
            "missing-header",
            format!("the {SIGNATURE_HEADER} header is missing"),
        ));
    };
    let tag = header
        .trim()
        .strip_prefix("sha256=")
        .and_then(|hex| hex::decode(hex).ok())
        .ok_or_else(|| {
            Rejection::unauthorized(format!(
                "{SIGNATURE_HEADER} must be sha256= followed by the hex HMAC of the body"
            ))
        })?;
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(&request.body);
    mac.verify_slice(&tag).map_err(|_| {
        Rejection::unauthorized(format!(
            "{SIGNATURE_HEADER} does not match the body and this source's secret"
        ))
    })?;
    Ok(tag)
}

/// The event's JSON, unwrapped from the form GitHub sends when the webhook's content type
/// is `application/x-www-form-urlencoded`.
fn body(request: &Request) -> Result<Value, Rejection> {
    let is_form = request.header("content-type").is_some_and(|ct| {
        ct.trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if !is_form {
        return request.json();
    }
    let payload = form_urlencoded::parse(&request.body)
        .find(|(name, _)| name == "payload")
        .map(|(_, value)| value)
        .ok_or_else(|| Rejection::bad_request("invalid-json", "the form has no payload field"))?;
    serde_json::from_str(&payload).map_err(|e| {
        Rejection::bad_request(
            "invalid-json",
            format!("the form's payload field is not valid JSON: {e}"),
        )
    })
}

export_adapter!(GitHub);
