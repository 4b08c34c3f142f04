//! The console's pages. Each POST redirects back to a page (post/redirect/get) with a
//! one-time flash message in the session, so a reload never repeats an action.

// A refusal (a redirect or an error page) is a `Response` returned by value: it is only
// built on the way out, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::sync::Arc;

use minijinja::context;
use poem::http::StatusCode;
use poem::session::Session;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Multipart, Path, Redirect};
use poem::{IntoResponse, Response, handler};
use serde::{Deserialize, Serialize};

use super::users::{self, SignInError};
use super::{Admin, SignedIn, format_time};
use crate::runtime::{BUILTIN_PLUGINS, Plugin};
use crate::store::{DeadLetterFilter, NotificationFilter};

const FLASH: &str = "flash";
const LOGIN_PAGE: &str = "/admin/login";

#[derive(Debug, Serialize, Deserialize)]
struct Flash {
    kind: String,
    text: String,
}

impl Admin {
    /// The signed-in admin, or a redirect to the sign-in page.
    pub(super) fn require_user(&self, session: &Session) -> Result<SignedIn, Response> {
        self.rules
            .signed_in(session)
            .ok_or_else(|| Redirect::see_other(LOGIN_PAGE).into_response())
    }

    /// For a state-changing request: the CSRF token first (403 without it, whoever asks),
    /// then a signed-in admin.
    pub(super) fn authorize(
        &self,
        session: &Session,
        csrf_token: Option<&str>,
    ) -> Result<SignedIn, Response> {
        if !self.rules.csrf_ok(session, csrf_token) {
            return Err(self.forbidden());
        }
        self.require_user(session)
    }

    fn forbidden(&self) -> Response {
        self.page(
            StatusCode::FORBIDDEN,
            "error.html",
            context! {
                status => 403,
                message => "This form has expired or did not come from this site. Go back, \
                            reload the page and try again.",
            },
        )
    }

    /// A page for `user`, with the base template's variables and any waiting flash.
    pub(super) fn user_page(
        &self,
        session: &Session,
        user: &SignedIn,
        template: &str,
        context: minijinja::Value,
    ) -> Response {
        self.user_page_with_status(StatusCode::OK, session, user, template, context)
    }

    /// [`Admin::user_page`] with another status, such as 422 for a form shown again with
    /// what was wrong in it.
    pub(super) fn user_page_with_status(
        &self,
        status: StatusCode,
        session: &Session,
        user: &SignedIn,
        template: &str,
        context: minijinja::Value,
    ) -> Response {
        let flash: Option<Flash> = session.get(FLASH);
        if flash.is_some() {
            session.remove(FLASH);
        }
        // A secret shown once is gone from the session whichever page comes next.
        if session
            .get::<serde_json::Value>(super::tenants::REVEALED_SECRET)
            .is_some()
        {
            session.remove(super::tenants::REVEALED_SECRET);
        }
        self.page(
            status,
            template,
            context! {
                user => &user.username,
                csrf_token => &user.csrf_token,
                flash => flash,
                ..context
            },
        )
    }
}

/// Redirects to `to` with a message for the next page.
pub(super) fn done(
    session: &Session,
    to: &str,
    kind: &'static str,
    text: impl Into<String>,
) -> Response {
    session.set(
        FLASH,
        Flash {
            kind: kind.to_owned(),
            text: text.into(),
        },
    );
    Redirect::see_other(to).into_response()
}

