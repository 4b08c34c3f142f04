//! Builders for [`Outcome`], and the one place that maps an HTTP answer to an outcome so
//! every HTTP channel treats destinations the same way.

use crate::{Failure, FetchError, HttpResponse, Outcome, Receipt, RetryHint};

impl Outcome {
    /// The destination took the notification.
    pub fn delivered() -> Self {
        Outcome::Delivered(Receipt {
            status: None,
            detail: None,
        })
    }

    /// The destination took the notification; `detail` goes into the attempt record.
    pub fn delivered_with(status: Option<u16>, detail: Option<String>) -> Self {
        Outcome::Delivered(Receipt { status, detail })
    }

    /// A transient failure: try again on the channel's retry schedule.
    pub fn retry(reason: impl Into<String>) -> Self {
        Outcome::Retry(RetryHint {
            status: None,
            after_ms: None,
            reason: reason.into(),
        })
    }

    /// A transient failure: try again no sooner than `after_ms` from now.
    pub fn retry_after(after_ms: u64, reason: impl Into<String>) -> Self {
        Outcome::Retry(RetryHint {
            status: None,
            after_ms: Some(after_ms),
            reason: reason.into(),
        })
    }

    /// A permanent failure: stop retrying and dead-letter the delivery.
    pub fn failed(reason: impl Into<String>) -> Self {
        Outcome::Failed(Failure {
            status: None,
            reason: reason.into(),
            disable: false,
        })
    }

    /// The destination is gone for good (HTTP 410): fail, and ask the host to disable it.
    pub fn gone(reason: impl Into<String>) -> Self {
        Outcome::Failed(Failure {
            status: Some(410),
            reason: reason.into(),
            disable: true,
        })
    }

    /// Classifies an HTTP answer the way Switchyard's HTTP channels agree on:
    /// 2xx delivered; 408, 429 and 5xx retry, honouring `Retry-After`; 410 failed with a
    /// disable hint; any other status (3xx included: redirects are never followed) failed.
    pub fn from_response(response: &HttpResponse) -> Self {
        let status = response.status;
        let summary = format!("HTTP {status}{}", body_excerpt(&response.body));
        match status {
            200..=299 => Outcome::delivered_with(Some(status), None),
            410 => Outcome::Failed(Failure {
                status: Some(status),
                reason: format!("{summary}: the destination is gone"),
                disable: true,
            }),
            408 | 429 | 500..=599 => Outcome::Retry(RetryHint {
                status: Some(status),
                after_ms: response.retry_after_ms(),
                reason: summary,
            }),
            300..=399 => Outcome::Failed(Failure {
                status: Some(status),
                reason: format!(
                    "{summary}: redirect to {} not followed",
                    response
                        .header("location")
                        .map_or("nowhere".into(), origin_of)
                ),
                disable: false,
            }),
            _ => Outcome::Failed(Failure {
                status: Some(status),
                reason: summary,
                disable: false,
            }),
        }
    }

    /// Classifies the result of [`crate::HttpRequest::send`]: an answer as in
    /// [`Outcome::from_response`]; a timeout or a connection error is worth a retry; a
    /// denied or malformed request never gets better, so it fails.
    pub fn from_fetch(result: Result<HttpResponse, FetchError>) -> Self {
        match result {
            Ok(response) => Outcome::from_response(&response),
            Err(error @ (FetchError::Timeout | FetchError::Connection(_))) => {
                Outcome::retry(error.describe())
            }
            Err(error) => Outcome::failed(error.describe()),
        }
    }
}

impl Outcome {
    /// [`Outcome::from_fetch`], with `detail` picking what goes into a delivered receipt,
    /// such as the provider's message id.
    pub fn from_fetch_with(
        result: Result<HttpResponse, FetchError>,
        detail: impl FnOnce(&HttpResponse) -> Option<String>,
    ) -> Self {
        match result {
            Ok(response) => match Outcome::from_response(&response) {
                Outcome::Delivered(receipt) => Outcome::Delivered(Receipt {
                    detail: detail(&response),
                    ..receipt
                }),
                other => other,
            },
            Err(error) => Outcome::from_fetch(Err(error)),
        }
    }
}

/// Where a redirect points, by scheme, host and port only: the reason lands in the attempt
/// log and the server log, and a `Location` can repeat the credential in the URL asked for
/// (a webhook URL redirected from http to https) or carry a new one.
fn origin_of(location: &str) -> String {
    match location.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        _ => "a path on the same host".into(),
    }
}

/// The start of a response body, for the attempt record.
fn body_excerpt(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(" ({text})")
    }
}

#[cfg(test)]
mod tests {
    use super::origin_of;

    #[test]
    fn a_redirect_is_named_by_its_origin_only() {
        assert_eq!(
            origin_of("https://user:pw@hooks.example.com:8443/services/T0/B0/XXXX?t=1#f"),
            "https://hooks.example.com:8443"
        );
        assert_eq!(origin_of("http://example.com"), "http://example.com");
        assert_eq!(origin_of("/login?next=/x"), "a path on the same host");
        assert_eq!(origin_of("secret-token"), "a path on the same host");
    }
}
