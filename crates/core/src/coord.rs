//! Coordination between agents: locks with fencing tokens, handoffs and
//! tasks. Each is a small state machine; the transitions live here so that
//! every backend applies them the same way. Access control is in
//! [`crate::access`].

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{Error, ErrorCode, Result};
use crate::{Timestamp, ms_duration};

/// Validates a lock name: 1 to 128 bytes of `[A-Za-z0-9._~:@/-]`.
pub fn parse_lock_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~:@/-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid("name", "a lock name is 1 to 128 bytes of A-Z a-z 0-9 . _ ~ : @ / -"))
    }
}

/// Longest lock TTL: one day.
pub const MAX_LOCK_TTL_MS: u64 = 86_400_000;

/// Checks a lock TTL (1 ms to one day).
pub fn check_ttl(ttl_ms: u64) -> Result<()> {
    if (1..=MAX_LOCK_TTL_MS).contains(&ttl_ms) {
        Ok(())
    } else {
        Err(Error::invalid("ttl_ms", "must be between 1 and 86400000"))
    }
}

/// A lock of a context, held or free. Its fencing token only ever grows:
/// each acquisition takes the next one, and the token survives release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Lock {
    /// The context.
    pub context: String,
    /// The lock's name within the context.
    pub name: String,
    /// The agent holding it; `None` when free.
    pub holder: Option<String>,
    /// Names this acquisition (`name:token`); `None` when free.
    pub lock_id: Option<String>,
    /// The token of the latest acquisition.
    pub fencing_token: u64,
    /// When the current acquisition was made.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acquired_at: Option<Timestamp>,
    /// When the holder loses it unless refreshed.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

impl Lock {
    /// A lock never acquired.
    pub fn new(context: &str, name: &str) -> Self {
        Lock {
            context: context.to_owned(),
            name: name.to_owned(),
            holder: None,
            lock_id: None,
            fencing_token: 0,
            acquired_at: None,
            expires_at: None,
        }
    }

    /// The holder, if the lock is held at `now`.
    pub fn held_by(&self, now: Timestamp) -> Option<&str> {
        match (&self.holder, self.expires_at) {
            (Some(h), Some(exp)) if exp > now => Some(h),
            _ => None,
        }
    }

    /// Takes the lock for `agent` at `now` for `ttl_ms`, with the next
    /// fencing token; `false` when another agent holds it. The holder
    /// acquiring again gets a new token (the old one is fenced off).
    pub fn acquire(&mut self, agent: &str, now: Timestamp, ttl_ms: u64) -> bool {
        if self.held_by(now).is_some_and(|h| h != agent) {
            return false;
        }
        self.fencing_token += 1;
        self.holder = Some(agent.to_owned());
        self.lock_id = Some(format!("{}:{}", self.name, self.fencing_token));
        self.acquired_at = Some(now);
        self.expires_at = Some(now + ms_duration(ttl_ms));
        true
    }

    /// Checks that `agent` holds this acquisition (`lock_id`, when given)
    /// at `now`.
    pub fn check_holder(&self, agent: &str, lock_id: Option<&str>, now: Timestamp) -> Result<()> {
        let holds = self.held_by(now) == Some(agent) && lock_id.is_none_or(|id| self.lock_id.as_deref() == Some(id));
        if holds {
            Ok(())
        } else {
            Err(Error::Conflict {
                code: ErrorCode::NotHolder,
                message: format!("agent {agent:?} does not hold lock {:?}: acquire it first", self.name),
            })
        }
    }

    /// Extends the holder's acquisition to `now + ttl_ms`.
    pub fn refresh(&mut self, now: Timestamp, ttl_ms: u64) {
        self.expires_at = Some(now + ms_duration(ttl_ms));
    }

    /// Frees the lock; the fencing token stays.
    pub fn release(&mut self) {
        self.holder = None;
        self.lock_id = None;
        self.acquired_at = None;
        self.expires_at = None;
    }

    /// Checks a write fenced with `token`: refused when a newer token for
    /// this lock has been issued.
    pub fn check_fence(&self, token: u64) -> Result<()> {
        if token < self.fencing_token {
            return Err(Error::Fenced { lock: self.name.clone(), token, current: self.fencing_token });
        }
        if token > self.fencing_token {
            return Err(Error::invalid(
                "X-Fencing-Token",
                format!("token {token} of lock {:?} was never issued", self.name),
            ));
        }
        Ok(())
    }
}

