//! Cutting a long text before tokenizing (`qwen3_embed_engine::cut`) keeps exactly the tokens
//! that tokenizing all of it and truncating keeps: checked at every safe boundary of random
//! and adversarial texts, and end to end for the truncating encoder.

mod common;

use qwen3_embed_engine::Qwen3Tokenizer;

const EOS: u32 = 151643;

fn tokenizer() -> Qwen3Tokenizer {
    Qwen3Tokenizer::from_file(&common::tokenizer_json(), 151669).unwrap()
}

/// splitmix64: the texts are random but the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces that meet at every kind of boundary the rule has to get right: words, contractions,
/// digits, symbols and symbol runs, every kind of whitespace and line break, combining marks
/// (which NFC composes with what precedes them), characters NFC changes (Å, Ω, a decomposed
/// Hangul syllable, U+0958), `<`/`=`/`>` before U+0338 (which NFC joins into one symbol),
/// CJK, Devanagari with spacing marks, emoji with joiners and skin tones, and special tokens.
const PIECES: &[&str] = &[
    "hello",
    "World",
    "it",
    "'s",
    "'S",
    "'re",
    "'ll",
    "'d",
    "don",
    "'t",
    "x",
    "I",
    "é",
    "e\u{301}",
    "a\u{301}\u{316}",
    "\u{301}",
    "\u{316}\u{301}",
    "Å",
    "\u{212b}",
    "\u{2126}",
    "\u{1100}\u{1161}\u{11a8}",
    "\u{1161}",
    "\u{958}",
    "\u{915}\u{93c}",
    "0",
    "7",
    "42",
    "3.14",
    "½",
    "٣",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    "\n\n",
    " \n ",
    "\u{a0}",
    "\u{3000}",
    "\u{2028}",
    ".",
    ",",
    "!",
    "?!",
    "...",
    "--",
    "==",
    "<",
    "=",
    ">",
    "\u{338}",
    "(",
    ")",
    "\"",
    "'",
    "`",
    "$",
    "#",
    "中文",
    "日本語",
    "，",
    "。",
    "한국어",
    "नमस्ते",
    "ा",
    "😀",
    "👍🏽",
    "👩\u{200d}💻",
    "🇫🇷",
    "\u{fe0f}",
    "<|endoftext|>",
    "<|im_start|>",
    "<think>",
    "</think>",
    "<|",
    "|>",
    "<|endoftext",
    "Ωmega",
    "ﬁ",
    "Ⅻ",
    "x²",
    "\u{200b}",
    "\u{ad}",
];

fn random_text(rng: &mut Rng, pieces: usize) -> String {
    (0..pieces).map(|_| PIECES[rng.below(PIECES.len())]).collect()
}

fn ids(tok: &Qwen3Tokenizer, text: &str) -> Vec<u32> {
    let mut ids = tok.encode(text, usize::MAX).unwrap().ids;
    assert_eq!(ids.pop(), Some(EOS));
    ids
}

/// At every safe boundary the rule finds, the ids of the text before it are the text's first.
fn check_every_boundary(tok: &Qwen3Tokenizer, text: &str, most: usize) -> usize {
    let rule = tok.cut_rule().expect("the Qwen2 tokenizer is the one the cut is proved for");
    let full = ids(tok, text);
    let mut from = 1;
    let mut checked = 0;
    while checked < most {
        let Some(b) = rule.boundary_from(text, from, &|| false) else { break };
        assert!(b > 0 && b < text.len() && text.is_char_boundary(b));
        let head = ids(tok, &text[..b]);
        assert!(
            head.len() <= full.len() && head[..] == full[..head.len()],
            "cut at {b} of {text:?} changes the tokens:\n  head {head:?}\n  full {:?}",
            &full[..head.len().min(full.len())]
        );
        checked += 1;
        from = b + 1;
    }
    checked
}

#[test]
fn both_tokenizer_sources_get_the_cut() {
    assert!(tokenizer().cut_rule().is_some());
    let gguf = Qwen3Tokenizer::for_model(&common::tiny().join("model-q8_0.gguf")).unwrap();
    assert!(gguf.cut_rule().is_some(), "the tokenizer rebuilt from GGUF metadata must be cut too");
    let dir = Qwen3Tokenizer::for_model(&common::tiny().join("hf-f32")).unwrap();
    assert!(dir.cut_rule().is_some());
    let text = "Both sources, one tokenization: ünïcödé, 中文，42.";
    assert_eq!(gguf.encode(text, 64).unwrap(), tokenizer().encode(text, 64).unwrap());
}

