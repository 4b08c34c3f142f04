//! The portal's part of the REST API: minting a portal link for a tenant.

// Problem answers are returned by value only on the error path; see ingress/rest.rs.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use poem::http::StatusCode;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::ingress::rest::AdminToken;
use crate::ingress::{Problem, ProblemResponse};
use crate::pipeline::Hub;
use crate::tenancy::TenancyError;

#[derive(Tags)]
enum Tag {
    /// The customer portal: pages where a tenant's people manage its endpoints, opened by
    /// short-lived links.
    Portal,
}

/// A link that opens a tenant's portal.
#[derive(Object)]
#[oai(example)]
struct PortalLinkOut {
    /// Open it in a browser, or make it the `src` of an iframe in your product (its
    /// origin must be in `portal.frame_ancestors`). It works once, until `expires_at`, and
    /// the portal session it opens lasts `portal.session_ttl`. It is a credential: hand it
    /// only to the tenant's signed-in user, and do not log it.
    url: String,
    /// When the link stops working if it has not been opened (RFC 3339).
    expires_at: String,
}

impl Example for PortalLinkOut {
    fn example() -> Self {
        PortalLinkOut {
            url: "https://hub.example.com/portal/enter?token=eyJ2IjoxLCJ0ZW5hbnQiOiJjdXNfOGYxNGU0NWYiLCJleHAiOjE3OTU5MTA0MDAwMDAsImlkIjoiM3Z6UTF3cTVKb1NlZ2hRZTdqRmJUZyJ9.q0Hs2G0cK9l5bqvXw1cJ4qGZ7cU2o0vQk2kq8y3V9mE".into(),
            expires_at: "2026-11-24T09:40:00.000Z".into(),
        }
    }
}

#[derive(ApiResponse)]
enum CreatedLink {
    /// Created: the link, which works once.
    #[oai(status = 201)]
    Created(Json<PortalLinkOut>),
}

/// The portal's API operations.
pub struct PortalApi {
    hub: Arc<Hub>,
}

impl PortalApi {
    pub fn new(hub: Arc<Hub>) -> PortalApi {
        PortalApi { hub }
    }
}

#[OpenApi(prefix_path = "/api/v1")]
impl PortalApi {
    /// Create a portal link for a tenant.
    ///
    /// The link opens the tenant's customer portal, where its people manage its
    /// endpoints, see deliveries and attempts, replay failures, rotate signing secrets
    /// and send test events, and see nothing of any other tenant. It works once, within
    /// `portal.link_ttl` (10 minutes by default). Mint one each time a user opens the
    /// portal from your product. Operators only: a tenant's token cannot mint links, even
    /// to its own portal.
    #[oai(
        path = "/tenants/:tenant/portal-links",
        method = "post",
        tag = "Tag::Portal",
        operation_id = "createPortalLink"
    )]
    async fn create_portal_link(
        &self,
        // `AdminToken` checks with `auth::require`, which refuses every tenant's token.
        _token: AdminToken,
        tenant: Path<String>,
    ) -> Result<CreatedLink, ProblemResponse> {
        let link = super::mint_link(&self.hub, &tenant.0)
            .await
            .map_err(problem)?;
        Ok(CreatedLink::Created(Json(PortalLinkOut {
            url: link.url,
            expires_at: rfc3339(link.expires_at_ms),
        })))
    }
}

/// What minting can fail with, as the API's problems: an unknown tenant, or a store that
/// does not answer (logged, never shown).
fn problem(error: TenancyError) -> ProblemResponse {
    match error {
        TenancyError::NotFound(detail) => Problem::new(StatusCode::NOT_FOUND, detail).into(),
        other => {
            tracing::error!(error = %other, "could not mint a portal link");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hub's store is unavailable; retry",
            )
            .into()
        }
    }
}

fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}
