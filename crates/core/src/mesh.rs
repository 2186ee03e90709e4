//! The context mesh (docs/mesh.md): how relevant each entry is to
//! an agent, and the package of entries that fits its token budget.
//!
//! Everything here is pure: the caller supplies the entries, the agent, the
//! time, a token counter and (when a model is configured) semantic
//! similarities.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::Timestamp;
use crate::agent::{Agent, ContextMap};
use crate::entry::{Entry, Priority};
use crate::error::{Error, Result};
use crate::ids::KeyPattern;

/// How much each signal counts in an entry's relevance. A signal that does
/// not apply (no explicit relevance for the agent, no objective, no
/// embedding model) is left out of the weighted mean.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// The entry's `relevance[agent]`.
    pub explicit: f64,
    /// A match of its kind, tags or key with the agent's `needs`.
    pub needs: f64,
    /// Entries that the agent's needed entries depend on (`depends_on`).
    pub dependency: f64,
    /// Keyword similarity of its text to the agent's `objective`.
    pub text: f64,
    /// Semantic similarity to the objective (with an embedding model).
    pub semantic: f64,
    /// How recently it changed (half-life `recency_half_life_ms`).
    pub recency: f64,
    /// Its `confidence` (0.5 when unset).
    pub confidence: f64,
    /// Its `priority`.
    pub priority: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            explicit: 3.0,
            needs: 3.0,
            dependency: 1.5,
            text: 1.5,
            semantic: 1.5,
            recency: 0.5,
            confidence: 0.5,
            priority: 1.0,
        }
    }
}

/// The mesh settings of a context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MeshSettings {
    /// Relevance weights.
    pub weights: Weights,
    /// Entries scoring below this are left out of packages and
    /// broadcasts (0..1).
    pub threshold: f64,
    /// Thresholds of particular agents, instead of `threshold`.
    pub thresholds: BTreeMap<String, f64>,
    /// Half-life of the recency signal, in milliseconds.
    pub recency_half_life_ms: u64,
    /// The agents of the context's workflow, in order: when one writes,
    /// the next one's package is computed ahead.
    pub workflow: Vec<String>,
}

impl Default for MeshSettings {
    fn default() -> Self {
        MeshSettings {
            weights: Weights::default(),
            threshold: 0.25,
            thresholds: BTreeMap::new(),
            recency_half_life_ms: 24 * 3_600_000,
            workflow: Vec::new(),
        }
    }
}

impl MeshSettings {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        let w = &self.weights;
        let all = [w.explicit, w.needs, w.dependency, w.text, w.semantic, w.recency, w.confidence, w.priority];
        if all.iter().any(|x| !x.is_finite() || *x < 0.0) || all.iter().sum::<f64>() <= 0.0 {
            return Err(Error::invalid("mesh.weights", "weights are non-negative numbers, not all zero"));
        }
        if !(0.0..=1.0).contains(&self.threshold) || self.thresholds.values().any(|t| !(0.0..=1.0).contains(t)) {
            return Err(Error::invalid("mesh.threshold", "thresholds are between 0 and 1"));
        }
        if self.recency_half_life_ms == 0 {
            return Err(Error::invalid("mesh.recency_half_life_ms", "must be positive"));
        }
        if self.workflow.len() > 64 {
            return Err(Error::invalid("mesh.workflow", "at most 64 agents"));
        }
        Ok(())
    }

    /// The threshold of `agent`.
    pub fn threshold_of(&self, agent: &str) -> f64 {
        self.thresholds.get(agent).copied().unwrap_or(self.threshold)
    }

    /// The agent after `agent` in the workflow, if any.
    pub fn next_after(&self, agent: &str) -> Option<&str> {
        let i = self.workflow.iter().position(|a| a == agent)?;
        self.workflow.get(i + 1).map(String::as_str)
    }
}

