//! [`PlanBuilder`]: the rows of one revision of one context (versions,
//! the commit, events, conflict records). Transactions, rollbacks,
//! expiries and forks all build their plans with it, so every write path
//! versions entries and emits events the same way.

use serde_json::Value;

use super::*;

/// Builds a [`Plan`] for one revision of one context.
#[derive(Debug)]
pub struct PlanBuilder {
    context: String,
    revision: u64,
    author: String,
    now: Timestamp,
    plan_kind: String,
    changes: Vec<Change>,
    events: Vec<Event>,
    entry_count_delta: i64,
    conflicts: Vec<Conflict>,
}

impl PlanBuilder {
    /// Starts a plan for the revision after `context.revision`.
    pub fn new(context: &ContextInfo, author: &str, now: Timestamp, kind: &str) -> Self {
        PlanBuilder {
            context: context.id.clone(),
            revision: context.revision + 1,
            author: author.to_owned(),
            now,
            plan_kind: kind.to_owned(),
            changes: Vec::new(),
            events: Vec::new(),
            entry_count_delta: 0,
            conflicts: Vec::new(),
        }
    }

    /// Keeps a conflict record and logs its event (`conflict.detected`,
    /// or `conflict.resolved` once it has a resolution).
    pub fn conflict(&mut self, conflict: Conflict) {
        let kind = if conflict.resolution.is_some() { types::CONFLICT_RESOLVED } else { types::CONFLICT_DETECTED };
        let priority = match conflict.severity {
            Severity::Low => Priority::Normal,
            Severity::High => Priority::High,
        };
        self.event(kind, Some(&conflict.key.clone()), Some(priority), Some(conflict.event_data()));
        self.conflicts.push(conflict);
    }

    /// The id the next conflict of this plan takes.
    pub fn next_conflict_id(&self) -> String {
        format!("{}.{}", self.revision, self.conflicts.len())
    }

    /// The revision being planned.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Writes `value` with `meta` to `key`, whose current entry is `before`;
    /// returns the new entry.
    pub fn put(&mut self, key: &str, before: Option<&Entry>, value: Value, meta: EntryMeta) -> Entry {
        let mut vclock = before.map(|b| b.vclock.clone()).unwrap_or_default();
        *vclock.entry(self.author.clone()).or_insert(0) += 1;
        let entry = Entry {
            key: key.to_owned(),
            value,
            revision: self.revision,
            version: before.map_or(1, |b| b.version + 1),
            created_revision: before.map_or(self.revision, |b| b.created_revision),
            updated_at: self.now,
            author: self.author.clone(),
            meta,
            vclock,
        };
        let kind = if before.is_some() { ChangeKind::Updated } else { ChangeKind::Created };
        if before.is_none() {
            self.entry_count_delta += 1;
        }
        self.entry_event(key, kind, &entry, true);
        self.changes.push(Change { key: key.to_owned(), kind, after: Some(entry.clone()) });
        entry
    }

    /// Removes `before` (the current entry), as a deletion or an expiry.
    pub fn remove(&mut self, before: &Entry, kind: ChangeKind) {
        self.entry_count_delta -= 1;
        self.entry_event(&before.key, kind, before, false);
        self.changes.push(Change { key: before.key.clone(), kind, after: None });
    }

    /// Appends an event that does not change an entry.
    pub fn event(&mut self, kind: &str, key: Option<&str>, priority: Option<Priority>, data: Option<Value>) -> Event {
        let event = Event {
            kind: kind.to_owned(),
            context: self.context.clone(),
            revision: self.revision,
            key: key.map(str::to_owned),
            at: self.now,
            agent: Some(self.author.clone()),
            priority,
            data,
            seq: None,
        };
        self.events.push(event.clone());
        event
    }

    /// The event of a change to `entry` (after a write, or before a
    /// removal). It carries what deciding who may see it needs: the tags,
    /// and whether the entry is confidential (then never its value).
    fn entry_event(&mut self, key: &str, kind: ChangeKind, e: &Entry, written: bool) {
        let mut data = Map::new();
        data.insert("change".into(), kind.as_str().into());
        if written {
            data.insert("version".into(), e.version.into());
            match event_value(&e.value).filter(|_| !e.meta.confidential) {
                Some(v) => data.insert("value".into(), v),
                None => data.insert("value_omitted".into(), true.into()),
            };
            if let Some(k) = &e.meta.kind {
                data.insert("kind".into(), k.clone().into());
            }
        }
        if !e.meta.tags.is_empty() {
            data.insert("tags".into(), e.meta.tags.clone().into());
        }
        if e.meta.confidential {
            data.insert("confidential".into(), true.into());
        }
        self.events.push(Event {
            kind: types::CONTEXT_UPDATED.to_owned(),
            context: self.context.clone(),
            revision: self.revision,
            key: Some(key.to_owned()),
            at: self.now,
            agent: Some(self.author.clone()),
            priority: Some(if written { e.meta.priority } else { Default::default() }),
            data: Some(Value::Object(data)),
            seq: None,
        });
    }

    /// Finishes the plan.
    pub fn finish(self) -> Plan {
        let keys = self.changes.iter().map(|c| c.key.clone()).collect();
        Plan {
            revision: self.revision,
            commit: Commit { revision: self.revision, author: self.author, at: self.now, kind: self.plan_kind, keys },
            changes: self.changes,
            events: self.events,
            entry_count_delta: self.entry_count_delta,
            conflicts: self.conflicts,
        }
    }
}
