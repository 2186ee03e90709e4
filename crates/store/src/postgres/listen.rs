//! How a node learns of the commits of every node: `LISTEN` on one channel
//! per schema, a check of watched contexts every poll interval, and a
//! [`Relay`] that publishes each revision to this node's [`Hub`] once, in
//! order.
//!
//! A notification only says "context C reached revision R". The relay
//! reads the events from the `events` table and publishes them; if a
//! notification is lost (the listening connection dropped, say), the next
//! notification of that context or the next poll finds the revision
//! missing and reads it then. Watchers themselves also notice any gap by
//! revision and read the log, so a lost notification delays an event but
//! never loses it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctxmesh_core::Event;
use ctxmesh_core::event::types;
use deadpool_postgres::Pool;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use crate::clock::SharedClock;
use crate::error::Result;
use crate::notify::{CHANNEL_CAPACITY, Committed, Hub, SharedEvent};
use crate::ops::SYSTEM_AGENT;

/// The notification payload of a committed revision: `REV FLAG CONTEXT`,
/// where FLAG is `d` for a deletion and `c` otherwise. Context ids have no
/// spaces.
pub(super) fn payload(committed: &Committed) -> String {
    let flag = if committed.deleted { 'd' } else { 'c' };
    format!("{} {flag} {}", committed.revision, committed.context)
}

fn parse_payload(payload: &str) -> Option<(u64, bool, &str)> {
    let mut parts = payload.splitn(3, ' ');
    let revision = parts.next()?.parse().ok()?;
    let deleted = match parts.next()? {
        "d" => true,
        "c" => false,
        _ => return None,
    };
    Some((revision, deleted, parts.next()?))
}

/// Publishes revisions to this node's hub exactly once and in order,
/// whether they come from this node's commits or from notifications.
pub(super) struct Relay {
    hub: Arc<Hub>,
    pool: Pool,
    clock: SharedClock,
    channel: String,
    /// The last revision published per watched context.
    published: Mutex<HashMap<String, u64>>,
    /// The revision seen by the previous poll, per watched context with
    /// nothing published yet.
    baselines: Mutex<HashMap<String, u64>>,
}

