//! Watches: one subscriber's stream of a context's events, shared by the
//! SSE and WebSocket endpoints.
//!
//! A watcher holds a position (the last revision it has fully delivered) and
//! pulls: it reads the durable event log from its position while behind, and
//! takes committed revisions from the context's notification channel once
//! caught up. Nothing is queued for a subscriber that does not read: its
//! stream is simply not polled, the notification channel drops what it
//! cannot hold (the watcher learns it lagged), and the watcher catches up
//! from the log when the subscriber reads again. Writers never wait for
//! watchers.
//!
//! Each watcher filters for its subscriber: entry events pass only when the
//! subscriber may read the entry ([`WatchFilter::scope`]). Its access is
//! decided again ([`WatchSpec::access`]) when a grant of the context changes
//! (before any later event goes out) and every `recheck_interval` (token
//! revocations, policy changes, expiries); a watch whose access is gone
//! ends with an error.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ctxmesh_core::access::EntryScope;
use ctxmesh_core::error::Error;
use ctxmesh_core::ids::ContextId;
use ctxmesh_core::{Event, Priority};
use ctxmesh_store::coord as req;
use ctxmesh_store::coord::{AGENTS_FEED, inbox_stream};
use ctxmesh_store::notify::Committed;
use ctxmesh_store::{Store, StoreError};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::error::ApiError;

/// Events read from the log per catch-up step (whole revisions are kept
/// together, so a step may return a few more).
const CATCH_UP_BATCH: usize = 512;

/// In which order a watch delivers a backlog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Strictly by revision (the default).
    #[default]
    Revision,
    /// When several revisions are pending, higher priorities first.
    Priority,
}

/// Which events a watch delivers.
#[derive(Clone, Debug, Default)]
pub struct WatchFilter {
    /// Only these event types.
    pub types: Option<Vec<String>>,
    /// Only events whose key starts with this (events without a key pass).
    pub prefix: Option<String>,
    /// Only events of at least this priority (events without one count as normal).
    pub min_priority: Option<Priority>,
    /// Only entry events of entries the subscriber may read (`None`: all).
    pub scope: Option<EntryScope>,
}

impl WatchFilter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        if let Some(types) = &self.types
            && !types.iter().any(|t| t == &event.kind)
        {
            return false;
        }
        if let (Some(prefix), Some(key)) = (&self.prefix, &event.key)
            && !key.starts_with(prefix.as_str())
        {
            return false;
        }
        if let Some(min) = self.min_priority
            && event.priority.unwrap_or_default() < min
        {
            return false;
        }
        self.scope.as_ref().is_none_or(|s| s.permits_event(event))
    }
}

/// What a watch follows.
#[derive(Clone, Debug)]
pub enum Source {
    /// A context's event log; positions are revisions.
    Context(ContextId),
    /// An agent's inbox; positions are its sequence numbers.
    Inbox(String),
    /// The agents feed; positions are its sequence numbers.
    Agents,
}

impl Source {
    /// The position of `event` in this source.
    pub fn position(&self, event: &Event) -> u64 {
        match self {
            Source::Context(_) => event.revision,
            Source::Inbox(_) | Source::Agents => event.seq.unwrap_or_default(),
        }
    }

    /// The context id, or the stream's name.
    pub fn name(&self) -> String {
        match self {
            Source::Context(c) => c.to_string(),
            Source::Inbox(agent) => inbox_stream(agent),
            Source::Agents => AGENTS_FEED.to_owned(),
        }
    }

    async fn read(&self, store: &dyn Store, after: u64) -> Result<Vec<Event>, StoreError> {
        match self {
            Source::Context(c) => store.events(c, after, CATCH_UP_BATCH).await,
            Source::Inbox(agent) => {
                store.coord(req::ReadInbox { agent: agent.clone(), after, limit: CATCH_UP_BATCH }).await
            }
            Source::Agents => store.coord(req::ReadAgentsFeed { after, limit: CATCH_UP_BATCH }).await,
        }
    }
}

