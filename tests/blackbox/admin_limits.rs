//! The admin console and `/hooks` against abuse, on a real process: over-long usernames,
//! log forging through a username, anonymous CSRF-token calls, anonymous uploads, the
//! admin's own WebSocket from the banner's URL, and floods of webhook signatures.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac as _};
use serde_json::json;
use sha2::Sha256;

use crate::admin::{sign_in, try_sign_in};
use crate::support::{Answer, Hub, LOG_EVERYTHING as ROUTES};

/// The first admin's password, set through the environment so the tests know it.
const PASSWORD: &str = "blackbox admin password";

async fn hub() -> Hub {
    let mut hub = Hub::new(ROUTES).env("SWITCHYARD_ADMIN_PASSWORD", PASSWORD);
    hub.start().await;
    hub
}

/// The size of the embedded store on disk: the database and its write-ahead log.
fn store_bytes(hub: &Hub) -> u64 {
    std::fs::read_dir(hub.dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("switchyard.db")
        })
        .map(|entry| entry.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Failed sign-ins with 1 MB usernames get the wrong-password answer and store nothing:
/// before the cap, each one stored a megabyte (or two, with the index) in the lockout
/// table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_usernames_get_the_generic_answer_and_store_nothing() {
    let hub = hub().await;
    let before = store_bytes(&hub);
    for n in 0..20 {
        let name = format!("{n:02}{}", "u".repeat(1_000_000));
        let refused = try_sign_in(&hub, &name, "not the password").await;
        assert_eq!(
            refused.problem(401)["detail"],
            "Wrong username or password."
        );
    }
    let grown = store_bytes(&hub).saturating_sub(before);
    assert!(
        grown < 1_000_000,
        "20 sign-ins with 1 MB names grew the store by {grown} bytes"
    );
    // A name at the cap is an ordinary wrong guess; the right password still signs in.
    let at_cap = "n".repeat(64);
    try_sign_in(&hub, &at_cap, "not the password")
        .await
        .problem(401);
    sign_in(&hub, "admin", PASSWORD).await;
}

/// A username with a newline and an ANSI escape, locked out, is logged escaped: it can
/// neither start a forged log line nor colour the terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_username_is_logged_escaped() {
    let hub = hub().await;
    let forged = "intruder\n2026-01-01T00:00:00Z  INFO forged: \u{1b}[31mall good";
    assert!(forged.len() <= 64);
    let client = reqwest::Client::new();
    for attempt in 1..=11 {
        let login = Answer::of(client.get(hub.url("/admin/login"))).await;
        let cookie = login
            .header("set-cookie")
            .map(|c| c.split(';').next().unwrap().to_owned())
            .expect("the sign-in form sets a cookie");
        let page = login.text();
        let marker = r#"name="csrf_token" value=""#;
        let start = page.find(marker).unwrap() + marker.len();
        let token = &page[start..start + page[start..].find('"').unwrap()];
        let answer = Answer::of(
            client
                .post(hub.url("/admin/login"))
                .header("cookie", cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(
                    url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs([
                            ("username", forged),
                            ("password", "wrong"),
                            ("csrf_token", token),
                        ])
                        .finish(),
                ),
        )
        .await;
        let expected = if attempt <= 10 { 401 } else { 429 };
        assert_eq!(answer.status, expected, "attempt {attempt}: {answer}");
    }
    let logs = hub.stderr();
    let line = logs
        .lines()
        .find(|l| l.contains("sign-in refused: account locked"))
        .unwrap_or_else(|| panic!("the lockout is logged: {logs}"));
    assert!(line.contains(r"intruder\n2026"), "{line}");
    assert!(
        !logs.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")),
        "a forged line: {logs}"
    );
    assert!(!logs.contains("\u{1b}[31m"), "a raw escape code: {logs:?}");
}

/// Redis keys of admin sessions in `db`.
async fn sessions_in(db: u32) -> usize {
    let client = redis::Client::open(format!("redis://127.0.0.1:6379/{db}")).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("switchyard:session:*")
        .query_async(&mut redis)
        .await
        .unwrap();
    keys.len()
}

/// A thousand anonymous `GET /api/v1/session/csrf` store no session in Redis; signing in
/// with the token of one of them still works and stores exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_csrf_tokens_store_no_sessions() {
    // A database of its own on the test Redis, so other tests' sessions do not count.
    const DB: u32 = 9;
    let mut hub = Hub::new(ROUTES)
        .env("SWITCHYARD_ADMIN_PASSWORD", PASSWORD)
        .env(
            "SWITCHYARD_ADMIN__SESSIONS",
            &format!("redis://127.0.0.1:6379/{DB}"),
        );
    hub.start().await;
    let before = sessions_in(DB).await;
    let client = reqwest::Client::new();
    for _ in 0..1000 {
        let answer = Answer::of(client.get(hub.url("/api/v1/session/csrf"))).await;
        assert_eq!(answer.status, 200, "{answer}");
    }
    assert_eq!(sessions_in(DB).await, before, "1000 anonymous calls");
    let cookie = sign_in(&hub, "admin", PASSWORD).await;
    assert_eq!(sessions_in(DB).await, before + 1, "one sign-in");
    let me = Answer::of(
        hub.anonymous(reqwest::Method::GET, "/api/v1/session")
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(me.json()["username"], "admin", "{me}");
}

/// Sends `head` and the start of a body over a raw connection and returns the status line
/// of whatever answer comes within `wait`, without ever sending the rest of the body.
fn answer_to_a_partial_request(port: u16, head: &str, wait: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream
        .write_all(format!("--XyZ\r\n{}", "x".repeat(93)).as_bytes())
        .unwrap();
    let mut answer = [0u8; 256];
    match stream.read(&mut answer) {
        Ok(n) if n > 0 => String::from_utf8_lossy(&answer[..n])
            .lines()
            .next()
            .map(str::to_owned),
        _ => None,
    }
}

