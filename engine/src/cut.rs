//! Where a long text may be cut before tokenizing without changing its first tokens.
//!
//! Tokenizing a 50 MB text to keep its first 8,191 tokens wastes seconds and gigabytes. We cut
//! the text at a byte `b` and tokenize `text[..b]` instead, where `b` is a *safe boundary*:
//! the tokens of `text[..b]` are exactly the first tokens of `text`. If `text[..b]` has at least
//! the tokens we keep, truncation keeps the same ids as tokenizing everything would (and the
//! input was longer than the limit, since `text[b..]` is not empty and every byte yields a
//! token); if not, the caller cuts again further on.
//!
//! The tokenizer (checked by `CutRule::for_tokenizer`, else no cut is ever made) does, in order:
//! (1) split the raw text at occurrences of the added tokens (`<|endoftext|>`, ...: leftmost-
//! longest matches of their literal contents, none of them normalized or stripping spaces); (2)
//! NFC-normalize each piece between them; (3) split each normalized piece with the Qwen2 regex
//! `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//! \s*[\r\n]+|\s+(?!\S)|\s+` (leftmost-first alternatives, greedy); (4) map bytes to
//! symbols and run BPE on each regex piece alone (merges never cross pieces). So `text[..b]`
//! yields a prefix of `text`'s ids when each step's output for `text[..b]` is the prefix of its
//! output for `text` up to the image of `b`:
//!
//! (1) No occurrence of any added token overlaps a window around `b` (checked). A leftmost-
//!     longest match that ends at or before `b` is chosen from the same bytes in both texts, and
//!     none spans `b`, so both split identically before `b`.
//! (2) Let `x` be the character before `b` and `y` the one at `b`. We require `y` to be a
//!     "boundary" character: canonical combining class 0 and NFC_Quick_Check = Yes. Such a
//!     character never composes with what precedes it (characters that can are NFC_QC = Maybe)
//!     and stops canonical reordering (class 0), so NFC(text) = NFC(text[..b]) + NFC(text[b..])
//!     and NFC(text[..b]) is a prefix of NFC(text). The last normalized character before `b`,
//!     x', is computed from the text back to the previous boundary character `a` (NFC of
//!     `text[a..b]`, by the same argument); the first one after it, y', from `text[b..e]`
//!     up to the next boundary character `e` (or the end). Both are looked up within 32
//!     characters; a candidate whose context is longer is skipped.
//! (3) The regex runs on both normalized texts from the same start, so it yields the same pieces
//!     as long as every attempt reads the same characters. The only difference is at the
//!     image of `b`: `text` has y' there, `text[..b]` has the end. We need (a) a piece boundary
//!     at `b` in `text`, and (b) every attempt that reaches `b` to decide the same on y' as on
//!     the end. Write L = \p{L}, N = \p{N}, S = \s, NL = [\r\n]. With x' and y' classified, `b`
//!     is safe when:
//!     - x' ∈ L and y' ∉ L. No alternative matches a letter followed by a non-letter except
//!       where the letters end: the letter alternatives stop at y' (not a letter) as at the end,
//!       the contractions are fixed strings whose last character is x' at most, and the
//!       whitespace and symbol alternatives cannot contain the letter x'.
//!     - x' ∈ N. `\p{N}` is a piece of one character, and no alternative before it in the
//!       regex can consume a digit or look past it (the optional prefix of the letter
//!       alternative fails on the digit itself).
//!     - x' ∉ L ∪ N ∪ S (a symbol) and y' ∈ N, or y' ∈ S \ NL. The symbol alternative's class
//!       stops at y' (neither a symbol nor a line break) as at the end, and so does `[\r\n]*`;
//!       the letter alternative with x' as its optional prefix needs a letter at `b`, absent in
//!       both; a contraction starting at x' needs a letter at `b`, absent in both.
//!     - x' ∈ NL and y' ∉ S. The whitespace run ends at `b` in both texts, so `\s*[\r\n]+`
//!       matches up to its last line break, x', in both; a symbol run's `[\r\n]*` stops there too.
//!     In every case the attempts for the pieces before x' read no further than x' (runs of
//!     one class end before a character of another class), so those pieces are the same.
//! (4) Same pieces before `b`, so the same BPE output for each: the ids of `text[..b]` are a
//!     prefix of those of `text`.
//!
//! A text with no safe boundary for a long stretch is one long piece (a run of letters, of
//! spaces, of symbols) or close to it: BPE needs the whole piece, so the cut moves past it.
//! Finding the boundaries is one forward scan with a constant amount of work per character, so
//! a 50 MB run costs one linear scan, never a quadratic one; `engine/tests/cut.rs` compares
//! cut-then-tokenize with tokenize-all-then-truncate over random and adversarial texts.

