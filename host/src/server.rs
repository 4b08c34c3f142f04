//! `switchyard serve`: the HTTP server around a [`Hub`]: the API, its docs, metrics and
//! health checks.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use poem::endpoint::make_sync;
use poem::listener::{Acceptor as _, Listener, TcpListener};
use poem::web::Data;
use poem::web::headers::{ContentLength, HeaderMapExt};
use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route, handler, http::StatusCode,
};
use poem_openapi::OpenApiService;

use crate::admin::api::{PluginAdminApi, SessionApi};
use crate::admin::{self, Admin, Clock, Console};
use crate::config::Config;
use crate::ingress::{hooks::HooksApi, problem_response, rest::Api};
use crate::pipeline::Hub;

/// Histogram buckets for plugin call latency, in seconds: 10 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
];

/// The Prometheus recorder is process-global; install it once.
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .expect("buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// Runs the hub until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let metrics = metrics_handle();
    let listener = TcpListener::bind(config.listen)
        .into_acceptor()
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    let address = listener
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .unwrap_or(config.listen);
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}"));
    let grace = config.delivery.shutdown_grace;

    let console = Console::open(&config.admin, Clock::system()).await?;
    let hub = Hub::start(config).await?;
    // Only the api role makes the first token and admin: several processes starting at
    // once on one store would otherwise each make one.
    let first_token = if hub.config.roles.api && hub.tokens.is_empty() {
        // The first token is the operator's own: it may do everything, as every token
        // could before scopes existed.
        Some(
            hub.tokens
                .create("default", crate::store::Scopes::ALL)
                .await?,
        )
    } else {
        None
    };
    let first_admin = if hub.config.roles.api {
        first_admin(&hub).await?
    } else {
        None
    };

    let app = app(hub.clone(), metrics, public_url.clone(), console);
    print_banner(
        &hub,
        &public_url,
        first_token.as_ref().map(|t| t.token.as_str()),
        first_admin.as_ref(),
    );

    poem::Server::new_with_acceptor(listener)
        .run_with_graceful_shutdown(app, shutdown_signal(), Some(grace))
        .await
        .context("the HTTP server failed")?;
    tracing::info!("stopped taking requests; finishing deliveries in flight");
    hub.shutdown().await;
    tracing::info!("shut down");
    Ok(())
}

/// The whole HTTP surface.
pub fn app(
    hub: Arc<Hub>,
    metrics: PrometheusHandle,
    public_url: String,
    console: Console,
) -> impl poem::Endpoint {
    let admin = Arc::new(Admin::new(hub.clone(), console.rules));
    let api = OpenApiService::new(
        (
            Api::new(hub.clone()),
            HooksApi::new(hub.clone()),
            SessionApi::new(admin.clone()),
            PluginAdminApi::new(admin.clone()),
        ),
        "Switchyard",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Send notifications, follow their deliveries, replay dead letters and manage \
         routes and plugins. Authenticate with `Authorization: Bearer <token>`, or sign in \
         to an admin session (see the Session tag).",
    )
    .server(public_url);
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let limits = BodyLimits {
        default: hub.config.api.max_body_bytes,
        // The component plus the multipart framing and the form's other fields.
        upload: hub.config.plugins.max_upload_bytes + 64 * 1024,
    };
    let mut routes = Route::new()
        .at("/metrics", make_sync(move |_| metrics.render()))
        .at("/healthz", healthz)
        .at("/readyz", readyz);
    // A process without the api role (a router or worker) answers only its health checks.
    if hub.config.roles.api {
        routes = routes
            .nest("/", api)
            .nest("/admin", admin::routes())
            .at("/ws", crate::ingress::ws::open)
            .nest("/graphql", crate::ingress::graphql::routes(hub.clone()))
            .at("/openapi.json", spec)
            .nest("/docs", docs);
    }
    admin::with_sessions(routes, console.sessions)
        .around(move |endpoint, request| limit_body(endpoint, request, limits))
        .data(hub)
        .data(admin)
        .catch_all_error(problem_response)
}

/// The largest request bodies: plugin uploads may be larger than everything else.
#[derive(Clone, Copy)]
struct BodyLimits {
    default: usize,
    upload: usize,
}

/// The paths that take plugin uploads.
const UPLOAD_PATHS: &[&str] = &["/api/v1/plugins", "/admin/plugins"];

/// Refuses bodies over the limit with 413: at once when the declared length is over, and
/// while reading when the length is not declared (a chunked upload). poem's own
/// `SizeLimit` refuses every request without a `Content-Length`, GETs included.
///
/// A body within the limit is read whole before the handler runs, so an answer that does
/// not need the body (a 401 for a bad token) still comes after it: a proxy such as nginx
/// that is still sending the body would otherwise see the connection close under it and
/// answer 502.
///
/// Plugin uploads are the exception: they may be 16 MiB, and anyone can send one, so their
/// handlers check the session or token (and the CSRF token, which the form sends first)
/// before they read the body, which streams in under the same limit. An anonymous upload
/// is refused on its headers and never buffered; behind a proxy that is still sending it,
/// that refusal may reach the client as the proxy's 502.
async fn limit_body<E: Endpoint>(
    endpoint: Arc<E>,
    mut request: Request,
    limits: BodyLimits,
) -> poem::Result<Response> {
    let upload = UPLOAD_PATHS.contains(&request.uri().path());
    let max = if upload {
        limits.upload
    } else {
        limits.default
    };
    let too_large = || poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE);
    match request.headers().typed_get::<ContentLength>() {
        Some(ContentLength(length)) if length as usize > max => return Err(too_large()),
        Some(ContentLength(0)) => {}
        Some(_) | None if upload => {
            let body = request.take_body();
            request.set_body(at_most(body, max));
        }
        Some(_) | None => {
            let body = request
                .take_body()
                .into_bytes_limit(max)
                .await
                .map_err(|_| too_large())?;
            request.set_body(body);
        }
    }
    endpoint
        .call(request)
        .await
        .map(IntoResponse::into_response)
}