/// The signals of one entry's relevance, each in 0..1.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Components {
    /// `relevance[agent]`, when the entry has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explicit: Option<f64>,
    /// 1 when the agent's needs name the entry.
    pub needs: f64,
    /// 1 when an entry the agent needs depends on it.
    pub dependency: f64,
    /// Keyword similarity to the objective, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<f64>,
    /// Semantic similarity to the objective, when a model is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semantic: Option<f64>,
    /// Recency.
    pub recency: f64,
    /// Confidence.
    pub confidence: f64,
    /// Priority.
    pub priority: f64,
}

impl Components {
    /// The relevance: how much the entry is about what the agent needs
    /// (the weighted mean of the topical signals that apply: explicit,
    /// needs, dependency, text, semantic), scaled by its quality (the
    /// weighted mean of recency, confidence and priority) from half to
    /// full: `topical × (0.5 + 0.5 × quality)`. An entry about nothing the
    /// agent needs scores 0 however recent or critical. With every topical
    /// weight 0, the quality alone.
    pub fn score(&self, w: &Weights) -> f64 {
        let topical = mean(&[
            (self.explicit, w.explicit),
            (Some(self.needs), w.needs),
            (Some(self.dependency), w.dependency),
            (self.text, w.text),
            (self.semantic, w.semantic),
        ]);
        let quality = mean(&[
            (Some(self.recency), w.recency),
            (Some(self.confidence), w.confidence),
            (Some(self.priority), w.priority),
        ]);
        match (topical, quality) {
            (Some(t), Some(q)) => t * (0.5 + 0.5 * q),
            (Some(t), None) => t,
            (None, q) => q.unwrap_or(0.0),
        }
    }
}

/// The weighted mean of the values present (`None` when no weight counts).
fn mean(parts: &[(Option<f64>, f64)]) -> Option<f64> {
    let (mut sum, mut weight) = (0.0, 0.0);
    for (value, w) in parts {
        if let Some(v) = value {
            sum += v.clamp(0.0, 1.0) * w;
            weight += w;
        }
    }
    (weight > 0.0).then(|| sum / weight)
}

/// A context map ready to match entries (its key patterns parsed once).
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    kinds: Vec<String>,
    tags: Vec<String>,
    keys: Vec<KeyPattern>,
    names: Vec<String>,
}

impl Matcher {
    /// The matcher of `map` (its `exclude` aside).
    pub fn new(map: &ContextMap) -> Self {
        Matcher {
            kinds: map.kinds.clone(),
            tags: map.tags.clone(),
            keys: map.keys.iter().filter_map(|p| KeyPattern::parse(p).ok()).collect(),
            names: map.names.clone(),
        }
    }

    /// Whether it names the entry at `key` with `kind` and `tags`: by kind,
    /// tag or key pattern; or by a plain name equal to its kind, one of its
    /// tags, its key, or a prefix of its key ending at a `/`.
    pub fn names(&self, key: &str, kind: Option<&str>, tags: &[String]) -> bool {
        let named = |n: &String| {
            kind == Some(n.as_str())
                || tags.contains(n)
                || key.strip_prefix(n.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        kind.is_some_and(|k| self.kinds.iter().any(|m| m == k))
            || tags.iter().any(|t| self.tags.contains(t))
            || self.keys.iter().any(|p| p.matches(key))
            || self.names.iter().any(named)
    }
}

/// Whether `map` names the entry at `key` with `kind` and `tags` (its
/// `exclude` is not consulted).
pub fn names(map: &ContextMap, key: &str, kind: Option<&str>, tags: &[String]) -> bool {
    Matcher::new(map).names(key, kind, tags)
}

/// The words of a text, lowercased, for keyword similarity.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 1)
        .map(str::to_lowercase)
        .filter(|w| !STOP.contains(&w.as_str()))
}

const STOP: [&str; 43] = [
    "an", "as", "at", "be", "by", "do", "he", "if", "in", "is", "it", "no", "of", "on", "or", "so", "to", "up", "we",
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "has", "was", "its", "our", "from", "with",
    "this", "that", "into", "than", "then", "they", "them", "what",
];

/// The text of a value: its strings and numbers, depth first.
pub fn value_text(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Number(n) => {
            out.push_str(&n.to_string());
            out.push(' ');
        }
        Value::Bool(b) => {
            out.push_str(if *b { "true " } else { "false " });
        }
        Value::Array(items) => items.iter().for_each(|v| value_text(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push_str(k);
                out.push_str(": ");
                value_text(v, out);
            }
        }
        Value::Null => {}
    }
}