use std::collections::HashMap;
use std::sync::Mutex;

use unicode_normalization_alignments::char::canonical_combining_class;
use unicode_normalization_alignments::{is_nfc_quick, IsNormalized, UnicodeNormalization};

use crate::gguf_tokenizer::QWEN2_SPLIT_REGEX;

/// How far (in characters) the normalization context of a candidate may reach.
const CONTEXT_CHARS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    LineBreak,
    Space,
    Symbol,
}

/// The safe-boundary test for one tokenizer.
pub struct CutRule {
    added: Vec<String>,
    longest_added: usize,
    letter: onig::Regex,
    number: onig::Regex,
    space: onig::Regex,
    ascii: [Class; 128],
    /// Classes of characters past ASCII, looked up once each.
    seen: Mutex<HashMap<char, Class>>,
}

fn json_is(v: Option<&serde_json::Value>, want: serde_json::Value) -> bool {
    v == Some(&want)
}

impl CutRule {
    /// The rule for a `tokenizer.json` document, or `None` when the tokenizer is not the one
    /// the argument above is made for (then texts are tokenized whole).
    pub fn for_tokenizer(doc: &serde_json::Value) -> Option<CutRule> {
        use serde_json::json;
        if !json_is(doc.get("normalizer"), json!({"type": "NFC"})) {
            return None;
        }
        let pre = doc.get("pre_tokenizer")?;
        let split =
            json!({"type": "Split", "pattern": {"Regex": QWEN2_SPLIT_REGEX}, "behavior": "Isolated", "invert": false});
        let byte_level = pre.pointer("/pretokenizers/1")?;
        if pre.get("type")?.as_str()? != "Sequence"
            || pre.get("pretokenizers")?.as_array()?.len() != 2
            || pre.pointer("/pretokenizers/0") != Some(&split)
            || byte_level.get("type")?.as_str()? != "ByteLevel"
            || byte_level.get("use_regex")?.as_bool()?
            || byte_level.get("add_prefix_space")?.as_bool()?
        {
            return None;
        }
        let model = doc.get("model")?;
        if model.get("type")?.as_str()? != "BPE" || !model.get("dropout").is_none_or(|d| d.is_null()) {
            return None;
        }
        let mut added = Vec::new();
        for t in doc.get("added_tokens").and_then(|a| a.as_array()).map(Vec::as_slice).unwrap_or(&[]) {
            let flag = |k: &str| t.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
            if flag("normalized") || flag("lstrip") || flag("rstrip") || flag("single_word") {
                return None;
            }
            added.push(t.get("content")?.as_str()?.to_string());
        }
        let class = |p: &str| onig::Regex::new(&format!(r"\A{p}\z")).ok();
        let (letter, number, space) = (class(r"\p{L}")?, class(r"\p{N}")?, class(r"\s")?);
        let mut rule = CutRule {
            longest_added: added.iter().map(String::len).max().unwrap_or(0),
            added,
            letter,
            number,
            space,
            ascii: [Class::Symbol; 128],
            seen: Mutex::new(HashMap::new()),
        };
        for c in 0..128u8 {
            rule.ascii[c as usize] = rule.classify_slow(c as char);
        }
        Some(rule)
    }

    fn classify_slow(&self, c: char) -> Class {
        let mut buf = [0u8; 4];
        let s = c.encode_utf8(&mut buf);
        if self.letter.is_match(s) {
            Class::Letter
        } else if self.number.is_match(s) {
            Class::Number
        } else if c == '\r' || c == '\n' {
            Class::LineBreak
        } else if self.space.is_match(s) {
            Class::Space
        } else {
            Class::Symbol
        }
    }

