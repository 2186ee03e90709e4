//! The context mesh on a node: tokenizers, a cache of prepared entries per
//! context revision, and a cache of packages by revision in which identical
//! concurrent requests are computed once. Workflow prefetch fills the
//! package cache ahead of the next agent's request.
//!
//! The caches are per node and bounded; they hold nothing that a read at
//! the same revision would not give again, so a miss is only slower.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ctxmesh_core::access::EntryScope;
use ctxmesh_core::agent::Agent;
use ctxmesh_core::ids::ContextId;
use ctxmesh_core::mesh::{
    Extractive, MeshSettings, Package, PackageRequest, Prepared, Scorer, TokenCounter, build_package,
};
use ctxmesh_store::{ListQuery, ReadAt};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde_json::json;
use tiktoken_rs::CoreBPE;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Contexts whose prepared entries a node keeps.
const SNAPSHOTS: usize = 64;
/// Packages a node keeps.
const PACKAGES: usize = 1024;

/// A tokenizer that ctxmesh counts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// GPT-4, GPT-3.5 (the default).
    #[default]
    Cl100kBase,
    /// GPT-4o and later.
    O200kBase,
}

impl Encoding {
    /// The encoding's name.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Cl100kBase => "cl100k_base",
            Encoding::O200kBase => "o200k_base",
        }
    }

    /// The tokenizer, loaded once.
    pub fn tokenizer(self) -> ApiResult<&'static Tokenizer> {
        static CL100K: OnceLock<Result<Tokenizer, String>> = OnceLock::new();
        static O200K: OnceLock<Result<Tokenizer, String>> = OnceLock::new();
        let loaded = match self {
            Encoding::Cl100kBase => CL100K.get_or_init(|| {
                tiktoken_rs::cl100k_base().map(|bpe| Tokenizer(bpe, "cl100k_base")).map_err(|e| e.to_string())
            }),
            Encoding::O200kBase => O200K.get_or_init(|| {
                tiktoken_rs::o200k_base().map(|bpe| Tokenizer(bpe, "o200k_base")).map_err(|e| e.to_string())
            }),
        };
        loaded.as_ref().map_err(|e| ApiError::internal(format!("tokenizer {}: {e}", self.name())))
    }
}

/// A tiktoken tokenizer, and its encoding's name.
pub struct Tokenizer(CoreBPE, &'static str);

impl TokenCounter for Tokenizer {
    fn count(&self, text: &str) -> usize {
        self.0.count_ordinary(text)
    }

    fn encoding(&self) -> &'static str {
        self.1
    }
}

/// What identifies a package.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PackageKey {
    pub(crate) context: String,
    pub(crate) revision: u64,
    pub(crate) agent: String,
    pub(crate) budget: usize,
    pub(crate) encoding: Encoding,
    pub(crate) explain: bool,
    pub(crate) compress: bool,
    /// The access it was built under (the caller's and the agent's).
    pub(crate) access: u64,
}

/// The fingerprint of the scopes a package is filtered by.
pub(crate) fn access_fingerprint(scopes: &[&EntryScope]) -> u64 {
    let mut h = DefaultHasher::new();
    format!("{scopes:?}").hash(&mut h);
    h.finish()
}

/// A package being computed, or computed: every request for it awaits
/// the same computation.
type Pending = Shared<BoxFuture<'static, ApiResult<Arc<Package>>>>;
/// Prepared entries of one context revision.
type Snapshot = Arc<Vec<Arc<Prepared>>>;

/// Most revisions a snapshot is brought forward by a diff (beyond, it is
/// read whole).
const DIFF_FORWARD: u64 = 256;

