//! Handing a raw request to an adapter plugin: the step every front door shares.

use std::sync::Arc;

use poem::http::StatusCode;

use super::Problem;
use crate::pipeline::Hub;
use crate::runtime::{self, Draft, Grants, Rejection};

/// Runs `adapter` on `request` with `grants`. The error is the problem the sender gets: the
/// adapter's own rejection, 503 when the hub is at its limit of plugin calls or the
/// adapter cannot run (the details go to the log, not to the sender).
pub async fn adapt(
    hub: &Hub,
    adapter: &str,
    grants: &Arc<Grants>,
    request: runtime::Request,
) -> Result<Vec<Draft>, Problem> {
    let unavailable = |why: String| {
        tracing::error!(adapter, why = ?why, "an adapter plugin could not be called");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this front door cannot take notifications right now; retry later",
        )
    };
    let plugin = hub
        .plugins
        .adapter(adapter)
        .await
        .map_err(|error| unavailable(format!("the adapter does not load: {error}")))?;
    match plugin.handle(grants, request).await {
        Ok(Ok(drafts)) => Ok(drafts),
        Ok(Err(rejection)) => Err(rejection_problem(rejection)),
        Err(runtime::CallError::Busy { .. }) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the hub is at its limit of plugin calls; retry",
        )),
        Err(error) => Err(unavailable(format!("the adapter failed: {error}"))),
    }
}

/// An adapter's refusal as a problem. A status outside 4xx is not the adapter's to give
/// (a rejection is about the request), so it becomes 400.
pub fn rejection_problem(rejection: Rejection) -> Problem {
    let status = StatusCode::from_u16(rejection.status)
        .ok()
        .filter(|s| s.is_client_error())
        .unwrap_or(StatusCode::BAD_REQUEST);
    let mut problem = Problem::new(status, rejection.message).code(rejection.code);
    problem.field = rejection.field;
    problem
}