    fn classify(&self, c: char, memo: &mut HashMap<char, Class>) -> Class {
        if c.is_ascii() {
            return self.ascii[c as usize];
        }
        *memo.entry(c).or_insert_with(|| {
            let shared = self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(&c).copied();
            shared.unwrap_or_else(|| {
                let k = self.classify_slow(c);
                self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(c, k);
                k
            })
        })
    }

    /// The first safe boundary at or after byte `from` (rounded up to a character), if any
    /// before the end of `text`. `stop` is asked every few thousand characters.
    pub fn boundary_from(&self, text: &str, from: usize, stop: &dyn crate::cancel::Cancel) -> Option<usize> {
        let mut memo = HashMap::new();
        let mut b = text.ceil_char_boundary(from.max(1));
        let mut steps = 0u32;
        while b < text.len() {
            if self.is_safe(text, b, &mut memo) {
                return Some(b);
            }
            b += text[b..].chars().next().map_or(1, char::len_utf8);
            steps = steps.wrapping_add(1);
            if steps.is_multiple_of(4096) && stop.is_cancelled() {
                return None;
            }
        }
        None
    }

    fn is_safe(&self, text: &str, b: usize, memo: &mut HashMap<char, Class>) -> bool {
        let y = text[b..].chars().next().expect("b is before the end");
        let x = text[..b].chars().next_back().expect("b is after the start");
        // Cheap exits first: most positions inside a run fail on the raw characters already
        // when both are ASCII (NFC leaves ASCII alone).
        if x.is_ascii() && y.is_ascii() && !rule_allows(self.ascii[x as usize], self.ascii[y as usize]) {
            return false;
        }
        if !is_boundary_char(y) {
            return false;
        }
        // x': NFC of text[a..b], a the last boundary character at or before x.
        let mut a = b;
        let mut back = 0;
        while let Some(c) = text[..a].chars().next_back() {
            a -= c.len_utf8();
            back += 1;
            if is_boundary_char(c) {
                break;
            }
            if back > CONTEXT_CHARS {
                return false;
            }
        }
        let x_norm = if back == 1 { Some(x) } else { text[a..b].nfc().map(|(c, _)| c).last() };
        // y': NFC of text[b..e], e the next boundary character after y (or the end).
        let mut e = b + y.len_utf8();
        let mut ahead = 0;
        for c in text[e..].chars() {
            if is_boundary_char(c) {
                break;
            }
            e += c.len_utf8();
            ahead += 1;
            if ahead > CONTEXT_CHARS {
                return false;
            }
        }
        let y_norm = if e == b + y.len_utf8() { Some(y) } else { text[b..e].nfc().map(|(c, _)| c).next() };
        let (Some(xn), Some(yn)) = (x_norm, y_norm) else { return false };
        if !rule_allows(self.classify(xn, memo), self.classify(yn, memo)) {
            return false;
        }
        // No added token may overlap text[a..e]: look in that window widened by the longest one.
        if self.longest_added > 0 {
            let lo = text.floor_char_boundary(a.saturating_sub(self.longest_added));
            let hi = text.ceil_char_boundary(e + self.longest_added);
            let window = &text[lo..hi];
            if self.added.iter().any(|t| !t.is_empty() && window.contains(t.as_str())) {
                return false;
            }
        }
        true
    }
}

/// The piece-boundary rules of step (3), on the normalized characters around the cut.
fn rule_allows(x: Class, y: Class) -> bool {
    use Class::*;
    match x {
        Letter => y != Letter,
        Number => true,
        Symbol => matches!(y, Number | Space),
        LineBreak => !matches!(y, Space | LineBreak),
        Space => false,
    }
}

/// Combining class 0 and NFC_Quick_Check = Yes: NFC never joins it to what comes before.
fn is_boundary_char(c: char) -> bool {
    c.is_ascii() || (canonical_combining_class(c) == 0 && is_nfc_quick(std::iter::once(c)) == IsNormalized::Yes)
}
