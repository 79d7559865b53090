//! The one table of tensor names: Hugging Face checkpoints (without the `model.` prefix) and
//! llama.cpp's GGUF files. The loader and the fixture generator both read it.

/// Per layer: the Hugging Face name after `layers.{i}.` and the GGUF name after `blk.{i}.`,
/// both without `.weight`.
pub const LAYER: [(&str, &str); 11] = [
    ("input_layernorm", "attn_norm"),
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
    ("post_attention_layernorm", "ffn_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// The token embedding and the final norm: (Hugging Face, GGUF) without `.weight`.
pub const EMBED: (&str, &str) = ("embed_tokens", "token_embd");
pub const FINAL_NORM: (&str, &str) = ("norm", "output_norm");

/// llama.cpp's name for a canonical tensor (`embed_tokens`, `norm` or `layers.{i}.{what}`).
pub fn gguf_name(canonical: &str) -> String {
    if canonical == EMBED.0 {
        return format!("{}.weight", EMBED.1);
    }
    if canonical == FINAL_NORM.0 {
        return format!("{}.weight", FINAL_NORM.1);
    }
    let rest = canonical.strip_prefix("layers.").expect("layer tensor");
    let (layer, what) = rest.split_once('.').expect("layer index");
    let short = LAYER
        .iter()
        .find(|(hf, _)| *hf == what)
        .map(|(_, gg)| *gg)
        .unwrap_or_else(|| unreachable!("unknown layer tensor {what}"));
    format!("blk.{layer}.{short}.weight")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_one_to_one() {
        assert_eq!(gguf_name("embed_tokens"), "token_embd.weight");
        assert_eq!(gguf_name("norm"), "output_norm.weight");
        assert_eq!(gguf_name("layers.7.mlp.down_proj"), "blk.7.ffn_down.weight");
        let mut gg: Vec<_> = LAYER.iter().map(|(_, g)| g).collect();
        gg.sort();
        gg.dedup();
        assert_eq!(gg.len(), LAYER.len());
    }
}
