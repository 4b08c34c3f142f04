//! The admin console's first run and its API sign-in, against a real process over HTTP.
//! (The pages in a real browser are in `browser.rs`; the session rules in detail, with a
//! clock the test moves, are in host/tests/it/admin.rs.)

use serde_json::json;

use crate::support::{Answer, EXIT_TIMEOUT, Hub, LOG_EVERYTHING as ROUTES};

/// The first start creates `admin` with a password shown once; that password signs in
/// through the API; a second start creates nothing and shows nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_creates_an_admin_whose_one_time_password_signs_in() {
    let mut hub = Hub::started(ROUTES).await;
    let banner = hub.logs();
    let line = banner
        .lines()
        .find(|l| l.trim_start().starts_with("user admin"))
        .unwrap_or_else(|| panic!("the banner shows the first admin's password: {banner}"));
    let password = line.split("password").nth(1).unwrap().trim().to_owned();
    assert_eq!(password.len(), 20, "{line}");

    let wrong = try_sign_in(&hub, "admin", "not it").await;
    assert_eq!(wrong.problem(401)["detail"], "Wrong username or password.");
    let cookie = sign_in(&hub, "admin", &password).await;
    let me = Answer::of(
        hub.anonymous(reqwest::Method::GET, "/api/v1/session")
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(me.json()["username"], "admin", "{me}");

    hub.sigterm();
    hub.wait_exit(EXIT_TIMEOUT).await;
    hub.start().await;
    let second_run = hub.logs();
    let second_run = second_run.split("---- hub run 2").nth(1).unwrap();
    assert!(!second_run.contains("password"), "{second_run}");
}

/// Signs in through the API the way a script does: a session and its CSRF token, then the
/// password. Returns the answer to the sign-in.
pub async fn try_sign_in(hub: &Hub, username: &str, password: &str) -> Answer {
    let start = Answer::of(hub.anonymous(reqwest::Method::GET, "/api/v1/session/csrf")).await;
    assert_eq!(start.status, 200, "{start}");
    let csrf = start.json()["csrf_token"].as_str().unwrap().to_owned();
    Answer::of(
        hub.anonymous(reqwest::Method::POST, "/api/v1/session")
            .header("cookie", session_cookie(&start))
            .header("x-csrf-token", csrf)
            .header("content-type", "application/json")
            .body(json!({"username": username, "password": password}).to_string()),
    )
    .await
}

/// Signs in and returns the signed-in session's `Cookie` header.
pub async fn sign_in(hub: &Hub, username: &str, password: &str) -> String {
    let signed_in = try_sign_in(hub, username, password).await;
    assert_eq!(signed_in.status, 200, "{signed_in}");
    session_cookie(&signed_in)
}

/// `name=value` of the session cookie the answer sets.
fn session_cookie(answer: &Answer) -> String {
    let header = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("__Host-switchyard-session="))
        .unwrap_or_else(|| panic!("a session cookie is set: {answer}"));
    header.split(';').next().unwrap().to_owned()
}
