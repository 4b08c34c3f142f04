//! The portal's pages. Every handler takes the tenant from the session, never from the
//! request, and hands it to [`crate::tenancy`] with the ids the request names, so another
//! tenant's ids get the same "not found" as ids that exist nowhere.
//!
//! Each POST checks, before anything else, that the browser did not mark it as coming from
//! another site and that it carries the session's CSRF token; then it redirects back to a
//! page (post/redirect/get), except where the answer shows a signing secret: that page is
//! the POST's own answer, so the secret is never kept anywhere to be shown later.

// A refusal (an error page) is a `Response` returned by value: it is only built on the
// way out, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::context;
use poem::http::{StatusCode, header};
use poem::web::{Data, Form, Path, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::{Deserialize, Serialize};

use super::{Portal, format_time, link, session};
use crate::routing::endpoints;
use crate::store::{self, DeliveryDetail, EndpointDelivery, EndpointRow, NewPortalSession, Page};
use crate::tenancy::{Actor, EndpointDraft, TenancyError};

const ENDPOINTS_PER_PAGE: u32 = 50;
const DELIVERIES_PER_PAGE: u32 = 25;
/// Cursors are ids made here; anything longer is no cursor.
const MAX_CURSOR: usize = 64;

/// Who is using the portal: a live session, and the tenant it was opened for.
struct Visitor {
    session_id: String,
    tenant: store::Tenant,
}

impl Visitor {
    /// What every page of a session shows: whose portal it is, and the forms' token.
    fn base(&self) -> minijinja::Value {
        context! {
            tenant => context! { id => &self.tenant.id, name => &self.tenant.name },
            csrf_token => session::csrf_token(&self.session_id),
        }
    }
}

impl Portal {
    /// The visitor of a page: a live session whose tenant still exists, or the page that
    /// says the session has ended. A session of a tenant created at another time was opened
    /// for a deleted tenant whose id was given to a new one: it has ended too. (Creation
    /// times are compared as stored, never with a clock, which differs between hosts.)
    async fn visitor(&self, request: &Request) -> Result<Visitor, Response> {
        let Some(session_id) = session::session_cookie(request.headers()) else {
            return Err(self.signed_out());
        };
        let digest = session::session_digest(&session_id);
        let live = match self
            .hub
            .store
            .portal_session(&digest, store::now_ms())
            .await
        {
            Ok(Some(live)) => live,
            Ok(None) => return Err(self.signed_out()),
            Err(error) => return Err(self.failure(None, error.into())),
        };
        match self.hub.tenancy.tenant(&live.tenant_id).await {
            Ok(tenant) if live.tenant_born == tenant.created_at => {
                Ok(Visitor { session_id, tenant })
            }
            Ok(_) | Err(TenancyError::NotFound(_)) => Err(self.signed_out()),
            Err(error) => Err(self.failure(None, error)),
        }
    }

    /// For a state-changing request: 403 unless the browser did not mark it cross-site
    /// and it carries its session's CSRF token, whoever asks; then the visitor.
    async fn authorize(
        &self,
        request: &Request,
        csrf_token: Option<&str>,
    ) -> Result<Visitor, Response> {
        let csrf_ok = session::session_cookie(request.headers())
            .is_some_and(|session_id| session::csrf_ok(&session_id, csrf_token));
        if cross_site(request) || !csrf_ok {
            return Err(self.forbidden());
        }
        self.visitor(request).await
    }

    /// A page with a heading and a sentence, for refusals and failures.
    fn message(
        &self,
        status: StatusCode,
        visitor: Option<&Visitor>,
        title: &str,
        message: &str,
    ) -> Response {
        let base = visitor.map(Visitor::base).unwrap_or_default();
        self.page(
            status,
            "portal/message.html",
            context! {
                status => status.as_u16(),
                title => title,
                message => message,
                ..base
            },
        )
    }

    fn signed_out(&self) -> Response {
        self.message(
            StatusCode::UNAUTHORIZED,
            None,
            "Your portal session has ended",
            "Open the portal again from the product you came from. Portal links work once, \
             for a short while.",
        )
    }

    fn forbidden(&self) -> Response {
        self.message(
            StatusCode::FORBIDDEN,
            None,
            "This form has expired",
            "It did not come from this page, or the session it belonged to has ended. Go \
             back, reload the page and try again.",
        )
    }

    fn not_found(&self, visitor: Option<&Visitor>) -> Response {
        self.message(
            StatusCode::NOT_FOUND,
            visitor,
            "Not found",
            "There is no such endpoint or delivery in this account.",
        )
    }

    /// The page for a refusal of [`crate::tenancy`]. Store and vault failures are logged
    /// and shown only as "try again".
    fn failure(&self, visitor: Option<&Visitor>, error: TenancyError) -> Response {
        match error {
            TenancyError::NotFound(_) => self.not_found(visitor),
            TenancyError::Invalid { field, message } => self.message(
                StatusCode::UNPROCESSABLE_ENTITY,
                visitor,
                "That cannot be done",
                &format!("{field}: {message}"),
            ),
            TenancyError::Conflict(message) => self.message(
                StatusCode::CONFLICT,
                visitor,
                "That cannot be done",
                &message,
            ),
            TenancyError::Store(error) => {
                tracing::error!(%error, "portal: store error");
                self.unavailable(visitor)
            }
            TenancyError::Vault(error) => {
                tracing::error!(%error, "portal: vault error");
                self.unavailable(visitor)
            }
            TenancyError::Unavailable => self.unavailable(visitor),
        }
    }

    fn unavailable(&self, visitor: Option<&Visitor>) -> Response {
        self.message(
            StatusCode::SERVICE_UNAVAILABLE,
            visitor,
            "Not available right now",
            "Nothing was changed. Try again in a moment.",
        )
    }
}

/// The page for an error the router raised (no such page, a method a page does not take).
pub(super) fn error_page(portal: &Portal, status: StatusCode) -> Response {
    match status {
        StatusCode::NOT_FOUND => portal.not_found(None),
        StatusCode::METHOD_NOT_ALLOWED => portal.message(
            status,
            None,
            "Not allowed",
            "This page does not take that request.",
        ),
        status if status.is_server_error() => portal.unavailable(None),
        status => portal.message(
            status,
            None,
            "That request was not understood",
            "Go back, reload the page and try again.",
        ),
    }
}

// ---- Entering and leaving ---------------------------------------------------------------

/// A portal link's token: in the link's query, or in the form of the page that asks a
/// visitor to continue.
#[derive(Deserialize)]
pub struct EnterToken {
    token: Option<String>,
}

const ASK_AGAIN: &str = "Open the portal again from the product you came from.";

fn refused_link(portal: &Portal, reason: &str) -> Response {
    portal.message(
        StatusCode::FORBIDDEN,
        None,
        "This link does not open the portal",
        reason,
    )
}

/// The claims of a link the hub signed and that has not expired, or the page saying why
/// the link does not open the portal.
fn link_claims(portal: &Portal, token: Option<&str>) -> Result<link::Claims, Response> {
    let claims = token
        .and_then(|token| link::verify(&portal.hub.vault.derived_keys(link::KEY_PURPOSE), token));
    let Some(claims) = claims else {
        tracing::warn!("refused a portal link that is not one the hub signed");
        return Err(refused_link(
            portal,
            &format!("It is not a valid portal link. {ASK_AGAIN}"),
        ));
    };
    if claims.exp <= store::now_ms() {
        return Err(refused_link(
            portal,
            &format!("It has expired: portal links work for a short while only. {ASK_AGAIN}"),
        ));
    }
    Ok(claims)
}

/// Whether the browser marked `request` as coming from another site. Browsers say where a
/// request came from in `Sec-Fetch-Site`; a form of the portal's own pages, framed or not,
/// is `same-origin`. Clients that do not send it are left to the CSRF token (and a link's
/// token), which only the portal's pages hold.
fn cross_site(request: &Request) -> bool {
    request
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() != b"same-origin")
}

