//! Access control: what a grant allows ([`Permission`], [`Grant`]), the
//! policy rules that allow or deny beyond grants ([`PolicyRule`]), which
//! entries a request may touch ([`EntryScope`]), the decision itself
//! ([`Access::decide`], [`Access::scope`]) and the audit record of each
//! decision. Pure: the store loads an [`Access`] (the agent, its grant,
//! whether it created the context, the rules) and asks it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Timestamp;
use crate::agent::{Agent, Trust};
use crate::error::{Error, Result};

/// What a grant allows on a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Read entries, history, events, watches, locks and tasks.
    Read,
    /// Write entries, run transactions, take locks, assign tasks.
    Write,
    /// Grant and revoke access for other agents.
    Share,
    /// Everything, including settings and deletion.
    Admin,
}

impl Permission {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Share => "share",
            Permission::Admin => "admin",
        }
    }
}

/// Access of one agent to one context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Grant {
    /// The context.
    pub context: String,
    /// The agent.
    pub agent: String,
    /// What it may do; `admin` implies the others.
    pub permissions: Vec<Permission>,
    /// When the grant lapses, if ever.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Who granted it.
    pub granted_by: String,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub granted_at: Timestamp,
}

impl Grant {
    /// Whether the grant allows `needed` at `now`.
    pub fn allows(&self, needed: Permission, now: Timestamp) -> bool {
        self.in_force(now) && self.permissions.iter().any(|p| *p == needed || *p == Permission::Admin)
    }

    /// Whether the grant has not lapsed at `now`.
    pub fn in_force(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

/// One access decision, as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// Its position in the log (assigned when stored; 0 before).
    #[serde(default)]
    pub seq: u64,
    /// When the decision was made.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The agent that asked.
    pub agent: String,
    /// What it asked to do: `read`, `write`, `share`, `admin`, or `authenticate` (a refused token).
    pub action: String,
    /// The request (`GET /v1/contexts/c/entries/k`).
    pub resource: String,
    /// The context concerned.
    pub context: String,
    /// Whether it was allowed.
    pub allowed: bool,
    /// Why: `admin`, `creator`, `grant`, or what was missing.
    pub reason: String,
}

/// Whether a policy rule allows or denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Grants access to the agents and contexts it matches.
    Allow,
    /// Refuses access, whatever else allows it (deny wins).
    Deny,
}

/// An access policy rule over context ids, agent ids and trust levels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// The rule's id (the alphabet of context ids).
    pub id: String,
    /// Allow or deny.
    pub effect: Effect,
    /// Context ids it applies to; `*` matches any run of characters
    /// (default `*`).
    #[serde(default = "any")]
    pub contexts: String,
    /// Agent ids it applies to, with `*` (default `*`).
    #[serde(default = "any")]
    pub agents: String,
    /// Only agents trusted at least this much.
    #[serde(default)]
    pub min_trust: Option<crate::agent::Trust>,
    /// Only agents trusted at most this much.
    #[serde(default)]
    pub max_trust: Option<crate::agent::Trust>,
    /// The permissions it concerns (default: all).
    #[serde(default = "all_permissions")]
    pub permissions: Vec<Permission>,
    /// Only entries whose key matches this pattern (see
    /// [`crate::ids::KeyPattern`]). A rule with `keys` or `tags` is decided
    /// entry by entry, and concerns `read` and `write` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub keys: Option<crate::ids::KeyPattern>,
    /// Only entries carrying at least one of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Why the rule exists.
    #[serde(default)]
    pub description: Option<String>,
}

fn any() -> String {
    "*".to_owned()
}

fn all_permissions() -> Vec<Permission> {
    vec![Permission::Read, Permission::Write, Permission::Share, Permission::Admin]
}

/// `pattern` with `*` matching any run of characters, against `text`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

