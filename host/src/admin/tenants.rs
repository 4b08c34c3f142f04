//! The console's tenant pages: the tenants, and each one's endpoints with what can be done
//! to them. Every check and change is [`crate::tenancy`]'s, made as the operator (who may
//! give an endpoint any channel plugin); this only translates forms and shows results.
//!
//! A signing secret is shown once. The change that makes one (a new endpoint, a rotation)
//! keeps it in the session for the page it redirects to, and whichever page is shown next
//! drops it (see [`Admin::user_page_with_status`]), so a reload or the back button does not
//! show it again.

// A refusal (a redirect or an error page) is a `Response` returned by value: it is only
// built on the way out, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::context;
use poem::http::StatusCode;
use poem::session::Session;
use poem::web::{Data, Form, Path, Query};
use poem::{Response, handler};
use serde::{Deserialize, Serialize};

use super::pages::done;
use super::{Admin, SignedIn, format_time};
use crate::routing::PluginCatalog as _;
use crate::routing::endpoints::MAX_ENDPOINTS_PER_TENANT;
use crate::runtime::World;
use crate::store::{EndpointRow, Page};
use crate::tenancy::{self, Actor, EndpointDraft, Tenancy, TenancyError};

/// Tenants per page of the list.
const PAGE_SIZE: u32 = 50;

/// The session key of a signing secret waiting to be shown once.
pub(super) const REVEALED_SECRET: &str = "revealed_secret";

/// What `recover` offers by default: the deliveries that died in the last day.
const DEFAULT_RECOVER_SINCE: &str = "24h";

#[derive(Serialize, Deserialize)]
struct RevealedSecret {
    tenant: String,
    endpoint: String,
    secret: String,
    /// A rotation's, rather than a new endpoint's.
    rotated: bool,
}

fn tenant_path(id: &str) -> String {
    format!("/admin/tenants/{id}")
}

fn invalid(field: &str, message: &str) -> TenancyError {
    TenancyError::Invalid {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

/// What to tell the admin about a refused change: the tenancy's own words for what was
/// wrong, a plain sentence for what failed inside the hub (whose details go to the log).
fn explain(error: TenancyError) -> String {
    match error {
        TenancyError::Invalid { field, message } => format!("{}: {message}", label(&field)),
        TenancyError::NotFound(message) | TenancyError::Conflict(message) => message,
        other => {
            tracing::error!(error = %other, "a tenant change failed");
            "The hub could not store that right now; nothing was done. Try again shortly."
                .to_owned()
        }
    }
}

/// A tenancy field as the forms label it.
fn label(field: &str) -> &str {
    match field {
        "id" => "Id",
        "name" => "Name",
        "description" => "Description",
        "url" => "URL",
        "plugin" => "Channel plugin",
        "config" => "Config",
        "allowed_hosts" => "Allowed hosts",
        "kinds" => "Kinds",
        "attributes" => "Attribute filters",
        "transforms" => "Transforms",
        "rate_limit" => "Rate limit",
        "retry_schedule" => "Retry schedule",
        "grace" => "Grace",
        "since" => "Since",
        other => other,
    }
}

/// The error page for a read that failed inside the hub.
fn unavailable(admin: &Admin, error: TenancyError) -> Response {
    tracing::error!(%error, "a tenant page could not be read");
    admin.error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The tenants cannot be read right now; the server log has the details.",
    )
}

// ---- The list of tenants ----------------------------------------------------------------

#[derive(Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
}

#[handler]
pub async fn list(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Query(query): Query<ListQuery>,
) -> Response {
    let user = match admin.require_user(session) {
        Ok(user) => user,
        Err(redirect) => return redirect,
    };
    tenants_page(
        &admin,
        session,
        &user,
        query.cursor,
        StatusCode::OK,
        context! {},
    )
    .await
}

