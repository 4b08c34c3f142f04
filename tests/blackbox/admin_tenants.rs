//! The console's tenant pages on a real process, signed in and posting forms with the
//! page's CSRF token as a browser does: tenants created and paged, endpoints created (a
//! webhook URL, and a channel plugin as only the operator may), disabled, rotated and sent a
//! test event, each new secret shown exactly once and really the one deliveries are signed
//! with; every POST without the CSRF token refused before it changes anything.

use serde_json::json;

use crate::admin::sign_in;
use crate::support::{Answer, Hub, LOG_EVERYTHING as ROUTES, Receiver, Reply};
use crate::tenants::{send_for, signed_by};

/// The first admin's password, set through the environment so the test knows it.
const PASSWORD: &str = "blackbox admin password";

/// The page's text with the entities the templates' HTML escaping makes turned back.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `csrf_token` hidden input of an admin page.
fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let at = page
        .find(marker)
        .unwrap_or_else(|| panic!("the page has a CSRF token: {page}"));
    let rest = &page[at + marker.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The signing secret the page shows once, if it shows one.
fn revealed_secret(page: &str) -> Option<String> {
    let page = unescape(page);
    let marker = "id=\"revealed-secret\">";
    let at = page.find(marker)? + marker.len();
    let rest = &page[at..];
    Some(rest[..rest.find('<').unwrap()].to_owned())
}

struct Console<'a> {
    hub: &'a Hub,
    cookie: String,
}

