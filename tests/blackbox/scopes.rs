//! API token scopes against a real hub: `send`, `read` and `admin` (which includes `read`),
//! refused with 403 problems naming the missing scope on REST, GraphQL and `/ws`; tokens
//! created with scopes from the CLI and the API; and a revoked token's sockets closing.

use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::support::{Answer, Hub, LOG_EVERYTHING as ROUTES};

/// How soon a revoked token's socket must close. Revoking on the same process closes it at
/// once; another process's revocation is seen at the next token refresh, every second.
const CLOSE_WITHIN: Duration = Duration::from_millis(1500);

/// `switchyard token create NAME --scope ...`, before the hub starts; the token and what the
/// command said on stderr.
fn cli_token(hub: &Hub, name: &str, scopes: &[&str]) -> (String, String) {
    let mut args = vec!["token", "create", name];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let output = hub.command(&args).output().expect("can run `token create`");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "`token create` failed: {stderr}");
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    (token, stderr)
}

async fn call(hub: &Hub, token: &str, method: reqwest::Method, path: &str) -> Answer {
    Answer::of(hub.anonymous(method, path).bearer_auth(token)).await
}

async fn post(hub: &Hub, token: &str, path: &str, body: &Value) -> Answer {
    Answer::of(
        hub.anonymous(reqwest::Method::POST, path)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

/// Asserts `answer` is the 403 problem for a token lacking `scope`.
fn refused_for_lack_of(answer: &Answer, scope: &str) {
    let problem = answer.problem(403);
    assert_eq!(problem["code"], "insufficient-scope", "{answer}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("lacks the `{scope}` scope")),
        "the problem names `{scope}`: {answer}"
    );
}

/// A GraphQL request with `token`: the JSON answer (always 200 once authenticated).
async fn graphql(hub: &Hub, token: &str, query: &str) -> Value {
    let answer = post(hub, token, "/graphql", &json!({ "query": query })).await;
    assert_eq!(answer.status, 200, "{answer}");
    answer.json()
}

fn graphql_refused(answer: &Value, scope: &str) {
    let error = &answer["errors"][0];
    assert_eq!(
        error["extensions"]["code"], "insufficient-scope",
        "{answer}"
    );
    assert_eq!(error["extensions"]["status"], 403, "{answer}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(&format!("lacks the `{scope}` scope")),
        "{answer}"
    );
}

/// A multipart plugin upload (its content does not matter: the token is refused first).
async fn upload_plugin(hub: &Hub, token: &str) -> Answer {
    const BOUNDARY: &str = "scopes-test-boundary";
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nmine\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"mine.wasm\"\r\n\
         Content-Type: application/wasm\r\n\r\n\0asm not really\r\n--{BOUNDARY}--\r\n"
    );
    Answer::of(
        hub.anonymous(reqwest::Method::POST, "/api/v1/plugins")
            .bearer_auth(token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body),
    )
    .await
}

async fn token_id(hub: &Hub, name: &str) -> String {
    let list = hub.get("/api/v1/tokens").await;
    assert_eq!(list.status, 200, "{list}");
    list.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no token named {name}: {list}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `path` (`/ws` or `/graphql`) as a WebSocket, with `token` as a bearer header when
/// given, and `protocol` when given.
async fn open_socket(hub: &Hub, path: &str, token: Option<&str>, protocol: Option<&str>) -> Socket {
    let url = format!("ws://127.0.0.1:{}{path}", hub.port);
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        request.headers_mut().insert("authorization", value);
    }
    if let Some(protocol) = protocol {
        let value = HeaderValue::from_str(protocol).unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", value);
    }
    let (socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("the socket opens in time")
    .expect("the socket opens");
    socket
}

/// The next text message as JSON; panics on anything else or after 10 s.
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("a message");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Waits (at most `within`) for the server's close frame; its code and reason.
async fn closed_within(socket: &mut Socket, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, socket.next())
            .await
            .unwrap_or_else(|_| {
                panic!("the socket was still open {within:?} after the revocation")
            });
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                panic!("the socket ended without a close frame")
            }
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scope_allows_its_own_and_refuses_the_rest() {
    let mut hub = Hub::new(ROUTES);
    let (sender, said) = cli_token(&hub, "sender", &["send"]);
    assert!(said.contains("with scopes: send."), "{said}");
    let (reader, said) = cli_token(&hub, "reader", &["read"]);
    assert!(said.contains("with scopes: read."), "{said}");
    let (admin, _) = cli_token(&hub, "operator", &["admin"]);
    let (_, said) = cli_token(&hub, "client", &[]);
    assert!(
        said.contains("with scopes: send, read."),
        "no scope given: send and read: {said}"
    );
    let refused = hub
        .command(&["token", "create", "x", "--scope", "root"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("`root` is not a scope"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    hub.start().await;
    let everything = hub.token.clone();

    // The token list, from the CLI and the API, shows each token's scopes.
    let listed = hub.command(&["token", "list"]).output().unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    for (scopes, name) in [
        ("send", "sender"),
        ("read", "reader"),
        ("admin", "operator"),
        ("send read", "client"),
        ("send read admin", "blackbox"),
    ] {
        assert!(
            listed
                .lines()
                .any(|l| l.ends_with(&format!("  {name}")) && l.contains(&format!("  {scopes} "))),
            "`token list` shows {name} with {scopes}:\n{listed}"
        );
    }
    let tokens = hub.get("/api/v1/tokens").await.json();
    let scopes_of = |name: &str| {
        tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["scopes"]
            .clone()
    };
    assert_eq!(scopes_of("sender"), json!(["send"]));
    assert_eq!(scopes_of("operator"), json!(["admin"]));
    assert_eq!(scopes_of("blackbox"), json!(["send", "read", "admin"]));
    let blackbox_id = token_id(&hub, "blackbox").await;

    // send: sends, and nothing else.
    let sent = post(
        &hub,
        &sender,
        "/api/v1/notifications",
        &json!({"kind": "scope.send"}),
    )
    .await;
    assert_eq!(sent.status, 202, "{sent}");
    let id = sent.json()["id"].as_str().unwrap().to_owned();
    let batch = json!({"notifications": [{"kind": "scope.batch"}]});
    let sent = post(&hub, &sender, "/api/v1/notifications/batch", &batch).await;
    assert_eq!(sent.status, 202, "{sent}");
    use reqwest::Method;
    for path in [
        "/api/v1/notifications".to_owned(),
        format!("/api/v1/notifications/{id}"),
        "/api/v1/dead-letters".to_owned(),
    ] {
        refused_for_lack_of(&call(&hub, &sender, Method::GET, &path).await, "read");
    }
    for (method, path) in [
        (Method::GET, "/api/v1/routes".to_owned()),
        (Method::POST, "/api/v1/routes/reload".to_owned()),
        (Method::GET, "/api/v1/plugins".to_owned()),
        (Method::GET, "/api/v1/tokens".to_owned()),
        (Method::DELETE, format!("/api/v1/tokens/{blackbox_id}")),
        (
            Method::POST,
            "/api/v1/dead-letters/nothing/replay".to_owned(),
        ),
    ] {
        refused_for_lack_of(&call(&hub, &sender, method, &path).await, "admin");
    }
    let disable = Answer::of(
        hub.anonymous(Method::PUT, "/api/v1/plugins/webhook/enabled")
            .bearer_auth(&sender)
            .header("content-type", "application/json")
            .body(r#"{"enabled": false}"#),
    )
    .await;
    refused_for_lack_of(&disable, "admin");
    let minted = post(
        &hub,
        &sender,
        "/api/v1/tokens",
        &json!({"name": "mine", "scopes": ["admin"]}),
    )
    .await;
    refused_for_lack_of(&minted, "admin");
    let mutation = r#"mutation { sendNotification(input: {kind: "scope.graphql"}) { id } }"#;
    let answer = graphql(&hub, &sender, mutation).await;
    assert!(answer["errors"].is_null(), "{answer}");
    graphql_refused(
        &graphql(&hub, &sender, "{ notifications { items { id } } }").await,
        "read",
    );
    graphql_refused(
        &graphql(&hub, &sender, "{ routes { channels } }").await,
        "admin",
    );

    // read: reads, and cannot send, upload plugins or revoke tokens.
    let page = call(&hub, &reader, Method::GET, "/api/v1/notifications").await;
    assert_eq!(page.status, 200, "{page}");
    let one = call(
        &hub,
        &reader,
        Method::GET,
        &format!("/api/v1/notifications/{id}"),
    )
    .await;
    assert_eq!(one.status, 200, "{one}");
    refused_for_lack_of(
        &post(
            &hub,
            &reader,
            "/api/v1/notifications",
            &json!({"kind": "scope.read"}),
        )
        .await,
        "send",
    );
    refused_for_lack_of(&upload_plugin(&hub, &reader).await, "admin");
    refused_for_lack_of(
        &call(
            &hub,
            &reader,
            Method::DELETE,
            &format!("/api/v1/tokens/{blackbox_id}"),
        )
        .await,
        "admin",
    );
    graphql_refused(&graphql(&hub, &reader, mutation).await, "send");
    let answer = graphql(&hub, &reader, "{ notifications { items { id } } }").await;
    assert!(answer["errors"].is_null(), "{answer}");

    // admin: administers and reads (admin includes read), but sends only with `send`.
    let page = call(&hub, &admin, Method::GET, "/api/v1/notifications").await;
    assert_eq!(page.status, 200, "{page}");
    let reloaded = call(&hub, &admin, Method::POST, "/api/v1/routes/reload").await;
    assert_eq!(reloaded.status, 200, "{reloaded}");
    refused_for_lack_of(
        &post(
            &hub,
            &admin,
            "/api/v1/notifications",
            &json!({"kind": "scope.admin"}),
        )
        .await,
        "send",
    );
    let minted = post(
        &hub,
        &admin,
        "/api/v1/tokens",
        &json!({"name": "minted", "scopes": ["send"]}),
    )
    .await;
    assert_eq!(minted.status, 200, "{minted}");
    assert_eq!(minted.json()["scopes"], json!(["send"]), "{minted}");
    let defaulted = post(
        &hub,
        &admin,
        "/api/v1/tokens",
        &json!({"name": "defaulted"}),
    )
    .await;
    assert_eq!(
        defaulted.json()["scopes"],
        json!(["send", "read"]),
        "{defaulted}"
    );
    let minted_id = minted.json()["id"].as_str().unwrap().to_owned();
    let minted = minted.json()["token"].as_str().unwrap().to_owned();
    let sent = post(
        &hub,
        &minted,
        "/api/v1/notifications",
        &json!({"kind": "scope.minted"}),
    )
    .await;
    assert_eq!(sent.status, 202, "{sent}");
    let revoked = call(
        &hub,
        &admin,
        Method::DELETE,
        &format!("/api/v1/tokens/{minted_id}"),
    )
    .await;
    assert!(revoked.status < 300, "{revoked}");
    let after = post(
        &hub,
        &minted,
        "/api/v1/notifications",
        &json!({"kind": "scope.minted"}),
    )
    .await;
    assert_eq!(after.status, 401, "{after}");

    // The first token, with every scope, does everything.
    let sent = post(
        &hub,
        &everything,
        "/api/v1/notifications",
        &json!({"kind": "scope.all"}),
    )
    .await;
    assert_eq!(sent.status, 202, "{sent}");
    let listed = call(&hub, &everything, Method::GET, "/api/v1/tokens").await;
    assert_eq!(listed.status, 200, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_ws_each_frame_needs_its_scope() {
    let mut hub = Hub::new(ROUTES);
    let (sender, _) = cli_token(&hub, "sender", &["send"]);
    let (reader, _) = cli_token(&hub, "reader", &["read"]);
    hub.start().await;

    let mut socket = open_socket(&hub, "/ws", Some(&sender), None).await;
    socket
        .send(Message::text(r#"{"kind": "ws.scoped"}"#))
        .await
        .unwrap();
    let ack = next_json(&mut socket).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    socket
        .send(Message::text(
            r#"{"op": "subscribe", "events": ["notifications"]}"#,
        ))
        .await
        .unwrap();
    let refused = next_json(&mut socket).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["seq"], 2, "{refused}");
    assert_eq!(refused["status"], 403, "{refused}");
    assert_eq!(refused["code"], "insufficient-scope", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("`read`"),
        "{refused}"
    );

    let mut socket = open_socket(&hub, "/ws", Some(&reader), None).await;
    socket
        .send(Message::text(r#"{"kind": "ws.scoped"}"#))
        .await
        .unwrap();
    let refused = next_json(&mut socket).await;
    assert_eq!(refused["status"], 403, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("`send`"),
        "{refused}"
    );
    socket
        .send(Message::text(
            r#"{"op": "subscribe", "events": ["notifications"]}"#,
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "subscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_closes_its_sockets_within_a_second() {
    let mut hub = Hub::new(ROUTES);
    let (ws_token, _) = cli_token(&hub, "ws-reader", &["read"]);
    let (graphql_token, _) = cli_token(&hub, "graphql-reader", &["read"]);
    let (cli_revoked, _) = cli_token(&hub, "revoked-elsewhere", &["read"]);
    hub.start().await;

    // /ws, revoked through the API of the same hub.
    let mut socket = open_socket(&hub, "/ws", Some(&ws_token), None).await;
    socket
        .send(Message::text(
            r#"{"op": "subscribe", "events": ["notifications"]}"#,
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "subscribed");
    let id = token_id(&hub, "ws-reader").await;
    let revoked = hub
        .api(reqwest::Method::DELETE, &format!("/api/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{revoked:?}");
    let (code, reason) = closed_within(&mut socket, CLOSE_WITHIN).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("revoked"), "{reason}");

    // The GraphQL subscription socket, token in `connection_init`.
    let mut socket = open_socket(&hub, "/graphql", None, Some("graphql-transport-ws")).await;
    let init = json!({"type": "connection_init", "payload": {"token": graphql_token}});
    socket.send(Message::text(init.to_string())).await.unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "connection_ack");
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { notifications { id } }"}});
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .unwrap();
    // The subscription is live: an accepted notification reaches it. The protocol does not
    // acknowledge a subscribe, and a subscription sees only what is accepted after it
    // starts, so notifications are sent until one arrives (at most 20, half a second apart).
    let mut event = Value::Null;
    for _ in 0..20 {
        hub.send(json!({"kind": "graphql.live"})).await;
        let next = tokio::time::timeout(Duration::from_millis(500), socket.next()).await;
        if let Ok(Some(Ok(Message::Text(text)))) = next {
            event = serde_json::from_str(&text).unwrap();
            break;
        }
    }
    assert_eq!(event["type"], "next", "{event}");
    let id = token_id(&hub, "graphql-reader").await;
    let revoked = hub
        .api(reqwest::Method::DELETE, &format!("/api/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{revoked:?}");
    let (code, reason) = closed_within(&mut socket, CLOSE_WITHIN).await;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.contains("revoked"), "{reason}");

    // Revoked by another process (the CLI, on the same store): seen at the next refresh.
    let mut socket = open_socket(&hub, "/ws", Some(&cli_revoked), None).await;
    socket
        .send(Message::text(
            r#"{"op": "subscribe", "events": ["notifications"]}"#,
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "subscribed");
    let id = token_id(&hub, "revoked-elsewhere").await;
    let output = hub.command(&["token", "revoke", &id]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (code, reason) = closed_within(&mut socket, CLOSE_WITHIN).await;
    assert_eq!(code, 1008, "{reason}");
    let refused = Answer::of(
        hub.anonymous(reqwest::Method::GET, "/api/v1/notifications")
            .bearer_auth(&cli_revoked),
    )
    .await;
    assert_eq!(refused.status, 401, "{refused}");
}
