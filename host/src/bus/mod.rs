//! The bus: the stream of accepted notifications and the per-channel delivery queues.
//!
//! Each is chosen in config, independently of the other and of the store:
//!
//! | | embedded (default) | production |
//! |---|---|---|
//! | stream | the store's `notifications` table, read by one router | Kafka topic, read by a consumer group ([`kafka`]) |
//! | queues | the store's `deliveries` table, leased by the poller | RabbitMQ queue per channel ([`rabbit`]) |
//!
//! The embedded bus lives in [`crate::store`]. With the brokers, the flow is:
//!
//! 1. accept publishes the notifications to Kafka, several to a record (idempotent producer,
//!    `acks=all`), and answers 202 once every broker ack is in; the idempotency window is
//!    kept in Redis ([`shared`]);
//! 2. the router (a consumer group member) stores the notification and its deliveries, puts
//!    the deliveries on their channels' RabbitMQ queues, several to a message, with
//!    publisher confirms, and only then commits its Kafka offsets;
//! 3. a worker consumes a channel's queue with a bounded prefetch, makes the attempt,
//!    records it, and only then acks, sends the delivery to a delay queue for its retry, or
//!    to the channel's dead-letter queue.

pub mod kafka;
pub mod rabbit;
pub mod shared;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::Notification;

/// Where notifications are streamed.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum StreamBackend {
    /// The store's own table.
    #[default]
    Embedded,
    Kafka(KafkaSettings),
}

/// Where deliveries wait for their channel's workers.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum QueueBackend {
    /// The store's own table.
    #[default]
    Embedded,
    Rabbit(RabbitSettings),
}

/// The `stream` section when it names Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSettings {
    /// `host:port[,host:port...]`, as librdkafka's `bootstrap.servers`.
    pub brokers: String,
    /// The topic notifications go to; created with `partitions` when missing.
    pub topic: String,
    pub partitions: i32,
    /// The routers' consumer group.
    pub group: String,
    /// The most notifications one record carries (a pack); see [`kafka`](self::kafka).
    pub pack: u32,
    /// How long start-up waits for the brokers before it gives up with an error.
    pub connect_timeout: Duration,
}

/// The `queues` section when it names RabbitMQ.
#[derive(Debug, Clone, PartialEq)]
pub struct RabbitSettings {
    /// `amqp://user:password@host:port/vhost`.
    pub url: String,
    pub queue_type: QueueType,
    /// The most unacknowledged messages one worker holds per channel.
    pub prefetch: u16,
    /// The most deliveries the router puts in one message (a parcel); see
    /// [`rabbit`](self::rabbit).
    pub parcel: u32,
    /// How many times a message may be handed out without being settled before it goes to
    /// the dead-letter queue: what stops a poison message from cycling forever.
    pub delivery_limit: u32,
    /// Queue names start with this: `<prefix>.<channel>`, `<prefix>.<channel>.dead`.
    pub prefix: String,
    /// How long start-up waits for the broker before it gives up with an error.
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    Classic,
    Quorum,
}

/// A delivery as it travels on a queue: everything a worker needs for the next attempt,
/// so a worker never reads the store before it calls the plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedDelivery {
    pub delivery_id: String,
    pub channel: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts made before the last replay: the retry schedule counts from here.
    pub retry_base: u32,
    pub notification: Notification,
}

/// `url` as messages and logs may show it: scheme, host and port only, such as
/// `amqp://broker.internal:5672`. User names, passwords, paths, queries and fragments are
/// left out, since any of them can carry a credential (a Slack webhook's path is one, a
/// token in a query string another). A `sqlite:` URL names a local file, not a server, and
/// carries no credential, so it is shown whole; text that does not parse as a URL is not
/// shown at all.
pub fn redacted(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return "(a URL that does not parse)".to_owned();
    };
    if parsed.scheme() == "sqlite" {
        return url.to_owned();
    }
    match (parsed.host_str(), parsed.port()) {
        (Some(host), Some(port)) if !host.is_empty() => {
            format!("{}://{host}:{port}", parsed.scheme())
        }
        (Some(host), None) if !host.is_empty() => format!("{}://{host}", parsed.scheme()),
        _ => format!("{}:", parsed.scheme()),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn keeps_scheme_host_and_port_only() {
        assert_eq!(
            redacted("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672"
        );
        assert_eq!(redacted("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
        assert_eq!(redacted("amqp://user@host"), "amqp://host");
        assert_eq!(redacted("amqps://u:p@ss:w@host/vh"), "amqps://host");
        assert_eq!(
            redacted("postgres://app:pw@db:5432/switchyard"),
            "postgres://db:5432"
        );
        assert_eq!(
            redacted("https://hooks.slack.com/services/T0/B0/XXXX?token=t#frag"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            redacted("http://[::1]:8080/secret-path"),
            "http://[::1]:8080"
        );
        assert_eq!(
            redacted("sqlite:///var/lib/switchyard/switchyard.db"),
            "sqlite:///var/lib/switchyard/switchyard.db"
        );
        assert_eq!(redacted("mailto:ops@example.com"), "mailto:");
        assert_eq!(redacted("not a url"), "(a URL that does not parse)");
        assert_eq!(redacted("secret-token"), "(a URL that does not parse)");
    }
}
