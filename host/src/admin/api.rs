//! The admin parts of the OpenAPI spec: signing in and out with the same cookie sessions as
//! the pages, and managing uploaded plugins with an API token.
//!
//! A script signs in the way a browser does: `GET /api/v1/session/csrf` sets a session
//! cookie and returns its CSRF token (nothing is stored on the server until sign-in; see
//! `session`); `POST /api/v1/session` with that cookie and the token in `X-CSRF-Token`
//! signs in and gives the session a new id; every later state-changing call sends the new
//! token; `DELETE /api/v1/session` signs out.

// Problem answers are returned by value only on the error path; see ingress/rest.rs.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use poem::http::StatusCode;
use poem::session::Session;
use poem::web::cookie::CookieJar;
use poem_openapi::auth::ApiKey;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{Multipart, Object, OpenApi, SecurityScheme, Tags};

use super::users::{self, SignInError};
use super::{Admin, SignedIn};
use crate::ingress::rest::AdminToken;
use crate::ingress::{Problem, ProblemResponse, StrictJson};
use crate::plugins::PluginAdminError;

type ApiResult<T> = Result<T, ProblemResponse>;

#[derive(Tags)]
enum Tag {
    /// Signing in to the admin console and out again, with a session cookie.
    Session,
    /// Uploading plugins, choosing their active version, enabling and disabling them.
    PluginAdmin,
}

/// The admin session cookie, set by signing in. It is `__Host-`-prefixed, `Secure`,
/// `HttpOnly` and `SameSite=Strict`; state-changing calls also need `X-CSRF-Token`.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "__Host-switchyard-session",
    key_in = "cookie"
)]
pub struct SessionCookie(pub ApiKey);

/// The session endpoints.
pub struct SessionApi {
    admin: Arc<Admin>,
}

impl SessionApi {
    pub fn new(admin: Arc<Admin>) -> SessionApi {
        SessionApi { admin }
    }
}

/// A username and password.
#[derive(Object, serde::Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
struct SignInIn {
    username: String,
    password: String,
}

impl Example for SignInIn {
    fn example() -> Self {
        SignInIn {
            username: "admin".into(),
            password: "correct horse battery staple".into(),
        }
    }
}

/// A CSRF token in the examples.
const EXAMPLE_CSRF: &str = "5d1f0c9e3b7a4e2f8c6d0a1b9e7f3c5d";

/// A session's CSRF token: send it as `X-CSRF-Token` on state-changing calls.
#[derive(Object)]
#[oai(example)]
struct CsrfOut {
    csrf_token: String,
}

impl Example for CsrfOut {
    fn example() -> Self {
        CsrfOut {
            csrf_token: EXAMPLE_CSRF.into(),
        }
    }
}

/// Who is signed in.
#[derive(Object)]
#[oai(example)]
struct WhoAmIOut {
    username: String,
    /// The session's CSRF token for state-changing calls.
    csrf_token: String,
}

impl Example for WhoAmIOut {
    fn example() -> Self {
        WhoAmIOut {
            username: "admin".into(),
            csrf_token: EXAMPLE_CSRF.into(),
        }
    }
}

impl From<SignedIn> for WhoAmIOut {
    fn from(user: SignedIn) -> Self {
        WhoAmIOut {
            username: user.username,
            csrf_token: user.csrf_token,
        }
    }
}

fn csrf_refused() -> ProblemResponse {
    Problem::new(
        StatusCode::FORBIDDEN,
        "send this session's CSRF token as `X-CSRF-Token` (GET /api/v1/session/csrf gives one)",
    )
    .code("csrf")
    .into()
}

fn not_signed_in() -> ProblemResponse {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "not signed in, or the session has timed out; sign in with POST /api/v1/session",
    )
    .code("not-signed-in")
    .into()
}

