//! Standard Webhooks verification (sdk/src/webhooks.rs) with attacker-chosen headers and
//! body, and arbitrary secrets. Besides "no panic": whatever was signed with a secret
//! verifies with it, with or without junk signatures around it, and not with a body that
//! was changed.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use switchyard_sdk::webhooks::{self, Headers, Secret, VerifyError};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    secrets: Vec<&'a str>,
    id: Option<&'a str>,
    timestamp: Option<&'a str>,
    signature: Option<&'a str>,
    body: &'a [u8],
    now_secs: u64,
    tolerance_secs: u64,
}

fuzz_target!(|input: Input<'_>| {
    let secrets: Vec<Secret> = input
        .secrets
        .iter()
        .filter_map(|s| Secret::parse(s).ok())
        .collect();

    // Whatever the headers say.
    let headers = Headers {
        id: input.id,
        timestamp: input.timestamp,
        signature: input.signature,
    };
    let _ = webhooks::verify(
        &secrets,
        &headers,
        input.body,
        input.now_secs,
        input.tolerance_secs,
    );

    // An honest sender, with the fuzzer's signature text as a second (old-key) signature.
    // When the fuzzer's secrets are all invalid, the specification's example secret signs,
    // so this half runs on every input rather than only once base64 has been guessed.
    let secret = secrets.first().cloned().unwrap_or_else(|| {
        Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a valid secret")
    });
    let id = input.id.unwrap_or("msg_p5jXN8AQM9LWM0D4loKWxJek");
    let timestamp = input.now_secs;
    let signed = secret.sign(id, timestamp, input.body);
    let junk = input
        .signature
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("");
    let signature = format!("{junk} {signed}");
    let timestamp_text = timestamp.to_string();
    let honest = Headers {
        id: Some(id),
        timestamp: Some(&timestamp_text),
        signature: Some(&signature),
    };
    assert_eq!(
        webhooks::verify(
            std::slice::from_ref(&secret),
            &honest,
            input.body,
            timestamp,
            0
        ),
        Ok(())
    );
    if !secrets.is_empty() {
        assert_eq!(
            webhooks::verify(&secrets, &honest, input.body, timestamp, 0),
            Ok(())
        );
    }
    let mut changed = input.body.to_vec();
    changed.push(b'!');
    assert_eq!(
        webhooks::verify(
            std::slice::from_ref(&secret),
            &honest,
            &changed,
            timestamp,
            0
        ),
        Err(VerifyError::NoMatchingSignature)
    );
});
