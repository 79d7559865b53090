//! Rebuilds the official Qwen2 tokenizer from a GGUF file's `tokenizer.ggml.*` metadata,
//! as the same `tokenizer.json` structure the Hugging Face release ships.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use serde_json::{json, Map};

use crate::error::{EngineError, Result};

/// The pre-tokenizer split of Qwen2's `tokenizer.json`.
pub const QWEN2_SPLIT_REGEX: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const TOKEN_TYPE_NORMAL: i64 = 1;
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

fn bad(path: &Path, detail: impl Into<String>) -> EngineError {
    EngineError::Tokenizer { path: path.to_path_buf(), detail: detail.into() }
}

fn string_array<'a>(path: &Path, md: &'a HashMap<String, Value>, key: &str) -> Result<Vec<&'a str>> {
    let v = md.get(key).ok_or_else(|| bad(path, format!("metadata {key} is missing")))?;
    let arr = v.to_vec().map_err(|_| bad(path, format!("metadata {key} is not an array")))?;
    arr.iter()
        .map(|x| match x {
            Value::String(s) => Ok(s.as_str()),
            _ => Err(bad(path, format!("metadata {key} holds a non-string"))),
        })
        .collect()
}

fn int_value(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => *x as i64,
        Value::I8(x) => *x as i64,
        Value::U16(x) => *x as i64,
        Value::I16(x) => *x as i64,
        Value::U32(x) => *x as i64,
        Value::I32(x) => *x as i64,
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}

/// Returns the `tokenizer.json` document and the EOS id the file names.
pub fn tokenizer_json_from_gguf(path: &Path, md: &HashMap<String, Value>) -> Result<(serde_json::Value, u32)> {
    match md.get("tokenizer.ggml.model") {
        Some(Value::String(s)) if s == "gpt2" => {}
        Some(Value::String(s)) => {
            return Err(bad(path, format!("tokenizer model {s:?} is not the byte-level BPE (gpt2) one")))
        }
        _ => return Err(bad(path, "metadata tokenizer.ggml.model is missing")),
    }
    match md.get("tokenizer.ggml.pre") {
        Some(Value::String(s)) if s == "qwen2" => {}
        Some(Value::String(s)) => return Err(bad(path, format!("pre-tokenizer {s:?} is not qwen2"))),
        _ => return Err(bad(path, "metadata tokenizer.ggml.pre is missing")),
    }
    let tokens = string_array(path, md, "tokenizer.ggml.tokens")?;
    let merges = string_array(path, md, "tokenizer.ggml.merges")?;
    let types: Vec<i64> = match md.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|_| bad(path, "metadata tokenizer.ggml.token_type is not an array"))?
            .iter()
            .map(|x| int_value(x).ok_or_else(|| bad(path, "token_type holds a non-integer")))
            .collect::<Result<_>>()?,
        None => vec![TOKEN_TYPE_NORMAL; tokens.len()],
    };
    if types.len() != tokens.len() {
        return Err(bad(path, format!("{} token types for {} tokens", types.len(), tokens.len())));
    }
    let eos = md
        .get("tokenizer.ggml.eos_token_id")
        .and_then(int_value)
        .ok_or_else(|| bad(path, "metadata tokenizer.ggml.eos_token_id is missing"))?;
    let eos = u32::try_from(eos)
        .ok()
        .filter(|e| (*e as usize) < tokens.len())
        .ok_or_else(|| bad(path, format!("eos id {eos} is not a token of the file")))?;

    let mut vocab = Map::new();
    let mut added = Vec::new();
    for (id, (tok, ty)) in tokens.iter().zip(&types).enumerate() {
        match *ty {
            TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED => added.push(json!({
                "id": id,
                "content": tok,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": *ty == TOKEN_TYPE_CONTROL,
            })),
            _ => {
                vocab.insert((*tok).to_string(), json!(id));
            }
        }
    }
    let merges: Vec<serde_json::Value> = merges
        .iter()
        .map(|m| {
            m.split_once(' ').map(|(a, b)| json!([a, b])).ok_or_else(|| bad(path, format!("merge {m:?} has no space")))
        })
        .collect::<Result<_>>()?;
    let byte_level = json!({
        "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false
    });
    let doc = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT_REGEX}, "behavior": "Isolated", "invert": false},
            byte_level.clone(),
        ]},
        "post_processor": byte_level.clone(),
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": "", "end_of_word_suffix": "",
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        },
    });
    Ok((doc, eos))
}
