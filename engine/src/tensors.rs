//! The one description of a Qwen3 model's tensors: what each one is ([`Role`]), its names in
//! Hugging Face checkpoints (without the `model.` prefix) and in llama.cpp's GGUF files, its
//! shape for a model's sizes, and the order they are read in. Both backends fill their layers
//! through [`Layer::build`], both loaders check shapes and count types through [`read_all`], the
//! packed-weight cache checks its tensors against [`expected_dims`], and the fixture generator
//! writes its checkpoints from [`Role`].

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::quantized::QTensor;
use candle_core::Tensor;

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};

/// What a tensor is to the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    TokenEmbd,
    AttnNorm,
    AttnQ,
    AttnK,
    AttnV,
    AttnOutput,
    AttnQNorm,
    AttnKNorm,
    FfnNorm,
    FfnGate,
    FfnUp,
    FfnDown,
    OutputNorm,
    /// A causal LM's output head (a reranker's `lm_head`; llama.cpp keeps only the rows a
    /// reranker reads, as `cls.output`). Not part of the trunk.
    Output,
}

/// A layer's tensors, in the order they are read (and the fixture generator writes them).
pub const LAYER: [Role; 11] = [
    Role::AttnNorm,
    Role::AttnQ,
    Role::AttnK,
    Role::AttnV,
    Role::AttnOutput,
    Role::AttnQNorm,
    Role::AttnKNorm,
    Role::FfnNorm,
    Role::FfnGate,
    Role::FfnUp,
    Role::FfnDown,
];

/// The sizes a tensor's shape depends on.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab_rows: usize,
}

impl From<&ModelConfig> for Sizes {
    fn from(c: &ModelConfig) -> Sizes {
        Sizes {
            hidden: c.hidden,
            intermediate: c.intermediate,
            heads: c.heads,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            vocab_rows: c.vocab_rows,
        }
    }
}

impl Role {
    /// The Hugging Face name (after `layers.{i}.` for a layer's tensor) and the GGUF name
    /// (after `blk.{i}.`), both without `.weight`.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Role::TokenEmbd => ("embed_tokens", "token_embd"),
            Role::AttnNorm => ("input_layernorm", "attn_norm"),
            Role::AttnQ => ("self_attn.q_proj", "attn_q"),
            Role::AttnK => ("self_attn.k_proj", "attn_k"),
            Role::AttnV => ("self_attn.v_proj", "attn_v"),
            Role::AttnOutput => ("self_attn.o_proj", "attn_output"),
            Role::AttnQNorm => ("self_attn.q_norm", "attn_q_norm"),
            Role::AttnKNorm => ("self_attn.k_norm", "attn_k_norm"),
            Role::FfnNorm => ("post_attention_layernorm", "ffn_norm"),
            Role::FfnGate => ("mlp.gate_proj", "ffn_gate"),
            Role::FfnUp => ("mlp.up_proj", "ffn_up"),
            Role::FfnDown => ("mlp.down_proj", "ffn_down"),
            Role::OutputNorm => ("norm", "output_norm"),
            Role::Output => ("lm_head", "cls.output"),
        }
    }

    /// Its shape: `[out, in]` for a projection, `[rows, hidden]` for the embedding table,
    /// `[n]` for a norm.
    pub fn dims(self, s: &Sizes) -> Vec<usize> {
        let q = s.heads * s.head_dim;
        let kv = s.kv_heads * s.head_dim;
        match self {
            Role::TokenEmbd | Role::Output => vec![s.vocab_rows, s.hidden],
            Role::AttnNorm | Role::FfnNorm | Role::OutputNorm => vec![s.hidden],
            Role::AttnQNorm | Role::AttnKNorm => vec![s.head_dim],
            Role::AttnQ => vec![q, s.hidden],
            Role::AttnK | Role::AttnV => vec![kv, s.hidden],
            Role::AttnOutput => vec![s.hidden, q],
            Role::FfnGate | Role::FfnUp => vec![s.intermediate, s.hidden],
            Role::FfnDown => vec![s.hidden, s.intermediate],
        }
    }
}

/// One tensor of a model: what it is and, for a layer's, which layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorId {
    pub role: Role,
    pub layer: Option<usize>,
}

impl TensorId {
    /// The canonical name: the Hugging Face one without `model.` and `.weight`
    /// (`embed_tokens`, `layers.3.mlp.up_proj`, `norm`).
    pub fn canonical(self) -> String {
        match self.layer {
            Some(i) => format!("layers.{i}.{}", self.role.names().0),
            None => self.role.names().0.to_string(),
        }
    }

    /// llama.cpp's name (`token_embd.weight`, `blk.3.ffn_up.weight`).
    pub fn gguf(self) -> String {
        match self.layer {
            Some(i) => format!("blk.{i}.{}.weight", self.role.names().1),
            None => format!("{}.weight", self.role.names().1),
        }
    }

    /// The tensor a canonical name names.
    pub fn parse(canonical: &str) -> Option<TensorId> {
        let (layer, what) = match canonical.strip_prefix("layers.") {
            Some(rest) => {
                let (i, what) = rest.split_once('.')?;
                (Some(i.parse().ok()?), what)
            }
            None => (None, canonical),
        };
        let roles = if layer.is_some() { &LAYER[..] } else { &[Role::TokenEmbd, Role::OutputNorm][..] };
        roles.iter().find(|r| r.names().0 == what).map(|&role| TensorId { role, layer })
    }
}

/// Every tensor of a model of `layers` layers, in the order they are read: the embedding
/// table, each layer's [`LAYER`], the final norm.
pub fn all(layers: usize) -> Vec<TensorId> {
    let mut v = vec![TensorId { role: Role::TokenEmbd, layer: None }];
    for i in 0..layers {
        v.extend(LAYER.iter().map(|&role| TensorId { role, layer: Some(i) }));
    }
    v.push(TensorId { role: Role::OutputNorm, layer: None });
    v
}

