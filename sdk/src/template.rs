//! Tiny `{{placeholder}}` templates for chat, e-mail and SMS text.
//!
//! Placeholders: `{{id}}`, `{{kind}}`, `{{source}}`, `{{attributes.NAME}}`,
//! `{{payload}}` (the whole payload as JSON) and `{{payload.a.b}}` (one value in it; a
//! string shows without quotes). A placeholder with no value renders empty, so a message
//! is always sent; unknown text outside `{{ }}` is kept as it is.

use crate::Notification;
use serde_json::Value;

/// Renders `template` for one notification.
pub fn render(template: &str, notification: &Notification) -> String {
    let payload = notification.payload_json().unwrap_or(Value::Null);
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        out.push_str(&lookup(after[..end].trim(), notification, &payload));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn lookup(path: &str, n: &Notification, payload: &Value) -> String {
    match path {
        "id" => n.id.clone(),
        "kind" => n.kind.clone(),
        "source" => n.source.clone(),
        "payload" => payload.to_string(),
        _ => {
            if let Some(name) = path.strip_prefix("attributes.") {
                return n.attribute(name).unwrap_or_default().to_string();
            }
            let Some(pointer) = path.strip_prefix("payload.") else {
                return String::new();
            };
            let mut value = payload;
            for key in pointer.split('.') {
                value = match value {
                    Value::Object(map) => map.get(key).unwrap_or(&Value::Null),
                    Value::Array(items) => key
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| items.get(i))
                        .unwrap_or(&Value::Null),
                    _ => &Value::Null,
                };
            }
            match value {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_placeholders_from_the_notification() {
        let n = Notification {
            id: "ntf_1".into(),
            kind: "incident.opened".into(),
            source: "api".into(),
            attributes: vec![("severity".into(), "critical".into())],
            payload: r#"{"title":"DB down","hosts":["db1","db2"],"n":3}"#.into(),
            created_at_ms: 0,
        };
        assert_eq!(
            render(
                "[{{attributes.severity}}] {{ kind }}: {{payload.title}} on {{payload.hosts.1}} x{{payload.n}}{{payload.none}}",
                &n
            ),
            "[critical] incident.opened: DB down on db2 x3"
        );
        assert_eq!(render("{{id}} {{unclosed", &n), "ntf_1 {{unclosed");
    }
}
