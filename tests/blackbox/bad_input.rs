//! Bad input of every kind gets a clear refusal, never a 500 and never a silent mistake:
//! a bad routes file at start-up, offline, and on reload; bad API requests.

use serde_json::json;

use crate::support::{Answer, EXIT_TIMEOUT, Hub, Receiver, one_hook};

/// A routes file whose `to:` line is indented one space short: a YAML mistake on line 7.
const MISINDENTED: &str = "\
channels:
  log:
    plugin: log
routes:
  - name: all
    match: { kind: \"*\" }
   to: [log]
";

/// Valid YAML, but the route sends to a channel that does not exist, on line 7.
const UNKNOWN_CHANNEL: &str = "\
channels:
  log:
    plugin: log
routes:
  - name: all
    match: { kind: \"*\" }
    to: [nowhere]
";

/// The line numbers `text` gives right after each `file:` in it.
fn lines_after(text: &str, file: &str) -> Vec<u32> {
    text.match_indices(&format!("{file}:"))
        .filter_map(|(at, found)| {
            let rest = &text[at + found.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// `serve` with a broken routes file exits non-zero, and says which file and line.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_refuses_a_bad_routes_file_with_its_line() {
    let hub = Hub::new("");
    let routes = hub.dir().join("broken-routes.yaml");
    std::fs::write(&routes, MISINDENTED).unwrap();
    let mut hub = hub.env("SWITCHYARD_ROUTES", routes.to_str().unwrap());

    hub.spawn();
    let status = hub.wait_exit(EXIT_TIMEOUT).await;
    assert!(!status.success(), "serve started with a broken routes file");
    let stderr = hub.stderr();
    let lines = lines_after(&stderr, &routes.display().to_string());
    assert!(
        lines.iter().any(|line| (6..=7).contains(line)),
        "stderr should name {}:7 (or the line before it), got:\n{stderr}",
        routes.display()
    );
}

/// `switchyard routes check` explains each problem as `file:line:col: reason`, exits 1 on a
/// bad file and 0 on a good one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routes_check_names_file_and_line() {
    let hub = Hub::new("");
    let dir = hub.dir();

    for (name, text, line) in [
        ("misindented.yaml", MISINDENTED, 7),
        ("unknown-channel.yaml", UNKNOWN_CHANNEL, 7),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let output = hub
            .command(&["routes", "check", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {output:?}");
        let lines = lines_after(&stderr, &path.display().to_string());
        assert!(
            lines.contains(&line) || (name == "misindented.yaml" && lines.contains(&(line - 1))),
            "{name}: stderr should say {}:{line}:<col>: <reason>, got:\n{stderr}",
            path.display()
        );
    }

    let good = dir.join("good.yaml");
    std::fs::write(&good, one_hook("http://127.0.0.1:9/hook", "[1s]", "")).unwrap();
    let output = hub
        .command(&["routes", "check", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "a good file is refused: {output:?}"
    );
    assert!(!output.stdout.is_empty(), "a good file gets a summary");
}

/// A reload of a broken file through the API is a 422 listing the problems, and the hub
/// keeps routing with the table it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_reload_keeps_the_old_routes() {
    let receiver = Receiver::start().await;
    let good = one_hook(&receiver.url("/hook"), "[100ms]", "");
    let hub = Hub::started(&good).await;

    std::fs::write(hub.routes_path(), UNKNOWN_CHANNEL).unwrap();
    let answer = Answer::of(hub.api(reqwest::Method::POST, "/api/v1/routes/reload")).await;
    let problem = answer.problem(422);
    let problems = problem["problems"].as_array().cloned().unwrap_or_default();
    assert!(!problems.is_empty(), "the problems are listed: {answer}");
    assert!(
        problems.iter().any(|p| p
            .as_str()
            .is_some_and(|p| p.contains(":7:") && p.contains("nowhere"))),
        "a problem names line 7 and the unknown channel: {answer}"
    );

    // The old table is still in force, and still routes.
    let routes = hub.get("/api/v1/routes").await;
    assert_eq!(routes.status, 200, "{routes}");
    assert_eq!(routes.json()["text"], good.as_str(), "{routes}");
    let id = hub.send(json!({"kind": "after.bad.reload"})).await;
    hub.wait_until_settled(&id, "delivered").await;
    assert!(receiver.received().iter().any(|r| r.webhook_id() == id));

    // Validate says the same without touching anything.
    let answer = Answer::of(
        hub.api(reqwest::Method::POST, "/api/v1/routes/validate")
            .header("content-type", "text/plain")
            .body(MISINDENTED),
    )
    .await;
    let problem = answer.problem(422);
    assert!(
        problem["problems"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{answer}"
    );
    let answer = Answer::of(
        hub.api(reqwest::Method::POST, "/api/v1/routes/validate")
            .header("content-type", "text/plain")
            .body(good.clone()),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer}");
    assert_eq!(answer.json()["valid"], true, "{answer}");
}

/// Bad API requests are 4xx problems that say what is wrong; none is a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_are_clear_problems() {
    let receiver = Receiver::start().await;
    let mut hub = Hub::new(&one_hook(&receiver.url("/hook"), "[100ms]", ""))
        .env("SWITCHYARD_API__MAX_BODY_BYTES", "1024");
    hub.start().await;
    let post = |body: String| {
        hub.api(reqwest::Method::POST, "/api/v1/notifications")
            .header("content-type", "application/json")
            .body(body)
    };

    // Malformed JSON.
    let answer = Answer::of(post("{\"kind\": \"a\",".into())).await;
    answer.problem(400);

    // A field of the wrong type: 422, naming the field.
    let answer = Answer::of(post(json!({"kind": 5}).to_string())).await;
    let problem = answer.problem(422);
    assert_eq!(problem["field"], "kind", "{answer}");
    // (Scalar attributes are taken as their text; a nested object is not an attribute.)
    let answer = Answer::of(post(
        json!({"kind": "a", "attributes": {"x": {"deep": 1}}}).to_string(),
    ))
    .await;
    let problem = answer.problem(422);
    assert_eq!(problem["field"], "attributes.x", "{answer}");

    // A missing required field.
    let answer = Answer::of(post(json!({"payload": {}}).to_string())).await;
    let problem = answer.problem(422);
    assert_eq!(problem["field"], "kind", "{answer}");

    // An unknown field is refused, not ignored: it is most likely a typo.
    let answer = Answer::of(post(json!({"kind": "a", "atributes": {}}).to_string())).await;
    assert!(
        (400..500).contains(&answer.status),
        "an unknown field must be refused: {answer}"
    );
    let problem = answer.problem(answer.status);
    assert!(
        problem["field"] == "atributes"
            || problem["detail"].as_str().unwrap().contains("atributes"),
        "the problem names the unknown field: {answer}"
    );

    // A bad item in a batch names its index.
    let answer = Answer::of(
        hub.api(reqwest::Method::POST, "/api/v1/notifications/batch")
            .header("content-type", "application/json")
            .body(json!({"notifications": [{"kind": "ok"}, {"kind": 1}]}).to_string()),
    )
    .await;
    let problem = answer.problem(422);
    assert_eq!(problem["field"], "notifications[1].kind", "{answer}");

    // Over api.max_body_bytes (1 KiB here).
    let big = json!({"kind": "big", "payload": {"text": "x".repeat(4096)}}).to_string();
    let answer = Answer::of(post(big)).await;
    answer.problem(413);

    // No token, a bad token.
    let answer = Answer::of(
        hub.anonymous(reqwest::Method::POST, "/api/v1/notifications")
            .header("content-type", "application/json")
            .body(json!({"kind": "a"}).to_string()),
    )
    .await;
    answer.problem(401);
    let answer = Answer::of(
        hub.anonymous(reqwest::Method::GET, "/api/v1/notifications")
            .bearer_auth("sy_not-a-real-token"),
    )
    .await;
    answer.problem(401);

    // An unknown notification, a bad query parameter.
    let answer = hub.get("/api/v1/notifications/no-such-id").await;
    answer.problem(404);
    let answer = hub.get("/api/v1/notifications?state=lost").await;
    answer.problem(400);
    let answer = hub.get("/api/v1/notifications?limit=many").await;
    assert!((400..500).contains(&answer.status), "{answer}");
    answer.problem(answer.status);

    // Nothing above was accepted, so nothing was delivered.
    let id = hub.send(json!({"kind": "good"})).await;
    hub.wait_until_settled(&id, "delivered").await;
    let ids: Vec<String> = receiver.received().iter().map(|r| r.webhook_id()).collect();
    assert_eq!(ids, [id], "only the good notification is delivered");
}