/// The list from `cursor` on, with `extra` (a form shown again) in the context.
async fn tenants_page(
    admin: &Admin,
    session: &Session,
    user: &SignedIn,
    cursor: Option<String>,
    status: StatusCode,
    extra: minijinja::Value,
) -> Response {
    let page = Page {
        after: cursor.clone(),
        // One more than shown tells whether another page follows.
        limit: PAGE_SIZE + 1,
    };
    let mut rows = match admin.hub.tenancy.tenants(&page).await {
        Ok(rows) => rows,
        Err(error) => return unavailable(admin, error),
    };
    let next_cursor = if rows.len() > PAGE_SIZE as usize {
        rows.truncate(PAGE_SIZE as usize);
        rows.last().map(|t| t.id.clone())
    } else {
        None
    };
    let tenants: Vec<_> = rows
        .iter()
        .map(|t| {
            context! {
                id => t.id,
                name => t.name,
                created_at => format_time(t.created_at),
                path => tenant_path(&t.id),
            }
        })
        .collect();
    admin.user_page_with_status(
        status,
        session,
        user,
        "tenants.html",
        context! {
            tenants => tenants,
            next_cursor => next_cursor,
            first_page => cursor.is_none(),
            ..extra
        },
    )
}

#[derive(Deserialize, Serialize, Default)]
#[serde(default)]
pub struct TenantForm {
    #[serde(skip_serializing)]
    csrf_token: Option<String>,
    id: String,
    name: String,
}

