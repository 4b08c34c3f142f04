//! The `log` channel: writes each notification to the host's log and reports it
//! delivered. Handy for trying routes before a real destination exists.

use switchyard_sdk::{Channel, Delivery, Outcome, export_channel};

struct Log;

impl Channel for Log {
    fn deliver(delivery: Delivery) -> Outcome {
        let n = &delivery.notification;
        switchyard_sdk::info!(
            "{} {} from {} to {} (attempt {}): {}",
            n.id,
            n.kind,
            n.source,
            delivery.channel,
            delivery.attempt,
            n.payload
        );
        Outcome::delivered()
    }
}

export_channel!(Log);