/// The text an entry is searched and compared by: its key's words, kind,
/// tags, and the strings and numbers of its value.
pub fn search_text(entry: &Entry) -> String {
    let mut all = format!(
        "{} {} {}\n",
        entry.key.replace(['/', '_', '-', '.'], " "),
        entry.meta.kind.as_deref().unwrap_or(""),
        entry.meta.tags.join(" ")
    );
    value_text(&entry.value, &mut all);
    all
}

/// A term-frequency vector, for cosine similarity. Terms are kept as
/// 64-bit hashes, sorted, in one contiguous array: scoring ten thousand
/// entries is then a few binary searches over integers each, with no
/// string compared and no pointer followed (a collision of two words'
/// hashes is too rare to matter for a similarity).
#[derive(Clone, Debug, Default)]
pub struct Terms {
    counts: Vec<(u64, f64)>,
    norm: f64,
}

impl Terms {
    /// The terms of `text`.
    pub fn of(text: &str) -> Self {
        let mut ids: Vec<u64> = words(text).map(|w| term_id(&w)).collect();
        ids.sort_unstable();
        let mut counts: Vec<(u64, f64)> = Vec::new();
        for id in ids {
            match counts.last_mut() {
                Some((last, c)) if *last == id => *c += 1.0,
                _ => counts.push((id, 1.0)),
            }
        }
        let norm = counts.iter().map(|(_, c)| c * c).sum::<f64>().sqrt();
        Terms { counts, norm }
    }

    /// Whether there are no terms.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    fn get(&self, id: u64) -> Option<f64> {
        self.counts.binary_search_by_key(&id, |(i, _)| *i).ok().map(|i| self.counts[i].1)
    }

    /// Cosine similarity with `other`.
    pub fn cosine(&self, other: &Terms) -> f64 {
        if self.norm == 0.0 || other.norm == 0.0 {
            return 0.0;
        }
        let (small, large) = if self.counts.len() <= other.counts.len() { (self, other) } else { (other, self) };
        // A fold from +0.0: the sum of nothing is 0, not -0 (f64's `sum`).
        let dot = small.counts.iter().filter_map(|(id, c)| large.get(*id).map(|d| c * d)).fold(0.0, |a, b| a + b);
        dot / (self.norm * other.norm)
    }
}

/// A word's 64-bit id (FNV-1a: deterministic, fast on short words).
fn term_id(word: &str) -> u64 {
    word.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// An entry with what scoring and packing it needs, computed once per
/// version (a server caches these by context revision).
#[derive(Debug)]
pub struct Prepared {
    /// The entry.
    pub entry: Entry,
    /// Its text (key, kind, tags, value) as words.
    pub terms: Terms,
    /// Its value as text, for compression.
    pub text: String,
    /// Its Markdown when included whole, made on first use.
    whole: OnceLock<String>,
    /// The token counts of `whole`, by encoding, counted on first use: the
    /// entries at the top of one agent's ranking are mostly at the top of
    /// the next one's.
    whole_tokens: Mutex<Vec<(&'static str, usize)>>,
}

impl Prepared {
    /// Prepares `entry`.
    pub fn new(entry: Entry) -> Self {
        let mut text = String::new();
        value_text(&entry.value, &mut text);
        Prepared {
            terms: Terms::of(&search_text(&entry)),
            text,
            entry,
            whole: OnceLock::new(),
            whole_tokens: Mutex::new(Vec::new()),
        }
    }

    /// Its Markdown when included whole, and that text's tokens by `counter`.
    pub fn whole(&self, counter: &dyn TokenCounter) -> (&str, usize) {
        let text = self.whole.get_or_init(|| whole(&self.entry));
        let encoding = counter.encoding();
        let known = self
            .whole_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(e, _)| *e == encoding)
            .map(|(_, n)| *n);
        let tokens = known.unwrap_or_else(|| {
            let n = counter.count(text);
            self.whole_tokens.lock().unwrap_or_else(|e| e.into_inner()).push((encoding, n));
            n
        });
        (text, tokens)
    }
}

/// Scores entries for one agent, by the context's mesh settings.
#[derive(Debug)]
pub struct Scorer<'a> {
    agent: &'a Agent,
    settings: &'a MeshSettings,
    objective: Terms,
    needs: Matcher,
    exclude: Option<Matcher>,
    /// Keys that entries the agent needs depend on.
    depended: HashSet<String>,
    now: Timestamp,
}

