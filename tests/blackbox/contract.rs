//! The OpenAPI spec is the contract, tried the way its users try it:
//! - the served spec is the committed `docs/openapi.json`, and an OpenAPI validator from
//!   PyPI (`openapi-spec-validator`) finds nothing wrong with it;
//! - schemathesis, with every check and every phase, finds no answer the spec does not
//!   describe and no request the spec allows that the hub refuses;
//! - a client generated from the served spec by `openapi-python-client`, used unmodified,
//!   does the everyday work (`tests/clients/generated_client.py`).
//!
//! To change the spec on purpose, run
//! `SWITCHYARD_UPDATE_OPENAPI=1 cargo test -p switchyard --test blackbox served_spec` and
//! commit `docs/openapi.json` with the change.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Hub, LOG_EVERYTHING, Receiver, Reply, python, webhook_channel};

/// The committed spec.
fn committed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

/// A command from the test venv (schemathesis, openapi-spec-validator, openapi-python-client).
fn venv_tool(name: &str) -> tokio::process::Command {
    let python = python();
    let tool = python.parent().expect("the venv's bin dir").join(name);
    assert!(
        tool.is_file(),
        "no {name} at {}: run ./scripts/test.sh, which installs it",
        tool.display()
    );
    let mut command = tokio::process::Command::new(tool);
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}

/// Runs `command` to its end within `limit`; returns whether it succeeded and what it printed.
async fn run(mut command: tokio::process::Command, limit: Duration) -> (bool, String) {
    let output = tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("{command:?} did not end within {limit:?}"))
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// The spec a hub serves, with its `servers` (the hub's own URL, which differs per run)
/// replaced by the default address.
async fn served_spec(hub: &Hub, path: &str) -> Value {
    let answer = hub.get(path).await;
    assert_eq!(answer.status, 200, "{answer}");
    assert!(
        answer.content_type().starts_with("application/json"),
        "{answer}"
    );
    let mut spec = answer.json();
    spec["servers"] = json!([{"url": "http://127.0.0.1:8080"}]);
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn served_spec_is_the_committed_valid_one() {
    let hub = Hub::started(LOG_EVERYTHING).await;
    let spec = served_spec(&hub, "/openapi.json").await;
    assert_eq!(
        spec,
        served_spec(&hub, "/api/v1/openapi.json").await,
        "both paths serve the same spec"
    );

    let path = committed_path();
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&spec).expect("serialises")
    );
    if std::env::var_os("SWITCHYARD_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &text).expect("can write docs/openapi.json");
    }
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("docs/openapi.json is committed"),
    )
    .expect("docs/openapi.json is JSON");
    if committed != spec {
        let changed: Vec<String> = diff("", &committed, &spec);
        panic!(
            "the served spec differs from docs/openapi.json at {} place(s):\n  {}\n\
             If the change is meant, run `SWITCHYARD_UPDATE_OPENAPI=1 cargo test -p \
             switchyard --test blackbox served_spec` and commit docs/openapi.json.",
            changed.len(),
            changed.join("\n  ")
        );
    }

    every_operation_is_documented(&spec);

    let mut validator = venv_tool("openapi-spec-validator");
    validator.arg(&path);
    let (ok, printed) = run(validator, Duration::from_secs(120)).await;
    assert!(ok, "openapi-spec-validator refuses the spec:\n{printed}");
    assert!(printed.contains("OK"), "{printed}");
}

/// What the issue asks of every operation: an `operationId`, a one-line summary, an example
/// of every body it takes and of every successful answer with a body, its authentication
/// failures documented, and problem bodies for every error.
fn every_operation_is_documented(spec: &Value) {
    let paths = spec["paths"].as_object().expect("the spec has paths");
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("a path item") {
            let at = format!("{} {path}", method.to_uppercase());
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "{at} has no operationId");
            assert!(
                ids.insert(id.to_owned()),
                "{at}: operationId {id} is not unique"
            );
            let summary = operation["summary"].as_str().unwrap_or_default();
            assert!(
                !summary.is_empty() && !summary.contains('\n') && summary.len() <= 80,
                "{at}: the summary should be one short line: {summary:?}"
            );
            let bodies = operation
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
                .into_iter()
                .flatten();
            for (content_type, media) in bodies {
                assert!(
                    media.get("example").is_some(),
                    "{at}: its {content_type} body has no example"
                );
            }
            let responses = operation["responses"].as_object().expect("responses");
            for (status, response) in responses {
                let content = response["content"].as_object().into_iter().flatten();
                for (content_type, media) in content {
                    if status.starts_with('2') {
                        assert!(
                            media.get("example").is_some(),
                            "{at}: its {status} {content_type} answer has no example"
                        );
                    } else {
                        assert_eq!(
                            (content_type.as_str(), &media["schema"]),
                            (
                                "application/problem+json",
                                &json!({"$ref": "#/components/schemas/Problem"})
                            ),
                            "{at}: its {status} answer is not a problem"
                        );
                    }
                }
            }
            if let Some(security) = operation["security"].as_array() {
                assert!(responses.contains_key("401"), "{at}: 401 is not documented");
                for requirement in security {
                    if let Some(scopes) = requirement.get("apiToken") {
                        assert!(
                            matches!(scopes.as_array().map(Vec::len), Some(1)),
                            "{at}: the token requirement names one scope: {requirement}"
                        );
                        assert!(responses.contains_key("403"), "{at}: 403 is not documented");
                    }
                }
            }
        }
    }
}

