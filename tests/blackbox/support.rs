//! What the black-box tests share: the hub as a child process, local receivers with
//! scripted replies, HTTP helpers and polling with a deadline.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac as _};
use poem::listener::{Acceptor as _, Listener as _};
use serde_json::Value;
use sha2::Sha256;

/// Routes that send every notification to the `log` channel: for tests about a front door,
/// where the delivery itself does not matter.
pub const LOG_EVERYTHING: &str = r#"
channels:
  log: { plugin: log }
routes:
  - name: everything
    match: { kind: "*" }
    to: [log]
"#;

/// How long a hub may take to answer `/readyz`: a cold start compiles the plugins.
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// A generous deadline for anything the hub does on its own (deliver, retry, reload).
/// Tests poll for the outcome; they never assert on how long it took.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// How long a hub may take to exit after SIGTERM (its grace for calls in flight is 5 s).
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// The webhook channels' signing key (32 bytes), shared by every test.
pub const SIGNING_KEY: &[u8; 32] = b"blackbox-signing-key-0123456789!";

/// The signing key as the routes file gives it: `whsec_<base64>`.
pub fn signing_secret() -> String {
    format!("whsec_{}", BASE64.encode(SIGNING_KEY))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("can bind an ephemeral port")
        .port()
}

/// Calls `check` every 50 ms until it gives `Some`, and returns that; panics naming
/// `what` when `timeout` passes first.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- Routes files ---------------------------------------------------------------------

/// A `webhook` channel entry named `name` posting to `url`, signed with [`SIGNING_KEY`],
/// allowed to reach 127.0.0.1, retrying on `schedule` (YAML, such as `[100ms, 200ms]`).
/// `extra` holds more settings, each line indented by four spaces.
pub fn webhook_channel(name: &str, url: &str, schedule: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    plugin: webhook\n    config: {{ url: \"{url}\" }}\n    \
         secrets: {{ signing_key: \"{secret}\" }}\n    allowed_hosts: [\"127.0.0.1\"]\n    \
         retry: {{ schedule: {schedule} }}\n{extra}",
        secret = signing_secret(),
    )
}

/// A routes file with one webhook channel, `hook`, that every notification goes to.
pub fn one_hook(url: &str, schedule: &str, extra: &str) -> String {
    format!(
        "channels:\n{}routes:\n  - name: all\n    match: {{ kind: \"*\" }}\n    to: [hook]\n",
        webhook_channel("hook", url, schedule, extra)
    )
}

/// Writes `text` to `path` as an editor that saves by rename would, so the hub's watcher
/// never reads half a file.
pub fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_extension("yaml.tmp");
    std::fs::write(&temporary, text).expect("can write the temporary routes file");
    std::fs::rename(&temporary, path).expect("can rename the routes file into place");
}

// ---- The hub ----------------------------------------------------------------------------

/// `switchyard serve` in its own temporary data dir. Dropping it kills the process; if the
/// test is failing, it prints everything the hub wrote to stdout and stderr.
pub struct Hub {
    dir: tempfile::TempDir,
    /// The port of the current (or last) run.
    pub port: u16,
    /// An API token with every scope, created with `switchyard token create` before the
    /// first start.
    pub token: String,
    env: Vec<(String, String)>,
    /// Whether `public_url` is `http://localhost:<port>`, for a browser that must use that
    /// name (see [`Hub::localhost_url`]).
    public_localhost: bool,
    child: Option<Child>,
    runs: u32,
    client: reqwest::Client,
}