impl PolicyRule {
    /// Checks the rule.
    pub fn validate(&self) -> Result<()> {
        crate::agent::parse_agent_id(&self.id)
            .map_err(|_| Error::invalid("id", "a rule id uses the alphabet of context ids"))?;
        for (field, pattern) in [("contexts", &self.contexts), ("agents", &self.agents)] {
            let ok = !pattern.is_empty()
                && pattern.len() <= 128
                && pattern.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-*".contains(&b));
            if !ok {
                return Err(Error::invalid(field, "a pattern is 1 to 128 characters of ids and *"));
            }
        }
        if self.permissions.is_empty() {
            return Err(Error::invalid("permissions", "name at least one permission"));
        }
        if self.tags.iter().any(|t| !crate::ids::chars_within(t, 1, 128)) {
            return Err(Error::invalid("tags", "a tag has 1 to 128 characters"));
        }
        Ok(())
    }

    /// Whether the rule names entries (by `keys` or `tags`) rather than
    /// whole contexts.
    pub fn is_entry_rule(&self) -> bool {
        self.keys.is_some() || !self.tags.is_empty()
    }

    /// Whether the entry at `key` carrying `tags` is one the rule names.
    pub fn names_entry(&self, key: &str, tags: &[String]) -> bool {
        self.keys.as_ref().is_none_or(|p| p.matches(key))
            && (self.tags.is_empty() || self.tags.iter().any(|t| tags.contains(t)))
    }

    /// Whether the rule applies to `agent` (with `trust`) doing `needed`
    /// on `context`.
    pub fn applies(&self, context: &str, agent: &str, trust: crate::agent::Trust, needed: Permission) -> bool {
        glob_match(&self.contexts, context)
            && glob_match(&self.agents, agent)
            && self.min_trust.is_none_or(|m| trust >= m)
            && self.max_trust.is_none_or(|m| trust <= m)
            && self.permissions.iter().any(|p| *p == needed || *p == Permission::Admin)
    }
}

/// Which entries of one context an agent may read, or write: the
/// entry-level half of an access decision, made once per request (or per
/// stream) and then applied to each entry without reading the store.
///
/// An entry is permitted when no deny rule that names entries names it;
/// it is confidential, then only for an agent that may read confidential
/// entries (the admin, the context's creator, the holder of a grant with
/// `read`; never a policy) or that wrote it last; and the agent may use
/// every entry of the context (`whole`) or an allow rule names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryScope {
    /// Every entry (the admin, the creator, a grant, a context-wide allow
    /// rule), unless a deny rule names it.
    pub whole: bool,
    /// Allow rules that name entries.
    pub allow: Vec<PolicyRule>,
    /// Deny rules that name entries.
    pub deny: Vec<PolicyRule>,
    /// May read confidential entries.
    pub confidential: bool,
    /// The agent (the last writer of a confidential entry reads it).
    pub agent: String,
}

impl EntryScope {
    /// Every entry: the admin, or a server without authentication.
    pub fn all() -> Self {
        EntryScope { whole: true, confidential: true, ..Default::default() }
    }

    /// No entry at all.
    pub fn none() -> Self {
        EntryScope::default()
    }

    /// The entries of `context` whose key matches one of `patterns` (what
    /// a handoff hands `agent`), confidential ones left out.
    pub fn of_keys(context: &str, agent: &str, patterns: &[crate::ids::KeyPattern]) -> Self {
        let allow = patterns
            .iter()
            .map(|pattern| PolicyRule {
                id: "handoff-keys".to_owned(),
                effect: Effect::Allow,
                contexts: context.to_owned(),
                agents: agent.to_owned(),
                min_trust: None,
                max_trust: None,
                permissions: vec![Permission::Read],
                keys: Some(pattern.clone()),
                tags: Vec::new(),
                description: None,
            })
            .collect();
        EntryScope { whole: false, allow, deny: Vec::new(), confidential: false, agent: agent.to_owned() }
    }

