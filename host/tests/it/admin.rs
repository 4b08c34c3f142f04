//! The admin console at the HTTP level: the session cookie's literal attributes, id
//! rotation at sign-in, CSRF refusals, lockout, idle and absolute timeouts on a clock the
//! test moves, sign-in through the API, plugin uploads, and sessions kept in the real Redis;
//! and the limits on all that: nothing stored for anonymous visitors, capped usernames, a
//! bounded number of password hashes at once, uploads refused before their file is read.
//!
//! Each test runs the whole HTTP app of a real hub (SQLite in a temporary directory) and
//! plays the browser: it keeps the cookie the server sets and sends it back.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use metrics_exporter_prometheus::PrometheusBuilder;
use poem::EndpointExt;
use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::test::{TestClient, TestForm, TestFormField, TestResponse};
use switchyard::admin::{Clock, Console, ExpiringSessions};
use switchyard::config::Config;
use switchyard::pipeline::Hub;

use crate::support::test_plugin;

const PASSWORD: &str = "correct horse battery staple";
const MINUTE: i64 = 60_000;

/// One hub's HTTP app, a clock the test moves, and one browser's cookie.
struct Admin {
    client: TestClient<BoxEndpoint<'static>>,
    now: Arc<AtomicI64>,
    cookie: Option<String>,
    hub: Arc<Hub>,
    /// The session store the app uses, to count what it keeps.
    sessions: ExpiringSessions,
    _dir: tempfile::TempDir,
}

async fn admin_with(sessions: &str) -> Admin {
    admin_configured(sessions, |_| {}).await
}

async fn admin_configured(sessions: &str, configure: impl FnOnce(&mut Config)) -> Admin {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.admin.sessions = sessions.to_owned();
    config.plugins.max_upload_bytes = 8 * 1024 * 1024;
    configure(&mut config);
    let now = Arc::new(AtomicI64::new(switchyard::store::now_ms()));
    let clock = {
        let now = now.clone();
        Clock::from_fn(move || now.load(Ordering::SeqCst))
    };
    let console = Console::open(&config.admin, clock).await.unwrap();
    let sessions = console.sessions.clone();
    let hub = Hub::start(config).await.unwrap();
    switchyard::admin::users::create_user(&hub.store, "admin", PASSWORD)
        .await
        .unwrap();
    let metrics = PrometheusBuilder::new().build_recorder().handle();
    let app = switchyard::server::app(hub.clone(), metrics, "http://localhost".into(), console);
    Admin {
        client: TestClient::new(app.map_to_response().boxed()),
        now,
        cookie: None,
        hub,
        sessions,
        _dir: dir,
    }
}

async fn admin() -> Admin {
    admin_with("memory").await
}

/// The value of the session cookie in a `Set-Cookie` header, or `None` when it clears it.
fn session_cookie(response: &TestResponse) -> Option<Option<String>> {
    let header = response
        .0
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-switchyard-session="))?;
    let value = header
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("__Host-switchyard-session=")
        .to_owned();
    let cleared = value.is_empty() || header.contains("Max-Age=0");
    Some((!cleared).then_some(value))
}

impl Admin {
    fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Keeps whatever the response did to the cookie, as a browser would.
    fn remember(&mut self, response: &TestResponse) {
        if let Some(cookie) = session_cookie(response) {
            self.cookie = cookie;
        }
    }

    fn cookie_header(&self) -> String {
        self.cookie
            .as_ref()
            .map(|c| format!("__Host-switchyard-session={c}"))
            .unwrap_or_default()
    }

    async fn get(&mut self, path: &str) -> TestResponse {
        let response = self
            .client
            .get(path)
            .header("cookie", self.cookie_header())
            .send()
            .await;
        self.remember(&response);
        response
    }

    async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> TestResponse {
        let response = self
            .client
            .post(path)
            .header("cookie", self.cookie_header())
            .form(&form)
            .send()
            .await;
        self.remember(&response);
        response
    }

