use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::runtime::World;

/// A fixed set of plugins, so messages listing them do not change when a built-in is added.
struct TestCatalog;

impl PluginCatalog for TestCatalog {
    fn world(&self, plugin: &str) -> Option<World> {
        match plugin {
            "rest-json" | "webhook-standard" => Some(World::Adapter),
            "log" | "sms-http" | "webhook" => Some(World::Channel),
            "pick" | "template" => Some(World::Transform),
            _ => None,
        }
    }

    fn names(&self, world: World) -> Vec<String> {
        let names: &[&str] = match world {
            World::Adapter => &["rest-json", "webhook-standard"],
            World::Channel => &["log", "sms-http", "webhook"],
            World::Transform => &["pick", "template"],
        };
        names.iter().map(|n| n.to_string()).collect()
    }
}

fn test_env(name: &str) -> Option<String> {
    match name {
        "SHOP_WEBHOOK_SECRET" => Some("whsec_c2hvcA==".into()),
        "OPS_SIGNING_KEY" => Some("whsec_b3Bz".into()),
        "SMS_TOKEN" => Some("sms-token".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<RouteTable, RoutesError> {
    RouteTable::parse(text, "routes.yaml", &test_env, &TestCatalog)
}

/// The problems as `(line, message)`, in file order.
fn problems(text: &str) -> Vec<(usize, String)> {
    let error = parse(text).expect_err("the file should be refused");
    error
        .problems()
        .iter()
        .map(|p| (p.line, p.message.clone()))
        .collect()
}

/// Asserts that the file is refused with exactly one problem per entry of `expected`, each
/// on the given line and containing the given text.
#[track_caller]
fn assert_problems(text: &str, expected: &[(usize, &str)]) {
    let found = problems(text);
    let matched = found.len() == expected.len()
        && found
            .iter()
            .zip(expected)
            .all(|((line, message), (want_line, want))| {
                line == want_line && message.contains(want)
            });
    assert!(matched, "expected {expected:#?}\nfound {found:#?}");
}

const DESIGN_EXAMPLE: &str = r#"
sources:                      # inbound webhook sources: /hooks/{name}
  shop:
    adapter: webhook-standard     # verifies Standard Webhooks signatures
    secret: ${SHOP_WEBHOOK_SECRET}
channels:
  ops-webhook:
    plugin: webhook               # signs with Standard Webhooks
    config: { url: "https://ops.example.com/hooks" }
    secrets: { signing_key: "${OPS_SIGNING_KEY}" }
    allowed_hosts: ["ops.example.com"]
    retry: { schedule: [5s, 5m, 30m, 2h, 5h, 10h, 10h] }
    rate_limit: 50/s
  oncall-sms:
    plugin: sms-http
    config: { endpoint: "https://sms.example.com/v1/messages", from: "+15550100" }
    secrets: { api_token: "${SMS_TOKEN}" }
    allowed_hosts: ["sms.example.com"]
    concurrency: 4
routes:
  - name: paging
    match: { kind: "incident.*", attributes: { severity: critical } }
    to: [ops-webhook, oncall-sms]
  - name: everything-else
    match: { kind: "*" }
    to: [ops-webhook]
"#;

#[test]
fn the_design_example_parses() {
    let table = parse(DESIGN_EXAMPLE).unwrap();
    assert!(table.warnings().is_empty(), "{:?}", table.warnings());
    assert_eq!(table.text(), DESIGN_EXAMPLE);
    assert_eq!(
        table.summary(),
        "routes.yaml: 1 source, 2 channels, 2 routes — OK"
    );

    let shop = table.source("shop").unwrap();
    assert_eq!(shop.adapter, "webhook-standard");
    assert_eq!(shop.config, json!({}));
    assert_eq!(shop.secrets["secret"], "whsec_c2hvcA==");

    let ops = table.channel("ops-webhook").unwrap();
    assert_eq!(ops.plugin, "webhook");
    assert_eq!(ops.config, json!({"url": "https://ops.example.com/hooks"}));
    assert_eq!(
        ops.secrets["signing_key"],
        SecretSource::Given("whsec_b3Bz".into())
    );
    assert_eq!(ops.allowed_hosts, ["ops.example.com"]);
    assert_eq!(ops.retry_schedule, DEFAULT_RETRY_SCHEDULE);
    assert_eq!(
        ops.rate_limit,
        Some(RateLimit {
            count: 50,
            per: Duration::from_secs(1)
        })
    );
    assert_eq!(ops.concurrency, None);

    let sms = table.channel("oncall-sms").unwrap();
    assert_eq!(
        sms.config,
        json!({"endpoint": "https://sms.example.com/v1/messages", "from": "+15550100"})
    );
    assert_eq!(sms.concurrency, Some(4));
    // No `retry`: the default schedule, 8 attempts in all.
    assert_eq!(sms.retry_schedule.len() + 1, 8);

    let names: Vec<&str> = table.channels().map(|(name, _)| name).collect();
    assert_eq!(names, ["oncall-sms", "ops-webhook"]);
    let routes: Vec<&str> = table.routes().iter().map(|r| &*r.name).collect();
    assert_eq!(routes, ["paging", "everything-else"]);
    assert_eq!(table.routes()[0].matcher.kind.as_str(), "incident.*");
}

#[test]
fn the_sample_parses_with_the_builtin_plugins() {
    let table = RouteTable::parse(SAMPLE, "sample.yaml", &|_| None, &BuiltinCatalog).unwrap();
    assert!(table.warnings().is_empty(), "{:?}", table.warnings());
    assert_eq!(table.channel("log").unwrap().plugin, "log");
    let targets = table.targets("anything.at.all", &[] as &[(&str, &str)]);
    assert_eq!(
        targets,
        [Target {
            route: "everything".into(),
            channel: "log".into()
        }]
    );
}

#[test]
fn the_commented_webhook_in_the_sample_is_valid_when_uncommented() {
    // A new user's first edit is to uncomment it; it must work as written.
    let mut in_example = false;
    let uncommented: String = SAMPLE
        .lines()
        .map(|line| {
            in_example = line == "  # ops-webhook:" || (in_example && line.starts_with("  #"));
            match line.strip_prefix("  #").filter(|_| in_example) {
                Some(rest) => format!("  {}\n", rest.strip_prefix(' ').unwrap_or(rest)),
                None => format!("{line}\n"),
            }
        })
        .collect();
    assert!(uncommented.contains("\n  ops-webhook:\n"));
    let uncommented = uncommented.replace("to: [log]", "to: [log, ops-webhook]");
    let table = RouteTable::parse(&uncommented, "sample.yaml", &test_env, &BuiltinCatalog)
        .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    let ops = table.channel("ops-webhook").expect("the example channel");
    assert_eq!(
        ops.secrets["signing_key"],
        SecretSource::Given("whsec_b3Bz".into())
    );
    assert_eq!(ops.concurrency, Some(16));
}

#[test]
fn the_commented_transform_in_the_sample_is_valid_when_uncommented() {
    let mut in_example = false;
    let uncommented: String = SAMPLE
        .lines()
        .map(|line| {
            in_example = line == "# transforms:" || (in_example && line.starts_with("#   "));
            match line.strip_prefix("# ").filter(|_| in_example) {
                Some(rest) => format!("{rest}\n"),
                None => format!("{line}\n"),
            }
        })
        .collect();
    assert!(uncommented.contains("\ntransforms:\n  redact-pii:\n"));
    let uncommented = uncommented.replace("to: [log]", "to: [log]\n    transform: [redact-pii]");
    let table = RouteTable::parse(&uncommented, "sample.yaml", &test_env, &BuiltinCatalog)
        .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    let (_, chain) = table.transforms_for("any.kind", &[] as &[(&str, &str)], "log");
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].1.plugin, "pick");
}

#[test]
fn empty_files_are_empty_tables() {
    for text in [
        "",
        "# only a comment\n",
        "---\n",
        "sources:\nchannels:\nroutes:\n",
    ] {
        let table = parse(text).unwrap();
        assert_eq!(table.routes().len(), 0);
        assert_eq!(table.channels().count(), 0);
        assert!(table.targets("x", &[] as &[(String, String)]).is_empty());
    }
    let table = parse("routes: []\n").unwrap();
    assert!(table.warnings()[0].contains("there are no routes"));
}

#[test]
fn unknown_fields_are_refused_everywhere() {
    assert_problems(
        "sources:\n  shop:\n    adapter: rest-json\n    adaptor: x\nchannels:\n  log:\n    plugin: log\n    retries: 3\n    retry: { schedule: [], max: 2 }\nroutes:\n  - name: a\n    match: { knd: x }\n    to: [log]\n    priority: 1\nrouting: []\n",
        &[
            (
                4,
                "unknown field `adaptor`, expected one of `adapter`, `config`",
            ),
            (8, "unknown field `retries`"),
            (9, "unknown field `max`, expected `schedule`"),
            (
                12,
                "unknown field `knd`, expected one of `kind`, `attributes`",
            ),
            (14, "unknown field `priority`"),
            (
                15,
                "unknown field `routing`, expected one of `sources`, `transforms`, `channels`, `routes`",
            ),
        ],
    );
}

#[test]
fn names_are_checked() {
    assert_problems(
        "sources:\n  Shop:\n    adapter: rest-json\nchannels:\n  ops webhook:\n    plugin: log\n  _log:\n    plugin: log\nroutes:\n  - name: Paging!\n    match: {}\n    to: [_log]\n",
        &[
            (2, "source name `Shop` is not allowed"),
            (5, "channel name `ops webhook` is not allowed"),
            (7, "channel name `_log` is not allowed"),
            (10, "route name `Paging!` is not allowed"),
            // `_log` was refused as a name, so it is not a channel either.
            (12, "unknown channel `_log`"),
        ],
    );
    let long = "a".repeat(65);
    assert_problems(
        &format!("channels:\n  {long}:\n    plugin: log\n"),
        &[(2, "is not allowed")],
    );
    assert!(
        parse(&format!(
            "channels:\n  {}:\n    plugin: log\nroutes:\n  - {{name: r, match: {{}}, to: [{0}]}}\n",
            "a".repeat(64)
        ))
        .is_ok()
    );
}

#[test]
fn route_names_are_unique_and_routes_are_complete() {
    assert_problems(
        "channels:\n  log: { plugin: log }\nroutes:\n  - name: a\n    match: {}\n    to: [log]\n  - name: a\n    match: {}\n    to: [log]\n  - name: b\n    to: [log]\n  - match: {}\n    to: [log]\n  - name: c\n    match: {}\n    to: []\n",
        &[
            (7, "route name `a` is already used at line 4"),
            (10, "route `b` needs `match`"),
            (12, "route 4 needs `name`"),
            (16, "route `c` sends nowhere"),
        ],
    );
}

#[test]
fn unknown_channels_are_named_with_the_known_ones() {
    let error = parse(
        "channels:\n  ops-webhook: { plugin: webhook }\n  oncall-sms: { plugin: sms-http }\nroutes:\n  - name: paging\n    match: {}\n    to: [ops-webhook, opsx]\n",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "routes.yaml:7:23: route `paging` sends to unknown channel `opsx`; channels: ops-webhook, oncall-sms"
    );
    assert_eq!(
        error.problems(),
        [Problem {
            line: 7,
            column: 23,
            message:
                "route `paging` sends to unknown channel `opsx`; channels: ops-webhook, oncall-sms"
                    .into()
        }]
    );
    assert_problems(
        "routes:\n  - name: a\n    match: {}\n    to: [log]\n",
        &[(4, "unknown channel `log`; no channels are defined")],
    );
}

#[test]
fn plugins_must_be_installed_and_of_the_right_world() {
    assert_problems(
        "sources:\n  a:\n    adapter: log\n  b:\n    adapter: nope\n  c: {}\nchannels:\n  x:\n    plugin: rest-json\n  y:\n    plugin: foo\nroutes:\n  - {name: r, match: {}, to: [x, y]}\n",
        &[
            (
                3,
                "`log` is a channel, not an adapter; installed adapters: rest-json, webhook-standard",
            ),
            (
                5,
                "plugin `nope` is not installed; installed adapters: rest-json, webhook-standard",
            ),
            (6, "source `c` needs `adapter`"),
            (
                9,
                "`rest-json` is an adapter, not a channel; installed channels: log, sms-http, webhook",
            ),
            (
                11,
                "plugin `foo` is not installed; installed channels: log, sms-http, webhook",
            ),
        ],
    );
}

#[test]
fn channel_settings_are_checked() {
    assert_problems(
        "channels:\n  a:\n    plugin: log\n    rate_limit: 0/s\n    concurrency: 0\n    config: [1, 2]\n  b:\n    plugin: log\n    rate_limit: 50 per second\n    concurrency: many\n    retry: { schedule: [5s, soon, 0, 100ms] }\n  c:\n    plugin: log\n    rate_limit: 10/d\n    allowed_hosts: [\"https://ops.example.com\", \"ops.example.com:443\", \"*\", \"*.example.com\", \"10.0.0.1\", \"[::1]\", \"API.Example.com\", \"bad_host\"]\n    config: text\nroutes:\n  - {name: r, match: {}, to: [a, b, c]}\n",
        &[
            (4, "invalid rate_limit `0/s`"),
            (
                5,
                "`concurrency` must be a whole number of at least 1, found 0",
            ),
            (6, "`config` must be a mapping, found a list"),
            (
                9,
                "invalid rate_limit `50 per second`: write N/s, N/m or N/h",
            ),
            (10, "found many"),
            (11, "invalid duration \"soon\""),
            (14, "invalid rate_limit `10/d`"),
            (15, "`https://ops.example.com` is not a host name"),
            (15, "`ops.example.com:443` is not a host name"),
            (15, "`*` would allow every host"),
            (15, "`bad_host` is not a host name"),
            (16, "`config` must be a mapping, found a string"),
        ],
    );
}

#[test]
fn channel_settings_are_read() {
    let table = parse(
        "channels:\n  a:\n    plugin: log\n    rate_limit: 3000/m\n    retry: { schedule: [] }\n    allowed_hosts: [\"*.Example.com\", \"10.0.0.1\", \"[::1]\"]\n    config: { nested: { list: [1, two, true] } }\n  b:\n    plugin: log\n    rate_limit: 10/h\n    retry: { schedule: [0, 100ms, 5s] }\nroutes:\n  - {name: r, match: {}, to: [a, b]}\n",
    )
    .unwrap();
    let a = table.channel("a").unwrap();
    assert_eq!(a.retry_schedule, [] as [Duration; 0], "one attempt only");
    assert_eq!(a.rate_limit.unwrap().to_string(), "3000/m");
    assert_eq!(a.rate_limit.unwrap().per, Duration::from_secs(60));
    assert_eq!(a.allowed_hosts, ["*.example.com", "10.0.0.1", "[::1]"]);
    assert_eq!(a.config, json!({"nested": {"list": [1, "two", true]}}));
    let b = table.channel("b").unwrap();
    assert_eq!(
        b.retry_schedule,
        [
            Duration::ZERO,
            Duration::from_millis(100),
            Duration::from_secs(5)
        ]
    );
    assert_eq!(b.rate_limit.unwrap().per, Duration::from_secs(3600));
}

#[test]
fn secret_mistakes_are_reported() {
    assert_problems(
        "channels:\n  a:\n    plugin: webhook\n    secrets: 3\n  b:\n    plugin: webhook\n    secrets: { signing_key: \"${NOT_SET}\" }\n  c:\n    plugin: webhook\n    secrets: { signing_key: \"${NOT_SET:-}\" }\nsources:\n  s:\n    adapter: webhook-standard\n    secret: x\n    secrets: { secret: y }\nroutes:\n  - {name: r, match: {}, to: [a, b, c]}\n",
        &[
            (
                4,
                "or list the names of secrets kept in the vault, found a number",
            ),
            (7, "environment variable `NOT_SET` is not set"),
            (10, "secret `signing_key` is empty"),
            (14, "`secret` is also given under `secrets`"),
        ],
    );
}

#[test]
fn listed_secrets_come_from_the_vault() {
    let table = parse(
        "channels:\n  ops:\n    plugin: webhook\n    secrets: [signing_key, api.token]\n  env:\n    plugin: webhook\n    secrets: { signing_key: \"${OPS_SIGNING_KEY}\" }\n  none:\n    plugin: log\n    secrets: []\nroutes:\n  - {name: r, match: {}, to: [ops, env, none]}\n",
    )
    .unwrap();
    let ops = table.channel("ops").unwrap();
    assert_eq!(ops.secrets["signing_key"], SecretSource::Vault);
    assert_eq!(
        ops.vault_secrets().collect::<Vec<_>>(),
        ["api.token", "signing_key"]
    );
    let env = table.channel("env").unwrap();
    assert_eq!(env.vault_secrets().count(), 0);
    assert!(table.channel("none").unwrap().secrets.is_empty());
    let json = serde_json::to_value(&table).unwrap();
    assert_eq!(
        json["channels"]["ops"]["secrets"],
        json!(["api.token", "signing_key"])
    );
}

#[test]
fn vault_secret_names_are_checked() {
    assert_problems(
        "channels:\n  a:\n    plugin: webhook\n    secrets: [signing_key, \"a/b\", {x: 1}, signing_key]\nsources:\n  s:\n    adapter: webhook-standard\n    secrets: [secret]\nroutes:\n  - {name: r, match: {}, to: [a]}\n",
        &[
            (4, "a secret name must be letters, digits"),
            (4, "expected a secret name, found a mapping"),
            (4, "secret `signing_key` is listed twice"),
            (
                8,
                "the vault keeps channel secrets only): write `secrets: { secret: \"${ENV_VAR}\" }`",
            ),
        ],
    );
}

#[test]
fn interpolation_reaches_every_value() {
    let table = parse(
        "channels:\n  a:\n    plugin: webhook\n    config:\n      url: \"https://${HOST:-ops.example.com}/hooks\"\n      team: $${literal}\n    allowed_hosts: [\"${HOST:-ops.example.com}\"]\n    secrets:\n      signing_key: ${OPS_SIGNING_KEY}\nroutes:\n  - {name: r, match: {}, to: [a]}\n",
    )
    .unwrap();
    let a = table.channel("a").unwrap();
    assert_eq!(
        a.config,
        json!({"url": "https://ops.example.com/hooks", "team": "${literal}"})
    );
    assert_eq!(a.allowed_hosts, ["ops.example.com"]);
    assert_eq!(
        a.secrets["signing_key"],
        SecretSource::Given("whsec_b3Bz".into())
    );
    // The raw text keeps the references, so GET /routes never shows the values.
    assert!(table.text().contains("${OPS_SIGNING_KEY}"));
}

#[test]
fn match_settings_are_checked() {
    assert_problems(
        "channels:\n  log: { plugin: log }\nroutes:\n  - name: a\n    match: { kind: \"incident.[ab]\" }\n    to: [log]\n  - name: b\n    match: { kind: \"\", attributes: { severity: [] } }\n    to: [log]\n  - name: c\n    match: { attributes: [severity] }\n    to: [log]\n  - name: d\n    match: { attributes: { severity: } }\n    to: log\n",
        &[
            (5, "`[` is not supported"),
            (8, "kind pattern is empty"),
            (8, "attribute `severity` needs a value or a non-empty list"),
            (11, "`attributes` must map attribute names"),
            (14, "attribute `severity` needs a value"),
        ],
    );
}

#[test]
fn yaml_syntax_errors_carry_a_line() {
    let found = problems("channels:\n  log:\n    plugin: log\n  bad: [\nroutes: []\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].1.starts_with("YAML syntax error"), "{found:?}");
    assert!(found[0].0 >= 4, "{found:?}");
    assert_problems(
        "channels:\n  log: { plugin: log }\n  log: { plugin: log }\n",
        &[(3, "duplicate key `log` (first at line 2)")],
    );
    assert_problems(
        "- just\n- a list\n",
        &[(1, "the routes file must be a mapping")],
    );
}

const MATCHING: &str = r#"
channels:
  ops: { plugin: webhook }
  sms: { plugin: sms-http }
  audit: { plugin: log }
routes:
  - name: paging
    match: { kind: "incident.*", attributes: { severity: [critical, high], team: ops } }
    to: [ops, sms]
  - name: versioned
    match: { kind: "order.v?.created" }
    to: [sms]
  - name: everything
    match: { kind: "*" }
    to: [audit, ops]
"#;

fn channels(table: &RouteTable, kind: &str, attributes: &[(&str, &str)]) -> Vec<String> {
    table
        .targets(kind, attributes)
        .iter()
        .map(|t| format!("{}:{}", t.route, t.channel))
        .collect()
}

#[test]
fn matching_by_kind_glob_and_any_of_attributes() {
    let table = parse(MATCHING).unwrap();
    let critical = [("severity", "critical"), ("team", "ops")];
    let high = [("team", "ops"), ("severity", "high")];
    let low = [("severity", "low"), ("team", "ops")];
    let no_team = [("severity", "critical")];

    assert_eq!(
        channels(&table, "incident.db.down", &critical),
        ["paging:ops", "paging:sms", "everything:audit"]
    );
    assert_eq!(
        channels(&table, "incident.opened", &high),
        ["paging:ops", "paging:sms", "everything:audit"]
    );
    assert_eq!(
        channels(&table, "incident.opened", &low),
        ["everything:audit", "everything:ops"]
    );
    assert_eq!(
        channels(&table, "incident.opened", &no_team),
        ["everything:audit", "everything:ops"]
    );
    assert_eq!(
        channels(&table, "incidents", &critical),
        ["everything:audit", "everything:ops"]
    );
    assert_eq!(
        channels(&table, "order.v2.created", &[]),
        ["versioned:sms", "everything:audit", "everything:ops"]
    );
    assert_eq!(
        channels(&table, "order.v10.created", &[]),
        ["everything:audit", "everything:ops"]
    );
}

#[test]
fn fan_out_sends_once_per_channel_credited_to_the_first_route() {
    let table = parse(MATCHING).unwrap();
    let targets = table.targets("incident.x", &[("severity", "critical"), ("team", "ops")]);
    assert_eq!(targets.len(), 3);
    assert_eq!(
        targets[0],
        Target {
            route: "paging".into(),
            channel: "ops".into()
        }
    );
    let table =
        parse("channels:\n  a: { plugin: log }\nroutes:\n  - {name: r, match: {}, to: [a, a]}\n")
            .unwrap();
    assert_eq!(table.routes()[0].to.len(), 1);
    assert!(table.warnings()[0].contains("lists channel `a` twice"));
}

#[test]
fn unused_channels_are_warnings() {
    let table = parse(
        "channels:\n  used: { plugin: log }\n  spare: { plugin: log }\nroutes:\n  - {name: r, match: {}, to: [used]}\n",
    )
    .unwrap();
    assert_eq!(
        table.warnings(),
        ["routes.yaml:3:3: channel `spare` is not used by any route"]
    );
}

#[test]
fn serialized_specs_name_secrets_but_never_show_them() {
    let table = parse(DESIGN_EXAMPLE).unwrap();
    let json = serde_json::to_value(&table).unwrap();
    assert_eq!(
        json["channels"]["ops-webhook"],
        json!({
            "plugin": "webhook",
            "config": {"url": "https://ops.example.com/hooks"},
            "secrets": ["signing_key"],
            "allowed_hosts": ["ops.example.com"],
            "retry_schedule": ["5s", "5m", "30m", "2h", "5h", "10h", "10h"],
            "rate_limit": "50/s",
            "concurrency": null,
            "transform": []
        })
    );
    assert_eq!(json["sources"]["shop"]["secrets"], json!(["secret"]));
    assert_eq!(
        json["routes"][0],
        json!({
            "name": "paging",
            "match": {"kind": "incident.*", "attributes": {"severity": ["critical"]}},
            "to": ["ops-webhook", "oncall-sms"],
            "transform": []
        })
    );
    let text = json.to_string();
    assert!(!text.contains("whsec_"), "{text}");
    assert!(!text.contains("sms-token"), "{text}");
}

#[test]
fn all_problems_are_reported_at_once_in_file_order() {
    let error = parse(
        "channels:\n  a:\n    plugin: nope\n    rate_limit: fast\nroutes:\n  - name: r\n    match: { kind: \"[\" }\n    to: [b]\n",
    )
    .unwrap_err();
    let lines: Vec<usize> = error.problems().iter().map(|p| p.line).collect();
    assert_eq!(lines, [3, 4, 7, 8]);
    assert_eq!(error.to_string().lines().count(), 4);
    assert!(
        error
            .to_string()
            .starts_with("routes.yaml:3:13: plugin `nope`")
    );
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

const ONE_ROUTE: &str =
    "channels:\n  log: { plugin: log }\nroutes:\n  - {name: first, match: {}, to: [log]}\n";
const OTHER_ROUTE: &str =
    "channels:\n  log: { plugin: log }\nroutes:\n  - {name: second, match: {}, to: [log]}\n";
const BROKEN: &str =
    "channels:\n  log: { plugin: lgo }\nroutes:\n  - {name: third, match: {}, to: [log]}\n";

fn route_name(table: &RouteTable) -> String {
    table.routes()[0].name.to_string()
}

#[test]
fn check_file_summarizes_or_explains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    write(
        &path,
        "channels:\n  log: { plugin: log }\n  spare: { plugin: log }\nroutes:\n  - {name: r, match: {}, to: [log]}\n",
    );
    let report = check_file_with(&path, &TestCatalog).unwrap();
    let origin = path.display();
    assert_eq!(
        report,
        format!(
            "{origin}: 0 sources, 2 channels, 1 route — OK\nwarning: {origin}:3:3: channel `spare` is not used by any route"
        )
    );
    write(&path, BROKEN);
    let error = check_file_with(&path, &TestCatalog).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("{origin}:2:18: plugin `lgo` is not installed")),
        "{error}"
    );
    let missing = dir.path().join("missing.yaml");
    let error = check_file_with(&missing, &TestCatalog).unwrap_err();
    assert_eq!(error.problems()[0].line, 0);
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}: cannot read", missing.display()))
    );
}

