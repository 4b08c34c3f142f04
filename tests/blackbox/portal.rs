//! The customer portal on a real hub: a link minted through the API opens one tenant's
//! portal once; in a real browser (headless Chromium, as in `browser.rs`) its user manages
//! endpoints, reads a secret once, sends test events, follows deliveries and attempts,
//! rotates the secret, replays a dead delivery, recovers failed ones, and does it again
//! inside an iframe of another site; over plain HTTP, a session of one tenant reaches
//! nothing of another by any id, links that are forged, expired or spent open nothing, and
//! links and sessions hold across two processes sharing one PostgreSQL store.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::Client;
use futures::FutureExt as _;
use poem::listener::{Acceptor as _, Listener as _};
use serde_json::{Value, json};

use crate::brokers::TestDatabase;
use crate::browser::{
    ChromeDriver, absent, click, css, fill, find, goto, page_text, path, require_browser,
    save_evidence, text, wait_for,
};
use crate::support::{
    Answer, DEADLINE, EXIT_TIMEOUT, Hub, LOG_EVERYTHING as ROUTES, Receiver, Reply, epoch_ms,
    eventually,
};
use crate::tenants::{create_endpoint, create_tenant, signed_by};

const COOKIE: &str = "__Secure-switchyard-portal";
/// Anything on a portal page that says the last step went wrong.
const PAGE_FAILED: &[&str] = &["#form-error", "#message-heading", ".flash-error"];

