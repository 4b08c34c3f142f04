//! The `webhook-standard` adapter: verifies an inbound webhook signed per
//! [Standard Webhooks](https://www.standardwebhooks.com) and turns it into one draft.
//!
//! A request must carry `webhook-id`, `webhook-timestamp` (Unix seconds, within the
//! tolerance of the host's clock) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` over
//! `{id}.{timestamp}.{body}`; several space-separated signatures are allowed, so a sender
//! can sign with an old and a new key while it rotates). Signatures are compared in
//! constant time, against one MAC per secret (the body is hashed once per secret however
//! many signatures there are); a header with more than five `v1` signatures
//! (`switchyard_sdk::webhooks::MAX_SIGNATURES`) is refused before anything is hashed. The
//! body must be JSON.
//!
//! The draft's kind is the body's `type` when it has one (the Standard Webhooks payload
//! convention, such as `invoice.paid`), else the configured `kind`; its payload is the whole
//! body; its idempotency key is the `webhook-id`, which is also the attribute `webhook_id`,
//! so a sender's redelivery of the same message is a no-op.
//!
//! Config:
//! - `tolerance_secs` (optional, default 300): how far `webhook-timestamp` may be from now,
//!   either way, before the request is refused as stale (a replay guard).
//! - `kind` (optional, default `webhook.received`): the kind when the body has no `type`.
//!
//! Secrets:
//! - `secret` (required): the signing secret, `whsec_` followed by base64. It may hold
//!   several whitespace-separated secrets; a signature from any of them is accepted, so the
//!   receiving side can rotate too.
//!
//! Rejections (all 401 unless noted): `missing-header` naming the header;
//! `invalid-timestamp` when `webhook-timestamp` is not whole seconds; `stale-timestamp`
//! outside the tolerance; `too-many-signatures` over five `v1` signatures;
//! `invalid-signature` when no signature matches, and also when this
//! source has no usable secret or config (the details go to the host's log, not the
//! sender); 400 `invalid-header` for an unusable `webhook-id`; 400 `invalid-json`; 422
//! `invalid-field` on `type` when it is not a valid kind.

use serde::Deserialize;
use serde_json::Value;
use switchyard_sdk::drafts::{self, MAX_TEXT_LEN, type_name};
use switchyard_sdk::webhooks::{self, DEFAULT_TOLERANCE_SECS, Headers, Secret, VerifyError};
use switchyard_sdk::{Adapter, Draft, Rejection, Request, export_adapter};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_tolerance")]
    tolerance_secs: u64,
    #[serde(default = "default_kind")]
    kind: String,
}

fn default_tolerance() -> u64 {
    DEFAULT_TOLERANCE_SECS
}

fn default_kind() -> String {
    "webhook.received".into()
}

struct StandardWebhook;

impl Adapter for StandardWebhook {
    fn handle(request: Request) -> Result<Vec<Draft>, Rejection> {
        let config = config()?;
        let secrets = secrets()?;

        let headers = Headers {
            id: request.header("webhook-id"),
            timestamp: request.header("webhook-timestamp"),
            signature: request.header("webhook-signature"),
        };
        let now_secs = switchyard_sdk::now_ms() / 1000;
        webhooks::verify(
            &secrets,
            &headers,
            &request.body,
            now_secs,
            config.tolerance_secs,
        )
        .map_err(|error| {
            let code = match error {
                VerifyError::MissingHeader(_) => "missing-header",
                VerifyError::BadTimestamp => "invalid-timestamp",
                VerifyError::OutsideTolerance { .. } => "stale-timestamp",
                VerifyError::NoMatchingSignature => "invalid-signature",
                VerifyError::TooManySignatures => "too-many-signatures",
            };
            Rejection::new(401, code, error.to_string())
        })?;
        // `verify` succeeded, so the header is there.
        let id = headers.id.unwrap_or_default();
        if id.is_empty() || id.len() > MAX_TEXT_LEN {
            return Err(Rejection::bad_request(
                "invalid-header",
                format!("webhook-id must be 1 to {MAX_TEXT_LEN} bytes"),
            ));
        }

        let body: Value = request.json()?;
        let kind = match body.get("type") {
            None | Some(Value::Null) => config.kind,
            Some(Value::String(kind)) => {
                drafts::check_kind(kind)
                    .map_err(|reason| Rejection::invalid_field("type", reason))?;
                kind.clone()
            }
            Some(other) => {
                return Err(Rejection::invalid_field(
                    "type",
                    format!("must be a string, not {}", type_name(other)),
                ));
            }
        };
        Ok(vec![
            Draft::new(kind, &body)
                .attribute("webhook_id", id)
                .idempotency_key(id),
        ])
    }
}

/// The sender cannot fix a broken source, and the details are the operator's business, so
/// the sender sees only that its request cannot be verified while the log says why.
fn misconfigured(problem: &str, message: &str) -> Rejection {
    switchyard_sdk::error!("{problem}");
    Rejection::unauthorized(message)
}

fn config() -> Result<Config, Rejection> {
    let config: Config = switchyard_sdk::config().map_err(|problem| {
        misconfigured(&problem, "this source's verification settings are invalid")
    })?;
    drafts::check_kind(&config.kind).map_err(|reason| {
        misconfigured(
            &format!("invalid plugin config: kind {reason}"),
            "this source's verification settings are invalid",
        )
    })?;
    Ok(config)
}

fn secrets() -> Result<Vec<Secret>, Rejection> {
    const NONE: &str = "this source has no signing secret configured";
    let Some(value) = switchyard_sdk::secret("secret") else {
        return Err(misconfigured("secret `secret` is not set", NONE));
    };
    let secrets = value
        .split_whitespace()
        .enumerate()
        // Positions, never values, go to the log.
        .map(|(i, s)| {
            Secret::parse(s).map_err(|e| format!("secret `secret`, entry {}: {e}", i + 1))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|problem| misconfigured(&problem, NONE))?;
    if secrets.is_empty() {
        return Err(misconfigured("secret `secret` is empty", NONE));
    }
    Ok(secrets)
}

export_adapter!(StandardWebhook);
