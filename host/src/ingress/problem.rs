//! Errors as JSON problem bodies (RFC 9457): every error the API gives, whether a handler
//! or the framework raised it, is `application/problem+json` with a message a person can
//! act on. Internal details go to the log, never into a response.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::{ApiResponse, Object, payload::Json};
use serde::Serialize;

/// What a 503 asks the sender to wait before it retries: long enough for a broker to fail
/// over, short enough that a brief outage costs little.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// A problem body (RFC 9457).
#[derive(Debug, Clone, Object, Serialize)]
#[oai(example)]
pub struct Problem {
    /// The HTTP status code.
    pub status: u16,
    /// A short, stable summary of the kind of problem.
    pub title: String,
    /// What went wrong with this request, and how to fix it.
    pub detail: String,
    /// A machine-readable code, such as `invalid-json` or `invalid-field`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The field at fault, as a path such as `notifications[2].kind`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Each problem found, for requests with several (such as a routes file).
    #[oai(skip_serializing_if_is_empty, default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl poem_openapi::types::Example for Problem {
    fn example() -> Self {
        let mut problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "notifications[1].kind: must not be empty",
        )
        .code("invalid-field");
        problem.field = Some("notifications[1].kind".into());
        problem
    }
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            detail: detail.into(),
            code: None,
            field: None,
            problems: Vec::new(),
        }
    }

    pub fn code(mut self, code: impl Into<String>) -> Problem {
        self.code = Some(code.into());
        self
    }

    /// The error answer for this problem.
    pub fn into_error(self) -> ProblemResponse {
        let status = self.status;
        let body = Json(self);
        match status {
            400 => ProblemResponse::BadRequest(body),
            401 => ProblemResponse::Unauthorized(body),
            403 => ProblemResponse::Forbidden(body),
            404 => ProblemResponse::NotFound(body),
            409 => ProblemResponse::Conflict(body),
            413 => ProblemResponse::PayloadTooLarge(body),
            422 => ProblemResponse::Unprocessable(body),
            429 => ProblemResponse::TooManyRequests(body),
            503 => ProblemResponse::Unavailable(body, RETRY_AFTER_SECONDS),
            _ if status < 500 => ProblemResponse::BadRequest(body),
            _ => ProblemResponse::Internal(body),
        }
    }
}

/// The error answers of the API.
#[derive(ApiResponse, Debug)]
pub enum ProblemResponse {
    /// The request is malformed.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Not authenticated: the API token, the session or (for webhooks) the signature is
    /// missing or not valid.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// The request lacks the session's CSRF token (`X-CSRF-Token`).
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such resource.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The request conflicts with an earlier one (an idempotency key reused).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The body is larger than the API accepts.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The request is well-formed but its content is not valid.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    /// Too many attempts: the account is locked for a while.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<Problem>),
    /// The hub cannot take the request right now (its store or stream is down); nothing
    /// was accepted. Retry after the seconds in `Retry-After`.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>, #[oai(header = "Retry-After")] u32),
    /// Something failed inside the hub; the details are in its log.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

impl From<Problem> for ProblemResponse {
    fn from(problem: Problem) -> Self {
        problem.into_error()
    }
}

/// Turns any error that reached the edge (a bad query parameter, an unknown path, a body
/// over the size limit, a missing token) into a problem response.
pub async fn problem_response(error: poem::Error) -> Response {
    // The API's own answers (a `ProblemResponse`) arrive here too; they are already
    // problems, with codes and fields this function could not rebuild.
    if error.is_from_response() {
        return error.into_response();
    }
    let status = error.status();
    let detail = if status.is_server_error() {
        tracing::error!(%error, "request failed");
        "the hub failed to handle this request; the details are in its log".to_string()
    } else {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                "the request body is larger than this hub accepts (api.max_body_bytes)".to_string()
            }
            StatusCode::UNAUTHORIZED => {
                "send a valid API token as `Authorization: Bearer <token>`".to_string()
            }
            StatusCode::NOT_FOUND => "no such resource".to_string(),
            _ => error.to_string(),
        }
    };
    let problem = Problem::new(status, detail);
    let body = serde_json::to_vec(&problem).expect("problems serialise");
    Response::builder()
        .status(status)
        .content_type("application/problem+json")
        .body(body)
        .into_response()
}
