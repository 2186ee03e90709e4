//! Agents: who takes part, what it can do, what context it needs, and
//! whether it is alive (a lease renewed by heartbeats).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::ids::{ContextId, KeyPattern};
use crate::{Timestamp, ms_duration};

/// Validates an agent id: the alphabet of context ids.
pub fn parse_agent_id(id: &str) -> Result<String> {
    ContextId::parse(id).map(|c| c.as_str().to_owned())
}

/// How far an agent is trusted; ordered from `none` to `full`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// Not trusted at all.
    None,
    /// The default for a new agent.
    #[default]
    Low,
    /// Trusted for ordinary work.
    Medium,
    /// Trusted to override others.
    High,
    /// Fully trusted (operators, supervisors).
    Full,
}

/// Liveness of an agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// Its lease is current.
    #[default]
    Active,
    /// It said it is idle (`PATCH` with `"status": "inactive"`); its lease
    /// still runs.
    Inactive,
    /// Its lease lapsed: its locks were released. A heartbeat revives it.
    Disconnected,
}

impl AgentStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "active",
            AgentStatus::Inactive => "inactive",
            AgentStatus::Disconnected => "disconnected",
        }
    }
}

/// What an agent can do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// May read contexts (default true).
    #[serde(default = "yes")]
    pub can_read: bool,
    /// May write contexts (default true).
    #[serde(default = "yes")]
    pub can_write: bool,
    /// May share contexts with other agents (default false).
    #[serde(default)]
    pub can_share: bool,
    /// Most contexts it works on at once (default 8; at least 1).
    #[serde(default = "default_max_contexts")]
    pub max_concurrent_contexts: u32,
    /// Entry kinds it handles; `*` for any (the default).
    #[serde(default = "any_kind")]
    pub supported_kinds: Vec<String>,
    /// Free capability strings (`search`, `summarize`, ...), matched by
    /// `GET /v1/agents?capability=`. Also accepted as `capabilities`.
    #[serde(default, alias = "capabilities")]
    pub custom: Vec<String>,
}

fn yes() -> bool {
    true
}

fn default_max_contexts() -> u32 {
    8
}

fn any_kind() -> Vec<String> {
    vec!["*".to_owned()]
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            can_read: true,
            can_write: true,
            can_share: false,
            max_concurrent_contexts: default_max_contexts(),
            supported_kinds: any_kind(),
            custom: Vec::new(),
        }
    }
}

impl Capabilities {
    fn validate(&self) -> Result<()> {
        if self.max_concurrent_contexts == 0 {
            return Err(Error::invalid("capabilities.max_concurrent_contexts", "must be at least 1"));
        }
        if self.supported_kinds.is_empty() {
            return Err(Error::invalid("capabilities.supported_kinds", "must not be empty: use [\"*\"] for any kind"));
        }
        if self.supported_kinds.iter().chain(&self.custom).any(|s| !crate::ids::chars_within(s, 1, 128)) {
            return Err(Error::invalid("capabilities", "kinds and capability strings are 1 to 128 characters"));
        }
        Ok(())
    }

    /// Whether the agent has capability `name`: a free string, or one of
    /// `can_read`, `can_write`, `can_share`.
    pub fn has(&self, name: &str) -> bool {
        match name {
            "can_read" => self.can_read,
            "can_write" => self.can_write,
            "can_share" => self.can_share,
            other => self.custom.iter().any(|c| c == other),
        }
    }
}

/// Which entries an agent consumes (`needs`) or writes (`produces`):
/// entry kinds, tags, key patterns and plain names, minus what `exclude`
/// names. It is written as an object of those, or as a plain list of
/// names (`["key_findings", "brand/guidelines"]`, as seed 001's context
/// maps are): a name matches an entry by its kind, one of its tags, its
/// key, or a prefix of its key up to a `/`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ContextMap {
    /// Entry kinds.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Entry tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Key patterns (`findings/*`, `brand/**`).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Plain names: each matches an entry of that kind, with that tag, at
    /// that key, or under it (`brand/guidelines` matches
    /// `brand/guidelines/tone`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// What not to include even when the above match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion, value_type = Option<Object>)]
    pub exclude: Option<Box<ContextMap>>,
}