    /// Loads a page and returns it with the CSRF token of its forms.
    async fn page(&mut self, path: &str) -> (String, String) {
        let response = self.get(path).await;
        response.assert_status_is_ok();
        let html = response.0.into_body().into_string().await.unwrap();
        let token = csrf_in(&html).expect("the page has a form with a CSRF token");
        (html, token)
    }

    async fn sign_in(&mut self, username: &str, password: &str) -> TestResponse {
        let (_, token) = self.page("/admin/login").await;
        self.post_form(
            "/admin/login",
            &[
                ("username", username),
                ("password", password),
                ("csrf_token", &token),
            ],
        )
        .await
    }
}

fn csrf_in(html: &str) -> Option<String> {
    let start = html.find(r#"name="csrf_token" value=""#)? + r#"name="csrf_token" value=""#.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

async fn api_sign_in(admin: &Admin, token: &str, password: &str) -> TestResponse {
    admin
        .client
        .post("/api/v1/session")
        .header("cookie", admin.cookie_header())
        .header("x-csrf-token", token)
        .body_json(&serde_json::json!({ "username": "admin", "password": password }))
        .send()
        .await
}

async fn upload(admin: &Admin, token: &str, name: &str, bytes: Vec<u8>) -> TestResponse {
    let form = TestForm::new()
        .text("csrf_token", token)
        .text("name", name)
        .field(
            TestFormField::bytes(bytes)
                .name("file")
                .filename("plugin.wasm"),
        );
    admin
        .client
        .post("/admin/plugins")
        .header("cookie", admin.cookie_header())
        .multipart(form)
        .send()
        .await
}

fn location(response: &TestResponse) -> &str {
    response.0.headers()["location"].to_str().unwrap()
}

#[tokio::test]
async fn the_session_cookie_has_every_attribute_set_explicitly() {
    let mut admin = admin().await;
    let response = admin.get("/admin/login").await;
    response.assert_status_is_ok();
    let header = response.0.headers()["set-cookie"].to_str().unwrap();
    let (pair, attributes) = header.split_once(';').unwrap();
    let id = pair.strip_prefix("__Host-switchyard-session=").unwrap();
    // 32 random bytes, base64url without padding: 256 bits.
    assert_eq!(id.len(), 43, "{header}");
    let mut attributes: Vec<&str> = attributes.split(';').map(str::trim).collect();
    attributes.sort();
    assert_eq!(
        attributes,
        ["HttpOnly", "Path=/", "SameSite=Strict", "Secure"],
        "{header}"
    );
}

#[tokio::test]
async fn signing_in_rotates_the_id_and_the_old_id_stops_working() {
    let mut admin = admin().await;
    admin.page("/admin/login").await;
    let before = admin.cookie.clone().unwrap();

    let response = admin.sign_in("admin", PASSWORD).await;
    response.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin");
    let after = admin.cookie.clone().unwrap();
    assert_ne!(before, after);

    let (html, _) = admin.page("/admin").await;
    assert!(
        html.contains("Signed in as <strong>admin</strong>"),
        "{html}"
    );

    // Whoever holds the pre-login id has nothing.
    admin.cookie = Some(before);
    let response = admin.get("/admin").await;
    response.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin/login");
}

#[tokio::test]
async fn state_changes_without_the_csrf_token_get_403() {
    let mut admin = admin().await;
    // Signing in needs the token of the session's sign-in form.
    admin.page("/admin/login").await;
    let response = admin
        .post_form(
            "/admin/login",
            &[("username", "admin"), ("password", PASSWORD)],
        )
        .await;
    response.assert_status(StatusCode::FORBIDDEN);

    admin
        .sign_in("admin", PASSWORD)
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let (_, token) = admin.page("/admin").await;
    for form in [vec![], vec![("csrf_token", "forged")]] {
        admin
            .post_form("/admin/logout", &form)
            .await
            .assert_status(StatusCode::FORBIDDEN);
        admin
            .post_form("/admin/routes/reload", &form)
            .await
            .assert_status(StatusCode::FORBIDDEN);
    }
    // Still signed in: the refused logouts did nothing.
    admin.page("/admin").await;

    // The API's sign-out wants the token in a header.
    let response = admin
        .client
        .delete("/api/v1/session")
        .header("cookie", admin.cookie_header())
        .send()
        .await;
    response.assert_status(StatusCode::FORBIDDEN);

    // With the token, logout works and destroys the session on the server.
    let old = admin.cookie.clone();
    let response = admin
        .post_form("/admin/logout", &[("csrf_token", &token)])
        .await;
    response.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(admin.cookie, None, "the cookie is cleared");
    admin.cookie = old;
    let response = admin.get("/admin").await;
    assert_eq!(location(&response), "/admin/login");
}

#[tokio::test]
async fn ten_failures_lock_the_account_and_unknown_users_look_the_same() {
    let mut admin = admin().await;
    let wrong = admin.sign_in("admin", "not the password").await;
    wrong.assert_status(StatusCode::UNAUTHORIZED);
    let wrong_page = wrong.0.into_body().into_string().await.unwrap();
    let unknown = admin.sign_in("nobody", "not the password").await;
    unknown.assert_status(StatusCode::UNAUTHORIZED);
    let unknown_page = unknown.0.into_body().into_string().await.unwrap();
    assert!(wrong_page.contains("Wrong username or password."));
    assert_eq!(
        wrong_page
            .replace("value=\"admin\"", "value=\"nobody\"")
            .len(),
        unknown_page.len(),
        "the two answers differ only in the echoed username"
    );

    for _ in 1..10 {
        admin
            .sign_in("admin", "still wrong")
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    // The eleventh try has the right password, but the account is locked.
    let locked = admin.sign_in("admin", PASSWORD).await;
    locked.assert_status(StatusCode::TOO_MANY_REQUESTS);
    let page = locked.0.into_body().into_string().await.unwrap();
    assert!(page.contains("locked"), "{page}");

    // Fifteen minutes later the failures have aged out.
    admin.advance(15 * MINUTE + 1000);
    admin
        .sign_in("admin", PASSWORD)
        .await
        .assert_status(StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_idle_session_ends_after_30_minutes() {
    let mut admin = admin().await;
    admin.sign_in("admin", PASSWORD).await;
    admin.advance(29 * MINUTE);
    admin.page("/admin").await;
    admin.advance(29 * MINUTE);
    admin.page("/admin").await;
    admin.advance(31 * MINUTE);
    let response = admin.get("/admin").await;
    response.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin/login");
}

#[tokio::test]
async fn a_busy_session_still_ends_8_hours_after_sign_in() {
    let mut admin = admin().await;
    admin.sign_in("admin", PASSWORD).await;
    for _ in 0..(8 * 60 / 20) {
        admin.advance(20 * MINUTE);
        admin.page("/admin").await;
    }
    admin.advance(MINUTE);
    let response = admin.get("/admin").await;
    assert_eq!(location(&response), "/admin/login");
}

#[tokio::test]
async fn api_clients_sign_in_with_the_same_sessions() {
    let mut admin = admin().await;
    let response = admin.get("/api/v1/session/csrf").await;
    response.assert_status_is_ok();
    let token = response
        .json()
        .await
        .value()
        .object()
        .get("csrf_token")
        .string()
        .to_owned();

    let response = api_sign_in(&admin, &token, "wrong password").await;
    response.assert_status(StatusCode::UNAUTHORIZED);

    let before = admin.cookie.clone();
    let response = api_sign_in(&admin, &token, PASSWORD).await;
    response.assert_status_is_ok();
    admin.remember(&response);
    assert_ne!(admin.cookie, before);
    let json = response.json().await;
    let token = json.value().object().get("csrf_token").string().to_owned();

    let response = admin.get("/api/v1/session").await;
    response.assert_status_is_ok();
    response
        .json()
        .await
        .value()
        .object()
        .get("username")
        .assert_string("admin");

    let response = admin
        .client
        .delete("/api/v1/session")
        .header("cookie", admin.cookie_header())
        .header("x-csrf-token", &token)
        .send()
        .await;
    response.assert_status(StatusCode::OK);
    let response = admin.get("/api/v1/session").await;
    response.assert_status(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn uploads_are_checked_versioned_and_rolled_back() {
    let mut admin = admin().await;
    admin.sign_in("admin", PASSWORD).await;
    let (_, token) = admin.page("/admin/plugins").await;

    let refusals = [
        (b"garbage, not wasm".to_vec(), "not a WebAssembly file"),
        (
            b"\0asm\x01\0\0\0".to_vec(),
            "a core WebAssembly module, not a component",
        ),
        (test_plugin("not-a-plugin"), "exports none of"),
    ];
    for (bytes, message) in refusals {
        upload(&admin, &token, "mine", bytes)
            .await
            .assert_status(StatusCode::SEE_OTHER);
        let (html, _) = admin.page("/admin/plugins").await;
        assert!(html.contains("Upload refused."), "{html}");
        assert!(html.contains(message), "{message}: {html}");
    }

    for _ in 0..2 {
        upload(&admin, &token, "mine", test_plugin("trivial"))
            .await
            .assert_status(StatusCode::SEE_OTHER);
    }
    let (html, _) = admin.page("/admin/plugins").await;
    assert!(
        html.contains("Plugin mine version 2 (channel) is uploaded and active."),
        "{html}"
    );
    assert_eq!(
        admin.hub.plugins.uploaded().await.unwrap()[0].active_version,
        2
    );

    // Rollback is one form post.
    admin
        .post_form(
            "/admin/plugins/mine/activate",
            &[("csrf_token", &token), ("version", "1")],
        )
        .await
        .assert_status(StatusCode::SEE_OTHER);
    assert_eq!(
        admin.hub.plugins.uploaded().await.unwrap()[0].active_version,
        1
    );
    admin.hub.plugins.channel("mine").await.unwrap();

    // Disabled, it refuses to run; its deliveries wait.
    admin
        .post_form("/admin/plugins/mine/disable", &[("csrf_token", &token)])
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let error = admin.hub.plugins.channel("mine").await.unwrap_err();
    assert!(error.contains("disabled"), "{error}");

    // Built-in names are taken.
    upload(&admin, &token, "webhook", test_plugin("trivial")).await;
    let (html, _) = admin.page("/admin/plugins").await;
    assert!(html.contains("is a built-in plugin"), "{html}");
}

#[tokio::test]
async fn sessions_in_redis_are_shared_prefixed_expiring_and_destroyed_at_logout() {
    const REDIS: &str = "redis://127.0.0.1:6379";
    let mut first = admin_with(REDIS).await;
    first
        .sign_in("admin", PASSWORD)
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let id = first.cookie.clone().unwrap();

    let client = redis::Client::open(REDIS).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("switchyard:session:{id}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        (1..=1800).contains(&ttl),
        "the idle timeout bounds the key: {ttl}"
    );

    // A second process on the same Redis knows the session. (Its own store is another
    // SQLite file, so the admin is created there too; the session is what is shared.)
    let mut second = admin_with(REDIS).await;
    second.cookie = Some(id.clone());
    let (html, token) = second.page("/admin").await;
    assert!(html.contains("Signed in as <strong>admin</strong>"));

    second
        .post_form("/admin/logout", &[("csrf_token", &token)])
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!exists, "logout deletes the session from Redis");
    let response = first.get("/admin").await;
    assert_eq!(location(&response), "/admin/login");
}

#[tokio::test]
async fn the_openapi_spec_documents_sign_in_with_the_session_cookie() {
    let mut admin = admin().await;
    let response = admin.get("/openapi.json").await;
    response.assert_status_is_ok();
    let spec: serde_json::Value =
        serde_json::from_str(&response.0.into_body().into_string().await.unwrap()).unwrap();
    let scheme = &spec["components"]["securitySchemes"]["SessionCookie"];
    assert_eq!(scheme["type"], "apiKey", "{scheme}");
    assert_eq!(scheme["in"], "cookie");
    assert_eq!(scheme["name"], "__Host-switchyard-session");
    let session = &spec["paths"]["/api/v1/session"];
    for method in ["post", "get", "delete"] {
        assert!(session[method].is_object(), "{method} /api/v1/session");
    }
    assert_eq!(
        session["get"]["security"][0]["SessionCookie"],
        serde_json::json!([])
    );
    assert!(spec["paths"]["/api/v1/session/csrf"]["get"].is_object());
    assert!(spec["paths"]["/api/v1/plugins"]["post"].is_object());
}

/// Anonymous visitors cost the session store nothing: a thousand `GET
/// /api/v1/session/csrf` and sign-in forms store no session, and the token of any of them
/// still signs in (which stores exactly one).
#[tokio::test]
async fn anonymous_csrf_tokens_and_sign_in_forms_store_no_sessions() {
    let mut admin = admin().await;
    for _ in 0..1000 {
        admin.cookie = None;
        admin
            .get("/api/v1/session/csrf")
            .await
            .assert_status_is_ok();
    }
    for _ in 0..100 {
        admin.cookie = None;
        admin.page("/admin/login").await;
    }
    assert_eq!(admin.sessions.count().await.unwrap(), 0);

    // The browser keeps its (unstored) pre-session cookie, so a reload shows the same
    // token, and a wrong password does not spend it.
    let (_, token) = admin.page("/admin/login").await;
    let (_, again) = admin.page("/admin/login").await;
    assert_eq!(token, again);
    admin
        .sign_in("admin", "not the password")
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(admin.sessions.count().await.unwrap(), 0);
    admin
        .sign_in("admin", PASSWORD)
        .await
        .assert_status(StatusCode::SEE_OTHER);
    assert_eq!(admin.sessions.count().await.unwrap(), 1);

    // Another browser's token does not go with this browser's cookie.
    let mut other = admin_with("memory").await;
    let (_, foreign) = other.page("/admin/login").await;
    admin.cookie = None;
    admin.page("/admin/login").await;
    admin
        .post_form(
            "/admin/login",
            &[
                ("username", "admin"),
                ("password", PASSWORD),
                ("csrf_token", &foreign),
            ],
        )
        .await
        .assert_status(StatusCode::FORBIDDEN);
    // Nor does a cookie without the token, or a made-up cookie with its own digest.
    admin.cookie = Some("A".repeat(43));
    admin
        .post_form(
            "/admin/login",
            &[("username", "admin"), ("password", PASSWORD)],
        )
        .await
        .assert_status(StatusCode::FORBIDDEN);
    other
        .sign_in("admin", PASSWORD)
        .await
        .assert_status(StatusCode::SEE_OTHER);
}

/// The same with sessions in Redis: anonymous calls add no key.
#[tokio::test]
async fn anonymous_csrf_tokens_store_nothing_in_redis() {
    // A database of its own, so other tests' sessions do not count.
    const REDIS: &str = "redis://127.0.0.1:6379/8";
    let mut admin = admin_with(REDIS).await;
    let before = admin.sessions.count().await.unwrap();
    for _ in 0..1000 {
        admin.cookie = None;
        admin
            .get("/api/v1/session/csrf")
            .await
            .assert_status_is_ok();
    }
    assert_eq!(admin.sessions.count().await.unwrap(), before);
    let response = admin.get("/api/v1/session/csrf").await;
    let token = response
        .json()
        .await
        .value()
        .object()
        .get("csrf_token")
        .string()
        .to_owned();
    let response = api_sign_in(&admin, &token, PASSWORD).await;
    response.assert_status_is_ok();
    assert_eq!(admin.sessions.count().await.unwrap(), before + 1);
}

/// A username over `admin.max_username_bytes` gets the wrong-password answer, is not
/// echoed back, and leaves no failure behind; one at the cap counts as usual.
#[tokio::test]
async fn over_long_usernames_are_refused_without_a_trace() {
    let mut admin = admin().await;
    let long = format!("{}x", "a".repeat(64));
    let response = admin.sign_in(&long, "not the password").await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    let page = response.0.into_body().into_string().await.unwrap();
    assert!(page.contains("Wrong username or password."), "{page}");
    assert!(!page.contains(&long));
    let hub = admin.hub.clone();
    let store = &hub.store;
    assert_eq!(store.login_failures_since(&long, 0).await.unwrap(), 0);

    let response = admin.get("/api/v1/session/csrf").await;
    let token = response
        .json()
        .await
        .value()
        .object()
        .get("csrf_token")
        .string()
        .to_owned();
    let huge = "u".repeat(1_000_000);
    let response = admin
        .client
        .post("/api/v1/session")
        .header("cookie", admin.cookie_header())
        .header("x-csrf-token", &token)
        .body_json(&serde_json::json!({ "username": huge, "password": "x" }))
        .send()
        .await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    response
        .json()
        .await
        .value()
        .object()
        .get("detail")
        .assert_string("Wrong username or password.");
    assert_eq!(store.login_failures_since(&huge, 0).await.unwrap(), 0);

    let at_cap = "a".repeat(64);
    admin
        .sign_in(&at_cap, "not the password")
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(store.login_failures_since(&at_cap, 0).await.unwrap(), 1);

    // The cap is a setting.
    let mut roomy = admin_configured("memory", |c| c.admin.max_username_bytes = 100).await;
    roomy
        .sign_in(&long, "not the password")
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(
        roomy
            .hub
            .store
            .login_failures_since(&long, 0)
            .await
            .unwrap(),
        1
    );
}

/// With one password hash at a time and no wait, sign-ins that arrive together are
/// partly refused with 503 `busy` and `Retry-After` instead of queueing; nothing is
/// counted against the account for them.
#[tokio::test]
async fn sign_ins_beyond_the_hashing_limit_get_503() {
    let mut admin = admin_configured("memory", |c| {
        c.admin.password_hash_concurrency = 1;
        c.admin.password_hash_wait = std::time::Duration::ZERO;
    })
    .await;
    let response = admin.get("/api/v1/session/csrf").await;
    let token = response
        .json()
        .await
        .value()
        .object()
        .get("csrf_token")
        .string()
        .to_owned();
    let attempts = (0..8).map(|_| api_sign_in(&admin, &token, "not the password"));
    let answers = futures::future::join_all(attempts).await;
    let mut busy = 0;
    let mut wrong = 0;
    for response in answers {
        match response.0.status() {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.0.headers().contains_key("retry-after"));
                response
                    .json()
                    .await
                    .value()
                    .object()
                    .get("code")
                    .assert_string("busy");
                busy += 1;
            }
            StatusCode::UNAUTHORIZED => wrong += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        busy >= 1,
        "8 at once with one slot: {wrong} hashed, none refused"
    );
    assert!(wrong >= 1, "the first one hashes");
    assert_eq!(
        admin
            .hub
            .store
            .login_failures_since("admin", 0)
            .await
            .unwrap(),
        wrong,
        "only the hashed attempts count"
    );
}

/// The upload form must send its CSRF token first: a body that starts with the file is
/// refused before the file is read, and a signed-out visitor gets nothing read at all.
#[tokio::test]
async fn uploads_need_a_session_and_the_token_before_the_file() {
    let mut admin = admin().await;
    let form = || {
        TestForm::new()
            .field(
                TestFormField::bytes(test_plugin("trivial"))
                    .name("file")
                    .filename("plugin.wasm"),
            )
            .text("name", "mine")
    };
    // Signed out.
    admin
        .client
        .post("/admin/plugins")
        .multipart(form())
        .send()
        .await
        .assert_status(StatusCode::FORBIDDEN);

    admin.sign_in("admin", PASSWORD).await;
    let (_, token) = admin.page("/admin/plugins").await;
    // The token after the file.
    admin
        .client
        .post("/admin/plugins")
        .header("cookie", admin.cookie_header())
        .multipart(form().text("csrf_token", &token))
        .send()
        .await
        .assert_status(StatusCode::FORBIDDEN);
    assert!(admin.hub.plugins.uploaded().await.unwrap().is_empty());
    // The form's order works.
    upload(&admin, &token, "mine", test_plugin("trivial"))
        .await
        .assert_status(StatusCode::SEE_OTHER);
    assert_eq!(admin.hub.plugins.uploaded().await.unwrap().len(), 1);
}
