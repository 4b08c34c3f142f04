//! Host bindings generated from `wit/`, the one copy of the contract. Only the runtime
//! sees the generated worlds; the rest of the host uses the types re-exported from
//! `runtime`.
//!
//! The host speaks the current contract (0.2.0) and still loads adapters and channels
//! built against 0.1.0, whose worlds are the same minus transforms. Their bindings come
//! from the frozen `wit/archive/0.1.0` and reuse the current Rust types: the records are
//! identical, and wasmtime checks each component's types structurally when it loads.

/// The `adapter` world. It also owns the shared `types` and `host` interfaces.
pub mod adapter {
    wasmtime::component::bindgen!({
        world: "adapter",
        path: "../wit",
        // Only `fetch` does I/O; the other host functions answer from memory.
        imports: { "switchyard:plugin/host.fetch": async },
        exports: { default: async },
    });
}

/// The `channel` world, sharing `types` and `host` with the adapter bindings.
pub mod channel {
    wasmtime::component::bindgen!({
        world: "channel",
        path: "../wit",
        exports: { default: async },
        with: {
            "switchyard:plugin/types": super::adapter::switchyard::plugin::types,
            "switchyard:plugin/host": super::adapter::switchyard::plugin::host,
        },
    });
}

/// The `transform` world, sharing `types` and `host` with the adapter bindings.
pub mod transform {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit",
        exports: { default: async },
        with: {
            "switchyard:plugin/types": super::adapter::switchyard::plugin::types,
            "switchyard:plugin/host": super::adapter::switchyard::plugin::host,
        },
    });
}

/// Contract 0.1.0: its adapter and channel worlds, over the current types. Its `host`
/// interface is generated anew (the linker needs it under the 0.1.0 name) and answered by
/// the current one, in `host_api.rs`.
pub mod v0_1 {
    /// The 0.1.0 `adapter` world; owns the 0.1.0 `host` interface.
    pub mod adapter {
        wasmtime::component::bindgen!({
            world: "adapter",
            path: "../wit/archive/0.1.0",
            imports: { "switchyard:plugin/host.fetch": async },
            exports: { default: async },
            with: {
                "switchyard:plugin/types": crate::runtime::bindings::types,
            },
        });
    }

    /// The 0.1.0 `channel` world.
    pub mod channel {
        wasmtime::component::bindgen!({
            world: "channel",
            path: "../wit/archive/0.1.0",
            exports: { default: async },
            with: {
                "switchyard:plugin/types": crate::runtime::bindings::types,
                "switchyard:plugin/host": super::adapter::switchyard::plugin::host,
            },
        });
    }

    pub use adapter::switchyard::plugin::host;
}

pub use adapter::switchyard::plugin::{host, types};
