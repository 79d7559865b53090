//! Cutting a long text before tokenizing (`qwen3_embed_engine::cut`) keeps exactly the tokens
//! that tokenizing all of it and truncating keeps: checked at every safe boundary of random
//! and adversarial texts, and end to end for the truncating encoder. Tokenizing a long text in
//! pieces cut at safe boundaries gives the ids and windows of tokenizing it whole, and stops
//! between pieces when asked.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use qwen3_embed_engine::{CancelFlag, EngineError, Limits, Qwen3Tokenizer};

const EOS: u32 = 151643;

fn tokenizer() -> Qwen3Tokenizer {
    Qwen3Tokenizer::from_file(&common::tokenizer_json(), 151669).unwrap()
}

/// The reference: a tokenizer that tokenizes every text whole, in one piece.
fn whole() -> &'static Qwen3Tokenizer {
    static WHOLE: OnceLock<Qwen3Tokenizer> = OnceLock::new();
    WHOLE.get_or_init(|| tokenizer().with_piece_bytes(usize::MAX))
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

fn ids(text: &str) -> Vec<u32> {
    let mut ids = whole().encode(text, usize::MAX).unwrap().ids;
    assert_eq!(ids.pop(), Some(EOS));
    ids
}

/// At every safe boundary the rule finds, the ids of the text before it are the text's first.
fn check_every_boundary(tok: &Qwen3Tokenizer, text: &str, most: usize) -> usize {
    let rule = tok.cut_rule().expect("the Qwen2 tokenizer is the one the cut is proved for");
    let full = ids(text);
    let mut from = 1;
    let mut checked = 0;
    while checked < most {
        let Some(b) = rule.boundary_from(text, from, &|| false) else { break };
        assert!(b > 0 && b < text.len() && text.is_char_boundary(b));
        let head = ids(&text[..b]);
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
fn reference(text: &str, max_tokens: usize) -> (Vec<u32>, bool, usize) {
    let mut all = ids(text);
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
        let (ids, truncated, full_len) = reference(&text, max_tokens);
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
            let (ids, truncated, full_len) = reference(text, max_tokens);
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

/// Long texts of every kind of piece, with long runs of one class between them.
fn long_texts(rng: &mut Rng, pieces: usize) -> Vec<String> {
    let runs = [
        "a".repeat(5000),
        " ".repeat(3000),
        "!".repeat(3000),
        "\n".repeat(2000),
        "\u{4e2d}".repeat(3000),
        "😀".repeat(1000),
        "e\u{301}".repeat(1500),
        "7".repeat(3000),
        "<|endoftext|>".repeat(200),
        "word\r\n\r\n  \t ".repeat(300),
    ];
    let mut texts: Vec<String> = (0..3).map(|_| random_text(rng, pieces)).collect();
    texts.push(runs.iter().map(|run| random_text(rng, pieces / 20) + run).collect());
    texts.push(random_text(rng, pieces / 2) + &runs.concat() + &random_text(rng, pieces / 2));
    texts
}

#[test]
fn ids_in_pieces_equal_ids_of_the_whole_text() {
    let mut rng = Rng(11);
    let texts = long_texts(&mut rng, 12_000);
    let full: Vec<Vec<u32>> = texts.iter().map(|t| ids(t)).collect();
    for piece_bytes in [1, 7, 100, 4096, 50_000] {
        let tok = tokenizer().with_piece_bytes(piece_bytes);
        for (text, full) in texts.iter().zip(&full) {
            let got = tok.ids_until(text, &|| false).unwrap();
            assert!(got == *full, "{} bytes in pieces of {piece_bytes}: the ids differ", text.len());
            let t = tok.encode(text, usize::MAX).unwrap();
            assert_eq!(t.ids[..t.ids.len() - 1], full[..], "encode in pieces of {piece_bytes}");
            assert_eq!((t.full_len, t.truncated, t.cut), (full.len() + 1, false, false));
        }
    }
    // Truncating cuts still keep the tokens of the whole text, whatever the piece size.
    for piece_bytes in [1, 300, 20_000] {
        let tok = tokenizer().with_cut_from(0).with_piece_bytes(piece_bytes);
        for (text, full) in texts.iter().zip(&full) {
            for max_tokens in [1, 2, 500, 9000] {
                let t = tok.encode(text, max_tokens).unwrap();
                let keep = (max_tokens - 1).min(full.len());
                assert_eq!(t.ids[..t.ids.len() - 1], full[..keep], "pieces of {piece_bytes}, {max_tokens} tokens");
                assert_eq!(t.truncated, full.len() > max_tokens - 1);
            }
        }
    }
}

/// The windows as they were computed before pieces: from the offsets of the whole text.
fn windows_of_whole_text(text: &str, window: usize, overlap: usize) -> Vec<(usize, usize)> {
    static RAW: OnceLock<tokenizers::Tokenizer> = OnceLock::new();
    let raw = RAW.get_or_init(|| tokenizers::Tokenizer::from_file(common::tokenizer_json()).unwrap());
    let enc = raw.encode(text, false).unwrap();
    let offsets = enc.get_offsets();
    let step = window.saturating_sub(overlap).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < offsets.len() {
        let end = (start + window).min(offsets.len());
        out.push((text.floor_char_boundary(offsets[start].0), text.ceil_char_boundary(offsets[end - 1].1)));
        if end == offsets.len() {
            break;
        }
        start += step;
    }
    out
}

#[test]
fn windows_in_pieces_equal_windows_of_the_whole_text() {
    let mut rng = Rng(12);
    let mut texts = long_texts(&mut rng, 8000);
    texts.extend(["".to_string(), "x".to_string(), "<|endoftext|>".to_string(), "e\u{301}\u{316}".to_string()]);
    let toks: Vec<(usize, Qwen3Tokenizer)> =
        [3, 100, 4096, usize::MAX].into_iter().map(|p| (p, tokenizer().with_piece_bytes(p))).collect();
    for text in &texts {
        for (window, overlap) in [(1, 0), (2, 1), (7, 3), (100, 0), (511, 64), (100_000, 10)] {
            let want = windows_of_whole_text(text, window, overlap);
            for (piece_bytes, tok) in &toks {
                let got = tok.windows(text, window, overlap, &|| false).unwrap();
                assert!(got == want, "{} bytes, pieces of {piece_bytes}, window {window}/{overlap}", text.len());
            }
        }
    }
    for (_, tok) in &toks {
        let chunks = tok.chunk(&texts[0], 64, 8, &|| false).unwrap();
        assert!(chunks.len() > 10 && chunks.iter().all(|c| !c.is_empty()));
        assert_eq!(chunks, toks[3].1.chunk(&texts[0], 64, 8, &|| false).unwrap());
    }
}

/// A stop that says yes from its `after`-th question on, counting them.
fn stop_after(asked: &AtomicUsize, after: usize) -> impl Fn() -> bool + Sync + '_ {
    move || asked.fetch_add(1, Ordering::Relaxed) + 1 >= after
}

#[test]
fn a_stop_request_ends_tokenizing_in_pieces() {
    let tok = tokenizer();
    let mut rng = Rng(13);
    let prose = random_text(&mut rng, 100_000);
    let text = prose.repeat((8 << 20) / prose.len() + 1);
    assert!(text.len() > 8 << 20);
    let cancelled = |r: &Result<(), EngineError>| matches!(r, Err(EngineError::Cancelled));
    for after in [1, 2, 5] {
        let asked = AtomicUsize::new(0);
        let stop = stop_after(&asked, after);
        let r = tok.ids_until(&text, &stop).map(drop);
        assert!(cancelled(&r), "ids: {r:?}");
        let r = tok.encode_until(&text, usize::MAX, &stop).map(drop);
        assert!(cancelled(&r), "encode: {r:?}");
        let r = tok.windows(&text, 100, 10, &stop).map(drop);
        assert!(cancelled(&r), "windows: {r:?}");
        let r = tok.chunk(&text, 100, 10, &stop).map(drop);
        assert!(cancelled(&r), "chunk: {r:?}");
        let r = tok.tokenize_input(&text, Some("find it"), usize::MAX, &stop).map(drop);
        assert!(cancelled(&r), "tokenize_input: {r:?}");
    }
    // A flag set by another thread stops a call within a piece or two.
    let flag = CancelFlag::new();
    let setter = flag.clone();
    let started = Instant::now();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        setter.cancel();
        Instant::now()
    });
    let r = tok.ids_until(&text, &flag).map(drop);
    let (ended, set_at) = (Instant::now(), t.join().unwrap());
    assert!(cancelled(&r), "{r:?} after {:?}", started.elapsed());
    assert!(ended.duration_since(set_at) < Duration::from_secs(1), "{:?} after the flag", ended - set_at);
}

