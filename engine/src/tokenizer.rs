//! The Qwen3-Embedding tokenizer: the file's own byte-level BPE, the instruction format,
//! EOS appended and kept last under truncation.
//!
//! Special-token strings in input text (`<|endoftext|>`, `<|im_start|>`, ...) become their
//! token ids exactly as the official tokenizer makes them, as long as the model has an
//! embedding row for that id. Added tokens at or past the model's embedding rows (the 4B and
//! 8B tables stop at 151664, so `<tool_response>`, `</tool_response>`, `<think>`, `</think>`)
//! are removed from the tokenizer and such strings are ordinary text, as in the official GGUF
//! files of those models. No input can yield an id the model cannot look up.

use std::path::Path;
use std::str::FromStr;

use tokenizers::Tokenizer;

use crate::cancel::{Cancel, Never};
use crate::cut::CutRule;
use crate::error::{EngineError, Result};

/// Texts up to this many bytes are tokenized whole, so that their full length is known.
const CUT_FROM_BYTES: usize = 64 << 10;

/// Longer texts are tokenized in pieces of about this many bytes, cut at safe boundaries: only
/// ids (or offsets) are kept per piece, and a stop request is seen between pieces.
const PIECE_BYTES: usize = 256 << 10;

/// The longest stretch with no safe boundary that is tokenized: BPE needs such a stretch whole
/// (about a second per MiB on 2 cores) and cannot be stopped inside it, so a longer one (megabytes
/// of one letter, of spaces, of one symbol: never prose) is refused.
pub const MAX_UNBROKEN_BYTES: usize = 1 << 20;

/// First guess of the bytes that hold the tokens to keep (most text has 3 to 5 per token);
/// a shorter guess only costs another, longer, attempt.
const GUESS_BYTES_PER_TOKEN: usize = 6;

/// Upstream's default retrieval task for queries.
pub const DEFAULT_TASK: &str = "Given a web search query, retrieve relevant passages that answer the query";

