//! A channel for `switchyard:plugin@0.9.0`, which this host does not speak.

wit_bindgen::generate!({ world: "channel", path: "wit" });

struct Future;

impl exports::switchyard::plugin::outbound::Guest for Future {
    fn deliver(_id: String) -> bool {
        true
    }
}

export!(Future);