#[test]
fn reload_keeps_the_old_table_when_the_file_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    write(&path, ONE_ROUTE);
    let live = LiveRoutes::open(&path, Arc::new(TestCatalog)).unwrap();
    let mut changes = live.subscribe();
    assert_eq!(route_name(&live.current()), "first");

    write(&path, BROKEN);
    let error = live.reload().unwrap_err();
    assert!(error.to_string().contains("plugin `lgo` is not installed"));
    assert_eq!(route_name(&live.current()), "first");
    assert!(!changes.has_changed().unwrap());

    std::fs::remove_file(&path).unwrap();
    assert!(live.reload().is_err());
    assert_eq!(route_name(&live.current()), "first");

    write(&path, OTHER_ROUTE);
    let table = live.reload().unwrap();
    assert_eq!(route_name(&table), "second");
    assert_eq!(route_name(&live.current()), "second");
    assert!(changes.has_changed().unwrap());
    assert_eq!(route_name(&changes.borrow_and_update()), "second");
}

#[test]
fn replace_checks_then_writes_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    write(&path, ONE_ROUTE);
    let live = LiveRoutes::open(&path, Arc::new(TestCatalog)).unwrap();

    let error = live.replace(BROKEN).unwrap_err();
    assert_eq!(error.problems()[0].line, 2);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), ONE_ROUTE);
    assert_eq!(route_name(&live.current()), "first");

    let table = live.replace(OTHER_ROUTE).unwrap();
    assert_eq!(route_name(&table), "second");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), OTHER_ROUTE);
    assert_eq!(route_name(&live.current()), "second");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["routes.yaml"],
        "no temporary file is left behind"
    );
}