/// `base` with `changes` applied (the entries of the later revision), in
/// key order; unchanged entries are shared.
fn forward(base: &[Arc<Prepared>], changes: Vec<ctxmesh_core::DiffChange>) -> Vec<Arc<Prepared>> {
    let mut changed: HashMap<String, Option<ctxmesh_core::Entry>> =
        changes.into_iter().map(|c| (c.key, c.after)).collect();
    let mut out: Vec<Arc<Prepared>> = Vec::with_capacity(base.len() + changed.len());
    for p in base {
        match changed.remove(&p.entry.key) {
            None => out.push(p.clone()),
            Some(Some(after)) => out.push(Arc::new(Prepared::new(after))),
            Some(None) => {}
        }
    }
    let added: Vec<Arc<Prepared>> = changed.into_values().flatten().map(|e| Arc::new(Prepared::new(e))).collect();
    if !added.is_empty() {
        out.extend(added);
        out.sort_by(|a, b| a.entry.key.cmp(&b.entry.key));
    }
    out
}

/// A map that forgets its oldest keys past a size.
struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    max: usize,
}

impl<K: Clone + Eq + Hash, V: Clone> Bounded<K, V> {
    fn new(max: usize) -> Self {
        Bounded { map: HashMap::new(), order: VecDeque::new(), max }
    }

    fn get(&self, k: &K) -> Option<V> {
        self.map.get(k).cloned()
    }