/// A fencing token carried by a write: `X-Fencing-Token: <lock>=<token>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Fence {
    /// The lock's name.
    pub lock: String,
    /// The token the writer got when it acquired the lock.
    pub token: u64,
}

impl Fence {
    /// Parses `<lock>=<token>`.
    pub fn parse(header: &str) -> Result<Self> {
        let bad = || Error::invalid("X-Fencing-Token", "expected <lock-name>=<token>, e.g. deploy=7");
        let (lock, token) = header.rsplit_once('=').ok_or_else(bad)?;
        parse_lock_name(lock).map_err(|_| bad())?;
        Ok(Fence { lock: lock.to_owned(), token: crate::ids::parse_decimal(token).ok_or_else(bad)? })
    }
}

/// Where a handoff is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HandoffState {
    /// Waiting for the target.
    Requested,
    /// The target took it.
    Accepted,
    /// The target refused it.
    Rejected,
    /// Its deadline passed before the target answered.
    Expired,
    /// The target finished the work.
    Completed,
}

impl HandoffState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffState::Requested => "requested",
            HandoffState::Accepted => "accepted",
            HandoffState::Rejected => "rejected",
            HandoffState::Expired => "expired",
            HandoffState::Completed => "completed",
        }
    }
}

/// What a handoff does to its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoffAction {
    /// The target takes it.
    Accept,
    /// The target refuses it.
    Reject,
    /// The accepting agent finishes it.
    Complete,
    /// The deadline passed (the server does this).
    Expire,
}

impl HandoffAction {
    /// The state the action leads to.
    pub fn target_state(self) -> HandoffState {
        match self {
            HandoffAction::Accept => HandoffState::Accepted,
            HandoffAction::Reject => HandoffState::Rejected,
            HandoffAction::Complete => HandoffState::Completed,
            HandoffAction::Expire => HandoffState::Expired,
        }
    }

    fn name(self) -> &'static str {
        match self {
            HandoffAction::Accept => "accept",
            HandoffAction::Reject => "reject",
            HandoffAction::Complete => "complete",
            HandoffAction::Expire => "expire",
        }
    }
}

/// The structured context a handoff carries (seed 000's HandoffContext).
/// It is only ever flattened into a handoff (request), which refuses
/// unknown fields itself; closing it too would make the OpenAPI schema of
/// a handoff request one that no object satisfies (`allOf` of two closed
/// objects).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HandoffContext {
    /// The user session the work belongs to.
    #[serde(default)]
    pub session: Option<String>,
    /// What the user wants, in words.
    #[serde(default)]
    pub user_intent: Option<String>,
    /// The conversation so far (messages as the client shapes them).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub conversation_history: Vec<Value>,
    /// Entities extracted so far (names, ids, amounts...).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub extracted_entities: serde_json::Map<String, Value>,
}

/// A request to hand work over (`POST /v1/handoffs`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoffRequest {
    /// The agent asked to take over (must be registered).
    pub target: String,
    /// The context the work is in.
    pub context: String,
    /// The context revision the handoff refers to (default: the current one).
    #[serde(default)]
    pub revision: Option<u64>,
    /// Keys (or patterns) of the context the target should read.
    #[serde(default)]
    pub keys: Vec<String>,
    /// A package for the target, as the source prepared it.
    #[serde(default)]
    pub package: Option<Value>,
    /// The structured context.
    #[serde(flatten)]
    pub handoff: HandoffContext,
    /// Milliseconds the target has to accept or reject (default one hour).
    #[serde(default = "default_handoff_ms")]
    pub deadline_ms: u64,
    /// Free text for the target.
    #[serde(default)]
    pub note: Option<String>,
}

fn default_handoff_ms() -> u64 {
    3_600_000
}

