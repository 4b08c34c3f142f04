//! Nothing echoes a secret. A real hub gets canary values where secrets live (its
//! environment, the master key, the vault, a URL's path) and deliveries that fail in every
//! way that used to repeat them (a refused connection, a denied host, a redirect); then
//! every surface a token holder, an admin or a log reader sees is searched for the
//! canaries: the REST API, GraphQL, the admin pages, `/metrics` and the hub's output.

use std::io::Write as _;
use std::process::Stdio;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::admin::sign_in;
use crate::support::{Answer, Hub, Receiver, Reply, free_port};

/// One run's canaries: each is unique to the run, so a hit cannot be a coincidence.
struct Canaries {
    master_key: String,
    signing_key: String,
    env_path: String,
    vault_refused_path: String,
    vault_denied_path: String,
    redirect_path: String,
    validate_value: String,
    validate_host: String,
}

impl Canaries {
    fn new() -> Canaries {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let tag = format!("{nanos:x}{:x}", std::process::id());
        let key = |label: &str| {
            let mut bytes = [0u8; 32];
            let text = format!("{label}-{tag}");
            for (i, b) in text.bytes().enumerate() {
                bytes[i % 32] ^= b;
            }
            BASE64.encode(bytes)
        };
        Canaries {
            master_key: key("master"),
            signing_key: key("signing"),
            env_path: format!("envpath-canary-{tag}"),
            vault_refused_path: format!("vaultpath-refused-canary-{tag}"),
            vault_denied_path: format!("vaultpath-denied-canary-{tag}"),
            redirect_path: format!("redirect-canary-{tag}"),
            validate_value: format!("validate-canary-{tag}"),
            validate_host: format!("https://validate-host-canary-{tag}.example.com/x"),
        }
    }

    /// Every canary, named, with the forms a leak could take (JSON and HTML escape `/`
    /// and `+` differently, so the base64 keys are also searched by a slash-free part).
    fn all(&self) -> Vec<(&'static str, String)> {
        let core = |key: &str| {
            key.split(['/', '+', '='])
                .max_by_key(|p| p.len())
                .unwrap()
                .to_owned()
        };
        vec![
            ("the master key", self.master_key.clone()),
            ("the master key (part)", core(&self.master_key)),
            (
                "the signing key from the environment",
                self.signing_key.clone(),
            ),
            ("the signing key (part)", core(&self.signing_key)),
            ("a URL path from the environment", self.env_path.clone()),
            (
                "a vault URL's path (refused)",
                self.vault_refused_path.clone(),
            ),
            (
                "a vault URL's path (denied)",
                self.vault_denied_path.clone(),
            ),
            ("a redirect's path", self.redirect_path.clone()),
            (
                "a value only validate could read",
                self.validate_value.clone(),
            ),
            (
                "a host only validate could read",
                self.validate_host.clone(),
            ),
            (
                "a host only validate could read (name)",
                self.validate_host
                    .trim_start_matches("https://")
                    .split('/')
                    .next()
                    .unwrap()
                    .to_owned(),
            ),
        ]
    }
}

/// Four channels that fail, one attempt each: a webhook whose URL and signing key come
/// from the environment and whose port refuses connections; two Slack channels whose
/// webhook URL is a vault secret, one refused, one for a host it is not granted; and a
/// webhook whose receiver redirects to a URL with a canary in its path.
fn routes(refused_port: u16, redirecting: &str) -> String {
    format!(
        r#"channels:
  env-refused:
    plugin: webhook
    config: {{ url: "http://127.0.0.1:{refused_port}/${{CANARY_PATH}}?token=${{CANARY_PATH}}" }}
    secrets: {{ signing_key: "${{CANARY_SIGNING}}" }}
    allowed_hosts: ["127.0.0.1"]
    retry: {{ schedule: [] }}
  vault-refused:
    plugin: slack
    secrets: [webhook_url]
    allowed_hosts: ["127.0.0.1"]
    retry: {{ schedule: [] }}
  vault-denied:
    plugin: slack
    secrets: [webhook_url]
    allowed_hosts: ["127.0.0.1"]
    retry: {{ schedule: [] }}
  redirected:
    plugin: webhook
    config: {{ url: "{redirecting}" }}
    secrets: {{ signing_key: "${{CANARY_SIGNING}}" }}
    allowed_hosts: ["127.0.0.1"]
    retry: {{ schedule: [] }}
routes:
  - name: all
    match: {{ kind: "*" }}
    to: [env-refused, vault-refused, vault-denied, redirected]
"#
    )
}

