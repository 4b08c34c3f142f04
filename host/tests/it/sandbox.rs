//! Hostile plugins are contained: each failure stays in its own call, and the next call is
//! served normally.

use std::time::Duration;

use serde_json::json;
use switchyard::runtime::{CallError, FetchPolicy, Outcome, Plugin, Runtime, RuntimeConfig};

use crate::support::*;

async fn hostile(runtime: &Runtime) -> Plugin {
    runtime
        .load("hostile", &test_plugin("hostile"))
        .await
        .expect("the hostile plugin is a valid channel")
}

/// After any failure, the same plugin still delivers.
async fn still_serves(plugin: &Plugin) {
    let outcome = plugin
        .deliver(
            &grants(json!({"mode": "ok"}), &[], &[]),
            delivery("t.ok", json!(null)),
        )
        .await
        .expect("a well-behaved call succeeds");
    assert!(matches!(outcome, Outcome::Delivered(_)), "{outcome:?}");
}

async fn misbehave(plugin: &Plugin, mode: &str) -> Result<Outcome, CallError> {
    plugin
        .deliver(
            &grants(json!({"mode": mode}), &[], &[]),
            delivery("t.bad", json!(null)),
        )
        .await
}

#[tokio::test]
async fn an_endless_loop_hits_the_cpu_deadline() {
    let runtime = Runtime::new(RuntimeConfig {
        cpu_deadline: Duration::from_millis(50),
        ..config()
    })
    .unwrap();
    let plugin = hostile(&runtime).await;
    let error = misbehave(&plugin, "loop").await.unwrap_err();
    assert!(matches!(error, CallError::CpuDeadline { .. }), "{error}");
    assert!(error.to_string().contains("CPU deadline"), "{error}");
    still_serves(&plugin).await;
}

#[tokio::test]
async fn a_memory_bomb_traps_at_the_cap() {
    let runtime = Runtime::new(RuntimeConfig {
        memory_limit_bytes: 16 * 1024 * 1024,
        ..config()
    })
    .unwrap();
    let plugin = hostile(&runtime).await;
    let error = misbehave(&plugin, "memory-bomb").await.unwrap_err();
    assert!(matches!(error, CallError::Trap { .. }), "{error}");
    still_serves(&plugin).await;
}

#[tokio::test]
async fn unbounded_recursion_overflows_its_own_stack_only() {
    let plugin = hostile(&runtime()).await;
    let error = misbehave(&plugin, "recursion").await.unwrap_err();
    let CallError::Trap { detail, .. } = &error else {
        panic!("expected a trap, got {error}");
    };
    // Rust keeps its data stack in linear memory, so running off its end is an
    // out-of-bounds access; a deep enough native frame chain is "call stack exhausted".
    assert!(
        detail.contains("out of bounds memory access") || detail.contains("call stack exhausted"),
        "{detail}"
    );
    still_serves(&plugin).await;
}

#[tokio::test]
async fn a_panic_is_a_trap_that_names_the_plugin() {
    let plugin = hostile(&runtime()).await;
    let error = misbehave(&plugin, "trap").await.unwrap_err();
    assert!(matches!(error, CallError::Trap { .. }), "{error}");
    assert!(
        error.to_string().starts_with("plugin hostile trapped"),
        "{error}"
    );
    still_serves(&plugin).await;
}

