//! A transform that filters: it drops every notification whose payload has `"drop": true`
//! (with the reason `payload.drop is true`) and keeps every other one unchanged, payloads
//! that are not JSON objects included.

use switchyard_sdk::{
    Notification, Transform, TransformContext, TransformError, Transformed, export_transform,
};

struct DropFlagged;

impl Transform for DropFlagged {
    fn transform(
        notification: Notification,
        _context: TransformContext,
    ) -> Result<Transformed, TransformError> {
        let payload = notification.payload_json().unwrap_or_default();
        if payload["drop"] == serde_json::Value::Bool(true) {
            Ok(Transformed::drop("payload.drop is true"))
        } else {
            Ok(Transformed::keep(notification))
        }
    }
}

export_transform!(DropFlagged);
