//! `switchyard serve`: the HTTP server around a [`Hub`]: the API, its docs, metrics and
//! health checks.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use poem::endpoint::make_sync;
use poem::http::uri::Scheme;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::web::headers::{ContentLength, HeaderMapExt};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route, handler, http::StatusCode,
};
use poem_openapi::OpenApiService;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::admin::api::{PluginAdminApi, SessionApi};
use crate::admin::{self, Admin, Clock, Console};
use crate::config::{Config, ServerConfig};
use crate::ingress::openapi::{self, Contract};
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
    let listener = GuardedAcceptor::new(listener, &config.server);
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
                .create("default", crate::store::Scopes::ALL, None)
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
            crate::ingress::tenants::Api::new(hub.clone()),
            crate::portal::PortalApi::new(hub.clone()),
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
    let contract = Arc::new(Contract::new(&api.spec(), &api.swagger_ui_html()));
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
            .nest("/portal", crate::portal::routes(hub.clone()))
            .at("/ws", crate::ingress::ws::open)
            .nest("/graphql", crate::ingress::graphql::routes(hub.clone()))
            .at("/openapi.json", contract.spec_endpoint())
            .at("/api/v1/openapi.json", contract.spec_endpoint())
            .at("/docs", contract.docs_endpoint());
    }
    let routes = routes.around(move |endpoint, request| {
        openapi::method_not_allowed(endpoint, request, contract.clone())
    });
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

// ---- Connection limits -----------------------------------------------------------------
//
// poem's `Server` offers an idle timeout, but it counts any byte as activity (so a client
// trickling a header byte every few seconds is never idle), and it cannot reach hyper's
// header read timeout (hyper needs a timer poem does not give it, and hyper's timer also
// runs between keep-alive requests, which would make it the idle timeout too). So the
// acceptor is wrapped: it caps the connections open at once, and each connection's IO
// follows the HTTP/1 exchange closely enough to give every phase its own deadline.

/// The limits on each connection, from the `server` section.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    /// How long a request head may take to arrive, from the connection's start or from a
    /// keep-alive connection's first byte of the next request; `None` is no limit.
    header_read_timeout: Option<Duration>,
    /// How long a connection may sit between requests; `None` is no limit.
    idle_timeout: Option<Duration>,
}

/// The most refusals being written at once; beyond it a connection over the cap is
/// closed without an answer, so a flood costs no more than this many tasks.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// How long a refusal may take to write, and to drain what the client sent.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);
/// The most a refusal reads of the client's request before closing: closing a socket with
/// unread data resets it, and the client might then never see the 503.
const REFUSAL_DRAIN_BYTES: usize = 64 * 1024;

/// An acceptor that hands out at most `max_connections` connections at once, each under
/// [`ConnectionLimits`].
struct GuardedAcceptor<A> {
    inner: A,
    slots: Arc<Semaphore>,
    max_connections: usize,
    refusals: Arc<Semaphore>,
    limits: ConnectionLimits,
}

impl<A: Acceptor> GuardedAcceptor<A> {
    fn new(inner: A, server: &ServerConfig) -> Self {
        let off = |timeout: Duration| Some(timeout).filter(|t| !t.is_zero());
        GuardedAcceptor {
            inner,
            slots: Arc::new(Semaphore::new(server.max_connections)),
            max_connections: server.max_connections,
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
            limits: ConnectionLimits {
                header_read_timeout: off(server.header_read_timeout),
                idle_timeout: off(server.idle_timeout),
            },
        }
    }

    /// Answers a connection over the cap with a 503 and closes it, in the background.
    fn refuse(&self, mut io: A::Io) {
        metrics::counter!("switchyard_http_connections_refused_total").increment(1);
        let Ok(permit) = self.refusals.clone().try_acquire_owned() else {
            return;
        };
        let answer = refusal(self.max_connections);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
                io.write_all(answer.as_bytes()).await?;
                io.shutdown().await?;
                let mut sink = [0u8; 4096];
                let mut drained = 0;
                while drained < REFUSAL_DRAIN_BYTES {
                    match io.read(&mut sink).await? {
                        0 => break,
                        n => drained += n,
                    }
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
        });
    }
}

/// The answer to a connection over the cap: a problem body, like every other error.
fn refusal(max_connections: usize) -> String {
    let problem = crate::ingress::Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the hub has {max_connections} connections open, the most it takes \
             (server.max_connections); retry shortly"
        ),
    )
    .code("too-many-connections");
    let body = serde_json::to_string(&problem).expect("a problem serializes");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

impl<A: Acceptor> Acceptor for GuardedAcceptor<A> {
    type Io = GuardedIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> std::io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            let (io, local, remote, scheme) = self.inner.accept().await?;
            match self.slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    return Ok((GuardedIo::new(io, slot, self.limits), local, remote, scheme));
                }
                Err(_) => self.refuse(io),
            }
        }
    }
}

