//! The SDK's JSON notification parser (sdk/src/drafts.rs), which the REST, WebSocket and
//! GraphQL adapters run on every request body. Beyond "no panic", every body it accepts
//! must hold only what the documented limits allow.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_sdk::drafts::{self, MAX_ATTRIBUTES, MAX_BATCH, MAX_TEXT_LEN};

fuzz_target!(|body: &[u8]| {
    let drafts = match drafts::from_json_body(body) {
        Ok(drafts) => drafts,
        Err(rejection) => {
            assert!(
                matches!(rejection.status, 400 | 422),
                "a malformed body is the client's fault, not {}",
                rejection.status
            );
            return;
        }
    };
    assert!((1..=MAX_BATCH).contains(&drafts.len()));
    for draft in &drafts {
        assert_eq!(drafts::check_kind(&draft.kind), Ok(()));
        assert!(draft.attributes.len() <= MAX_ATTRIBUTES);
        for (name, value) in &draft.attributes {
            assert!((1..=MAX_TEXT_LEN).contains(&name.len()));
            assert!(value.len() <= MAX_TEXT_LEN);
        }
        if let Some(key) = &draft.idempotency_key {
            assert!((1..=MAX_TEXT_LEN).contains(&key.len()));
        }
        // The payload is handed on as JSON text: it must be JSON.
        serde_json::from_str::<serde_json::Value>(&draft.payload)
            .expect("the payload is valid JSON");
    }
});
