//! Standard Webhooks (<https://www.standardwebhooks.com>): sign outbound messages and
//! verify inbound ones.
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is
//! `v1,<base64 HMAC-SHA256>` keyed by the secret, whose `whsec_` prefix is dropped and
//! whose rest is base64. A header may carry several space-separated signatures, so a
//! sender can sign with an old and a new key while rotating.
//!
//! Verifying costs one HMAC over the body per secret, however many signatures the header
//! carries: each secret's MAC is computed once and every candidate is compared against
//! it. A header with more than [`MAX_SIGNATURES`] `v1` signatures is refused unread, so a
//! sender cannot make the receiver do work in proportion to a header it made up.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The default tolerance between `webhook-timestamp` and now: five minutes either way.
pub const DEFAULT_TOLERANCE_SECS: u64 = 5 * 60;

/// The most `v1` signatures one `webhook-signature` header may carry. Rotation needs
/// two; five leaves room without letting a header of thousands make work.
pub const MAX_SIGNATURES: usize = 5;

/// A signing secret, decoded.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Parses `whsec_<base64>` (the prefix is optional).
    pub fn parse(secret: &str) -> Result<Self, String> {
        let encoded = secret.trim();
        let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
        let key = BASE64
            .decode(encoded)
            // The decoder's error names the offending byte and its position; keep that,
            // a piece of the secret, out of logs.
            .map_err(|_| "the signing secret is not whsec_ followed by base64".to_string())?;
        if key.is_empty() {
            return Err("the signing secret is empty".into());
        }
        Ok(Secret(key))
    }

    fn mac(&self, id: &str, timestamp: u64, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value for one message: `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", BASE64.encode(tag))
    }
}

/// Why a message did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// A required header is missing.
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not a number of seconds.
    BadTimestamp,
    /// `webhook-timestamp` is further than the tolerance from now.
    OutsideTolerance {
        /// How far the timestamp is from now, in seconds.
        skew_secs: u64,
    },
    /// No `v1` signature in the header matches any secret.
    NoMatchingSignature,
    /// The header carries more than [`MAX_SIGNATURES`] `v1` signatures.
    TooManySignatures,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::MissingHeader(name) => write!(f, "the {name} header is missing"),
            VerifyError::BadTimestamp => {
                f.write_str("webhook-timestamp is not a whole number of seconds")
            }
            VerifyError::OutsideTolerance { skew_secs } => write!(
                f,
                "webhook-timestamp is {skew_secs}s away from now, outside the tolerance"
            ),
            VerifyError::NoMatchingSignature => {
                f.write_str("no webhook-signature matches the signing secret")
            }
            VerifyError::TooManySignatures => write!(
                f,
                "webhook-signature carries more than {MAX_SIGNATURES} v1 signatures"
            ),
        }
    }
}

/// The three Standard Webhooks headers of one message.
pub struct Headers<'a> {
    /// `webhook-id`.
    pub id: Option<&'a str>,
    /// `webhook-timestamp`.
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`.
    pub signature: Option<&'a str>,
}