/// What a watch starts from and how it delivers.
#[derive(Clone)]
pub struct WatchSpec {
    /// What is watched.
    pub source: Source,
    /// Deliver events after this position.
    pub after: u64,
    /// Which events.
    pub filter: WatchFilter,
    /// Delivery order of a backlog.
    pub order: Order,
    /// How often a progress (bookmark) item is sent.
    pub progress_interval: Duration,
    /// Decides the subscriber's access again (`None`: the admin, never
    /// re-decided).
    pub access: Option<AccessCheck>,
    /// How often `access` runs besides on grant changes.
    pub recheck_interval: Duration,
}

/// Decides a subscriber's access again: the entry scope to filter with
/// from now on (`None` for streams that are not a context's), or the error
/// that ends the watch.
pub type AccessCheck =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<Option<EntryScope>, ApiError>> + Send + Sync>;

/// Events after which a context watch decides its access again.
fn changes_access(event: &Event) -> bool {
    use ctxmesh_core::event::types;
    event.kind == types::CONTEXT_SHARED || event.kind == types::CONTEXT_REVOKED
}

/// An event as delivered: shared with every subscriber of a live revision,
/// or owned when read from the log.
#[derive(Clone, Debug)]
pub enum Delivered {
    /// From a commit notification.
    Shared(Arc<Committed>, usize),
    /// From the event log.
    Owned(Box<Event>),
}

impl Delivered {
    /// The event.
    pub fn event(&self) -> &Event {
        match self {
            Delivered::Shared(c, i) => &c.events[*i].event,
            Delivered::Owned(e) => e,
        }
    }

    /// The event as JSON.
    pub fn json(&self) -> Cow<'_, str> {
        match self {
            Delivered::Shared(c, i) => Cow::Borrowed(c.events[*i].json()),
            Delivered::Owned(e) => Cow::Owned(serde_json::to_string(e).unwrap_or_default()),
        }
    }
}

/// One item of a watch stream.
#[derive(Debug)]
pub enum WatchItem {
    /// Events to deliver in this order; all events up to `revision` that
    /// pass the filter are in this or earlier items. In revision order an
    /// item is exactly one revision (possibly with no event left after
    /// filtering, then it is not produced).
    Events {
        /// The events.
        events: Vec<Delivered>,
        /// The last revision covered.
        revision: u64,
    },
    /// Bookmark: every event up to this revision has been delivered.
    Progress(u64),
    /// Nothing to say; keeps idle connections open.
    KeepAlive,
    /// The position was compacted away; the watch ends.
    Compacted {
        /// The position asked for.
        requested: u64,
        /// The first revision still in the log.
        compacted: u64,
    },
    /// The context was deleted; the watch ends after this event.
    Deleted(Delivered),
    /// The watch cannot go on (the store is unavailable); it ends.
    Failed(ApiError),
}

/// A watcher's state; see the module documentation.
struct Watcher {
    store: Arc<dyn Store>,
    spec: WatchSpec,
    position: u64,
    receiver: Receiver<Arc<Committed>>,
    behind: bool,
    sent_initial_progress: bool,
    ready: VecDeque<WatchItem>,
    progress: Interval,
    keep_alive: Interval,
    recheck: Interval,
    /// Whole revisions held back until access is decided again.
    held: Vec<Delivered>,
    recheck_now: bool,
    closing: Pin<Box<dyn Future<Output = ()> + Send>>,
    done: bool,
}