#[handler]
pub async fn login_form(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    cookies: &CookieJar,
) -> Response {
    if admin.rules.signed_in(session).is_some() {
        return Redirect::see_other("/admin").into_response();
    }
    let csrf_token = admin.rules.csrf_token(session, cookies);
    admin.page(
        StatusCode::OK,
        "login.html",
        context! { csrf_token => csrf_token },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf_token: Option<String>,
}

#[handler]
pub async fn login(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    cookies: &CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    if !admin
        .rules
        .sign_in_csrf_ok(session, cookies, form.csrf_token.as_deref())
    {
        return admin.forbidden();
    }
    let now = admin.rules.clock.now_ms();
    let limits = &admin.sign_in_limits;
    let (status, error) = match users::sign_in(
        &admin.hub.store,
        limits,
        &form.username,
        &form.password,
        now,
    )
    .await
    {
        Ok(username) => {
            admin.rules.sign_in(session, &username);
            tracing::info!(user = ?username, "admin signed in");
            return Redirect::see_other("/admin").into_response();
        }
        Err(SignInError::WrongCredentials) => {
            (StatusCode::UNAUTHORIZED, SignInError::WrongCredentials)
        }
        Err(SignInError::Locked) => {
            // `sign_in` refuses over-long names before it looks for a lock, so this name
            // is within the limit; `?` escapes it, so it cannot forge log lines.
            tracing::warn!(user = ?form.username, "sign-in refused: account locked");
            (StatusCode::TOO_MANY_REQUESTS, SignInError::Locked)
        }
        Err(SignInError::Busy) => (StatusCode::SERVICE_UNAVAILABLE, SignInError::Busy),
        Err(error) => {
            tracing::error!(%error, "sign-in failed");
            (StatusCode::SERVICE_UNAVAILABLE, error)
        }
    };
    let message = match error {
        SignInError::Store(_) => "Signing in is not possible right now; try again shortly.".into(),
        other => other.to_string(),
    };
    // The form is shown again with the name as typed, unless it is too long to be anyone's.
    let username = if form.username.len() <= limits.max_username_bytes {
        form.username
    } else {
        String::new()
    };
    admin.page(
        status,
        "login.html",
        context! {
            csrf_token => admin.rules.csrf_token(session, cookies),
            error => message,
            username => username,
        },
    )
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf_token: Option<String>,
}

/// Ends the session on the server and drops the cookie.
#[handler]
pub async fn logout(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !admin.rules.csrf_ok(session, form.csrf_token.as_deref()) {
        return admin.forbidden();
    }
    session.purge();
    Redirect::see_other(LOGIN_PAGE).into_response()
}

#[handler]
pub async fn dashboard(admin: Data<&Arc<Admin>>, session: &Session) -> Response {
    let user = match admin.require_user(session) {
        Ok(user) => user,
        Err(redirect) => return redirect,
    };
    let hub = &admin.hub;
    let store = &hub.store;
    let table = hub.routes.current();
    let now = admin.rules.clock.now_ms();

    let store_ok = store.ping().await;
    let pending = store.pending_by_channel().await.unwrap_or_default();
    let queue_depth: i64 = pending.iter().map(|(_, n)| n).sum();
    let dead_total = store.dead_letter_count().await.unwrap_or(0);
    let accepted_last_minute = store.accepted_since(now - 60_000).await.unwrap_or(0);
    let health = vec![
        context! {
            name => "Store",
            ok => store_ok.is_ok(),
            detail => match &store_ok {
                Ok(()) => "answering".to_owned(),
                Err(error) => error.to_string(),
            },
        },
        context! {
            name => "Routes",
            ok => true,
            detail => format!(
                "{} channels, {} routes, from {}",
                table.channels().count(),
                table.routes().len(),
                hub.routes.path().display()
            ),
        },
        context! {
            name => "Plugins",
            ok => true,
            detail => format!("{} loaded", hub.plugins.loaded().len()),
        },
    ];
    let rates = vec![
        context! { label => "Accepted in the last minute", value => accepted_last_minute },
        context! { label => "Deliveries waiting", value => queue_depth },
        context! { label => "Dead letters", value => dead_total },
    ];

    let recent = store
        .list_notifications(&NotificationFilter {
            limit: 10,
            ..NotificationFilter::default()
        })
        .await
        .unwrap_or_default();
    let mut notifications = Vec::new();
    let mut deliveries = Vec::new();
    for (_, notification) in &recent {
        let of_this = store
            .deliveries_of(&notification.id)
            .await
            .unwrap_or_default();
        notifications.push(context! {
            id => notification.id,
            kind => notification.kind,
            source => notification.source,
            created_at => format_time(notification.created_at),
            state => overall_state(of_this.iter().map(|d| d.state.as_str())),
        });
        for delivery in of_this {
            deliveries.push(context! {
                id => delivery.id,
                notification_id => delivery.notification_id,
                channel => delivery.channel,
                state => delivery.state,
                attempts => delivery.attempts,
                last_status => delivery.attempt_log.last().and_then(|a| a.status),
            });
        }
    }
    let dead_letters: Vec<_> = store
        .list_dead_letters(&DeadLetterFilter {
            limit: 20,
            ..DeadLetterFilter::default()
        })
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            context! {
                id => d.delivery_id,
                notification_id => d.notification_id,
                channel => d.channel,
                last_error => d.last_error.unwrap_or_default(),
            }
        })
        .collect();

    admin.user_page(
        session,
        &user,
        "dashboard.html",
        context! {
            health => health,
            rates => rates,
            notifications => notifications,
            deliveries => deliveries,
            dead_letters => dead_letters,
        },
    )
}