/// Verifies a message against one or more secrets, with `tolerance_secs` either side of
/// `now_secs`. Every candidate is compared in constant time.
///
/// The body is hashed once per secret: the keyed state after the body is kept, and each
/// candidate only finishes a copy of it (two SHA-256 blocks), so the cost does not grow
/// with the number of candidates times the body size.
pub fn verify(
    secrets: &[Secret],
    headers: &Headers<'_>,
    body: &[u8],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let id = headers.id.ok_or(VerifyError::MissingHeader("webhook-id"))?;
    let timestamp = headers
        .timestamp
        .ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
    let signatures = headers
        .signature
        .ok_or(VerifyError::MissingHeader("webhook-signature"))?;
    let timestamp: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let skew_secs = now_secs.abs_diff(timestamp);
    if skew_secs > tolerance_secs {
        return Err(VerifyError::OutsideTolerance { skew_secs });
    }

    let mut v1 = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"));
    let candidates: Vec<&str> = v1.by_ref().take(MAX_SIGNATURES).collect();
    if v1.next().is_some() {
        return Err(VerifyError::TooManySignatures);
    }
    // A tag that is not base64 cannot match; decoding it is not worth an error of its own.
    let candidates: Vec<Vec<u8>> = candidates
        .into_iter()
        .filter_map(|b64| BASE64.decode(b64).ok())
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::NoMatchingSignature);
    }
    let matched = secrets.iter().any(|secret| {
        let keyed_body = secret.mac(id, timestamp, body);
        candidates
            .iter()
            .any(|tag| keyed_body.clone().verify_slice(tag).is_ok())
    });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector published with the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: u64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(signature: &str) -> Headers<'_> {
        Headers {
            id: Some(ID),
            timestamp: Some("1614265330"),
            signature: Some(signature),
        }
    }

    #[test]
    fn signs_the_specification_vector() {
        assert_eq!(
            Secret::parse(SECRET).unwrap().sign(ID, TIMESTAMP, BODY),
            SIGNATURE
        );
    }

    #[test]
    fn verifies_with_tolerance_and_several_signatures() {
        let secret = Secret::parse(SECRET).unwrap();
        let other = Secret::parse("whsec_c2VjcmV0").unwrap();
        let both = format!("v1,bm9wZQ== {SIGNATURE}");
        assert_eq!(
            verify(
                std::slice::from_ref(&secret),
                &headers(&both),
                BODY,
                TIMESTAMP + 299,
                300
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &[other.clone(), secret.clone()],
                &headers(SIGNATURE),
                BODY,
                TIMESTAMP,
                300
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                std::slice::from_ref(&secret),
                &headers(SIGNATURE),
                BODY,
                TIMESTAMP + 301,
                300
            ),
            Err(VerifyError::OutsideTolerance { skew_secs: 301 })
        );
        assert_eq!(
            verify(&[other], &headers(SIGNATURE), BODY, TIMESTAMP, 300),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verify(
                &[secret],
                &headers(SIGNATURE),
                b"{\"test\": 1}",
                TIMESTAMP,
                300
            ),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn at_most_five_signatures_are_looked_at() {
        let secret = Secret::parse(SECRET).unwrap();
        let decoy = "v1,bm9wZQ==";
        // Four decoys and the real one: five candidates, accepted whatever the order.
        let five = format!("{decoy} {decoy} {SIGNATURE} {decoy} {decoy}");
        assert_eq!(
            verify(
                std::slice::from_ref(&secret),
                &headers(&five),
                BODY,
                TIMESTAMP,
                300
            ),
            Ok(())
        );
        // A sixth v1 signature refuses the header, even with the real one first.
        let six = format!("{SIGNATURE} {decoy} {decoy} {decoy} {decoy} {decoy}");
        assert_eq!(
            verify(
                std::slice::from_ref(&secret),
                &headers(&six),
                BODY,
                TIMESTAMP,
                300
            ),
            Err(VerifyError::TooManySignatures)
        );
        // Entries of other versions do not count as candidates and are skipped.
        let other_versions = format!("v1a,x v2,y v1a,z v2,w v1a,u v2,t {SIGNATURE}");
        assert_eq!(
            verify(
                std::slice::from_ref(&secret),
                &headers(&other_versions),
                BODY,
                TIMESTAMP,
                300
            ),
            Ok(())
        );
    }

    /// 40,000 made-up signatures over a 1 MiB body: refused at once, where hashing the
    /// body once per candidate would take minutes.
    #[test]
    fn a_flood_of_signatures_costs_no_hashing() {
        let secret = Secret::parse(SECRET).unwrap();
        let body = vec![b'x'; 1024 * 1024];
        let flood = vec!["v1,AAAA"; 40_000].join(" ");
        let started = std::time::Instant::now();
        assert_eq!(
            verify(
                std::slice::from_ref(&secret),
                &headers(&flood),
                &body,
                TIMESTAMP,
                300
            ),
            Err(VerifyError::TooManySignatures)
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    /// The body is hashed once per secret, not once per candidate: five candidates and two
    /// secrets over 8 MiB cost about two passes, not ten.
    #[test]
    fn each_secret_hashes_the_body_once() {
        let secrets = [
            Secret::parse("whsec_c2VjcmV0").unwrap(),
            Secret::parse(SECRET).unwrap(),
        ];
        let body = vec![b'x'; 8 * 1024 * 1024];
        // The quickest of three runs, so a busy machine does not decide the outcome.
        let quickest = |run: &dyn Fn()| {
            (0..3)
                .map(|_| {
                    let started = std::time::Instant::now();
                    run();
                    started.elapsed()
                })
                .min()
                .unwrap()
        };
        let one_pass = quickest(&|| {
            std::hint::black_box(secrets[0].sign(ID, TIMESTAMP, &body));
        });
        let five = ["v1,bm9wZQ=="; 5].join(" ");
        let verifying = quickest(&|| {
            assert_eq!(
                verify(&secrets, &headers(&five), &body, TIMESTAMP, 300),
                Err(VerifyError::NoMatchingSignature)
            );
        });
        // Two secrets: two passes. Ten passes would be the old per-candidate cost; allow
        // generous noise but stay well below that.
        assert!(
            verifying < one_pass * 6,
            "verifying took {verifying:?}, one pass {one_pass:?}"
        );
    }
}
