//! Broken model input gives a typed error that names the file; never a panic.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use qwen3_embed_engine::{Engine, EngineError, EngineOptions};

fn load(path: &Path) -> Result<Engine, EngineError> {
    Engine::load(path, &EngineOptions { threads: 1, ..Default::default() })
}

fn load_err(path: &Path) -> EngineError {
    match load(path) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&*path.file_name().unwrap().to_string_lossy()) || msg.contains("model file"),
                "message must name the file: {msg}"
            );
            e
        }
    }
}

/// A copy of the fixture's hf-f32 directory that a test may break.
fn hf_copy(tmp: &tempfile::TempDir) -> PathBuf {
    let src = tiny().join("hf-f32");
    let dst = tmp.path().join("hf");
    std::fs::create_dir(&dst).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, v.to_string()).unwrap();
}

/// Rewrites model.safetensors through `f`, which may drop or change tensors.
fn edit_tensors(
    dir: &Path,
    f: impl Fn(&str, safetensors::Dtype, Vec<usize>, Vec<u8>) -> Option<(safetensors::Dtype, Vec<usize>, Vec<u8>)>,
) {
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut kept = Vec::new();
    for (name, view) in st.tensors() {
        if let Some((dt, shape, data)) = f(&name, view.dtype(), view.shape().to_vec(), view.data().to_vec()) {
            kept.push((name, dt, shape, data));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = kept
        .iter()
        .map(|(n, dt, s, d)| (n.clone(), safetensors::tensor::TensorView::new(*dt, s.clone(), d).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &p).unwrap();
}

#[test]
fn missing_file() {
    let e = load_err(Path::new("/nonexistent/qwen3-embedding.gguf"));
    assert!(matches!(e, EngineError::NotFound { .. }), "{e}");
}

#[test]
fn unreadable_file() {
    // Root reads any mode, so make the path itself unusable: a file used as a directory.
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("plain");
    std::fs::write(&f, b"x").unwrap();
    let e = load_err(&f.join("model.gguf"));
    assert!(matches!(e, EngineError::Unreadable { .. }), "{e}");
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a plain system call on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// A named pipe nobody writes to would block open() forever: it is refused before any read,
/// as the model path itself and as a file inside a checkpoint directory.
#[test]
fn a_fifo_is_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("model.gguf");
    mkfifo(&fifo);
    let e = load_err(&fifo);
    assert!(matches!(e, EngineError::NotRegular { what: "a named pipe (FIFO)", .. }), "{e}");
    assert_eq!(e.kind(), qwen3_embed_engine::ErrorKind::Unreadable);

    let dir = hf_copy(&tmp);
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    mkfifo(&dir.join("tokenizer.json"));
    let e = load_err(&dir);
    assert!(matches!(e, EngineError::NotRegular { .. }), "{e}");
    let link = tmp.path().join("link.gguf");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    assert!(matches!(load_err(&link), EngineError::NotRegular { .. }));
}

#[test]
fn neither_gguf_nor_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("notes.txt");
    std::fs::write(&f, b"this is not a model").unwrap();
    assert!(matches!(load_err(&f), EngineError::UnknownFormat { .. }));
    let empty = tmp.path().join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(load_err(&empty), EngineError::UnknownFormat { .. }));
    let dir = hf_copy(&tmp);
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert!(matches!(load_err(&dir), EngineError::UnknownFormat { .. }));
}

#[test]
fn truncated_gguf() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(tiny().join("model-q8_0.gguf")).unwrap();
    for (name, len) in [("header.gguf", 64), ("metadata.gguf", 4096), ("data.gguf", bytes.len() - 1000)] {
        let f = tmp.path().join(name);
        std::fs::write(&f, &bytes[..len]).unwrap();
        let e = load_err(&f);
        assert!(matches!(e, EngineError::Truncated { .. }), "{name}: {e}");
    }
}