impl Hub {
    /// A hub, not yet started, whose routes file (`<data dir>/routes.yaml`) says `routes`.
    pub fn new(routes: &str) -> Hub {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-blackbox-")
            .tempdir()
            .expect("can create a temporary dir");
        std::fs::write(dir.path().join("routes.yaml"), routes).expect("can write routes.yaml");
        std::fs::create_dir_all(dir.path().join("logs")).expect("can create the logs dir");
        Hub {
            dir,
            port: 0,
            token: String::new(),
            env: Vec::new(),
            public_localhost: false,
            child: None,
            runs: 0,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::limited(5))
                .build()
                .expect("can build an HTTP client"),
        }
    }

    /// Starts a hub with `routes` and waits until it is ready.
    pub async fn started(routes: &str) -> Hub {
        let mut hub = Hub::new(routes);
        hub.start().await;
        hub
    }

    /// Sets an environment variable for every later run of the binary.
    pub fn env(mut self, name: &str, value: &str) -> Hub {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Makes every later run's `public_url` `http://localhost:<its port>`: what the hub is
    /// told its browsers use, as a real deployment would be.
    pub fn public_on_localhost(mut self) -> Hub {
        self.public_localhost = true;
        self
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The default routes file, `<data dir>/routes.yaml`.
    pub fn routes_path(&self) -> PathBuf {
        self.dir().join("routes.yaml")
    }

    /// The binary with `args`, set up as this hub: in the data dir (so no stray
    /// `switchyard.yaml` is read), with no ambient `SWITCHYARD_*` settings.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        command
            .args(args)
            .current_dir(self.dir())
            .stdin(Stdio::null());
        for (name, _) in std::env::vars() {
            if name.starts_with("SWITCHYARD_") {
                command.env_remove(&name);
            }
        }
        command
            .env("RUST_LOG", "info")
            .env("SWITCHYARD_DATA_DIR", self.dir())
            .env("SWITCHYARD_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("SWITCHYARD_PLUGINS__ALLOW_LOOPBACK", "true")
            .env("SWITCHYARD_DELIVERY__SHUTDOWN_GRACE", "5s");
        if self.public_localhost {
            command.env(
                "SWITCHYARD_PUBLIC_URL",
                format!("http://localhost:{}", self.port),
            );
        }
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    /// Runs `switchyard token create` once, before the first start.
    fn ensure_token(&mut self) {
        if !self.token.is_empty() {
            return;
        }
        let output = self
            .command(&[
                "token", "create", "blackbox", "--scope", "send", "--scope", "read", "--scope",
                "admin",
            ])
            .output()
            .expect("can run `switchyard token create`");
        assert!(
            output.status.success(),
            "`switchyard token create` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        self.token = String::from_utf8(output.stdout)
            .expect("the token is UTF-8")
            .trim()
            .to_owned();
        assert!(!self.token.is_empty(), "`token create` printed no token");
    }

    /// Starts `switchyard serve` on a fresh port without waiting for it; its stdout and
    /// stderr go to `logs/run-N.{stdout,stderr}` in the data dir.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "the hub is already running");
        self.ensure_token();
        self.port = free_port();
        self.runs += 1;
        let (stdout, stderr) = self.log_files(self.runs);
        let child = self
            .command(&["serve"])
            .stdout(std::fs::File::create(stdout).expect("can create the stdout log"))
            .stderr(std::fs::File::create(stderr).expect("can create the stderr log"))
            .spawn()
            .expect("can start `switchyard serve`");
        self.child = Some(child);
    }

    /// Starts the hub and waits until `/readyz` answers 200.
    pub async fn start(&mut self) {
        // The port was free when picked, but another test may take it before the hub
        // binds it; then the hub exits at once saying so, and gets another port.
        for _ in 0..3 {
            if self.try_start().await {
                return;
            }
        }
        panic!("the hub could not listen on three ports in a row");
    }

    /// One start; false when the hub found its port taken.
    async fn try_start(&mut self) -> bool {
        self.spawn();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                if self.stderr().contains("could not listen") {
                    return false;
                }
                panic!("the hub exited before it was ready ({status})");
            }
            if let Ok(response) = self.client.get(self.url("/readyz")).send().await
                && response.status() == 200
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "the hub was not ready after {READY_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The exit status, if the process has exited (and is then forgotten).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().expect("can poll the hub process")?;
        self.child = None;
        Some(status)
    }

    /// Waits for the process to exit on its own; panics after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                self.child.is_some(),
                "the hub is not running, so it cannot exit"
            );
            assert!(
                Instant::now() < deadline,
                "the hub did not exit within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: the process dies at once, whatever it was doing.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the hub is running");
        child.kill().expect("can SIGKILL the hub");
        child.wait().expect("can reap the hub");
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the hub is running").id()
    }

    /// Sends SIGTERM, asking for a graceful shutdown.
    pub fn sigterm(&self) {
        signal(self.pid(), libc::SIGTERM);
    }

    /// Sends SIGKILL to `pid` (a hub's [`Hub::pid`]) from anywhere, such as a task that
    /// does not own the hub; the owner still reaps it with [`Hub::kill9`].
    pub fn sigkill(pid: u32) {
        signal(pid, libc::SIGKILL);
    }

    fn log_files(&self, run: u32) -> (PathBuf, PathBuf) {
        let logs = self.dir().join("logs");
        (
            logs.join(format!("run-{run}.stdout")),
            logs.join(format!("run-{run}.stderr")),
        )
    }

    /// The stderr of the current (or last) run.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.log_files(self.runs).1).unwrap_or_default()
    }

    /// Everything every run wrote, labelled.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for run in 1..=self.runs {
            let (stdout, stderr) = self.log_files(run);
            for (what, path) in [("stdout", stdout), ("stderr", stderr)] {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                all.push_str(&format!("---- hub run {run} {what} ----\n{text}\n"));
            }
        }
        all
    }

    // ---- HTTP ----

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `http://localhost:<port><path>`: for a browser. Chromium counts `http://localhost`
    /// as a secure context and so keeps the console's `Secure`, `__Host-` session cookie
    /// over plain HTTP; `localhost` is the name it reliably does that for.
    pub fn localhost_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port)
    }

    /// A request to `path` carrying the API token.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// A request to `path` without a token.
    pub fn anonymous(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// POSTs `body` as JSON to `path` with the token.
    pub async fn post_json(&self, path: &str, body: &Value) -> Answer {
        Answer::of(
            self.api(reqwest::Method::POST, path)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// GETs `path` with the token.
    pub async fn get(&self, path: &str) -> Answer {
        Answer::of(self.api(reqwest::Method::GET, path)).await
    }

    /// Sends one notification; asserts 202 and returns its id.
    pub async fn send(&self, notification: Value) -> String {
        let answer = self.post_json("/api/v1/notifications", &notification).await;
        assert_eq!(answer.status, 202, "send {notification}: {answer}");
        answer.json()["id"]
            .as_str()
            .expect("the answer has an id")
            .to_owned()
    }

    /// `GET /api/v1/notifications/{id}`, which must be 200.
    pub async fn notification(&self, id: &str) -> Value {
        let answer = self.get(&format!("/api/v1/notifications/{id}")).await;
        assert_eq!(answer.status, 200, "GET notification {id}: {answer}");
        answer.json()
    }

    /// Polls notification `id` until it has deliveries and all of them are in `state`
    /// (`delivered` or `dead`); returns the notification.
    pub async fn wait_until_settled(&self, id: &str, state: &str) -> Value {
        let mut last = Value::Null;
        let result = tokio::time::timeout(DEADLINE, async {
            loop {
                let notification = self.notification(id).await;
                let deliveries = notification["deliveries"].as_array().cloned();
                last = notification.clone();
                if let Some(deliveries) = deliveries
                    && !deliveries.is_empty()
                    && deliveries.iter().all(|d| d["state"] == state)
                {
                    return notification;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        match result {
            Ok(notification) => notification,
            Err(_) => panic!(
                "notification {id} did not reach `{state}` within {DEADLINE:?}; last seen:\n{last:#}"
            ),
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "==== the hub's output (data dir {}) ====\n{}",
                self.dir().display(),
                self.logs()
            );
        }
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    // SAFETY: kill(2) on our own child, which is not reaped until its `Hub` says so, so
    // the pid cannot have been reused.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(result, 0, "kill({pid}, {signal}) failed");
}

/// An HTTP answer, read whole.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// Sends `request` and reads the answer; panics if there is none.
    pub async fn of(request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("the hub answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("can read the body").to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    }

    pub fn content_type(&self) -> String {
        self.header("content-type").unwrap_or_default()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {self}"))
    }

    /// Asserts this is an RFC 9457 problem with `status` and returns its body.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "expected a {status} problem, got {self}"
        );
        assert!(
            self.content_type().starts_with("application/problem+json"),
            "a problem must be application/problem+json, got {self}"
        );
        let body = self.json();
        assert_eq!(body["status"], status, "the problem's status: {self}");
        assert!(body["title"].is_string(), "the problem has a title: {self}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "the problem has a detail: {self}"
        );
        body
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP {} ({}) {}",
            self.status,
            self.content_type(),
            self.text()
        )
    }
}

/// Milliseconds since the epoch of an RFC 3339 time from the API.
pub fn epoch_ms(rfc3339: &Value) -> i64 {
    let text = rfc3339.as_str().expect("a time is a string");
    let time = humantime::parse_rfc3339_weak(text)
        .unwrap_or_else(|e| panic!("`{text}` is not RFC 3339: {e}"));
    time.duration_since(SystemTime::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as i64
}

// ---- Receivers ----------------------------------------------------------------------------

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: poem::http::HeaderMap,
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: SystemTime,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    }

    /// The `webhook-id` header, which must be there.
    pub fn webhook_id(&self) -> String {
        self.header("webhook-id")
            .unwrap_or_else(|| panic!("no webhook-id header in {self:?}"))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the webhook body is JSON")
    }

    /// Checks the Standard Webhooks signature: `v1,<base64 HMAC-SHA256>` over
    /// `{webhook-id}.{webhook-timestamp}.{body}` with [`SIGNING_KEY`], recomputed over the
    /// exact bytes received. Any one of the space-separated signatures may match.
    pub fn signature_is_valid(&self) -> bool {
        let (Some(id), Some(timestamp), Some(signatures)) = (
            self.header("webhook-id"),
            self.header("webhook-timestamp"),
            self.header("webhook-signature"),
        ) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_KEY).expect("any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(&self.body);
        let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
        signatures.split(' ').any(|s| s == expected)
    }
}

/// How a receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn ok() -> Reply {
        Reply::status(200)
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Waits this long before answering: a slow receiver.
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    /// Replies for the next requests, in order.
    script: Mutex<VecDeque<Reply>>,
    /// The reply once the script has run out.
    otherwise: Mutex<Option<Reply>>,
}

/// A local HTTP server that records every request (method, path, headers, body, time) and
/// answers from a script.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    state: Arc<ReceiverState>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver answering 200 to everything until told otherwise.
    pub async fn start() -> Receiver {
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("the receiver can bind");
        let addr = *acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr())
            .expect("a TCP address");
        let state = Arc::new(ReceiverState::default());
        let shared = state.clone();
        let app = poem::endpoint::make(move |request: poem::Request| {
            let state = shared.clone();
            async move { answer(&state, request).await }
        });
        let server = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Receiver {
            addr,
            state,
            server,
        }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with `replies`, in order, then as [`Receiver::otherwise`].
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// Answers every request after the script with `reply` (200 until set).
    pub fn otherwise(&self, reply: Reply) {
        *self.state.otherwise.lock().unwrap() = Some(reply);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    /// Waits until at least `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(DEADLINE, &format!("{n} requests at {}", self.addr), || {
            let received = self.received();
            std::future::ready((received.len() >= n).then_some(received))
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(state: &ReceiverState, request: poem::Request) -> poem::Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let at = SystemTime::now();
    let body = request.into_body().into_vec().await.unwrap_or_default();
    state.received.lock().unwrap().push(Received {
        method,
        path,
        headers,
        body,
        at,
    });
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| state.otherwise.lock().unwrap().clone())
        .unwrap_or_else(Reply::ok);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = poem::Response::builder()
        .status(poem::http::StatusCode::from_u16(reply.status).expect("a valid status"));
    for (name, value) in &reply.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    response.finish()
}

// ---- Python clients -------------------------------------------------------------------------

/// Where `./scripts/test.sh` puts the virtualenv with the Python clients (`requests`,
/// `websockets`, `gql`), under the home dir, when `SWITCHYARD_PYTHON_VENV` does not say.
const DEFAULT_VENV: &str = ".cache/switchyard/venv";

/// The Python interpreter that has the third-party clients installed:
/// `$SWITCHYARD_TEST_PYTHON`, else the test command's default venv. Panics when there is
/// none: tests that need it fail rather than skip, so a machine without it is noticed.
pub fn python() -> PathBuf {
    let python = std::env::var_os("SWITCHYARD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(DEFAULT_VENV).join("bin/python")
        });
    assert!(
        python.is_file(),
        "no Python with the test clients at {}: run ./scripts/test.sh to install the Python \
         clients (or point SWITCHYARD_TEST_PYTHON at a python that has requests, websockets \
         and gql)",
        python.display()
    );
    python
}

/// A client script in `tests/clients/`, ready to run with `args` by [`python`]; killed if
/// dropped before it ends. Spawn it for a client that must run alongside the test (a
/// subscriber); [`run_client`] for one that runs to the end.
pub fn client_command(script: &str, args: &[&str]) -> tokio::process::Command {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/clients")
        .join(script);
    assert!(path.is_file(), "no client script {}", path.display());
    let mut command = tokio::process::Command::new(python());
    command
        .arg(path)
        .args(args)
        // Lines reach a test reading a long-running client as soon as they are printed,
        // and no __pycache__ is left in the source tree.
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// How a client script ended.
#[derive(Debug)]
pub struct ClientRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl ClientRun {
    /// Stdout as JSON; panics with everything the script printed if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("the client's stdout is not JSON ({e}): {self:?}"))
    }
}

/// Runs the client `script` from `tests/clients/` with `args` to its end (at most
/// [`DEADLINE`]) and returns how it ended and what it printed.
pub async fn run_client(script: &str, args: &[&str]) -> ClientRun {
    let output = tokio::time::timeout(DEADLINE, client_command(script, args).output())
        .await
        .unwrap_or_else(|_| panic!("{script} {args:?} did not end within {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    ClientRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
