//! The JSON shape of a notification, shared by the REST, WebSocket and GraphQL adapters,
//! with errors that name the field and the reason.
//!
//! One notification is an object:
//!
//! ```json
//! {
//!   "kind": "invoice.paid",
//!   "attributes": { "severity": "critical", "region": "eu" },
//!   "payload": { "invoice": 42 },
//!   "idempotency_key": "invoice-42-paid"
//! }
//! ```
//!
//! `kind` is required; the rest are optional. A batch is a JSON array of such objects, or
//! `{"notifications": [...]}`.

use crate::{Draft, Rejection};
use serde_json::{Map, Value};

/// The longest kind, attribute name or value, and idempotency key accepted, in characters
/// (Unicode scalar values, as JSON Schema's `maxLength` counts them). A kind is ASCII, so
/// its characters are its bytes.
pub const MAX_TEXT_LEN: usize = 256;
/// The most attributes one notification may carry.
pub const MAX_ATTRIBUTES: usize = 64;
/// The most notifications one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// Parses a request body: one notification, an array of them, or `{"notifications": [...]}`.
pub fn from_json_body(body: &[u8]) -> Result<Vec<Draft>, Rejection> {
    from_json_value(&parse(body)?)
}

/// Parses a request body that must be exactly one notification object, as the REST API's
/// `POST /api/v1/notifications` takes.
pub fn from_json_object(body: &[u8]) -> Result<Vec<Draft>, Rejection> {
    match parse(body)? {
        Value::Object(object) => Ok(vec![one(&object, "")?]),
        other => Err(Rejection::invalid_field(
            "$",
            format!(
                "must be one notification object, not {}; send several to /api/v1/notifications/batch",
                type_name(&other)
            ),
        )),
    }
}

/// Parses a request body that must be `{"notifications": [...]}`, as the REST API's
/// `POST /api/v1/notifications/batch` takes.
pub fn from_json_batch(body: &[u8]) -> Result<Vec<Draft>, Rejection> {
    match parse(body)? {
        Value::Object(object) => {
            if let Some(unknown) = object.keys().find(|k| *k != "notifications") {
                return Err(Rejection::invalid_field(
                    unknown.as_str(),
                    "unknown field; a batch object has only `notifications`",
                ));
            }
            match object.get("notifications") {
                Some(Value::Array(items)) => list(items, "notifications"),
                None => Err(Rejection::invalid_field("notifications", "is required")),
                Some(other) => Err(Rejection::invalid_field(
                    "notifications",
                    format!("must be an array, not {}", type_name(other)),
                )),
            }
        }
        other => Err(Rejection::invalid_field(
            "$",
            format!(
                "must be an object {{\"notifications\": [...]}}, not {}",
                type_name(&other)
            ),
        )),
    }
}

fn parse(body: &[u8]) -> Result<Value, Rejection> {
    serde_json::from_slice(body).map_err(|e| {
        Rejection::bad_request("invalid-json", format!("the body is not valid JSON: {e}"))
    })
}

/// Parses an already-decoded JSON value, as [`from_json_body`] does.
pub fn from_json_value(value: &Value) -> Result<Vec<Draft>, Rejection> {
    match value {
        Value::Array(items) => list(items, ""),
        Value::Object(object) if object.contains_key("notifications") => {
            if let Some(unknown) = object.keys().find(|k| *k != "notifications") {
                return Err(Rejection::invalid_field(
                    unknown.as_str(),
                    "unknown field; a batch object has only `notifications`",
                ));
            }
            match &object["notifications"] {
                Value::Array(items) => list(items, "notifications"),
                other => Err(Rejection::invalid_field(
                    "notifications",
                    format!("must be an array, not {}", type_name(other)),
                )),
            }
        }
        Value::Object(object) => Ok(vec![one(object, "")?]),
        other => Err(Rejection::invalid_field(
            "$",
            format!(
                "must be a notification object or an array of them, not {}",
                type_name(other)
            ),
        )),
    }
}

