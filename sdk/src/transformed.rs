//! Builders for [`Transformed`] and [`TransformError`], the answers a transform gives, and
//! the [`Notification`] setters a transform reshapes with.

use crate::{Notification, TransformError, Transformed};

impl Transformed {
    /// Deliver `notification`, changed or as it came. The host keeps the original id,
    /// source and creation time; the kind, attributes and payload are the transform's.
    pub fn keep(notification: Notification) -> Self {
        Transformed::Keep(notification)
    }

    /// Deliver nothing to this channel (a filter); `reason` goes on the attempt record and
    /// the delivery counts as done.
    pub fn drop(reason: impl Into<String>) -> Self {
        Transformed::Drop(reason.into())
    }

    /// Deliver these notifications instead, in order (at most 100). The host gives the
    /// n-th (from 1) the id `<id>.<n>`; an empty list is a drop.
    pub fn split(notifications: Vec<Notification>) -> Self {
        Transformed::Split(notifications)
    }
}

impl TransformError {
    /// Trying again may help (a lookup timed out): the delivery is retried on the
    /// channel's schedule.
    pub fn retry(reason: impl Into<String>) -> Self {
        TransformError {
            reason: reason.into(),
            retry: true,
        }
    }

    /// Trying again never will (bad config, a payload without the field the transform
    /// needs): the delivery is dead-lettered, and can be replayed once that is fixed.
    pub fn fail(reason: impl Into<String>) -> Self {
        TransformError {
            reason: reason.into(),
            retry: false,
        }
    }
}

/// JSON that does not parse never will: `?` on [`Notification::payload_json`] or
/// `serde_json::from_value` in a transform fails the delivery with the parser's reason.
impl From<serde_json::Error> for TransformError {
    fn from(error: serde_json::Error) -> Self {
        TransformError::fail(format!("invalid JSON: {error}"))
    }
}

impl Notification {
    /// This notification with `payload` as its payload.
    pub fn with_payload_json(mut self, payload: &serde_json::Value) -> Self {
        self.payload = payload.to_string();
        self
    }

    /// This notification with another kind, such as `invoice.paid.large`.
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// This notification with the attribute `name` set to `value`, replacing every
    /// attribute of that name it had.
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.attributes.retain(|(k, _)| *k != name);
        self.attributes.push((name, value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification() -> Notification {
        Notification {
            id: "ntf_1".into(),
            kind: "order.created".into(),
            source: "shop".into(),
            attributes: vec![
                ("region".into(), "eu".into()),
                ("region".into(), "us".into()),
            ],
            payload: r#"{"total":12}"#.into(),
            created_at_ms: 0,
        }
    }

    #[test]
    fn setters_change_only_what_they_name() {
        let n = notification()
            .with_payload_json(&serde_json::json!({"amount": 12}))
            .with_kind("order.big")
            .with_attribute("region", "apac");
        assert_eq!(n.payload, r#"{"amount":12}"#);
        assert_eq!(n.kind, "order.big");
        assert_eq!(n.attributes, vec![("region".into(), "apac".into())]);
        assert_eq!((n.id.as_str(), n.source.as_str()), ("ntf_1", "shop"));
    }

    #[test]
    fn builders_fill_the_contract_types() {
        assert_eq!(
            Transformed::drop("filtered"),
            Transformed::Drop("filtered".into())
        );
        assert!(TransformError::retry("later").retry);
        assert!(!TransformError::fail("never").retry);
        let bad = Notification {
            payload: "{".into(),
            ..notification()
        };
        let error = TransformError::from(bad.payload_json().unwrap_err());
        assert!(!error.retry && error.reason.starts_with("invalid JSON: "));
    }
}