/// One word for a notification from its deliveries' states.
fn overall_state<'a>(states: impl Iterator<Item = &'a str>) -> &'static str {
    let states: BTreeSet<&str> = states.collect();
    if states.is_empty() {
        "unrouted"
    } else if states.contains("dead") {
        "dead"
    } else if states.contains("pending") {
        "pending"
    } else {
        "delivered"
    }
}

#[handler]
pub async fn replay(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Path(delivery_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refusal) = admin.authorize(session, form.csrf_token.as_deref()) {
        return refusal;
    }
    match admin.hub.replay(&delivery_id).await {
        Ok(Some(channel)) => done(
            session,
            "/admin",
            "ok",
            format!("Dead letter {delivery_id} goes back to channel {channel}."),
        ),
        Ok(None) => done(
            session,
            "/admin",
            "error",
            format!("There is no dead letter {delivery_id}; it may have been replayed already."),
        ),
        Err(error) => done(
            session,
            "/admin",
            "error",
            format!("Replay failed: {error}"),
        ),
    }
}

#[handler]
pub async fn plugins(admin: Data<&Arc<Admin>>, session: &Session) -> Response {
    let user = match admin.require_user(session) {
        Ok(user) => user,
        Err(redirect) => return redirect,
    };
    let (upload_error, upload_name) = match session.get::<(String, String)>(UPLOAD_ERROR) {
        Some((error, name)) => {
            session.remove(UPLOAD_ERROR);
            (Some(error), Some(name))
        }
        None => (None, None),
    };
    admin.user_page(
        session,
        &user,
        "plugins.html",
        context! {
            plugins => plugin_cards(&admin).await,
            max_upload_mib => admin.hub.config.plugins.max_upload_bytes.div_ceil(1024 * 1024),
            upload_error => upload_error,
            upload_name => upload_name,
        },
    )
}

