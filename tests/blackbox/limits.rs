//! Inputs that cost the hub memory, connections or CPU, bounded: a YAML alias bomb posted to
//! `routes/validate`, connections that trickle their request head (slowloris) or sit idle,
//! more connections than `server.max_connections`, and GraphQL batches and queries that
//! would build huge answers. Each is refused quickly while honest clients are still served,
//! and the hub's peak RSS (`VmHWM`) barely moves.

use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};

use crate::support::{Answer, DEADLINE, Hub, LOG_EVERYTHING as ROUTES, eventually};

/// The most the hub's peak RSS may grow while refusing an attack. Refusing costs next to
/// nothing; the margin is for the allocator and the requests themselves.
const PEAK_GROWTH_KB: u64 = 64 * 1024;

/// A process's `VmHWM`, its peak resident set, in kB.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("can read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("the status has VmHWM")
}

/// The "billion laughs": `levels` anchors, each a list of ten aliases of the one before,
/// so the last names 10^levels scalars in a few hundred bytes.
fn alias_bomb(levels: usize) -> String {
    let names: Vec<char> = ('a'..='z').take(levels).collect();
    let mut text = format!("{}: &{} [{}]\n", names[0], names[0], ["lol"; 10].join(","));
    for pair in names.windows(2) {
        let aliases = vec![format!("*{}", pair[0]); 10].join(",");
        text.push_str(&format!("{}: &{} [{aliases}]\n", pair[1], pair[1]));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_bomb_is_refused_at_once_without_growing_the_hub() {
    let hub = Hub::started(ROUTES).await;
    let bomb = alias_bomb(9);
    assert!(bomb.len() < 500, "{} bytes", bomb.len());
    let validate = || {
        hub.api(Method::POST, "/api/v1/routes/validate")
            .header("content-type", "text/plain")
    };

    let peak_before = peak_rss_kb(hub.pid());
    let started = Instant::now();
    let answer = Answer::of(validate().body(bomb)).await;
    let took = started.elapsed();
    let grown = peak_rss_kb(hub.pid()).saturating_sub(peak_before);

    let problem = answer.problem(422);
    let reason = problem["problems"][0].as_str().unwrap_or_default();
    assert!(
        reason.contains("more than 100000 values") && reason.contains("aliases"),
        "{problem}"
    );
    // Milliseconds in practice; the margin is for a loaded machine and a debug build.
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(grown < PEAK_GROWTH_KB, "the peak RSS grew by {grown} kB");

    // Deep nesting is refused too, and an honest file still validates.
    let deep = format!("{}x{}\n", "[".repeat(200), "]".repeat(200));
    let problem = Answer::of(validate().body(deep)).await.problem(422);
    assert!(
        problem["problems"][0]
            .as_str()
            .unwrap()
            .contains("more than 128 deep"),
        "{problem}"
    );
    let honest = Answer::of(validate().body(ROUTES)).await;
    assert_eq!(honest.status, 200, "{honest}");
}

/// Reads one answer from `stream`: the head, then `content-length` bytes of body.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buffer))
            .await
            .expect("the hub answers")
            .expect("the connection stays up while answering");
        assert!(n > 0, "the connection closed mid-answer: {text}");
        seen.extend_from_slice(&buffer[..n]);
    }
}