/// Whether a browser is opening the page for its user: a navigation, in a window or a
/// frame (`Sec-Fetch-Mode`, which every current browser sends), not a prefetch.
fn user_navigation(request: &Request) -> bool {
    let headers = request.headers();
    let navigate = headers
        .get("sec-fetch-mode")
        .is_some_and(|mode| mode.as_bytes() == b"navigate");
    let prefetch = headers
        .get("sec-purpose")
        .or_else(|| headers.get("purpose"))
        .and_then(|purpose| purpose.to_str().ok())
        .is_some_and(|purpose| purpose.contains("prefetch") || purpose.contains("prerender"));
    navigate && !prefetch
}

/// Opens a portal link. A browser navigating to it spends it on a session at once, in a
/// window or in the operator's frame. Anything else that fetches it (a chat or mail client
/// making a preview, a link scanner, a prefetch) gets a page whose button spends it: a
/// link is spent by its first use, and a preview is not one.
#[handler]
pub async fn enter(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Query(query): Query<EnterToken>,
) -> Response {
    if user_navigation(request) {
        return spend_link(&portal, request, query.token.as_deref()).await;
    }
    let token = match link_claims(&portal, query.token.as_deref()) {
        Ok(_) => query.token.unwrap_or_default(),
        Err(refusal) => return refusal,
    };
    portal.page(
        StatusCode::OK,
        "portal/enter.html",
        context! { token => token },
    )
}