#[test]
fn open_refuses_a_bad_or_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    assert!(LiveRoutes::open(&path, Arc::new(TestCatalog)).is_err());
    write(&path, BROKEN);
    assert!(LiveRoutes::open(&path, Arc::new(TestCatalog)).is_err());
}

#[tokio::test]
async fn the_watcher_follows_the_file_and_skips_bad_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    write(&path, ONE_ROUTE);
    let live = Arc::new(
        LiveRoutes::open(&path, Arc::new(TestCatalog))
            .unwrap()
            .poll_every(Duration::from_millis(20)),
    );
    let mut changes = live.subscribe();
    let watcher = live.clone().watch();

    write(&path, BROKEN);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(route_name(&live.current()), "first");

    write(&path, OTHER_ROUTE);
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("the watcher reloads within the timeout")
        .unwrap();
    assert_eq!(route_name(&changes.borrow_and_update()), "second");
    assert_eq!(route_name(&live.current()), "second");
    watcher.abort();
}

/// Every variable's value holds `CANARY`, so a message or a serialized table that shows
/// one is caught by a substring search.
fn canary_env(name: &str) -> Option<String> {
    match name {
        "C_NUMBER" => Some("not-a-number-CANARY".into()),
        "C_HOST" => Some("https://host.example.com/CANARY".into()),
        "C_PLUGIN" => Some("plugin-CANARY".into()),
        "C_RATE" => Some("fast-CANARY".into()),
        "C_DELAY" => Some("5 parsecs CANARY".into()),
        "C_KIND" => Some("kind with space CANARY".into()),
        "C_CHANNEL" => Some("channel-canary".into()),
        "C_NAME" => Some("Route CANARY".into()),
        "C_URL" => Some("https://hooks.example.com/services/CANARY".into()),
        "C_TOKEN" => Some("token-CANARY".into()),
        "C_GOOD_HOST" => Some("canary.example.com".into()),
        "C_ROUTE" => Some("canary-route".into()),
        _ => None,
    }
}