async fn fetch_outcome(runtime: &Runtime, url: &str, allowed: &[&str]) -> String {
    let plugin = hostile(runtime).await;
    let outcome = plugin
        .deliver(
            &grants(json!({"mode": "fetch", "url": url}), &[], allowed),
            delivery("t.fetch", json!(null)),
        )
        .await
        .expect("the call itself succeeds");
    match outcome {
        Outcome::Failed(failure) => failure.reason,
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn fetch_reaches_only_granted_hosts() {
    let receiver = Receiver::start().await;
    let runtime = runtime();
    let reason = fetch_outcome(&runtime, &receiver.url, &["example.com"]).await;
    assert!(
        reason.contains("not in this plugin's allowed_hosts"),
        "{reason}"
    );
    assert!(receiver.requests().is_empty());

    // The same request with the host granted goes through.
    let outcome = fetch_outcome(&runtime, &receiver.url, &["127.0.0.1"]).await;
    assert!(outcome.contains("Delivered"), "{outcome}");
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn fetch_refuses_loopback_and_metadata_by_default() {
    let receiver = Receiver::start().await;
    let strict = Runtime::new(RuntimeConfig {
        fetch: FetchPolicy::default(),
        ..config()
    })
    .unwrap();

    let reason = fetch_outcome(&strict, &receiver.url, &["127.0.0.1"]).await;
    assert!(
        reason.contains("127.0.0.1 is a loopback address"),
        "{reason}"
    );

    // A granted *name* is judged by the address it resolves to.
    let port = receiver.url.rsplit(':').next().unwrap();
    let by_name = format!("http://localhost:{port}/");
    let reason = fetch_outcome(&strict, &by_name, &["localhost"]).await;
    assert!(reason.contains("loopback"), "{reason}");
    assert!(receiver.requests().is_empty());

    // Metadata stays refused even where tests allow loopback.
    for runtime in [&strict, &runtime()] {
        let reason = fetch_outcome(
            runtime,
            "http://169.254.169.254/latest/meta-data/",
            &["169.254.169.254"],
        )
        .await;
        assert!(
            reason.contains("169.254.169.254 is a link-local address"),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn a_hung_destination_hits_the_wall_clock_timeout() {
    let receiver = Receiver::start_with(|_| Reply::status(200).delay(Duration::from_secs(3))).await;
    let runtime = Runtime::new(RuntimeConfig {
        call_timeout: Duration::from_millis(500),
        ..config()
    })
    .unwrap();
    let plugin = hostile(&runtime).await;
    let error = plugin
        .deliver(
            &grants(
                json!({"mode": "fetch", "url": receiver.url}),
                &[],
                &["127.0.0.1"],
            ),
            delivery("t.slow", json!(null)),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Timeout { .. }), "{error}");
    still_serves(&plugin).await;
}

/// Resident set size of this process, in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test]
async fn a_thousand_traps_leave_host_memory_flat() {
    let plugin = hostile(&runtime()).await;
    // Warm up: pool slots, code pages and allocator arenas settle in the first calls.
    for _ in 0..100 {
        misbehave(&plugin, "trap").await.unwrap_err();
    }
    let before = rss_bytes();
    for _ in 0..1000 {
        misbehave(&plugin, "trap").await.unwrap_err();
    }
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 8 * 1024 * 1024,
        "RSS grew by {} KiB over 1000 trapping calls",
        grown / 1024
    );
    still_serves(&plugin).await;
}

#[tokio::test]
async fn concurrent_calls_each_get_their_own_instance() {
    let plugin = hostile(&runtime()).await;
    let calls = (0..32).map(|i| {
        let plugin = plugin.clone();
        async move {
            let mode = if i % 2 == 0 { "ok" } else { "trap" };
            misbehave(&plugin, mode).await
        }
    });
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 16, "half the calls succeed, half trap: {results:?}");
}

#[tokio::test]
async fn a_plugin_has_no_ambient_environment_files_network_or_clock() {
    let plugin = hostile(&runtime()).await;
    let outcome = misbehave(&plugin, "ambient").await.unwrap();
    let Outcome::Delivered(receipt) = outcome else {
        panic!("{outcome:?}");
    };
    let seen = receipt.detail.expect("the plugin reports what it saw");
    assert!(seen.starts_with("env=0 "), "{seen}");
    assert!(seen.contains("root=Err("), "no filesystem: {seen}");
    assert!(seen.contains("socket=Err("), "no sockets: {seen}");
    assert!(seen.ends_with("clock=0"), "WASI's clock reads zero: {seen}");
}

#[tokio::test]
async fn plugin_log_lines_reach_tracing_tagged_with_the_plugin() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test runtime is single-threaded, so the plugin call runs under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let plugin = runtime().load_builtin("log").await.unwrap();
    plugin
        .deliver(
            &grants(json!({}), &[], &[]),
            delivery("t.logged", json!({"n": 7})),
        )
        .await
        .unwrap();
    let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = output
        .lines()
        .find(|l| l.contains("ntf_test_1 t.logged"))
        .unwrap_or_else(|| panic!("the plugin's line is logged: {output}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains(" plugin: "), "the target is plugin: {line}");
    assert!(line.contains("plugin=\"log\""), "{line}");
}

#[tokio::test]
async fn calls_beyond_the_pool_are_busy_not_traps() {
    let receiver =
        Receiver::start_with(|_| Reply::status(200).delay(Duration::from_millis(300))).await;
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_calls: 2,
        ..config()
    })
    .unwrap();
    let plugin = hostile(&runtime).await;
    let grants = grants(
        json!({"mode": "fetch", "url": receiver.url}),
        &[],
        &["127.0.0.1"],
    );
    // Each call holds its instance slot while it waits on the slow receiver.
    let calls = (0..6).map(|_| plugin.deliver(&grants, delivery("t.busy", json!(null))));
    let results = futures::future::join_all(calls).await;
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(CallError::Busy { .. })))
        .count();
    let delivered = results
        .iter()
        .filter(|r| matches!(r, Ok(Outcome::Delivered(_))))
        .count();
    assert_eq!((delivered, busy), (2, 4), "{results:?}");
    still_serves(&plugin).await;
}