/// An anonymous 16 MiB upload, to the console or the API, is refused on its headers: the
/// answer comes while 16 MiB are still unsent, so the hub never buffers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_uploads_are_refused_before_their_body() {
    let hub = hub().await;
    let port = hub.port;
    for (path, auth, status) in [
        ("/admin/plugins", "", "403"),
        ("/api/v1/plugins", "", "401"),
        (
            "/api/v1/plugins",
            "Authorization: Bearer sy_forged\r\n",
            "401",
        ),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\
             Content-Type: multipart/form-data; boundary=XyZ\r\n\
             Content-Length: {}\r\n\r\n",
            16 * 1024 * 1024
        );
        let started = Instant::now();
        let answer = tokio::task::spawn_blocking(move || {
            answer_to_a_partial_request(port, &head, Duration::from_secs(10))
        })
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{path}: no answer within 10 s to an unsent upload"));
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{path} {auth}: {answer}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{path}");
    }
}

/// The status line of a WebSocket handshake to `/ws` from `origin` with `cookie`.
fn ws_handshake(port: u16, origin: &str, cookie: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: {origin}\r\n\
         Cookie: {cookie}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = [0u8; 256];
    let n = stream.read(&mut answer).unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// With no `public_url` set, the banner sends the admin to `http://localhost:PORT/admin`;
/// a socket opened from that page is accepted, as from `127.0.0.1`, while other origins
/// (another port, another host) are still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_socket_opens_from_the_banner_url() {
    let hub = hub().await;
    let port = hub.port;
    let banner = hub.logs();
    assert!(
        banner.contains(&format!("http://localhost:{port}/admin")),
        "{banner}"
    );
    let cookie = sign_in(&hub, "admin", PASSWORD).await;
    for (origin, expected) in [
        (format!("http://localhost:{port}"), "101"),
        (format!("http://127.0.0.1:{port}"), "101"),
        (format!("http://localhost:{}", port.wrapping_add(1)), "403"),
        (format!("https://localhost:{port}"), "403"),
        (format!("http://evil.example:{port}"), "403"),
    ] {
        let cookie = cookie.clone();
        let origin_for_check = origin.clone();
        let status = tokio::task::spawn_blocking(move || ws_handshake(port, &origin, &cookie))
            .await
            .unwrap();
        assert!(
            status.starts_with(&format!("HTTP/1.1 {expected}")),
            "{origin_for_check}: {status}"
        );
    }
}

/// The `shop` source of [`hooks_routes`]: Standard Webhooks with this secret.
const SHOP_SECRET: &str = "whsec_c2hvcC1zb3VyY2Uta2V5LTAxMjM0NTY3ODlhYmNkZWY=";
const GITHUB_SECRET: &str = "blackbox-github-secret";

fn hooks_routes() -> String {
    format!(
        "sources:\n  shop:\n    adapter: webhook-standard\n    secret: ${{SHOP_SECRET}}\n  \
         github:\n    adapter: webhook-github\n    secret: ${{GITHUB_SECRET}}\n{ROUTES}"
    )
}

/// 40,000 made-up signatures over a 1 MB body get a quick 401: the adapter looks at five
/// at most. Before the cap it hashed the body once per signature until its CPU deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_thousand_signatures_get_a_quick_401() {
    let mut hub = Hub::new(&hooks_routes())
        .env("SHOP_SECRET", SHOP_SECRET)
        .env("GITHUB_SECRET", GITHUB_SECRET);
    hub.start().await;
    let body = json!({"type": "shop.flood", "pad": "a".repeat(1_000_000)}).to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let started = Instant::now();
    let refused = Answer::of(
        hub.anonymous(reqwest::Method::POST, "/hooks/shop")
            .header("content-type", "application/json")
            .header("webhook-id", "msg_flood")
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", vec!["v1,AAAA"; 40_000].join(" "))
            .body(body),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(refused.problem(401)["code"], "too-many-signatures");
    assert!(took < Duration::from_secs(2), "the 401 took {took:?}");
}

/// A captured GitHub delivery sent again under a new delivery id is a duplicate of the
/// first, and under another event name it is refused: the idempotency key is the
/// signature, not the unsigned headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_github_body_is_a_duplicate() {
    let mut hub = Hub::new(&hooks_routes())
        .env("SHOP_SECRET", SHOP_SECRET)
        .env("GITHUB_SECRET", GITHUB_SECRET);
    hub.start().await;
    let body = json!({"action": "opened", "issue": {"number": 7},
                      "repository": {"full_name": "acme/widgets"}})
    .to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let send = |event: &str, delivery: &str| {
        hub.anonymous(reqwest::Method::POST, "/hooks/github")
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", &signature)
            .body(body.clone())
    };
    let first = Answer::of(send("issues", "guid-1")).await;
    assert_eq!(first.status, 202, "{first}");
    let first = &first.json()["notifications"][0];
    assert_eq!(first["duplicate"], false);
    let replay = Answer::of(send("issues", "guid-2")).await;
    assert_eq!(replay.status, 202, "{replay}");
    let replay = &replay.json()["notifications"][0];
    assert_eq!(replay["duplicate"], true, "{replay}");
    assert_eq!(replay["id"], first["id"]);
    // Relabelled, it is another notification under a used key: refused, nothing accepted.
    let relabelled = Answer::of(send("deployment", "guid-3")).await;
    assert_eq!(
        relabelled.problem(409)["code"],
        "idempotency-key-reused",
        "{relabelled}"
    );
}