/// The button of the page [`enter`] shows when a link was fetched but not navigated to.
#[handler]
pub async fn enter_by_form(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Form(form): Form<EnterToken>,
) -> Response {
    // Another site's form would sign this browser in to a portal of the site's choosing.
    if cross_site(request) {
        return portal.forbidden();
    }
    spend_link(&portal, request, form.token.as_deref()).await
}

/// Spends a portal link on a session, and sends the browser to the portal.
async fn spend_link(portal: &Portal, request: &Request, token: Option<&str>) -> Response {
    let refused = |reason: &str| refused_link(portal, reason);
    let claims = match link_claims(portal, token) {
        Ok(claims) => claims,
        Err(refusal) => return refusal,
    };
    let now = store::now_ms();
    match portal.hub.tenancy.tenant(&claims.tenant).await {
        Ok(tenant) if tenant.created_at == claims.born => {}
        // Deleted, and the id given to a new tenant since: someone else's account.
        Ok(_) | Err(TenancyError::NotFound(_)) => {
            return refused(&format!("Its account no longer exists. {ASK_AGAIN}"));
        }
        Err(error) => return portal.failure(None, error),
    }
    let session_id = session::new_session_id();
    let lasts = portal.hub.config.portal.session_ttl;
    let opened = portal
        .hub
        .store
        .open_portal_session(&NewPortalSession {
            link_id: &claims.id,
            session_digest: &session::session_digest(&session_id),
            tenant_id: &claims.tenant,
            tenant_born: claims.born,
            now,
            expires_at: now.saturating_add(lasts.as_millis() as i64),
            link_expires_at: claims.exp,
        })
        .await;
    match opened {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(tenant = %claims.tenant, "refused a portal link that was used before");
            return refused(&format!(
                "It was used before, and each portal link opens the portal once. {ASK_AGAIN}"
            ));
        }
        Err(error) => return portal.failure(None, error.into()),
    }
    // This browser now holds the new session only: the one it had ends.
    if let Some(previous) = session::session_cookie(request.headers())
        && let Err(error) = portal
            .hub
            .store
            .end_portal_session(&session::session_digest(&previous), now)
            .await
    {
        tracing::warn!(%error, "could not end a replaced portal session");
    }
    tracing::info!(tenant = %claims.tenant, "opened a portal session");
    let mut response = Redirect::see_other("/portal").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::start_cookie(&session_id, lasts),
    );
    response
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf_token: Option<String>,
}

/// Ends the session on the server and drops the cookie.
#[handler]
pub async fn logout(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visitor = match portal.authorize(request, form.csrf_token.as_deref()).await {
        Ok(visitor) => visitor,
        Err(refusal) => return refusal,
    };
    let digest = session::session_digest(&visitor.session_id);
    if let Err(error) = portal
        .hub
        .store
        .end_portal_session(&digest, store::now_ms())
        .await
    {
        return portal.failure(Some(&visitor), error.into());
    }
    let mut response = portal.message(
        StatusCode::OK,
        None,
        "You have left the portal",
        "Open it again from the product you came from.",
    );
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::end_cookie());
    response
}

// ---- Endpoints ------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct ListQuery {
    after: Option<String>,
    done: Option<String>,
}

#[handler]
pub async fn list_endpoints(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Query(query): Query<ListQuery>,
) -> Response {
    let visitor = match portal.visitor(request).await {
        Ok(visitor) => visitor,
        Err(refusal) => return refusal,
    };
    let page = Page {
        after: query.after.filter(|after| after.len() <= MAX_CURSOR),
        limit: ENDPOINTS_PER_PAGE + 1,
    };
    let mut rows = match portal
        .hub
        .tenancy
        .endpoints(&visitor.tenant.id, &page)
        .await
    {
        Ok(rows) => rows,
        Err(error) => return portal.failure(Some(&visitor), error),
    };
    let next = more_after(&mut rows, ENDPOINTS_PER_PAGE, |row| row.id.clone());
    portal.page(
        StatusCode::OK,
        "portal/endpoints.html",
        context! {
            endpoints => rows.iter().map(endpoint_context).collect::<Vec<_>>(),
            next => next,
            flash => flash(query.done.as_deref(), None),
            ..visitor.base()
        },
    )
}

#[handler]
pub async fn new_endpoint(portal: Data<&Arc<Portal>>, request: &Request) -> Response {
    let visitor = match portal.visitor(request).await {
        Ok(visitor) => visitor,
        Err(refusal) => return refusal,
    };
    let form = EndpointForm {
        enabled: Some("on".into()),
        ..EndpointForm::default()
    };
    endpoint_form(&portal, &visitor, StatusCode::OK, None, &form, None)
}