/// Where a connection is in its exchange, as far as its bytes tell, and so which deadline
/// applies.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Waiting for a request's first byte: on a new connection the header read timeout
    /// runs from its start; between keep-alive requests the idle timeout runs from the
    /// last byte written.
    AwaitingRequest {
        deadline: Option<Instant>,
        first: bool,
    },
    /// Reading a request head, which ends at an empty line; `newlines` counts the line
    /// ends seen with nothing between them.
    ReadingHead {
        deadline: Option<Instant>,
        newlines: u8,
    },
    /// The head is in: the body, the handler and the answer take what they take (the
    /// body size is capped elsewhere).
    Handling,
    /// Upgraded (a WebSocket): the protocol on top keeps itself alive, so no deadline.
    Tunnel,
    /// HTTP/2 with prior knowledge: streams interleave, so only the idle timeout applies,
    /// from the last byte either way.
    Http2 { deadline: Option<Instant> },
}

/// A connection's IO that closes it when its phase's deadline passes, and holds one of
/// the acceptor's slots for as long as it lives (an upgraded connection included).
struct GuardedIo<T> {
    inner: T,
    _slot: OwnedSemaphorePermit,
    limits: ConnectionLimits,
    phase: Phase,
    timer: Pin<Box<Sleep>>,
    armed_for: Option<Instant>,
    /// The reader waiting for bytes, woken when a write moves the deadline so that it
    /// arms the new one.
    read_waker: Option<Waker>,
}

impl<T> GuardedIo<T> {
    fn new(inner: T, slot: OwnedSemaphorePermit, limits: ConnectionLimits) -> Self {
        let now = Instant::now();
        GuardedIo {
            inner,
            _slot: slot,
            limits,
            phase: Phase::AwaitingRequest {
                deadline: limits.header_read_timeout.map(|t| now + t),
                first: true,
            },
            timer: Box::pin(tokio::time::sleep_until(now)),
            armed_for: None,
            read_waker: None,
        }
    }

    fn idle_deadline(&self) -> Option<Instant> {
        self.limits.idle_timeout.map(|t| Instant::now() + t)
    }

    /// Follows the request through the bytes just read.
    fn on_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Phase::AwaitingRequest { deadline, first } = self.phase {
            if first && bytes.starts_with(b"PRI * HTTP/2.0") {
                self.phase = Phase::Http2 {
                    deadline: self.idle_deadline(),
                };
                return;
            }
            // The first request's head must arrive within the timeout of the connection
            // opening; a later one's within the timeout of its first byte.
            let deadline = if first {
                deadline
            } else {
                self.limits.header_read_timeout.map(|t| Instant::now() + t)
            };
            self.phase = Phase::ReadingHead {
                deadline,
                newlines: 0,
            };
        }
        match self.phase {
            Phase::ReadingHead {
                deadline,
                mut newlines,
            } => {
                for &byte in bytes {
                    match byte {
                        b'\n' => newlines += 1,
                        b'\r' => {}
                        _ => newlines = 0,
                    }
                    if newlines == 2 {
                        self.phase = Phase::Handling;
                        return;
                    }
                }
                self.phase = Phase::ReadingHead { deadline, newlines };
            }
            Phase::Http2 { .. } => {
                self.phase = Phase::Http2 {
                    deadline: self.idle_deadline(),
                }
            }
            _ => {}
        }
    }

    /// Follows the answer through the bytes about to be written.
    fn on_write(&mut self, bytes: &[u8]) {
        let before = self.phase;
        self.phase = match self.phase {
            // An interim answer asks for the body; the request is still being handled.
            Phase::Handling if bytes.starts_with(b"HTTP/1.1 100 ") => Phase::Handling,
            Phase::Handling if bytes.starts_with(b"HTTP/1.1 101 ") => Phase::Tunnel,
            Phase::Tunnel => Phase::Tunnel,
            Phase::Http2 { .. } => Phase::Http2 {
                deadline: self.idle_deadline(),
            },
            // An answer under way, or an error answer to a bad head: the connection idles
            // from its last byte until the next request.
            _ => Phase::AwaitingRequest {
                deadline: self.idle_deadline(),
                first: false,
            },
        };
        if self.phase != before
            && let Some(waker) = self.read_waker.take()
        {
            waker.wake();
        }
    }

    fn deadline(&self) -> Option<(Instant, &'static str)> {
        match self.phase {
            Phase::AwaitingRequest {
                deadline: Some(deadline),
                first: true,
            } => Some((deadline, "header_read_timeout")),
            Phase::AwaitingRequest {
                deadline: Some(deadline),
                first: false,
            }
            | Phase::Http2 {
                deadline: Some(deadline),
            } => Some((deadline, "idle_timeout")),
            Phase::ReadingHead {
                deadline: Some(deadline),
                ..
            } => Some((deadline, "header_read_timeout")),
            _ => None,
        }
    }

    /// Ready with the error that closes the connection once the deadline has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let Some((deadline, limit)) = self.deadline() else {
            return Poll::Pending;
        };
        if self.armed_for != Some(deadline) {
            self.timer.as_mut().reset(deadline);
            self.armed_for = Some(deadline);
        }
        ready!(self.timer.as_mut().poll(cx));
        metrics::counter!("switchyard_http_connections_timed_out_total", "limit" => limit)
            .increment(1);
        Poll::Ready(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the connection passed server.{limit}"),
        ))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.on_read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                if !this
                    .read_waker
                    .as_ref()
                    .is_some_and(|waker| waker.will_wake(cx.waker()))
                {
                    this.read_waker = Some(cx.waker().clone());
                }
                this.poll_deadline(cx).map(Err)
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.on_write(&buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        if written > 0 {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            this.on_write(&first[..first.len().min(written)]);
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