/// The text the model sees: `Instruct: {task}\nQuery:{text}` with a task, the text alone without.
pub fn format_input(text: &str, instruct: Option<&str>) -> String {
    match instruct {
        Some(task) => format!("Instruct: {task}\nQuery:{text}"),
        None => text.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tokenized {
    /// Token ids, EOS last.
    pub ids: Vec<u32>,
    /// True when text tokens were dropped to fit the limit.
    pub truncated: bool,
    /// Token count (EOS included) before truncation; when `cut`, the input has more than this.
    pub full_len: usize,
    /// Only a prefix of the text was tokenized (`crate::cut`): `full_len` is a lower bound.
    pub cut: bool,
}

impl Tokenized {
    /// The length before truncation, as messages show it: "1234" or "more than 1234".
    pub fn full_len_text(&self) -> String {
        if self.cut {
            format!("more than {}", self.full_len)
        } else {
            self.full_len.to_string()
        }
    }
}

pub struct Qwen3Tokenizer {
    inner: Tokenizer,
    eos: u32,
    vocab_rows: usize,
    cut: Option<CutRule>,
    /// Texts up to this many bytes are tokenized whole.
    cut_from: usize,
    /// Bytes per piece of a text tokenized in pieces.
    piece_bytes: usize,
}

fn bad(path: &Path, detail: impl Into<String>) -> EngineError {
    EngineError::Tokenizer { path: path.to_path_buf(), detail: detail.into() }
}

impl Qwen3Tokenizer {
    /// From a `tokenizer.json` document; `eos` is the id appended to every input.
    pub fn from_json(path: &Path, mut doc: serde_json::Value, eos: Option<u32>, vocab_rows: usize) -> Result<Self> {
        if let Some(vocab) = doc.pointer("/model/vocab").and_then(|v| v.as_object()) {
            if let Some((tok, id)) = vocab.iter().find(|(_, id)| id.as_u64().is_none_or(|i| i as usize >= vocab_rows)) {
                return Err(bad(
                    path,
                    format!("vocabulary token {tok:?} has id {id}, past the model's {vocab_rows} embedding rows"),
                ));
            }
        }
        let mut eos_by_name = None;
        if let Some(added) = doc.get_mut("added_tokens").and_then(|a| a.as_array_mut()) {
            added.retain(|t| t.get("id").and_then(|i| i.as_u64()).is_some_and(|i| (i as usize) < vocab_rows));
            eos_by_name = added
                .iter()
                .find(|t| t.get("content").and_then(|c| c.as_str()) == Some("<|endoftext|>"))
                .and_then(|t| t.get("id").and_then(|i| i.as_u64()))
                .map(|i| i as u32);
        }
        // The embedding models append EOS themselves; a post-processor must add nothing.
        if let Some(pp) = doc.get_mut("post_processor") {
            if pp.get("type").and_then(|t| t.as_str()) != Some("ByteLevel") {
                *pp = serde_json::Value::Null;
            }
        }
        doc["truncation"] = serde_json::Value::Null;
        doc["padding"] = serde_json::Value::Null;
        let eos = eos.or(eos_by_name).ok_or_else(|| bad(path, "no <|endoftext|> token to append"))?;
        if eos as usize >= vocab_rows {
            return Err(bad(path, format!("eos id {eos} is past the model's {vocab_rows} embedding rows")));
        }
        let inner = Tokenizer::from_str(&doc.to_string()).map_err(|e| bad(path, e.to_string()))?;
        let cut = CutRule::for_tokenizer(&doc);
        Ok(Qwen3Tokenizer { inner, eos, vocab_rows, cut, cut_from: CUT_FROM_BYTES, piece_bytes: PIECE_BYTES })
    }

    /// From a Hugging Face `tokenizer.json` file.
    pub fn from_file(path: &Path, vocab_rows: usize) -> Result<Self> {
        let bytes = crate::files::read(path)?;
        let text = String::from_utf8(bytes).map_err(|e| bad(path, format!("not UTF-8: {e}")))?;
        let doc = serde_json::from_str(&text).map_err(|e| bad(path, format!("not valid JSON: {e}")))?;
        Self::from_json(path, doc, None, vocab_rows)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Byte ranges of `text` covered by consecutive windows of at most `window` tokens that
    /// overlap by `overlap` tokens (each range starts and ends on a character boundary). A long
    /// text is tokenized in pieces; `stop` is asked between them (then `Cancelled`).
    pub fn windows(&self, text: &str, window: usize, overlap: usize, stop: &dyn Cancel) -> Result<Vec<(usize, usize)>> {
        let window = window.max(1);
        let step = window.saturating_sub(overlap).max(1);
        // Only the offsets windows start and end at: where token `k * step` starts, where token
        // `k * step + window - 1` ends, and where the last token ends.
        let (mut starts, mut ends, mut last_end, mut n) = (Vec::new(), Vec::new(), 0, 0usize);
        self.pieces(text, usize::MAX, stop, |at, piece| {
            let enc = self.inner.encode(piece, false).map_err(|e| EngineError::Encode(e.to_string()))?;
            for &(a, b) in enc.get_offsets() {
                if n.is_multiple_of(step) {
                    starts.push(at + a);
                }
                if n + 1 >= window && (n + 1 - window).is_multiple_of(step) {
                    ends.push(at + b);
                }
                last_end = at + b;
                n += 1;
            }
            Ok(true)
        })?;
        let mut out = Vec::new();
        for (k, &a) in starts.iter().enumerate() {
            let full = k * step + window < n;
            out.push((text.floor_char_boundary(a), text.ceil_char_boundary(if full { ends[k] } else { last_end })));
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// The safe-boundary rule, when this is the tokenizer `crate::cut` proves it for (else
    /// texts are always tokenized whole).
    pub fn cut_rule(&self) -> Option<&CutRule> {
        self.cut.as_ref()
    }

    /// Cuts texts longer than `bytes` (64 KiB unless set): tests cut short texts too.
    pub fn with_cut_from(mut self, bytes: usize) -> Self {
        self.cut_from = bytes;
        self
    }

    /// Tokenizes texts in pieces of about `bytes` (256 KiB unless set; `usize::MAX`: whole).
    pub fn with_piece_bytes(mut self, bytes: usize) -> Self {
        self.piece_bytes = bytes;
        self
    }

    /// Tokenizes `text` and appends EOS. When the result would exceed `max_tokens`, keeps the
    /// first `max_tokens - 1` text tokens and EOS, and says so.
    pub fn encode(&self, text: &str, max_tokens: usize) -> Result<Tokenized> {
        self.encode_until(text, max_tokens, &Never)
    }

    /// As `encode`, tokenizing a long text only up to a safe cut that holds the tokens kept
    /// (`crate::cut`), in pieces. `stop` is asked between pieces; when it says yes, `Cancelled`.
    pub fn encode_until(&self, text: &str, max_tokens: usize, stop: &dyn Cancel) -> Result<Tokenized> {
        let keep = max_tokens.max(1) - 1;
        let may_cut = text.len() > self.cut_from;
        let (first, enough) = match may_cut {
            true => (keep.saturating_mul(GUESS_BYTES_PER_TOKEN).saturating_add(256), keep),
            false => (usize::MAX, usize::MAX),
        };
        let mut ids = Vec::new();
        let whole = self.pieces(text, first, stop, |_, piece| {
            ids.extend(self.ids(piece)?);
            Ok(ids.len() < enough)
        })?;
        let full_len = ids.len() + 1;
        let truncated = !whole || ids.len() > keep;
        ids.truncate(keep);
        ids.push(self.eos);
        Ok(Tokenized { ids, truncated, full_len, cut: !whole })
    }

    /// The token ids of the whole of `text`, without EOS, tokenized in pieces when it is long;
    /// `stop` is asked between them (then `Cancelled`).
    pub fn ids_until(&self, text: &str, stop: &dyn Cancel) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        self.pieces(text, usize::MAX, stop, |_, piece| {
            ids.extend(self.ids(piece)?);
            Ok(true)
        })?;
        Ok(ids)
    }

    /// Calls `each(start, piece)` on consecutive pieces of `text` whose tokens, one after the
    /// other, are the tokens of `text`: cut at safe boundaries (`crate::cut`; the same argument
    /// shows the tokens after a safe boundary are those of the text after it), the first about
    /// `first` bytes long, each next one as long as all before it, up to `piece_bytes`. Without
    /// a cut rule, or when short, `text` is one piece. `stop` is asked before each piece; `each`
    /// says whether to go on. True when every piece was seen.
    fn pieces(
        &self,
        text: &str,
        first: usize,
        stop: &dyn Cancel,
        mut each: impl FnMut(usize, &str) -> Result<bool>,
    ) -> Result<bool> {
        let mut start = 0;
        loop {
            if stop.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let size = first.max(start).min(self.piece_bytes).max(1);
            let end = match &self.cut {
                Some(rule) if text.len() - start > size => {
                    let from = start + size;
                    let end = match rule.boundary_from(text, from, stop) {
                        Some(b) => b,
                        None if stop.is_cancelled() => return Err(EngineError::Cancelled),
                        None => text.len(),
                    };
                    if end - from > MAX_UNBROKEN_BYTES {
                        return Err(EngineError::UnbrokenRun { at: from, limit: MAX_UNBROKEN_BYTES });
                    }
                    end
                }
                _ => text.len(),
            };
            let go_on = each(start, &text[start..end])?;
            if end == text.len() || !go_on {
                return Ok(end == text.len());
            }
            start = end;
        }
    }

    /// The id of one vocabulary token, as written in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token).filter(|&i| (i as usize) < self.vocab_rows)
    }

    /// The token ids of the whole of `text` at once, without EOS.
    pub(crate) fn ids(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| EngineError::Encode(e.to_string()))?;
        let ids = enc.get_ids().to_vec();
        if let Some(bad_id) = ids.iter().find(|&&i| i as usize >= self.vocab_rows) {
            return Err(EngineError::Encode(format!(
                "token id {bad_id} is past the model's {} embedding rows",
                self.vocab_rows
            )));
        }
        Ok(ids)
    }
}
