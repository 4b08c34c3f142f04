//! The `sms-http` channel: sends each notification as a text message through an SMS
//! provider's form API, in Twilio's shape: a form-encoded POST of `To`, `From` and `Body`.
//! The provider's message id (`sid` or `id` in its JSON answer) goes into the attempt
//! record.
//!
//! `Body` is cut to 1600 characters, the most Twilio accepts for one message, on a
//! character boundary.
//!
//! Config:
//! - `endpoint` (required): the provider's send URL, such as
//!   `https://api.twilio.com/2010-04-01/Accounts/AC.../Messages.json`.
//! - `from` (required): the sending number, such as `+15550100`.
//! - `to` (required): the receiving number.
//! - `template` (optional): the message text, with the `{{placeholders}}` of
//!   `switchyard_sdk::template`; `{{kind}}: {{payload}}` by default.
//! - `account_sid` (optional): the account, the user name of HTTP Basic authentication.
//! - `timeout_ms` (optional): a shorter timeout than the host's.
//!
//! Secrets (one of):
//! - `auth_token`: with `account_sid`, sent as HTTP Basic `account_sid:auth_token`
//!   (Twilio).
//! - `api_token`: sent as `Authorization: Bearer` (most other providers).

use serde::Deserialize;
use switchyard_sdk::{
    Channel, Delivery, HttpRequest, HttpResponse, Outcome, export_channel, template,
};

const DEFAULT_TEMPLATE: &str = "{{kind}}: {{payload}}";

/// Twilio's limit for one message body; longer bodies are refused, not split.
const MAX_BODY_CHARS: usize = 1600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    endpoint: String,
    from: String,
    to: String,
    template: Option<String>,
    account_sid: Option<String>,
    timeout_ms: Option<u32>,
}

struct SmsHttp;

impl Channel for SmsHttp {
    fn deliver(delivery: Delivery) -> Outcome {
        let config: Config = match switchyard_sdk::config() {
            Ok(config) => config,
            Err(problem) => return Outcome::failed(problem),
        };

        let n = &delivery.notification;
        let mut body = template::render(config.template.as_deref().unwrap_or(DEFAULT_TEMPLATE), n);
        truncate_chars(&mut body, MAX_BODY_CHARS);
        let request = HttpRequest::post(&config.endpoint).form(&[
            ("To", config.to.as_str()),
            ("From", config.from.as_str()),
            ("Body", body.as_str()),
        ]);
        let mut request = match (
            switchyard_sdk::secret("auth_token"),
            switchyard_sdk::secret("api_token"),
            &config.account_sid,
        ) {
            (Some(auth_token), _, Some(account_sid)) => {
                request.basic_auth(account_sid, &auth_token)
            }
            (Some(_), None, None) => {
                return Outcome::failed(
                    "secret auth_token needs config account_sid for HTTP Basic authentication",
                );
            }
            (_, Some(api_token), _) => request.bearer(&api_token),
            (None, None, _) => {
                return Outcome::failed(
                    "no credentials: set the secret auth_token (with config account_sid) \
                     or the secret api_token",
                );
            }
        };
        if let Some(timeout_ms) = config.timeout_ms {
            request = request.timeout_ms(timeout_ms);
        }

        switchyard_sdk::debug!("texting {} (attempt {})", n.id, delivery.attempt);
        Outcome::from_fetch_with(request.send(), message_id)
    }
}

export_channel!(SmsHttp);

/// Cuts `text` to at most `max` characters (not bytes), so a multi-byte character is
/// never split.
fn truncate_chars(text: &mut String, max: usize) {
    if let Some((index, _)) = text.char_indices().nth(max) {
        text.truncate(index);
    }
}

/// The provider's id for the accepted message: `sid` (Twilio) or `id`.
fn message_id(response: &HttpResponse) -> Option<String> {
    let body: serde_json::Value = response.json().ok()?;
    ["sid", "id"].iter().find_map(|key| match body.get(key)? {
        serde_json::Value::String(id) => Some(id.clone()),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::truncate_chars;

    #[test]
    fn truncates_on_a_character_boundary() {
        let mut text = "é".repeat(5);
        truncate_chars(&mut text, 3);
        assert_eq!(text, "ééé");
        let mut short = String::from("hi");
        truncate_chars(&mut short, 3);
        assert_eq!(short, "hi");
    }
}