    fn insert(&mut self, k: K, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
        }
        while self.order.len() > self.max {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    fn remove(&mut self, k: &K) {
        if self.map.remove(k).is_some() {
            self.order.retain(|o| o != k);
        }
    }
}

/// The node's mesh caches.
pub(crate) struct Mesh {
    snapshots: Mutex<Bounded<(String, u64), Snapshot>>,
    packages: Mutex<Bounded<PackageKey, Pending>>,
    /// Workflows by context, as last read (for prefetch).
    workflows: Mutex<Bounded<String, Arc<MeshSettings>>>,
    /// Embeddings, by model.
    vectors: Vectors,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for Mesh {
    fn default() -> Self {
        Mesh {
            snapshots: Mutex::new(Bounded::new(SNAPSHOTS)),
            packages: Mutex::new(Bounded::new(PACKAGES)),
            workflows: Mutex::new(Bounded::new(SNAPSHOTS * 4)),
            vectors: Vectors::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Mesh {
    /// The prepared entries of `ctx` at `revision`, in key order: read
    /// once per revision; from a snapshot of an earlier revision of the
    /// context, only what changed since is read and prepared.
    pub(crate) async fn snapshot(&self, state: &AppState, ctx: &ContextId, revision: u64) -> ApiResult<Snapshot> {
        let key = (ctx.as_str().to_owned(), revision);
        let base = {
            let snapshots = lock(&self.snapshots);
            if let Some(s) = snapshots.get(&key) {
                return Ok(s);
            }
            snapshots
                .map
                .iter()
                .filter(|((c, r), _)| c == ctx.as_str() && *r < revision && revision - *r <= DIFF_FORWARD)
                .max_by_key(|((_, r), _)| *r)
                .map(|((_, r), s)| (*r, s.clone()))
        };
        let prepared = match base {
            Some((from, base)) => match state.store().diff(ctx, from, revision).await {
                Ok(changes) => Some(forward(&base, changes)),
                // Compacted since: read it whole.
                Err(_) => None,
            },
            None => None,
        };
        let prepared = match prepared {
            Some(p) => p,
            None => {
                let mut prepared = Vec::new();
                let mut after = None;
                loop {
                    let query = ListQuery { prefix: String::new(), after_key: after.take(), limit: 1000 };
                    let page = state.store().list_entries(ctx, ReadAt::Revision(revision), &query).await?;
                    after = page.entries.last().map(|e| e.key.clone());
                    prepared.extend(page.entries.into_iter().map(|e| Arc::new(Prepared::new(e))));
                    if !page.more {
                        break;
                    }
                }
                prepared
            }
        };
        let prepared = Arc::new(prepared);
        lock(&self.snapshots).insert(key, prepared.clone());
        Ok(prepared)
    }

    /// Remembers a context's mesh settings (for prefetch).
    pub(crate) fn remember(&self, ctx: &str, settings: &MeshSettings) {
        lock(&self.workflows).insert(ctx.to_owned(), Arc::new(settings.clone()));
    }

    fn remembered(&self, ctx: &str) -> Option<Arc<MeshSettings>> {
        lock(&self.workflows).get(&ctx.to_owned())
    }

    /// The computation of `key`: the one under way or done, else `compute`
    /// (then `true`), started in the same step so that no two requests
    /// compute one package.
    fn start(&self, key: PackageKey, compute: BoxFuture<'static, ApiResult<Package>>) -> (Pending, bool) {
        let mut packages = lock(&self.packages);
        if let Some(pending) = packages.get(&key) {
            return (pending, false);
        }
        let pending = compute.map(|r| r.map(Arc::new)).boxed().shared();
        packages.insert(key, pending.clone());
        (pending, true)
    }

    /// The package for `key` and whether it came from the cache (computed
    /// before, or by a concurrent identical request); the computation
    /// `make` gives runs once. A failed computation is forgotten; a request
    /// that found one failed (a prefetch, say) computes it again itself.
    pub(crate) async fn package(
        &self,
        key: PackageKey,
        make: impl Fn() -> BoxFuture<'static, ApiResult<Package>>,
    ) -> ApiResult<(Arc<Package>, bool)> {
        let (pending, computed) = self.start(key.clone(), make());
        let (result, computed) = match pending.await {
            Err(_) if !computed => {
                self.forget(&key);
                let (pending, computed) = self.start(key.clone(), make());
                (pending.await, computed)
            }
            result => (result, computed),
        };
        if result.is_err() {
            self.forget(&key);
        }
        self.count(!computed);
        Ok((result?, !computed))
    }

    fn forget(&self, key: &PackageKey) {
        lock(&self.packages).remove(key);
    }

    fn count(&self, hit: bool) {
        let (hits, misses) = if hit {
            (self.hits.fetch_add(1, Ordering::Relaxed) + 1, self.misses.load(Ordering::Relaxed))
        } else {
            (self.hits.load(Ordering::Relaxed), self.misses.fetch_add(1, Ordering::Relaxed) + 1)
        };
        metrics::counter!("ctxmesh_package_requests_total", "cache" => if hit { "hit" } else { "miss" }).increment(1);
        metrics::gauge!("ctxmesh_package_cache_hit_ratio").set(hits as f64 / (hits + misses).max(1) as f64);
    }
}

/// What a package is asked for, resolved.
pub(crate) struct Ask {
    pub(crate) ctx: ContextId,
    pub(crate) revision: u64,
    pub(crate) agent: Agent,
    pub(crate) settings: MeshSettings,
    pub(crate) budget: usize,
    pub(crate) encoding: Encoding,
    pub(crate) explain: bool,
    pub(crate) compress: bool,
    /// Every scope an entry must pass (the caller's, the agent's).
    pub(crate) scopes: Vec<EntryScope>,
}

impl Ask {
    fn key(&self) -> PackageKey {
        PackageKey {
            context: self.ctx.as_str().to_owned(),
            revision: self.revision,
            agent: self.agent.id.clone(),
            budget: self.budget,
            encoding: self.encoding,
            explain: self.explain,
            compress: self.compress,
            access: access_fingerprint(&self.scopes.iter().collect::<Vec<_>>()),
        }
    }
}

/// Builds (or takes from the cache) the package of `ask`; `true` when it
/// came from the cache.
pub(crate) async fn package(state: &AppState, ask: Ask) -> ApiResult<(Arc<Package>, bool)> {
    let ask = Arc::new(ask);
    state.mesh().package(ask.key(), || compute(state.clone(), ask.clone()).boxed()).await
}

/// After `author` wrote `ctx` at `revision`: when the context has a
/// workflow and `author` is in it, the next agent's package (at its
/// defaults) is computed ahead, so that its request finds it. The cache
/// slot is taken before this returns: a request that arrives while it is
/// being computed waits for it instead of computing it again.
pub(crate) async fn after_write(state: &AppState, ctx: &ContextId, author: &str, revision: u64) {
    let settings = match state.mesh().remembered(ctx.as_str()) {
        Some(s) => s,
        None => match state.store().get_context(ctx).await {
            Ok(info) => {
                state.mesh().remember(ctx.as_str(), &info.settings.mesh);
                Arc::new(info.settings.mesh)
            }
            Err(_) => return,
        },
    };
    let Some(next) = settings.next_after(author).map(str::to_owned) else { return };
    let ask = async {
        let agent = crate::routes::mesh::registered(state, &next).await?;
        let resource = format!("prefetch {}/package?agent={next}", ctx.as_str());
        let scope = crate::authz::read_scope_of(state, &next, ctx, &resource).await?;
        ApiResult::Ok(Ask {
            ctx: ctx.clone(),
            revision,
            budget: agent.token_budget.min(crate::routes::mesh::MAX_BUDGET as u64) as usize,
            agent,
            settings: (*settings).clone(),
            encoding: Encoding::default(),
            explain: false,
            compress: true,
            scopes: [scope].into_iter().filter(|s| !s.is_all()).collect(),
        })
    };
    let ask = match ask.await {
        Ok(ask) => ask,
        Err(e) => {
            tracing::debug!(context = %ctx, agent = %next, error = %e.message, "no prefetch");
            return;
        }
    };
    let ask = Arc::new(ask);
    let (pending, started) = state.mesh().start(ask.key(), compute(state.clone(), ask.clone()).boxed());
    if started {
        metrics::counter!("ctxmesh_package_prefetches_total").increment(1);
        tokio::spawn(pending);
    }
}

/// Computes the package of `ask`.
async fn compute(state: AppState, ask: Arc<Ask>) -> ApiResult<Package> {
    let mesh = state.mesh();
    {
        let snapshot = mesh.snapshot(&state, &ask.ctx, ask.revision).await?;
        let tokenizer = ask.encoding.tokenizer()?;
        // Confidential entries never go into packages; expired ones are gone.
        let now = chrono::Utc::now();
        let visible: Vec<&Prepared> = snapshot
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| {
                !p.entry.meta.confidential
                    && !p.entry.is_expired(now)
                    && ask.scopes.iter().all(|s| s.permits_entry(&p.entry))
            })
            .collect();
        // With a model, semantic similarity to the objective is a signal.
        let semantic = match (&state.config().embedder, ask.agent.objective.trim()) {
            (Some(embedder), objective) if !objective.is_empty() => {
                similarities(&state, embedder.as_ref(), ask.ctx.as_str(), &visible, objective).await?
            }
            _ => BTreeMap::new(),
        };
        let scorer = Scorer::new(&ask.agent, &ask.settings, &visible, chrono::Utc::now());
        let request = PackageRequest { budget: ask.budget, explain: ask.explain, compress: ask.compress };
        let mut package = build_package(
            ask.ctx.as_str(),
            ask.revision,
            &scorer,
            &visible,
            &semantic,
            &request,
            tokenizer,
            &Extractive,
            ask.encoding.name(),
        );
        if let Some(llm) = &state.config().summarizer {
            llm_summaries(llm, &mut package, &snapshot, &ask.agent.objective, tokenizer).await;
        }
        Ok(package)
    }
}

/// Turns texts into normalized vectors (semantic search and relevance).
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// The model's name (vectors are cached under it).
    fn name(&self) -> &str;
    /// One vector per text.
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, String>>;
}

/// A local sentence-transformers model directory, run with candle.
#[derive(Debug)]
pub struct LocalEmbedder(Arc<ctxmesh_embed::Model>);

impl LocalEmbedder {
    /// Loads the model in `dir`.
    pub fn load(dir: &std::path::Path) -> Result<Self, String> {
        ctxmesh_embed::Model::load(dir).map(|m| LocalEmbedder(Arc::new(m)))
    }
}

impl Embedder for LocalEmbedder {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, String>> {
        let model = self.0.clone();
        async move {
            tokio::task::spawn_blocking(move || model.embed(&texts.iter().map(String::as_str).collect::<Vec<_>>()))
                .await
                .map_err(|e| e.to_string())?
        }
        .boxed()
    }
}

/// An OpenAI-compatible endpoint (`POST {url}/embeddings`).
#[derive(Debug)]
pub struct RemoteEmbedder {
    url: String,
    model: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl RemoteEmbedder {
    /// An endpoint at `url` (e.g. `http://127.0.0.1:11434/v1`) serving `model`.
    pub fn new(url: &str, model: &str, key: Option<String>) -> Self {
        RemoteEmbedder { url: url.trim_end_matches('/').to_owned(), model: model.to_owned(), key, http: http_client() }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap_or_default()
}

impl Embedder for RemoteEmbedder {
    fn name(&self) -> &str {
        &self.model
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, String>> {
        let mut req =
            self.http.post(format!("{}/embeddings", self.url)).json(&json!({"model": self.model, "input": texts}));
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        async move {
            let r = req.send().await.map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("the embeddings endpoint answered {}", r.status()));
            }
            let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
            let data = body["data"].as_array().ok_or("no data in the embeddings answer")?;
            let mut out = Vec::with_capacity(data.len());
            for item in data {
                let v: Vec<f32> = serde_json::from_value(item["embedding"].clone()).map_err(|e| e.to_string())?;
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                out.push(v.into_iter().map(|x| x / norm).collect());
            }
            Ok(out)
        }
        .boxed()
    }
}

/// An OpenAI-compatible chat endpoint that summarizes entries that do not
/// fit a package (`POST {url}/chat/completions`); the extractive summary
/// stands whenever it fails or answers too long.
#[derive(Debug)]
pub struct LlmSummarizer {
    url: String,
    model: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl LlmSummarizer {
    /// An endpoint at `url` serving `model`.
    pub fn new(url: &str, model: &str, key: Option<String>) -> Self {
        LlmSummarizer { url: url.trim_end_matches('/').to_owned(), model: model.to_owned(), key, http: http_client() }
    }

    async fn summarize(&self, text: &str, objective: &str, tokens: usize) -> Result<String, String> {
        let prompt = format!(
            "Summarize the following for an agent whose objective is: {objective}\n\
             Use at most {} words. Keep facts, numbers and names. Answer with the summary only.\n\n{text}",
            (tokens * 3 / 4).max(5)
        );
        let body = json!({"model": self.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0});
        let mut req = self.http.post(format!("{}/chat/completions", self.url)).json(&body);
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        let r = req.send().await.map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("the summarizer answered {}", r.status()));
        }
        let answer: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
        answer["choices"][0]["message"]["content"]
            .as_str()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| "no summary in the answer".to_owned())
    }
}

/// Replaces the extractive summaries of `package` by the LLM's where each
/// fits the room its extractive one took and the whole stays within the
/// budget; otherwise leaves the package as it was.
async fn llm_summaries(
    llm: &LlmSummarizer,
    package: &mut Package,
    snapshot: &[Arc<Prepared>],
    objective: &str,
    counter: &Tokenizer,
) {
    let original = package.clone();
    let mut changed = false;
    for item in package.items.iter_mut().filter(|i| i.status == ctxmesh_core::mesh::Inclusion::Compressed) {
        let Some(p) = snapshot.iter().find(|p| p.entry.key == item.key) else { continue };
        let Some((head, _)) = item.text.split_once('\n') else { continue };
        let head_tokens = counter.count(head) + 1;
        match llm.summarize(&p.text, objective, item.tokens.saturating_sub(head_tokens)).await {
            Ok(summary) => {
                let text = format!("{head}\n{summary}");
                let tokens = counter.count(&text);
                if tokens <= item.tokens {
                    item.text = text;
                    item.tokens = tokens;
                    changed = true;
                }
            }
            Err(e) => {
                metrics::counter!("ctxmesh_summarizer_failures_total").increment(1);
                tracing::warn!(error = %e, key = %item.key, "the summarizer failed; the extractive summary stands");
            }
        }
    }
    if !changed {
        return;
    }
    let title = package.text.split("\n\n").next().unwrap_or_default().to_owned();
    let mut text = title;
    for item in &package.items {
        text.push_str("\n\n");
        text.push_str(&item.text);
    }
    let tokens = counter.count(&text);
    if tokens <= package.budget {
        package.text = text;
        package.tokens = tokens;
    } else {
        *package = original;
    }
}

/// A vector of an entry version: (model and context, key, revision).
type VectorKey = (String, String, u64);

/// Vectors of entries and queries, by model.
#[derive(Default)]
pub(crate) struct Vectors {
    entries: Mutex<Option<Bounded<VectorKey, Arc<Vec<f32>>>>>,
    queries: Mutex<Option<Bounded<String, Arc<Vec<f32>>>>>,
}

/// Entry vectors a node keeps.
const VECTORS: usize = 50_000;

/// The semantic similarity (0..1) of each entry of `entries` to `query`,
/// by key; the entries' vectors are cached by revision.
pub(crate) async fn similarities(
    state: &AppState,
    embedder: &dyn Embedder,
    ctx: &str,
    entries: &[&Prepared],
    query: &str,
) -> ApiResult<BTreeMap<String, f64>> {
    let vectors = &state.mesh().vectors;
    let model = embedder.name().to_owned();
    let query_key = format!("{model}\u{0}{query}");
    let cached = lock(&vectors.queries).get_or_insert_with(|| Bounded::new(256)).get(&query_key);
    let query_vector = match cached {
        Some(v) => v,
        None => {
            let v = embed_one(embedder, query.to_owned()).await?;
            lock(&vectors.queries).get_or_insert_with(|| Bounded::new(256)).insert(query_key, v.clone());
            v
        }
    };
    let key_of = |p: &Prepared| (format!("{model}\u{0}{ctx}"), p.entry.key.clone(), p.entry.revision);
    let mut missing: Vec<&Prepared> = Vec::new();
    let mut out = BTreeMap::new();
    {
        let mut cache = lock(&vectors.entries);
        let cache = cache.get_or_insert_with(|| Bounded::new(VECTORS));
        for p in entries {
            match cache.get(&key_of(p)) {
                Some(v) => {
                    out.insert(p.entry.key.clone(), ctxmesh_embed::cosine(&query_vector, &v).max(0.0));
                }
                None => missing.push(p),
            }
        }
    }
    for batch in missing.chunks(32) {
        let texts = batch.iter().map(|p| ctxmesh_core::mesh::search_text(&p.entry)).collect();
        let computed = embedder.embed(texts).await.map_err(|e| ApiError::unavailable(format!("embeddings: {e}")))?;
        let mut cache = lock(&vectors.entries);
        let cache = cache.get_or_insert_with(|| Bounded::new(VECTORS));
        for (p, v) in batch.iter().zip(computed) {
            out.insert(p.entry.key.clone(), ctxmesh_embed::cosine(&query_vector, &v).max(0.0));
            cache.insert(key_of(p), Arc::new(v));
        }
    }
    Ok(out)
}

async fn embed_one(embedder: &dyn Embedder, text: String) -> ApiResult<Arc<Vec<f32>>> {
    let mut v = embedder.embed(vec![text]).await.map_err(|e| ApiError::unavailable(format!("embeddings: {e}")))?;
    v.pop().map(Arc::new).ok_or_else(|| ApiError::unavailable("embeddings: no vector"))
}