/// Mints a portal link to `tenant` with the hub's operator token; returns its URL.
async fn mint(hub: &Hub, tenant: &str) -> String {
    let answer = hub
        .post_json(
            &format!("/api/v1/tenants/{tenant}/portal-links"),
            &json!({}),
        )
        .await;
    assert_eq!(answer.status, 201, "mint a portal link: {answer}");
    let link = answer.json();
    let url = link["url"].as_str().expect("a url").to_owned();
    let expires_at = epoch_ms(&link["expires_at"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(expires_at > now, "{link}");
    url
}

/// A client that does not follow redirects, so each answer's cookie can be seen.
fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// The link's path and query, to open on `hub.url` (the link names `public_url`'s host).
fn link_path(link: &str) -> String {
    let at = link.find("/portal/enter?token=").expect("a portal link");
    link[at..].to_owned()
}

/// Opens `link` over HTTP as a browser navigating to it does; returns the answer.
async fn enter(hub: &Hub, link: &str) -> Answer {
    Answer::of(
        plain_client()
            .get(hub.url(&link_path(link)))
            .header("sec-fetch-mode", "navigate"),
    )
    .await
}

/// Opens `link` and returns the portal session's `Cookie` header.
async fn session(hub: &Hub, link: &str) -> String {
    let answer = enter(hub, link).await;
    assert_eq!(answer.status, 303, "open the link: {answer}");
    assert_eq!(answer.header("location").as_deref(), Some("/portal"));
    let set = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{COOKIE}=")))
        .unwrap_or_else(|| panic!("no portal cookie: {answer}"));
    for attribute in ["Path=/portal", "Secure", "HttpOnly", "SameSite=None"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    set.split(';').next().unwrap().to_owned()
}

/// A request to a portal path with `cookie`.
fn as_visitor(
    hub: &Hub,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
) -> reqwest::RequestBuilder {
    plain_client()
        .request(method, hub.url(path))
        .header("cookie", cookie)
}

/// The CSRF token in a portal page.
fn csrf_token(page: &str) -> String {
    let at = page
        .find("name=\"csrf_token\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF token in {page}"));
    let rest = &page[at + "name=\"csrf_token\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// POSTs `form` to a portal path with `cookie`.
async fn post_form(hub: &Hub, path: &str, cookie: &str, form: &[(&str, &str)]) -> Answer {
    Answer::of(form_body(
        as_visitor(hub, reqwest::Method::POST, path, cookie),
        form,
    ))
    .await
}

/// `request` with `form` as its urlencoded body, as a browser posts a form.
fn form_body(request: reqwest::RequestBuilder, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    request
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

/// Sends a test event to `endpoint` of `tenant` through the API; waits until its delivery
/// is in `state` and returns the delivery.
async fn api_test_delivery(hub: &Hub, tenant: &str, endpoint: &str, state: &str) -> Value {
    let sent = hub
        .post_json(
            &format!("/api/v1/tenants/{tenant}/endpoints/{endpoint}/test"),
            &json!({}),
        )
        .await;
    assert_eq!(sent.status, 202, "{sent}");
    let notification = sent.json()["id"].as_str().unwrap().to_owned();
    eventually(DEADLINE, &format!("a {state} test delivery"), || async {
        let listing = hub
            .get(&format!(
                "/api/v1/tenants/{tenant}/endpoints/{endpoint}/deliveries"
            ))
            .await
            .json();
        listing["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["notification_id"] == notification.as_str() && d["state"] == state)
            .cloned()
    })
    .await
}

fn assert_portal_headers(answer: &Answer, frame_ancestors: &str) {
    let policy = answer.header("content-security-policy").unwrap_or_default();
    assert!(
        policy.contains(&format!("frame-ancestors {frame_ancestors};")),
        "{policy}"
    );
    for rule in [
        "default-src 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(policy.contains(rule), "{policy} lacks {rule}");
    }
    assert_eq!(answer.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        answer.header("referrer-policy").as_deref(),
        Some("no-referrer")
    );
    assert_eq!(
        answer.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
}

/// With acme's portal session, nothing of globex's can be read or changed, whether its
/// real ids or guessed ones are put in URLs or forms; forged and spent links, missing
/// CSRF tokens, tenant tokens, admin sessions and no session at all open nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_session_reaches_only_its_own_tenant() {
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::ok());
    let mut hub = Hub::new(ROUTES).env("SWITCHYARD_ADMIN_PASSWORD", "correct horse battery staple");
    hub.start().await;
    create_tenant(&hub, "acme").await;
    create_tenant(&hub, "globex").await;
    let (acme_endpoint, _) =
        create_endpoint(&hub, "acme", json!({"url": receiver.url("/acme-hooks")})).await;
    let (globex_endpoint, globex_secret) = create_endpoint(
        &hub,
        "globex",
        json!({"url": receiver.url("/globex-hooks"), "description": "globex billing"}),
    )
    .await;
    let acme_id = acme_endpoint["id"].as_str().unwrap().to_owned();
    let globex_id = globex_endpoint["id"].as_str().unwrap().to_owned();
    let globex_delivery = api_test_delivery(&hub, "globex", &globex_id, "delivered").await;
    let globex_delivery = globex_delivery["id"].as_str().unwrap().to_owned();
    let acme_delivery = api_test_delivery(&hub, "acme", &acme_id, "delivered").await;
    let acme_delivery = acme_delivery["id"].as_str().unwrap().to_owned();

    // Minting: the operator only.
    let link = mint(&hub, "acme").await;
    // Without a `public_url`, links name `localhost`, where browsers keep `Secure` cookies.
    assert!(
        link.starts_with(&hub.localhost_url("/portal/enter?token=")),
        "{link}"
    );
    let unknown = hub
        .post_json("/api/v1/tenants/initech/portal-links", &json!({}))
        .await;
    assert_eq!(unknown.problem(404)["status"], 404);
    let anonymous =
        Answer::of(hub.anonymous(reqwest::Method::POST, "/api/v1/tenants/acme/portal-links")).await;
    assert_eq!(anonymous.problem(401)["status"], 401);
    let acme_token = hub
        .post_json(
            "/api/v1/tokens",
            &json!({"name": "acme", "scopes": ["send", "read", "admin"], "tenant": "acme"}),
        )
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_tenant = Answer::of(
        plain_client()
            .post(hub.url("/api/v1/tenants/acme/portal-links"))
            .bearer_auth(&acme_token),
    )
    .await;
    assert_eq!(by_tenant.problem(403)["code"], "wrong-tenant");
    let reader = hub
        .post_json(
            "/api/v1/tokens",
            &json!({"name": "reader", "scopes": ["read"]}),
        )
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_reader = Answer::of(
        plain_client()
            .post(hub.url("/api/v1/tenants/acme/portal-links"))
            .bearer_auth(&reader),
    )
    .await;
    assert_eq!(by_reader.problem(403)["code"], "insufficient-scope");

    // The link opens acme's portal once.
    let cookie = session(&hub, &link).await;
    let again = enter(&hub, &link).await;
    assert_eq!(again.status, 403, "a spent link: {again}");
    assert!(again.text().contains("used before"), "{again}");
    assert_portal_headers(&again, "'none'");

    let home = Answer::of(as_visitor(&hub, reqwest::Method::GET, "/portal", &cookie)).await;
    assert_eq!(home.status, 200, "{home}");
    assert_portal_headers(&home, "'none'");
    assert_eq!(home.header("x-frame-options").as_deref(), Some("DENY"));
    // Pages escape `/` too: the URL shows as `http:&#x2f;&#x2f;…&#x2f;acme-hooks`.
    assert!(home.text().contains("acme-hooks"), "{home}");
    assert!(!home.text().contains("globex"), "{home}");
    let csrf = csrf_token(&home.text());

    // Reading globex's things, by their real ids or guessed ones: not found, and nothing
    // of globex in the page.
    let guessed = "019ae0d2-7a10-7c3b-8e21-4b5c6d7e8f90";
    for path in [
        format!("/portal/endpoints/{globex_id}"),
        format!("/portal/endpoints/{globex_id}?state=delivered"),
        format!("/portal/endpoints/{globex_id}/edit"),
        format!("/portal/endpoints/{globex_id}/deliveries/{globex_delivery}"),
        format!("/portal/endpoints/{acme_id}/deliveries/{globex_delivery}"),
        format!("/portal/endpoints/{globex_id}/deliveries/{acme_delivery}"),
        format!("/portal/endpoints/{guessed}"),
        format!("/portal/endpoints/{acme_id}/deliveries/{guessed}"),
        "/portal/endpoints/..%2F..%2Fadmin".to_owned(),
    ] {
        let answer = Answer::of(as_visitor(&hub, reqwest::Method::GET, &path, &cookie)).await;
        assert_eq!(answer.status, 404, "GET {path}: {answer}");
        let page = answer.text();
        assert!(!page.contains("globex"), "GET {path} shows globex: {page}");
        assert_portal_headers(&answer, "'none'");
    }
    // Acme's own delivery is there; a globex delivery id as the page cursor lists only
    // acme's own.
    let own = Answer::of(as_visitor(
        &hub,
        reqwest::Method::GET,
        &format!("/portal/endpoints/{acme_id}/deliveries/{acme_delivery}"),
        &cookie,
    ))
    .await;
    assert_eq!(own.status, 200, "{own}");
    let listing = Answer::of(as_visitor(
        &hub,
        reqwest::Method::GET,
        &format!("/portal/endpoints/{acme_id}?before={globex_delivery}"),
        &cookie,
    ))
    .await;
    assert_eq!(listing.status, 200, "{listing}");
    assert!(!listing.text().contains(&globex_delivery), "{listing}");

    // Changing globex's things with a valid session and CSRF token: not found, and
    // nothing changes.
    let received_before = receiver.count();
    let endpoint_form = [
        ("csrf_token", csrf.as_str()),
        ("url", "https://attacker.example/steal"),
        ("enabled", "on"),
    ];
    let confirm = [("csrf_token", csrf.as_str()), ("confirm", "on")];
    let just_csrf = [("csrf_token", csrf.as_str())];
    let since = [("csrf_token", csrf.as_str()), ("since", "7d")];
    let rotate = [("csrf_token", csrf.as_str()), ("grace", "0")];
    let posts: Vec<(String, &[(&str, &str)])> = vec![
        (format!("/portal/endpoints/{globex_id}"), &endpoint_form),
        (format!("/portal/endpoints/{globex_id}/delete"), &confirm),
        (format!("/portal/endpoints/{globex_id}/rotate"), &rotate),
        (format!("/portal/endpoints/{globex_id}/test"), &just_csrf),
        (format!("/portal/endpoints/{globex_id}/recover"), &since),
        (
            format!("/portal/endpoints/{globex_id}/deliveries/{globex_delivery}/replay"),
            &just_csrf,
        ),
        (
            format!("/portal/endpoints/{acme_id}/deliveries/{globex_delivery}/replay"),
            &just_csrf,
        ),
        (format!("/portal/endpoints/{guessed}/test"), &just_csrf),
    ];
    for (path, form) in &posts {
        let answer = post_form(&hub, path, &cookie, form).await;
        assert_eq!(answer.status, 404, "POST {path}: {answer}");
        assert!(!answer.text().contains("globex"), "POST {path}: {answer}");
    }
    let globex_now = hub
        .get(&format!("/api/v1/tenants/globex/endpoints/{globex_id}"))
        .await;
    assert_eq!(
        globex_now.status, 200,
        "globex's endpoint is still there: {globex_now}"
    );
    assert_eq!(
        globex_now.json(),
        globex_endpoint,
        "globex's endpoint changed"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), received_before, "a test event went out");
    // Its secret was not rotated: a delivery is still signed with the first one alone.
    api_test_delivery(&hub, "globex", &globex_id, "delivered").await;
    let last = receiver
        .received()
        .into_iter()
        .rfind(|r| r.path == "/globex-hooks")
        .unwrap();
    assert!(signed_by(&last, &globex_secret), "globex's secret changed");

    // A form without this session's token, or marked cross-site by the browser, is
    // refused before anything is looked at.
    let test_own = format!("/portal/endpoints/{acme_id}/test");
    for form in [vec![], vec![("csrf_token", "forged")]] {
        let answer = post_form(&hub, &test_own, &cookie, &form).await;
        assert_eq!(answer.status, 403, "{form:?}: {answer}");
    }
    let cross_site = Answer::of(form_body(
        as_visitor(&hub, reqwest::Method::POST, &test_own, &cookie)
            .header("sec-fetch-site", "cross-site"),
        &just_csrf,
    ))
    .await;
    assert_eq!(cross_site.status, 403, "{cross_site}");
    let own_test = post_form(&hub, &test_own, &cookie, &just_csrf).await;
    assert_eq!(own_test.status, 303, "{own_test}");

    // No session, a tenant's API token, or an admin session: no portal.
    let admin_cookie = crate::admin::sign_in(&hub, "admin", "correct horse battery staple").await;
    let tenant_token = format!("Bearer {acme_token}");
    for (what, header, value) in [
        ("no session", "x-nothing", ""),
        ("a tenant token", "authorization", tenant_token.as_str()),
        ("an admin session", "cookie", admin_cookie.as_str()),
        (
            "a forged cookie",
            "cookie",
            &format!("{COOKIE}={}", "A".repeat(43)),
        ),
    ] {
        for path in ["/portal", &format!("/portal/endpoints/{acme_id}")] {
            let answer = Answer::of(plain_client().get(hub.url(path)).header(header, value)).await;
            assert_eq!(answer.status, 401, "{what}, GET {path}: {answer}");
            assert!(!answer.text().contains("acme-hooks"), "{what}: {answer}");
        }
    }
    // And a portal session opens nothing of the admin console.
    let admin = Answer::of(as_visitor(&hub, reqwest::Method::GET, "/admin", &cookie)).await;
    assert_eq!(admin.status, 303, "{admin}");
    assert_eq!(admin.header("location").as_deref(), Some("/admin/login"));
    let who = Answer::of(as_visitor(
        &hub,
        reqwest::Method::GET,
        "/api/v1/session",
        &cookie,
    ))
    .await;
    assert_eq!(who.status, 401, "{who}");

    // Forged links: another tenant's claims under this signature, any changed character,
    // no token at all.
    let fresh = mint(&hub, "acme").await;
    let token = fresh.split("token=").nth(1).unwrap();
    let (claims, mac) = token.split_once('.').unwrap();
    let globex_link = mint(&hub, "globex").await;
    let globex_claims = globex_link
        .split("token=")
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    let flip = |text: &str, at: usize| {
        let mut bytes = text.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    for forged in [
        format!("{globex_claims}.{mac}"),
        format!("{}.{mac}", flip(claims, 5)),
        format!("{claims}.{}", flip(mac, 5)),
        format!("{claims}."),
        claims.to_owned(),
        String::new(),
    ] {
        let answer =
            Answer::of(plain_client().get(hub.url(&format!("/portal/enter?token={forged}")))).await;
        assert_eq!(answer.status, 403, "{forged}: {answer}");
        assert!(answer.header("set-cookie").is_none(), "{answer}");
    }
    let no_token = Answer::of(plain_client().get(hub.url("/portal/enter"))).await;
    assert_eq!(no_token.status, 403, "{no_token}");
    // None of the forgeries spent the real link.
    let second = session(&hub, &fresh).await;
    assert_ne!(second, cookie);

    // Its own endpoints it changes: a refused form comes back with what was typed and
    // why; a deletion needs its box ticked.
    let bad_limit = post_form(
        &hub,
        "/portal/endpoints",
        &cookie,
        &[
            ("csrf_token", csrf.as_str()),
            ("url", "https://hooks.acme.example/in"),
            ("rate_limit", "fast"),
        ],
    )
    .await;
    assert_eq!(bad_limit.status, 422, "{bad_limit}");
    assert!(
        bad_limit.text().contains("rate_limit: write N"),
        "{bad_limit}"
    );
    assert!(
        bad_limit.text().contains("hooks.acme.example"),
        "{bad_limit}"
    );
    let own_delete = format!("/portal/endpoints/{acme_id}/delete");
    let unticked = post_form(&hub, &own_delete, &cookie, &just_csrf).await;
    assert_eq!(unticked.status, 422, "{unticked}");
    let deleted = post_form(&hub, &own_delete, &cookie, &confirm).await;
    assert_eq!(deleted.status, 303, "{deleted}");
    let gone = hub
        .get(&format!("/api/v1/tenants/acme/endpoints/{acme_id}"))
        .await;
    assert_eq!(gone.status, 404, "{gone}");

    // Leaving ends the session on the server, not only in the browser.
    let left = post_form(&hub, "/portal/logout", &cookie, &just_csrf).await;
    assert_eq!(left.status, 200, "{left}");
    assert!(
        left.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0")),
        "{left}"
    );
    let after = Answer::of(as_visitor(&hub, reqwest::Method::GET, "/portal", &cookie)).await;
    assert_eq!(after.status, 401, "{after}");
    // The other session is untouched.
    let other = Answer::of(as_visitor(&hub, reqwest::Method::GET, "/portal", &second)).await;
    assert_eq!(other.status, 200, "{other}");

    // Links are signed with a key of the deployment, not of the process: one minted
    // before a restart opens after it (as it would on another process of the store).
    let before_restart = mint(&hub, "acme").await;
    hub.sigterm();
    hub.wait_exit(EXIT_TIMEOUT).await;
    hub.start().await;
    session(&hub, &before_restart).await;
    // Sessions are in the store too, so they outlive the process.
    let kept = Answer::of(as_visitor(&hub, reqwest::Method::GET, "/portal", &second)).await;
    assert_eq!(kept.status, 200, "{kept}");
}

/// Links expire after `portal.link_ttl`; sessions end after `portal.session_ttl` however
/// busy; `portal.frame_ancestors` is the portal's `frame-ancestors`, and an entry that is
/// not an origin stops the hub before it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_and_sessions_expire_and_framing_follows_the_config() {
    let refused = Hub::new(ROUTES)
        .env(
            "SWITCHYARD_PORTAL__FRAME_ANCESTORS",
            "https://app.example.com, javascript:alert(1)",
        )
        .command(&["token", "create", "refused"])
        .output()
        .expect("can run switchyard");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("`javascript:alert(1)` is not an origin"),
        "{stderr}"
    );

    let mut hub = Hub::new(ROUTES)
        .env("SWITCHYARD_PORTAL__LINK_TTL", "1s")
        .env("SWITCHYARD_PORTAL__SESSION_TTL", "3s")
        .env(
            "SWITCHYARD_PORTAL__FRAME_ANCESTORS",
            "https://app.example.com, https://*.example.org:8443/",
        );
    hub.start().await;
    create_tenant(&hub, "acme").await;

    let stale = mint(&hub, "acme").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = enter(&hub, &stale).await;
    assert_eq!(expired.status, 403, "{expired}");
    assert!(expired.text().contains("expired"), "{expired}");
    assert!(expired.header("set-cookie").is_none(), "{expired}");

    let cookie = session(&hub, &mint(&hub, "acme").await).await;
    let opened = Instant::now();
    let home = Answer::of(as_visitor(&hub, reqwest::Method::GET, "/portal", &cookie)).await;
    assert_eq!(home.status, 200, "{home}");
    assert_portal_headers(&home, "https://app.example.com https://*.example.org:8443");
    assert!(home.header("x-frame-options").is_none(), "{home}");
    // The stylesheet needs no session, and may be cached.
    let css = Answer::of(plain_client().get(hub.url("/portal/static/portal.css"))).await;
    assert_eq!(css.status, 200, "{css}");
    assert!(css.content_type().starts_with("text/css"), "{css}");
    assert!(
        css.header("cache-control")
            .is_some_and(|c| c.contains("max-age")),
        "{css}"
    );
    // Used all along, the session still ends on time.
    while opened.elapsed() < Duration::from_millis(2000) {
        let busy = Answer::of(as_visitor(&hub, reqwest::Method::GET, "/portal", &cookie)).await;
        assert_eq!(busy.status, 200, "{busy}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(
        Duration::from_secs(3).saturating_sub(opened.elapsed()) + Duration::from_millis(300),
    )
    .await;
    let ended = Answer::of(as_visitor(&hub, reqwest::Method::GET, "/portal", &cookie)).await;
    assert_eq!(ended.status, 401, "{ended}");
}

/// A tenant's id can be given to a new tenant once it is deleted, and the new tenant is
/// someone else: the deleted one's session has ended, and its links, spent or not, open
/// nothing, before or after the id is taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenants_links_and_sessions_never_open_a_new_tenant_with_its_id() {
    let hub = Hub::started(ROUTES).await;
    create_tenant(&hub, "acme").await;
    let cookie = session(&hub, &mint(&hub, "acme").await).await;
    let unopened = mint(&hub, "acme").await;
    let home = Answer::of(as_visitor(&hub, reqwest::Method::GET, "/portal", &cookie)).await;
    assert_eq!(home.status, 200, "{home}");

    let deleted = Answer::of(hub.api(reqwest::Method::DELETE, "/api/v1/tenants/acme")).await;
    assert_eq!(deleted.status, 204, "{deleted}");
    let gone = Answer::of(as_visitor(&hub, reqwest::Method::GET, "/portal", &cookie)).await;
    assert_eq!(gone.status, 401, "after the delete: {gone}");
    create_tenant(&hub, "acme").await;
    let ended = Answer::of(as_visitor(&hub, reqwest::Method::GET, "/portal", &cookie)).await;
    assert_eq!(
        ended.status, 401,
        "the new acme's portal, by the old session: {ended}"
    );
    let refused = enter(&hub, &unopened).await;
    assert_eq!(
        refused.status, 403,
        "the new acme's portal, by an old link: {refused}"
    );
    assert!(refused.text().contains("no longer exists"), "{refused}");
    assert!(refused.header("set-cookie").is_none(), "{refused}");
    // The new tenant's own links open its portal.
    let fresh = session(&hub, &mint(&hub, "acme").await).await;
    let new_home = Answer::of(as_visitor(&hub, reqwest::Method::GET, "/portal", &fresh)).await;
    assert_eq!(new_home.status, 200, "{new_home}");
}

/// Fetching a link without navigating to it, as a chat client making a preview or a
/// browser prefetching does, shows a page whose button opens the portal; only that, or a
/// navigation, spends the link. The button's form is refused from another site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_preview_does_not_spend_the_link() {
    let hub = Hub::started(ROUTES).await;
    create_tenant(&hub, "acme").await;
    let link = mint(&hub, "acme").await;
    let path = link_path(&link);
    let token = path.trim_start_matches("/portal/enter?token=").to_owned();
    for preview in [
        plain_client().get(hub.url(&path)),
        plain_client()
            .get(hub.url(&path))
            .header("sec-fetch-mode", "navigate")
            .header("sec-purpose", "prefetch"),
    ] {
        let shown = Answer::of(preview).await;
        assert_eq!(shown.status, 200, "{shown}");
        assert!(shown.header("set-cookie").is_none(), "{shown}");
        assert!(shown.text().contains("Continue to the portal"), "{shown}");
        assert!(
            shown.text().contains(&token),
            "the form carries the token: {shown}"
        );
    }
    let from_elsewhere = Answer::of(form_body(
        plain_client()
            .post(hub.url("/portal/enter"))
            .header("sec-fetch-site", "cross-site"),
        &[("token", &token)],
    ))
    .await;
    assert_eq!(from_elsewhere.status, 403, "{from_elsewhere}");
    assert!(
        from_elsewhere.header("set-cookie").is_none(),
        "{from_elsewhere}"
    );

    // The button spends it, once.
    let continued = Answer::of(form_body(
        plain_client()
            .post(hub.url("/portal/enter"))
            .header("sec-fetch-site", "same-origin"),
        &[("token", &token)],
    ))
    .await;
    assert_eq!(continued.status, 303, "{continued}");
    assert_eq!(continued.header("location").as_deref(), Some("/portal"));
    let again = enter(&hub, &link).await;
    assert_eq!(again.status, 403, "{again}");
    assert!(again.text().contains("used before"), "{again}");
    // A preview of a spent or forged link says so at once.
    let spent_preview = Answer::of(plain_client().get(hub.url(&path))).await;
    assert_eq!(
        spent_preview.status, 200,
        "a preview does not read the store: {spent_preview}"
    );
    let forged = Answer::of(plain_client().get(hub.url("/portal/enter?token=x.y"))).await;
    assert_eq!(forged.status, 403, "{forged}");
}

/// The master key of a deployment whose processes share one store: 32 bytes, base64.
const SHARED_MASTER_KEY: &str = "YmxhY2tib3gtcG9ydGFsLW1hc3Rlci1rZXktMDEyMzQ=";

/// Two processes on one PostgreSQL store and one master key, as a deployment runs: a link
/// minted by one opens on the other, once across both, and its session holds on either
/// until it is ended on either.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_and_sessions_hold_across_processes_sharing_a_store() {
    let database = TestDatabase::create("switchyard_portal").await;
    let hub = || {
        Hub::new(ROUTES)
            .env("SWITCHYARD_STORE__URL", &database.url())
            .env("SWITCHYARD_MASTER_KEY", SHARED_MASTER_KEY)
    };
    let mut one = hub();
    one.start().await;
    let mut two = hub();
    two.start().await;
    create_tenant(&one, "acme").await;

    let link = mint(&one, "acme").await;
    let cookie = session(&two, &link).await;
    let again = enter(&one, &link).await;
    assert_eq!(
        again.status, 403,
        "a link spent on the other process: {again}"
    );
    assert!(again.text().contains("used before"), "{again}");

    let on_one = Answer::of(as_visitor(&one, reqwest::Method::GET, "/portal", &cookie)).await;
    assert_eq!(on_one.status, 200, "{on_one}");
    assert!(on_one.text().contains("Tenant acme"), "{on_one}");
    let csrf = csrf_token(&on_one.text());
    let left = post_form(
        &one,
        "/portal/logout",
        &cookie,
        &[("csrf_token", csrf.as_str())],
    )
    .await;
    assert_eq!(left.status, 200, "{left}");
    let on_two = Answer::of(as_visitor(&two, reqwest::Method::GET, "/portal", &cookie)).await;
    assert_eq!(
        on_two.status, 401,
        "a session ended on the other process: {on_two}"
    );
}

// ---- In a real browser -----------------------------------------------------------------------

/// A page of "the operator's product" on another site, which frames the portal.
struct OperatorPage {
    port: u16,
    html: Arc<Mutex<String>>,
    server: tokio::task::JoinHandle<()>,
}

impl OperatorPage {
    async fn start() -> OperatorPage {
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("the operator's page can bind");
        let port = acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("a TCP address")
            .port();
        let html = Arc::new(Mutex::new(String::new()));
        let shared = html.clone();
        let app =
            poem::endpoint::make_sync(move |_| poem::web::Html(shared.lock().unwrap().clone()));
        let server = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        OperatorPage { port, html, server }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Shows the portal `link` in an iframe.
    fn frame(&self, link: &str) {
        *self.html.lock().unwrap() = format!(
            "<!doctype html><title>Operator</title><h1>Your webhooks</h1>\
             <iframe id=\"portal\" src=\"{link}\" width=\"1200\" height=\"1400\"></iframe>"
        );
    }
}

impl Drop for OperatorPage {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_portal_manages_endpoints_and_deliveries_in_a_real_browser() {
    require_browser();
    let scratch = tempfile::Builder::new()
        .prefix("switchyard-portal-browser-")
        .tempdir()
        .expect("can create a temporary dir");
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::ok());
    let flaky = Receiver::start().await;
    flaky.otherwise(Reply::status(500));
    let operator = OperatorPage::start().await;
    let mut hub = Hub::new(ROUTES)
        .env("SWITCHYARD_PORTAL__FRAME_ANCESTORS", &operator.origin())
        .public_on_localhost();
    hub.start().await;
    create_tenant(&hub, "acme").await;
    let driver = ChromeDriver::start(scratch.path()).await;
    let browser = driver.session().await;

    let outcome = AssertUnwindSafe(portal_flow(&browser, &hub, &receiver, &flaky, &operator))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        save_evidence(&browser, scratch.path()).await;
    }
    let _ = browser.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        let kept = scratch.keep();
        eprintln!(
            "==== the portal browser test's files are in {} ====",
            kept.display()
        );
        std::panic::resume_unwind(panic);
    }
}

