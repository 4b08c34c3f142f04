//! Debian's nginx in front of two `switchyard` processes, configured by the committed
//! `deploy/nginx/switchyard.conf` and `deploy/nginx/proxy.conf`, which a test-only top-level
//! config includes verbatim (it adds only the process settings, the upstream ports and the
//! listener, all in a temporary dir). Notifications go through nginx over REST, `/ws` and
//! GraphQL (HTTP, and a subscription over a WebSocket); every one must reach the receiver,
//! both processes must have taken some, and nginx's own body and rate limits must answer
//! with problems.
//!
//! nginx must be installed (`./scripts/test.sh` installs it): the test fails without it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    Answer, DEADLINE, Hub, Receiver, eventually, free_port, one_hook, run_client,
};

const NGINX: &str = "/usr/sbin/nginx";

/// nginx as a child process, everything it writes in its own temporary dir.
struct Nginx {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Nginx {
    /// Starts nginx on a free port in front of the processes listening on `upstreams`, and
    /// waits until it answers.
    async fn start(upstreams: &[u16]) -> Nginx {
        assert!(
            Path::new(NGINX).is_file(),
            "no nginx at {NGINX}: run ./scripts/test.sh, which installs Debian's nginx \
             (or `apt-get install nginx`)"
        );
        let dir = tempfile::Builder::new()
            .prefix("switchyard-nginx-")
            .tempdir()
            .expect("can create a temporary dir");
        // When the test runs as root, nginx's workers run as `nobody` and must reach the
        // temp paths (request bodies are buffered there) inside this dir.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("can open up the nginx dir");
        // The committed config includes its siblings as `switchyard/<file>`, relative to
        // the directory of the top-level config, as in the compose file's image.
        std::os::unix::fs::symlink(deploy_nginx(), dir.path().join("switchyard"))
            .expect("can link deploy/nginx into the nginx dir");
        let mut nginx = Nginx {
            dir,
            port: 0,
            child: None,
        };
        // The port was free when picked; if something takes it first, pick another.
        for _ in 0..3 {
            if nginx.try_start(upstreams).await {
                return nginx;
            }
        }
        panic!("nginx could not listen on three ports in a row");
    }

    async fn try_start(&mut self, upstreams: &[u16]) -> bool {
        self.port = free_port();
        let dir = self.dir.path();
        std::fs::write(
            dir.join("nginx.conf"),
            top_level_config(dir, self.port, upstreams),
        )
        .expect("can write nginx.conf");
        let _ = std::fs::remove_file(dir.join("nginx.pid"));
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(format!("{}/", dir.display()))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout.log")).expect("can create a log"))
            .stderr(std::fs::File::create(dir.join("stderr.log")).expect("can create a log"))
            .spawn()
            .expect("can start nginx");
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        loop {
            let child = self.child.as_mut().expect("nginx was just started");
            if let Some(status) = child.try_wait().expect("can poll nginx") {
                self.child = None;
                if self.logs().contains("Address already in use") {
                    return false;
                }
                panic!("nginx exited at start ({status}):\n{}", self.logs());
            }
            // nginx writes its pid file only once it holds its listening socket, so an
            // answer on the port is then nginx's, not whatever else may have taken it.
            if dir.join("nginx.pid").exists()
                && tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn logs(&self) -> String {
        ["stderr.log", "error.log", "access.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
                format!("---- nginx {name} ----\n{text}\n")
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM, not SIGKILL: the master then stops its workers, which a killed
            // master would leave behind, still listening.
            let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
            // SAFETY: kill(2) on our own child, which is not reaped yet, so the pid cannot
            // have been reused.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "==== nginx ({}) ====\n{}",
                self.dir.path().display(),
                self.logs()
            );
        }
    }
}

/// The committed config, `deploy/nginx`.
fn deploy_nginx() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/nginx")
        .canonicalize()
        .expect("deploy/nginx exists")
}

/// The test's top level: only what must differ from a deployment (paths, ports, one
/// worker so that round robin alternates strictly); the rest is deploy/nginx's files.
fn top_level_config(dir: &Path, port: u16, upstreams: &[u16]) -> String {
    let dir = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|port| format!("        server 127.0.0.1:{port};\n"))
        .collect();
    format!(
        "daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{
    worker_connections 512;
}}
http {{
    client_body_temp_path {dir}/temp-body;
    proxy_temp_path {dir}/temp-proxy;
    fastcgi_temp_path {dir}/temp-fastcgi;
    uwsgi_temp_path {dir}/temp-uwsgi;
    scgi_temp_path {dir}/temp-scgi;
    include switchyard/switchyard.conf;
    access_log {dir}/access.log switchyard;
    upstream switchyard {{
{servers}        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port};
        include switchyard/proxy.conf;
    }}
}}
"
    )
}