/// A handoff, as stored and returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Handoff {
    /// Its id.
    pub id: String,
    /// Where it is in its life (read from `state` too, its former name).
    #[serde(alias = "state")]
    pub status: HandoffState,
    /// The agent handing over.
    pub source: String,
    /// The agent asked to take over.
    pub target: String,
    /// The context of the work.
    pub context: String,
    /// The context revision it refers to.
    pub revision: u64,
    /// Keys the target should read.
    pub keys: Vec<String>,
    /// A prepared package, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<Value>,
    /// Session, intent, conversation, entities.
    #[serde(flatten)]
    pub handoff: HandoffContext,
    /// Free text for the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The target must answer before this.
    #[schema(value_type = String, format = DateTime)]
    pub deadline: Timestamp,
    /// Why it was rejected, or what completed it (`result`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Value>,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Time of the last transition.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl HandoffRequest {
    /// Validates the request and builds the handoff.
    pub fn into_handoff(self, id: String, source: &str, revision: u64, now: Timestamp) -> Result<Handoff> {
        crate::agent::parse_agent_id(&self.target)?;
        if self.target == source {
            return Err(Error::invalid("target", "an agent cannot hand off to itself"));
        }
        for key in &self.keys {
            crate::ids::KeyPattern::parse(key).map_err(|e| Error::invalid("keys", e.to_string()))?;
        }
        if !(1000..=30 * 86_400_000).contains(&self.deadline_ms) {
            return Err(Error::invalid("deadline_ms", "must be between 1000 and 2592000000 (30 days)"));
        }
        Ok(Handoff {
            id,
            status: HandoffState::Requested,
            source: source.to_owned(),
            target: self.target,
            context: self.context,
            revision,
            keys: self.keys,
            package: self.package,
            handoff: self.handoff,
            note: self.note,
            deadline: now + ms_duration(self.deadline_ms),
            outcome: None,
            created_at: now,
            updated_at: now,
        })
    }
}

impl Handoff {
    /// Applies `action` by `agent` at `now`: only the target accepts or
    /// rejects, only a requested handoff can be, and only the target of an
    /// accepted one completes it. An illegal step is `409
    /// invalid_transition`; the wrong agent is `403 forbidden`.
    pub fn transition(
        &mut self,
        action: HandoffAction,
        agent: &str,
        outcome: Option<Value>,
        now: Timestamp,
    ) -> Result<()> {
        let allowed_from = match action {
            HandoffAction::Accept | HandoffAction::Reject | HandoffAction::Expire => HandoffState::Requested,
            HandoffAction::Complete => HandoffState::Accepted,
        };
        if self.status != allowed_from {
            return Err(Error::Conflict {
                code: ErrorCode::InvalidTransition,
                message: format!(
                    "handoff {} is {}: it cannot {} (only a {} handoff can)",
                    self.id,
                    self.status.as_str(),
                    action.name(),
                    allowed_from.as_str()
                ),
            });
        }
        if action != HandoffAction::Expire && agent != self.target {
            return Err(Error::Forbidden {
                reason: format!("only the target agent {:?} can {} handoff {}", self.target, action.name(), self.id),
            });
        }
        self.status = action.target_state();
        self.updated_at = now;
        if outcome.is_some() {
            self.outcome = outcome;
        }
        Ok(())
    }
}

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for its assignee.
    Assigned,
    /// Done, with its output.
    Completed,
}

impl TaskState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Assigned => "assigned",
            TaskState::Completed => "completed",
        }
    }
}

/// A request to assign a task (`POST /v1/contexts/{ctx}/tasks`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// The agent to do it (must be registered).
    pub assignee: String,
    /// A short title.
    pub title: String,
    /// What to do, as the client shapes it.
    #[serde(default)]
    pub input: Option<Value>,
    /// Its priority (default normal).
    #[serde(default)]
    pub priority: crate::Priority,
}

/// A task, as stored and returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    /// Its id.
    pub id: String,
    /// The context it belongs to.
    pub context: String,
    /// The agent to do it.
    pub assignee: String,
    /// The agent that assigned it.
    pub assigned_by: String,
    /// A short title.
    pub title: String,
    /// What to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Its priority.
    pub priority: crate::Priority,
    /// Where it is (read from `state` too, its former name).
    #[serde(alias = "state")]
    pub status: TaskState,
    /// What the assignee produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Completion time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<Timestamp>,
}

impl TaskRequest {
    /// Validates the request and builds the task.
    pub fn into_task(self, id: String, context: &str, by: &str, now: Timestamp) -> Result<Task> {
        crate::agent::parse_agent_id(&self.assignee)?;
        if !crate::ids::chars_within(&self.title, 1, 1024) {
            return Err(Error::invalid("title", "must be 1 to 1024 characters"));
        }
        Ok(Task {
            id,
            context: context.to_owned(),
            assignee: self.assignee,
            assigned_by: by.to_owned(),
            title: self.title,
            input: self.input,
            priority: self.priority,
            status: TaskState::Assigned,
            output: None,
            created_at: now,
            completed_at: None,
        })
    }
}

