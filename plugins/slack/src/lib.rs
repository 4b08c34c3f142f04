//! The `slack` channel: posts each notification to a Slack incoming webhook (or anything
//! that speaks the same protocol, such as Mattermost or Rocket.Chat) as a message built
//! from a template.
//!
//! The body is `{"text": "<rendered template>"}`, plus `username`, `icon_emoji` and
//! `channel` when they are configured. Slack answers `200 ok`; its errors (`400
//! invalid_payload`, `404 channel_not_found`, `410 channel_is_archived`, `429` with
//! `Retry-After`) map to outcomes like every HTTP channel's.
//!
//! Config:
//! - `url` (optional): the webhook URL, used only when the `webhook_url` secret is not
//!   set, for self-hosted chat servers whose URLs carry no credential.
//! - `template` (optional): the message text, with the `{{placeholders}}` of
//!   `switchyard_sdk::template`; by default `*{{kind}}* from {{source}}: {{payload}}`.
//! - `username`, `icon_emoji`, `channel` (optional): passed to Slack as they are.
//! - `timeout_ms` (optional): a shorter timeout than the host's.
//!
//! Secrets:
//! - `webhook_url`: the webhook URL. Slack's URLs are credentials (anyone who has one can
//!   post), so they belong here rather than in the routes file.

use serde::{Deserialize, Serialize};
use switchyard_sdk::{Channel, Delivery, HttpRequest, Outcome, export_channel, template};

const DEFAULT_TEMPLATE: &str = "*{{kind}}* from {{source}}: {{payload}}";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    url: Option<String>,
    template: Option<String>,
    username: Option<String>,
    icon_emoji: Option<String>,
    channel: Option<String>,
    timeout_ms: Option<u32>,
}

#[derive(Serialize)]
struct Message<'a> {
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icon_emoji: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
}

struct Slack;

impl Channel for Slack {
    fn deliver(delivery: Delivery) -> Outcome {
        let config: Config = match switchyard_sdk::config() {
            Ok(config) => config,
            Err(problem) => return Outcome::failed(problem),
        };
        let Some(url) = switchyard_sdk::secret("webhook_url").or(config.url.clone()) else {
            return Outcome::failed("no webhook URL: set the secret webhook_url (or config url)");
        };

        let n = &delivery.notification;
        let message = Message {
            text: template::render(config.template.as_deref().unwrap_or(DEFAULT_TEMPLATE), n),
            username: config.username.as_deref(),
            icon_emoji: config.icon_emoji.as_deref(),
            channel: config.channel.as_deref(),
        };
        let mut request = HttpRequest::post(&url).json(&message);
        if let Some(timeout_ms) = config.timeout_ms {
            request = request.timeout_ms(timeout_ms);
        }
        // The URL is a secret: never log it.
        switchyard_sdk::debug!("posting {} (attempt {})", n.id, delivery.attempt);
        Outcome::from_fetch(request.send())
    }
}

export_channel!(Slack);
