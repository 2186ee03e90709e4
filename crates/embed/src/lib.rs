//! Sentence embeddings, offline: a sentence-transformers model directory of
//! the BERT family (`config.json`, `model.safetensors`, `tokenizer.json`,
//! such as all-MiniLM-L6-v2) run on the CPU with candle, mean-pooled over
//! the tokens and normalized, so that a dot product is the cosine
//! similarity.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

/// Longest input, in tokens (longer texts are truncated).
const MAX_TOKENS: usize = 256;

/// A loaded model.
pub struct Model {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    /// Its name (the directory's).
    pub name: String,
    /// Length of its vectors.
    pub dimensions: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("name", &self.name).field("dimensions", &self.dimensions).finish()
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

impl Model {
    /// Loads the model in `dir`.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let read =
            |name: &str| std::fs::read(dir.join(name)).map_err(|e| err(&format!("{}", dir.join(name).display()), e));
        let config: Config = serde_json::from_slice(&read("config.json")?).map_err(|e| err("config.json", e))?;
        let hidden: usize = serde_json::from_slice::<serde_json::Value>(&read("config.json")?)
            .ok()
            .and_then(|c| c["hidden_size"].as_u64())
            .unwrap_or(0) as usize;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| err("tokenizer.json", e))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| err("tokenizer", e))?;
        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        // SAFETY: the file is mapped read-only and not changed while the
        // model lives (a model directory is not written to).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }
            .map_err(|e| err("model.safetensors", e))?;
        let model = BertModel::load(vb, &config).map_err(|e| err("model", e))?;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Model { model, tokenizer, device, name, dimensions: hidden })
    }

    /// The normalized embedding of each text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| err("tokenize", e))?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<u32>| -> Result<Tensor, String> {
            let data: Vec<Tensor> = encodings
                .iter()
                .map(|e| Tensor::new(f(e).as_slice(), &self.device))
                .collect::<candle_core::Result<_>>()
                .map_err(|e| err("tensor", e))?;
            Tensor::stack(&data, 0).map_err(|e| err("tensor", e))
        };
        let ids = rows(&|e| e.get_ids().to_vec())?;
        let types = rows(&|e| e.get_type_ids().to_vec())?;
        let mask = rows(&|e| e.get_attention_mask().to_vec())?;
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let hidden = self.model.forward(&ids, &types, Some(&mask))?;
            // Mean over the real tokens, then unit length.
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        };
        run().map_err(|e| err("model", e))
    }
}

/// The cosine similarity of two normalized vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}