/// Waits (at most `limit`) for the hub to close `stream`, and returns how long that took
/// from `since`. Bytes the hub sends first (such as a 408) are read and dropped.
async fn closed_within(stream: &mut TcpStream, since: Instant, limit: Duration) -> Duration {
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::from_std(since + limit);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return since.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the hub kept the connection open for {limit:?}"),
        }
    }
}

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_and_idle_connections_are_closed_while_others_are_served() {
    const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
    const IDLE_TIMEOUT: Duration = Duration::from_secs(4);
    /// How late a close may come on a busy machine.
    const SLACK: Duration = Duration::from_secs(3);
    const SLOW_CONNECTIONS: usize = 50;
    let mut hub = Hub::new(ROUTES)
        .env("SWITCHYARD_SERVER__HEADER_READ_TIMEOUT", "2s")
        .env("SWITCHYARD_SERVER__IDLE_TIMEOUT", "4s")
        // No server pings on the socket below: it is to be silent.
        .env("SWITCHYARD_WS__PING_INTERVAL", "10m");
    hub.start().await;
    let address = format!("127.0.0.1:{}", hub.port);

    // Slowloris: a request line, then a header line every 300 ms, never the blank line.
    let mut slow = Vec::new();
    for _ in 0..SLOW_CONNECTIONS {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let opened = Instant::now();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        slow.push(tokio::spawn(async move {
            let mut buffer = [0u8; 1024];
            let give_up = opened + HEADER_READ_TIMEOUT + SLACK;
            while Instant::now() < give_up {
                tokio::select! {
                    read = stream.read(&mut buffer) => match read {
                        Ok(0) | Err(_) => return Some(opened.elapsed()),
                        Ok(_) => {}
                    },
                    _ = tokio::time::sleep(Duration::from_millis(300)) => {
                        if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                            return Some(opened.elapsed());
                        }
                    }
                }
            }
            None
        }));
    }

    // Meanwhile an honest client is served, on a fresh connection.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let answer = Answer::of(fresh.get(hub.url("/healthz"))).await;
    assert_eq!(answer.status, 200, "{answer}");

    // A keep-alive connection may idle past the header read timeout between requests,
    // and is closed once it idles past the idle timeout.
    let mut keep_alive = TcpStream::connect(&address).await.unwrap();
    keep_alive.write_all(GET_HEALTHZ).await.unwrap();
    assert!(
        read_answer(&mut keep_alive)
            .await
            .starts_with("HTTP/1.1 200")
    );
    tokio::time::sleep(HEADER_READ_TIMEOUT + Duration::from_millis(500)).await;
    keep_alive.write_all(GET_HEALTHZ).await.unwrap();
    assert!(
        read_answer(&mut keep_alive)
            .await
            .starts_with("HTTP/1.1 200")
    );
    let answered = Instant::now();

    // An upgraded WebSocket is not closed for being quiet past the idle timeout.
    let mut request = format!("ws://{address}/ws").into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", hub.token).parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    let idled = closed_within(&mut keep_alive, answered, IDLE_TIMEOUT + SLACK).await;
    assert!(
        idled >= IDLE_TIMEOUT - Duration::from_millis(100),
        "closed after {idled:?}"
    );

    for (i, task) in slow.into_iter().enumerate() {
        let closed = task.await.unwrap();
        let closed = closed.unwrap_or_else(|| panic!("slow connection {i} was never closed"));
        assert!(
            closed >= HEADER_READ_TIMEOUT - Duration::from_millis(100),
            "slow connection {i} closed after only {closed:?}"
        );
    }

    socket
        .send(tungstenite::Message::text(r#"{"kind": "idle.socket"}"#))
        .await
        .expect("the quiet socket is still open");
    let ack = tokio::time::timeout(DEADLINE, socket.next())
        .await
        .expect("an answer on the socket")
        .expect("the socket is open")
        .unwrap();
    let ack: Value = serde_json::from_str(ack.to_text().unwrap()).unwrap();
    assert_eq!(ack["type"], "ack", "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_and_lets_clients_in_once_others_leave() {
    const MAX_CONNECTIONS: usize = 4;
    let mut hub = Hub::new(ROUTES)
        .env(
            "SWITCHYARD_SERVER__MAX_CONNECTIONS",
            &MAX_CONNECTIONS.to_string(),
        )
        .env("SWITCHYARD_SERVER__HEADER_READ_TIMEOUT", "1m")
        .env("SWITCHYARD_SERVER__IDLE_TIMEOUT", "1s");
    hub.start().await;
    // The readiness checks' keep-alive connection idles out.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let address = format!("127.0.0.1:{}", hub.port);

    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        held.push(TcpStream::connect(&address).await.unwrap());
    }
    // Each is held open, waiting for its request.
    for stream in &mut held {
        let mut byte = [0u8; 1];
        let waited = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte)).await;
        assert!(
            waited.is_err(),
            "a connection within the cap was answered or closed"
        );
    }

    // One more is refused with a problem, and closed.
    let mut over = TcpStream::connect(&address).await.unwrap();
    over.write_all(GET_HEALTHZ).await.unwrap();
    let mut refusal = String::new();
    tokio::time::timeout(DEADLINE, over.read_to_string(&mut refusal))
        .await
        .expect("the refusal comes at once")
        .expect("the refusal is readable");
    assert!(refusal.starts_with("HTTP/1.1 503"), "{refusal}");
    assert!(refusal.contains("too-many-connections"), "{refusal}");
    assert!(refusal.contains("server.max_connections"), "{refusal}");

    // Once some leave, clients get in again.
    held.truncate(MAX_CONNECTIONS - 2);
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    eventually(
        DEADLINE,
        "a client served after connections left",
        || async {
            let answer = fresh.get(hub.url("/healthz")).send().await.ok()?;
            (answer.status() == 200).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_graphql_batches_and_costly_queries_are_refused_while_honest_ones_run() {
    let hub = Hub::started(ROUTES).await;
    // Notifications worth listing: 100 with 9 KB payloads.
    let notifications: Vec<Value> = (0..100)
        .map(|_| json!({ "kind": "load.test", "payload": { "blob": "x".repeat(9000) } }))
        .collect();
    let sent = hub
        .post_json(
            "/api/v1/notifications/batch",
            &json!({ "notifications": notifications }),
        )
        .await;
    assert!(sent.status < 300, "{sent}");
    let graphql = |body: Value| {
        Answer::of(
            hub.api(Method::POST, "/graphql")
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    };
    let heavy = "{ notifications(limit: 500) { items { id payload deliveries { state attemptLog { attempt } } } } }";
    let peak_before = peak_rss_kb(hub.pid());

    // Twenty queries in one batch: refused whole, before any runs.
    let batch: Vec<Value> = (0..20).map(|_| json!({ "query": heavy })).collect();
    let refused = graphql(json!(batch)).await;
    assert_eq!(refused.status, 400, "{refused}");
    let error = &refused.json()["errors"][0];
    assert_eq!(error["extensions"]["code"], "batch-too-large", "{refused}");
    assert!(
        error["message"].as_str().unwrap().contains("at most 10"),
        "{refused}"
    );

    // A page of 500 with their deliveries costs 500 times what one costs.
    let costly = graphql(json!({ "query": heavy })).await;
    assert_eq!(
        costly.json()["errors"][0]["message"],
        "Query is too complex.",
        "{costly}"
    );
    assert_eq!(costly.json()["data"], Value::Null, "{costly}");

    // Within a batch the cost adds up: the queries past the budget are refused.
    let pages = "{ notifications(limit: 150) { items { id payload } } }";
    let batch: Vec<Value> = (0..4).map(|_| json!({ "query": pages })).collect();
    let answers = graphql(json!(batch)).await.json();
    let answers = answers.as_array().expect("a batch answer");
    assert_eq!(answers.len(), 4);
    assert!(answers[0]["errors"].is_null(), "{answers:?}");
    assert_eq!(
        answers[0]["data"]["notifications"]["items"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
    let over = &answers[3]["errors"][0];
    assert_eq!(over["extensions"]["code"], "too-costly", "{answers:?}");
    assert!(
        over["message"]
            .as_str()
            .unwrap()
            .contains("graphql.max_complexity"),
        "{over}"
    );

    let grown = peak_rss_kb(hub.pid()).saturating_sub(peak_before);
    assert!(grown < PEAK_GROWTH_KB, "the peak RSS grew by {grown} kB");

    // An honest query runs.
    let honest = graphql(json!({ "query": "{ notifications(limit: 20) { items { id kind deliveries { state } } } }" })).await;
    assert_eq!(honest.status, 200, "{honest}");
    let items = &honest.json()["data"]["notifications"]["items"];
    assert_eq!(items.as_array().map(Vec::len), Some(20), "{honest}");
}
