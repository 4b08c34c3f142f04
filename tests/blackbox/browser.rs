//! The admin console in a real browser: headless Chromium, driven over WebDriver by
//! chromedriver, signs in, uploads a plugin, sees a bad upload refused, and signs out.
//!
//! This is the one test that checks what only a browser does with the pages: that the
//! forms' fields and actions match the server's routes, that the hidden CSRF token makes
//! the round trip, that the `Secure`, `__Host-` session cookie is kept over
//! `http://localhost`, that a file input uploads as multipart, and that redirects land on
//! the right page.
//!
//! Chromium and chromedriver are Debian's (`chromium`, `chromium-driver`), which
//! `scripts/test.sh` installs. Without them the test fails, saying so: it never skips,
//! because a skipped browser test looks exactly like a passing one.
//!
//! On failure the test keeps its scratch dir and prints where it is: a screenshot
//! (`failure.png`), the page's HTML (`failure.html`) and chromedriver's log.

use std::os::unix::process::CommandExt as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt as _;
use serde_json::json;

use crate::support::{DEADLINE, Hub, free_port};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The first admin's password, which the hub takes from `SWITCHYARD_ADMIN_PASSWORD` on its
/// first start (the username is `admin`).
const PASSWORD: &str = "correct horse battery staple";

/// Everything to the built-in `log` channel: the console needs a valid routes file, not
/// any particular one.
const ROUTES: &str = "channels:\n  log:\n    plugin: log\n\
                      routes:\n  - name: all\n    match: { kind: \"*\" }\n    to: [log]\n";

const LOGIN_FORM: &str = "form[action='/admin/login']";
const UPLOAD_FORM: &str = "form[action='/admin/plugins']";

/// Anything on a page that says the last step went wrong: waits stop at these at once,
/// with their text, instead of running out the deadline.
const LOGIN_FAILED: &[&str] = &["#login-error", "#error-heading"];
const PAGE_FAILED: &[&str] = &["#upload-error", ".flash-error", "#error-heading"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_console_signs_in_uploads_and_signs_out_in_a_real_browser() {
    require_browser();
    let scratch = tempfile::Builder::new()
        .prefix("switchyard-browser-")
        .tempdir()
        .expect("can create a temporary dir");
    let mut hub = Hub::new(ROUTES)
        .env("SWITCHYARD_ADMIN_PASSWORD", PASSWORD)
        .public_on_localhost();
    hub.start().await;
    let driver = ChromeDriver::start(scratch.path()).await;
    let browser = driver.session().await;

    // Catch a failure to take the evidence while the browser still shows the page, then
    // close the session (which ends Chromium) and fail as the flow did.
    let outcome = AssertUnwindSafe(console_flow(&browser, &hub, scratch.path()))
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
            "==== the browser test's files are in {} ====",
            kept.display()
        );
        std::panic::resume_unwind(panic);
    }
}

