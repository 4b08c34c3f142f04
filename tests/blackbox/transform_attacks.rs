//! Hostile transforms on real deliveries, and hostile routes files that name transforms.
//!
//! The transform is `tests/plugins/hostile-transform`, uploaded once per hub and named
//! under `transforms:` once per misbehaviour, each with the config that picks it. What
//! must hold, whatever a transform does: the hub stays up and keeps delivering everything
//! else; the notification it was handed is never lost (it is retried or dead-lettered, and
//! the API shows it); the hub's memory stays bounded; the attempt record says clearly what
//! went wrong, in bounded size, and never holds a secret; and what a transform makes is
//! held to the limits a notification sent to the API is held to. A routes file that
//! abuses transform lists is refused with a clear, bounded 422.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Answer, Hub, Receiver, Reply, webhook_channel};
use crate::transforms::{load_routes, upload};

/// Where an attack's delivery goes: a webhook to `/attack` that retries once, fast.
const ATTACK_SCHEDULE: &str = "[50ms]";

fn hostile_transform() -> Vec<u8> {
    let path = PathBuf::from(env!("SWITCHYARD_TEST_PLUGINS")).join("hostile-transform.wasm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A hub with a receiver that answers 200 to everything and the hostile transform
/// uploaded as plugin `hostile`.
async fn hub_with_hostile(receiver: &Receiver, env: &[(&str, &str)]) -> Hub {
    receiver.otherwise(Reply::ok());
    let mut hub = Hub::new(&crate::support::one_hook(
        &receiver.url("/unused"),
        "[]",
        "",
    ));
    for (name, value) in env {
        hub = hub.env(name, value);
    }
    hub.start().await;
    upload(&hub, "hostile", hostile_transform(), "transform").await;
    hub
}

/// A routes file with one webhook channel `attack` (to `/attack`) and one `control` (to
/// `/control`, no transforms), where kind `attack.<mode>` runs transform `x-<mode>`:
/// the hostile transform with `config` plus `{"mode": "<mode>"}`.
fn attack_routes(receiver: &Receiver, attacks: &[(&str, Value)], extra: &str) -> String {
    let mut transforms = String::from("transforms:\n");
    let mut routes = String::from("routes:\n");
    for (mode, config) in attacks {
        let mut config = config.clone();
        config["mode"] = json!(mode);
        transforms.push_str(&format!(
            "  x-{mode}:\n    plugin: hostile\n    config: {config}\n{extra}"
        ));
        routes.push_str(&format!(
            "  - {{ name: r-{mode}, match: {{ kind: \"attack.{mode}\" }}, to: [attack], \
             transform: [x-{mode}] }}\n"
        ));
    }
    routes.push_str("  - { name: control, match: { kind: \"control.*\" }, to: [control] }\n");
    format!(
        "{transforms}channels:\n{attack}{control}{routes}",
        attack = webhook_channel("attack", &receiver.url("/attack"), ATTACK_SCHEDULE, ""),
        control = webhook_channel("control", &receiver.url("/control"), "[50ms]", ""),
    )
}

/// The hub's resident memory, in bytes, from `/proc/<pid>/status`.
fn rss_bytes(hub: &Hub) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", hub.pid()))
        .expect("the hub is running and has a /proc entry");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("/proc/<pid>/status has VmRSS");
    kib * 1024
}

/// At most `max` characters of `text`, saying how much was left out: failure messages
/// here may quote what a hostile plugin made, which can be megabytes.
fn clipped(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}… ({} bytes in all)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}

/// The one delivery of notification `id`, once it is settled in `state`.
async fn settled(hub: &Hub, id: &str, state: &str) -> Value {
    let notification = hub.wait_until_settled(id, state).await;
    let deliveries = notification["deliveries"].as_array().unwrap();
    assert_eq!(
        deliveries.len(),
        1,
        "{}",
        clipped(&notification.to_string(), 2000)
    );
    deliveries[0].clone()
}

