//! Bindings generated from `wit/` (a link to the repository's one copy of the contract).
//!
//! All three worlds are generated here. Because the export macros are public, the custom
//! sections in this crate describe only the imports; each plugin's export macro adds the
//! full description of the one world it implements, so an adapter never claims to be a
//! channel or a transform, or the other way round.

/// The `adapter` world: imports `host`, exports `inbound`.
pub mod adapter {
    wit_bindgen::generate!({
        world: "adapter",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_world",
        default_bindings_module: "switchyard_sdk::__bindings::adapter",
        runtime_path: "switchyard_sdk::__wit_bindgen::rt",
        additional_derives: [Clone, PartialEq],
    });
}

/// The `channel` world: imports `host`, exports `outbound`. Shares its types and host
/// imports with the adapter bindings.
pub mod channel {
    wit_bindgen::generate!({
        world: "channel",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_world",
        default_bindings_module: "switchyard_sdk::__bindings::channel",
        runtime_path: "switchyard_sdk::__wit_bindgen::rt",
        additional_derives: [Clone, PartialEq],
        with: {
            "switchyard:plugin/types@0.2.0": crate::__bindings::adapter::switchyard::plugin::types,
            "switchyard:plugin/host@0.2.0": crate::__bindings::adapter::switchyard::plugin::host,
        },
    });
}

/// The `transform` world: imports `host`, exports `transformer`. Shares its types and host
/// imports with the adapter bindings.
pub mod transform {
    wit_bindgen::generate!({
        world: "transform",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_world",
        default_bindings_module: "switchyard_sdk::__bindings::transform",
        runtime_path: "switchyard_sdk::__wit_bindgen::rt",
        additional_derives: [Clone, PartialEq],
        with: {
            "switchyard:plugin/types@0.2.0": crate::__bindings::adapter::switchyard::plugin::types,
            "switchyard:plugin/host@0.2.0": crate::__bindings::adapter::switchyard::plugin::host,
        },
    });
}