/// Parses a list of notification objects (1 to [`MAX_BATCH`]); `path` names the list in
/// errors, so the third item's kind is `path[2].kind`.
pub fn list(items: &[Value], path: &str) -> Result<Vec<Draft>, Rejection> {
    let at = if path.is_empty() { "$" } else { path };
    if items.is_empty() {
        return Err(Rejection::invalid_field(
            at,
            "must hold at least one notification",
        ));
    }
    if items.len() > MAX_BATCH {
        return Err(Rejection::invalid_field(
            at,
            format!(
                "holds {} notifications; at most {MAX_BATCH} per batch",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{path}[{i}]");
            match item {
                Value::Object(object) => one(object, &path),
                other => Err(Rejection::invalid_field(
                    path,
                    format!("must be an object, not {}", type_name(other)),
                )),
            }
        })
        .collect()
}

/// Parses one notification object; `path` prefixes field names in errors.
pub fn one(object: &Map<String, Value>, path: &str) -> Result<Draft, Rejection> {
    let field = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };

    if let Some(unknown) = object.keys().find(|k| {
        !matches!(
            k.as_str(),
            "kind" | "attributes" | "payload" | "idempotency_key"
        )
    }) {
        return Err(Rejection::invalid_field(
            field(unknown),
            "unknown field; expected kind, attributes, payload or idempotency_key",
        ));
    }

    let kind = match object.get("kind") {
        None | Some(Value::Null) => {
            return Err(Rejection::invalid_field(field("kind"), "is required"));
        }
        Some(Value::String(kind)) => kind,
        Some(other) => {
            return Err(Rejection::invalid_field(
                field("kind"),
                format!("must be a string, not {}", type_name(other)),
            ));
        }
    };
    check_kind(kind).map_err(|reason| Rejection::invalid_field(field("kind"), reason))?;

    let mut attributes = Vec::new();
    match object.get("attributes") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            if map.len() > MAX_ATTRIBUTES {
                return Err(Rejection::invalid_field(
                    field("attributes"),
                    format!("has {} entries; at most {MAX_ATTRIBUTES}", map.len()),
                ));
            }
            for (name, value) in map {
                let at = format!("{}.{name}", field("attributes"));
                if name.is_empty() || chars_over(name, MAX_TEXT_LEN) {
                    return Err(Rejection::invalid_field(
                        at,
                        format!("names must be 1 to {MAX_TEXT_LEN} characters"),
                    ));
                }
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(Rejection::invalid_field(
                            at,
                            format!(
                                "must be a string, number or boolean, not {}",
                                type_name(other)
                            ),
                        ));
                    }
                };
                if chars_over(&text, MAX_TEXT_LEN) {
                    return Err(Rejection::invalid_field(
                        at,
                        format!("is longer than {MAX_TEXT_LEN} characters"),
                    ));
                }
                attributes.push((name.clone(), text));
            }
        }
        Some(other) => {
            return Err(Rejection::invalid_field(
                field("attributes"),
                format!("must be an object, not {}", type_name(other)),
            ));
        }
    }

    let idempotency_key = match object.get("idempotency_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) if !key.is_empty() && !chars_over(key, MAX_TEXT_LEN) => {
            Some(key.clone())
        }
        Some(Value::String(_)) => {
            return Err(Rejection::invalid_field(
                field("idempotency_key"),
                format!("must be 1 to {MAX_TEXT_LEN} characters"),
            ));
        }
        Some(other) => {
            return Err(Rejection::invalid_field(
                field("idempotency_key"),
                format!("must be a string, not {}", type_name(other)),
            ));
        }
    };

    Ok(Draft {
        kind: kind.clone(),
        attributes,
        payload: object.get("payload").unwrap_or(&Value::Null).to_string(),
        idempotency_key,
    })
}

/// Whether `text` holds more than `max` characters; cheap, as it never counts past `max`.
fn chars_over(text: &str, max: usize) -> bool {
    text.len() > max && text.chars().nth(max).is_some()
}

/// A kind is dotted words: letters, digits, `.`, `_`, `-` and `:`; `*` is reserved for
/// route globs.
pub fn check_kind(kind: &str) -> Result<(), String> {
    if kind.is_empty() {
        return Err("must not be empty".into());
    }
    if kind.len() > MAX_TEXT_LEN {
        return Err(format!("is longer than {MAX_TEXT_LEN} bytes"));
    }
    match kind
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
    {
        Some(c) => Err(format!(
            "has {c:?}; use letters, digits and . _ - : only, such as invoice.paid"
        )),
        None => Ok(()),
    }
}

