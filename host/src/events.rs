//! Live events: notifications accepted and delivery outcomes, for WebSocket and GraphQL
//! subscribers.
//!
//! Events are a window onto the pipeline, not part of its promise: they are broadcast to
//! whoever listens at the moment and never stored. A subscriber that falls behind by more
//! than the channel's capacity misses events and is told so (the WebSocket front door then
//! closes it). With nobody listening, publishing costs one atomic load: the events are not
//! even built.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::routing::KindPattern;

/// How many events a subscriber may fall behind before it misses some.
const CAPACITY: usize = 4096;

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A notification was accepted (it is durable).
    NotificationAccepted {
        id: String,
        kind: String,
        source: String,
        attributes: Vec<(String, String)>,
        created_at: i64,
    },
    /// A delivery attempt ended.
    DeliveryAttempted {
        delivery_id: String,
        notification_id: String,
        kind: String,
        channel: String,
        attempt: u32,
        /// `delivered`, `retry`, `failed` or `error`.
        outcome: String,
        /// The destination's HTTP status, when there was one.
        status: Option<u16>,
        /// What happens next: `done`, `retry` or `dead`.
        next: String,
    },
}

impl Event {
    /// The notification kind the event is about.
    pub fn kind(&self) -> &str {
        match self {
            Event::NotificationAccepted { kind, .. } | Event::DeliveryAttempted { kind, .. } => {
                kind
            }
        }
    }

    /// The channel, for delivery events.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Event::NotificationAccepted { .. } => None,
            Event::DeliveryAttempted { channel, .. } => Some(channel),
        }
    }
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events about notifications whose kind matches this glob.
    pub kind: Option<KindPattern>,
    /// Only delivery events of this channel (accepted events have no channel and pass).
    pub channel: Option<String>,
    /// Accepted events, delivery events, or both when neither is set.
    pub only: Option<EventType>,
}

/// The two types of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Notifications,
    Deliveries,
}

impl EventFilter {
    pub fn matches(&self, event: &Event) -> bool {
        let type_ok = matches!(
            (self.only, event),
            (None, _)
                | (
                    Some(EventType::Notifications),
                    Event::NotificationAccepted { .. }
                )
                | (Some(EventType::Deliveries), Event::DeliveryAttempted { .. })
        );
        let kind_ok = self.kind.as_ref().is_none_or(|g| g.matches(event.kind()));
        let channel_ok = match (&self.channel, event.channel()) {
            (Some(wanted), Some(channel)) => wanted == channel,
            _ => true,
        };
        type_ok && kind_ok && channel_ok
    }
}

/// The broadcast. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Events {
    /// Whether anyone listens; publishers check this before building an event.
    pub fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Sends `event` to every current subscriber.
    pub fn publish(&self, event: Event) {
        // An error only means nobody listens any more.
        let _ = self.sender.send(Arc::new(event));
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(kind: &str) -> Event {
        Event::NotificationAccepted {
            id: "n1".into(),
            kind: kind.into(),
            source: "api".into(),
            attributes: vec![],
            created_at: 0,
        }
    }

    fn attempted(kind: &str, channel: &str) -> Event {
        Event::DeliveryAttempted {
            delivery_id: "d1".into(),
            notification_id: "n1".into(),
            kind: kind.into(),
            channel: channel.into(),
            attempt: 1,
            outcome: "delivered".into(),
            status: Some(200),
            next: "done".into(),
        }
    }

    #[test]
    fn filters_select_by_type_kind_glob_and_channel() {
        let everything = EventFilter::default();
        assert!(everything.matches(&accepted("order.paid")));
        assert!(everything.matches(&attempted("order.paid", "ops")));

        let orders_to_ops = EventFilter {
            kind: Some(KindPattern::new("order.*").unwrap()),
            channel: Some("ops".into()),
            only: None,
        };
        assert!(orders_to_ops.matches(&accepted("order.paid")));
        assert!(!orders_to_ops.matches(&accepted("user.created")));
        assert!(orders_to_ops.matches(&attempted("order.paid", "ops")));
        assert!(!orders_to_ops.matches(&attempted("order.paid", "billing")));

        let deliveries = EventFilter {
            only: Some(EventType::Deliveries),
            ..EventFilter::default()
        };
        assert!(!deliveries.matches(&accepted("a")));
        assert!(deliveries.matches(&attempted("a", "b")));
    }

    #[test]
    fn events_reach_every_subscriber_and_serialize_with_their_type() {
        let events = Events::default();
        assert!(!events.has_subscribers());
        let mut first = events.subscribe();
        let mut second = events.subscribe();
        assert!(events.has_subscribers());
        events.publish(accepted("a.b"));
        assert_eq!(*first.try_recv().unwrap(), accepted("a.b"));
        assert_eq!(*second.try_recv().unwrap(), accepted("a.b"));
        let json = serde_json::to_value(accepted("a.b")).unwrap();
        assert_eq!(json["type"], "notification_accepted");
    }
}