/// Where two JSON values differ, as JSON pointers (at most 20).
fn diff(at: &str, old: &Value, new: &Value) -> Vec<String> {
    let mut places = Vec::new();
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                let here = format!("{at}/{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => places.extend(diff(&here, x, y)),
                    (Some(_), None) => places.push(format!("{here} (removed)")),
                    _ => places.push(format!("{here} (added)")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                places.extend(diff(&format!("{at}/{i}"), x, y));
            }
        }
        _ if old != new => places.push(at.to_string()),
        _ => {}
    }
    places.truncate(20);
    places
}

/// The schemathesis hub's routes: everything to the log, and a Standard Webhooks source.
fn schemathesis_routes() -> String {
    format!(
        "sources:\n  shop:\n    adapter: webhook-standard\n    \
         secret: whsec_c2hvcC1zb3VyY2Uta2V5LTAxMjM0NTY3ODlhYmNkZWY=\n{LOG_EVERYTHING}"
    )
}

/// schemathesis against a running hub: every check, all four phases, a fixed seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_no_failure() {
    let hub = Hub::started(&schemathesis_routes()).await;
    let contract = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/contract");
    let tokens = hub.get("/api/v1/tokens").await;
    let own_id = tokens.json()[0]["id"]
        .as_str()
        .expect("the hub's one token")
        .to_owned();
    let report = hub.dir().join("schemathesis");
    let examples = std::env::var("SWITCHYARD_SCHEMATHESIS_EXAMPLES").unwrap_or("50".into());
    let mut schemathesis = venv_tool("schemathesis");
    schemathesis
        .arg("--config-file")
        .arg(contract.join("schemathesis.toml"))
        .arg("--no-color")
        .arg("run")
        .arg(hub.url("/openapi.json"))
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--seed", "20261206"])
        .args(["--max-examples", &examples])
        .args(["--workers", "2"])
        .args(["--request-timeout", "30"])
        .args(["--header", &format!("Authorization: Bearer {}", hub.token)])
        .args(["--report", "junit"])
        .arg("--report-dir")
        .arg(&report)
        // Its cache of earlier runs would make runs differ.
        .env("HYPOTHESIS_STORAGE_DIRECTORY", hub.dir().join("hypothesis"))
        .env("SCHEMATHESIS_HOOKS", contract.join("hooks.py"))
        .env("SWITCHYARD_OWN_TOKEN_ID", &own_id)
        .current_dir(hub.dir());
    let (ok, printed) = run(schemathesis, Duration::from_secs(1200)).await;
    println!("{printed}");
    assert!(ok, "schemathesis found failures (its output is above)");
    // Every operation of the spec was tested, in every phase.
    let spec = hub.get("/openapi.json").await.json();
    let operations: usize = spec["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().map_or(0, |methods| methods.len()))
        .sum();
    assert!(operations >= 21, "the spec lists its operations");
    assert!(
        printed.contains(&format!("Tested: {operations}\n")),
        "schemathesis did not test all {operations} operations:\n{printed}"
    );
    for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
        assert!(
            printed.contains(&format!("✅ {phase}")),
            "the {phase} phase did not pass:\n{printed}"
        );
    }
}

/// Routes for the generated client: `ok.*` is delivered to a receiver, `doomed.*` goes to
/// one that always answers 500 and becomes a dead letter after two attempts.
fn client_routes(good: &str, doomed: &str) -> String {
    format!(
        "channels:\n{}{}routes:\n  - name: ok\n    match: {{ kind: \"ok.*\" }}\n    to: [good]\n  \
         - name: doomed\n    match: {{ kind: \"doomed.*\" }}\n    to: [doomed]\n",
        webhook_channel("good", good, "[50ms]", ""),
        webhook_channel("doomed", doomed, "[50ms]", ""),
    )
}