#[test]
fn every_safe_boundary_of_random_texts_keeps_the_first_tokens() {
    let tok = tokenizer();
    let mut rng = Rng(27);
    let mut boundaries = 0;
    for _ in 0..400 {
        let n = 1 + rng.below(120);
        let text = random_text(&mut rng, n);
        boundaries += check_every_boundary(&tok, &text, 60);
    }
    assert!(boundaries > 5000, "only {boundaries} safe boundaries found: the rule is too strict to test");
}

#[test]
fn adversarial_texts_keep_the_first_tokens_at_every_boundary() {
    let tok = tokenizer();
    let texts = [
        "a".repeat(3000) + " b",
        " ".repeat(3000) + "x",
        "!".repeat(3000) + " 1",
        "\n!".repeat(1500),
        "\u{4e2d}".repeat(3000) + "。",
        "😀".repeat(1000) + " 😀",
        "e\u{301}".repeat(1500) + " e\u{301} ",
        "1234567890".repeat(300),
        "x\u{338}=\u{338}<\u{338} ".repeat(300),
        " \u{301}".repeat(1000),
        "<|endoftext|>a".repeat(300),
        "word\r\n\r\n  \t ".repeat(300),
        "\u{1100}\u{1161} \u{1100} \u{1161}".repeat(300),
    ];
    for text in &texts {
        check_every_boundary(&tok, text, 400);
    }
}

/// What truncation keeps, computed the plain way: tokenize everything, keep the first ids.
fn reference(tok: &Qwen3Tokenizer, text: &str, max_tokens: usize) -> (Vec<u32>, bool, usize) {
    let mut all = ids(tok, text);
    let full_len = all.len() + 1;
    let keep = max_tokens - 1;
    let truncated = all.len() > keep;
    all.truncate(keep);
    all.push(EOS);
    (all, truncated, full_len)
}

#[test]
fn cut_then_tokenize_equals_tokenize_all_then_truncate() {
    let tok = tokenizer().with_cut_from(0);
    let mut rng = Rng(5);
    let mut cut = 0;
    for _ in 0..400 {
        let n = 1 + rng.below(400);
        let text = random_text(&mut rng, n);
        let max_tokens = 2 + rng.below(150);
        let got = tok.encode(&text, max_tokens).unwrap();
        let (ids, truncated, full_len) = reference(&tok, &text, max_tokens);
        assert_eq!(got.ids, ids, "{text:?} at {max_tokens}");
        assert_eq!(got.truncated, truncated);
        if got.cut {
            cut += 1;
            assert!(full_len > got.full_len, "a cut input must have more than {} tokens", got.full_len);
        } else {
            assert_eq!(got.full_len, full_len);
        }
    }
    assert!(cut > 100, "only {cut} of 400 inputs were cut: the test does not test the cut");
}

#[test]
fn long_runs_and_long_texts_truncate_as_if_tokenized_whole() {
    let tok = tokenizer();
    let mut rng = Rng(99);
    let prose = (0..40_000).map(|_| PIECES[rng.below(30)]).collect::<String>();
    let cases = [
        ("one huge word", "a".repeat(300_000)),
        ("spaces", " ".repeat(300_000) + "end"),
        ("symbols", "=".repeat(300_000)),
        ("line breaks and symbols", "\n!".repeat(150_000)),
        ("CJK without punctuation", "\u{6f22}".repeat(100_000)),
        ("emoji", "👍🏽".repeat(40_000)),
        ("digits", "9".repeat(300_000)),
        ("combining marks", "o\u{308}\u{301}".repeat(60_000)),
        ("a long word after prose", prose.clone() + &"z".repeat(200_000)),
        ("prose", prose.repeat(4)),
    ];
    for (name, text) in &cases {
        assert!(text.len() > 64 << 10, "{name}: shorter than the cut threshold");
        for max_tokens in [2, 100, 8192] {
            let got = tok.encode(text, max_tokens).unwrap();
            let (ids, truncated, full_len) = reference(&tok, text, max_tokens);
            assert_eq!(got.ids, ids, "{name} at {max_tokens}");
            assert_eq!(got.truncated, truncated, "{name}");
            assert!(got.full_len <= full_len, "{name}");
        }
    }
    // Prose is cut (only a prefix is tokenized); one huge word cannot be, and is whole.
    assert!(tok.encode(&prose.repeat(4), 100).unwrap().cut);
    assert!(!tok.encode(&"a".repeat(300_000), 100).unwrap().cut);
}

#[test]
fn a_stop_request_ends_a_long_tokenization() {
    let tok = tokenizer();
    let text = "a".repeat(2_000_000);
    let r = tok.encode_until(&text, 100, &|| true);
    assert!(matches!(r, Err(qwen3_embed_engine::EngineError::Cancelled)), "{r:?}");
}