#[handler]
pub async fn create_endpoint(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Form(form): Form<EndpointForm>,
) -> Response {
    let visitor = match portal.authorize(request, form.csrf_token.as_deref()).await {
        Ok(visitor) => visitor,
        Err(refusal) => return refusal,
    };
    let draft = match form.draft(None) {
        Ok(draft) => draft,
        Err(problem) => {
            return endpoint_form(
                &portal,
                &visitor,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                &form,
                Some(&problem),
            );
        }
    };
    match portal
        .hub
        .tenancy
        .create_endpoint(&visitor.tenant.id, draft, Actor::Tenant)
        .await
    {
        Ok(created) => portal.page(
            StatusCode::OK,
            "portal/secret.html",
            context! {
                endpoint => endpoint_context(&created.endpoint),
                secret => created.secret,
                rotated => false,
                ..visitor.base()
            },
        ),
        Err(error) => form_refusal(&portal, &visitor, None, &form, error),
    }
}

#[derive(Deserialize)]
pub struct EndpointQuery {
    state: Option<String>,
    before: Option<String>,
    done: Option<String>,
    n: Option<u64>,
}

#[handler]
pub async fn show_endpoint(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Path(id): Path<String>,
    Query(query): Query<EndpointQuery>,
) -> Response {
    let visitor = match portal.visitor(request).await {
        Ok(visitor) => visitor,
        Err(refusal) => return refusal,
    };
    // The endpoint first: its deliveries are listed only once it is known to be this
    // tenant's.
    let row = match portal.hub.tenancy.endpoint(&visitor.tenant.id, &id).await {
        Ok(row) => row,
        Err(error) => return portal.failure(Some(&visitor), error),
    };
    let state = query
        .state
        .as_deref()
        .filter(|s| matches!(*s, "pending" | "delivered" | "dead"));
    let before = query.before.as_deref().filter(|b| b.len() <= MAX_CURSOR);
    let mut deliveries = match portal
        .hub
        .store
        .endpoint_deliveries(
            &endpoints::channel_name(&row.id),
            before,
            state,
            DELIVERIES_PER_PAGE + 1,
        )
        .await
    {
        Ok(deliveries) => deliveries,
        Err(error) => return portal.failure(Some(&visitor), error.into()),
    };
    let older = more_after(&mut deliveries, DELIVERIES_PER_PAGE, |d| d.id.clone());
    portal.page(
        StatusCode::OK,
        "portal/endpoint.html",
        context! {
            endpoint => endpoint_context(&row),
            deliveries => deliveries.iter().map(delivery_row_context).collect::<Vec<_>>(),
            state => state,
            older => older,
            flash => flash(query.done.as_deref(), query.n),
            ..visitor.base()
        },
    )
}

#[handler]
pub async fn edit_endpoint(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Path(id): Path<String>,
) -> Response {
    let visitor = match portal.visitor(request).await {
        Ok(visitor) => visitor,
        Err(refusal) => return refusal,
    };
    let row = match portal.hub.tenancy.endpoint(&visitor.tenant.id, &id).await {
        Ok(row) => row,
        Err(error) => return portal.failure(Some(&visitor), error),
    };
    if row.url.is_none() {
        return operators_endpoint(&portal, &visitor);
    }
    endpoint_form(
        &portal,
        &visitor,
        StatusCode::OK,
        Some(&row.id),
        &EndpointForm::of(&row),
        None,
    )
}

#[handler]
pub async fn update_endpoint(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Path(id): Path<String>,
    Form(form): Form<EndpointForm>,
) -> Response {
    let visitor = match portal.authorize(request, form.csrf_token.as_deref()).await {
        Ok(visitor) => visitor,
        Err(refusal) => return refusal,
    };
    let current = match portal.hub.tenancy.endpoint(&visitor.tenant.id, &id).await {
        Ok(row) => row,
        Err(error) => return portal.failure(Some(&visitor), error),
    };
    if current.url.is_none() {
        return operators_endpoint(&portal, &visitor);
    }
    let draft = match form.draft(Some(&current)) {
        Ok(draft) => draft,
        Err(problem) => {
            return endpoint_form(
                &portal,
                &visitor,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&current.id),
                &form,
                Some(&problem),
            );
        }
    };
    match portal
        .hub
        .tenancy
        .update_endpoint(&visitor.tenant.id, &current.id, draft, Actor::Tenant)
        .await
    {
        Ok(row) => {
            Redirect::see_other(format!("/portal/endpoints/{}?done=saved", row.id)).into_response()
        }
        Err(error) => form_refusal(&portal, &visitor, Some(&current.id), &form, error),
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    csrf_token: Option<String>,
    confirm: Option<String>,
}

