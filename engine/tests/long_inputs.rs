//! Long documents through every attention the CPU runs: inputs of about 1k, 4k and 8k tokens
//! embedded by the CLI under each kernel table whose attention multiplies in 16-bit fixed point,
//! against the best table whose attention is f32 (the reference path): every vector's cosine to
//! it must be 0.9999 or more. (The f32 tables agree with each other to rounding: the goldens.)

mod common;

use std::process::Command;

/// The CLI's (tokens, vector) for each line of `input`, under kernel table `code`.
fn embed(code: &str, input: &std::path::Path) -> Vec<(u64, Vec<f32>)> {
    let model = common::tiny().join("model-f32.gguf");
    let out = Command::new(env!("CARGO_BIN_EXE_qwen3-embed"))
        .env("QWEN3_EMBED_ISA", code)
        .args(["embed", "--no-cache", "--threads", "2", "--max-tokens", "9000", "--batch-tokens", "9000"])
        .arg("--model")
        .arg(&model)
        .arg("--input")
        .arg(input)
        .output()
        .expect("start qwen3-embed");
    assert!(out.status.success(), "{code}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let e = v["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            (v["tokens"].as_u64().unwrap(), e)
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let n = |v: &[f32]| v.iter().map(|x| *x as f64 * *x as f64).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn long_inputs_agree_with_f32_attention() {
    let corpus = common::corpus();
    let words: Vec<&str> = corpus.iter().flat_map(|c| c.text.split_whitespace()).collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.txt");
    let lines: Vec<String> = [700usize, 2800, 5600]
        .iter()
        .map(|&n| (0..n).map(|i| words[(i * 7919) % words.len()]).collect::<Vec<_>>().join(" "))
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();

    let tables = qwen3_embed_engine::kernels::tables();
    let reference = tables.iter().rev().find(|r| !r.attention_int16).expect("generic attention is f32").code;
    let want = embed(reference, &input);
    let tokens: Vec<u64> = want.iter().map(|(t, _)| *t).collect();
    assert!(tokens[0] >= 1000 && tokens[1] >= 4000 && tokens[2] >= 8000 && tokens[2] <= 9000, "{tokens:?}");
    for t in tables.iter().filter(|t| t.attention_int16) {
        let got = embed(t.code, &input);
        assert_eq!(got.len(), lines.len());
        for ((tokens, g), (_, w)) in got.iter().zip(&want) {
            let c = cosine(g, w);
            eprintln!("{} vs {reference}, {tokens} tokens: cosine {c:.10} (1 - cosine = {:.1e})", t.code, 1.0 - c);
            assert!(c >= 0.9999, "{} vs {reference}, {tokens} tokens: cosine {c}", t.code);
        }
    }
}
