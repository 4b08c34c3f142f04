//! The runtime accepts only components that implement one world of this contract version,
//! and names the problem with anything else.

use serde_json::json;
use std::sync::Arc;

use switchyard::runtime::{
    BUILTIN_PLUGINS, CallError, Grants, LoadError, Outcome, Runtime, RuntimeConfig, SizeCaps, World,
};

use crate::support::*;

#[tokio::test]
async fn every_builtin_loads_as_its_world() {
    let runtime = runtime();
    for (name, world, _) in BUILTIN_PLUGINS {
        let plugin = runtime.load_builtin(name).await.unwrap();
        assert_eq!(plugin.world(), *world, "{name}: the table's world");
        let expected = match *name {
            "rest-json" | "webhook-standard" | "webhook-github" | "ws-json" | "graphql" => {
                World::Adapter
            }
            "pick" | "template" => World::Transform,
            _ => World::Channel,
        };
        assert_eq!(plugin.world(), expected, "{name}");
        assert_eq!(plugin.manifest().contract_version, "0.2.0");
        assert!(
            plugin.info().name.ends_with(name),
            "{name}: {:?}",
            plugin.info()
        );
        assert!(
            !plugin.info().description.is_empty(),
            "{name} describes itself"
        );
    }
    assert!(
        BUILTIN_PLUGINS.len() >= 10,
        "five adapters and five channels"
    );
}

#[tokio::test]
async fn the_manifest_says_what_a_plugin_asks_for() {
    let runtime = runtime();
    let webhook = runtime.load_builtin("webhook").await.unwrap();
    let asks = &webhook.manifest().host_functions;
    for function in ["config", "fetch", "secret", "now"] {
        assert!(
            asks.iter().any(|f| f == function),
            "webhook asks for {function}: {asks:?}"
        );
    }
    let trivial = runtime
        .load("trivial", &test_plugin("trivial"))
        .await
        .unwrap();
    assert!(
        !trivial
            .manifest()
            .host_functions
            .iter()
            .any(|f| f == "fetch"),
        "a plugin that never fetches does not ask for fetch"
    );
}

async fn refusal(bytes: &[u8]) -> LoadError {
    match runtime().load("candidate", bytes).await {
        Ok(plugin) => panic!("{:?} was accepted", plugin.manifest()),
        Err(error) => error,
    }
}

#[tokio::test]
async fn garbage_is_not_wasm() {
    let error = refusal(b"MZ\x90\x00 this is a Windows executable, honest").await;
    assert!(matches!(error, LoadError::NotWasm), "{error}");
    assert!(
        refusal(b"")
            .await
            .to_string()
            .contains("not a WebAssembly file")
    );
}

#[tokio::test]
async fn a_core_module_is_told_to_become_a_component() {
    // The smallest valid core module: magic, version 1, layer 0.
    let error = refusal(b"\0asm\x01\0\0\0").await;
    assert!(matches!(error, LoadError::CoreModule), "{error}");
    assert!(error.to_string().contains("wasm32-wasip2"), "{error}");
}

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let error = refusal(&test_plugin("not-a-plugin")).await;
    assert!(matches!(error, LoadError::NoWorld { .. }), "{error}");
    assert!(error.to_string().contains("wasi:cli/run"), "{error}");
}

#[tokio::test]
async fn a_newer_contract_version_is_refused_by_version() {
    let error = refusal(&test_plugin("future-contract")).await;
    assert!(
        matches!(&error, LoadError::ContractVersion { found } if found == "0.9.0"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("this host speaks switchyard:plugin@0.2.0"),
        "{error}"
    );
}

#[tokio::test]
async fn a_channel_built_against_contract_0_1_0_still_loads_and_delivers() {
    let runtime = Runtime::new(config()).unwrap();
    let plugin = runtime
        .load("old", &test_plugin("contract-0-1-0"))
        .await
        .unwrap();
    assert_eq!(plugin.world(), World::Channel);
    assert_eq!(plugin.manifest().contract_version, "0.1.0");
    assert!(plugin.manifest().host_functions.contains(&"log".to_owned()));
    let delivery = switchyard::runtime::Delivery {
        notification: switchyard::runtime::Notification {
            id: "n1".into(),
            kind: "k".into(),
            source: "api".into(),
            attributes: vec![],
            payload: "{}".into(),
            created_at_ms: 0,
        },
        attempt: 1,
        channel: "old".into(),
    };
    let outcome = plugin
        .deliver(&Arc::new(Grants::default()), delivery)
        .await
        .unwrap();
    assert!(
        matches!(&outcome, Outcome::Delivered(r) if r.detail.as_deref() == Some("contract 0.1.0")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn each_world_has_its_own_size_cap() {
    let trivial = test_plugin("trivial");
    let runtime = Runtime::new(RuntimeConfig {
        max_component_bytes: SizeCaps {
            channel: trivial.len() - 1,
            ..SizeCaps::default()
        },
        ..config()
    })
    .unwrap();
    let error = runtime.load("trivial", &trivial).await.unwrap_err();
    assert!(
        matches!(
            error,
            LoadError::TooLargeForWorld {
                world: World::Channel,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("plugins.max_channel_bytes"),
        "{error}"
    );
    // The same cap does not bind a transform.
    runtime
        .load("drop", &test_plugin("transform-drop"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_oversized_file_is_refused_before_compiling() {
    let runtime = Runtime::new(RuntimeConfig {
        max_component_bytes: SizeCaps {
            adapter: 1024,
            channel: 1024,
            transform: 1024,
        },
        ..config()
    })
    .unwrap();
    let error = runtime
        .load("big", &test_plugin("trivial"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, LoadError::TooLarge { max: 1024, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_truncated_component_is_malformed() {
    let bytes = test_plugin("trivial");
    let error = refusal(&bytes[..bytes.len() / 2]).await;
    assert!(matches!(error, LoadError::Compile(_)), "{error}");
}

#[tokio::test]
async fn an_unknown_builtin_lists_the_real_ones() {
    let error = runtime().load_builtin("carrier-pigeon").await.unwrap_err();
    assert!(error.to_string().contains("webhook"), "{error}");
}

#[tokio::test]
async fn a_channel_cannot_be_called_as_an_adapter() {
    let runtime = runtime();
    let log = runtime.load_builtin("log").await.unwrap();
    let error = log
        .handle(&grants(json!({}), &[], &[]), http_request(&[], b"{}"))
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::WrongWorld { .. }), "{error}");
    let outcome = log
        .deliver(
            &grants(json!({}), &[], &[]),
            delivery("t.log", json!({"a": 1})),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Delivered(_)));
}
