//! Builders for [`Rejection`], the answer an adapter gives a request it refuses.

use crate::Rejection;

impl Rejection {
    /// A rejection with any 4xx status.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection {
            status,
            code: code.into(),
            message: message.into(),
            field: None,
        }
    }

    /// 400: the request cannot be read at all (not JSON, not UTF-8).
    pub fn bad_request(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 401 `invalid-signature`: the request's signature or token is missing or wrong.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "invalid-signature", message)
    }

    /// 422 `invalid-field`: one field breaks the schema; `field` is its path, such as
    /// `notifications[2].kind`.
    pub fn invalid_field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        let field = field.into();
        let reason = reason.into();
        Rejection {
            status: 422,
            code: "invalid-field".into(),
            message: format!("{field}: {reason}"),
            field: Some(field),
        }
    }

    /// Names the offending field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}