impl Console<'_> {
    async fn get(&self, path: &str) -> Answer {
        Answer::of(
            self.hub
                .anonymous(reqwest::Method::GET, path)
                .header("cookie", &self.cookie),
        )
        .await
    }

    /// The page at `path`, which must be there.
    async fn page(&self, path: &str) -> String {
        let answer = self.get(path).await;
        assert_eq!(answer.status, 200, "GET {path}: {answer}");
        answer.text()
    }

    /// POSTs `fields` as a form, following the redirect as a browser does.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        Answer::of(
            self.hub
                .anonymous(reqwest::Method::POST, path)
                .header("cookie", &self.cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    /// POSTs `fields` with the CSRF token of the page at `from`; the answer must be a page.
    async fn submit(&self, from: &str, path: &str, fields: &[(&str, &str)]) -> String {
        let csrf = csrf_of(&self.page(from).await);
        let mut fields = fields.to_vec();
        fields.push(("csrf_token", &csrf));
        let answer = self.post(path, &fields).await;
        assert_eq!(answer.status, 200, "POST {path} {fields:?}: {answer}");
        answer.text()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_endpoints_are_managed_in_the_console() {
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::ok());
    let mut hub = Hub::new(ROUTES).env("SWITCHYARD_ADMIN_PASSWORD", PASSWORD);
    hub.start().await;
    let console = Console {
        hub: &hub,
        cookie: sign_in(&hub, "admin", PASSWORD).await,
    };

    // Signed out, the pages are the sign-in page's.
    let anonymous = Answer::of(hub.anonymous(reqwest::Method::GET, "/admin/tenants")).await;
    assert!(!anonymous.text().contains("Create a tenant"), "{anonymous}");

    let list = console.page("/admin/tenants").await;
    assert!(list.contains("No tenants yet"), "{list}");
    assert!(
        list.contains("<a href=\"/admin/tenants\" aria-current=\"page\">Tenants</a>"),
        "the nav links it: {list}"
    );

    // Without the CSRF token, or with another, nothing is created.
    for csrf in [None, Some("not-the-token")] {
        let mut fields = vec![("id", "acme"), ("name", "Acme")];
        fields.extend(csrf.map(|token| ("csrf_token", token)));
        let refused = console.post("/admin/tenants", &fields).await;
        assert_eq!(refused.status, 403, "{refused}");
    }
    assert_eq!(hub.get("/api/v1/tenants/acme").await.status, 404);

    let page = console
        .submit(
            "/admin/tenants",
            "/admin/tenants",
            &[("id", "acme"), ("name", "Acme")],
        )
        .await;
    assert!(page.contains("Tenant Acme (acme) is created."), "{page}");
    assert!(page.contains("This tenant has no endpoints yet."), "{page}");
    // A taken id is refused with the form shown again.
    let csrf = csrf_of(&console.page("/admin/tenants").await);
    let taken = console
        .post(
            "/admin/tenants",
            &[
                ("id", "acme"),
                ("name", "Acme again"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(taken.status, 422, "{taken}");
    assert!(taken.text().contains("Acme again"), "{taken}");

    // A webhook endpoint: its secret is shown once, and is what signs its deliveries.
    let tenant_page = "/admin/tenants/acme";
    let url = receiver.url("/acme/invoices");
    let page = console
        .submit(
            tenant_page,
            "/admin/tenants/acme/endpoints",
            &[
                ("description", "invoices"),
                ("url", &url),
                ("kinds", "invoice.*"),
                ("enabled", "on"),
            ],
        )
        .await;
    let secret = revealed_secret(&page).unwrap_or_else(|| panic!("the secret is shown: {page}"));
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(unescape(&page).contains(&url), "{page}");
    let again = console.page(tenant_page).await;
    assert_eq!(revealed_secret(&again), None, "{again}");
    assert!(!unescape(&again).contains(&secret), "shown once: {again}");

    let endpoints = hub.get("/api/v1/tenants/acme/endpoints").await.json();
    let endpoint = endpoints["items"][0].clone();
    assert_eq!(endpoint["description"], "invoices", "{endpoints}");
    assert_eq!(endpoint["enabled"], true);
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let sent = send_for(&hub, "acme", json!({"kind": "invoice.paid"})).await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].webhook_id(), sent);
    assert!(signed_by(&got[0], &secret), "{:?}", got[0]);

    // A bad endpoint is refused with the form as typed and the field named.
    let csrf = csrf_of(&console.page(tenant_page).await);
    let refused = console
        .post(
            "/admin/tenants/acme/endpoints",
            &[
                ("description", "typed before"),
                ("url", "ftp://example.com/in"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{refused}");
    let text = refused.text();
    assert!(text.contains("URL: "), "{text}");
    assert!(text.contains("value=\"typed before\""), "{text}");

    // Disabled: the page and the API say so.
    let actions = format!("/admin/tenants/acme/endpoints/{id}");
    let page = console
        .submit(tenant_page, &format!("{actions}/disable"), &[])
        .await;
    assert!(page.contains("is disabled"), "{page}");
    assert!(page.contains("badge-off\">disabled"), "{page}");
    let endpoint = hub
        .get(&format!("/api/v1/tenants/acme/endpoints/{id}"))
        .await
        .json();
    assert_eq!(endpoint["enabled"], false, "{endpoint}");

    // No change goes through without the CSRF token.
    for action in ["enable", "delete", "rotate", "recover", "test"] {
        let refused = console.post(&format!("{actions}/{action}"), &[]).await;
        assert_eq!(refused.status, 403, "{action}: {refused}");
    }
    for path in [
        "/admin/tenants/acme/endpoints",
        "/admin/tenants/acme/rename",
        "/admin/tenants/acme/delete",
        "/admin/tenants/acme/portal",
    ] {
        let refused = console
            .post(
                path,
                &[
                    ("url", "https://example.com/x"),
                    ("name", "X"),
                    ("confirm", "acme"),
                ],
            )
            .await;
        assert_eq!(refused.status, 403, "{path}: {refused}");
    }
    let after = hub.get("/api/v1/tenants/acme/endpoints").await.json();
    assert_eq!(after["items"].as_array().unwrap().len(), 1, "{after}");
    assert_eq!(after["items"][0]["enabled"], false, "{after}");
    assert_eq!(hub.get("/api/v1/tenants/acme").await.json()["name"], "Acme");

    // Enabled again, rotated without grace, sent a test event: the new secret signs it.
    console
        .submit(tenant_page, &format!("{actions}/enable"), &[])
        .await;
    let page = console
        .submit(tenant_page, &format!("{actions}/rotate"), &[("grace", "0")])
        .await;
    let rotated = revealed_secret(&page).unwrap_or_else(|| panic!("the new secret: {page}"));
    assert!(
        rotated.starts_with("whsec_") && rotated != secret,
        "{rotated}"
    );
    assert_eq!(revealed_secret(&console.page(tenant_page).await), None);
    let page = console
        .submit(tenant_page, &format!("{actions}/test"), &[])
        .await;
    assert!(page.contains("is on its way to endpoint"), "{page}");
    let got = receiver.wait_for(2).await;
    let test = got
        .iter()
        .find(|r| r.json()["type"] == "switchyard.endpoint.test")
        .unwrap_or_else(|| panic!("the test event arrived: {got:#?}"));
    assert!(signed_by(test, &rotated));
    assert!(!signed_by(test, &secret));
    let page = console
        .submit(
            tenant_page,
            &format!("{actions}/recover"),
            &[("since", "24h")],
        )
        .await;
    assert!(page.contains("0 dead deliveries of endpoint"), "{page}");

    // The operator may give an endpoint any channel plugin.
    let page = console
        .submit(
            tenant_page,
            "/admin/tenants/acme/endpoints",
            &[("plugin", "log"), ("config", "{}"), ("enabled", "on")],
        )
        .await;
    assert!(revealed_secret(&page).is_some(), "{page}");
    let endpoints = hub.get("/api/v1/tenants/acme/endpoints").await.json();
    assert!(
        endpoints["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["plugin"] == "log"),
        "{endpoints}"
    );

    // A plugin's own secrets: a mistake comes back without the value, and once kept the
    // page names the secret but never shows its value.
    let csrf = csrf_of(&console.page(tenant_page).await);
    let answer = console
        .post(
            "/admin/tenants/acme/endpoints",
            &[
                ("plugin", "log"),
                ("secrets", "signing_key = console-secret-5e1c"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(answer.status, 422, "{answer}");
    assert!(!answer.text().contains("console-secret-5e1c"), "{answer}");
    let page = console
        .submit(
            tenant_page,
            "/admin/tenants/acme/endpoints",
            &[
                ("plugin", "log"),
                ("secrets", "token = console-secret-5e1c"),
                ("enabled", "on"),
            ],
        )
        .await;
    assert!(page.contains("Plugin secrets</dt><dd>token "), "{page}");
    assert!(!page.contains("console-secret-5e1c"), "{page}");

    // The portal opens from a one-time link.
    let page = console
        .submit(tenant_page, "/admin/tenants/acme/portal", &[])
        .await;
    assert!(unescape(&page).contains("/portal/enter?token="), "{page}");

    // Deleted, once confirmed with the tenant's id.
    let page = console
        .submit(tenant_page, &format!("{actions}/delete"), &[])
        .await;
    assert!(page.contains("is deleted"), "{page}");
    let page = console
        .submit(
            tenant_page,
            "/admin/tenants/acme/delete",
            &[("confirm", "wrong")],
        )
        .await;
    assert!(page.contains("Nothing was deleted"), "{page}");
    let page = console
        .submit(
            tenant_page,
            "/admin/tenants/acme/delete",
            &[("confirm", "acme")],
        )
        .await;
    assert!(page.contains("Tenant acme is deleted"), "{page}");
    assert_eq!(hub.get("/api/v1/tenants/acme").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_list_pages() {
    let mut hub = Hub::new(ROUTES).env("SWITCHYARD_ADMIN_PASSWORD", PASSWORD);
    hub.start().await;
    for n in 0..52 {
        let answer = hub
            .post_json(
                "/api/v1/tenants",
                &json!({"id": format!("t{n:02}"), "name": format!("Tenant {n}")}),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer}");
    }
    let console = Console {
        hub: &hub,
        cookie: sign_in(&hub, "admin", PASSWORD).await,
    };
    let first = unescape(&console.page("/admin/tenants").await);
    assert!(
        first.contains(">t00<") && first.contains(">t49<"),
        "{first}"
    );
    assert!(!first.contains(">t50<"), "{first}");
    assert!(
        first.contains("href=\"/admin/tenants?cursor=t49\""),
        "{first}"
    );
    let second = unescape(&console.page("/admin/tenants?cursor=t49").await);
    assert!(
        second.contains(">t50<") && second.contains(">t51<"),
        "{second}"
    );
    assert!(
        !second.contains(">t49<") && !second.contains("?cursor="),
        "{second}"
    );
    assert!(second.contains("First page"), "{second}");
}