/// A routes file with mistakes fed by the environment, as someone probing the hub's
/// variables through validate would write it.
const PROBE: &str = r#"channels:
  probe:
    plugin: webhook
    config: { url: "${CANARY_PATH}" }
    secrets: { signing_key: "${CANARY_SIGNING}" }
    concurrency: ${CANARY_VALIDATE}
    rate_limit: "${SWITCHYARD_MASTER_KEY}"
    allowed_hosts: ["${CANARY_HOST}", "${SWITCHYARD_MASTER_KEY}"]
    retry: { schedule: ["${CANARY_VALIDATE}"] }
routes:
  - name: ${CANARY_VALIDATE}
    match: { kind: "${SWITCHYARD_MASTER_KEY}" }
    to: [probe, "${CANARY_SIGNING}", "${NOT_SET_ANYWHERE}"]
"#;

/// `switchyard secrets set CHANNEL NAME` with `value` on standard input.
fn set_secret(hub: &Hub, channel: &str, name: &str, value: &str) {
    let mut child = hub
        .command(&["secrets", "set", channel, name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("can run `switchyard secrets set`");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(value.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "`secrets set {channel} {name}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `csrf_token` hidden input of an admin page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf_token\" value=\"")
        .unwrap_or_else(|| panic!("the page has a CSRF token: {page}"));
    let rest = &page[at + "name=\"csrf_token\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_surface_shows_a_secret() {
    let canaries = Canaries::new();
    let refused_port = free_port();
    let redirecting = Receiver::start().await;
    redirecting.otherwise(Reply::status(301).header(
        "location",
        &format!(
            "https://user:pw@127.0.0.1/{}?sig={}",
            canaries.redirect_path, canaries.redirect_path
        ),
    ));
    let routes = routes(refused_port, &redirecting.url("/hook"));
    let hub = Hub::new(&routes)
        .env("SWITCHYARD_MASTER_KEY", &canaries.master_key)
        .env("CANARY_PATH", &canaries.env_path)
        .env("CANARY_SIGNING", &format!("whsec_{}", canaries.signing_key))
        .env("CANARY_VALIDATE", &canaries.validate_value)
        .env("CANARY_HOST", &canaries.validate_host);
    set_secret(
        &hub,
        "vault-refused",
        "webhook_url",
        &format!(
            "http://127.0.0.1:{refused_port}/{}?token={}",
            canaries.vault_refused_path, canaries.vault_refused_path
        ),
    );
    set_secret(
        &hub,
        "vault-denied",
        "webhook_url",
        &format!(
            "https://user:pw@hooks.denied.example/{}#{}",
            canaries.vault_denied_path, canaries.vault_denied_path
        ),
    );
    let mut hub = hub;
    hub.start().await;

    // Every delivery fails for good on its first attempt.
    let id = hub.send(json!({"kind": "secret.canary"})).await;
    let notification = hub.wait_until_settled(&id, "dead").await;
    let deliveries = notification["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 4, "{notification:#}");
    // The failures are still explained, by scheme, host and port.
    let reason = |channel: &str| {
        deliveries
            .iter()
            .find(|d| d["channel"] == channel)
            .and_then(|d| d["last_error"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let refused = format!("http://127.0.0.1:{refused_port}");
    assert!(reason("env-refused").contains(&refused), "{notification:#}");
    assert!(
        reason("vault-refused").contains(&refused),
        "{notification:#}"
    );
    assert!(
        reason("vault-denied").contains("hooks.denied.example"),
        "{notification:#}"
    );
    assert!(
        reason("redirected").contains("https://127.0.0.1"),
        "{notification:#}"
    );

    let mut seen: Vec<(String, String)> = Vec::new();
    let mut look = |surface: &str, text: String| seen.push((surface.to_owned(), text));
    look("the notification", notification.to_string());

    // The REST API.
    for path in [
        "/api/v1/routes".to_owned(),
        format!("/api/v1/notifications/{id}"),
        "/api/v1/notifications".to_owned(),
        "/api/v1/dead-letters".to_owned(),
        "/api/v1/plugins".to_owned(),
    ] {
        let answer = hub.get(&path).await;
        assert_eq!(answer.status, 200, "{path}: {answer}");
        look(&path, answer.text());
    }
    let validate = |body: &str| {
        Answer::of(
            hub.api(reqwest::Method::POST, "/api/v1/routes/validate")
                .header("content-type", "text/plain")
                .body(body.to_owned()),
        )
    };
    let probed = validate(PROBE).await;
    let problem = probed.problem(422);
    assert!(
        problem
            .to_string()
            .contains("`NOT_SET_ANYWHERE` is not set"),
        "an unset variable is reported by name: {probed}"
    );
    look("validate (probe)", probed.text());
    // The hub's own file validates, its variables all set.
    let own = validate(&routes).await;
    assert_eq!(own.status, 200, "{own}");
    look("validate (own file)", own.text());

    // A reload of a bad file quotes it as written, in the answer and in the log.
    std::fs::write(
        hub.routes_path(),
        PROBE.replace("${NOT_SET_ANYWHERE}", "probe"),
    )
    .unwrap();
    let reload = Answer::of(hub.api(reqwest::Method::POST, "/api/v1/routes/reload")).await;
    let problem = reload.problem(422);
    assert!(
        problem.to_string().contains("${CANARY_VALIDATE}"),
        "the problems quote the file: {reload}"
    );
    look("reload (refused)", reload.text());
    std::fs::write(hub.routes_path(), &routes).unwrap();
    let reload = Answer::of(hub.api(reqwest::Method::POST, "/api/v1/routes/reload")).await;
    assert_eq!(reload.status, 200, "{reload}");
    look("reload", reload.text());

    // GraphQL, the same data, a query at a time to stay within its complexity limit.
    let queries = [
        "{ routes { path text warnings channels sources routes { name to } } }".to_owned(),
        "{ plugins { name description imports } }".to_owned(),
        format!(
            r#"{{ notification(id: "{id}") {{ id kind deliveries {{ channel route state
                lastError attemptLog {{ attempt outcome status detail }} }} }} }}"#
        ),
        "{ notifications(limit: 5) { items { id deliveries { lastError attemptLog { detail } } } } }"
            .to_owned(),
        "{ deadLetters(limit: 10) { items { deliveryId channel route attempts lastError } } }"
            .to_owned(),
    ];
    for query in queries {
        let graphql = hub.post_json("/graphql", &json!({ "query": query })).await;
        assert_eq!(graphql.status, 200, "{query}: {graphql}");
        assert_eq!(graphql.json()["errors"], Value::Null, "{query}: {graphql}");
        if query.contains("deadLetters") {
            let dead = graphql.json()["data"]["deadLetters"]["items"].clone();
            assert_eq!(dead.as_array().map(Vec::len), Some(4), "{graphql}");
        }
        look(&format!("GraphQL {query}"), graphql.text());
    }

    // The admin console, signed in as its first admin.
    let banner = hub.logs();
    let password = banner
        .lines()
        .find(|l| l.trim_start().starts_with("user admin"))
        .and_then(|l| l.split("password").nth(1))
        .map(|p| p.trim().to_owned())
        .unwrap_or_else(|| panic!("the banner shows the first admin's password: {banner}"));
    let cookie = sign_in(&hub, "admin", &password).await;
    let page = |path: &str| {
        Answer::of(
            hub.anonymous(reqwest::Method::GET, path)
                .header("cookie", &cookie),
        )
    };
    for path in [
        "/admin/",
        "/admin/routes",
        "/admin/plugins",
        "/admin/secrets",
    ] {
        let answer = page(path).await;
        assert_eq!(answer.status, 200, "{path}: {answer}");
        look(path, answer.text());
    }
    let routes_page = page("/admin/routes").await.text();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf_token", &csrf_of(&routes_page))
        .append_pair("yaml", PROBE)
        .finish();
    let checked = Answer::of(
        hub.anonymous(reqwest::Method::POST, "/admin/routes/validate")
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form),
    )
    .await;
    assert!(
        checked.text().contains("NOT_SET_ANYWHERE"),
        "the admin validate form reports the unset variable: {checked}"
    );
    look("/admin/routes/validate", checked.text());

    // Metrics, and everything the hub wrote.
    let metrics = Answer::of(hub.anonymous(reqwest::Method::GET, "/metrics")).await;
    assert_eq!(metrics.status, 200, "{metrics}");
    look("/metrics", metrics.text());
    look("the hub's output", hub.logs());

    let mut leaks = Vec::new();
    for (surface, text) in &seen {
        for (what, canary) in canaries.all() {
            if text.contains(&canary) {
                leaks.push(format!("{surface} shows {what}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets are shown:\n  {}\n\n{}",
        leaks.join("\n  "),
        seen.iter()
            .map(|(surface, text)| format!("---- {surface}\n{text}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
