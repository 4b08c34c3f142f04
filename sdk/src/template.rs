//! Tiny `{{placeholder}}` templates for chat, e-mail and SMS text, and for whole JSON
//! payloads.
//!
//! Placeholders: `{{id}}`, `{{kind}}`, `{{source}}`, `{{attributes.NAME}}`,
//! `{{payload}}` (the whole payload as JSON) and `{{payload.a.b}}` (one value in it; a
//! number indexes a list, as in `{{payload.hosts.0}}`). Spaces inside the braces are
//! ignored.
//!
//! [`render`] makes text: a string value shows without quotes, any other value as JSON,
//! and a placeholder with no value renders empty, so a message is always sent; unknown
//! text outside `{{ }}` is kept as it is.
//!
//! [`render_json`] makes a JSON value from a JSON template: every string in it (object
//! keys included) is rendered as text, except a string that is exactly one placeholder,
//! which becomes the value itself with its JSON type (a number, an object, a list), or
//! `null` when there is none.

use crate::Notification;
use serde_json::{Map, Value};

/// Renders `template` for one notification.
pub fn render(template: &str, notification: &Notification) -> String {
    let payload = notification.payload_json().unwrap_or(Value::Null);
    render_text(template, notification, &payload)
}

/// Renders a JSON template for one notification: see the [module docs](self).
///
/// ```
/// # use switchyard_sdk::{Notification, template};
/// # let notification = Notification {
/// #     id: "ntf_1".into(), kind: "order.created".into(), source: "shop".into(),
/// #     attributes: vec![], payload: r#"{"total": 12.5, "items": [1, 2]}"#.into(),
/// #     created_at_ms: 0,
/// # };
/// let template = serde_json::json!({
///     "text": "{{kind}}: {{payload.total}} EUR",
///     "amount": "{{payload.total}}",
///     "lines": "{{ payload.items }}",
/// });
/// assert_eq!(
///     template::render_json(&template, &notification),
///     serde_json::json!({"text": "order.created: 12.5 EUR", "amount": 12.5, "lines": [1, 2]}),
/// );
/// ```
pub fn render_json(template: &Value, notification: &Notification) -> Value {
    let payload = notification.payload_json().unwrap_or(Value::Null);
    render_value(template, notification, &payload)
}

fn render_value(template: &Value, n: &Notification, payload: &Value) -> Value {
    match template {
        Value::String(text) => match sole_placeholder(text) {
            Some(path) => match resolve(path, n, payload) {
                Found::Text(text) => Value::String(text.to_string()),
                Found::Json(value) => value.clone(),
                Found::Nothing => Value::Null,
            },
            None => Value::String(render_text(text, n, payload)),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_value(item, n, payload))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    (
                        render_text(key, n, payload),
                        render_value(value, n, payload),
                    )
                })
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// The path of the one placeholder that is the whole of `text`, as in `{{payload.a}}`.
fn sole_placeholder(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then(|| inner.trim())
}

fn render_text(template: &str, n: &Notification, payload: &Value) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let path = after[..end].trim();
        match resolve(path, n, payload) {
            // The whole payload shows as JSON even when it is null.
            Found::Json(value) if path == "payload" => out.push_str(&value.to_string()),
            Found::Text(text) => out.push_str(text),
            Found::Json(Value::String(text)) => out.push_str(text),
            Found::Json(Value::Null) | Found::Nothing => {}
            Found::Json(value) => out.push_str(&value.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// What a placeholder stands for.
enum Found<'a> {
    /// A field of the notification, which is text.
    Text(&'a str),
    /// The payload or a value in it.
    Json(&'a Value),
    /// No such attribute, payload value or placeholder.
    Nothing,
}

fn resolve<'a>(path: &str, n: &'a Notification, payload: &'a Value) -> Found<'a> {
    match path {
        "id" => Found::Text(&n.id),
        "kind" => Found::Text(&n.kind),
        "source" => Found::Text(&n.source),
        "payload" => Found::Json(payload),
        _ => {
            if let Some(name) = path.strip_prefix("attributes.") {
                return n.attribute(name).map_or(Found::Nothing, Found::Text);
            }
            let Some(pointer) = path.strip_prefix("payload.") else {
                return Found::Nothing;
            };
            let mut value = payload;
            for key in pointer.split('.') {
                let next = match value {
                    Value::Object(map) => map.get(key),
                    Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                    _ => None,
                };
                match next {
                    Some(next) => value = next,
                    None => return Found::Nothing,
                }
            }
            Found::Json(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notification() -> Notification {
        Notification {
            id: "ntf_1".into(),
            kind: "incident.opened".into(),
            source: "api".into(),
            attributes: vec![("severity".into(), "critical".into())],
            payload: r#"{"title":"DB down","hosts":["db1","db2"],"n":3,"deep":{"x":null}}"#.into(),
            created_at_ms: 0,
        }
    }

    #[test]
    fn fills_placeholders_from_the_notification() {
        let n = notification();
        assert_eq!(
            render(
                "[{{attributes.severity}}] {{ kind }}: {{payload.title}} on {{payload.hosts.1}} x{{payload.n}}{{payload.none}}",
                &n
            ),
            "[critical] incident.opened: DB down on db2 x3"
        );
        assert_eq!(render("{{id}} {{unclosed", &n), "ntf_1 {{unclosed");
        assert_eq!(
            render("{{payload.deep}}|{{payload.deep.x}}|{{nope}}", &n),
            r#"{"x":null}||"#
        );
        let empty = Notification {
            payload: "null".into(),
            ..n
        };
        assert_eq!(render("{{payload}}", &empty), "null");
    }

    #[test]
    fn a_json_template_keeps_the_types_of_sole_placeholders() {
        let n = notification();
        let template = json!({
            "id": "{{id}}",
            "summary": "{{kind}} from {{source}}: {{payload.title}} ({{payload.n}} hosts)",
            "hosts": "{{payload.hosts}}",
            "count": "{{ payload.n }}",
            "first": ["{{payload.hosts.0}}", 1, true, null],
            "severity": "{{attributes.severity}}",
            "missing": "{{attributes.owner}}",
            "gone": "{{payload.none.deeper}}",
            "{{source}}_title": "{{payload.title}}",
            "whole": "{{payload}}",
            "two": "{{payload.n}}{{payload.n}}",
        });
        assert_eq!(
            render_json(&template, &n),
            json!({
                "id": "ntf_1",
                "summary": "incident.opened from api: DB down (3 hosts)",
                "hosts": ["db1", "db2"],
                "count": 3,
                "first": ["db1", 1, true, null],
                "severity": "critical",
                "missing": null,
                "gone": null,
                "api_title": "DB down",
                "whole": {"title": "DB down", "hosts": ["db1", "db2"], "n": 3, "deep": {"x": null}},
                "two": "33",
            })
        );
        assert_eq!(render_json(&json!("{{payload.n}}"), &n), json!(3));
        assert_eq!(render_json(&json!(7), &n), json!(7));
    }
}