impl<'a> Scorer<'a> {
    /// A scorer for `agent` over `entries` (for the dependency signal).
    pub fn new(agent: &'a Agent, settings: &'a MeshSettings, entries: &[&Prepared], now: Timestamp) -> Self {
        let needs = Matcher::new(&agent.needs);
        let exclude = agent.needs.exclude.as_deref().map(Matcher::new);
        let mut depended = HashSet::new();
        for p in entries {
            let e = &p.entry;
            if !e.meta.depends_on.is_empty() && needs.names(&e.key, e.meta.kind.as_deref(), &e.meta.tags) {
                depended.extend(e.meta.depends_on.iter().cloned());
            }
        }
        Scorer { agent, settings, objective: Terms::of(&agent.objective), needs, exclude, depended, now }
    }

    /// The threshold that applies.
    pub fn threshold(&self) -> f64 {
        self.settings.threshold_of(&self.agent.id)
    }

    /// The relevance of `p` and its signals; `None` when the agent's needs
    /// exclude it. `semantic` is its similarity to the objective, when a
    /// model gave one.
    pub fn score(&self, p: &Prepared, semantic: Option<f64>) -> Option<(f64, Components)> {
        let e = &p.entry;
        let (kind, tags) = (e.meta.kind.as_deref(), &e.meta.tags);
        if self.exclude.as_ref().is_some_and(|x| x.names(&e.key, kind, tags)) {
            return None;
        }
        let age_ms = (self.now - e.updated_at).num_milliseconds().max(0) as f64;
        let half_life = self.settings.recency_half_life_ms as f64;
        let c = Components {
            explicit: e.meta.relevance.get(&self.agent.id).copied(),
            needs: f64::from(u8::from(self.needs.names(&e.key, kind, tags))),
            dependency: f64::from(u8::from(!self.depended.is_empty() && self.depended.contains(&e.key))),
            text: (!self.objective.is_empty()).then(|| self.objective.cosine(&p.terms)),
            semantic: semantic.map(|s| s.clamp(0.0, 1.0) + 0.0), // never -0
            recency: 0.5f64.powf(age_ms / half_life),
            confidence: e.meta.confidence.unwrap_or(0.5),
            priority: priority_signal(e.meta.priority),
        };
        Some((c.score(&self.settings.weights), c))
    }
}

/// A priority as a signal in 0..1.
pub fn priority_signal(p: Priority) -> f64 {
    match p {
        Priority::Low => 0.0,
        Priority::Normal => 1.0 / 3.0,
        Priority::High => 2.0 / 3.0,
        Priority::Critical => 1.0,
    }
}

/// Counts tokens the way a model's tokenizer does.
pub trait TokenCounter {
    /// The number of tokens of `text`.
    fn count(&self, text: &str) -> usize;
    /// The encoding's name (counts are cached under it).
    fn encoding(&self) -> &'static str;
}

