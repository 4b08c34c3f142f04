//! Host bindings generated from `wit/`, the one copy of the contract. Only the runtime
//! sees the generated worlds; the rest of the host uses the types re-exported from
//! `runtime`.

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

pub use adapter::switchyard::plugin::{host, types};