/// `body` as it streams in, failing once more than `max` bytes have come.
fn at_most(body: poem::Body, max: usize) -> poem::Body {
    use futures::StreamExt as _;
    let mut seen = 0usize;
    poem::Body::from_bytes_stream(body.into_bytes_stream().map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len();
        if seen > max {
            return Err(std::io::Error::other(
                "the upload is larger than plugins.max_upload_bytes",
            ));
        }
        Ok(chunk)
    }))
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

/// Ready when the store answers and its writes land (not while the last one failed, as
/// on a full disk), and the brokers answer.
#[handler]
async fn readyz(hub: Data<&Arc<Hub>>) -> Response {
    let unready = async {
        if hub.store.ping().await.is_err() {
            return Some("the store is not answering".to_owned());
        }
        let retry_after = Duration::from_secs(crate::ingress::RETRY_AFTER_SECONDS.into());
        if hub.store.check_writes(retry_after).await.is_err() {
            return Some("the store's writes are failing (is its disk full?)".to_owned());
        }
        hub.bus.unready().await
    };
    match tokio::time::timeout(Duration::from_secs(2), unready).await {
        Ok(None) => "ready".into_response(),
        Ok(Some(reason)) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store or a broker did not answer within 2s",
        )
            .into_response(),
    }
}

/// The admin the first run creates, and its password when the hub made one up.
struct FirstAdmin {
    username: String,
    generated_password: Option<String>,
}

/// On a hub with no admin yet, creates one: `SWITCHYARD_ADMIN_USER` (default `admin`)
/// with the password in `SWITCHYARD_ADMIN_PASSWORD`, or a generated one shown once.
async fn first_admin(hub: &Hub) -> anyhow::Result<Option<FirstAdmin>> {
    if hub.store.admin_user_count().await? > 0 {
        return Ok(None);
    }
    let username = std::env::var("SWITCHYARD_ADMIN_USER").unwrap_or_else(|_| "admin".into());
    let (password, generated) = match std::env::var("SWITCHYARD_ADMIN_PASSWORD") {
        Ok(password) => (password, false),
        Err(_) => (admin::users::generate_password(), true),
    };
    admin::users::create_user(&hub.store, &username, &password)
        .await
        .context("could not create the first admin (from SWITCHYARD_ADMIN_PASSWORD)")?;
    Ok(Some(FirstAdmin {
        username,
        generated_password: generated.then_some(password),
    }))
}

fn print_banner(hub: &Hub, url: &str, first_token: Option<&str>, first_admin: Option<&FirstAdmin>) {
    let table = hub.routes.current();
    println!("Switchyard {} is running.", env!("CARGO_PKG_VERSION"));
    println!();
    println!("  API          {url}/api/v1");
    println!("  API docs     {url}/docs   (OpenAPI spec: {url}/openapi.json)");
    // The session cookie is `Secure`; browsers keep such cookies over plain http only
    // for `localhost`, so that is the address to open during development.
    let admin_url = url.replacen("://127.0.0.1:", "://localhost:", 1);
    println!("  Admin        {admin_url}/admin");
    println!("  WebSocket    {}/ws", url.replacen("http", "ws", 1));
    println!("  GraphQL      {url}/graphql");
    println!("  Metrics      {url}/metrics");
    println!("  Data         {}", hub.config.data_dir.display());
    println!(
        "  Roles        {} (store {}, stream {}, queues {})",
        hub.config.roles,
        crate::bus::redacted(&hub.config.store_url()),
        crate::bus::redacted(&hub.config.stream.url),
        crate::bus::redacted(&hub.config.queues.url),
    );
    println!(
        "  Routes       {} ({} channels, {} routes; edits reload automatically)",
        hub.routes.path().display(),
        table.channels().count(),
        table.routes().len()
    );
    if let Some(first) = first_admin {
        println!();
        match &first.generated_password {
            Some(password) => {
                println!("  An admin was created. Its password is shown only this once:");
                println!();
                println!("    user {}   password {password}", first.username);
            }
            None => println!(
                "  Admin `{}` was created with the password in SWITCHYARD_ADMIN_PASSWORD.",
                first.username
            ),
        }
    }
    if let Some(token) = first_token {
        println!();
        println!("  A first API token was created. It is shown only this once:");
        println!();
        println!("    {token}");
        println!();
        println!("  Try it:");
        println!(
            "    curl -H 'Authorization: Bearer {token}' -H 'content-type: application/json' \\"
        );
        println!(
            "      -d '{{\"kind\":\"hello.world\",\"payload\":{{\"text\":\"hi\"}}}}' {url}/api/v1/notifications"
        );
    }
    println!();
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("can listen for SIGTERM");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested");
}