    /// Whether the scope permits every entry there is or will be.
    pub fn is_all(&self) -> bool {
        self.whole && self.deny.is_empty() && self.confidential
    }

    /// Whether the entry at `key`, with `tags`, `confidential` and last
    /// written by `author`, is permitted.
    pub fn permits(&self, key: &str, tags: &[String], confidential: bool, author: Option<&str>) -> bool {
        if self.deny.iter().any(|r| r.names_entry(key, tags)) {
            return false;
        }
        if confidential && !self.confidential && author != Some(self.agent.as_str()) {
            return false;
        }
        self.whole || self.allow.iter().any(|r| r.names_entry(key, tags))
    }

    /// Whether `entry` is permitted.
    pub fn permits_entry(&self, entry: &crate::Entry) -> bool {
        self.permits(&entry.key, &entry.meta.tags, entry.meta.confidential, Some(&entry.author))
    }

    /// Whether `event` may be delivered: an entry event (`context.updated`,
    /// `conflict.*`) when its entry is permitted (its data carries the
    /// tags and the confidential flag); any other event of the context,
    /// always.
    pub fn permits_event(&self, event: &crate::Event) -> bool {
        use crate::event::types;
        let entry_event =
            [types::CONTEXT_UPDATED, types::CONFLICT_DETECTED, types::CONFLICT_RESOLVED, types::CONTEXT_BROADCAST];
        let Some(key) = event.key.as_deref().filter(|_| entry_event.contains(&event.kind.as_str())) else {
            return true;
        };
        if self.is_all() {
            return true;
        }
        let data = event.data.as_ref();
        let tags: Vec<String> =
            data.and_then(|d| d.get("tags")).and_then(|t| serde_json::from_value(t.clone()).ok()).unwrap_or_default();
        let confidential = data.and_then(|d| d.get("confidential")).and_then(|c| c.as_bool()).unwrap_or(false);
        self.permits(key, &tags, confidential, event.agent.as_deref())
    }
}

/// What decides an agent's access to a context: its grant, whether it
/// created the context, its registration (capabilities, trust) and the
/// policy rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// The context.
    pub context: String,
    /// The agent created the context (and administers it).
    pub creator: bool,
    /// Its current grant, if any.
    pub grant: Option<Grant>,
    /// Its registration, if it is registered.
    pub agent: Option<Agent>,
    /// Every policy rule.
    pub policies: Vec<PolicyRule>,
}

/// The reasons of refusals that a grant fixes.
const NO_GRANT: &str = "no grant";
const GRANT_EXPIRED: &str = "grant expired";
const LACKING: &str = "the grant lacks ";

impl Access {
    /// Decides whether the agent may do `needed` at `now`, and why:
    /// 1. its capabilities must allow the kind of access (`can_read`,
    ///    `can_write`, `can_share`; sharing is also open to the creator);
    /// 2. a deny rule that matches refuses, whatever else allows (deny wins);
    /// 3. the creator, a current grant, or an allow rule that matches
    ///    allows;
    /// 4. anything else is refused.
    pub fn decide(&self, needed: Permission, now: Timestamp) -> (bool, String) {
        let (id, trust) = match &self.agent {
            Some(a) => (a.id.as_str(), a.trust),
            None => ("", Trust::None),
        };
        if let Some(a) = &self.agent {
            let capable = match needed {
                Permission::Read => a.capabilities.can_read,
                Permission::Write => a.capabilities.can_write,
                Permission::Share => a.capabilities.can_share || self.creator,
                Permission::Admin => true,
            };
            if !capable {
                return (false, format!("capabilities forbid {}", needed.as_str()));
            }
        }
        // Rules that name entries are decided entry by entry (see
        // `scope`); they open a context for reading and writing its
        // entries, and never close it.
        let entry_level = matches!(needed, Permission::Read | Permission::Write);
        let applies = |effect: Effect| {
            self.policies.iter().find(|r| {
                r.effect == effect
                    && r.applies(&self.context, id, trust, needed)
                    && (!r.is_entry_rule() || (effect == Effect::Allow && entry_level))
            })
        };
        if let Some(rule) = applies(Effect::Deny) {
            return (false, format!("denied by policy {}", rule.id));
        }
        if self.creator {
            return (true, "creator".into());
        }
        match &self.grant {
            Some(g) if g.allows(needed, now) => return (true, "grant".into()),
            Some(g) if !g.in_force(now) && applies(Effect::Allow).is_none() => {
                return (false, GRANT_EXPIRED.into());
            }
            _ => {}
        }
        match applies(Effect::Allow) {
            Some(rule) if rule.is_entry_rule() => {
                (true, format!("allowed by policy {} (the entries it names)", rule.id))
            }
            Some(rule) => (true, format!("allowed by policy {}", rule.id)),
            None if self.grant.is_some() => (false, format!("{LACKING}{}", needed.as_str())),
            None => (false, NO_GRANT.into()),
        }
    }