#[test]
fn truncated_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hf_copy(&tmp);
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(&dir);
    assert!(matches!(e, EngineError::Truncated { .. }), "{e}");
}

#[test]
fn corrupt_safetensors_header() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hf_copy(&tmp);
    let p = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    for b in &mut bytes[8..40] {
        *b = b'#';
    }
    std::fs::write(&p, &bytes).unwrap();
    let e = load_err(&dir);
    assert!(matches!(e, EngineError::Corrupt { .. }), "{e}");
}

#[test]
fn wrong_architecture() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hf_copy(&tmp);
    edit_config(&dir, |v| v["model_type"] = "llama".into());
    let e = load_err(&dir);
    assert!(matches!(&e, EngineError::WrongArchitecture { found, .. } if found == "llama"), "{e}");

    let f = tmp.path().join("llama.gguf");
    let arch = gguf_file::Value::String("llama".into());
    gguf_file::write(&mut std::fs::File::create(&f).unwrap(), &[("general.architecture", &arch)], &[]).unwrap();
    let e = load_err(&f);
    assert!(matches!(&e, EngineError::WrongArchitecture { found, .. } if found == "llama"), "{e}");
}

#[test]
fn missing_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hf_copy(&tmp);
    edit_tensors(&dir, |name, dt, s, d| (name != "layers.1.mlp.up_proj.weight").then_some((dt, s, d)));
    let e = load_err(&dir);
    assert!(matches!(&e, EngineError::MissingTensor { name, .. } if name.contains("layers.1.mlp.up_proj")), "{e}");
}

#[test]
fn missing_norm_is_not_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hf_copy(&tmp);
    edit_tensors(&dir, |name, dt, s, d| (name != "layers.0.self_attn.k_norm.weight").then_some((dt, s, d)));
    assert!(matches!(load_err(&dir), EngineError::MissingTensor { .. }));
}

#[test]
fn shape_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hf_copy(&tmp);
    edit_config(&dir, |v| v["intermediate_size"] = 768.into());
    let e = load_err(&dir);
    assert!(matches!(&e, EngineError::ShapeMismatch { .. }), "{e}");
}

#[test]
fn unsupported_tensor_type() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hf_copy(&tmp);
    edit_tensors(&dir, |name, dt, s, d| {
        if name == "layers.0.self_attn.q_proj.weight" {
            let wide: Vec<u8> = d
                .chunks_exact(4)
                .flat_map(|c| (f32::from_le_bytes(c.try_into().unwrap()) as f64).to_le_bytes())
                .collect();
            Some((safetensors::Dtype::F64, s, wide))
        } else {
            Some((dt, s, d))
        }
    });
    let e = load_err(&dir);
    assert!(matches!(&e, EngineError::UnsupportedQuantization { name, .. } if name.contains("q_proj")), "{e}");
}

#[test]
fn unsupported_gguf_type() {
    // A GGUF whose one tensor has ggml type 16 (IQ2_XXS), which the engine does not run.
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("iq2.gguf");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"GGUF");
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes()); // tensors
    bytes.extend_from_slice(&1u64.to_le_bytes()); // metadata
    let key = b"general.architecture";
    bytes.extend_from_slice(&(key.len() as u64).to_le_bytes());
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&8u32.to_le_bytes()); // string
    bytes.extend_from_slice(&5u64.to_le_bytes());
    bytes.extend_from_slice(b"qwen3");
    let name = b"token_embd.weight";
    bytes.extend_from_slice(&(name.len() as u64).to_le_bytes());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(&2u32.to_le_bytes());
    bytes.extend_from_slice(&256u64.to_le_bytes());
    bytes.extend_from_slice(&4u64.to_le_bytes());
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.resize(bytes.len() + 4096, 0);
    std::fs::write(&f, &bytes).unwrap();
    let e = load_err(&f);
    assert!(matches!(&e, EngineError::UnsupportedQuantization { .. }), "{e}");
}