/// The JSON type name of a value, for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(body: &str) -> Rejection {
        from_json_body(body.as_bytes()).expect_err("should be rejected")
    }

    #[test]
    fn one_notification_becomes_one_draft() {
        let drafts = from_json_body(
            br#"{"kind":"invoice.paid","attributes":{"severity":"critical","n":3,"ok":true},"payload":{"a":1},"idempotency_key":"k1"}"#,
        )
        .unwrap();
        assert_eq!(drafts.len(), 1);
        let d = &drafts[0];
        assert_eq!(d.kind, "invoice.paid");
        assert_eq!(d.payload, r#"{"a":1}"#);
        assert_eq!(d.idempotency_key.as_deref(), Some("k1"));
        assert!(d.attributes.contains(&("n".into(), "3".into())));
        assert!(d.attributes.contains(&("ok".into(), "true".into())));
    }

    #[test]
    fn batches_come_as_arrays_or_wrapped() {
        assert_eq!(
            from_json_body(br#"[{"kind":"a"},{"kind":"b"}]"#)
                .unwrap()
                .len(),
            2
        );
        let drafts = from_json_body(br#"{"notifications":[{"kind":"a"}]}"#).unwrap();
        assert_eq!(drafts[0].payload, "null");
    }

    #[test]
    fn errors_name_the_field_and_the_reason() {
        let r = rejection(r#"{"notifications":[{"kind":"a"},{"kind":7}]}"#);
        assert_eq!(
            (r.status, r.field.as_deref()),
            (422, Some("notifications[1].kind"))
        );
        assert!(
            r.message.contains("must be a string, not a number"),
            "{}",
            r.message
        );

        let r = rejection(r#"{"payload":{}}"#);
        assert_eq!(r.field.as_deref(), Some("kind"));
        assert!(r.message.contains("is required"));

        let r = rejection(r#"{"kind":"a","attributes":{"x":{"deep":1}}}"#);
        assert_eq!(r.field.as_deref(), Some("attributes.x"));

        let r = rejection(r#"{"kind":"a","colour":"red"}"#);
        assert_eq!(r.field.as_deref(), Some("colour"));

        let r = rejection(r#"{"kind":"a b"}"#);
        assert!(r.message.contains("' '"), "{}", r.message);
    }

    #[test]
    fn malformed_json_is_a_400_that_says_where() {
        let r = rejection(r#"{"kind": "a",}"#);
        assert_eq!((r.status, r.code.as_str()), (400, "invalid-json"));
        assert!(r.message.contains("line 1"), "{}", r.message);
    }

    #[test]
    fn empty_and_non_object_bodies_are_refused() {
        assert_eq!(rejection("[]").field.as_deref(), Some("$"));
        assert_eq!(rejection("42").field.as_deref(), Some("$"));
        assert_eq!(rejection(r#"[1]"#).field.as_deref(), Some("[0]"));
    }

    #[test]
    fn the_rest_endpoints_take_exactly_their_own_shape() {
        assert_eq!(from_json_object(br#"{"kind":"a"}"#).unwrap().len(), 1);
        for other in [
            &br#"[{"kind":"a"}]"#[..],
            br#"{"notifications":[{"kind":"a"}]}"#,
        ] {
            assert!(from_json_object(other).is_err(), "{other:?}");
        }
        assert_eq!(
            from_json_batch(br#"{"notifications":[{"kind":"a"},{"kind":"b"}]}"#)
                .unwrap()
                .len(),
            2
        );
        for (other, field) in [
            (&br#"[{"kind":"a"}]"#[..], "$"),
            (br#"{"kind":"a"}"#, "kind"),
            (br#"{}"#, "notifications"),
        ] {
            let r = from_json_batch(other).expect_err("not a batch object");
            assert_eq!(r.field.as_deref(), Some(field), "{other:?}");
        }
    }

    #[test]
    fn text_limits_count_characters_as_json_schema_does() {
        let at_limit = "é".repeat(MAX_TEXT_LEN);
        let body = serde_json::json!({
            "kind": "a",
            "attributes": {at_limit.clone(): at_limit.clone()},
            "idempotency_key": at_limit,
        });
        assert!(from_json_body(body.to_string().as_bytes()).is_ok());
        let over = "é".repeat(MAX_TEXT_LEN + 1);
        let body = serde_json::json!({"kind": "a", "idempotency_key": over});
        assert_eq!(
            rejection(&body.to_string()).field.as_deref(),
            Some("idempotency_key")
        );
    }
}