#[handler]
pub async fn create(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Form(form): Form<TenantForm>,
) -> Response {
    let user = match admin.authorize(session, form.csrf_token.as_deref()) {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    match admin
        .hub
        .tenancy
        .create_tenant(form.id.trim(), &form.name)
        .await
    {
        Ok(tenant) => {
            tracing::info!(tenant = ?tenant.id, user = ?user.username, "tenant created");
            done(
                session,
                &tenant_path(&tenant.id),
                "ok",
                format!("Tenant {} ({}) is created.", tenant.name, tenant.id),
            )
        }
        Err(error) => {
            let field = error_field(&error);
            tenants_page(
                &admin,
                session,
                &user,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
                context! { form => &form, form_error => explain(error), form_error_field => field },
            )
            .await
        }
    }
}

/// The form field a refusal is about, so the form can mark it.
fn error_field(error: &TenancyError) -> Option<String> {
    match error {
        TenancyError::Invalid { field, .. } => Some(field.clone()),
        _ => None,
    }
}

// ---- One tenant -------------------------------------------------------------------------

#[handler]
pub async fn show(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Path(tenant): Path<String>,
) -> Response {
    let user = match admin.require_user(session) {
        Ok(user) => user,
        Err(redirect) => return redirect,
    };
    tenant_page(&admin, session, &user, &tenant, StatusCode::OK, context! {}).await
}

/// Tenant `id`'s page, with `extra` (a form shown again, a portal link) in the context.
async fn tenant_page(
    admin: &Admin,
    session: &Session,
    user: &SignedIn,
    id: &str,
    status: StatusCode,
    extra: minijinja::Value,
) -> Response {
    let tenancy = &admin.hub.tenancy;
    let tenant = match tenancy.tenant(id).await {
        Ok(tenant) => tenant,
        Err(TenancyError::NotFound(_)) => {
            return admin.error_page(
                StatusCode::NOT_FOUND,
                "There is no such tenant; it may have been deleted.",
            );
        }
        Err(error) => return unavailable(admin, error),
    };
    // A tenant has at most this many endpoints, so one page holds them all.
    let page = Page {
        after: None,
        limit: MAX_ENDPOINTS_PER_TENANT as u32,
    };
    let rows = match tenancy.endpoints(&tenant.id, &page).await {
        Ok(rows) => rows,
        Err(error) => return unavailable(admin, error),
    };
    let revealed = session
        .get::<RevealedSecret>(REVEALED_SECRET)
        .filter(|revealed| revealed.tenant == tenant.id)
        .map(|revealed| {
            context! {
                endpoint => revealed.endpoint,
                secret => revealed.secret,
                rotated => revealed.rotated,
            }
        });
    let endpoints: Vec<_> = rows.iter().map(endpoint_card).collect();
    admin.user_page_with_status(
        status,
        session,
        user,
        "tenant.html",
        context! {
            tenant_id => tenant.id,
            tenant_name => tenant.name,
            tenant_created_at => format_time(tenant.created_at),
            tenant_path => tenant_path(&tenant.id),
            endpoints => endpoints,
            endpoint_count => rows.len(),
            endpoint_limit => MAX_ENDPOINTS_PER_TENANT,
            at_endpoint_limit => rows.len() >= MAX_ENDPOINTS_PER_TENANT,
            channel_plugins => admin.hub.plugins.names(World::Channel),
            revealed => revealed,
            recover_since => DEFAULT_RECOVER_SINCE,
            default_grace => crate::yaml::format_duration(tenancy::DEFAULT_GRACE),
            portal_available => true,
            ..extra
        },
    )
}

/// An endpoint as the tenant page shows it.
fn endpoint_card(row: &EndpointRow) -> minijinja::Value {
    let config = row
        .config
        .as_object()
        .filter(|config| !config.is_empty())
        .and_then(|config| serde_json::to_string_pretty(config).ok());
    let attributes: Vec<String> = row
        .attributes
        .iter()
        .map(|(name, values)| format!("{name} = {}", values.join(", ")))
        .collect();
    context! {
        id => row.id,
        description => row.description,
        url => row.url,
        plugin => row.plugin,
        config => config,
        allowed_hosts => row.allowed_hosts,
        kinds => row.kinds,
        attributes => attributes,
        transforms => row.transforms,
        rate_limit => row.rate_limit,
        retry_schedule => row.retry_schedule.as_ref().map(|s| s.join(", ")),
        enabled => row.enabled,
        disabled_reason => row.disabled_reason,
        failing_since => row.failing_since.map(format_time),
        previous_secret_until => row.previous_secret_until.map(format_time),
        secret_names => row.secret_names,
        created_at => format_time(row.created_at),
        actions => format!("{}/endpoints/{}", tenant_path(&row.tenant_id), row.id),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RenameForm {
    csrf_token: Option<String>,
    name: String,
}

#[handler]
pub async fn rename(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Path(tenant): Path<String>,
    Form(form): Form<RenameForm>,
) -> Response {
    let user = match admin.authorize(session, form.csrf_token.as_deref()) {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    let back = tenant_path(&tenant);
    match admin.hub.tenancy.rename_tenant(&tenant, &form.name).await {
        Ok(renamed) => {
            tracing::info!(tenant = ?tenant, user = ?user.username, "tenant renamed");
            done(
                session,
                &back,
                "ok",
                format!("Tenant {tenant} is now called {}.", renamed.name),
            )
        }
        Err(error) => done(session, &back, "error", explain(error)),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DeleteTenantForm {
    csrf_token: Option<String>,
    /// The tenant's id, typed again: deleting takes every endpoint and secret with it.
    confirm: String,
}

#[handler]
pub async fn delete(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Path(tenant): Path<String>,
    Form(form): Form<DeleteTenantForm>,
) -> Response {
    let user = match admin.authorize(session, form.csrf_token.as_deref()) {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    let back = tenant_path(&tenant);
    if form.confirm.trim() != tenant {
        return done(
            session,
            &back,
            "error",
            format!("Nothing was deleted: type the tenant's id, {tenant}, to confirm."),
        );
    }
    match admin.hub.tenancy.delete_tenant(&tenant).await {
        Ok(()) => {
            tracing::info!(tenant = ?tenant, user = ?user.username, "tenant deleted");
            done(
                session,
                "/admin/tenants",
                "ok",
                format!(
                    "Tenant {tenant} is deleted with its endpoints and their secrets; their \
                     pending deliveries became dead letters."
                ),
            )
        }
        Err(error) => done(session, &back, "error", explain(error)),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CsrfOnlyForm {
    csrf_token: Option<String>,
}

/// Mints a one-time link to the tenant's portal and shows it on the tenant's page. The
/// page links to it rather than redirecting there: the portal may be on another origin
/// (`public_url`), where the console's `form-action 'self'` policy would stop a redirect,
/// and a link that signs in is better not kept in the session for a redirect.
#[handler]
pub async fn open_portal(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Path(tenant): Path<String>,
    Form(form): Form<CsrfOnlyForm>,
) -> Response {
    let user = match admin.authorize(session, form.csrf_token.as_deref()) {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    match crate::portal::mint_link(&admin.hub, &tenant).await {
        Ok(link) => {
            tracing::info!(tenant = ?tenant, user = ?user.username, "portal link minted in the console");
            tenant_page(
                &admin,
                session,
                &user,
                &tenant,
                StatusCode::OK,
                context! {
                    portal_link => link.url,
                    portal_link_expires => format_time(link.expires_at_ms),
                },
            )
            .await
        }
        Err(error) => done(session, &tenant_path(&tenant), "error", explain(error)),
    }
}

// ---- Endpoints --------------------------------------------------------------------------

/// The new-endpoint form, as typed: lists are written as words separated by commas or
/// spaces, attribute filters one a line as `name = value, value`.
#[derive(Deserialize, Serialize, Default)]
#[serde(default)]
pub struct EndpointForm {
    #[serde(skip_serializing)]
    csrf_token: Option<String>,
    description: String,
    url: String,
    plugin: String,
    config: String,
    allowed_hosts: String,
    kinds: String,
    attributes: String,
    transforms: String,
    rate_limit: String,
    retry_schedule: String,
    /// A plugin's own secrets, one a line as `name = value`. Never written back into a
    /// page, even when the form comes back with a mistake to correct.
    #[serde(skip_serializing)]
    secrets: String,
    /// A checkbox: present when ticked.
    enabled: Option<String>,
}

impl EndpointForm {
    fn draft(&self) -> Result<EndpointDraft, TenancyError> {
        let config = match given(&self.config) {
            None => None,
            Some(json) => Some(serde_json::from_str(&json).map_err(|_| {
                invalid(
                    "config",
                    "not JSON; write a JSON object such as {\"timeout_ms\": 5000}",
                )
            })?),
        };
        Ok(EndpointDraft {
            description: self.description.trim().to_owned(),
            url: given(&self.url),
            plugin: given(&self.plugin),
            config,
            allowed_hosts: words(&self.allowed_hosts),
            kinds: words(&self.kinds),
            attributes: attribute_filters(&self.attributes)?,
            transforms: words(&self.transforms),
            rate_limit: given(&self.rate_limit),
            retry_schedule: given(&self.retry_schedule).map(|schedule| words(&schedule)),
            enabled: self.enabled.is_some(),
            secrets: plugin_secrets(&self.secrets)?,
        })
    }
}

/// `name = value` lines; `None` when there are none. The error never quotes a line, as it
/// may hold a secret.
fn plugin_secrets(text: &str) -> Result<Option<BTreeMap<String, String>>, TenancyError> {
    let mut secrets = BTreeMap::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let Some((name, value)) = line.split_once('=') else {
            return Err(invalid(
                "secrets",
                "write one secret a line, as name = value",
            ));
        };
        secrets.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    Ok((!secrets.is_empty()).then_some(secrets))
}

/// A field's text, or `None` when it was left empty.
fn given(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Words separated by commas or white space.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Attribute filters, one a line: `region = eu, us`.
fn attribute_filters(text: &str) -> Result<BTreeMap<String, Vec<String>>, TenancyError> {
    let mut filters = BTreeMap::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let Some((name, values)) = line.split_once('=') else {
            return Err(invalid(
                "attributes",
                "write one filter a line, as name = value, value",
            ));
        };
        filters
            .entry(name.trim().to_owned())
            .or_insert_with(Vec::new)
            .extend(words(values));
    }
    Ok(filters)
}

#[handler]
pub async fn create_endpoint(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Path(tenant): Path<String>,
    Form(form): Form<EndpointForm>,
) -> Response {
    let user = match admin.authorize(session, form.csrf_token.as_deref()) {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    let created = match form.draft() {
        Ok(draft) => {
            admin
                .hub
                .tenancy
                .create_endpoint(&tenant, draft, Actor::Operator)
                .await
        }
        Err(error) => Err(error),
    };
    match created {
        Ok(created) => {
            let endpoint = created.endpoint.id;
            tracing::info!(tenant = ?tenant, endpoint = ?endpoint, user = ?user.username, "endpoint created");
            session.set(
                REVEALED_SECRET,
                RevealedSecret {
                    tenant: tenant.clone(),
                    endpoint: endpoint.clone(),
                    secret: created.secret,
                    rotated: false,
                },
            );
            done(
                session,
                &tenant_path(&tenant),
                "ok",
                format!("Endpoint {endpoint} is created."),
            )
        }
        Err(error) => {
            let field = error_field(&error);
            tenant_page(
                &admin,
                session,
                &user,
                &tenant,
                StatusCode::UNPROCESSABLE_ENTITY,
                context! {
                    form => &form,
                    form_enabled => form.enabled.is_some(),
                    form_error => explain(error),
                    form_error_field => field,
                },
            )
            .await
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EndpointActionForm {
    csrf_token: Option<String>,
    /// `rotate`: how long the old secret is still sent.
    grace: String,
    /// `recover`: a time, or how long ago.
    since: String,
}

/// `enable`, `disable`, `delete`, `rotate` (its secret), `recover` (its dead deliveries
/// since a time) or `test` (send it a test notification) an endpoint.
#[handler]
pub async fn endpoint_action(
    admin: Data<&Arc<Admin>>,
    session: &Session,
    Path((tenant, endpoint, action)): Path<(String, String, String)>,
    Form(form): Form<EndpointActionForm>,
) -> Response {
    let user = match admin.authorize(session, form.csrf_token.as_deref()) {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    let tenancy = &admin.hub.tenancy;
    let result = match action.as_str() {
        "enable" => set_enabled(tenancy, &tenant, &endpoint, true).await,
        "disable" => set_enabled(tenancy, &tenant, &endpoint, false).await,
        "delete" => tenancy.delete_endpoint(&tenant, &endpoint).await.map(|()| {
            format!(
                "Endpoint {endpoint} is deleted with its secrets; its pending deliveries \
                     became dead letters."
            )
        }),
        "rotate" => rotate(session, tenancy, &tenant, &endpoint, &form.grace).await,
        "recover" => {
            let now = admin.rules.clock.now_ms();
            match parse_since(&form.since, now) {
                Ok(since) => tenancy
                    .recover(&tenant, &endpoint, since)
                    .await
                    .map(|recovered| {
                        format!(
                            "{recovered} dead deliver{} of endpoint {endpoint} since {} went \
                             back to its queue.",
                            if recovered == 1 { "y" } else { "ies" },
                            format_time(since)
                        )
                    }),
                Err(error) => Err(error),
            }
        }
        "test" => admin
            .hub
            .send_endpoint_test(&tenant, &endpoint)
            .await
            .map(|id| format!("Test notification {id} is on its way to endpoint {endpoint}.")),
        _ => {
            return admin.error_page(StatusCode::NOT_FOUND, "There is no such endpoint action.");
        }
    };
    let back = tenant_path(&tenant);
    match result {
        Ok(message) => {
            tracing::info!(tenant = ?tenant, endpoint = ?endpoint, action = ?action, user = ?user.username, "endpoint changed");
            done(session, &back, "ok", message)
        }
        Err(error) => done(session, &back, "error", explain(error)),
    }
}

/// An endpoint as a draft that changes nothing: what a one-field change starts from.
fn draft_of(row: &EndpointRow) -> EndpointDraft {
    let webhook = row.url.is_some();
    EndpointDraft {
        description: row.description.clone(),
        url: row.url.clone(),
        plugin: (!webhook).then(|| row.plugin.clone()),
        config: Some(row.config.clone()),
        // A webhook's host comes from its URL.
        allowed_hosts: if webhook {
            Vec::new()
        } else {
            row.allowed_hosts.clone()
        },
        kinds: row.kinds.clone(),
        attributes: row.attributes.clone(),
        transforms: row.transforms.clone(),
        rate_limit: row.rate_limit.clone(),
        retry_schedule: row.retry_schedule.clone(),
        enabled: row.enabled,
        // Kept as they are.
        secrets: None,
    }
}

async fn set_enabled(
    tenancy: &Tenancy,
    tenant: &str,
    id: &str,
    enabled: bool,
) -> Result<String, TenancyError> {
    let row = tenancy.endpoint(tenant, id).await?;
    let draft = EndpointDraft {
        enabled,
        ..draft_of(&row)
    };
    tenancy
        .update_endpoint(tenant, id, draft, Actor::Operator)
        .await?;
    Ok(if enabled {
        format!("Endpoint {id} is enabled.")
    } else {
        format!("Endpoint {id} is disabled: it receives nothing until it is enabled again.")
    })
}

/// Rotates the secret and keeps the new one in the session for the next page to show.
async fn rotate(
    session: &Session,
    tenancy: &Tenancy,
    tenant: &str,
    id: &str,
    grace: &str,
) -> Result<String, TenancyError> {
    let grace = match given(grace) {
        None => tenancy::DEFAULT_GRACE,
        Some(text) => crate::yaml::parse_duration(&text)
            .map_err(|_| invalid("grace", "write a duration like 24h, 30m or 0"))?,
    };
    let (secret, _) = tenancy.rotate_secret(tenant, id, grace).await?;
    session.set(
        REVEALED_SECRET,
        RevealedSecret {
            tenant: tenant.to_owned(),
            endpoint: id.to_owned(),
            secret,
            rotated: true,
        },
    );
    Ok(if grace.is_zero() {
        format!("Endpoint {id} has a new signing secret; the old one is no longer sent.")
    } else {
        format!(
            "Endpoint {id} has a new signing secret; the old one is still sent beside it for {}.",
            crate::yaml::format_duration(grace)
        )
    })
}

/// `since` of a recovery as Unix milliseconds: an RFC 3339 time, or how long before `now`
/// (`24h`).
fn parse_since(text: &str, now: i64) -> Result<i64, TenancyError> {
    let text = text.trim();
    if let Ok(ago) = crate::yaml::parse_duration(text) {
        return Ok(now.saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX)));
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|at| (at.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            invalid(
                "since",
                "write a time such as 2026-11-24T09:30:00Z, or how long ago, such as 24h",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_form_reads_lists_and_filters() {
        let form = EndpointForm {
            url: " https://hooks.example.com/in ".into(),
            kinds: "invoice.*, user.created\norder.*".into(),
            attributes: "region = eu, us\n\n team=ops".into(),
            retry_schedule: "5s 5m".into(),
            enabled: Some("on".into()),
            ..EndpointForm::default()
        };
        let draft = form.draft().unwrap();
        assert_eq!(draft.url.as_deref(), Some("https://hooks.example.com/in"));
        assert_eq!(draft.plugin, None);
        assert_eq!(draft.config, None);
        assert_eq!(draft.kinds, ["invoice.*", "user.created", "order.*"]);
        assert_eq!(draft.attributes["region"], ["eu", "us"]);
        assert_eq!(draft.attributes["team"], ["ops"]);
        assert_eq!(draft.retry_schedule, Some(vec!["5s".into(), "5m".into()]));
        assert!(draft.enabled);

        let bad = EndpointForm {
            config: "{not json".into(),
            ..EndpointForm::default()
        };
        assert!(
            matches!(bad.draft(), Err(TenancyError::Invalid { field, .. }) if field == "config")
        );
        let bad = EndpointForm {
            attributes: "region eu".into(),
            ..EndpointForm::default()
        };
        assert!(
            matches!(bad.draft(), Err(TenancyError::Invalid { field, .. }) if field == "attributes")
        );
    }

    #[test]
    fn since_is_a_time_or_how_long_ago() {
        let now = 1_795_910_400_000;
        assert_eq!(parse_since("24h", now).unwrap(), now - 24 * 3600 * 1000);
        assert_eq!(
            parse_since("2026-11-29T00:00:00Z", now).unwrap(),
            1_795_910_400_000
        );
        assert!(parse_since("yesterday", now).is_err());
    }
}
