//! The cache key names the kernel table by a fixed code (issue 27, item 8): on AVX-512 CPUs
//! without BF16 the table's display name, "avx512 (bf16 on avx2)", did not fit the header, so
//! the check after writing always failed and every process packed in memory. Each run here is
//! a process of its own, because `QWEN3_EMBED_ISA` is read once per process.

mod common;

use std::path::Path;
use std::process::Command;

use qwen3_embed_engine::kernels::Isa;

/// `qwen3-embed info` under `QWEN3_EMBED_ISA=isa` with the cache in `dir`: (cache state, file).
fn info(isa: &str, model: &Path, dir: &Path) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qwen3-embed"))
        .args(["info", "--threads", "2", "--cache-min-free", "0", "--cache-max-size", "none", "--model"])
        .arg(model)
        .arg("--cache-dir")
        .arg(dir)
        .env("QWEN3_EMBED_ISA", isa)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{isa}: {stderr}");
    assert!(!stderr.contains("warning"), "{isa}: {stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["cache"].as_str().unwrap().to_string(), v["cache_file"].as_str().unwrap_or_default().to_string())
}

/// Embeds two lines under `isa`, with or without the cache: the vectors as JSON text.
fn embed(isa: &str, model: &Path, dir: Option<&Path>) -> String {
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), "The quick brown fox\nPostgreSQL stores rows in heap pages.\n").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qwen3-embed"));
    cmd.args(["embed", "--threads", "2", "--model"]).arg(model).arg("--input").arg(input.path());
    match dir {
        Some(d) => cmd.arg("--cache-dir").arg(d).args(["--cache-min-free", "0", "--cache-max-size", "none"]),
        None => cmd.arg("--no-cache"),
    };
    let out = cmd.env("QWEN3_EMBED_ISA", isa).output().unwrap();
    assert!(out.status.success(), "{isa}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The second load of a model maps the file the first one wrote, under `isa`, and the vectors
/// are those packed in memory.
fn second_load_maps(isa: &str) {
    // BF16 weights: the table without AVX512_BF16 runs them on its AVX2 kernel.
    let model = common::tiny().join("hf-bf16");
    let dir = tempfile::tempdir().unwrap();
    let (first, file) = info(isa, &model, dir.path());
    assert_eq!(first, "built", "{isa}");
    // An instruction set's name selects its best table (avx2: avx2_vnni on a CPU with AVX-VNNI).
    let code = Isa::parse(isa).map_or(isa, |i| i.kernels().code);
    assert!(file.ends_with(&format!("-{code}.qwen3pack")), "{isa}: {file}");
    let (second, again) = info(isa, &model, dir.path());
    assert_eq!((second.as_str(), again.as_str()), ("mapped", file.as_str()), "{isa}");
    assert_eq!(embed(isa, &model, Some(dir.path())), embed(isa, &model, None), "{isa}");
}

#[test]
fn avx512_without_bf16_maps_on_the_second_load() {
    if !Isa::Avx512.supported() {
        println!("skipped: this CPU has no AVX-512 (F, BW, VL, VNNI), so the avx512_nobf16 table cannot run here");
        return;
    }
    second_load_maps("avx512_nobf16");
}

/// The same for every other table this CPU runs, chosen by its code.
#[test]
fn every_table_this_cpu_runs_maps_on_the_second_load() {
    for t in qwen3_embed_engine::kernels::tables() {
        if t.code != "avx512_nobf16" {
            second_load_maps(t.code);
        }
    }
}
