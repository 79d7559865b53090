//! Token ids equal the official tokenizer's for every corpus text, from tokenizer.json and from
//! GGUF metadata; EOS stays last under truncation; no id past the embedding table.

mod common;
use common::*;
use qwen3_embed_engine::{Engine, EngineOptions};

const EOS: u32 = 151643;

#[test]
fn ids_match_reference_from_tokenizer_json_and_gguf() {
    let golden = golden("f32");
    let corpus = corpus();
    assert_eq!(golden.items.len(), corpus.len());
    for rel in ["hf-f32", "model-q8_0.gguf"] {
        let e = engine(rel);
        for (item, g) in corpus.iter().zip(&golden.items) {
            assert_eq!(item.name, g.name);
            let t = e.tokenizer().tokenize_input(&item.text, item.instruct.as_deref(), 32768, &|| false).unwrap();
            assert!(!t.truncated);
            assert_eq!(t.ids, g.ids, "{rel}: token ids of {:?} differ from the reference", item.name);
            assert_eq!(*t.ids.last().unwrap(), EOS);
        }
    }
}

#[test]
fn corpus_covers_long_input_and_special_tokens() {
    let g = golden("f32");
    assert!(g.items.iter().any(|i| i.ids.len() > 1000), "an input over 1,000 tokens");
    assert!(g.items.iter().any(|i| i.ids.len() == 2), "a one-token input");
    let im_start = g.items.iter().find(|i| i.name == "special_im_start").unwrap();
    assert!(im_start.ids.contains(&151644), "<|im_start|> is its own token, as upstream");
}

#[test]
fn truncation_keeps_eos_last_and_says_so() {
    let e = engine("hf-f32");
    let long = corpus().into_iter().find(|c| c.name == "long_text").unwrap();
    let full = e.tokenizer().tokenize_input(&long.text, None, 32768, &|| false).unwrap();
    assert!(full.ids.len() > 1000);
    let cut = e.tokenizer().tokenize_input(&long.text, None, 100, &|| false).unwrap();
    assert!(cut.truncated);
    assert_eq!(cut.full_len, full.ids.len());
    assert_eq!(cut.ids.len(), 100);
    assert_eq!(cut.ids[..99], full.ids[..99]);
    assert_eq!(*cut.ids.last().unwrap(), EOS);
    let exact = e.tokenizer().tokenize_input(&long.text, None, full.ids.len(), &|| false).unwrap();
    assert!(!exact.truncated);
    assert_eq!(exact.ids, full.ids);
}

#[test]
fn empty_input_is_eos_alone() {
    let t = engine("hf-f32").tokenizer().tokenize_input("", None, 8192, &|| false).unwrap();
    assert_eq!(t.ids, vec![EOS]);
}

#[test]
fn instruction_format() {
    let e = engine("hf-f32");
    let a = e.tokenizer().tokenize_input("hello", Some("Find it"), 8192, &|| false).unwrap();
    let b = e.tokenizer().tokenize_input("Instruct: Find it\nQuery:hello", None, 8192, &|| false).unwrap();
    assert_eq!(a.ids, b.ids);
}

/// With the 4B/8B table size (151665 rows), tokens 151665.. do not exist: `<think>` and
/// `<tool_response>` are ordinary text, in the HF directory (whose tokenizer.json knows them)
/// and in GGUF (whose tokenizer stops at 151664) alike.
#[test]
fn tokens_past_the_embedding_table_are_plain_text() {
    let dir = tiny_151665();
    let opts = EngineOptions { threads: 1, ..Default::default() };
    let hf = Engine::load(&dir.join("hf-f32"), &opts).unwrap();
    let gguf = Engine::load(&dir.join("model-q8_0.gguf"), &opts).unwrap();
    assert!(hf.info().tokenizer_vocab <= 151665);
    assert!(gguf.info().tokenizer_vocab <= 151665);
    for text in [
        "<think>reasoning</think> answer",
        "<tool_response>{\"ok\": true}</tool_response>",
        "<|endoftext|><|im_start|><|file_sep|>",
    ] {
        let a = hf.tokenizer().tokenize_input(text, None, 8192, &|| false).unwrap();
        let b = gguf.tokenizer().tokenize_input(text, None, 8192, &|| false).unwrap();
        assert_eq!(a.ids, b.ids, "{text:?}");
        assert!(a.ids.iter().all(|&i| i < 151665), "{text:?}: {:?}", a.ids);
    }
    let think = hf.tokenizer().tokenize_input("<think>", None, 8192, &|| false).unwrap();
    assert!(think.ids.len() > 2, "<think> must be split into ordinary tokens: {:?}", think.ids);
    let eot = hf.tokenizer().tokenize_input("<|endoftext|>", None, 8192, &|| false).unwrap();
    assert_eq!(eot.ids, vec![EOS, EOS], "special tokens the table has are kept");
    let file_sep = hf.tokenizer().tokenize_input("<|file_sep|>", None, 8192, &|| false).unwrap();
    assert_eq!(file_sep.ids, vec![151664, EOS]);
}
