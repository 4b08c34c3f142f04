//! The `ws-json` adapter: one WebSocket text frame at `/ws` becomes drafts.
//!
//! The frame (the request body, transport `ws-message`) holds the same JSON as the REST
//! API: one notification object, an array of them, or `{"notifications": [...]}`, each
//! `{"kind": ..., "attributes": {...}, "payload": ..., "idempotency_key": ...}`.
//!
//! Rejections: a request that did not arrive as a WebSocket frame is a 400
//! `wrong-transport` (the adapter was configured for the wrong front door); a frame that is
//! not UTF-8 is a 400 `invalid-encoding`; malformed JSON is a 400 `invalid-json` with the
//! line and column; a schema error is a 422 `invalid-field` naming the field path.
//!
//! Config: none. Secrets: none; the host authenticates the WebSocket when it is opened.

use switchyard_sdk::{Adapter, Draft, Rejection, Request, Transport, export_adapter};

struct WsJson;

impl Adapter for WsJson {
    fn handle(request: Request) -> Result<Vec<Draft>, Rejection> {
        if !matches!(request.transport, Transport::WsMessage) {
            return Err(Rejection::bad_request(
                "wrong-transport",
                "the ws-json adapter reads WebSocket text frames only; use rest-json for HTTP",
            ));
        }
        // Text frames are UTF-8 by the WebSocket spec; saying so beats a JSON parse error
        // about an invalid code point somewhere in the middle.
        let text = request.text()?;
        switchyard_sdk::drafts::from_json_body(text.as_bytes())
    }
}

export_adapter!(WsJson);