#[test]
fn the_call_budget_is_a_running_total() {
    let tok = tokenizer();
    // An 8,000-token instruction with each of 2,000 inputs: refused at the 33rd input.
    let instruct = "word ".repeat(8000);
    assert_eq!(tok.ids_until(instruct.trim_end(), &|| false).unwrap().len(), 8000);
    let texts = vec!["hello"; 2000];
    let limits = Limits { max_tokens: 8192, max_request_tokens: 262_144, ..Limits::default() };
    let asked = AtomicUsize::new(0);
    let started = Instant::now();
    let r = tok.tokenize_call(&texts, Some(instruct.trim_end()), &limits, &|| {
        asked.fetch_add(1, Ordering::Relaxed);
        false
    });
    let Err(EngineError::RequestTooLarge { tokens, limit: 262_144 }) = &r else { panic!("{r:?}") };
    assert!(tokens.starts_with("at least 26"), "{tokens}");
    // Each input asks at least once; all 2,000 were not tokenized.
    let asked = asked.into_inner();
    assert!((33..=66).contains(&asked), "asked {asked} times");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    // Refused at the last input, the total is exact.
    let limits = Limits { max_request_tokens: 8000 * 3, ..limits };
    let r = tok.tokenize_call(&texts[..3], Some(instruct.trim_end()), &limits, &|| false);
    let Err(EngineError::RequestTooLarge { tokens, .. }) = &r else { panic!("{r:?}") };
    assert!(!tokens.starts_with("at least"), "{tokens}");
}

