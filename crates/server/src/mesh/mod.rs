//! The context mesh on a node: tokenizers, a cache of prepared entries per
//! context revision, and a cache of packages by revision in which identical
//! concurrent requests are computed once. Workflow prefetch fills the
//! package cache ahead of the next agent's request.
//!
//! The caches are per node and bounded; they hold nothing that a read at
//! the same revision would not give again, so a miss is only slower.
//!
//! This module holds the node's mesh state ([`Mesh`]); each job is a
//! submodule:
//!
//! - `tokens`: the tiktoken encodings packages are counted in;
//! - `bounded`: the size-bounded map every cache is made of;
//! - `snapshot`: the prepared entries of a context revision;
//! - `cache`: the package cache, in which identical requests share one
//!   computation;
//! - `package`: what a package is asked for, and computing it;
//! - `prefetch`: computing the next agent's package of a workflow ahead;
//! - `embed`: embedding models, and the semantic similarity of entries;
//! - `summarize`: an LLM's summaries in place of the extractive ones.

mod bounded;
mod cache;
mod embed;
pub(crate) mod package;
mod prefetch;
mod snapshot;
mod summarize;
mod tokens;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use ctxmesh_core::mesh::MeshSettings;

use bounded::Bounded;
use cache::{PackageKey, Pending};
use embed::Vectors;
use snapshot::Snapshot;

pub(crate) use embed::similarities;
pub use embed::{Embedder, LocalEmbedder, RemoteEmbedder};
pub(crate) use package::{Ask, MAX_BUDGET, package, registered};
pub(crate) use prefetch::after_write;
pub use summarize::LlmSummarizer;
pub use tokens::{Encoding, Tokenizer};

/// Contexts whose prepared entries a node keeps.
const SNAPSHOTS: usize = 64;
/// Packages a node keeps.
const PACKAGES: usize = 1024;

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

/// The server's client for outbound HTTP and HTTPS (the embeddings and
/// summarizer endpoints, and any other service the server calls): HTTPS
/// servers are trusted when the system's roots or the certificates of
/// `ca_file` (PEM; `serve --ca-file`) vouch for them; a request gives up
/// after 30 seconds.
pub fn outbound_client(ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, ctxmesh_tls::TlsError> {
    ctxmesh_tls::http_client_builder(ca_file)?.timeout(std::time::Duration::from_secs(30)).build().map_err(|e| {
        ctxmesh_tls::TlsError::Config(rustls::Error::General(format!("cannot build the HTTP client: {e}")))
    })
}

/// The outbound client trusting the system's roots only.
fn http_client() -> reqwest::Client {
    outbound_client(None).unwrap_or_else(|e| {
        tracing::error!("{e}: outbound HTTPS will fail");
        reqwest::Client::new()
    })
}

/// What a failed outbound request means: a refused certificate said in
/// words with what to do, else the error and its causes.
fn transport_error(e: &reqwest::Error) -> String {
    ctxmesh_tls::describe(e, "serve --ca-file (or CTXMESH_CA_FILE)")
}