async fn portal_flow(
    browser: &Client,
    hub: &Hub,
    receiver: &Receiver,
    flaky: &Receiver,
    operator: &OperatorPage,
) {
    // The operator's API mints a link; the browser opens it and lands on the portal.
    let link = mint(hub, "acme").await;
    assert!(
        link.starts_with(&hub.localhost_url("/portal/enter?token=")),
        "{link}"
    );
    goto(browser, &link).await;
    wait_for(
        browser,
        css("#endpoints-heading"),
        PAGE_FAILED,
        "the portal",
    )
    .await;
    assert_eq!(path(browser).await, "/portal");
    assert_eq!(
        text(&find(browser, "#tenant-name").await).await,
        "Tenant acme"
    );
    let cookies = browser
        .get_all_cookies()
        .await
        .expect("can read the cookies");
    assert!(
        cookies
            .iter()
            .any(|c| c.name() == COOKIE && c.secure() == Some(true) && c.http_only() == Some(true)),
        "the browser kept no Secure, HttpOnly portal cookie: {cookies:?}"
    );

    // A new endpoint through the form; its secret is shown once.
    let secret = create_through_form(browser, &receiver.url("/acme"), "Billing", "").await;
    click(browser, "#continue").await;
    wait_for(
        browser,
        css("#endpoint-heading"),
        PAGE_FAILED,
        "the endpoint's page",
    )
    .await;
    let endpoint_path = path(browser).await;
    assert!(
        endpoint_path.starts_with("/portal/endpoints/"),
        "{endpoint_path}"
    );

    // A test event: delivered, signed with that secret, and listed with its attempt.
    click(browser, "#send-test").await;
    let flash = wait_for(
        browser,
        css(".flash-ok"),
        PAGE_FAILED,
        "the test event's notice",
    )
    .await;
    assert!(text(&flash).await.contains("Test event sent"));
    let delivered = receiver.wait_for(1).await;
    assert!(
        signed_by(&delivered[0], &secret),
        "the test event is not signed with the secret"
    );
    let body = String::from_utf8_lossy(&delivered[0].body).into_owned();
    assert!(body.contains("switchyard.endpoint.test"), "{body}");
    wait_after_reloads(
        browser,
        "tr.delivery[data-state='delivered']",
        "a delivered delivery",
    )
    .await;
    click(
        browser,
        "tr.delivery[data-state='delivered'] a.delivery-link",
    )
    .await;
    wait_for(
        browser,
        css("#attempts"),
        PAGE_FAILED,
        "the delivery's attempts",
    )
    .await;
    assert_eq!(
        text(&find(browser, "#delivery-state").await).await,
        "delivered"
    );
    let status = text(&find(browser, "tr.attempt .http-status").await).await;
    assert_eq!(status, "200", "the attempt's HTTP status");
    assert!(
        absent(browser, css("#replay")).await,
        "a delivered delivery offers a replay"
    );
    click(browser, &format!("a[href='{endpoint_path}']")).await;
    wait_for(
        browser,
        css("#endpoint-heading"),
        PAGE_FAILED,
        "the endpoint again",
    )
    .await;

    // Edit: the form shows the settings, and saves the change.
    click(browser, "#edit-endpoint").await;
    wait_for(browser, css("#endpoint-form"), PAGE_FAILED, "the edit form").await;
    let url = find(browser, "#url")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(url, receiver.url("/acme"));
    fill(browser, "#description", "Billing (EU)").await;
    fill(browser, "#attributes", "region=eu").await;
    click(browser, "#save-endpoint").await;
    let saved = wait_for(browser, css(".flash-ok"), PAGE_FAILED, "the saved endpoint").await;
    assert_eq!(text(&saved).await, "Endpoint saved.");
    let page = page_text(browser).await;
    assert!(
        page.contains("Billing (EU)") && page.contains("region = eu"),
        "{page}"
    );

    // Rotate: a new secret, shown once; the old one keeps signing during the grace.
    click(browser, "#rotate-secret").await;
    let rotated = wait_for(browser, css("#secret"), PAGE_FAILED, "the new secret").await;
    let new_secret = text(&rotated).await;
    assert!(
        new_secret.starts_with("whsec_") && new_secret != secret,
        "{new_secret}"
    );
    click(browser, "#continue").await;
    wait_for(
        browser,
        css("#endpoint-heading"),
        PAGE_FAILED,
        "the endpoint after rotating",
    )
    .await;
    click(browser, "#send-test").await;
    wait_for(
        browser,
        css(".flash-ok"),
        PAGE_FAILED,
        "the second test event",
    )
    .await;
    let both = receiver.wait_for(2).await;
    assert!(
        signed_by(&both[1], &new_secret),
        "not signed with the new secret"
    );
    assert!(
        signed_by(&both[1], &secret),
        "the old secret's grace is not kept"
    );

    // A dead delivery: an endpoint that answers 500 and never retries.
    goto(browser, &hub.localhost_url("/portal")).await;
    wait_for(
        browser,
        css("#endpoints-heading"),
        PAGE_FAILED,
        "the endpoints",
    )
    .await;
    create_through_form(browser, &flaky.url("/flaky"), "Flaky", "none").await;
    click(browser, "#continue").await;
    wait_for(
        browser,
        css("#endpoint-heading"),
        PAGE_FAILED,
        "the flaky endpoint",
    )
    .await;
    let flaky_path = path(browser).await;
    click(browser, "#send-test").await;
    wait_for(
        browser,
        css(".flash-ok"),
        PAGE_FAILED,
        "the flaky test event",
    )
    .await;
    wait_after_reloads(browser, "tr.delivery[data-state='dead']", "a dead delivery").await;
    click(browser, "tr.delivery[data-state='dead'] a.delivery-link").await;
    wait_for(browser, css("#attempts"), PAGE_FAILED, "the dead delivery").await;
    assert_eq!(text(&find(browser, "#delivery-state").await).await, "dead");
    assert_eq!(
        text(&find(browser, "tr.attempt .http-status").await).await,
        "500"
    );

    // Replay it once the receiver is fixed.
    flaky.otherwise(Reply::ok());
    click(browser, "#replay").await;
    let replayed = wait_for(
        browser,
        css(".flash-ok"),
        PAGE_FAILED,
        "the replay's notice",
    )
    .await;
    assert!(text(&replayed).await.contains("replayed"));
    wait_after_reloads(
        browser,
        "#delivery-state.state-delivered",
        "the replayed delivery delivered",
    )
    .await;
    let statuses = statuses(browser).await;
    assert_eq!(statuses, ["500", "200"], "the attempts after the replay");

    // Recover: another failure, then every failed delivery of the last hour replayed.
    flaky.otherwise(Reply::status(500));
    click(browser, &format!("a[href='{flaky_path}']")).await;
    wait_for(
        browser,
        css("#endpoint-heading"),
        PAGE_FAILED,
        "the flaky endpoint again",
    )
    .await;
    click(browser, "#send-test").await;
    wait_for(
        browser,
        css(".flash-ok"),
        PAGE_FAILED,
        "the third test event",
    )
    .await;
    wait_after_reloads(
        browser,
        "tr.delivery[data-state='dead']",
        "the new dead delivery",
    )
    .await;
    flaky.otherwise(Reply::ok());
    fill(browser, "#since", "1h").await;
    click(browser, "#recover").await;
    let recovered = wait_for(
        browser,
        css(".flash-ok"),
        PAGE_FAILED,
        "the recovery's notice",
    )
    .await;
    assert_eq!(
        text(&recovered).await,
        "1 failed delivery is queued for delivery again."
    );
    let deadline = Instant::now() + DEADLINE;
    loop {
        let delivered = browser
            .find_all(css("tr.delivery[data-state='delivered']"))
            .await
            .expect("can search the page")
            .len();
        if delivered == 2 && absent(browser, css("tr.delivery[data-state='dead']")).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the recovered delivery was not delivered: {}",
            page_text(browser).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        browser.refresh().await.expect("can reload");
    }

    // Leaving ends the session: the portal is closed to this browser from then on.
    click(
        browser,
        ".session form[action='/portal/logout'] button[type=submit]",
    )
    .await;
    let left = wait_for(
        browser,
        css("#message-heading"),
        &[],
        "the page after leaving",
    )
    .await;
    assert_eq!(text(&left).await, "You have left the portal");
    goto(browser, &hub.localhost_url("/portal")).await;
    let closed = wait_for(
        browser,
        css("#message-heading"),
        &["#endpoints-heading"],
        "the closed portal",
    )
    .await;
    assert_eq!(text(&closed).await, "Your portal session has ended");

    // Embedded: the operator's page on another site frames a fresh link; inside the frame
    // the session works, forms included.
    operator.frame(&mint(hub, "acme").await);
    goto(browser, &format!("{}/", operator.origin())).await;
    let frame = wait_for(browser, css("#portal"), &[], "the operator's page").await;
    frame
        .enter_frame()
        .await
        .expect("can enter the portal's frame");
    wait_for(
        browser,
        css("#endpoints-heading"),
        PAGE_FAILED,
        "the portal in the frame",
    )
    .await;
    click(browser, &format!("a.endpoint-link[href='{flaky_path}']")).await;
    wait_for(
        browser,
        css("#endpoint-heading"),
        PAGE_FAILED,
        "an endpoint in the frame",
    )
    .await;
    let before = flaky.count();
    click(browser, "#send-test").await;
    wait_for(
        browser,
        css(".flash-ok"),
        PAGE_FAILED,
        "a test event sent from the frame",
    )
    .await;
    flaky.wait_for(before + 1).await;
    browser
        .enter_parent_frame()
        .await
        .expect("can leave the frame");
}

