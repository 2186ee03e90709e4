//! An LLM's summaries of the entries that do not fit a package whole, in
//! place of the extractive ones when they fit.

use std::sync::Arc;

use ctxmesh_core::mesh::{Package, Prepared, TokenCounter};
use serde_json::json;
use tracing::Instrument as _;

use super::tokens::Tokenizer;
use super::{http_client, transport_error};

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
        Self::with_client(url, model, key, http_client())
    }

    /// An endpoint at `url` serving `model`, reached with `http` (see
    /// [`super::outbound_client`]).
    pub fn with_client(url: &str, model: &str, key: Option<String>, http: reqwest::Client) -> Self {
        LlmSummarizer { url: url.trim_end_matches('/').to_owned(), model: model.to_owned(), key, http }
    }

    async fn summarize(&self, text: &str, objective: &str, tokens: usize) -> Result<String, String> {
        let span = tracing::debug_span!(
            "mesh.summarize",
            otel.kind = "client",
            server.address = self.url.as_str(),
            gen_ai.request.model = self.model.as_str(),
            otel.status_code = tracing::field::Empty,
        );
        let answer = self.ask(text, objective, tokens).instrument(span.clone()).await;
        if answer.is_err() {
            span.record("otel.status_code", "error");
        }
        answer
    }

    async fn ask(&self, text: &str, objective: &str, tokens: usize) -> Result<String, String> {
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
        let r = req.send().await.map_err(|e| transport_error(&e))?;
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
pub(super) async fn llm_summaries(
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
