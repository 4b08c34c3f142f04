//! The customer portal: server-rendered pages under `/portal` where one tenant's people
//! manage that tenant's endpoints, follow their deliveries and attempts, replay failures,
//! rotate signing secrets and send test events.
//!
//! Nobody signs in to the portal. The operator (with an admin API token, or from the admin
//! console) mints a short-lived link to one tenant's portal ([`mint_link`],
//! `POST /api/v1/tenants/{tenant}/portal-links`) and hands it to their customer, typically
//! as the `src` of an iframe in their own product. Opening the link spends it on a portal
//! session (see [`link`] and [`session`]); every page then takes the tenant from that
//! session alone and passes it to [`crate::tenancy`], which answers "not found" for
//! another tenant's ids, so ids in URLs and forms reach nothing of anyone else's.
//!
//! The pages meet the admin console's bar: no scripts, a CSRF token on every form (checked
//! before anything else), `no-store`, a Content Security Policy that allows only the
//! portal's own stylesheet, and no referrer (the link's token is in a URL). Unlike the
//! console, the portal may be framed, by the origins in `portal.frame_ancestors` only.

mod api;
mod link;
mod pages;
mod session;

use std::sync::Arc;

use minijinja::Environment;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, post};

pub use api::PortalApi;

use crate::pipeline::Hub;
use crate::tenancy::TenancyError;

/// A link that opens one tenant's portal once, until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalLink {
    pub url: String,
    pub expires_at_ms: i64,
}

/// Mints a link to `tenant`'s portal: it opens one portal session, within
/// `portal.link_ttl`. Not found when there is no such tenant.
pub async fn mint_link(hub: &Hub, tenant: &str) -> Result<PortalLink, TenancyError> {
    let born = hub.tenancy.tenant(tenant).await?.created_at;
    let expires_at_ms =
        crate::store::now_ms().saturating_add(hub.config.portal.link_ttl.as_millis() as i64);
    let key = hub
        .vault
        .derived_keys(link::KEY_PURPOSE)
        .into_iter()
        .next()
        .expect("a key ring holds at least one key");
    let token = link::sign(&key, &link::Claims::new(tenant, born, expires_at_ms));
    tracing::info!(tenant, "minted a portal link");
    let mut base = hub.config.public_url();
    if hub.config.public_url.is_none() {
        // As the admin console's address in the banner: the session cookie is `Secure`,
        // and browsers keep such cookies over plain http only for `localhost`.
        base = base.replacen("://127.0.0.1:", "://localhost:", 1);
    }
    Ok(PortalLink {
        url: format!("{base}/portal/enter?token={token}"),
        expires_at_ms,
    })
}

/// The page templates, compiled into the binary so it runs from any directory.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "portal/base.html",
        include_str!("../../../templates/portal/base.html"),
    ),
    (
        "portal/endpoints.html",
        include_str!("../../../templates/portal/endpoints.html"),
    ),
    (
        "portal/endpoint.html",
        include_str!("../../../templates/portal/endpoint.html"),
    ),
    (
        "portal/endpoint_form.html",
        include_str!("../../../templates/portal/endpoint_form.html"),
    ),
    (
        "portal/secret.html",
        include_str!("../../../templates/portal/secret.html"),
    ),
    (
        "portal/delivery.html",
        include_str!("../../../templates/portal/delivery.html"),
    ),
    (
        "portal/message.html",
        include_str!("../../../templates/portal/message.html"),
    ),
    (
        "portal/enter.html",
        include_str!("../../../templates/portal/enter.html"),
    ),
];

/// The admin console's stylesheet and the portal's few additions, served as one under
/// `/portal`: an operator may well expose `/portal` to their customers and keep `/admin`
/// off the internet.
const STYLESHEET: &str = concat!(
    include_str!("../../../templates/static/admin.css"),
    include_str!("../../../templates/portal/portal.css"),
);

