//! No Rust backtrace reaches a caller: candle attaches one to its errors when `RUST_BACKTRACE`
//! is set, and messages go to SQL clients (through the model server's replies too).

use qwen3_embed_engine::error::{candle_message, without_backtrace};
use qwen3_embed_engine::serve::Reply;
use qwen3_embed_engine::EngineError;

fn with_backtrace(msg: &str) -> candle_core::Error {
    candle_core::Error::WithBacktrace {
        inner: Box::new(candle_core::Error::Msg(msg.into())),
        backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
    }
}

fn assert_clean(s: &str) {
    assert!(!s.contains(".rs:") && !s.contains("backtrace") && !s.contains("\n  "), "{s}");
}

#[test]
fn candle_errors_lose_their_backtrace() {
    let e = with_backtrace("shape mismatch in matmul");
    assert!(e.to_string().lines().count() > 3, "the error must carry a backtrace for this test to test anything");
    let engine: EngineError = e.into();
    assert_eq!(engine.to_string(), "compute error: shape mismatch in matmul");
    let nested = with_backtrace("inner").with_path("/models/x.gguf").context("loading");
    let msg = candle_message(&nested);
    assert_clean(&msg);
    assert!(msg.contains("inner") && msg.contains("loading") && msg.contains("/models/x.gguf"), "{msg}");
}

#[test]
fn messages_and_server_replies_are_cut_before_a_backtrace() {
    let bt = std::backtrace::Backtrace::force_capture().to_string();
    let raw = format!("it broke\n{bt}");
    assert_eq!(without_backtrace(&raw), "it broke");
    assert_eq!(without_backtrace("failed\nstack backtrace:\n   0: main"), "failed");
    // Ordinary multi-line messages stay whole.
    assert_eq!(without_backtrace("first line\nsecond line"), "first line\nsecond line");
    match Reply::error(&EngineError::Compute(raw)) {
        Reply::Error { message, .. } => assert_eq!(message, "compute error: it broke"),
        other => panic!("{other:?}"),
    }
}