/// Keep-alive comments on otherwise idle streams.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The stream of a watch. Subscribes before the first read of the log, so
/// no revision falls between the catch-up and the live notifications.
/// `closing` resolves when the server shuts down; the stream then ends
/// with a `Failed(unavailable)` item.
pub fn watch(
    store: Arc<dyn Store>,
    spec: WatchSpec,
    closing: impl Future<Output = ()> + Send + 'static,
) -> impl Stream<Item = WatchItem> + Send + 'static {
    let receiver = match &spec.source {
        Source::Context(c) => store.subscribe(c),
        other => store.subscribe_stream(&other.name()),
    };
    let mut progress = tokio::time::interval_at(Instant::now() + spec.progress_interval, spec.progress_interval);
    progress.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut keep_alive = tokio::time::interval_at(Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let every = spec.recheck_interval.max(Duration::from_millis(10));
    let mut recheck = tokio::time::interval_at(Instant::now() + every, every);
    recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let watcher = Watcher {
        store,
        position: spec.after,
        spec,
        receiver,
        behind: true,
        sent_initial_progress: false,
        ready: VecDeque::new(),
        progress,
        keep_alive,
        recheck,
        held: Vec::new(),
        recheck_now: false,
        closing: Box::pin(closing),
        done: false,
    };
    futures::stream::unfold(watcher, |mut w| async move { w.next().await.map(|item| (item, w)) })
}