/// What the pages need: the hub, the templates and the headers every page carries.
pub struct Portal {
    hub: Arc<Hub>,
    templates: Environment<'static>,
    content_security_policy: HeaderValue,
    /// Whether to send `X-Frame-Options: DENY`: when no origin may frame the portal. It
    /// cannot name origins, so with any it is left to `frame-ancestors`.
    deny_framing: bool,
}

impl Portal {
    pub fn new(hub: Arc<Hub>) -> Portal {
        let ancestors = frame_sources(&hub.config.portal.frame_ancestors);
        let frame_ancestors = if ancestors.is_empty() {
            "'none'".to_owned()
        } else {
            ancestors.join(" ")
        };
        // The admin console's policy, but for who may frame the pages.
        let policy = format!(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors {frame_ancestors}; base-uri 'none'"
        );
        Portal {
            hub,
            templates: templates(),
            content_security_policy: HeaderValue::from_str(&policy)
                .expect("the sources were checked to be plain ASCII"),
            deny_framing: ancestors.is_empty(),
        }
    }

    /// Renders `template` as an HTML response with `status`.
    fn page(&self, status: StatusCode, template: &str, context: minijinja::Value) -> Response {
        match self
            .templates
            .get_template(template)
            .and_then(|t| t.render(context))
        {
            Ok(html) => html_response(status, html),
            Err(error) => {
                tracing::error!(%error, template, "a portal page failed to render");
                html_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!doctype html><title>Error</title><p>This page failed to render; the \
                     server log has the details."
                        .to_owned(),
                )
            }
        }
    }

    /// Adds the headers every portal answer carries, pages, redirects and errors alike.
    fn secure(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        // Pages show live state and CSRF tokens; only the stylesheet says otherwise.
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            self.content_security_policy.clone(),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if self.deny_framing {
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        } else {
            headers.remove(header::X_FRAME_OPTIONS);
        }
        // A link's token is in the URL of the first page: no page tells anyone its URL.
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        response
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(html)
}

/// The built-in templates, registered under their file names so autoescape applies.
fn templates() -> Environment<'static> {
    let mut templates = Environment::new();
    for (name, source) in TEMPLATES {
        templates
            .add_template(name, source)
            .expect("the built-in templates parse");
    }
    templates
}

/// The `frame-ancestors` sources of `configured`: each must be an origin such as
/// `https://app.example.com` (a port, and a `*.` wildcard for subdomains, are allowed).
/// The config is refused when an entry is not one; should one get here all the same, it
/// is left out and logged, so a mistake can narrow who may frame the portal, never widen
/// it or reach past the directive.
fn frame_sources(configured: &[String]) -> Vec<String> {
    configured
        .iter()
        .filter_map(|entry| {
            let source = entry.trim().trim_end_matches('/');
            if is_origin_source(source) {
                Some(source.to_ascii_lowercase())
            } else {
                tracing::error!(
                    entry = ?entry,
                    "portal.frame_ancestors: not an origin such as https://app.example.com; left out"
                );
                None
            }
        })
        .collect()
}

