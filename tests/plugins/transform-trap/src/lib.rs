//! A transform that panics, and so traps, on every call, whatever the notification: the
//! host must treat it as a failed call and never as a verdict.

use switchyard_sdk::{
    Notification, Transform, TransformContext, TransformError, Transformed, export_transform,
};

struct Trap;

impl Transform for Trap {
    fn transform(
        _notification: Notification,
        _context: TransformContext,
    ) -> Result<Transformed, TransformError> {
        panic!("this transform always panics")
    }
}

export_transform!(Trap);
