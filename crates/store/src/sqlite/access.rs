//! What authenticating and authorizing a request reads, in memory: the
//! owner of a token (`TokenOwner`) and the inputs of an access
//! decision (`GetAccess`: the context's creator, the agent's grant
//! and record, the policies). Without it, every request made with an
//! agent's token took two reads of the database on a reader thread.
//!
//! The writer is the only writer, so the cache can be exact. A batch that
//! changes anything these reads depend on (tokens, agents, grants,
//! policies, contexts created, deleted or changed) empties the cache
//! before it commits, and refuses fills until it has committed and before
//! it answers: once a rotation or revocation is acknowledged, no request
//! is answered from what was there before, and a read of the database that
//! may have seen the old state does not fill the cache after (a generation
//! count, as for live entries).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::coord::{CoordOutput, CoordRead, GetAccess, TokenOwner};

/// Weight kept at most, past which the cache starts over: an answer
/// weighs 1, plus one per policy it carries (an access answer carries
/// every policy), so that many policies cannot make it large.
const MAX_WEIGHT: usize = 65_536;

fn weight(out: &CoordOutput) -> usize {
    match out {
        CoordOutput::Access(access) => 1 + access.policies.len(),
        _ => 1,
    }
}

/// The key of a cached read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AccessKey {
    Token(String),
    Access { ctx: String, agent: String },
}

impl AccessKey {
    /// The key of `read`, if it is one the cache keeps.
    pub(crate) fn of(read: &CoordRead) -> Option<AccessKey> {
        match read {
            CoordRead::TokenOwner(TokenOwner { hash }) => Some(AccessKey::Token(hash.clone())),
            CoordRead::GetAccess(GetAccess { ctx, agent }) => {
                Some(AccessKey::Access { ctx: ctx.as_str().to_owned(), agent: agent.clone() })
            }
            _ => None,
        }
    }
}

/// A read's ticket: the generation when it began.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket(u64);

#[derive(Default)]
pub(crate) struct AccessCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Advanced when a batch that changes access starts committing and
    /// again when it is done.
    generation: u64,
    /// Whether such a batch is committing.
    pending: bool,
    entries: HashMap<AccessKey, CoordOutput>,
    /// The entries' weight.
    weight: usize,
}

impl AccessCache {
    /// The cached answer to `key`.
    pub(crate) fn get(&self, key: &AccessKey) -> Option<CoordOutput> {
        self.lock().entries.get(key).cloned()
    }

    /// Taken before reading the database.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.lock().generation)
    }

    /// Keeps `out`, read from the database after `ticket` was taken, unless
    /// a batch that changes access started committing since.
    pub(crate) fn fill(&self, key: AccessKey, ticket: Ticket, out: &CoordOutput) {
        let mut inner = self.lock();
        if inner.pending || inner.generation != ticket.0 {
            return;
        }
        let added = weight(out);
        let replaced = inner.entries.get(&key).map_or(0, weight);
        if inner.weight - replaced + added > MAX_WEIGHT {
            inner.clear();
        }
        if let Some(old) = inner.entries.insert(key, out.clone()) {
            inner.weight -= weight(&old);
        }
        inner.weight += added;
    }

    /// Before a batch that changes access commits.
    pub(crate) fn begin(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.pending = true;
        inner.clear();
    }

    /// After it committed (or failed to), before it answers.
    pub(crate) fn finish(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.pending = false;
        inner.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn clear(&mut self) {
        self.entries.clear();
        self.weight = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::coord::*;
    use crate::sqlite::{SqliteConfig, SqliteStore};

    /// The store keeps a token's owner once read, forgets it when a batch
    /// changes tokens or agents, and keeps it through writes that do not
    /// (the audit records every request appends).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_store_answers_token_owners_from_memory_until_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(SqliteConfig::new(dir.path().join("db.sqlite"))).unwrap();
        let store: &dyn Store = &sqlite;
        let spec = serde_json::from_value(serde_json::json!({"id": "holder"})).unwrap();
        store.coord(Register(spec)).await.unwrap();
        store.coord(SetToken { agent: "holder".into(), hash: "h".into() }).await.unwrap();
        let owner = || store.coord(TokenOwner { hash: "h".into() });
        let cached = || sqlite.access.get(&key());
        assert!(cached().is_none());
        assert_eq!(owner().await.unwrap().id, "holder");
        assert!(matches!(cached(), Some(CoordOutput::Agent(a)) if a.id == "holder"));
        let record = ctxmesh_core::access::AuditRecord {
            seq: 0,
            at: chrono::Utc::now(),
            agent: "holder".into(),
            action: "read".into(),
            resource: "GET /v1/contexts/x".into(),
            context: "x".into(),
            allowed: true,
            reason: "grant".into(),
        };
        store.coord(AppendAudit(vec![record])).await.unwrap();
        assert!(cached().is_some(), "writes that change no access keep it");
        store.coord(Heartbeat { id: "holder".into() }).await.unwrap();
        assert!(cached().is_none(), "the agent changed");
        owner().await.unwrap();
        store.coord(RevokeTokens { agent: "holder".into() }).await.unwrap();
        assert!(cached().is_none(), "forgotten before the revocation is answered");
        assert!(owner().await.is_err());
        assert!(cached().is_none(), "unknown tokens are not kept");
    }

    fn key() -> AccessKey {
        AccessKey::Token("h".into())
    }

    #[test]
    fn the_cache_starts_over_past_its_weight() {
        let cache = AccessCache::default();
        let t = cache.ticket();
        for i in 0..MAX_WEIGHT {
            cache.fill(AccessKey::Token(i.to_string()), t, &CoordOutput::Unit);
        }
        cache.fill(AccessKey::Token("0".into()), t, &CoordOutput::Unit);
        assert!(cache.get(&AccessKey::Token("1".into())).is_some(), "a refill weighs nothing more");
        cache.fill(key(), t, &CoordOutput::Unit);
        assert!(cache.get(&AccessKey::Token("1".into())).is_none(), "started over");
        assert!(cache.get(&key()).is_some());
    }

    #[test]
    fn a_fill_is_kept_until_a_change_commits() {
        let cache = AccessCache::default();
        let t = cache.ticket();
        cache.fill(key(), t, &CoordOutput::Unit);
        assert!(matches!(cache.get(&key()), Some(CoordOutput::Unit)));
        cache.begin();
        assert!(cache.get(&key()).is_none(), "emptied before the change commits");
        cache.finish();
        assert!(cache.get(&key()).is_none());
    }

    #[test]
    fn reads_that_may_have_seen_the_old_state_do_not_fill() {
        let cache = AccessCache::default();
        // Began before the commit: refused, during it and after.
        let before = cache.ticket();
        cache.begin();
        cache.fill(key(), before, &CoordOutput::Unit);
        assert!(cache.get(&key()).is_none());
        // Began during the commit (may read either state): refused.
        let during = cache.ticket();
        cache.fill(key(), during, &CoordOutput::Unit);
        assert!(cache.get(&key()).is_none());
        cache.finish();
        cache.fill(key(), before, &CoordOutput::Unit);
        cache.fill(key(), during, &CoordOutput::Unit);
        assert!(cache.get(&key()).is_none());
        // Began after: kept.
        let after = cache.ticket();
        cache.fill(key(), after, &CoordOutput::Unit);
        assert!(cache.get(&key()).is_some());
    }
}