/// How an entry went into a package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Inclusion {
    /// Whole.
    Included,
    /// Summarized (whole sentences); the full entry is at its reference.
    Compressed,
    /// Only its reference (`key@revision`), to fetch when needed.
    Referenced,
}

/// One item of a package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PackageItem {
    /// The key.
    pub key: String,
    /// The entry's revision.
    pub revision: u64,
    /// How it went in.
    pub status: Inclusion,
    /// Its relevance.
    pub score: f64,
    /// Tokens of its part of the package text.
    pub tokens: usize,
    /// Its part of the package text (Markdown).
    pub text: String,
    /// Where to fetch it whole: `key@revision`.
    pub reference: String,
    /// Its kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The value, when included whole (JSON format).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The relevance signals (`explain=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<Components>,
}

/// An entry left out of a package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Dropped {
    /// The key.
    pub key: String,
    /// The entry's revision.
    pub revision: u64,
    /// Its relevance.
    pub score: f64,
    /// `budget` (no room left, not even for a reference), `threshold`
    /// (below the threshold, listed with `explain=true`) or `excluded`
    /// (the agent's needs exclude it, with `explain=true`).
    pub reason: String,
    /// The relevance signals (`explain=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<Components>,
}

/// What a package is asked for.
#[derive(Clone, Debug)]
pub struct PackageRequest {
    /// Most tokens of the package text.
    pub budget: usize,
    /// Include relevance signals and every entry left out.
    pub explain: bool,
    /// Compress an entry that does not fit whole (else reference it).
    pub compress: bool,
}

/// A context package for one agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Package {
    /// The context.
    pub context: String,
    /// The agent it is for.
    pub agent: String,
    /// The revision it was built at.
    pub revision: u64,
    /// The token budget.
    pub budget: usize,
    /// Tokens of `text`, by the tokenizer (never above `budget`).
    pub tokens: usize,
    /// The tokenizer.
    pub encoding: String,
    /// The entries in it, most relevant first.
    pub items: Vec<PackageItem>,
    /// Entries relevant enough that did not fit, most relevant first: the
    /// first 100 (all with `explain`, with those below the threshold and
    /// those excluded).
    pub dropped: Vec<Dropped>,
    /// How many entries relevant enough did not fit.
    pub dropped_total: usize,
    /// The package as prompt-ready Markdown.
    pub text: String,
}

/// Summarizes a text to about `tokens` tokens for `objective`; `None`
/// when it cannot say anything shorter.
pub trait Summarizer {
    /// The summary.
    fn summarize(&self, text: &str, objective: &str, tokens: usize, counter: &dyn TokenCounter) -> Option<String>;
}

/// The offline extractive summarizer: whole sentences, the ones that share
/// most words with the objective (then the first ones), in their order.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extractive;

