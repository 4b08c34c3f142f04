//! The `webhook` channel: POSTs each notification as JSON, signed per
//! [Standard Webhooks](https://www.standardwebhooks.com), so receivers can verify it with
//! any Standard Webhooks library and dedupe on `webhook-id`.
//!
//! The body is
//!
//! ```json
//! {"type": "invoice.paid", "timestamp": "2024-02-29T12:00:00.000Z", "id": "ntf_...",
//!  "source": "shop", "attributes": {"region": "eu"}, "data": {...the payload...}}
//! ```
//!
//! where `timestamp` is when Switchyard accepted the notification. The request carries
//! `content-type: application/json`, `webhook-id` (the notification id, the same on every
//! attempt), `webhook-timestamp` (the time of this attempt, in seconds) and
//! `webhook-signature` (`v1,<base64 HMAC-SHA256>` over the exact body bytes sent).
//!
//! Config:
//! - `url` (required): where to POST.
//! - `headers` (optional): a map of extra request headers, such as an API key the receiver
//!   wants. The four headers above cannot be overridden.
//! - `timeout_ms` (optional): a shorter timeout than the host's.
//!
//! Secrets:
//! - `signing_key` (required): `whsec_` followed by the base64 key.
//! - `previous_signing_key` (optional): a rotated-out key still in its grace; it signs
//!   too, so `webhook-signature` carries two space-separated signatures.
//!
//! 2xx is delivered; 408, 429 and 5xx are retried, honouring `Retry-After`; 410 fails and
//! asks the host to disable the channel; anything else, redirects included, fails.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchyard_sdk::webhooks::Secret;
use switchyard_sdk::{Channel, Delivery, HttpRequest, Outcome, export_channel};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    timeout_ms: Option<u32>,
}

/// Headers this channel owns: letting config replace them would break the signature or
/// the receiver's dedupe.
const RESERVED_HEADERS: [&str; 4] = [
    "content-type",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: String,
    id: &'a str,
    source: &'a str,
    attributes: BTreeMap<&'a str, &'a str>,
    data: &'a serde_json::value::RawValue,
}

struct Webhook;

impl Channel for Webhook {
    fn deliver(delivery: Delivery) -> Outcome {
        let config: Config = match switchyard_sdk::config() {
            Ok(config) => config,
            Err(problem) => return Outcome::failed(problem),
        };
        if let Some(name) = config.headers.keys().find(|name| {
            RESERVED_HEADERS
                .iter()
                .any(|r| name.eq_ignore_ascii_case(r))
        }) {
            return Outcome::failed(format!(
                "invalid plugin config: headers.{name} is set by the webhook channel itself"
            ));
        }
        let Some(signing_key) = switchyard_sdk::secret("signing_key") else {
            return Outcome::failed("secret signing_key is not set");
        };
        let secret = match Secret::parse(&signing_key) {
            Ok(secret) => secret,
            Err(problem) => return Outcome::failed(format!("secret signing_key: {problem}")),
        };

        let n = &delivery.notification;
        let data = match n.payload_raw() {
            Ok(data) => data,
            Err(e) => return Outcome::failed(format!("the payload is not valid JSON: {e}")),
        };
        let mut attributes = BTreeMap::new();
        for (name, value) in &n.attributes {
            // The first of repeated names wins, as in `Notification::attribute`.
            attributes.entry(name.as_str()).or_insert(value.as_str());
        }
        let body = Body {
            kind: &n.kind,
            timestamp: rfc3339_utc(n.created_at_ms),
            id: &n.id,
            source: &n.source,
            attributes,
            data,
        };
        let body = match serde_json::to_vec(&body) {
            Ok(body) => body,
            Err(e) => return Outcome::failed(format!("could not encode the body: {e}")),
        };

        // The attempt's time, not the notification's: receivers reject stale timestamps,
        // and a retry hours later must still verify.
        let timestamp = switchyard_sdk::now_ms() / 1000;
        let mut signature = secret.sign(&n.id, timestamp, &body);
        // While a rotated-out key's grace lasts, it signs too: Standard Webhooks receivers
        // accept a delivery when any of the space-separated signatures verifies.
        if let Some(previous) = switchyard_sdk::secret("previous_signing_key") {
            match Secret::parse(&previous) {
                Ok(previous) => {
                    signature.push(' ');
                    signature.push_str(&previous.sign(&n.id, timestamp, &body));
                }
                Err(problem) => {
                    return Outcome::failed(format!("secret previous_signing_key: {problem}"));
                }
            }
        }

        let mut request = HttpRequest::post(&config.url);
        for (name, value) in &config.headers {
            request = request.header(name, value);
        }
        request = request
            .header("content-type", "application/json")
            .header("webhook-id", &n.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);
        if let Some(timeout_ms) = config.timeout_ms {
            request = request.timeout_ms(timeout_ms);
        }
        // Not the URL: its path or query may carry a credential, and plugin logs reach
        // the server's log.
        switchyard_sdk::debug!("posting {} (attempt {})", n.id, delivery.attempt);
        Outcome::from_fetch(request.send())
    }
}

export_channel!(Webhook);

/// Milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds, such as
/// `2024-02-29T12:00:00.000Z`.
fn rfc3339_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let second_of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        ms % 1000
    )
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01, after
/// Howard Hinnant's `civil_from_days`. Shifting the year to start in March puts the leap
/// day last, so a 400-year era splits into whole years without a table.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 719_468 days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::rfc3339_utc;

    #[test]
    fn formats_epoch_milliseconds_as_rfc3339() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_utc(1_709_208_000_007), "2024-02-29T12:00:00.007Z");
        assert_eq!(rfc3339_utc(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_utc(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }
}
