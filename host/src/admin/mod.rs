//! The admin console: server-rendered pages under `/admin` and the session endpoints of the
//! API, both on the same cookie sessions.
//!
//! Every page but the sign-in page needs a signed-in session; every POST needs the
//! session's CSRF token as well, or it gets 403 before anything else is looked at.

pub mod api;
mod pages;
pub mod session;
mod tenants;
pub mod users;

use std::sync::Arc;

use minijinja::Environment;
use poem::http::{HeaderValue, StatusCode, header};
use poem::session::ServerSession;
use poem::{EndpointExt, IntoEndpoint, Response, Route, get, post};

use crate::config::AdminConfig;
use crate::pipeline::Hub;
pub use session::{Clock, ExpiringSessions, SessionRules, SignedIn};

/// The page templates, compiled into the binary so it runs from any directory.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../../templates/base.html")),
    ("login.html", include_str!("../../../templates/login.html")),
    (
        "dashboard.html",
        include_str!("../../../templates/dashboard.html"),
    ),
    (
        "plugins.html",
        include_str!("../../../templates/plugins.html"),
    ),
    (
        "routes.html",
        include_str!("../../../templates/routes.html"),
    ),
    (
        "secrets.html",
        include_str!("../../../templates/secrets.html"),
    ),
    (
        "tenants.html",
        include_str!("../../../templates/tenants.html"),
    ),
    (
        "tenant.html",
        include_str!("../../../templates/tenant.html"),
    ),
    ("error.html", include_str!("../../../templates/error.html")),
];

const STYLESHEET: &str = include_str!("../../../templates/static/admin.css");

/// What the console needs: the hub, the session rules, the limits on signing in and the
/// templates.
pub struct Admin {
    pub hub: Arc<Hub>,
    pub rules: SessionRules,
    pub sign_in_limits: users::SignInLimits,
    templates: Environment<'static>,
}

/// The console's parts that are set up before the HTTP app: the session store (which may
/// be Redis, so it is connected first) and the clock.
pub struct Console {
    pub sessions: ExpiringSessions,
    pub rules: SessionRules,
}

impl Console {
    /// Sessions as `config` says, on `clock`.
    pub async fn open(config: &AdminConfig, clock: Clock) -> anyhow::Result<Console> {
        Ok(Console {
            sessions: ExpiringSessions::open(&config.sessions, config.idle_timeout).await?,
            rules: SessionRules {
                clock,
                idle_timeout: config.idle_timeout,
                absolute_timeout: config.absolute_timeout,
            },
        })
    }
}

impl Admin {
    pub fn new(hub: Arc<Hub>, rules: SessionRules) -> Admin {
        Admin {
            sign_in_limits: users::SignInLimits::from_config(&hub.config.admin),
            hub,
            rules,
            templates: templates(),
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
                tracing::error!(%error, template, "an admin page failed to render");
                html_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!doctype html><title>Error</title><p>This page failed to render; the \
                     server log has the details."
                        .to_owned(),
                )
            }
        }
    }
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

/// The `/admin` routes. `ServerSession` wraps the whole app (see [`with_sessions`]), so
/// the API's session endpoints share these sessions.
pub fn routes() -> Route {
    Route::new()
        .at("/", get(pages::dashboard))
        .at("/login", get(pages::login_form).post(pages::login))
        .at("/logout", post(pages::logout))
        .at("/plugins", get(pages::plugins).post(pages::upload_plugin))
        .at("/plugins/:name/:action", post(pages::plugin_action))
        .at("/routes", get(pages::routes))
        .at("/routes/validate", post(pages::validate_routes))
        .at("/routes/reload", post(pages::reload_routes))
        .at("/secrets", get(pages::secrets).post(pages::set_secret))
        .at("/dead-letters/:id/replay", post(pages::replay))
        .at("/tenants", get(tenants::list).post(tenants::create))
        .at("/tenants/:tenant", get(tenants::show))
        .at("/tenants/:tenant/rename", post(tenants::rename))
        .at("/tenants/:tenant/delete", post(tenants::delete))
        .at("/tenants/:tenant/portal", post(tenants::open_portal))
        .at("/tenants/:tenant/endpoints", post(tenants::create_endpoint))
        .at(
            "/tenants/:tenant/endpoints/:endpoint/:action",
            post(tenants::endpoint_action),
        )
        .at("/static/admin.css", get(stylesheet))
}

/// Wraps `endpoint` in cookie sessions kept in `sessions`.
pub fn with_sessions<E: IntoEndpoint>(
    endpoint: E,
    sessions: ExpiringSessions,
) -> impl poem::Endpoint {
    endpoint
        .into_endpoint()
        .with(ServerSession::new(session::cookie_config(), sessions))
}

#[poem::handler]
fn stylesheet() -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .body(STYLESHEET)
}

/// An HTML response with the headers every admin page carries: no caching (pages show
/// live state and CSRF tokens), no framing, and a policy that allows only our stylesheet.
fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(html);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
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
    fn times_show_as_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_795_910_400_999), "2026-11-29T00:00:00Z");
    }

    #[test]
    fn every_template_renders_with_an_empty_context() {
        let admin_templates = templates();
        for (name, _) in TEMPLATES {
            let html = admin_templates
                .get_template(name)
                .unwrap()
                .render(minijinja::context! {})
                .unwrap();
            assert!(html.contains("<html"), "{name}");
        }
    }
}