/// The object form of a [`ContextMap`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextMapFields {
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    exclude: Option<Box<ContextMap>>,
}

impl<'de> Deserialize<'de> for ContextMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};

        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = ContextMap;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of kinds, tags, keys, names and exclude, or a list of names")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> std::result::Result<ContextMap, A::Error> {
                let names = Vec::<String>::deserialize(SeqAccessDeserializer::new(seq))?;
                Ok(ContextMap { names, ..ContextMap::default() })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> std::result::Result<ContextMap, A::Error> {
                let f = ContextMapFields::deserialize(MapAccessDeserializer::new(map))?;
                Ok(ContextMap { kinds: f.kinds, tags: f.tags, keys: f.keys, names: f.names, exclude: f.exclude })
            }
        }
        deserializer.deserialize_any(Either)
    }
}

/// The longest name of a context map, in characters.
pub const MAX_MAP_NAME_CHARS: usize = 128;

impl ContextMap {
    /// Checks its key patterns and names; `field` names it in the error.
    pub fn validate(&self, field: &str) -> Result<()> {
        for key in &self.keys {
            KeyPattern::parse(key).map_err(|e| Error::invalid(format!("{field}.keys"), e.to_string()))?;
        }
        for name in &self.names {
            let chars = name.chars().count();
            if chars == 0 || chars > MAX_MAP_NAME_CHARS {
                return Err(Error::invalid(
                    format!("{field}.names"),
                    format!("a name is 1 to {MAX_MAP_NAME_CHARS} characters"),
                ));
            }
        }
        if let Some(exclude) = &self.exclude {
            if exclude.exclude.is_some() {
                return Err(Error::invalid(format!("{field}.exclude"), "cannot itself have an exclude"));
            }
            exclude.validate(&format!("{field}.exclude"))?;
        }
        Ok(())
    }
}

/// What a client sends to register an agent.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// The agent id (the alphabet of context ids).
    pub id: String,
    /// A display name (default: the id).
    #[serde(default)]
    pub name: Option<String>,
    /// What it can do.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// The context it consumes.
    #[serde(default)]
    pub needs: ContextMap,
    /// The context it writes.
    #[serde(default)]
    pub produces: ContextMap,
    /// What it is for, in words (used for relevance).
    #[serde(default)]
    pub objective: String,
    /// Tokens of context it can take per package (default 8000).
    #[serde(default = "default_budget")]
    pub token_budget: u64,
    /// Trust level (default `low`).
    #[serde(default)]
    pub trust: Trust,
    /// Liveness lease in milliseconds, renewed by each heartbeat
    /// (default 30000; 1000 to 86400000).
    #[serde(default = "default_lease_ms")]
    #[schema(minimum = 1000, maximum = 86_400_000)]
    pub lease_ms: u64,
    /// Free labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_budget() -> u64 {
    8000
}

fn default_lease_ms() -> u64 {
    30_000
}

/// A registered agent, as stored and as returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    /// The agent id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it can do.
    pub capabilities: Capabilities,
    /// The context it consumes.
    pub needs: ContextMap,
    /// The context it writes.
    pub produces: ContextMap,
    /// What it is for.
    pub objective: String,
    /// Tokens of context per package.
    pub token_budget: u64,
    /// Trust level.
    pub trust: Trust,
    /// Liveness.
    pub status: AgentStatus,
    /// Lease length in milliseconds.
    pub lease_ms: u64,
    /// When the lease lapses unless renewed.
    #[schema(value_type = String, format = DateTime)]
    pub lease_expires_at: Timestamp,
    /// Last heartbeat (or registration).
    #[schema(value_type = String, format = DateTime)]
    pub last_heartbeat_at: Timestamp,
    /// Registration time.
    #[schema(value_type = String, format = DateTime)]
    pub registered_at: Timestamp,
    /// Free labels.
    pub labels: BTreeMap<String, String>,
}