/// Every plugin as the plugins page shows it: built-ins first, then uploads.
async fn plugin_cards(admin: &Admin) -> Vec<minijinja::Value> {
    let hub = &admin.hub;
    let table = hub.routes.current();
    // The hosts each plugin is granted, over every use of it in the routes.
    let granted = |plugin: &str| -> Vec<String> {
        let channel_hosts = table
            .channels()
            .filter(|(_, spec)| spec.plugin == plugin)
            .flat_map(|(_, spec)| spec.allowed_hosts.iter().cloned());
        let source_hosts = table
            .sources()
            .filter(|(_, spec)| spec.adapter == plugin)
            .flat_map(|(_, spec)| spec.allowed_hosts.iter().cloned());
        channel_hosts
            .chain(source_hosts)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    // What the plugin asks of the host: its functions (the type names it also imports
    // say nothing), then how many sandboxed WASI interfaces Rust's std pulled in.
    let imports = |plugin: &Plugin| -> Vec<String> {
        let manifest = plugin.manifest();
        let functions = manifest
            .host_functions
            .iter()
            .filter(|f| !crate::scaffold::explain(f).is_empty())
            .map(|f| format!("host.{f} ({})", crate::scaffold::explain(f)));
        let wasi = (!manifest.wasi_interfaces.is_empty()).then(|| {
            format!(
                "{} WASI interfaces, sandboxed: no files, sockets, environment or clock",
                manifest.wasi_interfaces.len()
            )
        });
        functions.chain(wasi).collect()
    };

    let mut cards = Vec::new();
    let mut builtins: Vec<_> = BUILTIN_PLUGINS.iter().collect();
    builtins.sort_by_key(|(name, _, _)| *name);
    for (name, world, _) in builtins {
        let loaded = hub.plugins.get(name).await.ok();
        cards.push(context! {
            name => name,
            world => world.to_string(),
            version => loaded.as_ref().map(|p| p.info().version.clone()).unwrap_or_default(),
            description => loaded.as_ref().map(|p| p.info().description.clone()),
            builtin => true,
            enabled => true,
            allowed_hosts => granted(name),
            imports => loaded.as_ref().map(imports).unwrap_or_default(),
            versions => Vec::<minijinja::Value>::new(),
        });
    }
    for uploaded in hub.plugins.uploaded().await.unwrap_or_default() {
        let loaded = if uploaded.enabled {
            hub.plugins.get(&uploaded.name).await.ok()
        } else {
            None
        };
        let versions: Vec<_> = uploaded
            .versions
            .iter()
            .map(|v| {
                context! {
                    version => v.version,
                    uploaded_at => format!("{} by {}", format_time(v.uploaded_at), v.uploaded_by),
                    active => v.version == uploaded.active_version,
                }
            })
            .collect();
        cards.push(context! {
            name => uploaded.name,
            world => uploaded.world,
            version => uploaded.active_version,
            description => loaded.as_ref().map(|p| p.info().description.clone()),
            builtin => false,
            enabled => uploaded.enabled,
            allowed_hosts => granted(&uploaded.name),
            imports => loaded.as_ref().map(imports).unwrap_or_default(),
            versions => versions,
        });
    }
    cards
}

/// The session key of the last refused upload: (message, name), shown once.
const UPLOAD_ERROR: &str = "upload_error";

/// The longest `csrf_token` or `name` field of the upload form that is read.
const MAX_UPLOAD_FIELD_BYTES: u64 = 1024;

/// Reads a small text field, or `None` when it is longer than `max` bytes or not UTF-8.
async fn small_field(field: poem::web::Field, max: u64) -> Option<String> {
    use tokio::io::AsyncReadExt as _;
    let mut bytes = Vec::new();
    field
        .into_async_read()
        .take(max + 1)
        .read_to_end(&mut bytes)
        .await
        .ok()?;
    if bytes.len() as u64 > max {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// The multipart upload form: `csrf_token`, `name` and `file`, in that order.
///
/// Nothing of the body is read for a visitor who is not signed in, and the file is read
/// only after the CSRF token: the form sends `csrf_token` first (browsers send fields in
/// the order of the form), so a body whose first field is anything else is refused
/// before the rest of it is read.
#[handler]
pub async fn upload_plugin(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    mut form: Multipart,
) -> Response {
    let Some(user) = admin.rules.signed_in(session) else {
        return admin.forbidden();
    };
    match form.next_field().await {
        Ok(Some(field)) if field.name() == Some("csrf_token") => {
            let presented = small_field(field, MAX_UPLOAD_FIELD_BYTES).await;
            if !admin.rules.csrf_ok(session, presented.as_deref()) {
                return admin.forbidden();
            }
        }
        _ => return admin.forbidden(),
    }
    let mut name = String::new();
    let mut file = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => match field.name() {
                Some("name") => {
                    name = small_field(field, MAX_UPLOAD_FIELD_BYTES)
                        .await
                        .unwrap_or_default()
                        .trim()
                        .to_owned()
                }
                Some("file") => file = field.bytes().await.ok(),
                _ => {}
            },
            Ok(None) => break,
            Err(_) => return admin.forbidden(),
        }
    }
    let refuse = |message: String| {
        session.set(UPLOAD_ERROR, (message, name.clone()));
        Redirect::see_other("/admin/plugins").into_response()
    };
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        return refuse("Choose a .wasm file to upload.".to_owned());
    };
    match admin.hub.plugins.upload(&name, &file, &user.username).await {
        Ok((plugin, version)) => {
            tracing::info!(plugin = ?name, version, user = ?user.username, "plugin uploaded");
            done(
                session,
                "/admin/plugins",
                "ok",
                format!(
                    "Plugin {name} version {version} ({}) is uploaded and active.",
                    plugin.world()
                ),
            )
        }
        Err(error) => refuse(error.to_string()),
    }
}

#[derive(Deserialize)]
pub struct PluginActionForm {
    csrf_token: Option<String>,
    version: Option<i64>,
}

/// `enable`, `disable` or `activate` (with a `version`) an uploaded plugin.
#[handler]
pub async fn plugin_action(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<PluginActionForm>,
) -> Response {
    if let Err(refusal) = admin.authorize(session, form.csrf_token.as_deref()) {
        return refusal;
    }
    let registry = &admin.hub.plugins;
    let result = match (action.as_str(), form.version) {
        ("enable", _) => registry
            .set_enabled(&name, true)
            .await
            .map(|()| "enabled".to_owned()),
        ("disable", _) => registry
            .set_enabled(&name, false)
            .await
            .map(|()| "disabled; its deliveries wait until it is enabled again".to_owned()),
        ("activate", Some(version)) => registry
            .activate(&name, version)
            .await
            .map(|()| format!("now runs version {version}")),
        _ => return admin.error_page(StatusCode::NOT_FOUND, "There is no such plugin action."),
    };
    match result {
        Ok(what) => done(
            session,
            "/admin/plugins",
            "ok",
            format!("Plugin {name} {what}."),
        ),
        Err(error) => done(session, "/admin/plugins", "error", error.to_string()),
    }
}

