//! A channel built against the frozen contract `switchyard:plugin@0.1.0`
//! (`wit/archive/0.1.0`, the one copy of it), as plugins built before transforms were. It
//! logs through the 0.1.0 host interface and delivers every notification, with the detail
//! `contract 0.1.0`.

wit_bindgen::generate!({ world: "channel", path: "../../../wit/archive/0.1.0" });

use exports::switchyard::plugin::outbound::Guest;
use switchyard::plugin::host;
use switchyard::plugin::types::{Delivery, Level, Outcome, PluginInfo, Receipt};

struct Contract010;

impl Guest for Contract010 {
    fn info() -> PluginInfo {
        PluginInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn deliver(delivery: Delivery) -> Outcome {
        host::log(
            Level::Info,
            &format!(
                "delivering {} under contract 0.1.0",
                delivery.notification.id
            ),
        );
        Outcome::Delivered(Receipt {
            status: None,
            detail: Some("contract 0.1.0".into()),
        })
    }
}

export!(Contract010);