#[handler]
pub async fn delete_endpoint(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Path(id): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Response {
    let visitor = match portal.authorize(request, form.csrf_token.as_deref()).await {
        Ok(visitor) => visitor,
        Err(refusal) => return refusal,
    };
    if form.confirm.is_none() {
        return portal.message(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&visitor),
            "Nothing was deleted",
            "Tick the box that confirms the deletion, then delete again.",
        );
    }
    match portal
        .hub
        .tenancy
        .delete_endpoint(&visitor.tenant.id, &id)
        .await
    {
        Ok(()) => Redirect::see_other("/portal?done=deleted").into_response(),
        Err(error) => portal.failure(Some(&visitor), error),
    }
}

#[derive(Deserialize)]
pub struct RotateForm {
    csrf_token: Option<String>,
    grace: Option<String>,
}

/// The graces the rotate form offers; anything else is refused.
const GRACES: &[&str] = &["0", "1h", "24h", "7d"];

#[handler]
pub async fn rotate_secret(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Path(id): Path<String>,
    Form(form): Form<RotateForm>,
) -> Response {
    let visitor = match portal.authorize(request, form.csrf_token.as_deref()).await {
        Ok(visitor) => visitor,
        Err(refusal) => return refusal,
    };
    let grace = match form.grace.as_deref() {
        None => crate::tenancy::DEFAULT_GRACE,
        Some(grace) if GRACES.contains(&grace) => {
            crate::yaml::parse_duration(grace).expect("the offered graces parse")
        }
        Some(_) => {
            return portal.message(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&visitor),
                "The secret was not rotated",
                "Choose how long the old secret keeps working from the list.",
            );
        }
    };
    let secret = match portal
        .hub
        .tenancy
        .rotate_secret(&visitor.tenant.id, &id, grace)
        .await
    {
        Ok((secret, _)) => secret,
        Err(error) => return portal.failure(Some(&visitor), error),
    };
    let row = match portal.hub.tenancy.endpoint(&visitor.tenant.id, &id).await {
        Ok(row) => row,
        Err(error) => return portal.failure(Some(&visitor), error),
    };
    portal.page(
        StatusCode::OK,
        "portal/secret.html",
        context! {
            endpoint => endpoint_context(&row),
            secret => secret,
            rotated => true,
            ..visitor.base()
        },
    )
}

#[handler]
pub async fn send_test(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visitor = match portal.authorize(request, form.csrf_token.as_deref()).await {
        Ok(visitor) => visitor,
        Err(refusal) => return refusal,
    };
    match portal.hub.send_endpoint_test(&visitor.tenant.id, &id).await {
        Ok(_) => {
            Redirect::see_other(format!("/portal/endpoints/{id}?done=test-sent")).into_response()
        }
        Err(error) => portal.failure(Some(&visitor), error),
    }
}

#[derive(Deserialize)]
pub struct RecoverForm {
    csrf_token: Option<String>,
    since: Option<String>,
}

/// Replays every delivery to the endpoint that failed since a time.
#[handler]
pub async fn recover(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Path(id): Path<String>,
    Form(form): Form<RecoverForm>,
) -> Response {
    let visitor = match portal.authorize(request, form.csrf_token.as_deref()).await {
        Ok(visitor) => visitor,
        Err(refusal) => return refusal,
    };
    let since = match parse_since(form.since.as_deref().unwrap_or(""), store::now_ms()) {
        Ok(since) => since,
        Err(problem) => {
            return portal.message(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&visitor),
                "Nothing was replayed",
                &problem,
            );
        }
    };
    match portal
        .hub
        .tenancy
        .recover(&visitor.tenant.id, &id, since)
        .await
    {
        Ok(count) => {
            Redirect::see_other(format!("/portal/endpoints/{id}?done=recovered&n={count}"))
                .into_response()
        }
        Err(error) => portal.failure(Some(&visitor), error),
    }
}

// ---- Deliveries -----------------------------------------------------------------------

#[derive(Deserialize)]
pub struct DeliveryQuery {
    done: Option<String>,
}

#[handler]
pub async fn show_delivery(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Path((id, delivery)): Path<(String, String)>,
    Query(query): Query<DeliveryQuery>,
) -> Response {
    let visitor = match portal.visitor(request).await {
        Ok(visitor) => visitor,
        Err(refusal) => return refusal,
    };
    let detail = match portal
        .hub
        .endpoint_delivery(&visitor.tenant.id, &id, &delivery)
        .await
    {
        Ok(detail) => detail,
        Err(error) => return portal.failure(Some(&visitor), error),
    };
    portal.page(
        StatusCode::OK,
        "portal/delivery.html",
        context! {
            endpoint_id => id,
            delivery => delivery_context(&detail),
            flash => flash(query.done.as_deref(), None),
            ..visitor.base()
        },
    )
}