    /// Whether a refusal of [`Access::decide`] (its reason) is for want of
    /// a grant, which a grant with the permission fixes.
    pub fn wants_grant(reason: &str) -> bool {
        reason == NO_GRANT || reason == GRANT_EXPIRED || reason.starts_with(LACKING)
    }

    /// Whether the agent may do `needed` at `now` (see [`Access::decide`]).
    pub fn allows(&self, needed: Permission, now: Timestamp) -> bool {
        self.decide(needed, now).0
    }

    /// Which entries the agent may read (`needed` = read) or write at
    /// `now`: none unless [`Access::decide`] allows the context; every
    /// entry with the creator, a grant or a context-wide allow rule; else
    /// those that allow rules naming entries name. Deny rules naming entries
    /// apply in every case. Confidential entries are readable with the
    /// creator or a grant that includes `read` only.
    pub fn scope(&self, needed: Permission, now: Timestamp) -> EntryScope {
        if !self.allows(needed, now) {
            return EntryScope::none();
        }
        let trust = self.agent.as_ref().map_or(Trust::None, |a| a.trust);
        let id = self.agent.as_ref().map_or("", |a| a.id.as_str());
        let matching = |effect: Effect| -> Vec<PolicyRule> {
            self.policies
                .iter()
                .filter(|r| r.effect == effect && r.applies(&self.context, id, trust, needed))
                .cloned()
                .collect()
        };
        let (allow, deny) = (matching(Effect::Allow), matching(Effect::Deny));
        let granted = self.grant.as_ref().is_some_and(|g| g.allows(needed, now));
        let explicit_read = self.creator || self.grant.as_ref().is_some_and(|g| g.allows(Permission::Read, now));
        EntryScope {
            whole: self.creator || granted || allow.iter().any(|r| !r.is_entry_rule()),
            allow: allow.into_iter().filter(PolicyRule::is_entry_rule).collect(),
            deny: deny.into_iter().filter(PolicyRule::is_entry_rule).collect(),
            confidential: needed != Permission::Read || explicit_read,
            agent: id.to_owned(),
        }
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;
    use crate::agent::Trust;

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("prod-*", "prod-eu"));
        assert!(!glob_match("prod-*", "dev-eu"));
        assert!(glob_match("*-eu", "prod-eu") && glob_match("a*b*c", "aXXbYc") && !glob_match("a*b*c", "aXXbY"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
    }

    #[test]
    fn rules_match_context_agent_trust_and_permission() {
        let rule: PolicyRule = serde_json::from_value(serde_json::json!({
            "id": "r", "effect": "deny", "contexts": "prod-*", "max_trust": "low", "permissions": ["write"]
        }))
        .unwrap();
        rule.validate().unwrap();
        assert!(rule.applies("prod-eu", "x", Trust::Low, Permission::Write));
        assert!(!rule.applies("prod-eu", "x", Trust::High, Permission::Write), "trusted agents are not matched");
        assert!(!rule.applies("prod-eu", "x", Trust::Low, Permission::Read));
        assert!(!rule.applies("dev", "x", Trust::Low, Permission::Write));
        let bad: PolicyRule =
            serde_json::from_value(serde_json::json!({"id": "r", "effect": "allow", "agents": "a b"})).unwrap();
        assert!(bad.validate().is_err());
    }

    fn rule(v: serde_json::Value) -> PolicyRule {
        let rule: PolicyRule = serde_json::from_value(v).unwrap();
        rule.validate().unwrap();
        rule
    }

    #[test]
    fn entry_rules_name_keys_and_tags() {
        let r = rule(serde_json::json!({"id": "r", "effect": "deny", "keys": "secrets/**", "tags": ["pii", "hr"]}));
        assert!(r.is_entry_rule());
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(r.names_entry("secrets/a/b", &tags(&["hr"])));
        assert!(!r.names_entry("secrets/a", &tags(&["public"])), "keys and tags must both match");
        assert!(!r.names_entry("notes/a", &tags(&["pii"])));
        let by_tag = rule(serde_json::json!({"id": "t", "effect": "deny", "tags": ["pii"]}));
        assert!(by_tag.names_entry("anything", &tags(&["x", "pii"])) && !by_tag.names_entry("anything", &[]));
        assert!(
            serde_json::from_value::<PolicyRule>(serde_json::json!({"id": "r", "effect": "deny", "keys": "a//b"}))
                .is_err()
        );
    }

    #[test]
    fn scopes_deny_first_then_confidential_then_allow() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut scope = EntryScope {
            whole: false,
            allow: vec![rule(serde_json::json!({"id": "a", "effect": "allow", "keys": "drafts/*"}))],
            deny: vec![rule(serde_json::json!({"id": "d", "effect": "deny", "tags": ["pii"]}))],
            confidential: false,
            agent: "bob".into(),
        };
        assert!(scope.permits("drafts/x", &[], false, None));
        assert!(!scope.permits("final/x", &[], false, None), "no allow names it");
        assert!(!scope.permits("drafts/x", &tags(&["pii"]), false, None), "deny wins");
        assert!(!scope.permits("drafts/x", &[], true, Some("alice")), "confidential needs explicit read");
        assert!(scope.permits("drafts/x", &[], true, Some("bob")), "its last writer reads it");
        scope.whole = true;
        assert!(scope.permits("final/x", &[], false, None) && !scope.is_all());
        assert!(EntryScope::all().is_all() && EntryScope::all().permits("k", &[], true, None));
        assert!(!EntryScope::none().permits("k", &[], false, None));
    }
}

