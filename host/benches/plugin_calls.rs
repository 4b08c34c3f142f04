//! What a plugin call costs: a fresh instance per call, as in production.
//!
//! Run with `cargo bench -p switchyard --bench plugin_calls`.
//!
//! - `trivial_channel`: a channel that returns `delivered` at once, the floor for one
//!   fresh-instance call (store, instance from the pre-instantiated pool, call, teardown).
//! - `rest_json_1kib`: the built-in `rest-json` adapter parsing a 1 KiB notification.
//! - `webhook_delivery`: the built-in `webhook` channel delivering one signed notification
//!   to `switchyard bench`'s receiver on loopback, over a kept-alive connection. Client and
//!   receiver share the benchmark's one thread, so the time is everything one delivery costs
//!   on the machine, both ends of the HTTP exchange and the kernel's loopback included.
//! - `python_trivial_channel` and `js_trivial_channel`: `trivial_channel` written in
//!   Python (componentize-py) and JavaScript (componentize-js), from `tests/polyglot`.
//!   They are built by `tests/polyglot/{python,js}/build.sh DIR`, which `scripts/test.sh`
//!   runs into `~/.cache/switchyard/polyglot` (or `$SWITCHYARD_POLYGLOT_PLUGINS`); without
//!   them these two are skipped with a note. Each runs with 4, 16 and 64 MiB of a pool
//!   slot kept resident between calls (`RuntimeConfig::keep_resident_bytes`).
//! - `pick_transform`: the built-in `pick` transform dropping one field of a small payload.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchyard::bench::receiver::{Ledger, Receiver};
use switchyard::runtime::{
    Delivery, FetchPolicy, Grants, Notification, Outcome, Request, Runtime, RuntimeConfig,
    TransformContext, Transformed, Transport,
};

/// Where `scripts/test.sh` builds the Python and JavaScript test plugins.
fn polyglot_dir() -> std::path::PathBuf {
    match std::env::var_os("SWITCHYARD_POLYGLOT_PLUGINS") {
        Some(dir) => dir.into(),
        None => std::path::Path::new(&std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/switchyard/polyglot"),
    }
}

fn one_kib_notification() -> Vec<u8> {
    let mut body = serde_json::json!({
        "kind": "invoice.paid",
        "attributes": {"severity": "info", "region": "eu-west-1", "tenant": "acme"},
        "payload": {"invoice": 42, "amount": "129.90", "currency": "EUR", "note": ""},
        "idempotency_key": "invoice-42-paid"
    });
    let size = body.to_string().len();
    body["payload"]["note"] = "x".repeat(1024 - size).into();
    let bytes = serde_json::to_vec(&body).unwrap();
    assert_eq!(bytes.len(), 1024);
    bytes
}

fn plugin_calls(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        // The receiver listens on loopback.
        fetch: FetchPolicy {
            allow_loopback: true,
            ..FetchPolicy::default()
        },
        ..RuntimeConfig::default()
    })
    .unwrap();
    let grants = Arc::new(Grants::default());

    let trivial_path = std::path::Path::new(env!("SWITCHYARD_TEST_PLUGINS")).join("trivial.wasm");
    let trivial = tokio
        .block_on(runtime.load("trivial", &std::fs::read(trivial_path).unwrap()))
        .unwrap();
    let delivery = Delivery {
        notification: Notification {
            id: "ntf_bench".into(),
            kind: "bench.ping".into(),
            source: "bench".into(),
            attributes: Vec::new(),
            payload: "null".into(),
            created_at_ms: 0,
        },
        attempt: 1,
        channel: "bench".into(),
    };
    let mut group = c.benchmark_group("plugin_call");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("trivial_channel", |b| {
        b.to_async(&tokio)
            .iter(|| async { trivial.deliver(&grants, delivery.clone()).await.unwrap() })
    });

    // The interpreters under each setting of how much of a slot stays resident, side by
    // side in one run (`keep_resident_bytes`; the default is `KEEP_RESIDENT_BYTES`).
    for mib in [4, 16, 64] {
        let runtime = Runtime::new(RuntimeConfig {
            keep_resident_bytes: mib * 1024 * 1024,
            ..RuntimeConfig::default()
        })
        .unwrap();
        for (bench, file) in [
            ("python_trivial_channel", "py-trivial.wasm"),
            ("js_trivial_channel", "js-trivial.wasm"),
        ] {
            let path = polyglot_dir().join(file);
            let Ok(bytes) = std::fs::read(&path) else {
                eprintln!("{bench}: skipped, {} is not built", path.display());
                continue;
            };
            let plugin = tokio.block_on(runtime.load(bench, &bytes)).unwrap();
            group.bench_function(format!("{bench}/resident_{mib}mib"), |b| {
                b.to_async(&tokio)
                    .iter(|| async { plugin.deliver(&grants, delivery.clone()).await.unwrap() })
            });
        }
    }

    let pick = tokio.block_on(runtime.load_builtin("pick")).unwrap();
    let pick_grants = Arc::new(Grants {
        config: serde_json::json!({ "drop": ["email"] }),
        ..Grants::default()
    });
    let mut customer = delivery.notification.clone();
    customer.payload = r#"{"name":"Ada","email":"ada@example.com","plan":"pro"}"#.into();
    let context = TransformContext {
        route: "bench".into(),
        channel: "bench".into(),
        attempt: 1,
    };
    group.bench_function("pick_transform", |b| {
        b.to_async(&tokio).iter(|| async {
            let result = pick
                .transform(&pick_grants, customer.clone(), context.clone())
                .await
                .unwrap();
            assert!(matches!(result, Ok(Transformed::Keep(_))), "{result:?}");
        })
    });

    let rest_json = tokio.block_on(runtime.load_builtin("rest-json")).unwrap();
    let request = Request {
        transport: Transport::Http,
        method: "POST".into(),
        path: "/api/v1/notifications".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        query: String::new(),
        body: one_kib_notification(),
    };
    group.bench_function("rest_json_1kib", |b| {
        b.to_async(&tokio).iter(|| async {
            let drafts = rest_json
                .handle(&grants, request.clone())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(drafts.len(), 1);
        })
    });

    let key = [7u8; 32];
    let receiver = tokio
        .block_on(Receiver::start(Arc::new(Ledger::new(1, key.to_vec()))))
        .unwrap();
    let webhook = tokio.block_on(runtime.load_builtin("webhook")).unwrap();
    let webhook_grants = Arc::new(Grants {
        config: serde_json::json!({ "url": receiver.url() }),
        secrets: [(
            "signing_key".to_string(),
            format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(key)
            ),
        )]
        .into(),
        allowed_hosts: vec!["127.0.0.1".into()],
    });
    let mut signed = delivery.clone();
    // The receiver reads the sequence number from the payload; every call is number 0.
    signed.notification.payload = r#"{"seq":0,"pad":"0123456789abcdef"}"#.into();
    group.bench_function("webhook_delivery", |b| {
        b.to_async(&tokio).iter(|| async {
            let outcome = webhook
                .deliver(&webhook_grants, signed.clone())
                .await
                .unwrap();
            assert!(matches!(outcome, Outcome::Delivered(_)), "{outcome:?}");
        })
    });
    group.finish();
}

criterion_group!(benches, plugin_calls);
criterion_main!(benches);