/// What a user does, step by step, with an assertion after each.
async fn console_flow(browser: &Client, hub: &Hub, scratch: &Path) {
    // Signed out, the dashboard sends the browser to the sign-in form.
    goto(browser, &hub.localhost_url("/admin")).await;
    wait_for(browser, css(LOGIN_FORM), &[], "the sign-in form for /admin").await;
    assert_eq!(path(browser).await, "/admin/login", "signed out, /admin");

    // Sign in.
    fill(browser, "#username", "admin").await;
    fill(browser, "#password", PASSWORD).await;
    click(browser, &format!("{LOGIN_FORM} button[type=submit]")).await;
    wait_for(
        browser,
        css("#health-heading"),
        LOGIN_FAILED,
        "the dashboard after signing in",
    )
    .await;
    assert_eq!(path(browser).await, "/admin", "after signing in");
    let user = find(browser, ".session strong").await;
    assert_eq!(
        text(&user).await,
        "admin",
        "the signed-in user in the header"
    );
    let page = page_text(browser).await;
    assert!(page.contains("Signed in as admin"), "the dashboard: {page}");
    assert!(page.contains("Pipeline health"), "the dashboard: {page}");
    let checks = browser
        .find_all(css(
            "section[aria-labelledby='health-heading'] ul.health li",
        ))
        .await
        .expect("can search the page");
    assert!(
        !checks.is_empty(),
        "the dashboard shows no health checks: {page}"
    );
    let cookies = browser
        .get_all_cookies()
        .await
        .expect("can read the cookies");
    assert!(
        cookies
            .iter()
            .any(|c| c.name().starts_with("__Host-") && c.secure() == Some(true)),
        "the browser kept no Secure __Host- session cookie: {cookies:?}"
    );

    // To the plugins page, by its link in the navigation.
    click(browser, "nav a[href='/admin/plugins']").await;
    wait_for(
        browser,
        css("#upload-heading"),
        PAGE_FAILED,
        "the plugins page",
    )
    .await;
    assert_eq!(path(browser).await, "/admin/plugins");
    wait_for(
        browser,
        xpath(&plugin_heading("webhook")),
        PAGE_FAILED,
        "the built-in webhook plugin in the list",
    )
    .await;

    // Upload a real component: the `trivial` test channel that host/build.rs compiles.
    let component = PathBuf::from(env!("SWITCHYARD_TEST_PLUGINS")).join("trivial.wasm");
    assert!(component.is_file(), "{} is missing", component.display());
    upload(browser, "browser-upload", &component).await;
    let listed = wait_for(
        browser,
        xpath(&plugin_heading("browser-upload")),
        PAGE_FAILED,
        "the uploaded plugin in the list",
    )
    .await;
    assert_eq!(path(browser).await, "/admin/plugins", "after the upload");
    let flash = text(&find(browser, ".flash-ok").await).await;
    assert!(
        flash.contains("browser-upload"),
        "the upload's confirmation does not name the plugin: {flash}"
    );
    let card = listed
        .find(Locator::XPath("./ancestor::article[1]"))
        .await
        .expect("the plugin's heading is in its card");
    let card_text = text(&card).await;
    assert!(
        card_text.to_lowercase().contains("channel"),
        "the uploaded plugin's card does not say it is a channel: {card_text}"
    );

    // Upload garbage: refused, with a message that says why, and not listed.
    let garbage = scratch.join("garbage.wasm");
    std::fs::write(&garbage, b"this is text, not a component").expect("can write garbage");
    upload(browser, "browser-garbage", &garbage).await;
    let error = wait_for(
        browser,
        css("#upload-error"),
        &["#error-heading"],
        "the upload error for a garbage file",
    )
    .await;
    let message = text(&error).await;
    assert!(
        message.contains("Upload refused") && message.contains("not a WebAssembly file"),
        "the upload error does not say what is wrong: {message}"
    );
    assert!(
        absent(browser, xpath(&plugin_heading("browser-garbage"))).await,
        "the refused plugin is listed"
    );

    // Sign out: back on the sign-in form, and the dashboard sends the browser there too.
    click(
        browser,
        ".session form[action='/admin/logout'] button[type=submit]",
    )
    .await;
    wait_for(
        browser,
        css(LOGIN_FORM),
        &["#error-heading"],
        "the sign-in form after signing out",
    )
    .await;
    assert_eq!(path(browser).await, "/admin/login", "after signing out");
    assert!(
        absent(browser, css(".session")).await,
        "still shown as signed in"
    );
    goto(browser, &hub.localhost_url("/admin")).await;
    wait_for(
        browser,
        css(LOGIN_FORM),
        &["#health-heading"],
        "the sign-in form for /admin after signing out",
    )
    .await;
    assert_eq!(
        path(browser).await,
        "/admin/login",
        "/admin after signing out"
    );
}

/// Fills in and submits the upload form.
async fn upload(browser: &Client, name: &str, file: &Path) {
    fill(browser, "#plugin-name", name).await;
    // A file input takes the file's absolute path as its keys; chromedriver runs on this
    // machine, so the browser reads the file from here.
    find(browser, "#plugin-file")
        .await
        .send_keys(file.to_str().expect("a UTF-8 path"))
        .await
        .expect("can choose the file");
    click(browser, &format!("{UPLOAD_FORM} button[type=submit]")).await;
}

/// An XPath to a plugin's heading in the list of installed plugins.
fn plugin_heading(name: &str) -> String {
    format!(
        "//article[contains(concat(' ', normalize-space(@class), ' '), ' plugin ')]\
         //h3[normalize-space() = '{name}']"
    )
}

// ---- Browser helpers ----------------------------------------------------------------------

pub(crate) fn css(selector: &str) -> Locator<'_> {
    Locator::Css(selector)
}

pub(crate) fn xpath(expression: &str) -> Locator<'_> {
    Locator::XPath(expression)
}

pub(crate) async fn goto(browser: &Client, url: &str) {
    browser
        .goto(url)
        .await
        .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
}

/// The current page's path.
pub(crate) async fn path(browser: &Client) -> String {
    browser
        .current_url()
        .await
        .expect("can read the URL")
        .path()
        .to_owned()
}

/// The element that must be on the current page now.
pub(crate) async fn find(browser: &Client, selector: &str) -> Element {
    match browser.find(css(selector)).await {
        Ok(element) => element,
        Err(e) => panic!(
            "no `{selector}` on {} ({e}); the page says:\n{}",
            browser
                .current_url()
                .await
                .map(String::from)
                .unwrap_or_default(),
            page_text(browser).await
        ),
    }
}

pub(crate) async fn absent(browser: &Client, locator: Locator<'_>) -> bool {
    browser
        .find_all(locator)
        .await
        .expect("can search the page")
        .is_empty()
}

pub(crate) async fn fill(browser: &Client, selector: &str, value: &str) {
    let field = find(browser, selector).await;
    // A page re-rendered after an error keeps what was typed; start from empty.
    field.clear().await.expect("can clear a field");
    field.send_keys(value).await.expect("can type");
}

