//! The `qwen3-embed` command line as a DBA meets it: `--version`, `--input -` (standard input)
//! for every command that reads inputs, and the progress bar on standard error (drawn on a
//! terminal, absent when standard error is a pipe).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_qwen3-embed")
}

fn model() -> PathBuf {
    common::tiny().join("model-q8_0.gguf")
}

/// Runs the CLI with `args`, `stdin` on its standard input, standard error piped.
fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(exe())
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qwen3-embed");
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "qwen3-embed {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// `count` plain-text lines, distinct and of several lengths.
fn texts(count: usize) -> String {
    (0..count).map(|i| format!("text {i}: {}\n", "word ".repeat(1 + i % 17))).collect()
}

fn model_args(m: &Path) -> Vec<String> {
    vec!["--model".into(), m.display().to_string(), "--threads".into(), "2".into(), "--no-cache".into()]
}

#[test]
fn version_names_the_package_version() {
    let out = run(&["--version"], None);
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), format!("qwen3-embed {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn input_dash_reads_standard_input() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("inputs.txt");
    std::fs::write(&file, texts(5)).unwrap();
    let margs = model_args(&m);
    let margs: Vec<&str> = margs.iter().map(String::as_str).collect();

    for cmd in ["embed", "tokenize"] {
        let from_file = run(&[&[cmd], margs.as_slice(), &["--input", file.to_str().unwrap()]].concat(), None);
        let from_stdin = run(&[&[cmd], margs.as_slice(), &["--input", "-"]].concat(), Some(texts(5).as_bytes()));
        assert_eq!(String::from_utf8_lossy(&from_stdin.stdout).lines().count(), 5, "{cmd}: one line per input");
        assert_eq!(from_file.stdout, from_stdin.stdout, "{cmd}: --input - differs from the same file");
    }

    // JSON lines on standard input need --input-format jsonl (a pipe has no file name).
    let jsonl = common::repo_root().join("tests/data/cli_inputs.jsonl");
    let from_file = run(&[&["embed"], margs.as_slice(), &["--input", jsonl.to_str().unwrap()]].concat(), None);
    let from_stdin = run(
        &[&["embed"], margs.as_slice(), &["--input", "-", "--input-format", "jsonl"]].concat(),
        Some(&std::fs::read(&jsonl).unwrap()),
    );
    assert_eq!(from_file.stdout, from_stdin.stdout, "jsonl from standard input differs from the file");

    // bench takes its documents from standard input too.
    let out = run(&[&["bench"], margs.as_slice(), &["--docs", "-"]].concat(), Some(texts(7).as_bytes()));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["docs"], 7);
    // ... but not both files.
    let out = Command::new(exe())
        .args([&["bench"], margs.as_slice(), &["--docs", "-", "--queries", "-"]].concat())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot both read standard input"));
}

#[test]
fn progress_bar_only_on_a_terminal() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("inputs.txt");
    let n = 300;
    std::fs::write(&file, texts(n)).unwrap();
    let args = |out: &Path| {
        let mut a = vec!["embed".to_string()];
        a.extend(model_args(&m));
        // Small passes: many progress steps.
        a.extend(["--batch-tokens", "64", "--input"].map(String::from));
        a.push(file.display().to_string());
        a.push("--output".into());
        a.push(out.display().to_string());
        a
    };

    // Standard error is a pipe: no bar, only the summary line.
    let piped_out = dir.path().join("piped.jsonl");
    let piped = run(&args(&piped_out).iter().map(String::as_str).collect::<Vec<_>>(), None);
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains("texts/s") && !stderr.contains('\r'), "a bar was drawn into a pipe: {stderr:?}");
    assert!(stderr.contains(&format!("embedded {n} inputs")));

    // Standard error is a terminal: script(1) runs the command on a pseudo-terminal and copies
    // what it wrote there (util-linux, in every Debian install).
    let tty_out = dir.path().join("tty.jsonl");
    let quoted: Vec<String> = std::iter::once(exe().to_string())
        .chain(args(&tty_out))
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let typescript = dir.path().join("typescript");
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &quoted.join(" "), typescript.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux");
    assert!(out.status.success(), "script: {}", String::from_utf8_lossy(&out.stderr));
    let screen = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    assert!(screen.contains(&format!("{n}/{n} texts")), "no finished bar on the terminal: {screen:?}");
    assert!(screen.contains('\r') && screen.contains("texts/s"), "{screen:?}");
    // The bar draws in steps (one pass at a time), and the vectors are the same bits.
    assert_eq!(std::fs::read(&piped_out).unwrap(), std::fs::read(&tty_out).unwrap());
}