#[handler]
pub async fn replay(
    portal: Data<&Arc<Portal>>,
    request: &Request,
    Path((id, delivery)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visitor = match portal.authorize(request, form.csrf_token.as_deref()).await {
        Ok(visitor) => visitor,
        Err(refusal) => return refusal,
    };
    match portal
        .hub
        .replay_endpoint_delivery(&visitor.tenant.id, &id, &delivery)
        .await
    {
        Ok(detail) => Redirect::see_other(format!(
            "/portal/endpoints/{id}/deliveries/{}?done=replayed",
            detail.id
        ))
        .into_response(),
        Err(error) => portal.failure(Some(&visitor), error),
    }
}

// ---- Forms and what pages show --------------------------------------------------------

/// The endpoint form as posted (and as shown again when it is refused).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct EndpointForm {
    #[serde(default, skip_serializing)]
    csrf_token: Option<String>,
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: String,
    /// Kind globs, separated by commas or spaces.
    #[serde(default)]
    kinds: String,
    /// One attribute filter a line: `name=value` or `name=value1,value2`.
    #[serde(default)]
    attributes: String,
    #[serde(default)]
    rate_limit: String,
    /// Delays separated by commas or spaces; empty for the default; `none` for no retries.
    #[serde(default)]
    retry_schedule: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    enabled: Option<String>,
}

/// A field the form got wrong, and why.
#[derive(Debug)]
struct FormProblem {
    field: &'static str,
    message: String,
}

impl EndpointForm {
    /// The form filled in with `row`'s settings.
    fn of(row: &EndpointRow) -> EndpointForm {
        EndpointForm {
            csrf_token: None,
            url: row.url.clone().unwrap_or_default(),
            description: row.description.clone(),
            kinds: row.kinds.join(", "),
            attributes: row
                .attributes
                .iter()
                .map(|(name, values)| format!("{name}={}", values.join(",")))
                .collect::<Vec<_>>()
                .join("\n"),
            rate_limit: row.rate_limit.clone().unwrap_or_default(),
            retry_schedule: match &row.retry_schedule {
                None => String::new(),
                Some(delays) if delays.is_empty() => "none".into(),
                Some(delays) => delays.join(", "),
            },
            enabled: row.enabled.then(|| "on".into()),
        }
    }

    /// The draft the form describes. What the form does not show of `current` (the
    /// operator may have set the webhook's headers or transforms) is kept as it is.
    fn draft(&self, current: Option<&EndpointRow>) -> Result<EndpointDraft, FormProblem> {
        let url = self.url.trim();
        if url.is_empty() {
            return Err(FormProblem {
                field: "url",
                message: "give the URL your events are POSTed to".into(),
            });
        }
        let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in self
            .attributes
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let parsed = line.split_once('=').and_then(|(name, values)| {
                let values: Vec<String> = values
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .collect();
                (!name.trim().is_empty() && !values.is_empty())
                    .then(|| (name.trim().to_owned(), values))
            });
            let Some((name, values)) = parsed else {
                return Err(FormProblem {
                    field: "attributes",
                    message: "write one filter a line, as name=value or name=value1,value2".into(),
                });
            };
            attributes.entry(name).or_default().extend(values);
        }
        let retry_schedule = match self.retry_schedule.trim() {
            "" => None,
            none if none.eq_ignore_ascii_case("none") => Some(Vec::new()),
            delays => Some(words(delays)),
        };
        let rate_limit = Some(self.rate_limit.trim())
            .filter(|limit| !limit.is_empty())
            .map(str::to_owned);
        Ok(EndpointDraft {
            description: self.description.trim().to_owned(),
            url: Some(url.to_owned()),
            plugin: None,
            config: current.map(|row| row.config.clone()),
            allowed_hosts: Vec::new(),
            kinds: words(&self.kinds),
            attributes,
            transforms: current
                .map(|row| row.transforms.clone())
                .unwrap_or_default(),
            rate_limit,
            retry_schedule,
            enabled: self.enabled.is_some(),
            // A tenant's endpoints are URLs, which take no secrets but the signing one.
            secrets: None,
        })
    }
}

/// The items of a list written with commas, spaces or both.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The create or edit form, with a problem to show when there is one.
fn endpoint_form(
    portal: &Portal,
    visitor: &Visitor,
    status: StatusCode,
    endpoint_id: Option<&str>,
    form: &EndpointForm,
    problem: Option<&FormProblem>,
) -> Response {
    portal.page(
        status,
        "portal/endpoint_form.html",
        context! {
            endpoint_id => endpoint_id,
            form => form,
            error => problem.map(|p| format!("{}: {}", p.field, p.message)),
            error_field => problem.map(|p| p.field),
            ..visitor.base()
        },
    )
}

