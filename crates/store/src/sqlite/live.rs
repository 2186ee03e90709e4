//! The live entries of the contexts being read, in memory.
//!
//! Reading one entry at the latest revision is the most common request;
//! on the embedded store it would take a reader thread and a SQLite read
//! transaction. The writer thread is the only writer of the database, so
//! it knows every change: it keeps this cache exact, and such reads are
//! answered from memory when the cache holds the entry.
//!
//! How it stays exact:
//! - Before a batch commits, the writer marks each context it changed as
//!   pending. After the commit (or the rollback) it writes the new entries
//!   through, moves the generation and clears the mark. While a context is
//!   pending, reads from here answer the state before the commit, until a
//!   read of the database may have seen the commit: a read of one entry
//!   records the revision it returned, any other read of the database
//!   counts as having seen the commits under way, and no later read from
//!   here returns an older revision. Nobody else can know of the commit
//!   before it is done: its writers are answered, and its events published,
//!   after. So every read is of a state that was current at some moment of
//!   the request (linearizable).
//! - A read that misses notes its context's generation (a ticket), reads
//!   a snapshot, and puts what it read in the cache only if the context is
//!   not pending and its generation has not moved: no commit happened in
//!   between that the snapshot might not show.
//! - An expired entry stays expired until it is written again (which goes
//!   through the writer), so an entry read as absent because it expired is
//!   cached as absent; a cached entry is checked for expiry when read.
//!
//! The cache is bounded: entries larger than [`MAX_ENTRY_BYTES`] are not
//! kept, and it starts empty again past [`MAX_BYTES`] or
//! [`MAX_CONTEXTS`].
//!
//! The writer reads from it too. While it runs a batch's jobs, nothing is
//! pending and the cache holds committed state only; so an entry that
//! neither the batch so far ([`BatchChanges`]) nor the job itself has
//! changed is, when the cache holds it, exactly what the writer's own
//! transaction would read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use ctxmesh_core::context::ContextInfo;
use ctxmesh_core::{Entry, Timestamp};
use serde_json::Value;

/// An entry larger than this (approximately, in bytes) is not kept.
const MAX_ENTRY_BYTES: usize = 64 << 10;

/// The cache starts empty again past this many bytes (approximately).
const MAX_BYTES: usize = 64 << 20;

/// The cache starts empty again past this many contexts.
const MAX_CONTEXTS: usize = 4096;

/// What one committed write changed in one context, for the cache.
#[derive(Debug)]
pub(crate) enum LiveChange {
    /// The context is at `revision` (made at `updated_at`, holding
    /// `entry_count` entries), with these entries changed (`None`: deleted
    /// or expired).
    Revision {
        ctx: String,
        revision: u64,
        updated_at: Timestamp,
        entry_count: u64,
        entries: Vec<(String, Option<Entry>)>,
    },
    /// The context's row changed otherwise (created, settings, compaction).
    Context { ctx: String },
    /// The context was deleted.
    Dropped { ctx: String },
}

impl LiveChange {
    fn ctx(&self) -> &str {
        match self {
            LiveChange::Revision { ctx, .. } | LiveChange::Context { ctx } | LiveChange::Dropped { ctx } => ctx,
        }
    }

    /// Whether this change is to `key` of `ctx` (or to the whole context).
    pub(crate) fn touches(&self, ctx: &str, key: &str) -> bool {
        match self {
            LiveChange::Revision { ctx: c, entries, .. } => c == ctx && entries.iter().any(|(k, _)| k == key),
            LiveChange::Context { ctx: c } | LiveChange::Dropped { ctx: c } => c == ctx,
        }
    }
}

/// The entries and contexts that the jobs of the batch under way have
/// changed: only the writer's transaction has them.
#[derive(Default)]
pub(crate) struct BatchChanges {
    contexts: HashSet<String>,
    entries: HashMap<String, HashSet<String>>,
}

impl BatchChanges {
    /// Adds what a job that succeeded changed.
    pub(crate) fn note(&mut self, changes: &[LiveChange]) {
        for change in changes {
            match change {
                LiveChange::Revision { ctx, entries, .. } => {
                    self.entries.entry(ctx.clone()).or_default().extend(entries.iter().map(|(k, _)| k.clone()));
                }
                LiveChange::Context { ctx } | LiveChange::Dropped { ctx } => {
                    self.contexts.insert(ctx.clone());
                }
            }
        }
    }