/// Generates a Python client from the spec `hub` serves with openapi-python-client, as a
/// package named `switchyard_client` in the hub's data dir; returns the package's dir,
/// whose parent goes on `PYTHONPATH`. Panics if the generator fails or warns.
pub(crate) async fn generate_python_client(hub: &Hub) -> PathBuf {
    // The package's name is its directory's.
    let out = hub.dir().join("switchyard_client");
    let contract = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/contract");
    let mut generate = venv_tool("openapi-python-client");
    let venv_bin = python().parent().expect("the venv's bin dir").to_owned();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![venv_bin];
    paths.extend(std::env::split_paths(&path));
    generate
        .arg("generate")
        .args(["--url", &hub.url("/openapi.json")])
        .args(["--meta", "none"])
        .arg("--config")
        .arg(contract.join("openapi-python-client.yaml"))
        // It formats what it writes with ruff, which the venv has.
        .env("PATH", std::env::join_paths(paths).expect("a PATH"))
        .arg("--output-path")
        .arg(&out)
        .current_dir(hub.dir());
    let (ok, printed) = run(generate, Duration::from_secs(300)).await;
    assert!(
        ok,
        "openapi-python-client could not generate a client:\n{printed}"
    );
    assert!(
        !printed.to_lowercase().contains("warning"),
        "openapi-python-client warned about the spec:\n{printed}"
    );
    out
}

/// A client generated from the served spec by openapi-python-client, unmodified, used by
/// `tests/clients/generated_client.py`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generated_python_client_does_the_everyday_work() {
    let good = Receiver::start().await;
    let doomed = Receiver::start().await;
    doomed.otherwise(Reply::status(500));
    let hub = Hub::started(&client_routes(&good.url("/ok"), &doomed.url("/doomed"))).await;

    let out = generate_python_client(&hub).await;

    let mut client =
        crate::support::client_command("generated_client.py", &[&hub.url(""), &hub.token]);
    // `--meta none` writes the package itself into `out`; its parent is the import root.
    client.env("PYTHONPATH", out.parent().expect("a parent"));
    let (ok, printed) = run(client, Duration::from_secs(180)).await;
    println!("{printed}");
    assert!(
        ok,
        "the generated client's script failed (its output is above)"
    );
    assert!(printed.contains("all done"), "{printed}");
    assert!(good.count() >= 3, "the receiver got the sends");
}

/// The answers schemathesis first found off the spec, each pinned by a request of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_schemathesis_once_found_off_the_spec() {
    let hub = Hub::started(LOG_EVERYTHING).await;
    let send = |path: &'static str, body: Value| {
        let hub = &hub;
        async move { hub.post_json(path, &body).await }
    };

    // An undeclared method: 405, with the methods the spec declares.
    let trace =
        crate::support::Answer::of(hub.api(reqwest::Method::TRACE, "/api/v1/notifications")).await;
    trace.problem(405);
    assert_eq!(
        trace.header("allow").as_deref(),
        Some("GET, POST"),
        "{trace}"
    );

    // Each send endpoint takes exactly its own shape.
    let array = send("/api/v1/notifications", json!([{"kind": "a"}])).await;
    assert_eq!(array.problem(422)["field"], "$", "{array}");
    let single = send("/api/v1/notifications/batch", json!({"kind": "a"})).await;
    assert_eq!(single.problem(422)["field"], "kind", "{single}");

    // A string is a string: poem-openapi alone would have named a token "false".
    let token = send("/api/v1/tokens", json!({"name": false})).await;
    token.problem(422);
    // An integer written as 2.0 is an integer, as JSON Schema says.
    let version = crate::support::Answer::of(
        hub.api(reqwest::Method::PUT, "/api/v1/plugins/nothing/active")
            .header("content-type", "application/json")
            .body(r#"{"version": 2.0}"#),
    )
    .await;
    version.problem(404);

    // Limits count characters, as the spec's maxLength does: 256 two-byte characters pass.
    let wide = "é".repeat(256);
    let accepted = send(
        "/api/v1/notifications",
        json!({"kind": "wide", "attributes": {wide.clone(): wide.clone()}, "idempotency_key": wide}),
    )
    .await;
    assert_eq!(accepted.status, 202, "{accepted}");

    // Query parameters out of the spec's range are 400s; any RFC 3339 offset is taken.
    hub.get("/api/v1/notifications?limit=0").await.problem(400);
    hub.get("/api/v1/notifications?cursor=abc")
        .await
        .problem(400);
    let since = hub
        .get("/api/v1/notifications?since=1969-12-31T23:00:00-05:00")
        .await;
    assert_eq!(since.status, 200, "{since}");
    assert_eq!(
        since.json()["items"].as_array().map(Vec::len),
        Some(1),
        "{since}"
    );
}