/// A refusal of a create or edit: the form again for what the user can fix.
fn form_refusal(
    portal: &Portal,
    visitor: &Visitor,
    endpoint_id: Option<&str>,
    form: &EndpointForm,
    error: TenancyError,
) -> Response {
    let (status, problem) = match error {
        TenancyError::Invalid { field, message } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            FormProblem {
                field: form_field(&field),
                message,
            },
        ),
        TenancyError::Conflict(message) => (
            StatusCode::CONFLICT,
            FormProblem {
                field: "endpoint",
                message,
            },
        ),
        other => return portal.failure(Some(visitor), other),
    };
    endpoint_form(portal, visitor, status, endpoint_id, form, Some(&problem))
}

/// The form's name for a field [`crate::tenancy`] names.
fn form_field(field: &str) -> &'static str {
    match field {
        "url" => "url",
        "description" => "description",
        "kinds" => "kinds",
        "attributes" => "attributes",
        "rate_limit" => "rate_limit",
        "retry_schedule" => "retry_schedule",
        _ => "endpoint",
    }
}

fn operators_endpoint(portal: &Portal, visitor: &Visitor) -> Response {
    portal.message(
        StatusCode::CONFLICT,
        Some(visitor),
        "This endpoint is managed for you",
        "Its delivery channel was set up by your provider; ask them to change it.",
    )
}