#[cfg(test)]
mod decision_tests {
    use serde_json::json;

    use super::*;
    use crate::agent::AgentSpec;

    fn now() -> Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").unwrap().with_timezone(&chrono::Utc)
    }

    fn agent(spec: serde_json::Value) -> Agent {
        serde_json::from_value::<AgentSpec>(spec).unwrap().into_agent(now()).unwrap()
    }

    fn rule(v: serde_json::Value) -> PolicyRule {
        let rule: PolicyRule = serde_json::from_value(v).unwrap();
        rule.validate().unwrap();
        rule
    }

    fn grant(permissions: &[Permission], expires_at: Option<Timestamp>) -> Grant {
        serde_json::from_value(json!({
            "context": "c", "agent": "a", "permissions": permissions, "expires_at": expires_at,
            "granted_by": "owner", "granted_at": now(),
        }))
        .unwrap()
    }

    /// The inputs of a decision for agent `a` on context `c`.
    fn access(grant: Option<Grant>, policies: Vec<PolicyRule>) -> Access {
        Access { context: "c".into(), creator: false, grant, agent: Some(agent(json!({"id": "a"}))), policies }
    }

    #[test]
    fn nothing_allows_without_a_grant_a_rule_or_creating_the_context() {
        let a = access(None, vec![]);
        assert_eq!(a.decide(Permission::Read, now()), (false, "no grant".to_owned()));
        assert!(!a.scope(Permission::Read, now()).permits("k", &[], false, None), "no entry either");
    }

    #[test]
    fn the_creator_may_do_anything_a_deny_rule_does_not_forbid() {
        let mut a = access(None, vec![]);
        a.creator = true;
        for p in [Permission::Read, Permission::Write, Permission::Share, Permission::Admin] {
            assert_eq!(a.decide(p, now()), (true, "creator".to_owned()));
        }
        assert!(a.scope(Permission::Read, now()).whole && a.scope(Permission::Read, now()).confidential);
        a.policies = vec![rule(json!({"id": "freeze", "effect": "deny", "contexts": "c", "permissions": ["write"]}))];
        assert_eq!(a.decide(Permission::Write, now()), (false, "denied by policy freeze".to_owned()));
        assert!(a.decide(Permission::Read, now()).0, "the rule names writes only");
    }

    #[test]
    fn a_grant_allows_what_it_names_until_it_expires() {
        let later = now() + chrono::Duration::hours(1);
        let a = access(Some(grant(&[Permission::Read], Some(later))), vec![]);
        assert_eq!(a.decide(Permission::Read, now()), (true, "grant".to_owned()));
        assert_eq!(a.decide(Permission::Write, now()), (false, "the grant lacks write".to_owned()));
        assert_eq!(a.decide(Permission::Read, later), (false, "grant expired".to_owned()));
        assert!(a.scope(Permission::Read, now()).whole, "a grant opens every entry");
        assert!(
            !a.scope(Permission::Write, now()).whole
                && !a.scope(Permission::Write, now()).permits("k", &[], false, None)
        );
    }

    #[test]
    fn capabilities_bound_every_grant() {
        let mut a = access(Some(grant(&[Permission::Read, Permission::Write], None)), vec![]);
        a.agent = Some(agent(json!({"id": "a", "capabilities": {"can_write": false}})));
        assert_eq!(a.decide(Permission::Write, now()), (false, "capabilities forbid write".to_owned()));
        assert!(a.decide(Permission::Read, now()).0);
    }

    #[test]
    fn deny_rules_win_over_grants_and_allow_rules() {
        let deny = rule(json!({"id": "no-low", "effect": "deny", "contexts": "c", "max_trust": "low"}));
        let allow = rule(json!({"id": "open", "effect": "allow", "contexts": "c", "permissions": ["read"]}));
        let mut a = access(Some(grant(&[Permission::Read], None)), vec![allow.clone(), deny]);
        a.agent = Some(agent(json!({"id": "a", "trust": "low"})));
        assert_eq!(a.decide(Permission::Read, now()), (false, "denied by policy no-low".to_owned()));
        let open = access(None, vec![allow]);
        assert_eq!(open.decide(Permission::Read, now()), (true, "allowed by policy open".to_owned()));
        assert!(open.scope(Permission::Read, now()).whole, "a context-wide rule opens every entry");
    }

    #[test]
    fn rules_naming_entries_open_those_entries_only() {
        let drafts = rule(json!({"id": "drafts", "effect": "allow", "contexts": "c", "keys": "drafts/*"}));
        let a = access(None, vec![drafts]);
        let (allowed, reason) = a.decide(Permission::Write, now());
        assert!(allowed && reason.contains("the entries it names"), "{reason}");
        let scope = a.scope(Permission::Write, now());
        assert!(scope.permits("drafts/x", &[], false, None) && !scope.permits("final/x", &[], false, None));
        assert!(!a.decide(Permission::Share, now()).0, "entry rules never open sharing");
        let reads = a.scope(Permission::Read, now());
        assert!(!reads.permits("drafts/x", &[], true, Some("b")), "confidential entries need an explicit read");
    }
}