impl Admin {
    pub(super) fn error_page(&self, status: StatusCode, message: &str) -> Response {
        self.page(
            status,
            "error.html",
            context! { status => status.as_u16(), message => message },
        )
    }
}

#[handler]
pub async fn routes(admin: Data<&Arc<Admin>>, session: &Session) -> Response {
    let user = match admin.require_user(session) {
        Ok(user) => user,
        Err(redirect) => return redirect,
    };
    let table = admin.hub.routes.current();
    admin.user_page(
        session,
        &user,
        "routes.html",
        context! {
            path => admin.hub.routes.path().display().to_string(),
            yaml => table.text(),
        },
    )
}

#[derive(Deserialize)]
pub struct RoutesForm {
    csrf_token: Option<String>,
    yaml: String,
}

/// Checks the YAML from the form, without applying it.
#[handler]
pub async fn validate_routes(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Form(form): Form<RoutesForm>,
) -> Response {
    let user = match admin.authorize(session, form.csrf_token.as_deref()) {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    // Without the environment's values: the page must not reveal them.
    let checked = crate::routing::RouteTable::check_submitted(
        &form.yaml,
        "the submitted text",
        &|name| std::env::var_os(name).is_some(),
        &admin.hub.plugins,
    );
    let (problems, ok_message): (Vec<String>, Option<String>) = match checked {
        Ok(table) => (
            table.warnings().to_vec(),
            Some(format!(
                "Valid: {}. Save it to the routes file to use it; edits reload on their own.",
                table.summary()
            )),
        ),
        Err(error) => (error.to_string().lines().map(str::to_owned).collect(), None),
    };
    admin.user_page(
        session,
        &user,
        "routes.html",
        context! {
            path => admin.hub.routes.path().display().to_string(),
            yaml => form.yaml,
            problems => problems,
            ok_message => ok_message,
        },
    )
}

#[handler]
pub async fn reload_routes(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refusal) = admin.authorize(session, form.csrf_token.as_deref()) {
        return refusal;
    }
    match admin.hub.reload_routes().await {
        Ok(table) => done(
            session,
            "/admin/routes",
            "ok",
            format!("Reloaded: {}.", table.summary()),
        ),
        Err(error) => done(
            session,
            "/admin/routes",
            "error",
            format!("Not reloaded; the table in force stays. {error}"),
        ),
    }
}

#[handler]
pub async fn secrets(admin: Data<&Arc<Admin>>, session: &Session) -> Response {
    let user = match admin.require_user(session) {
        Ok(user) => user,
        Err(redirect) => return redirect,
    };
    let statuses = match admin.hub.channel_secrets().await {
        Ok(statuses) => statuses,
        Err(error) => {
            tracing::error!(%error, "could not list channel secrets");
            return admin.error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The secrets cannot be listed right now; the server log has the details.",
            );
        }
    };
    // Every channel gets a section, so a secret can be added to one that has none yet.
    let table = admin.hub.routes.current();
    let channels: Vec<_> = table
        .channels()
        .map(|(channel, _)| {
            let secrets: Vec<_> = statuses
                .iter()
                .filter(|s| s.channel == channel)
                .map(|s| {
                    context! {
                        name => s.name,
                        set => s.set,
                        key_id => s.key_id,
                        updated_at => s.updated_at.map(format_time),
                    }
                })
                .collect();
            context! { name => channel, secrets => secrets }
        })
        .collect();
    admin.user_page(
        session,
        &user,
        "secrets.html",
        context! { channels => channels },
    )
}

#[derive(Deserialize)]
pub struct SecretForm {
    csrf_token: Option<String>,
    channel: String,
    name: String,
    value: String,
}

/// Sets or rotates one channel secret. The value goes into the vault and is never shown.
#[handler]
pub async fn set_secret(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Form(form): Form<SecretForm>,
) -> Response {
    let user = match admin.authorize(session, form.csrf_token.as_deref()) {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    match admin
        .hub
        .set_channel_secret(&form.channel, &form.name, &form.value)
        .await
    {
        Ok(()) => {
            tracing::info!(channel = ?form.channel, secret = ?form.name, user = ?user.username, "channel secret set");
            done(
                session,
                "/admin/secrets",
                "ok",
                format!("Secret {} of channel {} is set.", form.name, form.channel),
            )
        }
        Err(crate::vault::Error::Store(error)) => {
            tracing::error!(%error, "could not store a channel secret");
            done(
                session,
                "/admin/secrets",
                "error",
                "The secret was not stored: the store is not answering. Try again shortly.",
            )
        }
        Err(error) => done(session, "/admin/secrets", "error", error.to_string()),
    }
}