impl Summarizer for Extractive {
    fn summarize(&self, text: &str, objective: &str, tokens: usize, counter: &dyn TokenCounter) -> Option<String> {
        let sentences = sentences(text);
        if sentences.len() < 2 {
            return None;
        }
        let objective = Terms::of(objective);
        let mut ranked: Vec<(usize, f64)> = sentences
            .iter()
            .enumerate()
            .map(|(i, s)| (i, objective.cosine(&Terms::of(s)) + 1.0 / (i as f64 + 2.0)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut chosen: Vec<usize> = Vec::new();
        let mut used = 0;
        for (i, _) in ranked {
            let cost = counter.count(sentences[i]) + 1;
            if used + cost <= tokens {
                chosen.push(i);
                used += cost;
            }
        }
        if chosen.is_empty() || chosen.len() == sentences.len() {
            return None;
        }
        chosen.sort_unstable();
        Some(chosen.iter().map(|i| sentences[*i]).collect::<Vec<_>>().join(" "))
    }
}

/// The sentences of a text: split after `.`, `!`, `?` or a line break.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        let end = match c {
            '\n' => Some(i),
            '.' | '!' | '?' if bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace()) => Some(i + 1),
            _ => None,
        };
        if let Some(end) = end {
            let s = text[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// The Markdown of an entry included whole.
fn whole(e: &Entry) -> String {
    let mut head = format!("## {}", e.key);
    if let Some(kind) = &e.meta.kind {
        head.push_str(&format!(" ({kind})"));
    }
    let body = match &e.value {
        Value::String(s) => s.clone(),
        other => format!("```json\n{}\n```", serde_json::to_string_pretty(other).unwrap_or_default()),
    };
    format!("{head}\n{body}")
}

fn reference(e: &Entry) -> String {
    format!("{}@{}", e.key, e.revision)
}

/// Entries scored by one thread.
struct Scored<'a> {
    /// (score, revision, index into `signals`) of the entries at or above
    /// the threshold.
    ranked: Vec<(f64, u64, usize)>,
    signals: Vec<(Components, &'a Prepared)>,
    /// Below the threshold or excluded (only with `explain`).
    dropped: Vec<Dropped>,
}

/// Contexts smaller than this are scored on one thread.
const PARALLEL_SCORING_FROM: usize = 4096;

/// Threads to score `n` entries with.
fn scoring_threads(n: usize) -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    if n < PARALLEL_SCORING_FROM {
        return 1;
    }
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    cores.clamp(1, 4)
}

fn score_all<'a>(
    scorer: &Scorer<'_>,
    entries: &[&'a Prepared],
    semantic: &BTreeMap<String, f64>,
    threshold: f64,
    explain: bool,
) -> Scored<'a> {
    let mut out = Scored { ranked: Vec::new(), signals: Vec::new(), dropped: Vec::new() };
    for p in entries.iter().copied() {
        let e = &p.entry;
        let semantic = if semantic.is_empty() { None } else { semantic.get(&e.key).copied() };
        match scorer.score(p, semantic) {
            Some((score, c)) if score >= threshold => {
                out.ranked.push((score, e.revision, out.signals.len()));
                out.signals.push((c, p));
            }
            scored if explain => {
                let (score, c, reason) = match scored {
                    Some((s, c)) => (s, Some(c), "threshold"),
                    None => (0.0, None, "excluded"),
                };
                out.dropped.push(Dropped {
                    key: e.key.clone(),
                    revision: e.revision,
                    score,
                    reason: reason.into(),
                    explain: c,
                });
            }
            _ => {}
        }
    }
    out
}

