//! The `rest-json` adapter: the REST API's body, a notification in JSON, becomes drafts.
//!
//! `POST /api/v1/notifications` takes one notification object, and
//! `POST /api/v1/notifications/batch` takes `{"notifications": [...]}`; the host passes the
//! endpoint as the request path. Any other path takes any of the three shapes (one object,
//! an array, or the wrapped array).
//!
//! ```json
//! {"kind": "invoice.paid", "attributes": {"region": "eu"}, "payload": {"invoice": 42},
//!  "idempotency_key": "invoice-42-paid"}
//! ```
//!
//! `kind` is required; `attributes`, `payload` and `idempotency_key` are optional (see
//! `switchyard_sdk::drafts` for the limits). Malformed JSON is a 400 `invalid-json` that
//! says the line and column; a body that breaks the schema is a 422 `invalid-field` whose
//! `field` is the path, such as `notifications[1].kind`, and whose message gives the reason.
//!
//! Config: none. Secrets: none; callers of the REST API are authenticated by the host
//! before the request reaches this adapter.

use switchyard_sdk::{Adapter, Draft, Rejection, Request, export_adapter};

struct RestJson;

impl Adapter for RestJson {
    fn handle(request: Request) -> Result<Vec<Draft>, Rejection> {
        use switchyard_sdk::drafts;
        match request.path.as_str() {
            "/api/v1/notifications" => drafts::from_json_object(&request.body),
            "/api/v1/notifications/batch" => drafts::from_json_batch(&request.body),
            _ => drafts::from_json_body(&request.body),
        }
    }
}

export_adapter!(RestJson);