impl Watcher {
    async fn next(&mut self) -> Option<WatchItem> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                if matches!(item, WatchItem::Compacted { .. } | WatchItem::Deleted(_) | WatchItem::Failed(_)) {
                    self.done = true;
                    self.ready.clear();
                }
                return Some(item);
            }
            if self.done {
                return None;
            }
            if self.recheck_now {
                self.recheck_now = false;
                self.recheck().await;
                let held = std::mem::take(&mut self.held);
                if !held.is_empty() && !self.ready.iter().any(|i| matches!(i, WatchItem::Failed(_))) {
                    self.deliver(held);
                }
                continue;
            }
            if self.behind {
                if futures::FutureExt::now_or_never(&mut self.closing).is_some() {
                    self.shut_down();
                } else {
                    self.catch_up().await;
                }
                continue;
            }
            tokio::select! {
                () = &mut self.closing => self.shut_down(),
                received = self.receiver.recv() => self.on_notification(received),
                _ = self.progress.tick() => return Some(WatchItem::Progress(self.position)),
                _ = self.keep_alive.tick() => return Some(WatchItem::KeepAlive),
                _ = self.recheck.tick(), if self.spec.access.is_some() => self.recheck().await,
            }
        }
    }

    /// Decides the subscriber's access again: a new scope, or the end.
    async fn recheck(&mut self) {
        let Some(access) = self.spec.access.clone() else { return };
        match access().await {
            Ok(scope) => {
                if matches!(self.spec.source, Source::Context(_)) {
                    self.spec.filter.scope = scope;
                }
            }
            Err(e) => self.ready.push_back(WatchItem::Failed(e)),
        }
    }

    fn shut_down(&mut self) {
        self.ready.push_back(WatchItem::Failed(ApiError::new(
            crate::error::ErrorCode::Unavailable,
            "the server is shutting down; resume from your last revision",
        )));
    }

    /// Reads the next batch from the durable log.
    async fn catch_up(&mut self) {
        match self.spec.source.read(self.store.as_ref(), self.position).await {
            Ok(events) if events.is_empty() => {
                self.behind = false;
                if !self.sent_initial_progress {
                    self.sent_initial_progress = true;
                    self.ready.push_back(WatchItem::Progress(self.position));
                }
            }
            Ok(events) => {
                let delivered = events.into_iter().map(|e| Delivered::Owned(Box::new(e))).collect();
                self.deliver(delivered);
            }
            Err(StoreError::Core(Error::Compacted { requested, compacted })) => {
                self.ready.push_back(WatchItem::Compacted { requested, compacted });
            }
            Err(StoreError::Core(Error::NotFound { .. })) if matches!(self.spec.source, Source::Context(_)) => {
                let gone = Event {
                    kind: ctxmesh_core::event::types::CONTEXT_DELETED.to_owned(),
                    context: self.spec.source.name(),
                    revision: self.position + 1,
                    key: None,
                    at: chrono::Utc::now(),
                    agent: None,
                    priority: None,
                    data: None,
                    seq: None,
                };
                self.ready.push_back(WatchItem::Deleted(Delivered::Owned(Box::new(gone))));
            }
            Err(e) => self.ready.push_back(WatchItem::Failed(e.into())),
        }
    }

    fn on_notification(&mut self, received: Result<Arc<Committed>, RecvError>) {
        let first = match received {
            Ok(c) => c,
            Err(RecvError::Lagged(_)) => {
                self.behind = true;
                return;
            }
            Err(RecvError::Closed) => {
                self.shut_down();
                return;
            }
        };
        let mut batch = vec![first];
        if self.spec.order == Order::Priority {
            // A backlog: take every notification already waiting.
            loop {
                match self.receiver.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                        self.behind = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        let mut delivered = Vec::new();
        let mut expected = self.position + 1;
        for committed in batch {
            if committed.revision < expected {
                continue;
            }
            if committed.revision != expected {
                // A gap: something was committed before we subscribed, or
                // we missed it. The log has it.
                self.behind = true;
                break;
            }
            if committed.deleted {
                self.deliver(delivered);
                self.ready.push_back(WatchItem::Deleted(Delivered::Shared(committed.clone(), 0)));
                return;
            }
            expected = committed.revision + 1;
            delivered.extend((0..committed.events.len()).map(|i| Delivered::Shared(committed.clone(), i)));
        }
        self.deliver(delivered);
    }

    /// Queues `events` (whole revisions, in log order) for delivery and
    /// advances the position past them.
    fn deliver(&mut self, mut events: Vec<Delivered>) {
        let source = self.spec.source.clone();
        // A grant changed: what follows waits until access is decided again.
        if self.spec.access.is_some()
            && matches!(source, Source::Context(_))
            && let Some(changed) = events.iter().position(|d| changes_access(d.event()))
        {
            let revision = events[changed].event().revision;
            let cut = events.iter().position(|d| d.event().revision > revision).unwrap_or(events.len());
            self.held = events.split_off(cut);
            self.recheck_now = true;
        }
        let Some(last) = events.last().map(|d| source.position(d.event())) else { return };
        let mut kept: Vec<Delivered> = events.into_iter().filter(|d| self.spec.filter.matches(d.event())).collect();
        match self.spec.order {
            Order::Revision => {
                let mut current: Vec<Delivered> = Vec::new();
                for d in kept {
                    if let Some(prev) = current.last()
                        && source.position(prev.event()) != source.position(d.event())
                    {
                        let revision = source.position(prev.event());
                        self.ready.push_back(WatchItem::Events { events: std::mem::take(&mut current), revision });
                    }
                    current.push(d);
                }
                if let Some(prev) = current.last() {
                    let revision = source.position(prev.event());
                    self.ready.push_back(WatchItem::Events { events: current, revision });
                }
            }
            Order::Priority => {
                // Stable: revision order within one priority.
                kept.sort_by_key(|d| std::cmp::Reverse(d.event().priority.unwrap_or_default()));
                if !kept.is_empty() {
                    self.ready.push_back(WatchItem::Events { events: kept, revision: last });
                }
                // In priority order events carry no resumable id; the
                // bookmark after each batch is where to resume.
                self.ready.push_back(WatchItem::Progress(last));
            }
        }
        self.position = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, key: Option<&str>, priority: Option<Priority>) -> Event {
        Event {
            kind: kind.into(),
            context: "c".into(),
            revision: 1,
            key: key.map(Into::into),
            at: chrono::Utc::now(),
            agent: None,
            priority,
            data: None,
            seq: None,
        }
    }

    #[test]
    fn filters() {
        let f = WatchFilter {
            types: Some(vec!["context.updated".into()]),
            prefix: Some("a/".into()),
            min_priority: Some(Priority::High),
            scope: None,
        };
        assert!(f.matches(&event("context.updated", Some("a/x"), Some(Priority::Critical))));
        assert!(!f.matches(&event("message", Some("a/x"), Some(Priority::Critical))));
        assert!(!f.matches(&event("context.updated", Some("b/x"), Some(Priority::Critical))));
        assert!(!f.matches(&event("context.updated", Some("a/x"), None)));
        let any = WatchFilter::default();
        assert!(any.matches(&event("message", None, None)));
    }
}