/// Whether `source` is an origin as `frame-ancestors` takes one: http(s), a host (or
/// `*.` and a domain), and an optional port.
pub(crate) fn is_origin_source(source: &str) -> bool {
    let Some((scheme, rest)) = source.split_once("://") else {
        return false;
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "https" | "http") {
        return false;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let port_ok = port.is_none_or(|p| {
        p == "*" || (!p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
    });
    let host = host.strip_prefix("*.").unwrap_or(host);
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    port_ok && host_ok
}

/// The `/portal` routes, with the portal attached. Every answer under them, errors
/// included, is an HTML page with the portal's headers.
pub fn routes(hub: Arc<Hub>) -> impl Endpoint {
    let portal = Arc::new(Portal::new(hub));
    let with_headers = portal.clone();
    Route::new()
        .at("/", get(pages::list_endpoints))
        .at("/enter", get(pages::enter).post(pages::enter_by_form))
        .at("/logout", post(pages::logout))
        .at("/endpoints", post(pages::create_endpoint))
        .at("/endpoints/new", get(pages::new_endpoint))
        .at(
            "/endpoints/:endpoint",
            get(pages::show_endpoint).post(pages::update_endpoint),
        )
        .at("/endpoints/:endpoint/edit", get(pages::edit_endpoint))
        .at("/endpoints/:endpoint/delete", post(pages::delete_endpoint))
        .at("/endpoints/:endpoint/rotate", post(pages::rotate_secret))
        .at("/endpoints/:endpoint/test", post(pages::send_test))
        .at("/endpoints/:endpoint/recover", post(pages::recover))
        .at(
            "/endpoints/:endpoint/deliveries/:delivery",
            get(pages::show_delivery),
        )
        .at(
            "/endpoints/:endpoint/deliveries/:delivery/replay",
            post(pages::replay),
        )
        .at("/static/portal.css", get(stylesheet))
        .data(portal)
        .around(move |endpoint, request: Request| {
            let portal = with_headers.clone();
            async move {
                let response = match endpoint.call(request).await {
                    Ok(response) => response.into_response(),
                    Err(error) => pages::error_page(&portal, error.status()),
                };
                Ok(portal.secure(response))
            }
        })
}

#[poem::handler]
fn stylesheet() -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .body(STYLESHEET)
}

/// Shows a Unix-millisecond time as UTC, to the second: `2026-11-24T20:15:00Z`.
fn format_time(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ancestors_take_origins_only() {
        let configured: Vec<String> = [
            "https://app.example.com",
            "https://*.example.org:8443/",
            "http://127.0.0.1:5000",
            "https://evil.example; script-src *",
            "'self'",
            "*",
            "https://",
            "javascript://x",
            "https://a b.example",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            frame_sources(&configured),
            [
                "https://app.example.com",
                "https://*.example.org:8443",
                "http://127.0.0.1:5000"
            ]
        );
    }

    #[test]
    fn every_template_renders_and_escapes_what_it_shows() {
        let hostile = "<script>alert(1)</script>";
        let endpoint = minijinja::context! {
            id => "019ae0d2-7a10-7c3b-8e21-4b5c6d7e8f90",
            url => format!("https://hooks.example.com/{hostile}"),
            plugin => "webhook",
            description => hostile,
            kinds => ["invoice.*"],
            attributes => ["region = eu"],
            retry_schedule => "no retries",
            enabled => true,
            created_at => "2026-11-24T09:30:00Z",
            editable => true,
        };
        let context = minijinja::context! {
            tenant => minijinja::context! { id => "acme", name => hostile },
            csrf_token => "token",
            title => hostile,
            message => hostile,
            status => 404,
            endpoints => vec![endpoint.clone()],
            endpoint => endpoint,
            endpoint_id => "019ae0d2-7a10-7c3b-8e21-4b5c6d7e8f90",
            form => minijinja::context! { url => hostile, enabled => "on" },
            error => hostile,
            secret => "whsec_c2VjcmV0",
            deliveries => [minijinja::context! {
                id => "d1", kind => hostile, state => "dead", attempts => 1,
                last_error => hostile, created_at => "2026-11-24T09:30:00Z",
            }],
            delivery => minijinja::context! {
                id => "d1", notification_id => "n1", state => "dead", attempts => 1,
                last_error => hostile, created_at => "2026-11-24T09:30:00Z",
                attempt_log => [minijinja::context! {
                    attempt => 1, started_at => "2026-11-24T09:30:00Z", duration_ms => 12,
                    outcome => "failed", status => 500, detail => hostile,
                }],
            },
            flash => minijinja::context! { kind => "ok", text => hostile },
        };
        let portal_templates = templates();
        for (name, _) in TEMPLATES {
            let html = portal_templates
                .get_template(name)
                .unwrap()
                .render(&context)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(html.contains("<html"), "{name}");
            assert!(!html.contains("<script"), "{name} shows markup unescaped");
        }
    }
}