impl AgentSpec {
    /// Validates the registration and builds the agent, active with a
    /// fresh lease at `now`.
    pub fn into_agent(self, now: Timestamp) -> Result<Agent> {
        let id = parse_agent_id(&self.id)?;
        let mut agent = Agent {
            name: self.name.unwrap_or_else(|| id.clone()),
            id,
            capabilities: self.capabilities,
            needs: self.needs,
            produces: self.produces,
            objective: self.objective,
            token_budget: self.token_budget,
            trust: self.trust,
            status: AgentStatus::Active,
            lease_ms: self.lease_ms,
            lease_expires_at: now,
            last_heartbeat_at: now,
            registered_at: now,
            labels: self.labels,
        };
        agent.validate()?;
        // Only a lease known to be valid is added to the clock: a huge one
        // would overflow it.
        agent.lease_expires_at = now + ms_duration(agent.lease_ms);
        Ok(agent)
    }
}

impl Agent {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if !crate::ids::chars_within(&self.name, 1, 256) {
            return Err(Error::invalid("name", "must be 1 to 256 characters"));
        }
        self.capabilities.validate()?;
        crate::context::check_labels(&self.labels)?;
        self.needs.validate("needs")?;
        self.produces.validate("produces")?;
        if self.objective.len() > 64 * 1024 {
            return Err(Error::invalid("objective", "must be at most 64 KiB"));
        }
        if self.token_budget == 0 {
            return Err(Error::invalid("token_budget", "must be positive"));
        }
        if !(1000..=86_400_000).contains(&self.lease_ms) {
            return Err(Error::invalid("lease_ms", "must be between 1000 and 86400000"));
        }
        Ok(())
    }

    /// Renews the lease at `now`; a disconnected agent is active again.
    pub fn heartbeat(&mut self, now: Timestamp) {
        self.last_heartbeat_at = now;
        self.lease_expires_at = now + ms_duration(self.lease_ms);
        if self.status == AgentStatus::Disconnected {
            self.status = AgentStatus::Active;
        }
    }

    /// Applies an update; returns an error (changing nothing) when the
    /// result is invalid.
    pub fn apply(&mut self, patch: AgentPatch) -> Result<()> {
        let mut next = self.clone();
        if let Some(v) = patch.name {
            next.name = v;
        }
        if let Some(v) = patch.capabilities {
            next.capabilities = v;
        }
        if let Some(v) = patch.needs {
            next.needs = v;
        }
        if let Some(v) = patch.produces {
            next.produces = v;
        }
        if let Some(v) = patch.objective {
            next.objective = v;
        }
        if let Some(v) = patch.token_budget {
            next.token_budget = v;
        }
        if let Some(v) = patch.trust {
            next.trust = v;
        }
        if let Some(v) = patch.lease_ms {
            next.lease_ms = v;
        }
        if let Some(v) = patch.labels {
            next.labels = v;
        }
        match patch.status {
            None => {}
            Some(s @ (AgentStatus::Active | AgentStatus::Inactive)) => next.status = s,
            Some(AgentStatus::Disconnected) => {
                return Err(Error::invalid("status", "an agent becomes disconnected only when its lease lapses"));
            }
        }
        next.validate()?;
        *self = next;
        Ok(())
    }
}

