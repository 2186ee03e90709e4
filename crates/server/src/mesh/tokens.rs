//! The tokenizers packages are counted with: tiktoken's encodings, each
//! loaded once.

use std::sync::OnceLock;

use ctxmesh_core::mesh::TokenCounter;
use tiktoken_rs::CoreBPE;

use crate::error::{ApiError, ApiResult};

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
