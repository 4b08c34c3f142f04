//! The `template` transform: builds a new JSON payload for each notification from a
//! template, and optionally gives it a new kind, to fit a destination's format without
//! writing a plugin.
//!
//! Config:
//! - `template` (required): any JSON value; it becomes the new payload. Every string in it
//!   (object keys included) may hold the placeholders of `switchyard_sdk::template`:
//!   `{{id}}`, `{{kind}}`, `{{source}}`, `{{attributes.NAME}}`, `{{payload}}` (the whole
//!   payload) and `{{payload.a.b}}` (one value in it; `{{payload.items.0}}` indexes a
//!   list). A string that is exactly one placeholder, such as `"{{payload.total}}"`, is
//!   replaced by the value with its JSON type (a number stays a number, an object an
//!   object), or `null` when there is none; placeholders inside longer text, such as
//!   `"Order {{payload.id}} paid"`, are interpolated as text (a string without quotes, any
//!   other value as JSON, nothing when there is none).
//! - `kind` (optional): a text template for the new kind, such as `"{{kind}}.slack"`. It
//!   must render to a valid kind (letters, digits and `. _ - :`); otherwise the delivery
//!   fails with the rendered text in the reason.
//!
//! For example `{"template": {"text": "Order {{payload.order.id}} paid", "amount":
//! "{{payload.total}}", "tags": ["{{source}}", "{{attributes.region}}"]}}` turns the
//! payload `{"order": {"id": 7}, "total": 12.5}` from `shop`, with the attribute
//! `region=eu`, into `{"text": "Order 7 paid", "amount": 12.5, "tags": ["shop", "eu"]}`.
//!
//! The attributes are kept. A config that is not valid (no `template`, an unknown key, a
//! `kind` that is not a string) fails the delivery, without retries, with a reason that
//! says what to fix.

use serde::Deserialize;
use serde_json::Value;
use switchyard_sdk::{
    Notification, Transform, TransformContext, TransformError, Transformed, drafts,
    export_transform, template,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    template: Value,
    kind: Option<String>,
}

/// The notification with its payload, and its kind when configured, rendered.
fn apply(config: &Config, notification: Notification) -> Result<Notification, String> {
    let payload = template::render_json(&config.template, &notification);
    let notification = match &config.kind {
        Some(kind) => {
            let kind = template::render(kind, &notification);
            drafts::check_kind(&kind)
                .map_err(|reason| format!("the kind template made {kind:?}, which {reason}"))?;
            notification.with_kind(kind)
        }
        None => notification,
    };
    Ok(notification.with_payload_json(&payload))
}

struct Template;

impl Transform for Template {
    fn transform(
        notification: Notification,
        _context: TransformContext,
    ) -> Result<Transformed, TransformError> {
        let config: Config = switchyard_sdk::config().map_err(TransformError::fail)?;
        apply(&config, notification)
            .map(Transformed::keep)
            .map_err(TransformError::fail)
    }
}

export_transform!(Template);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notification(payload: Value) -> Notification {
        Notification {
            id: "ntf_1".into(),
            kind: "order.paid".into(),
            source: "shop".into(),
            attributes: vec![("region".into(), "eu".into())],
            payload: payload.to_string(),
            created_at_ms: 1,
        }
    }

    fn config(config: Value) -> Config {
        serde_json::from_value(config).unwrap()
    }

    fn payload(n: &Notification) -> Value {
        serde_json::from_str(&n.payload).expect("the payload is valid JSON")
    }

    #[test]
    fn builds_the_payload_keeping_the_types_of_sole_placeholders() {
        let n = apply(
            &config(json!({"template": {
                "text": "Order {{payload.order.id}} paid: {{payload.total}} ({{payload.order}})",
                "amount": "{{payload.total}}",
                "order": "{{payload.order}}",
                "tags": ["{{source}}", "{{attributes.region}}", "{{attributes.none}}"],
                "original": "{{payload}}",
                "fixed": [1, true, null, {"nested": "{{id}}"}],
            }})),
            notification(json!({"order": {"id": 7, "lines": [1, 2]}, "total": 12.5})),
        )
        .unwrap();
        assert_eq!(
            payload(&n),
            json!({
                "text": "Order 7 paid: 12.5 ({\"id\":7,\"lines\":[1,2]})",
                "amount": 12.5,
                "order": {"id": 7, "lines": [1, 2]},
                "tags": ["shop", "eu", null],
                "original": {"order": {"id": 7, "lines": [1, 2]}, "total": 12.5},
                "fixed": [1, true, null, {"nested": "ntf_1"}],
            })
        );
        assert_eq!(n.kind, "order.paid");
        assert_eq!(n.attributes, vec![("region".into(), "eu".into())]);
    }

    #[test]
    fn a_template_of_any_type_is_the_payload() {
        let n = notification(json!({"items": ["a", "b"], "text": "he said \"hi\"\n"}));
        for (template, expected) in [
            (json!("{{payload.items}}"), json!(["a", "b"])),
            (json!("{{payload.nope}}"), json!(null)),
            (
                json!("said: {{payload.text}}"),
                json!("said: he said \"hi\"\n"),
            ),
            (json!(42), json!(42)),
            (json!(null), json!(null)),
        ] {
            let out = apply(&config(json!({ "template": template })), n.clone()).unwrap();
            assert_eq!(payload(&out), expected, "{template}");
        }
    }

    #[test]
    fn the_kind_template_must_make_a_valid_kind() {
        let n = notification(json!({"status": "refunded", "note": "two words"}));
        let out = apply(
            &config(json!({"template": {}, "kind": "{{kind}}.{{payload.status}}"})),
            n.clone(),
        )
        .unwrap();
        assert_eq!(out.kind, "order.paid.refunded");
        let error = apply(
            &config(json!({"template": {}, "kind": "{{payload.note}}"})),
            n.clone(),
        )
        .unwrap_err();
        assert!(error.contains("\"two words\""), "{error}");
        let error = apply(&config(json!({"template": {}, "kind": "{{nope}}"})), n).unwrap_err();
        assert!(error.contains("must not be empty"), "{error}");
    }

    #[test]
    fn a_bad_config_says_what_to_fix() {
        for (bad, expected) in [
            (json!({}), "missing field `template`"),
            (json!({"template": {}, "knd": "x"}), "unknown field `knd`"),
            (json!({"template": {}, "kind": 3}), "expected a string"),
        ] {
            let error = serde_json::from_value::<Config>(bad.clone())
                .err()
                .unwrap_or_else(|| panic!("{bad} was accepted"))
                .to_string();
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }
}