/// A ~60 MB text: tokenized whole, and cancelled 100 ms in (`cargo test --release -- --ignored
/// --nocapture sixty`).
#[test]
#[ignore]
fn sixty_megabytes_whole_and_cancelled() {
    let tok = tokenizer();
    let mut rng = Rng(14);
    let prose = random_text(&mut rng, 200_000);
    let text = prose.repeat((60 << 20) / prose.len() + 1);
    let peak = || {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status.lines().find(|l| l.starts_with("VmHWM")).map(|l| l.to_string()).unwrap_or_default()
    };
    let flag = CancelFlag::new();
    let setter = flag.clone();
    let started = Instant::now();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        setter.cancel();
        Instant::now()
    });
    let r = tok.ids_until(&text, &flag).map(drop);
    let ended = Instant::now();
    let set_at = t.join().unwrap();
    eprintln!(
        "{} MB cancelled: {r:?} {:?} after the start, {:?} after the flag; {}",
        text.len() >> 20,
        ended - started,
        ended.duration_since(set_at),
        peak()
    );
    let started = Instant::now();
    let n = tok.ids_until(&text, &|| false).unwrap().len();
    eprintln!("{} MB in pieces: {n} ids in {:?}; {}", text.len() >> 20, started.elapsed(), peak());
    let started = Instant::now();
    let n = whole().ids_until(&text, &|| false).unwrap().len();
    eprintln!("{} MB whole (as before): {n} ids in {:?}; {}", text.len() >> 20, started.elapsed(), peak());
}

/// A stretch with no safe boundary is tokenized whole up to MAX_UNBROKEN_BYTES; a longer one is
/// refused at once (it could be neither cut nor stopped), whatever asks for its tokens.
#[test]
fn an_unbroken_run_past_the_limit_is_refused_at_once() {
    use qwen3_embed_engine::{EngineError, MAX_UNBROKEN_BYTES};
    let tok = tokenizer();
    let under = "b ".repeat(1000) + &"a".repeat(MAX_UNBROKEN_BYTES / 2);
    assert_eq!(tok.ids_until(&under, &|| false).unwrap().len(), tok.encode(&under, usize::MAX).unwrap().ids.len() - 1);
    for text in [
        "a".repeat(3 * MAX_UNBROKEN_BYTES),
        "prose, then a long word: ".repeat(20_000) + &"=".repeat(2 * MAX_UNBROKEN_BYTES),
    ] {
        let t0 = std::time::Instant::now();
        for r in [
            tok.ids_until(&text, &|| false).map(|_| ()),
            tok.encode_until(&text, usize::MAX, &|| false).map(|_| ()),
            tok.windows(&text, 512, 64, &|| false).map(|_| ()),
        ] {
            assert!(matches!(r, Err(EngineError::UnbrokenRun { limit, .. }) if limit == MAX_UNBROKEN_BYTES), "{r:?}");
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "refused after {:?}", t0.elapsed());
    }
}