/// The canonical names of a model's tensors, in the order they are read.
pub fn names(config: &ModelConfig) -> Vec<String> {
    all(config.layers).into_iter().map(TensorId::canonical).collect()
}

/// llama.cpp's name for a canonical name.
pub fn gguf_name(canonical: &str) -> String {
    TensorId::parse(canonical).unwrap_or_else(|| unreachable!("unknown tensor {canonical}")).gguf()
}

/// The shape the model's configuration gives the tensor of a canonical name.
pub fn expected_dims(config: &ModelConfig, canonical: &str) -> Vec<usize> {
    let id = TensorId::parse(canonical).unwrap_or_else(|| unreachable!("unknown tensor {canonical}"));
    id.role.dims(&Sizes::from(config))
}

/// What a loader hands over for one tensor.
pub enum RawTensor {
    Quantized(QTensor),
    Dense(Tensor),
}

impl RawTensor {
    pub fn dims(&self) -> Vec<usize> {
        match self {
            RawTensor::Quantized(q) => q.shape().dims().to_vec(),
            RawTensor::Dense(t) => t.dims().to_vec(),
        }
    }

    /// Its storage type as the model information counts it ("Q4K", "F16").
    pub fn type_name(&self) -> String {
        match self {
            RawTensor::Quantized(q) => format!("{:?}", q.dtype()),
            RawTensor::Dense(d) => format!("{:?}", d.dtype()),
        }
    }
}

/// A backend's assembly step, as both loaders (`gguf::load_with`, `hf::load_with`) call it: with
/// the model's path and shape, a fetch of each tensor by canonical name, and the type counts to
/// fill.
pub(crate) trait Assemble<W>:
    FnOnce(&Path, ModelConfig, &mut dyn FnMut(&str) -> Result<RawTensor>, &mut BTreeMap<String, usize>) -> Result<W>
{
}

impl<W, F> Assemble<W> for F where
    F: FnOnce(&Path, ModelConfig, &mut dyn FnMut(&str) -> Result<RawTensor>, &mut BTreeMap<String, usize>) -> Result<W>
{
}

/// Reads every tensor of the model, in order, from `fetch` (by canonical name), checks its
/// shape against the configuration, counts its type in `type_counts` and hands it to `take`.
pub fn read_all(
    path: &Path,
    config: &ModelConfig,
    fetch: &mut dyn FnMut(&str) -> Result<RawTensor>,
    type_counts: &mut BTreeMap<String, usize>,
    mut take: impl FnMut(String, Role, RawTensor) -> Result<()>,
) -> Result<()> {
    let sizes = Sizes::from(config);
    for id in all(config.layers) {
        let name = id.canonical();
        let t = fetch(&name)?;
        let expected = id.role.dims(&sizes);
        let found = t.dims();
        if found != expected {
            return Err(EngineError::ShapeMismatch { path: path.to_path_buf(), name, found, expected });
        }
        *type_counts.entry(t.type_name()).or_default() += 1;
        take(name, id.role, t)?;
    }
    Ok(())
}

/// One layer's weights, as a backend holds them: norms of type `N`, projections of type `P`.
pub struct Layer<N, P> {
    pub attn_norm: N,
    pub q: P,
    pub k: P,
    pub v: P,
    pub o: P,
    pub q_norm: N,
    pub k_norm: N,
    pub ffn_norm: N,
    pub gate: P,
    pub up: P,
    pub down: P,
}

impl<N, P> Layer<N, P> {
    /// Layer `i` from its tensors, taken by canonical name and made into a norm by `norm` or
    /// a projection by `proj`: the one place that says which tensor fills which field.
    pub fn build<T>(
        i: usize,
        mut take: impl FnMut(&str) -> Result<T>,
        mut norm: impl FnMut(&str, T) -> Result<N>,
        mut proj: impl FnMut(&str, T) -> Result<P>,
    ) -> Result<Self> {
        let mut one = |role: Role| -> Result<(String, T)> {
            let name = TensorId { role, layer: Some(i) }.canonical();
            let t = take(&name)?;
            Ok((name, t))
        };
        macro_rules! get {
            ($make:ident, $role:expr) => {{
                let (name, t) = one($role)?;
                $make(&name, t)?
            }};
        }
        Ok(Layer {
            attn_norm: get!(norm, Role::AttnNorm),
            q: get!(proj, Role::AttnQ),
            k: get!(proj, Role::AttnK),
            v: get!(proj, Role::AttnV),
            o: get!(proj, Role::AttnOutput),
            q_norm: get!(norm, Role::AttnQNorm),
            k_norm: get!(norm, Role::AttnKNorm),
            ffn_norm: get!(norm, Role::FfnNorm),
            gate: get!(proj, Role::FfnGate),
            up: get!(proj, Role::FfnUp),
            down: get!(proj, Role::FfnDown),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_one_to_one() {
        assert_eq!(gguf_name("embed_tokens"), "token_embd.weight");
        assert_eq!(gguf_name("norm"), "output_norm.weight");
        assert_eq!(gguf_name("layers.7.mlp.down_proj"), "blk.7.ffn_down.weight");
        let ids = all(2);
        assert_eq!(ids.len(), 2 + 2 * LAYER.len());
        for id in &ids {
            assert_eq!(TensorId::parse(&id.canonical()), Some(*id));
        }
        let mut gg: Vec<_> = ids.iter().map(|id| id.gguf()).collect();
        gg.sort();
        gg.dedup();
        assert_eq!(gg.len(), ids.len());
    }
}