/// Two hubs with the same routes that accept the same API token: the client behind nginx
/// cannot choose which one it reaches. Until the hubs share a PostgreSQL store, each has
/// its own SQLite store, copied from one in which the token was created.
async fn two_hubs(routes: &str) -> (Hub, Hub) {
    let mut first = Hub::new(routes);
    let mut second = Hub::new(routes);
    let output = first
        .command(&[
            "token", "create", "nginx", "--scope", "send", "--scope", "read", "--scope", "admin",
        ])
        .output()
        .expect("can run `switchyard token create`");
    assert!(
        output.status.success(),
        "`switchyard token create` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).expect("the token is UTF-8");
    for name in [
        "switchyard.db",
        "switchyard.db-wal",
        "switchyard.db-shm",
        "master.key",
    ] {
        let from = first.dir().join(name);
        if from.exists() {
            std::fs::copy(&from, second.dir().join(name)).expect("can copy the store");
        }
    }
    first.token = token.trim().to_owned();
    second.token = first.token.clone();
    tokio::join!(first.start(), second.start());
    (first, second)
}

/// How many notifications `hub` accepted, by source (`api` is REST, `ws`, `graphql`), from
/// its own `/metrics`: what this one process did, whether or not it shares a store.
async fn accepted_by_source(hub: &Hub) -> BTreeMap<String, u64> {
    const METRIC: &str = "switchyard_notifications_accepted_total{";
    let answer = hub.get("/metrics").await;
    assert_eq!(answer.status, 200, "GET /metrics: {answer}");
    answer
        .text()
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(METRIC)?;
            let (labels, value) = rest.split_once("} ")?;
            let source = labels.split(',').find_map(|label| {
                Some(
                    label
                        .strip_prefix("source=\"")?
                        .trim_end_matches('"')
                        .to_owned(),
                )
            })?;
            Some((source, value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_spreads_every_front_door_over_two_hubs_and_enforces_its_limits() {
    let receiver = Receiver::start().await;
    let (first, second) = two_hubs(&one_hook(&receiver.url("/hook"), "[100ms, 200ms]", "")).await;
    let nginx = Nginx::start(&[first.port, second.port]).await;
    let token = first.token.clone();
    let client = reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .expect("can build an HTTP client");

    // REST, one request after the other: nginx alternates between the two hubs.
    let mut rest = Vec::new();
    for n in 0..6 {
        let answer = Answer::of(
            client
                .post(nginx.url("/api/v1/notifications"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(json!({"kind": "proxy.rest", "payload": {"n": n}}).to_string()),
        )
        .await;
        assert_eq!(answer.status, 202, "send through nginx: {answer}");
        rest.push(answer.json()["id"].as_str().expect("an id").to_owned());
    }

    // /ws and GraphQL, by the third-party clients, through nginx.
    let run = run_client("proxy_client.py", &[&nginx.url(""), &token, "4"]).await;
    assert!(run.success, "{run:?}\n{}{}", first.logs(), second.logs());
    let seen = run.json();
    let ws: Vec<String> = seen["ws"]
        .as_array()
        .expect("the ws acks")
        .iter()
        .map(|ack| {
            assert_eq!(ack["type"], "ack", "{seen}");
            ack["ids"][0].as_str().expect("an acked id").to_owned()
        })
        .collect();
    let graphql: Vec<String> = seen["graphql_http"]
        .as_array()
        .expect("the mutations' ids")
        .iter()
        .map(|id| id.as_str().expect("an id").to_owned())
        .collect();
    let socket = &seen["graphql_ws"];
    assert_eq!(socket["subprotocol"], "graphql-transport-ws", "{seen}");
    let subscribed = socket["sent"].as_str().expect("an id").to_owned();
    assert_eq!(socket["delivered"]["notificationId"], subscribed.as_str());
    assert_eq!(socket["delivered"]["channel"], "hook", "{seen}");
    assert_eq!(socket["delivered"]["outcome"], "delivered", "{seen}");

    // Every notification, whichever hub took it, reaches the receiver, signed.
    let all: Vec<String> = [&rest, &ws, &graphql]
        .into_iter()
        .flatten()
        .cloned()
        .chain([subscribed])
        .collect();
    let expected: BTreeSet<&str> = all.iter().map(String::as_str).collect();
    assert_eq!(expected.len(), 6 + 4 + 4 + 1, "ids are unique: {all:?}");
    let received = eventually(DEADLINE, "every notification at the receiver", || {
        let received = receiver.received();
        let ids: BTreeSet<String> = received.iter().map(|r| r.webhook_id()).collect();
        let complete = expected.iter().all(|id| ids.contains(*id));
        std::future::ready(complete.then_some(received))
    })
    .await;
    for request in &received {
        assert!(request.signature_is_valid(), "{request:?}");
    }

    // Both processes took a share of each front door's traffic (nginx alternates, one
    // request or connection at a time), and between them they took all of it.
    let counts = [
        accepted_by_source(&first).await,
        accepted_by_source(&second).await,
    ];
    for (source, sent) in [
        ("api", rest.len()),
        ("ws", ws.len()),
        ("graphql", graphql.len() + 1),
    ] {
        let per_hub: Vec<u64> = counts
            .iter()
            .map(|c| c.get(source).copied().unwrap_or(0))
            .collect();
        assert!(
            per_hub.iter().all(|&n| n > 0),
            "nginx should spread `{source}` over both hubs: {counts:?}"
        );
        assert_eq!(
            per_hub.iter().sum::<u64>(),
            sent as u64,
            "`{source}` accepted by the two hubs: {counts:?}"
        );
    }

    // Body limits: nginx's is the hub's own (1 MiB), so a body of exactly that size
    // reaches a hub and is accepted, and one byte more is refused by nginx itself, before
    // any hub sees it (a hub refusing a body it has not read would leave nginx a broken
    // pipe and the client a 502).
    const HUB_LIMIT: usize = 1024 * 1024;
    let body_of = |bytes: usize| {
        let envelope = |pad: &str| json!({"kind": "proxy.big", "payload": {"pad": pad}});
        let pad = "x".repeat(bytes - envelope("").to_string().len());
        envelope(&pad).to_string()
    };
    let send_body = |body: String| {
        client
            .post(nginx.url("/api/v1/notifications"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
    };
    let at_limit = body_of(HUB_LIMIT);
    assert_eq!(at_limit.len(), HUB_LIMIT);
    let accepted = Answer::of(send_body(at_limit)).await;
    assert_eq!(accepted.status, 202, "a body at the limit: {accepted}");
    let over = Answer::of(send_body(body_of(HUB_LIMIT + 1))).await;
    let by_nginx = over.problem(413);
    assert_eq!(
        by_nginx["detail"], "The request body is larger than the proxy accepts.",
        "{by_nginx}"
    );

    // The rate limit: concurrent requests until nginx refuses some, in bounded rounds.
    let mut refused = None;
    for _ in 0..50 {
        let round = futures::future::join_all(
            (0..64).map(|_| Answer::of(client.get(nginx.url("/healthz")))),
        )
        .await;
        for answer in &round {
            assert!(matches!(answer.status, 200 | 429), "{answer}");
        }
        refused = round.into_iter().find(|answer| answer.status == 429);
        if refused.is_some() {
            break;
        }
    }
    let refused = refused.expect("nginx never answered 429 to 3200 requests in a burst");
    refused.problem(429);
    assert_eq!(
        refused.header("retry-after").as_deref(),
        Some("1"),
        "{refused}"
    );
}