    pub(crate) fn changed(&self, ctx: &str, key: &str) -> bool {
        self.contexts.contains(ctx) || self.entries.get(ctx).is_some_and(|keys| keys.contains(key))
    }

    pub(crate) fn clear(&mut self) {
        self.contexts.clear();
        self.entries.clear();
    }
}

/// A read's ticket: the generation of its context when it started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket(u64);

#[derive(Default)]
pub(crate) struct LiveCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Moves at every commit and rollback.
    generation: u64,
    contexts: HashMap<String, Cached>,
    /// Contexts changed by the batch being committed, with the revision it
    /// brings them to.
    pending: HashMap<String, u64>,
    bytes: usize,
}

struct Cached {
    /// The generation of the last commit that changed the context (or of
    /// the cache when the context came in).
    generation: u64,
    /// The context's revision, once known.
    revision: Option<u64>,
    /// The newest revision of the context a read of the database returned.
    seen: u64,
    /// The context as of `revision`, once read.
    info: Option<ContextInfo>,
    /// Entries by key, with their approximate size (`None`: absent).
    entries: HashMap<String, (Option<Entry>, usize)>,
}

impl LiveCache {
    /// The entry at `key` of `ctx` and the context's revision, when the
    /// cache holds them: `Some((None, revision))` for an entry known to be
    /// absent.
    pub(crate) fn get(&self, ctx: &str, key: &str, now: Timestamp) -> Option<(Option<Entry>, u64)> {
        let inner = self.lock();
        let cached = inner.contexts.get(ctx)?;
        let revision = cached.revision.filter(|r| *r >= cached.seen)?;
        let (entry, _) = cached.entries.get(key)?;
        Some((entry.as_ref().filter(|e| !e.is_expired(now)).cloned(), revision))
    }