impl Task {
    /// Completes the task with `output`: only its assignee, only once.
    pub fn complete(&mut self, agent: &str, output: Option<Value>, now: Timestamp) -> Result<()> {
        if self.status == TaskState::Completed {
            return Err(Error::Conflict {
                code: ErrorCode::InvalidTransition,
                message: format!("task {} is already completed", self.id),
            });
        }
        if agent != self.assignee {
            return Err(Error::Forbidden {
                reason: format!("only the assignee {:?} can complete task {}", self.assignee, self.id),
            });
        }
        self.status = TaskState::Completed;
        self.output = output;
        self.completed_at = Some(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        chrono::Utc::now()
    }

    #[test]
    fn fencing_tokens_only_grow() {
        let t = now();
        let mut lock = Lock::new("c", "deploy");
        assert!(lock.acquire("a", t, 1000));
        assert_eq!((lock.fencing_token, lock.lock_id.as_deref()), (1, Some("deploy:1")));
        assert!(!lock.acquire("b", t, 1000), "held by another");
        let later = t + ms_duration(1500);
        assert!(lock.held_by(later).is_none(), "expired");
        assert!(lock.acquire("b", later, 1000));
        assert_eq!(lock.fencing_token, 2);
        assert_eq!(lock.check_fence(1).unwrap_err().code(), "fenced");
        assert!(lock.check_fence(2).is_ok());
        lock.release();
        assert_eq!(lock.fencing_token, 2, "release keeps the token");
        assert_eq!(lock.check_holder("b", None, later).unwrap_err().code(), "not_holder");
    }

    #[test]
    fn fence_header() {
        assert_eq!(Fence::parse("deploy=7").unwrap(), Fence { lock: "deploy".into(), token: 7 });
        assert!(Fence::parse("deploy").is_err());
        assert!(Fence::parse("de ploy=1").is_err());
        assert!(Fence::parse("deploy=x").is_err());
    }

    fn handoff() -> Handoff {
        let req: HandoffRequest = serde_json::from_value(serde_json::json!({
            "target": "writer", "context": "c", "user_intent": "draft the post", "session": "s1"
        }))
        .unwrap();
        req.into_handoff("h1".into(), "researcher", 3, now()).unwrap()
    }

    #[test]
    fn handoff_state_machine() {
        let t = now();
        let mut h = handoff();
        assert_eq!(h.handoff.user_intent.as_deref(), Some("draft the post"));
        assert_eq!(h.transition(HandoffAction::Complete, "writer", None, t).unwrap_err().code(), "invalid_transition");
        assert_eq!(h.transition(HandoffAction::Accept, "researcher", None, t).unwrap_err().code(), "forbidden");
        h.transition(HandoffAction::Accept, "writer", None, t).unwrap();
        for action in [HandoffAction::Accept, HandoffAction::Reject, HandoffAction::Expire] {
            assert_eq!(h.transition(action, "writer", None, t).unwrap_err().code(), "invalid_transition");
        }
        h.transition(HandoffAction::Complete, "writer", Some(serde_json::json!({"ok": true})), t).unwrap();
        assert_eq!(h.status, HandoffState::Completed);
        assert_eq!(h.transition(HandoffAction::Complete, "writer", None, t).unwrap_err().code(), "invalid_transition");
        let mut r = handoff();
        r.transition(HandoffAction::Reject, "writer", None, t).unwrap();
        assert_eq!(r.transition(HandoffAction::Accept, "writer", None, t).unwrap_err().code(), "invalid_transition");
    }

    #[test]
    fn tasks_complete_once_by_their_assignee() {
        let req: TaskRequest = serde_json::from_value(serde_json::json!({"assignee": "w", "title": "t"})).unwrap();
        let mut task = req.into_task("t1".into(), "c", "boss", now()).unwrap();
        assert_eq!(task.complete("boss", None, now()).unwrap_err().code(), "forbidden");
        task.complete("w", Some(serde_json::json!(42)), now()).unwrap();
        assert_eq!(task.complete("w", None, now()).unwrap_err().code(), "invalid_transition");
    }
}
