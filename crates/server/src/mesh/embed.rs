//! Embedding models (a local one, an OpenAI-compatible endpoint) and the
//! semantic similarity of entries to a text, with entry and query vectors
//! cached per node.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ctxmesh_core::mesh::Prepared;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;
use tracing::Instrument as _;

use super::bounded::Bounded;
use super::{http_client, lock};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

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
        Self::with_client(url, model, key, http_client())
    }

    /// An endpoint at `url` serving `model`, reached with `http` (see
    /// [`super::outbound_client`]).
    pub fn with_client(url: &str, model: &str, key: Option<String>, http: reqwest::Client) -> Self {
        RemoteEmbedder { url: url.trim_end_matches('/').to_owned(), model: model.to_owned(), key, http }
    }
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
            let r = req.send().await.map_err(|e| super::transport_error(&e))?;
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

/// A vector of an entry version: (model and context, key, revision).
type VectorKey = (String, String, u64);

/// Vectors of entries and queries, by model.
#[derive(Default)]
pub(super) struct Vectors {
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
        let computed = traced(embedder, texts).await.map_err(|e| ApiError::unavailable(format!("embeddings: {e}")))?;
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
    let mut v = traced(embedder, vec![text]).await.map_err(|e| ApiError::unavailable(format!("embeddings: {e}")))?;
    v.pop().map(Arc::new).ok_or_else(|| ApiError::unavailable("embeddings: no vector"))
}

/// `embedder.embed(texts)` in a `mesh.embed` span.
async fn traced(embedder: &dyn Embedder, texts: Vec<String>) -> Result<Vec<Vec<f32>>, String> {
    let span = tracing::debug_span!(
        "mesh.embed",
        gen_ai.request.model = embedder.name(),
        ctxmesh.embed.texts = texts.len() as i64,
        otel.status_code = tracing::field::Empty,
    );
    let vectors = embedder.embed(texts).instrument(span.clone()).await;
    if vectors.is_err() {
        span.record("otel.status_code", "error");
    }
    vectors
}