    /// The context and the live entries at `keys`, as of one revision, when
    /// the cache holds them all (an entry known to be absent, or expired
    /// at `now`, is left out of the map).
    pub(crate) fn snapshot<'k>(
        &self,
        ctx: &str,
        keys: impl IntoIterator<Item = &'k String>,
        now: Timestamp,
    ) -> Option<(ContextInfo, BTreeMap<String, Entry>)> {
        let inner = self.lock();
        let cached = inner.contexts.get(ctx)?;
        let revision = cached.revision.filter(|r| *r >= cached.seen)?;
        let info = cached.info.as_ref().filter(|i| i.revision == revision)?;
        let mut entries = BTreeMap::new();
        for key in keys {
            if let Some(e) = cached.entries.get(key)?.0.as_ref().filter(|e| !e.is_expired(now)) {
                entries.insert(key.clone(), e.clone());
            }
        }
        Some((info.clone(), entries))
    }

    /// Keeps the context as a read with `ticket` found it, unless a commit
    /// may have changed it since the read began.
    pub(crate) fn fill_context(&self, ticket: Ticket, info: &ContextInfo) {
        let mut inner = self.lock();
        let pending = inner.pending.contains_key(&info.id);
        let Some(cached) = inner.contexts.get_mut(&info.id) else { return };
        cached.seen = cached.seen.max(info.revision);
        if pending || cached.generation != ticket.0 || cached.revision.is_some_and(|r| r != info.revision) {
            return;
        }
        cached.revision = Some(info.revision);
        cached.info = Some(info.clone());
    }

    /// A ticket for a read of `ctx` that missed.
    pub(crate) fn ticket(&self, ctx: &str) -> Ticket {
        let mut inner = self.lock();
        if !inner.contexts.contains_key(ctx) && inner.contexts.len() >= MAX_CONTEXTS {
            inner.clear();
        }
        let generation = inner.generation;
        let cached = inner.contexts.entry(ctx.to_owned()).or_insert_with(|| Cached {
            generation,
            revision: None,
            seen: 0,
            info: None,
            entries: HashMap::new(),
        });
        Ticket(cached.generation)
    }

    /// Records what a read of the database with `ticket` returned (before
    /// it is answered), and keeps it unless a commit may have changed the
    /// context since the read began.
    pub(crate) fn fill(&self, ctx: &str, ticket: Ticket, key: &str, entry: &Option<Entry>, revision: u64) {
        let mut inner = self.lock();
        let pending = inner.pending.contains_key(ctx);
        let Some(cached) = inner.contexts.get_mut(ctx) else { return };
        cached.seen = cached.seen.max(revision);
        let size = entry.as_ref().map_or(key.len(), weight);
        if pending || cached.generation != ticket.0 || size > MAX_ENTRY_BYTES {
            return;
        }
        cached.revision = Some(revision);
        let old = cached.entries.insert(key.to_owned(), (entry.clone(), size)).map_or(0, |(_, s)| s);
        inner.bytes = inner.bytes + size - old;
        if inner.bytes > MAX_BYTES {
            inner.clear();
        }
    }

    /// Before a batch commits: its contexts are pending.
    pub(crate) fn begin(&self, changes: &[LiveChange]) {
        let mut inner = self.lock();
        inner.generation += 1;
        for change in changes {
            let next = match change {
                LiveChange::Revision { revision, .. } => *revision,
                LiveChange::Context { .. } => 0,
                LiveChange::Dropped { .. } => u64::MAX,
            };
            let at = inner.pending.entry(change.ctx().to_owned()).or_default();
            *at = (*at).max(next);
            match change {
                LiveChange::Dropped { ctx } => inner.drop_context(ctx),
                LiveChange::Context { ctx } => {
                    if let Some(cached) = inner.contexts.get_mut(ctx.as_str()) {
                        cached.info = None;
                    }
                }
                // Its entries stay as they were until the commit is done or
                // a read of the database may have seen it.
                LiveChange::Revision { .. } => {}
            }
        }
    }

    /// After the batch: when it committed, its changes are written through
    /// to the contexts held here.
    pub(crate) fn finish(&self, changes: Vec<LiveChange>, committed: bool) {
        let mut inner = self.lock();
        inner.generation += 1;
        let generation = inner.generation;
        for change in changes {
            inner.pending.remove(change.ctx());
            match change {
                LiveChange::Dropped { ctx } => inner.drop_context(&ctx),
                LiveChange::Context { ctx } => {
                    if let Some(cached) = inner.contexts.get_mut(&ctx) {
                        cached.generation = generation;
                        cached.info = None;
                    }
                }
                LiveChange::Revision { ctx, revision, updated_at, entry_count, entries } => {
                    let Inner { contexts, bytes, .. } = &mut *inner;
                    let Some(cached) = contexts.get_mut(&ctx) else { continue };
                    cached.generation = generation;
                    if !committed {
                        // No read saw a revision that was rolled back.
                        cached.seen = cached.revision.unwrap_or(0);
                        continue;
                    }
                    cached.revision = Some(cached.revision.map_or(revision, |r| r.max(revision)));
                    if let Some(info) = &mut cached.info {
                        info.revision = revision;
                        info.updated_at = updated_at;
                        info.entry_count = entry_count;
                    }
                    for (key, entry) in entries {
                        let size = entry.as_ref().map_or(key.len(), weight);
                        // Too large to keep: the old version goes.
                        let old = if size <= MAX_ENTRY_BYTES {
                            *bytes += size;
                            cached.entries.insert(key, (entry, size))
                        } else {
                            cached.entries.remove(&key)
                        };
                        *bytes -= old.map_or(0, |(_, s)| s);
                    }
                }
            }
        }
        if inner.bytes > MAX_BYTES {
            inner.clear();
        }
    }

    /// Records that a read of the database (other than one entry's) of
    /// `ctx` is done: if a commit of the context is under way, the read may
    /// have seen it.
    /// `None`: a read of every context (the list of contexts).
    pub(crate) fn read_done(&self, ctx: Option<&str>) {
        let mut inner = self.lock();
        let Inner { pending, contexts, .. } = &mut *inner;
        for (id, next) in pending.iter().filter(|(id, _)| ctx.is_none_or(|c| c == id.as_str())) {
            if let Some(cached) = contexts.get_mut(id) {
                cached.seen = cached.seen.max(*next);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn drop_context(&mut self, ctx: &str) {
        if let Some(cached) = self.contexts.remove(ctx) {
            self.bytes -= cached.entries.values().map(|(_, s)| s).sum::<usize>();
        }
    }

    /// Forgets everything (pending marks stay: their batch is still on).
    fn clear(&mut self) {
        self.contexts.clear();
        self.bytes = 0;
    }
}

/// The approximate size of an entry in memory, in bytes.
fn weight(e: &Entry) -> usize {
    fn value(v: &Value) -> usize {
        match v {
            Value::String(s) => 24 + s.len(),
            Value::Array(items) => 24 + items.iter().map(value).sum::<usize>(),
            Value::Object(map) => 48 + map.iter().map(|(k, v)| 24 + k.len() + value(v)).sum::<usize>(),
            _ => 16,
        }
    }
    let meta = e.meta.kind.as_ref().map_or(0, String::len)
        + e.meta.tags.iter().chain(&e.meta.depends_on).map(|t| 24 + t.len()).sum::<usize>()
        + e.meta.relevance.keys().map(|k| 32 + k.len()).sum::<usize>();
    256 + e.key.len() + e.author.len() + value(&e.value) + meta + e.vclock.keys().map(|k| 32 + k.len()).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};
    use serde_json::json;

    use super::*;

    fn entry(key: &str, revision: u64, value: Value) -> Entry {
        serde_json::from_value(json!({
            "key": key, "value": value, "revision": revision, "version": 1, "created_revision": revision,
            "updated_at": Utc::now(), "author": "a"
        }))
        .unwrap()
    }

    fn write(ctx: &str, revision: u64, key: &str, value: Option<Value>) -> Vec<LiveChange> {
        let entries = vec![(key.to_owned(), value.map(|v| entry(key, revision, v)))];
        vec![LiveChange::Revision { ctx: ctx.into(), revision, updated_at: Utc::now(), entry_count: 1, entries }]
    }

    fn commit(cache: &LiveCache, changes: Vec<LiveChange>) {
        cache.begin(&changes);
        cache.finish(changes, true);
    }

    fn value_of(cache: &LiveCache, ctx: &str, key: &str) -> Option<Option<Value>> {
        cache.get(ctx, key, Utc::now()).map(|(e, _)| e.map(|e| e.value))
    }

    #[test]
    fn a_read_fills_and_commits_write_through() {
        let cache = LiveCache::default();
        assert_eq!(value_of(&cache, "c", "k"), None, "empty");
        let ticket = cache.ticket("c");
        cache.fill("c", ticket, "k", &Some(entry("k", 3, json!(1))), 3);
        assert_eq!(cache.get("c", "k", Utc::now()).map(|(e, r)| (e.map(|e| e.value), r)), Some((Some(json!(1)), 3)));
        commit(&cache, write("c", 4, "k", Some(json!(2))));
        assert_eq!(cache.get("c", "k", Utc::now()).map(|(e, r)| (e.map(|e| e.value), r)), Some((Some(json!(2)), 4)));
        commit(&cache, write("c", 5, "k", None));
        assert_eq!(value_of(&cache, "c", "k"), Some(None), "deleted: known absent");
        // A commit to another context leaves this one alone.
        commit(&cache, write("d", 9, "k", Some(json!(3))));
        assert_eq!(value_of(&cache, "d", "k"), None, "contexts nobody read are not kept");
        assert_eq!(cache.get("c", "k", Utc::now()).map(|(_, r)| r), Some(5));
    }

    #[test]
    fn a_read_that_raced_a_commit_is_not_kept() {
        let cache = LiveCache::default();
        let t = cache.ticket("c");
        cache.fill("c", t, "other", &None, 1);
        // Read started, then a commit happened: its snapshot may be older.
        let ticket = cache.ticket("c");
        commit(&cache, write("c", 2, "k", Some(json!("new"))));
        cache.fill("c", ticket, "k", &Some(entry("k", 1, json!("old"))), 1);
        assert_eq!(value_of(&cache, "c", "k"), Some(Some(json!("new"))));
        // A read that began while a batch was committing is not kept either.
        let ticket = cache.ticket("c");
        let changes = write("c", 3, "j", Some(json!("new")));
        cache.begin(&changes);
        assert_eq!(
            cache.get("c", "k", Utc::now()).map(|(e, r)| (e.map(|e| e.value), r)),
            Some((Some(json!("new")), 2)),
            "pending: the state before the commit is answered"
        );
        assert_eq!(value_of(&cache, "c", "j"), None, "never read, not written through yet");
        cache.fill("c", ticket, "j", &Some(entry("j", 1, json!("old"))), 2);
        // Once a read of the database may have seen the commit, nothing
        // older is answered from here until it is done.
        cache.read_done(Some("c"));
        assert_eq!(value_of(&cache, "c", "k"), None);
        cache.finish(changes, true);
        assert_eq!(cache.get("c", "k", Utc::now()).map(|(_, r)| r), Some(3));
        cache.fill("c", ticket, "j", &Some(entry("j", 1, json!("old"))), 2);
        assert_eq!(value_of(&cache, "c", "j"), Some(Some(json!("new"))));
        // A batch that rolled back changed nothing, and the entries it
        // would have changed are read again.
        let changes = write("c", 4, "j", Some(json!("lost")));
        cache.begin(&changes);
        assert_eq!(value_of(&cache, "c", "j"), Some(Some(json!("new"))), "the state before the commit");
        cache.read_done(Some("c"));
        assert_eq!(value_of(&cache, "c", "k"), None);
        cache.finish(changes, false);
        assert_eq!(value_of(&cache, "c", "j"), Some(Some(json!("new"))));
        assert_eq!(
            cache.get("c", "k", Utc::now()).map(|(e, r)| (e.map(|e| e.value), r)),
            Some((Some(json!("new")), 3))
        );
    }

    #[test]
    fn deleted_contexts_and_expired_entries_are_not_served() {
        let cache = LiveCache::default();
        let ticket = cache.ticket("c");
        let mut soon = entry("k", 1, json!(1));
        soon.meta.expires_at = Some(Utc::now() + Duration::milliseconds(50));
        cache.fill("c", ticket, "k", &Some(soon), 1);
        assert_eq!(value_of(&cache, "c", "k"), Some(Some(json!(1))));
        assert_eq!(cache.get("c", "k", Utc::now() + Duration::seconds(1)).map(|(e, _)| e.is_none()), Some(true));
        let ticket = cache.ticket("c");
        commit(&cache, vec![LiveChange::Dropped { ctx: "c".into() }]);
        cache.fill("c", ticket, "k", &Some(entry("k", 1, json!(1))), 1);
        assert_eq!(value_of(&cache, "c", "k"), None);
    }

    fn context(revision: u64) -> ContextInfo {
        serde_json::from_value(json!({
            "id": "c", "revision": revision, "created_at": Utc::now(), "updated_at": Utc::now(),
            "created_by": "a", "entry_count": 1, "compacted_revision": 0
        }))
        .unwrap()
    }

    #[test]
    fn a_snapshot_needs_the_context_and_every_entry() {
        let cache = LiveCache::default();
        let keys = ["k".to_owned(), "gone".to_owned()];
        let ticket = cache.ticket("c");
        cache.fill("c", ticket, "k", &Some(entry("k", 2, json!(1))), 2);
        cache.fill("c", ticket, "gone", &None, 2);
        assert!(cache.snapshot("c", &keys, Utc::now()).is_none(), "the context was not read yet");
        cache.fill_context(ticket, &context(2));
        let (info, entries) = cache.snapshot("c", &keys, Utc::now()).unwrap();
        assert_eq!((info.revision, entries.keys().map(String::as_str).collect::<Vec<_>>()), (2, vec!["k"]));
        assert!(cache.snapshot("c", &["other".to_owned()], Utc::now()).is_none(), "an entry not held");
        // Commits bring the context forward.
        commit(&cache, write("c", 3, "k", Some(json!(2))));
        let (info, entries) = cache.snapshot("c", &keys, Utc::now()).unwrap();
        assert_eq!((info.revision, info.entry_count, entries["k"].value.clone()), (3, 1, json!(2)));
        // A change to the context's settings forgets it until read again.
        commit(&cache, vec![LiveChange::Context { ctx: "c".into() }]);
        assert!(cache.snapshot("c", &keys, Utc::now()).is_none());
        // A read of the context that raced a commit is not kept.
        let ticket = cache.ticket("c");
        commit(&cache, write("c", 4, "k", Some(json!(3))));
        cache.fill_context(ticket, &context(3));
        assert!(cache.snapshot("c", &keys, Utc::now()).is_none());
    }

    #[test]
    fn large_entries_are_not_kept() {
        let cache = LiveCache::default();
        let ticket = cache.ticket("c");
        cache.fill("c", ticket, "big", &Some(entry("big", 1, json!("x".repeat(MAX_ENTRY_BYTES)))), 1);
        assert_eq!(value_of(&cache, "c", "big"), None);
        cache.fill("c", ticket, "k", &Some(entry("k", 1, json!("small"))), 1);
        assert_eq!(value_of(&cache, "c", "k"), Some(Some(json!("small"))));
        commit(&cache, write("c", 2, "k", Some(json!("x".repeat(MAX_ENTRY_BYTES)))));
        assert_eq!(value_of(&cache, "c", "k"), None, "the small version is not answered any more");
        assert_eq!(cache.lock().bytes, 0);
    }
}