/// When `since` was, from how long ago (`24h`) or an RFC 3339 time.
fn parse_since(text: &str, now: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(ago) = crate::yaml::parse_duration(text) {
        return Ok(now.saturating_sub(ago.as_millis().min(i64::MAX as u128) as i64));
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|at| (at.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| "write how long ago, like 24h, or a time like 2026-11-24T09:30:00Z".to_owned())
}

/// Cuts `rows` (fetched one longer than a page) to `per_page`, and returns the cursor of
/// the next page when there is one.
fn more_after<T>(
    rows: &mut Vec<T>,
    per_page: u32,
    cursor: impl Fn(&T) -> String,
) -> Option<String> {
    if rows.len() <= per_page as usize {
        return None;
    }
    rows.truncate(per_page as usize);
    rows.last().map(cursor)
}

/// The message a redirect asked for, by its code: only these, so a link cannot make the
/// portal say anything else.
fn flash(done: Option<&str>, count: Option<u64>) -> Option<minijinja::Value> {
    let text = match done? {
        "saved" => "Endpoint saved.".to_owned(),
        "deleted" => "Endpoint deleted.".to_owned(),
        "test-sent" => "Test event sent. Its delivery is listed below.".to_owned(),
        "replayed" => "Delivery replayed: it is queued for delivery again.".to_owned(),
        "recovered" => match count.unwrap_or(0) {
            0 => "No failed deliveries since then: nothing was replayed.".to_owned(),
            1 => "1 failed delivery is queued for delivery again.".to_owned(),
            n => format!("{n} failed deliveries are queued for delivery again."),
        },
        _ => return None,
    };
    Some(context! { kind => "ok", text => text })
}

fn endpoint_context(row: &EndpointRow) -> minijinja::Value {
    context! {
        id => &row.id,
        url => &row.url,
        plugin => &row.plugin,
        description => &row.description,
        kinds => &row.kinds,
        attributes => row
            .attributes
            .iter()
            .map(|(name, values)| format!("{name} = {}", values.join(" or ")))
            .collect::<Vec<_>>(),
        rate_limit => &row.rate_limit,
        retry_schedule => match &row.retry_schedule {
            None => "the default (8 attempts over about a day)".to_owned(),
            Some(delays) if delays.is_empty() => "no retries".to_owned(),
            Some(delays) => delays.join(", "),
        },
        enabled => row.enabled,
        disabled_reason => &row.disabled_reason,
        failing_since => row.failing_since.map(format_time),
        previous_secret_until => row.previous_secret_until.map(format_time),
        created_at => format_time(row.created_at),
        editable => row.url.is_some(),
    }
}

fn delivery_row_context(delivery: &EndpointDelivery) -> minijinja::Value {
    context! {
        id => &delivery.id,
        notification_id => &delivery.notification_id,
        kind => &delivery.kind,
        state => &delivery.state,
        attempts => delivery.attempts,
        last_error => &delivery.last_error,
        created_at => format_time(delivery.created_at),
        next_attempt_at => (delivery.state == "pending").then(|| format_time(delivery.next_at)),
    }
}

fn delivery_context(detail: &DeliveryDetail) -> minijinja::Value {
    context! {
        id => &detail.id,
        notification_id => &detail.notification_id,
        state => &detail.state,
        attempts => detail.attempts,
        last_error => &detail.last_error,
        created_at => format_time(detail.created_at),
        next_attempt_at => detail
            .next_at
            .filter(|_| detail.state == "pending")
            .map(format_time),
        attempt_log => detail
            .attempt_log
            .iter()
            .map(|attempt| context! {
                attempt => attempt.attempt,
                started_at => format_time(attempt.started_at),
                duration_ms => attempt.duration_ms,
                outcome => &attempt.outcome,
                status => attempt.status,
                detail => &attempt.detail,
            })
            .collect::<Vec<_>>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(url: &str) -> EndpointForm {
        EndpointForm {
            url: url.into(),
            enabled: Some("on".into()),
            ..EndpointForm::default()
        }
    }

    #[test]
    fn the_form_reads_lists_filters_and_schedules() {
        let mut posted = form(" https://hooks.example.com/in ");
        posted.kinds = "invoice.*, user.created\norder.?".into();
        posted.attributes = "region = eu, us\n\n plan=pro\nregion=apac".into();
        posted.retry_schedule = "5s,5m 2h".into();
        posted.rate_limit = " 50/s ".into();
        let draft = posted.draft(None).unwrap();
        assert_eq!(draft.url.as_deref(), Some("https://hooks.example.com/in"));
        assert_eq!(draft.kinds, ["invoice.*", "user.created", "order.?"]);
        assert_eq!(
            draft.attributes,
            BTreeMap::from([
                ("plan".to_owned(), vec!["pro".to_owned()]),
                (
                    "region".to_owned(),
                    vec!["eu".to_owned(), "us".to_owned(), "apac".to_owned()]
                ),
            ])
        );
        assert_eq!(
            draft.retry_schedule,
            Some(vec!["5s".into(), "5m".into(), "2h".into()])
        );
        assert_eq!(draft.rate_limit.as_deref(), Some("50/s"));
        assert!(draft.enabled);

        let mut bare = form("https://x.example");
        bare.enabled = None;
        let draft = bare.draft(None).unwrap();
        assert_eq!((draft.retry_schedule, draft.rate_limit), (None, None));
        assert!(draft.kinds.is_empty() && !draft.enabled);

        let mut no_retries = form("https://x.example");
        no_retries.retry_schedule = "None".into();
        assert_eq!(no_retries.draft(None).unwrap().retry_schedule, Some(vec![]));
    }

    #[test]
    fn the_form_refuses_what_it_cannot_read() {
        assert_eq!(form("  ").draft(None).err().unwrap().field, "url");
        for attributes in ["region", "=eu", "region=", "region= , "] {
            let mut posted = form("https://x.example");
            posted.attributes = attributes.into();
            assert_eq!(
                posted.draft(None).err().unwrap().field,
                "attributes",
                "{attributes:?}"
            );
        }
    }

    #[test]
    fn a_row_fills_the_form_and_reads_back_the_same() {
        let mut posted = form("https://x.example/h");
        posted.kinds = "a.*, b".into();
        posted.attributes = "region=eu,us".into();
        posted.retry_schedule = "none".into();
        let draft = posted.draft(None).unwrap();
        let row = EndpointRow {
            id: "e".into(),
            tenant_id: "t".into(),
            description: draft.description.clone(),
            url: draft.url.clone(),
            plugin: "webhook".into(),
            config: serde_json::json!({"headers": {"x-team": "ops"}}),
            allowed_hosts: vec!["x.example".into()],
            kinds: draft.kinds.clone(),
            attributes: draft.attributes.clone(),
            transforms: vec!["redact".into()],
            rate_limit: None,
            retry_schedule: draft.retry_schedule.clone(),
            enabled: true,
            disabled_reason: None,
            previous_secret_until: None,
            failing_since: None,
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
            secret_names: Vec::new(),
        };
        let again = EndpointForm::of(&row).draft(Some(&row)).unwrap();
        assert_eq!(again.kinds, draft.kinds);
        assert_eq!(again.attributes, draft.attributes);
        assert_eq!(again.retry_schedule, Some(vec![]));
        // What the form does not show stays as the operator set it.
        assert_eq!(again.config, Some(row.config.clone()));
        assert_eq!(again.transforms, ["redact"]);
    }

    #[test]
    fn since_is_how_long_ago_or_a_time() {
        let now = 1_795_910_400_000;
        assert_eq!(parse_since("24h", now), Ok(now - 24 * 3_600_000));
        assert_eq!(parse_since("2026-11-29T00:00:00Z", now), Ok(now));
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("", now).is_err());
    }

    #[test]
    fn only_known_flash_codes_say_anything() {
        assert!(flash(Some("saved"), None).is_some());
        assert!(flash(Some("<script>"), None).is_none());
        assert!(flash(None, None).is_none());
    }

    #[test]
    fn the_offered_graces_parse() {
        for grace in GRACES {
            crate::yaml::parse_duration(grace).unwrap();
        }
    }
}