/// Fills in and submits the new-endpoint form from the endpoints page; returns the secret
/// the answer shows.
async fn create_through_form(
    browser: &Client,
    url: &str,
    description: &str,
    retries: &str,
) -> String {
    click(browser, "#new-endpoint").await;
    wait_for(
        browser,
        css("#endpoint-form"),
        PAGE_FAILED,
        "the new-endpoint form",
    )
    .await;
    fill(browser, "#url", url).await;
    fill(browser, "#description", description).await;
    if !retries.is_empty() {
        fill(browser, "#retry_schedule", retries).await;
    }
    click(browser, "#save-endpoint").await;
    let shown = wait_for(
        browser,
        css("#secret"),
        PAGE_FAILED,
        "the new endpoint's secret",
    )
    .await;
    let secret = text(&shown).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let page = page_text(browser).await;
    assert!(page.contains("only now"), "{page}");
    secret
}

/// Reloads the page until `selector` is on it (deliveries happen in their own time).
async fn wait_after_reloads(browser: &Client, selector: &str, what: &str) {
    let deadline = Instant::now() + DEADLINE;
    while browser.find(css(selector)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; the page says:\n{}",
            page_text(browser).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        browser.refresh().await.expect("can reload");
    }
}

/// The HTTP statuses of the attempts on a delivery's page, in order.
async fn statuses(browser: &Client) -> Vec<String> {
    let mut statuses = Vec::new();
    for cell in browser
        .find_all(css("tr.attempt .http-status"))
        .await
        .expect("can search the page")
    {
        statuses.push(text(&cell).await);
    }
    statuses
}