/// A file with a mistake in every field a variable can feed.
const EVERY_FIELD_FROM_ENV: &str = "channels:
  a:
    plugin: ${C_PLUGIN}
    concurrency: ${C_NUMBER}
    allowed_hosts: [\"${C_HOST}\"]
    rate_limit: ${C_RATE}
    retry: { schedule: [\"${C_DELAY}\"] }
    secrets: [ok, \"${C_TOKEN}\", \"${C_TOKEN}\"]
routes:
  - name: ${C_NAME}
    match: { kind: \"${C_KIND}\" }
    to: [a, \"${C_CHANNEL}\"]
  - name: ok
    match: {}
    to: [a, a, \"${MISSING_VARIABLE}\"]
";

#[test]
fn problems_quote_variables_as_written_never_their_values() {
    let error = RouteTable::parse(
        EVERY_FIELD_FROM_ENV,
        "routes.yaml",
        &canary_env,
        &TestCatalog,
    )
    .expect_err("every field is wrong");
    let text = error.to_string();
    assert!(!text.to_ascii_uppercase().contains("CANARY"), "{text}");
    for written in [
        "${C_PLUGIN}",
        "${C_NUMBER}",
        "${C_HOST}",
        "${C_RATE}",
        "${C_DELAY}",
        "${C_KIND}",
        "${C_CHANNEL}",
        "${C_NAME}",
        "${C_TOKEN}",
        "MISSING_VARIABLE",
    ] {
        assert!(text.contains(written), "{written} is not quoted:\n{text}");
    }
}

#[test]
fn a_submitted_file_is_checked_without_reading_values() {
    let is_set = |name: &str| canary_env(name).is_some();
    let error =
        RouteTable::check_submitted(EVERY_FIELD_FROM_ENV, "request body", &is_set, &TestCatalog)
            .expect_err("a variable is unset and a channel is listed twice");
    let problems: Vec<&str> = error
        .problems()
        .iter()
        .map(|p| p.message.as_str())
        .collect();
    // Only what can be judged without a value: the unset variable, by name.
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("`MISSING_VARIABLE` is not set"),
        "{problems:?}"
    );

    // A file whose variables are all set passes, whatever their values, and its warnings
    // judge nothing a variable feeds.
    let fine = EVERY_FIELD_FROM_ENV.replace("\"${MISSING_VARIABLE}\"", "a");
    let table = RouteTable::check_submitted(&fine, "request body", &is_set, &TestCatalog).unwrap();
    let shown = format!(
        "{:?} {}",
        table.warnings(),
        serde_json::to_value(&table).unwrap()
    );
    assert!(!shown.to_ascii_uppercase().contains("CANARY"), "{shown}");
    // The same file, loaded with the values, is refused: loading judges them.
    assert!(RouteTable::parse(&fine, "routes.yaml", &canary_env, &TestCatalog).is_err());
}

#[test]
fn a_table_serializes_as_written() {
    let text = "sources:
  shop:
    adapter: webhook-standard
    secret: ${C_TOKEN}
    config: { tolerance: 5m, note: \"${C_TOKEN}\" }
channels:
  a:
    plugin: webhook
    config: { url: \"${C_URL}\", headers: { x-token: \"Bearer ${C_TOKEN}\" }, plain: 1 }
    secrets: { signing_key: \"${C_TOKEN}\" }
    allowed_hosts: [\"${C_GOOD_HOST}\", literal.example.com]
  b:
    plugin: log
    secrets: [\"${C_TOKEN}\"]
routes:
  - name: ${C_ROUTE}
    match: { kind: \"*\" }
    to: [a, b]
";
    let table = RouteTable::parse(text, "routes.yaml", &canary_env, &TestCatalog).unwrap();
    // The plugins get the values.
    let a = table.channel("a").unwrap();
    assert_eq!(a.config["url"], "https://hooks.example.com/services/CANARY");
    assert_eq!(a.allowed_hosts[0], "canary.example.com");
    assert_eq!(&*table.routes()[0].name, "canary-route");
    // What is shown has the references.
    let json = serde_json::to_value(&table).unwrap();
    assert!(
        !json.to_string().to_ascii_uppercase().contains("CANARY"),
        "{json:#}"
    );
    assert_eq!(
        json["channels"]["a"]["config"],
        json!({"url": "${C_URL}", "headers": {"x-token": "Bearer ${C_TOKEN}"}, "plain": 1})
    );
    assert_eq!(
        json["channels"]["a"]["allowed_hosts"],
        json!(["${C_GOOD_HOST}", "literal.example.com"])
    );
    assert_eq!(json["channels"]["a"]["secrets"], json!(["signing_key"]));
    assert_eq!(json["channels"]["b"]["secrets"], json!(["${C_TOKEN}"]));
    assert_eq!(json["sources"]["shop"]["secrets"], json!(["secret"]));
    assert_eq!(json["sources"]["shop"]["config"]["note"], "${C_TOKEN}");
    assert_eq!(json["routes"][0]["name"], "${C_ROUTE}");
    assert_eq!(json["routes"][0]["to"], json!(["a", "b"]));
    // Fields without variables keep their typed form.
    assert_eq!(json["channels"]["a"]["plugin"], "webhook");
    assert_eq!(json["channels"]["a"]["retry_schedule"][0], "5s");
}

const TRANSFORMS: &str = r#"
transforms:
  redact-pii:
    plugin: pick
    config: { drop: [email] }
  to-text:
    plugin: template
    config: { template: { text: "{{kind}}" } }
channels:
  ops:
    plugin: webhook
    config: { url: "https://ops.example.com/hooks" }
    transform: [to-text]
  audit:
    plugin: log
routes:
  - name: incidents
    match: { kind: "incident.*" }
    to: [ops, audit]
    transform: [redact-pii]
  - name: everything
    match: { kind: "*" }
    to: [ops]
    transform: pick
"#;

#[test]
fn transforms_run_the_routes_then_the_channels() {
    let table = parse(TRANSFORMS).unwrap();
    let names = |kind: &str, channel: &str| {
        let (route, chain) = table.transforms_for(kind, &[] as &[(&str, &str)], channel);
        let names: Vec<String> = chain.iter().map(|(name, _)| name.to_string()).collect();
        (route.map(|r| r.name.to_string()), names)
    };
    // The first matching route that names the channel is the one whose transforms run.
    assert_eq!(
        names("incident.opened", "ops"),
        (
            Some("incidents".into()),
            vec!["redact-pii".into(), "to-text".into()]
        )
    );
    assert_eq!(
        names("incident.opened", "audit"),
        (Some("incidents".into()), vec!["redact-pii".into()])
    );
    // A plugin named directly runs with an empty config.
    assert_eq!(
        names("order.paid", "ops"),
        (
            Some("everything".into()),
            vec!["pick".into(), "to-text".into()]
        )
    );
    let (_, chain) = table.transforms_for("order.paid", &[] as &[(&str, &str)], "ops");
    assert_eq!(chain[0].1.plugin, "pick");
    assert_eq!(chain[0].1.config, json!({}));
    assert_eq!(
        chain[1].1.grants.config,
        json!({ "template": { "text": "{{kind}}" } })
    );
    assert!(table.has_transforms());
    assert!(
        table.summary().contains("3 transforms"),
        "{}",
        table.summary()
    );
    let shown = serde_json::to_value(&table).unwrap();
    assert_eq!(shown["routes"][0]["transform"], json!(["redact-pii"]));
    assert_eq!(shown["channels"]["ops"]["transform"], json!(["to-text"]));
    assert_eq!(shown["transforms"]["redact-pii"]["plugin"], json!("pick"));
}

#[test]
fn a_table_without_transforms_says_so() {
    let table = parse(DESIGN_EXAMPLE).unwrap();
    assert!(!table.has_transforms());
}

#[test]
fn transform_mistakes_are_named_with_their_line() {
    assert_problems(
        r#"
transforms:
  bad:
    plugin: webhook
  worse:
    config: {}
channels:
  ops: { plugin: log, transform: [nope] }
routes:
  - name: all
    match: {}
    to: [ops]
    transform: [log]
"#,
        &[
            (4, "`webhook` is a channel, not a transform"),
            (6, "transform `worse` needs `plugin`"),
            (8, "names unknown transform `nope`"),
            (13, "names unknown transform `log`"),
        ],
    );
    let many = format!(
        "channels:\n  ops: {{ plugin: log, transform: [{}] }}\nroutes:\n  - {{ name: a, match: {{}}, to: [ops] }}\n",
        vec!["pick"; MAX_TRANSFORMS + 1].join(", ")
    );
    assert_problems(&many, &[(2, "at most 16 may run in a row")]);
}
