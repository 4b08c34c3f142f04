//! Plugins in Python and JavaScript, built here from `tests/polyglot/` with the same tools
//! and SDKs a plugin author uses (componentize-py; jco and componentize-js), uploaded
//! through the API and routed to: a Python adapter takes signed webhooks, a Python and a
//! JavaScript channel deliver signed notifications, a JavaScript transform redacts on the
//! way, and a hostile Python channel's endless loop and memory bomb are contained.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Hub, Receiver, Reply, run_client, signing_secret};
use crate::transforms::{load_routes, upload};

/// The inbound source's Standard Webhooks secret.
const HOOK_SECRET: &str = "whsec_cG9seWdsb3QtaG9vay1rZXktMDEyMzQ1Njc4OWFiY2RlZg==";

/// Where the components are built: `SWITCHYARD_POLYGLOT_PLUGINS`, or a directory beside
/// cargo's target dir. The build scripts skip a plugin whose sources have not changed.
pub fn polyglot_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SWITCHYARD_POLYGLOT_PLUGINS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    Path::new(&home).join(".cache/switchyard/polyglot")
}

/// Builds every plugin under `tests/polyglot/{lang}` with its build script (which installs
/// its tools when they are missing); returns the directory that holds the components.
pub fn build(lang: &str) -> PathBuf {
    let out = polyglot_dir();
    std::fs::create_dir_all(&out).expect("can create the polyglot output dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/polyglot")
        .join(lang)
        .join("build.sh");
    let run = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        run.status.success(),
        "{} failed:\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

fn component(dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Sends `payload` to `/hooks/pyhook`, signed with `secret`; returns the answer.
async fn hook(hub: &Hub, secret: &str, payload: &Value, extra: &[&str]) -> Value {
    let url = hub.url("/hooks/pyhook");
    let payload = payload.to_string();
    let mut args = vec![
        url.as_str(),
        "--secret",
        secret,
        "--payload",
        payload.as_str(),
    ];
    args.extend_from_slice(extra);
    let run = run_client("hooks_send.py", &args).await;
    assert!(run.success, "hooks_send.py: {}\n{}", run.stdout, run.stderr);
    run.json()[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_plugins_adapt_transform_and_deliver() {
    let python = build("python");
    let js = build("js");

    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::ok());
    let mut hub = Hub::new(&crate::support::one_hook(
        &receiver.url("/unused"),
        "[]",
        "",
    ))
    .env("HOOK_SECRET", HOOK_SECRET)
    .env("SIGNING_KEY", &signing_secret());
    hub.start().await;
    upload(
        &hub,
        "py-adapter",
        component(&python, "py-adapter"),
        "adapter",
    )
    .await;
    upload(
        &hub,
        "py-channel",
        component(&python, "py-channel"),
        "channel",
    )
    .await;
    upload(
        &hub,
        "py-hostile",
        component(&python, "py-hostile"),
        "channel",
    )
    .await;
    upload(&hub, "js-channel", component(&js, "js-channel"), "channel").await;
    upload(
        &hub,
        "js-transform",
        component(&js, "js-transform"),
        "transform",
    )
    .await;

    let channel = |name: &str, plugin: &str, path: &str, extra: &str| {
        format!(
            "  {name}:\n    plugin: {plugin}\n    config: {{ url: \"{url}\" }}\n    \
             secrets: {{ signing_key: \"${{SIGNING_KEY}}\" }}\n    allowed_hosts: [\"127.0.0.1\"]\n    \
             retry: {{ schedule: [] }}\n{extra}",
            url = receiver.url(path)
        )
    };
    let routes = format!(
        "sources:\n  pyhook:\n    adapter: py-adapter\n    secret: ${{HOOK_SECRET}}\n\
         transforms:\n  redact:\n    plugin: js-transform\n    config: {{ drop_kinds: [py.secret] }}\n\
         channels:\n{py}{js}{hostile}\
         routes:\n  \
           - {{ name: polyglot, match: {{ kind: \"py.*\" }}, to: [py, js], transform: [redact] }}\n  \
           - {{ name: hostile, match: {{ kind: \"attack.*\" }}, to: [hostile] }}\n",
        py = channel("py", "py-channel", "/py", ""),
        js = channel("js", "js-channel", "/js", ""),
        hostile = channel("hostile", "py-hostile", "/hostile", ""),
    );
    load_routes(&hub, &routes).await;

    // In through the Python adapter, redacted by the JavaScript transform, out through the
    // Python and the JavaScript channel, each signing what it sends.
    let answer = hook(
        &hub,
        HOOK_SECRET,
        &json!({"kind": "py.hello", "payload": {"text": "hi", "email": "a@b.c", "phone": "1"}}),
        &[],
    )
    .await;
    assert_eq!(answer["status"], 202, "{answer}");
    let id = answer["body"]["notifications"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {answer}"))
        .to_owned();
    let notification = hub.wait_until_settled(&id, "delivered").await;
    for delivery in notification["deliveries"].as_array().unwrap() {
        assert_eq!(
            delivery["attempt_log"][0]["transforms"],
            json!(["redact"]),
            "{notification:#}"
        );
    }
    let got = receiver.wait_for(2).await;
    let mut paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/js", "/py"]);
    for received in &got {
        assert!(received.signature_is_valid(), "{received:?}");
        assert_eq!(received.webhook_id(), id, "{received:?}");
        let body = received.json();
        let text = body.to_string();
        assert!(
            text.contains("\"redacted\":true"),
            "{}: {text}",
            received.path
        );
        assert!(!text.contains("a@b.c"), "{}: {text}", received.path);
        assert!(text.contains("\"hi\""), "{}: {text}", received.path);
    }

    // The transform drops the kinds its config names: nothing goes out.
    let answer = hook(
        &hub,
        HOOK_SECRET,
        &json!({"kind": "py.secret", "payload": {}}),
        &[],
    )
    .await;
    assert_eq!(answer["status"], 202, "{answer}");
    let id = answer["body"]["notifications"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let notification = hub.wait_until_settled(&id, "delivered").await;
    for delivery in notification["deliveries"].as_array().unwrap() {
        assert_eq!(
            delivery["attempt_log"][0]["outcome"], "dropped",
            "{notification:#}"
        );
    }

    // The Python adapter checks signatures: a wrong one is refused and stores nothing.
    let answer = hook(
        &hub,
        "whsec_d3JvbmctaG9vay1rZXktMDEyMzQ1Njc4OWFiY2RlZg==",
        &json!({"kind": "py.forged", "payload": {}}),
        &[],
    )
    .await;
    assert_eq!(answer["status"], 401, "{answer}");
    assert_eq!(answer["body"]["code"], "invalid-signature", "{answer}");

    // A hostile Python channel: its endless loop meets the CPU deadline and its memory
    // bomb the memory cap; each fails one delivery, and the hub goes on.
    let looped = hub
        .send(json!({"kind": "attack.loop", "payload": {"attack": "loop"}}))
        .await;
    let bombed = hub
        .send(json!({"kind": "attack.memory", "payload": {"attack": "memory"}}))
        .await;
    for (id, expected) in [(&looped, "CPU deadline"), (&bombed, "trapped")] {
        let notification = hub.wait_until_settled(id, "dead").await;
        let detail = notification["deliveries"][0]["attempt_log"][0]["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(detail.contains(expected), "{expected}: {notification:#}");
    }
    let calm = hub
        .send(json!({"kind": "attack.none", "payload": {}}))
        .await;
    hub.wait_until_settled(&calm, "delivered").await;
    assert_eq!(
        receiver
            .received()
            .iter()
            .filter(|r| r.path == "/hostile")
            .count(),
        0
    );
}
