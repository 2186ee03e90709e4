//! Commit notifications: after a revision is durable, its events are
//! published to the subscribers of its context.
//!
//! Notifications only wake watchers up and spare them a read of what they
//! are about to need; the durable event log stays the source of truth. Each
//! context has a bounded broadcast channel: a subscriber that falls behind
//! misses notifications (it is told it lagged) and catches up from the log,
//! so a slow subscriber never holds memory or slows the writer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ctxmesh_core::Event;
use tokio::sync::broadcast;

/// Notifications kept per context for subscribers that are a little behind.
pub const CHANNEL_CAPACITY: usize = 256;

/// One committed revision of one context, as published.
#[derive(Debug)]
pub struct Committed {
    /// The context.
    pub context: String,
    /// The revision (for a deletion: the revision after the last one).
    pub revision: u64,
    /// Its events, in log order.
    pub events: Vec<SharedEvent>,
    /// The context was deleted with this notification.
    pub deleted: bool,
}

/// An event with its JSON serialized at most once for all subscribers.
#[derive(Debug)]
pub struct SharedEvent {
    /// The event.
    pub event: Event,
    json: OnceLock<String>,
}

impl SharedEvent {
    /// Wraps an event.
    pub fn new(event: Event) -> Self {
        SharedEvent { event, json: OnceLock::new() }
    }

    /// The event as JSON.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| serde_json::to_string(&self.event).unwrap_or_default())
    }
}

/// Per-context fan-out of commit notifications.
#[derive(Debug, Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<Committed>>>>,
}

impl Hub {
    /// Subscribes to the notifications of `context`.
    pub fn subscribe(&self, context: &str) -> broadcast::Receiver<Arc<Committed>> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.entry(context.to_owned()).or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0).subscribe()
    }

    /// Publishes a committed revision to the context's subscribers, if any.
    pub fn publish(&self, committed: Committed) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sender) = channels.get(&committed.context) else { return };
        if sender.receiver_count() == 0 {
            channels.remove(&committed.context);
            return;
        }
        let _ = sender.send(Arc::new(committed));
    }

    /// Whether `context` has subscribers on this node.
    pub fn has_subscribers(&self, context: &str) -> bool {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.get(context).is_some_and(|s| s.receiver_count() > 0)
    }

    /// The contexts that have subscribers on this node.
    pub fn subscribed_contexts(&self) -> Vec<String> {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.iter().filter(|(_, s)| s.receiver_count() > 0).map(|(c, _)| c.clone()).collect()
    }

    /// Number of contexts with a live channel (for tests and metrics).
    pub fn channel_count(&self) -> usize {
        self.channels.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(context: &str, revision: u64) -> Committed {
        Committed { context: context.into(), revision, events: Vec::new(), deleted: false }
    }

    #[tokio::test]
    async fn publishes_to_subscribers_of_the_context_only() {
        let hub = Hub::default();
        let mut a = hub.subscribe("a");
        let mut b = hub.subscribe("b");
        hub.publish(committed("a", 2));
        assert_eq!(a.recv().await.unwrap().revision, 2);
        assert!(b.try_recv().is_err());
        drop(a);
        drop(b);
        hub.publish(committed("a", 3));
        assert_eq!(hub.channel_count(), 1, "a channel without subscribers is dropped on publish");
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_instead_of_buffering() {
        let hub = Hub::default();
        let mut slow = hub.subscribe("a");
        for r in 0..(CHANNEL_CAPACITY as u64 + 10) {
            hub.publish(committed("a", r));
        }
        assert!(matches!(slow.recv().await, Err(broadcast::error::RecvError::Lagged(10))));
    }
}
