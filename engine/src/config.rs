use std::path::Path;

use crate::error::{EngineError, Result};

/// The shape of a Qwen3 model, read from the file (never assumed).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Rows of the token-embedding table: no token id may reach this.
    pub vocab_rows: usize,
    pub rope_theta: f64,
    pub rms_eps: f64,
    pub max_positions: usize,
}

impl ModelConfig {
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |detail: String| EngineError::InvalidConfig { path: path.to_path_buf(), detail };
        for (name, v) in [
            ("hidden size", self.hidden),
            ("intermediate size", self.intermediate),
            ("layer count", self.layers),
            ("attention heads", self.heads),
            ("key/value heads", self.kv_heads),
            ("head dim", self.head_dim),
            ("vocabulary size", self.vocab_rows),
            ("maximum positions", self.max_positions),
        ] {
            if v == 0 {
                return Err(bad(format!("{name} is 0")));
            }
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(bad(format!(
                "{} attention heads are not a multiple of {} key/value heads",
                self.heads, self.kv_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(bad(format!("head dim {} is odd", self.head_dim)));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(bad(format!("rope theta {} is not positive", self.rope_theta)));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            return Err(bad(format!("rms norm epsilon {} is not positive", self.rms_eps)));
        }
        Ok(())
    }

    /// Parameter count of the weights this shape implies (tied embeddings).
    pub fn parameter_count(&self) -> u64 {
        let h = self.hidden as u64;
        let q = (self.heads * self.head_dim) as u64;
        let kv = (self.kv_heads * self.head_dim) as u64;
        let i = self.intermediate as u64;
        let per_layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h + 2 * self.head_dim as u64;
        self.vocab_rows as u64 * h + self.layers as u64 * per_layer + h
    }

    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_json(path: &Path, text: &str) -> Result<Self> {
        let bad = |detail: String| EngineError::InvalidConfig { path: path.to_path_buf(), detail };
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let model_type = v.get("model_type").and_then(|m| m.as_str()).unwrap_or("");
        if model_type != "qwen3" {
            return Err(EngineError::WrongArchitecture { path: path.to_path_buf(), found: model_type.to_string() });
        }
        let int = |key: &str| -> Result<usize> {
            v.get(key)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| bad(format!("{key} is missing or not a non-negative integer")))
        };
        let float = |key: &str, default: f64| -> Result<f64> {
            match v.get(key) {
                None | Some(serde_json::Value::Null) => Ok(default),
                Some(x) => x.as_f64().ok_or_else(|| bad(format!("{key} is not a number"))),
            }
        };
        let hidden = int("hidden_size")?;
        let heads = int("num_attention_heads")?;
        let head_dim = match v.get("head_dim") {
            Some(x) if !x.is_null() => int("head_dim")?,
            _ => hidden / heads.max(1),
        };
        let c = ModelConfig {
            hidden,
            intermediate: int("intermediate_size")?,
            layers: int("num_hidden_layers")?,
            heads,
            kv_heads: match v.get("num_key_value_heads") {
                Some(x) if !x.is_null() => int("num_key_value_heads")?,
                _ => heads,
            },
            head_dim,
            vocab_rows: int("vocab_size")?,
            rope_theta: float("rope_theta", 1_000_000.0)?,
            rms_eps: float("rms_norm_eps", 1e-6)?,
            max_positions: int("max_position_embeddings").unwrap_or(40960),
        };
        c.validate(path)?;
        Ok(c)
    }
}