/// Builds a package: the entries at or above the threshold, most relevant
/// first, each whole if it fits in what is left of the budget, else
/// summarized (whole sentences) if that fits, else as a reference line; an
/// entry is never cut. Entries that do not fit at all are dropped. The
/// whole text's token count, by `counter`, is at most the budget.
#[allow(clippy::too_many_arguments)] // one call site per caller, all needed
pub fn build_package(
    context: &str,
    revision: u64,
    scorer: &Scorer<'_>,
    entries: &[&Prepared],
    semantic: &BTreeMap<String, f64>,
    request: &PackageRequest,
    counter: &dyn TokenCounter,
    summarizer: &dyn Summarizer,
    encoding: &str,
) -> Package {
    let threshold = scorer.settings.threshold_of(&scorer.agent.id);
    // Scoring touches every entry: large contexts are scored in chunks on
    // several threads, merged in entry order (so the result is the same).
    let chunk = entries.len().div_ceil(scoring_threads(entries.len())).max(1);
    let scored: Vec<Scored<'_>> = if entries.len() <= chunk {
        vec![score_all(scorer, entries, semantic, threshold, request.explain)]
    } else {
        std::thread::scope(|scope| {
            let parts: Vec<_> = entries
                .chunks(chunk)
                .map(|part| scope.spawn(move || score_all(scorer, part, semantic, threshold, request.explain)))
                .collect();
            parts.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        })
    };
    // Ranked by (score, revision) with indexes: the sort moves 24 bytes
    // per entry and follows no pointer.
    let mut ranked: Vec<(f64, u64, usize)> = Vec::new();
    let mut signals: Vec<(Components, &Prepared)> = Vec::new();
    let mut dropped = Vec::new();
    for part in scored {
        let offset = signals.len();
        ranked.extend(part.ranked.into_iter().map(|(score, revision, i)| (score, revision, i + offset)));
        signals.extend(part.signals);
        dropped.extend(part.dropped);
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));

    let mut title = format!("# Context {context} at revision {revision}");
    if counter.count(&title) > request.budget {
        title.clear();
    }
    let separator = "\n\n";
    let sep_cost = counter.count(separator);
    let mut used = counter.count(&title);
    let mut items: Vec<PackageItem> = Vec::new();
    let mut full = false;
    // Entries dropped for the budget: all counted, the first listed.
    const LISTED: usize = 100;
    let mut dropped_total = 0;
    for (score, _, i) in ranked {
        let p = signals[i].1;
        let c = std::mem::take(&mut signals[i].0);
        let e = &p.entry;
        let room = request.budget.saturating_sub(used + sep_cost);
        let mut placed = None;
        if !full {
            let (text, cost) = p.whole(counter);
            if cost <= room {
                placed = Some((Inclusion::Included, text.to_owned(), cost));
            } else if request.compress {
                let head = format!("## {} (summary; whole at {})\n", e.key, reference(e));
                let head_cost = counter.count(&head);
                if head_cost < room
                    && let Some(summary) =
                        summarizer.summarize(&p.text, &scorer.agent.objective, room - head_cost, counter)
                {
                    let text = format!("{head}{summary}");
                    let cost = counter.count(&text);
                    if cost <= room {
                        placed = Some((Inclusion::Compressed, text, cost));
                    }
                }
            }
            if placed.is_none() {
                let text = format!("- {} ({:.2})", reference(e), score);
                let cost = counter.count(&text);
                if cost <= room {
                    placed = Some((Inclusion::Referenced, text, cost));
                } else {
                    full = true;
                }
            }
        }
        match placed {
            Some((status, text, tokens)) => {
                used += tokens + sep_cost;
                items.push(PackageItem {
                    key: e.key.clone(),
                    revision: e.revision,
                    status,
                    score,
                    tokens,
                    text,
                    reference: reference(e),
                    kind: e.meta.kind.clone(),
                    value: (status == Inclusion::Included).then(|| e.value.clone()),
                    explain: request.explain.then_some(c),
                });
            }
            None => {
                dropped_total += 1;
                if request.explain || dropped_total <= LISTED {
                    dropped.push(Dropped {
                        key: e.key.clone(),
                        revision: e.revision,
                        score,
                        reason: "budget".into(),
                        explain: request.explain.then_some(c),
                    });
                }
            }
        }
    }
    // The parts were counted one by one; the tokenizer decides on the
    // whole: take items off the end until it fits.
    let render = |items: &[PackageItem]| {
        let mut text = title.clone();
        for item in items {
            text.push_str(separator);
            text.push_str(&item.text);
        }
        text
    };
    let mut text = render(&items);
    let mut tokens = counter.count(&text);
    while tokens > request.budget {
        let Some(last) = items.pop() else { break };
        dropped_total += 1;
        dropped.push(Dropped {
            key: last.key,
            revision: last.revision,
            score: last.score,
            reason: "budget".into(),
            explain: last.explain,
        });
        text = render(&items);
        tokens = counter.count(&text);
    }
    Package {
        context: context.to_owned(),
        agent: scorer.agent.id.clone(),
        revision,
        budget: request.budget,
        tokens,
        encoding: encoding.to_owned(),
        items,
        dropped,
        dropped_total,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentSpec;
    use serde_json::json;

    #[test]
    fn a_plain_name_matches_a_kind_a_tag_a_key_or_a_key_prefix() {
        let map: ContextMap = serde_json::from_value(json!(["key_findings", "brand/guidelines"])).unwrap();
        let m = Matcher::new(&map);
        assert!(m.names("research/a", Some("key_findings"), &[]));
        assert!(m.names("research/a", None, &["key_findings".to_owned()]));
        assert!(m.names("key_findings", None, &[]));
        assert!(m.names("brand/guidelines", None, &[]));
        assert!(m.names("brand/guidelines/tone", None, &[]));
        assert!(!m.names("brand/guidelines-2024", None, &[]));
        assert!(!m.names("brand", None, &[]));
        assert!(!m.names("research/a", Some("finding"), &["market".to_owned()]));
    }

    /// Counts whitespace-separated words, as a stand-in tokenizer.
    struct Words;

    impl TokenCounter for Words {
        fn count(&self, text: &str) -> usize {
            text.split_whitespace().count()
        }

        fn encoding(&self) -> &'static str {
            "words"
        }
    }

    /// Texts with no word in common are 0 apart, never -0 (which an
    /// explanation would print as `-0.0`).
    #[test]
    fn the_similarity_of_unrelated_texts_is_positive_zero() {
        let s = Terms::of("pricing review").cosine(&Terms::of("brand voice"));
        assert_eq!(s, 0.0);
        assert!(s.is_sign_positive(), "{s:?}");
        assert_eq!(serde_json::to_string(&s).unwrap(), "0.0");
    }

    fn entry(i: usize, now: Timestamp) -> Entry {
        let area = ["findings", "notes"][i % 2];
        let word = ["pricing", "churn", "brand"][i % 3];
        serde_json::from_value(json!({
            "key": format!("{area}/e{i:05}"), "value": format!("The {word} review {i} found item {} within range.", i % 7),
            "revision": 1 + (i / 10) as u64, "version": 1, "created_revision": 1, "updated_at": now,
            "author": "a", "confidence": (i % 10) as f64 / 10.0
        }))
        .unwrap()
    }

    #[test]
    fn a_large_context_ranks_as_one_entry_at_a_time_would() {
        let now = chrono::Utc::now();
        let spec = json!({"id": "w", "objective": "pricing risk", "needs": {"keys": ["findings/**"]}});
        let agent = serde_json::from_value::<AgentSpec>(spec).unwrap().into_agent(now).unwrap();
        let settings = MeshSettings::default();
        let prepared: Vec<Prepared> =
            (0..PARALLEL_SCORING_FROM * 2 + 7).map(|i| Prepared::new(entry(i, now))).collect();
        let entries: Vec<&Prepared> = prepared.iter().collect();
        let scorer = Scorer::new(&agent, &settings, &entries, now);
        let request = PackageRequest { budget: 300, explain: true, compress: true };
        let package =
            build_package("c", 9, &scorer, &entries, &BTreeMap::new(), &request, &Words, &Extractive, "words");

        // The expected order, one entry at a time: by score, then revision,
        // then key order.
        let threshold = scorer.threshold();
        let mut expected: Vec<(f64, u64, &str)> = entries
            .iter()
            .filter_map(|p| scorer.score(p, None).map(|(s, _)| (s, p.entry.revision, p.entry.key.as_str())))
            .filter(|(s, _, _)| *s >= threshold)
            .collect();
        expected.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
        let placed: Vec<&str> = package.items.iter().map(|i| i.key.as_str()).collect();
        let expected_keys: Vec<&str> = expected.iter().map(|e| e.2).collect();
        assert!(!placed.is_empty() && placed.len() < expected_keys.len());
        assert_eq!(placed, expected_keys[..placed.len()]);
        assert!(package.tokens <= 300 && Words.count(&package.text) == package.tokens);
        // Every entry is accounted for: placed, dropped for the budget, or
        // below the threshold / excluded (explain lists them all).
        assert_eq!(package.items.len() + package.dropped.len(), entries.len());
        assert!(package.items.iter().all(|i| i.key.starts_with("findings/")));
    }
}