#[OpenApi(prefix_path = "/api/v1")]
impl SessionApi {
    /// Get a CSRF token, needed to sign in.
    ///
    /// The signed-in session's, or else one tied to the session cookie this sets (the
    /// server stores nothing until sign-in).
    #[oai(
        path = "/session/csrf",
        method = "get",
        tag = "Tag::Session",
        operation_id = "getCsrfToken"
    )]
    async fn csrf(&self, session: &Session, cookies: &CookieJar) -> Json<CsrfOut> {
        let csrf_token = match self.admin.rules.signed_in(session) {
            Some(user) => user.csrf_token,
            None => self.admin.rules.csrf_token(session, cookies),
        };
        Json(CsrfOut { csrf_token })
    }

    /// Sign in to an admin session.
    ///
    /// The session gets a new id (the old one stops working) and a new CSRF token. A wrong
    /// password and an unknown user get the same answer; ten failures on one username
    /// within 15 minutes lock it for a while (`switchyard admin unlock` ends that early).
    /// A username over `admin.max_username_bytes` gets the wrong-password answer. When
    /// every password-hashing slot stays busy, the answer is 503 with `Retry-After`.
    #[oai(
        path = "/session",
        method = "post",
        tag = "Tag::Session",
        operation_id = "signIn"
    )]
    async fn sign_in(
        &self,
        session: &Session,
        cookies: &CookieJar,
        #[oai(name = "X-CSRF-Token")] csrf_token: Header<Option<String>>,
        body: StrictJson<SignInIn>,
    ) -> ApiResult<Json<WhoAmIOut>> {
        let rules = &self.admin.rules;
        if !rules.sign_in_csrf_ok(session, cookies, csrf_token.0.as_deref()) {
            return Err(csrf_refused());
        }
        let now = rules.clock.now_ms();
        let admin = &self.admin;
        match users::sign_in(
            &admin.hub.store,
            &admin.sign_in_limits,
            &body.0.username,
            &body.0.password,
            now,
        )
        .await
        {
            Ok(username) => Ok(Json(rules.sign_in(session, &username).into())),
            Err(refused @ SignInError::Busy) => Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                refused.to_string(),
            )
            .code("busy")
            .into()),
            Err(SignInError::Store(error)) => {
                tracing::error!(%error, "sign-in failed");
                Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "signing in is not possible right now; retry shortly",
                )
                .into())
            }
            Err(refused @ SignInError::WrongCredentials) => {
                Err(Problem::new(StatusCode::UNAUTHORIZED, refused.to_string()).into())
            }
            Err(refused @ SignInError::Locked) => {
                Err(Problem::new(StatusCode::TOO_MANY_REQUESTS, refused.to_string()).into())
            }
        }
    }

    /// Who is signed in on this session.
    #[oai(
        path = "/session",
        method = "get",
        tag = "Tag::Session",
        operation_id = "getSession"
    )]
    async fn who_am_i(
        &self,
        _cookie: SessionCookie,
        session: &Session,
    ) -> ApiResult<Json<WhoAmIOut>> {
        let user = self
            .admin
            .rules
            .signed_in(session)
            .ok_or_else(not_signed_in)?;
        Ok(Json(user.into()))
    }

    /// Sign out.
    ///
    /// The session is destroyed on the server and its cookie cleared.
    #[oai(
        path = "/session",
        method = "delete",
        tag = "Tag::Session",
        operation_id = "signOut"
    )]
    async fn sign_out(
        &self,
        _cookie: SessionCookie,
        session: &Session,
        #[oai(name = "X-CSRF-Token")] csrf_token: Header<Option<String>>,
    ) -> ApiResult<()> {
        if !self.admin.rules.csrf_ok(session, csrf_token.0.as_deref()) {
            return Err(csrf_refused());
        }
        session.purge();
        Ok(())
    }
}

/// The plugin endpoints, for API tokens with the `admin` scope.
pub struct PluginAdminApi {
    admin: Arc<Admin>,
}

impl PluginAdminApi {
    pub fn new(admin: Arc<Admin>) -> PluginAdminApi {
        PluginAdminApi { admin }
    }
}