/// The one delivery of notification `id` once it has left `pending` (whatever it became),
/// or `None` when it is still pending after `timeout`.
async fn outcome_within(hub: &Hub, id: &str, timeout: Duration) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let notification = hub.notification(id).await;
        if let Some(delivery) = notification["deliveries"]
            .as_array()
            .and_then(|d| d.first())
            && matches!(delivery["state"].as_str(), Some("delivered" | "dead"))
        {
            return Some(delivery.clone());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn attempts(delivery: &Value) -> Vec<Value> {
    delivery["attempt_log"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn detail(attempt: &Value) -> String {
    attempt["detail"].as_str().unwrap_or_default().to_owned()
}

async fn dead_letter_ids(hub: &Hub) -> Vec<String> {
    let answer = hub.get("/api/v1/dead-letters?limit=500").await;
    assert_eq!(answer.status, 200, "{}", clipped(&answer.to_string(), 2000));
    answer.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["notification_id"].as_str().map(str::to_owned))
        .collect()
}

/// Sends one control notification and asserts it reaches `/control` in time.
async fn control_gets_through(hub: &Hub, receiver: &Receiver, label: &str) {
    let id = hub
        .send(json!({"kind": format!("control.{label}"), "payload": {"n": 1}}))
        .await;
    settled(hub, &id, "delivered").await;
    assert!(
        receiver
            .received()
            .iter()
            .any(|r| r.path == "/control" && r.webhook_id() == id),
        "control notification {id} ({label}) did not reach the receiver"
    );
}

/// Every misbehaviour a transform can get away with under the sandbox's limits, each on
/// its own notification: each is recorded clearly and dead-lettered (after the channel's
/// retries where a retry may help), nothing reaches the receiver, the hub keeps
/// delivering, and its memory stays bounded.
#[tokio::test]
async fn hostile_transforms_lose_nothing_and_the_hub_keeps_delivering() {
    let receiver = Receiver::start().await;
    let hub = hub_with_hostile(&receiver, &[]).await;
    // (mode, config, attempts expected, what the detail must say)
    let attacks: Vec<(&str, Value, usize, &str)> = vec![
        (
            "split-bomb",
            json!({"count": 100_000}),
            1,
            "at most 100 are allowed",
        ),
        (
            "huge-payload",
            json!({"bytes": 50 * 1024 * 1024}),
            1,
            "at most 1048576 are allowed",
        ),
        ("not-json", json!({}), 1, "not JSON"),
        ("empty-kind", json!({}), 1, "kind"),
        ("giant-kind", json!({"bytes": 10 * 1024 * 1024}), 1, "kind"),
        ("loop", json!({}), 2, "CPU deadline"),
        ("memory-bomb", json!({}), 2, "trapped"),
        ("retry-error", json!({}), 2, "the lookup service is down"),
        ("fail-error", json!({}), 1, "the payload has no `customer`"),
    ];
    let configs: Vec<(&str, Value)> = attacks
        .iter()
        .map(|(mode, config, ..)| (*mode, config.clone()))
        .collect();
    load_routes(&hub, &attack_routes(&receiver, &configs, "")).await;
    control_gets_through(&hub, &receiver, "before").await;
    let rss_before = rss_bytes(&hub);

    let mut sent = Vec::new();
    for (mode, ..) in &attacks {
        let id = hub
            .send(json!({"kind": format!("attack.{mode}"), "payload": {"customer": null}}))
            .await;
        sent.push(id);
    }
    // While they run, and after, everything else is still delivered.
    control_gets_through(&hub, &receiver, "during").await;

    let mut peak = rss_bytes(&hub);
    for ((mode, _, expected_attempts, says), id) in attacks.iter().zip(&sent) {
        let delivery = settled(&hub, id, "dead").await;
        peak = peak.max(rss_bytes(&hub));
        let log = attempts(&delivery);
        let shown = clipped(&delivery.to_string(), 2000);
        assert_eq!(log.len(), *expected_attempts, "{mode}: {shown}");
        for attempt in &log {
            assert_eq!(attempt["outcome"], "error", "{mode}: {shown}");
            assert_eq!(
                attempt["transforms"],
                json!([format!("x-{mode}")]),
                "{mode}"
            );
            let detail = detail(attempt);
            assert!(
                detail.contains(&format!("x-{mode}")) || detail.contains("hostile"),
                "{mode}: the detail names neither the transform nor its plugin: {shown}"
            );
            assert!(detail.contains(says), "{mode}: {shown}");
        }
    }
    let dead = dead_letter_ids(&hub).await;
    for ((mode, ..), id) in attacks.iter().zip(&sent) {
        assert!(dead.contains(id), "{mode}: {id} is not a dead letter");
    }
    assert!(
        receiver.received().iter().all(|r| r.path == "/control"),
        "something a hostile transform made reached the receiver"
    );

    control_gets_through(&hub, &receiver, "after").await;
    let growth = peak.saturating_sub(rss_before);
    eprintln!(
        "hub RSS: {} MiB before, {} MiB at peak",
        rss_before >> 20,
        peak >> 20
    );
    assert!(
        growth < 1 << 30,
        "the hub's RSS grew by {} MiB under hostile transforms",
        growth >> 20
    );
}

/// A notification sent to the API has a kind of letters, digits and `._:-`, at most 64
/// attributes, names and values of at most 256 characters; and a transform's payload is
/// held to 1 MiB. A transform must not be a way around any of that: what it makes that
/// the API would refuse is refused (dead-lettered, saying why), not delivered.
#[tokio::test]
async fn a_transform_cannot_smuggle_attributes_or_kinds_the_api_would_refuse() {
    let receiver = Receiver::start().await;
    let hub = hub_with_hostile(&receiver, &[]).await;
    let attacks: Vec<(&str, Value, &str)> = vec![
        ("many-attributes", json!({"count": 100_000}), "attribute"),
        (
            "huge-attributes",
            json!({"count": 8, "bytes": 1024 * 1024}),
            "attribute",
        ),
        ("odd-kind", json!({}), "kind"),
    ];
    let configs: Vec<(&str, Value)> = attacks
        .iter()
        .map(|(mode, config, _)| (*mode, config.clone()))
        .collect();
    load_routes(&hub, &attack_routes(&receiver, &configs, "")).await;

    let mut wrong = Vec::new();
    for (mode, _, says) in &attacks {
        let id = hub
            .send(json!({"kind": format!("attack.{mode}"), "payload": {}}))
            .await;
        let Some(delivery) = outcome_within(&hub, &id, crate::support::DEADLINE).await else {
            wrong.push(format!("{mode}: never settled"));
            continue;
        };
        let log = attempts(&delivery);
        let last = log.last().cloned().unwrap_or_default();
        if delivery["state"] != "dead" || !detail(&last).contains(says) {
            let sent: usize = receiver
                .received()
                .iter()
                .filter(|r| r.webhook_id() == id)
                .map(|r| r.body.len())
                .sum();
            wrong.push(format!(
                "{mode}: expected dead, saying `{says}`; got {} after {} attempt(s) \
                 ({}), and the receiver got {sent} bytes for it",
                delivery["state"],
                log.len(),
                clipped(&detail(&last), 200),
            ));
        }
    }
    control_gets_through(&hub, &receiver, "after").await;
    assert!(
        wrong.is_empty(),
        "a transform got past the limits of a notification:\n{}",
        wrong.join("\n")
    );
}

/// A transform's error and drop reasons go on the attempt record, in the store and in
/// every answer that shows the notification: they must be bounded there, however long a
/// reason the transform gives.
#[tokio::test]
async fn a_transforms_error_and_drop_reasons_are_bounded_on_the_record() {
    const MAX_DETAIL: usize = 64 * 1024;
    let receiver = Receiver::start().await;
    let hub = hub_with_hostile(&receiver, &[]).await;
    let reason = json!({"bytes": 8 * 1024 * 1024});
    let configs = [("huge-reason", reason.clone()), ("huge-drop", reason)];
    load_routes(&hub, &attack_routes(&receiver, &configs, "")).await;

    let failed = hub
        .send(json!({"kind": "attack.huge-reason", "payload": {}}))
        .await;
    let dropped = hub
        .send(json!({"kind": "attack.huge-drop", "payload": {}}))
        .await;
    let failed = settled(&hub, &failed, "dead").await;
    let dropped = settled(&hub, &dropped, "delivered").await;
    assert_eq!(attempts(&dropped)[0]["outcome"], "dropped");
    control_gets_through(&hub, &receiver, "after").await;

    let sizes = [
        ("error", detail(&attempts(&failed)[0]).len()),
        ("drop", detail(&attempts(&dropped)[0]).len()),
    ];
    assert!(
        sizes.iter().all(|(_, len)| *len <= MAX_DETAIL),
        "a transform's reason is stored and shown whole: {sizes:?} bytes of detail \
         (at most {MAX_DETAIL} expected)"
    );
}

/// A transform granted a secret that puts it in its error reason: the host knows the
/// values it granted that call, and the hub promises that nothing it shows or logs holds
/// a secret, so the value must not reach the attempt record, the dead letters or the log.
#[tokio::test]
async fn a_secret_a_transform_echoes_does_not_reach_the_record_or_the_log() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let canary = format!("canary-xform-{nanos:x}-{:x}", std::process::id());
    let receiver = Receiver::start().await;
    let hub = hub_with_hostile(&receiver, &[("XFORM_TOKEN", &canary)]).await;
    let routes = attack_routes(
        &receiver,
        &[("secrets-echo", json!({}))],
        "    secrets: { token: \"${XFORM_TOKEN}\" }\n",
    );
    load_routes(&hub, &routes).await;

    let id = hub
        .send(json!({"kind": "attack.secrets-echo", "payload": {}}))
        .await;
    let delivery = settled(&hub, &id, "dead").await;
    let shown = detail(&attempts(&delivery)[0]);
    assert!(
        shown.contains("the lookup refused token"),
        "the transform did not run as planned: {delivery:#}"
    );
    let mut leaks = Vec::new();
    let notification = hub.get(&format!("/api/v1/notifications/{id}")).await;
    if notification.text().contains(&canary) {
        leaks.push(format!("GET /api/v1/notifications/{id}: {shown}"));
    }
    let dead = hub.get("/api/v1/dead-letters").await;
    if dead.text().contains(&canary) {
        leaks.push("GET /api/v1/dead-letters".to_owned());
    }
    if hub.logs().contains(&canary) {
        leaks.push("the hub's log".to_owned());
    }
    assert!(
        leaks.is_empty(),
        "a transform's secret is shown in: {leaks:?}"
    );
}

/// A split into 100 parts, then a transform that takes 150 ms of CPU on each: 15 s of
/// work for one attempt, all within the per-call limits. The hub must keep delivering
/// everything else meanwhile, and the heavy delivery must still finish, each part
/// delivered once.
#[tokio::test]
async fn a_split_that_multiplies_cpu_work_does_not_starve_other_deliveries() {
    let receiver = Receiver::start().await;
    let hub = hub_with_hostile(&receiver, &[]).await;
    let routes = format!(
        "transforms:\n  \
           fan: {{ plugin: hostile, config: {{ mode: split-bomb, count: 100 }} }}\n  \
           burn: {{ plugin: hostile, config: {{ mode: slow, ms: 150 }} }}\n\
         channels:\n{heavy}{control}\
         routes:\n  \
           - {{ name: heavy, match: {{ kind: \"heavy.*\" }}, to: [heavy], transform: [fan, burn] }}\n  \
           - {{ name: control, match: {{ kind: \"control.*\" }}, to: [control] }}\n",
        heavy = webhook_channel("heavy", &receiver.url("/heavy"), "[50ms]", ""),
        control = webhook_channel("control", &receiver.url("/control"), "[50ms]", ""),
    );
    load_routes(&hub, &routes).await;

    let heavy = hub
        .send(json!({"kind": "heavy.batch", "payload": {}}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..5 {
        let started = Instant::now();
        control_gets_through(&hub, &receiver, &format!("n{n}")).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "a control delivery took {took:?} while a heavy transform ran"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let delivery = settled(&hub, &heavy, "delivered").await;
    let log = attempts(&delivery);
    eprintln!(
        "the heavy attempt took {} ms: {}",
        log[0]["duration_ms"],
        detail(&log[0])
    );
    assert_eq!(log.len(), 1, "{delivery:#}");
    assert_eq!(log[0]["transforms"], json!(["fan", "burn"]));
    let parts: Vec<String> = receiver
        .received()
        .iter()
        .filter(|r| r.path == "/heavy")
        .map(|r| r.webhook_id())
        .collect();
    let expected: Vec<String> = (1..=100).map(|n| format!("{heavy}.{n}")).collect();
    assert_eq!(parts, expected);
}

/// POSTs `yaml` to `/api/v1/routes/validate`.
async fn validate(hub: &Hub, yaml: &str) -> Answer {
    Answer::of(
        hub.api(reqwest::Method::POST, "/api/v1/routes/validate")
            .header("content-type", "text/plain")
            .body(yaml.to_owned()),
    )
    .await
}

/// Asserts a 422 whose problems include one that contains every one of `says`.
fn refused_saying(answer: &Answer, what: &str, says: &[&str]) {
    let shown = clipped(&answer.to_string(), 3000);
    assert_eq!(answer.status, 422, "{what}: {shown}");
    let problem = answer.json();
    let problems: Vec<&str> = problem["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no problems list: {shown}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        problems.iter().any(|p| says.iter().all(|s| p.contains(s))),
        "{what}: no problem says all of {says:?}: {shown}"
    );
}

/// Routes files that abuse transform lists: each is refused with a 422 whose problems say
/// clearly what is wrong, and the table in force stays (the hub still delivers).
#[tokio::test]
async fn routes_files_that_abuse_transform_lists_get_clear_problems() {
    let receiver = Receiver::start().await;
    let hub = hub_with_hostile(&receiver, &[]).await;
    let hook = webhook_channel("hook", &receiver.url("/hook"), "[]", "");

    // A list of 10,000 names.
    let names = vec!["t-ok"; 10_000].join(", ");
    let yaml = format!(
        "transforms:\n  t-ok: {{ plugin: hostile, config: {{ mode: keep }} }}\n\
         channels:\n{hook}routes:\n  - {{ name: r, match: {{ kind: \"*\" }}, to: [hook], \
         transform: [{names}] }}\n"
    );
    refused_saying(
        &validate(&hub, &yaml).await,
        "10,000 transforms",
        &["10000 transforms", "at most 16"],
    );

    // A channel's name where a transform's belongs.
    let yaml = format!(
        "channels:\n{hook}routes:\n  - {{ name: r, match: {{ kind: \"*\" }}, to: [hook], \
         transform: [hook] }}\n"
    );
    refused_saying(
        &validate(&hub, &yaml).await,
        "a channel as a transform",
        &["unknown transform `hook`"],
    );

    // A channel plugin under `transforms:`.
    let yaml = format!(
        "transforms:\n  t-hook: {{ plugin: webhook }}\n\
         channels:\n{hook}routes:\n  - {{ name: r, match: {{ kind: \"*\" }}, to: [hook], \
         transform: [t-hook] }}\n"
    );
    refused_saying(
        &validate(&hub, &yaml).await,
        "a channel plugin as a transform",
        &["webhook"],
    );

    // A transform that names itself as its plugin, and one that tries to chain others.
    let yaml = format!(
        "transforms:\n  me: {{ plugin: me }}\n  chain: {{ plugin: hostile, transform: [me] }}\n\
         channels:\n{hook}routes:\n  - {{ name: r, match: {{ kind: \"*\" }}, to: [hook], \
         transform: [me, chain] }}\n"
    );
    let answer = validate(&hub, &yaml).await;
    refused_saying(&answer, "a transform that is its own plugin", &["`me`"]);
    refused_saying(&answer, "a transform with a chain", &["transform"]);

    // Aliases that nest lists of 16 into one list: lists where names belong.
    let sixteen = ["t-ok"; 16].join(", ");
    let yaml = format!(
        "transforms:\n  t-ok: {{ plugin: hostile, config: {{ mode: keep }} }}\n\
         channels:\n{hook}routes:\n  \
         - {{ name: a, match: {{ kind: \"a\" }}, to: [hook], transform: &sixteen [{sixteen}] }}\n  \
         - {{ name: b, match: {{ kind: \"*\" }}, to: [hook], transform: [*sixteen, *sixteen] }}\n"
    );
    refused_saying(
        &validate(&hub, &yaml).await,
        "nested aliases",
        &["expected a transform name"],
    );

    // "Billion laughs" through transform lists: ten aliases of ten, nine deep.
    let mut yaml =
        String::from("a0: &a0 [t-ok, t-ok, t-ok, t-ok, t-ok, t-ok, t-ok, t-ok, t-ok, t-ok]\n");
    for level in 1..9 {
        let prev = format!("*a{}", level - 1);
        yaml.push_str(&format!(
            "a{level}: &a{level} [{}]\n",
            [prev.as_str(); 10].join(", ")
        ));
    }
    yaml.push_str(&format!(
        "channels:\n{hook}routes:\n  - {{ name: r, match: {{ kind: \"*\" }}, to: [hook], \
         transform: *a8 }}\n"
    ));
    let started = Instant::now();
    let answer = validate(&hub, &yaml).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    refused_saying(&answer, "billion laughs", &["anchors and aliases"]);

    // None of that touched the table in force.
    let id = hub
        .send(json!({"kind": "after.validate", "payload": {}}))
        .await;
    settled(&hub, &id, "delivered").await;
}

/// A transform list that is an alias of the list it is in (`&loop [*loop]`) is
/// recursive, which YAML does not allow: it must be refused, not read as something else.
#[tokio::test]
async fn a_recursive_alias_in_a_transform_list_is_refused_not_dropped() {
    let receiver = Receiver::start().await;
    let hub = hub_with_hostile(&receiver, &[]).await;
    let hook = webhook_channel("hook", &receiver.url("/hook"), "[]", "");
    let yaml = format!(
        "transforms:\n  t-ok: {{ plugin: hostile, config: {{ mode: keep }} }}\n\
         channels:\n{hook}routes:\n  - {{ name: r, match: {{ kind: \"*\" }}, to: [hook], \
         transform: &loop [t-ok, *loop] }}\n"
    );
    let answer = validate(&hub, &yaml).await;
    assert_eq!(
        answer.status,
        422,
        "a recursive alias was taken (the alias is silently left out of the list): {}",
        clipped(&answer.to_string(), 2000)
    );
    // Loaded for real, the list in force would be `[t-ok]`, the alias gone without a word.
}

/// Every problem that names an unknown transform lists every known one: a routes file of
/// a few tens of kilobytes must not draw an answer (and build problems) thousands of
/// times its size.
#[tokio::test]
async fn unknown_transform_names_do_not_amplify_the_answer() {
    let receiver = Receiver::start().await;
    let hub = hub_with_hostile(&receiver, &[]).await;
    // Unknown names, each answered with the list of every known transform: a small file
    // must not make an answer thousands of times its size.
    let defined: String = (0..2_000)
        .map(|n| format!("  t{n}: {{ plugin: hostile }}\n"))
        .collect();
    let unknown = ["nope"; 16].join(", ");
    let channels: String = (0..200)
        .map(|n| format!("  c{n}: {{ plugin: log, transform: [{unknown}] }}\n"))
        .collect();
    let yaml = format!(
        "transforms:\n{defined}channels:\n{channels}routes:\n  - {{ name: r, match: {{ kind: \"*\" }}, \
         to: [c0] }}\n"
    );
    let started = Instant::now();
    let answer = validate(&hub, &yaml).await;
    let took = started.elapsed();
    assert_eq!(answer.status, 422, "{}", clipped(&answer.to_string(), 2000));
    eprintln!(
        "a {} byte routes file drew a {} byte answer in {took:?}",
        yaml.len(),
        answer.body.len()
    );
    assert!(
        answer.body.len() < 1024 * 1024,
        "a {} byte routes file drew a {} byte 422 (in {took:?}): each unknown transform \
         name repeats the list of every known one; {}",
        yaml.len(),
        answer.body.len(),
        clipped(&answer.text(), 600)
    );

    // The hub is still fine.
    let id = hub
        .send(json!({"kind": "after.validate", "payload": {}}))
        .await;
    settled(&hub, &id, "delivered").await;
}