/// Clicks a link or submit button and waits until the browser has left the page.
///
/// Every click in these tests loads a new page. Without the wait, a search right after
/// the click can still find an element of the old page (a flash notice carried in the
/// URL, say) and then read it after it went stale, or read the old page's text.
pub(crate) async fn click(browser: &Client, selector: &str) {
    let old_page = find(browser, "html").await;
    find(browser, selector)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click `{selector}`: {e}"));
    // Any command on an element of a replaced document fails (stale element).
    let deadline = Instant::now() + DEADLINE;
    while old_page.tag_name().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "clicking `{selector}` did not leave {} within {DEADLINE:?}",
            path(browser).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn text(element: &Element) -> String {
    element.text().await.expect("can read an element's text")
}

/// Everything the page shows, as text.
pub(crate) async fn page_text(browser: &Client) -> String {
    match browser.find(css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(e) => format!("(no body: {e})"),
    }
}

/// Waits until `locator` is on the page (a submit navigates in its own time) and returns
/// it. Panics at once, with the text, when one of `failures` shows instead, and after
/// [`DEADLINE`] with the page's URL and text.
pub(crate) async fn wait_for(
    browser: &Client,
    locator: Locator<'_>,
    failures: &[&str],
    what: &str,
) -> Element {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(element) = browser.find(locator).await {
            return element;
        }
        for failure in failures {
            if let Ok(shown) = browser.find(css(failure)).await {
                panic!(
                    "waiting for {what}, {} showed `{failure}`: {}",
                    browser
                        .current_url()
                        .await
                        .map(String::from)
                        .unwrap_or_default(),
                    shown.text().await.unwrap_or_default()
                );
            }
        }
        if Instant::now() >= deadline {
            panic!(
                "gave up after {DEADLINE:?} waiting for {what}; {} says:\n{}",
                browser
                    .current_url()
                    .await
                    .map(String::from)
                    .unwrap_or_default(),
                page_text(browser).await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Saves a screenshot and the page's HTML into `dir`, and says where.
pub(crate) async fn save_evidence(browser: &Client, dir: &Path) {
    let url = browser
        .current_url()
        .await
        .map(String::from)
        .unwrap_or_default();
    eprintln!("==== the browser was on {url} ====");
    match browser.screenshot().await {
        Ok(png) => {
            let file = dir.join("failure.png");
            match std::fs::write(&file, png) {
                Ok(()) => eprintln!("==== screenshot: {} ====", file.display()),
                Err(e) => eprintln!("cannot save the screenshot: {e}"),
            }
        }
        Err(e) => eprintln!("cannot take a screenshot: {e}"),
    }
    if let Ok(html) = browser.source().await {
        let file = dir.join("failure.html");
        if std::fs::write(&file, html).is_ok() {
            eprintln!("==== the page's HTML: {} ====", file.display());
        }
    }
}

// ---- Chromium and chromedriver --------------------------------------------------------------

/// Fails, saying how to fix it, when Debian's Chromium or chromedriver is missing.
pub(crate) fn require_browser() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "the admin console's browser test needs Debian's Chromium and chromedriver, and \
         this machine lacks {}. Run ./scripts/test.sh, which installs them (the packages `chromium` \
         and `chromium-driver`), or install them with `apt-get install chromium \
         chromium-driver`, then run the tests again.",
        missing.join(" and ")
    );
}

/// chromedriver as a child process on a free port, in its own process group so that
/// dropping it ends Chromium too, even when the test failed before closing its session.
pub(crate) struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    /// Starts chromedriver, logging to `dir/chromedriver.log`, and waits until it is ready.
    pub(crate) async fn start(dir: &Path) -> ChromeDriver {
        // The port was free when picked but may be taken before chromedriver binds it;
        // then chromedriver exits, and gets another port.
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!(
                    "--log-path={}",
                    dir.join("chromedriver.log").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("can start chromedriver");
            let mut driver = ChromeDriver { child, port };
            if driver.ready().await {
                return driver;
            }
        }
        panic!(
            "chromedriver did not start on three ports in a row; see {}",
            dir.join("chromedriver.log").display()
        );
    }

    /// Waits for `/status` to say ready; false when chromedriver exited first.
    async fn ready(&mut self) -> bool {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/status", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self
                .child
                .try_wait()
                .expect("can poll chromedriver")
                .is_some()
            {
                return false;
            }
            if let Ok(response) = client.get(&url).send().await
                && let Ok(body) = response.bytes().await
                && let Ok(status) = serde_json::from_slice::<serde_json::Value>(&body)
                && status["value"]["ready"] == true
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver was not ready after 30s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new browser session: headless Chromium with a window big enough for the pages.
    pub(crate) async fn session(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                // No display, no GPU, no user namespaces for the sandbox in containers
                // (and as root), and a small /dev/shm in Docker.
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,1600",
                ],
            }),
        );
        ClientBuilder::rustls()
            .expect("can set up the WebDriver client")
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("chromedriver cannot start Chromium: {e}"))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let Ok(group) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) on the process group this test created for chromedriver, whose
        // leader is not reaped until the `wait` below, so the id cannot have been reused.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