impl Relay {
    pub(super) fn new(hub: Arc<Hub>, pool: Pool, schema: &str, clock: SharedClock) -> Self {
        Relay {
            hub,
            pool,
            clock,
            channel: format!("ctxmesh:{schema}"),
            published: Mutex::new(HashMap::new()),
            baselines: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The notification channel: one per schema, so that deployments
    /// sharing a database in different schemas never hear each other.
    pub(super) fn channel(&self) -> &str {
        &self.channel
    }

    /// The revision the previous poll saw, for a context with nothing
    /// published yet; records `revision` for the next poll.
    fn baseline(&self, context: &str, revision: u64) -> Option<u64> {
        self.baselines.lock().unwrap_or_else(|e| e.into_inner()).insert(context.to_owned(), revision)
    }

    fn last(&self, context: &str) -> Option<u64> {
        self.published.lock().unwrap_or_else(|e| e.into_inner()).get(context).copied()
    }

    /// Publishes one revision unless it (or a later one) already was.
    pub(super) fn publish(&self, committed: Committed) {
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        if !self.hub.has_subscribers(&committed.context) {
            published.remove(&committed.context);
            return;
        }
        if committed.deleted {
            // A context re-created under the same id starts again at 1.
            published.remove(&committed.context);
        } else {
            let last = published.entry(committed.context.clone()).or_insert(0);
            if committed.revision <= *last {
                return;
            }
            *last = committed.revision;
        }
        self.hub.publish(committed);
    }

    /// Handles a burst of notifications: per context, publishes what this
    /// node has not published, from the oldest revision notified (or the
    /// one after the last published) to the newest.
    async fn on_notifications(&self, payloads: &[String]) {
        // Per context: oldest and newest revision notified, and deletion.
        let mut notified: BTreeMap<&str, (u64, u64, bool)> = BTreeMap::new();
        for payload in payloads {
            let Some((revision, deleted, context)) = parse_payload(payload) else {
                tracing::warn!(payload, "ignoring a malformed commit notification");
                continue;
            };
            let slot = notified.entry(context).or_insert((revision, revision, false));
            *slot = (slot.0.min(revision), slot.1.max(revision), slot.2 || deleted);
        }
        for (context, (oldest, newest, deleted)) in notified {
            if !self.hub.has_subscribers(context) {
                continue;
            }
            if deleted {
                self.publish_deletion(context, newest);
            } else if let Err(e) = self.catch_up(context, oldest, newest).await {
                tracing::warn!(context, error = %e, "cannot read notified events; watchers will read the log");
            }
        }
    }

    /// Reads from the event table and publishes the revisions up to
    /// `revision` after the last one published (or, when none was, from
    /// `oldest`).
    async fn catch_up(&self, context: &str, oldest: u64, revision: u64) -> Result<()> {
        let last = self.last(context);
        if last.is_some_and(|l| l >= revision) {
            return Ok(());
        }
        // Watchers farther behind than a channel holds read the log anyway.
        let window = (CHANNEL_CAPACITY as u64).saturating_sub(1);
        let from = last.map_or(oldest, |l| l + 1).max(revision.saturating_sub(window));
        let client = self.pool.get().await.map_err(super::pool::pool_error)?;
        // Streams (inboxes, the agents feed) are numbered by seq, one event
        // each; contexts by revision.
        let sql = if context.starts_with('@') {
            "SELECT seq, event FROM streams WHERE stream = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq"
        } else {
            "SELECT revision, event FROM events WHERE ctx = $1 AND revision >= $2 AND revision <= $3 \
             ORDER BY revision, seq"
        };
        let rows = client.query(sql, &[&context, &(from as i64), &(revision as i64)]).await?;
        let mut current: Option<Committed> = None;
        for row in rows {
            let rev = row.try_get::<_, i64>(0)? as u64;
            let event: Event = serde_json::from_str(row.try_get(1)?)?;
            if current.as_ref().is_some_and(|c| c.revision != rev) {
                self.publish(current.take().expect("checked above"));
            }
            let committed = current.get_or_insert_with(|| Committed {
                context: context.to_owned(),
                revision: rev,
                events: Vec::new(),
                deleted: false,
            });
            committed.events.push(SharedEvent::new(event));
        }
        if let Some(committed) = current {
            self.publish(committed);
        }
        Ok(())
    }

    fn publish_deletion(&self, context: &str, revision: u64) {
        let event = Event {
            kind: types::CONTEXT_DELETED.to_owned(),
            context: context.to_owned(),
            revision,
            key: None,
            at: self.clock.now(),
            agent: Some(SYSTEM_AGENT.to_owned()),
            priority: None,
            data: None,
            seq: None,
        };
        self.publish(Committed {
            context: context.to_owned(),
            revision,
            events: vec![SharedEvent::new(event)],
            deleted: true,
        });
    }

    /// Compares the revisions of the watched contexts with what was
    /// published and catches up; a watched context that is gone is
    /// published as deleted. A context with nothing published yet is
    /// caught up from the revision the previous poll saw: whatever was
    /// committed since reaches its subscribers even if every notification
    /// of it was lost.
    async fn poll(&self) -> Result<()> {
        let watched = self.hub.subscribed_contexts();
        {
            let mut baselines = self.baselines.lock().unwrap_or_else(|e| e.into_inner());
            let watched: std::collections::HashSet<&String> = watched.iter().collect();
            baselines.retain(|c, _| watched.contains(c));
        }
        if watched.is_empty() {
            return Ok(());
        }
        let client = self.pool.get().await.map_err(super::pool::pool_error)?;
        let mut rows = client.query("SELECT id, revision FROM contexts WHERE id = ANY($1)", &[&watched]).await?;
        rows.extend(client.query("SELECT stream, seq FROM stream_heads WHERE stream = ANY($1)", &[&watched]).await?);
        drop(client);
        let mut revisions = HashMap::new();
        for row in rows {
            revisions.insert(row.try_get::<_, String>(0)?, row.try_get::<_, i64>(1)? as u64);
        }
        for context in watched {
            match revisions.get(&context) {
                Some(&revision) => {
                    if self.last(&context).is_some() {
                        self.catch_up(&context, revision, revision).await?;
                    } else if let Some(baseline) = self.baseline(&context, revision).filter(|b| *b < revision) {
                        // Nothing published yet: what was committed after
                        // the previous poll is due.
                        self.catch_up(&context, baseline + 1, revision).await?;
                    }
                }
                // Gone since this node last published it. (A context that
                // never existed has nothing to end.)
                None if context.starts_with('@') => {} // an empty stream
                None => {
                    if let Some(last) = self.last(&context) {
                        self.publish_deletion(&context, last + 1);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Listens for commit notifications for as long as the store lives,
/// reconnecting when the connection drops, and polls every `interval`;
/// `listening` is told once the first `LISTEN` is in place.
pub(super) async fn run(
    relay: Arc<Relay>,
    config: super::tls::ConnectConfig,
    interval: Duration,
    listening: tokio::sync::oneshot::Sender<()>,
) {
    let mut listening = Some(listening);
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen(&config, relay.channel()).await {
            Ok((client, mut notifications)) => {
                backoff = Duration::from_millis(100);
                if let Some(listening) = listening.take() {
                    let _ = listening.send(());
                }
                // Anything committed while nobody listened is found now.
                poll_logged(&relay).await;
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        received = notifications.recv() => {
                            let Some(first) = received else { break };
                            let mut burst = vec![first];
                            while let Ok(more) = notifications.try_recv() {
                                burst.push(more);
                            }
                            relay.on_notifications(&burst).await;
                        }
                        _ = tick.tick() => poll_logged(&relay).await,
                    }
                }
                drop(client);
                tracing::warn!("lost the PostgreSQL notification connection; reconnecting");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for commit notifications; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn poll_logged(relay: &Relay) {
    if let Err(e) = relay.poll().await {
        tracing::warn!(error = %e, "cannot check watched contexts for new revisions");
    }
}

/// A connection that listens on `channel`, and its notifications; the
/// receiver ends when the connection does.
async fn listen(
    config: &super::tls::ConnectConfig,
    channel: &str,
) -> Result<(tokio_postgres::Client, mpsc::UnboundedReceiver<String>)> {
    let (client, mut connection) = config.config.connect(config.tls.clone()).await?;
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if sender.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the notification connection failed");
                    return;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', "\"\""))).await?;
    Ok((client, receiver))
}