/// A partial update of an agent (`PATCH /v1/agents/{id}`).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    /// New display name.
    pub name: Option<String>,
    /// New capabilities (replaced whole).
    pub capabilities: Option<Capabilities>,
    /// New needs.
    pub needs: Option<ContextMap>,
    /// New produces.
    pub produces: Option<ContextMap>,
    /// New objective.
    pub objective: Option<String>,
    /// New token budget.
    pub token_budget: Option<u64>,
    /// New trust level.
    pub trust: Option<Trust>,
    /// `active` or `inactive`.
    pub status: Option<AgentStatus>,
    /// New lease length (takes effect at the next heartbeat).
    #[schema(minimum = 1000, maximum = 86_400_000)]
    pub lease_ms: Option<u64>,
    /// New labels (replaced whole).
    pub labels: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_context_map_is_an_object_or_a_plain_list_of_names() {
        let list: ContextMap = serde_json::from_value(json!(["key_findings", "brand/guidelines"])).unwrap();
        assert_eq!(list.names, ["key_findings", "brand/guidelines"]);
        assert!(list.kinds.is_empty() && list.keys.is_empty() && list.exclude.is_none());
        let object: ContextMap =
            serde_json::from_value(json!({"kinds": ["finding"], "names": ["draft"], "exclude": ["drafts/old"]}))
                .unwrap();
        assert_eq!(object.kinds, ["finding"]);
        assert_eq!(object.names, ["draft"]);
        assert_eq!(object.exclude.unwrap().names, ["drafts/old"]);
        // The object form still refuses what it does not know.
        let unknown = serde_json::from_value::<ContextMap>(json!({"kind": ["finding"]})).unwrap_err();
        assert!(unknown.to_string().contains("unknown field `kind`"), "{unknown}");
        for wrong in [json!("key_findings"), json!([1]), json!(7)] {
            assert!(serde_json::from_value::<ContextMap>(wrong.clone()).is_err(), "{wrong}");
        }
        // Names are 1 to 128 characters.
        let empty: ContextMap = serde_json::from_value(json!([""])).unwrap();
        assert!(empty.validate("needs").is_err());
        let long: ContextMap = serde_json::from_value(json!(["x".repeat(129)])).unwrap();
        assert!(long.validate("needs").is_err());
        // Answers give the object; names only when there are some.
        assert_eq!(serde_json::to_value(&list).unwrap()["names"], json!(["key_findings", "brand/guidelines"]));
        assert!(serde_json::to_value(ContextMap::default()).unwrap().get("names").is_none());
    }

    fn spec(v: serde_json::Value) -> Result<Agent> {
        serde_json::from_value::<AgentSpec>(v)
            .map_err(|e| Error::invalid("body", e.to_string()))?
            .into_agent(chrono::Utc::now())
    }

    #[test]
    fn registration_defaults_and_validation() {
        let a = spec(json!({"id": "writer"})).unwrap();
        assert_eq!((a.name.as_str(), a.trust, a.status), ("writer", Trust::Low, AgentStatus::Active));
        assert!(a.capabilities.can_write && !a.capabilities.can_share);
        let zero = spec(json!({"id": "w", "capabilities": {"max_concurrent_contexts": 0}})).unwrap_err();
        assert_eq!(zero.details()["field"], "capabilities.max_concurrent_contexts");
        let empty = spec(json!({"id": "w", "capabilities": {"supported_kinds": []}})).unwrap_err();
        assert_eq!(empty.details()["field"], "capabilities.supported_kinds");
        assert_eq!(spec(json!({"id": "no spaces"})).unwrap_err().code(), "invalid_id");
        assert_eq!(spec(json!({"id": "w", "needs": {"keys": ["a//b"]}})).unwrap_err().code(), "invalid_argument");
        assert_eq!(spec(json!({"id": "w", "lease_ms": 5})).unwrap_err().code(), "invalid_argument");
        assert_eq!(spec(json!({"id": "w", "lease_ms": u64::MAX})).unwrap_err().code(), "invalid_argument");
        let free = spec(json!({"id": "w", "capabilities": {"capabilities": ["search"]}})).unwrap();
        assert!(free.capabilities.has("search") && free.capabilities.has("can_read"));
    }

    #[test]
    fn heartbeat_revives_and_patch_is_all_or_nothing() {
        let now = chrono::Utc::now();
        let mut a = spec(json!({"id": "r", "lease_ms": 2000})).unwrap();
        a.status = AgentStatus::Disconnected;
        a.heartbeat(now);
        assert_eq!((a.status, a.lease_expires_at), (AgentStatus::Active, now + ms_duration(2000)));
        let before = a.clone();
        let bad = AgentPatch { name: Some("x".into()), token_budget: Some(0), ..Default::default() };
        assert!(a.apply(bad).is_err());
        assert_eq!(a, before, "a rejected patch changes nothing");
        let gone = AgentPatch { status: Some(AgentStatus::Disconnected), ..Default::default() };
        assert!(a.apply(gone).is_err());
    }
}
