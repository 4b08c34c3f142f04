//! A channel that does nothing, to measure the cost of a fresh-instance call.

use switchyard_sdk::{Channel, Delivery, Outcome, export_channel};

struct Trivial;

impl Channel for Trivial {
    fn deliver(_: Delivery) -> Outcome {
        Outcome::delivered()
    }
}

export_channel!(Trivial);