/// A plugin upload.
#[derive(Multipart)]
#[oai(deny_unknown_fields)]
struct UploadIn {
    /// The plugin's name: 1 to 64 lowercase letters, digits, `-` and `_`, starting with a
    /// letter or digit. An existing name gets a new version.
    #[oai(validator(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$"))]
    name: String,
    /// The component, built for wasm32-wasip2.
    file: Upload,
}

/// A stored plugin version.
#[derive(Object)]
#[oai(example)]
struct UploadedOut {
    name: String,
    /// adapter, channel or transform.
    world: String,
    /// The stored version, counting from 1.
    version: i64,
    /// Whether this version is the one that runs.
    active: bool,
}

impl Example for UploadedOut {
    fn example() -> Self {
        UploadedOut {
            name: "pagerduty".into(),
            world: "channel".into(),
            version: 3,
            active: true,
        }
    }
}

/// Which version to run.
#[derive(Object, serde::Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
struct ActivateIn {
    /// A stored version of the plugin.
    version: i64,
}

impl Example for ActivateIn {
    fn example() -> Self {
        ActivateIn { version: 2 }
    }
}

/// Whether the plugin may run.
#[derive(Object, serde::Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
struct EnabledIn {
    enabled: bool,
}

impl Example for EnabledIn {
    fn example() -> Self {
        EnabledIn { enabled: false }
    }
}

fn plugin_problem(error: PluginAdminError) -> ProblemResponse {
    let status = match &error {
        PluginAdminError::UnknownPlugin(_) | PluginAdminError::UnknownVersion { .. } => {
            StatusCode::NOT_FOUND
        }
        PluginAdminError::Store(error) => {
            tracing::error!(%error, "a plugin change failed");
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is not answering; retry shortly",
            )
            .into();
        }
        PluginAdminError::Invalid(crate::runtime::LoadError::TooLarge { .. }) => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Problem::new(status, error.to_string())
        .code("invalid-plugin")
        .into()
}

#[OpenApi(prefix_path = "/api/v1")]
impl PluginAdminApi {
    /// Upload a plugin, or a new version of one.
    ///
    /// It is checked against the adapter, channel and transform worlds first; once stored
    /// it is the active version, without a restart.
    #[oai(
        path = "/plugins",
        method = "post",
        tag = "Tag::PluginAdmin",
        operation_id = "uploadPlugin"
    )]
    async fn upload(&self, token: AdminToken, body: UploadIn) -> ApiResult<Json<UploadedOut>> {
        let bytes = body.file.into_vec().await.map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                format!("could not read the file: {e}"),
            )
        })?;
        let by = format!("token {}", token.0.name);
        let (plugin, version) = self
            .admin
            .hub
            .plugins
            .upload(&body.name, &bytes, &by)
            .await
            .map_err(plugin_problem)?;
        Ok(Json(UploadedOut {
            name: body.name,
            world: plugin.world().to_string(),
            version,
            active: true,
        }))
    }

    /// Choose which stored version of an uploaded plugin runs.
    ///
    /// A rollback or a roll-forward, without a restart.
    #[oai(
        path = "/plugins/:name/active",
        method = "put",
        tag = "Tag::PluginAdmin",
        operation_id = "activatePluginVersion"
    )]
    async fn activate(
        &self,
        _token: AdminToken,
        name: Path<String>,
        body: StrictJson<ActivateIn>,
    ) -> ApiResult<()> {
        self.admin
            .hub
            .plugins
            .activate(&name.0, body.0.version)
            .await
            .map_err(plugin_problem)
    }

    /// Enable or disable an uploaded plugin.
    ///
    /// Deliveries that need a disabled plugin wait on their retry schedule.
    #[oai(
        path = "/plugins/:name/enabled",
        method = "put",
        tag = "Tag::PluginAdmin",
        operation_id = "setPluginEnabled"
    )]
    async fn set_enabled(
        &self,
        _token: AdminToken,
        name: Path<String>,
        body: StrictJson<EnabledIn>,
    ) -> ApiResult<()> {
        self.admin
            .hub
            .plugins
            .set_enabled(&name.0, body.0.enabled)
            .await
            .map_err(plugin_problem)
    }
}
