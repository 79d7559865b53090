//! Every `qwen3_embed.*` setting, in one place.

use std::ffi::CString;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};

/// The model file or Hugging Face directory. Superuser-only: it makes the server read a file.
pub static MODEL_PATH: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static DEVICE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"cpu"));
pub static THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static MAX_TOKENS: GucSetting<i32> = GucSetting::<i32>::new(8192);
pub static ON_LONG_INPUT: GucSetting<LongInput> = GucSetting::<LongInput>::new(LongInput::Truncate);
pub static BATCH_TOKENS: GucSetting<i32> = GucSetting::<i32>::new(4096);

/// What an input longer than `qwen3_embed.max_tokens` gets.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum LongInput {
    /// Keep the first tokens and EOS, with a NOTICE.
    #[name = c"truncate"]
    Truncate,
    /// Refuse the input.
    #[name = c"error"]
    Error,
}

pub fn register() {
    GucRegistry::define_string_guc(
        c"qwen3_embed.model_path",
        c"The Qwen3-Embedding model: a .gguf file or a Hugging Face checkpoint directory.",
        c"Read by the server process. A new value takes effect for the next call, no restart needed.",
        &MODEL_PATH,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"qwen3_embed.device",
        c"Where the model runs: cpu, cuda, cuda:N or auto.",
        c"auto picks CUDA when this build has it and a GPU is present, else the CPU.",
        &DEVICE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"qwen3_embed.threads",
        c"Compute threads of one embedding call (0 = one per CPU core).",
        c"",
        &THREADS,
        0,
        1024,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"qwen3_embed.max_tokens",
        c"Most tokens per input, the appended end-of-text token included.",
        c"Longer inputs are truncated or refused, as qwen3_embed.on_long_input says.",
        &MAX_TOKENS,
        2,
        32768,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"qwen3_embed.on_long_input",
        c"What an input longer than qwen3_embed.max_tokens gets: truncate (with a NOTICE) or error.",
        c"",
        &ON_LONG_INPUT,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"qwen3_embed.batch_tokens",
        c"Most tokens in one forward pass of a batch call.",
        c"Larger batches use more memory; one input longer than this still runs, alone.",
        &BATCH_TOKENS,
        64,
        1 << 20,
        GucContext::Userset,
        GucFlags::default(),
    );
}

pub fn model_path() -> Option<String> {
    MODEL_PATH
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.trim().is_empty())
}

pub fn device() -> String {
    DEVICE
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cpu".into())
}

pub fn threads() -> usize {
    THREADS.get().max(0) as usize
}

pub fn max_tokens() -> usize {
    MAX_TOKENS.get().max(2) as usize
}

pub fn batch_tokens() -> usize {
    BATCH_TOKENS.get().max(64) as usize
}

pub fn on_long_input() -> LongInput {
    ON_LONG_INPUT.get()
}
