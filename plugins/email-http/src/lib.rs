//! The `email-http` channel: sends each notification as an e-mail through a mail
//! provider's JSON API, in the shape Resend and its peers accept:
//!
//! ```json
//! {"from": "alerts@example.com", "to": ["ops@example.com"], "subject": "...",
//!  "text": "...", "html": "..."}
//! ```
//!
//! POSTed with `Authorization: Bearer <api_token>`. The provider's message id (`id` or
//! `MessageID` in its JSON answer) goes into the attempt record.
//!
//! Config:
//! - `endpoint` (required): the provider's send URL, such as `https://api.resend.com/emails`.
//! - `from` (required): the sender address, such as `Switchyard <alerts@example.com>`.
//! - `to` (required): one address, or a list of them.
//! - `subject` (optional): a template, `{{kind}}` by default. Line breaks become spaces.
//! - `text` (optional): a template for the plain-text body; by default a summary with the
//!   kind, source, id, attributes and the pretty-printed payload.
//! - `html` (optional): a template for an HTML body; none is sent without it. Values are
//!   inserted as they are, not HTML-escaped.
//! - `timeout_ms` (optional): a shorter timeout than the host's.
//!
//! Templates use the `{{placeholders}}` of `switchyard_sdk::template`.
//!
//! Secrets:
//! - `api_token` (required): the provider's API key.

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use switchyard_sdk::{
    Channel, Delivery, HttpRequest, HttpResponse, Notification, Outcome, export_channel, template,
};

const DEFAULT_SUBJECT: &str = "{{kind}}";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    endpoint: String,
    from: String,
    #[serde(deserialize_with = "one_or_many")]
    to: Vec<String>,
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
    timeout_ms: Option<u32>,
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    // serde's own message for a failed untagged enum names no field and no shape.
    match OneOrMany::deserialize(deserializer) {
        Ok(OneOrMany::One(address)) => Ok(vec![address]),
        Ok(OneOrMany::Many(addresses)) => Ok(addresses),
        Err(_) => Err(D::Error::custom(
            "`to` must be an e-mail address or a list of them",
        )),
    }
}

#[derive(Serialize)]
struct Email<'a> {
    from: &'a str,
    to: &'a [String],
    subject: String,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    html: Option<String>,
}

struct EmailHttp;

impl Channel for EmailHttp {
    fn deliver(delivery: Delivery) -> Outcome {
        let config: Config = match switchyard_sdk::config() {
            Ok(config) => config,
            Err(problem) => return Outcome::failed(problem),
        };
        if config.to.is_empty() {
            return Outcome::failed("invalid plugin config: `to` lists no recipients");
        }
        let Some(token) = switchyard_sdk::secret("api_token") else {
            return Outcome::failed("secret api_token is not set");
        };

        let n = &delivery.notification;
        let subject = template::render(config.subject.as_deref().unwrap_or(DEFAULT_SUBJECT), n);
        let email = Email {
            from: &config.from,
            to: &config.to,
            // A line break in a subject is a header injection to some providers and an
            // error to the rest.
            subject: subject.replace(['\r', '\n'], " "),
            text: match &config.text {
                Some(text) => template::render(text, n),
                None => summary(n),
            },
            html: config.html.as_deref().map(|html| template::render(html, n)),
        };
        let mut request = HttpRequest::post(&config.endpoint)
            .bearer(&token)
            .json(&email);
        if let Some(timeout_ms) = config.timeout_ms {
            request = request.timeout_ms(timeout_ms);
        }
        switchyard_sdk::debug!(
            "sending {} to {} recipient(s) (attempt {})",
            n.id,
            config.to.len(),
            delivery.attempt
        );
        Outcome::from_fetch_with(request.send(), message_id)
    }
}

export_channel!(EmailHttp);

/// The plain-text body when no `text` template is configured: everything a reader needs
/// to act on the notification without opening Switchyard.
fn summary(n: &Notification) -> String {
    let mut text = format!("{} from {}\n\nNotification: {}\n", n.kind, n.source, n.id);
    if !n.attributes.is_empty() {
        text.push_str("Attributes:\n");
        for (name, value) in &n.attributes {
            text.push_str(&format!("  {name}: {value}\n"));
        }
    }
    let payload = n
        .payload_json()
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| n.payload.clone());
    text.push_str("\nPayload:\n");
    text.push_str(&payload);
    text.push('\n');
    text
}

/// The provider's id for the accepted message: `id` (Resend, SendGrid-style APIs) or
/// `MessageID` (Postmark).
fn message_id(response: &HttpResponse) -> Option<String> {
    let body: serde_json::Value = response.json().ok()?;
    ["id", "MessageID", "message_id"]
        .iter()
        .find_map(|key| match body.get(key)? {
            serde_json::Value::String(id) => Some(id.clone()),
            serde_json::Value::Number(id) => Some(id.to_string()),
            _ => None,
        })
}
