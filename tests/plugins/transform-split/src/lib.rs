//! A transform that splits: when the payload has a list `items`, it delivers one
//! notification per item instead, whose payload is the item (kind and attributes
//! unchanged, the host numbers the ids); an empty list is a split into nothing, which the
//! host treats as a drop, and a list longer than the host's cap is passed on as it is, for
//! the host to refuse. Any other payload is kept unchanged.

use serde_json::Value;
use switchyard_sdk::{
    Notification, Transform, TransformContext, TransformError, Transformed, export_transform,
};

struct Split;

impl Transform for Split {
    fn transform(
        notification: Notification,
        _context: TransformContext,
    ) -> Result<Transformed, TransformError> {
        let Ok(Value::Object(mut payload)) = notification.payload_json() else {
            return Ok(Transformed::keep(notification));
        };
        let Some(Value::Array(items)) = payload.remove("items") else {
            return Ok(Transformed::keep(notification));
        };
        Ok(Transformed::split(
            items
                .iter()
                .map(|item| notification.clone().with_payload_json(item))
                .collect(),
        ))
    }
}

export_transform!(Split);
