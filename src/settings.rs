//! Every `qwen3_embed.*` setting, in one place.

use std::ffi::CString;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};

/// The model file or Hugging Face directory. Superuser-only: it makes the server read a file.
pub static MODEL_PATH: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// The reranker (`qwen3_rerank`), beside the embedder. Superuser-only, as MODEL_PATH.
pub static RERANKER_PATH: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static DEVICE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"cpu"));
pub static THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static MAX_TOKENS: GucSetting<i32> = GucSetting::<i32>::new(qwen3_embed_engine::DEFAULT_MAX_TOKENS as i32);
pub static ON_LONG_INPUT: GucSetting<LongInput> = GucSetting::<LongInput>::new(LongInput::Truncate);
pub static BATCH_TOKENS: GucSetting<i32> = GucSetting::<i32>::new(qwen3_embed_engine::DEFAULT_BATCH_TOKENS as i32);
pub static SERVER: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static USE_SERVER: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static SERVER_THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static SERVER_BATCH_WAIT: GucSetting<i32> = GucSetting::<i32>::new(2);
pub static EXPECT_FINGERPRINT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static SYNC_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(2);
pub static SYNC_DATABASE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static SYNC_NAPTIME: GucSetting<i32> = GucSetting::<i32>::new(250);
pub static SYNC_LINGER: GucSetting<i32> = GucSetting::<i32>::new(60);
pub static SYNC_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(300);
pub static MAX_REQUEST_TOKENS: GucSetting<i32> = GucSetting::<i32>::new(1 << 18);
pub static SERVER_MAX_TOKENS: GucSetting<i32> = GucSetting::<i32>::new(1 << 22);
pub static SERVER_ROLE_SHARE: GucSetting<i32> = GucSetting::<i32>::new(50);
/// In MB: the query cache's bound, in the model server and in each backend without it.
pub static QUERY_CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(64);
/// Group roles whose members share one role's part of the model server.
pub static SERVER_SHARE_GROUPS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// In MB; 0: half the machine's memory, -1: no limit.
pub static SERVER_MODEL_MEMORY: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static CACHE_DIR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// In MB, as the engine's defaults.
pub static CACHE_MIN_FREE: GucSetting<i32> =
    GucSetting::<i32>::new((qwen3_embed_engine::cache::space::DEFAULT_MIN_FREE >> 20) as i32);
pub static CACHE_MAX_SIZE: GucSetting<i32> =
    GucSetting::<i32>::new((qwen3_embed_engine::cache::space::DEFAULT_MAX_SIZE >> 20) as i32);

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
    // A postmaster-level setting can only be defined while preloading.
    // SAFETY: reading a flag Postgres sets while it loads shared_preload_libraries.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        GucRegistry::define_bool_guc(
            c"qwen3_embed.server",
            c"Start the model server: one model for the whole server, shared by every session.",
            c"Only read at server start, and only when qwen3_embed is in shared_preload_libraries.",
            &SERVER,
            GucContext::Postmaster,
            GucFlags::default(),
        );
        GucRegistry::define_int_guc(
            c"qwen3_embed.server_max_tokens",
            c"Most tokens (an upper bound estimated from the texts' bytes) of all requests queued or running in the model server at once.",
            c"A request that would pass it is refused with SQLSTATE 53200. Only read at server start.",
            &SERVER_MAX_TOKENS,
            1024,
            i32::MAX,
            GucContext::Postmaster,
            GucFlags::default(),
        );
        GucRegistry::define_int_guc(
            c"qwen3_embed.server_role_share",
            c"Percent of qwen3_embed.server_max_tokens that the requests of one role may hold at once in the model server.",
            c"A request that would take its role past it is refused with SQLSTATE 53000. Only read at server start.",
            &SERVER_ROLE_SHARE,
            1,
            100,
            GucContext::Postmaster,
            GucFlags::default(),
        );
        GucRegistry::define_int_guc(
            c"qwen3_embed.server_model_memory",
            c"Most memory the models resident in the model server may take together; 0: half the machine's memory, -1: no limit.",
            c"The server keeps every model in use (an embedder, a reranker, other databases' models) until loading another would pass this; then the least recently used ones are unloaded. Only read at server start.",
            &SERVER_MODEL_MEMORY,
            -1,
            i32::MAX,
            GucContext::Postmaster,
            GucFlags::UNIT_MB,
        );
        GucRegistry::define_int_guc(
            c"qwen3_embed.sync_workers",
            c"Sync workers that drain the embedding queues (qwen3_embed_sync) at once, one per database, shared by every database of the cluster.",
            c"Only read at server start; 0 turns them off (qwen3_embed_sync_run() can be called by hand). Each takes a max_worker_processes slot while it works.",
            &SYNC_WORKERS,
            0,
            64,
            GucContext::Postmaster,
            GucFlags::default(),
        );
        GucRegistry::define_string_guc(
            c"qwen3_embed.sync_database",
            c"When set, the only database whose embedding queue the sync workers drain; empty (the default): every database.",
            c"Only read at server start.",
            &SYNC_DATABASE,
            GucContext::Postmaster,
            GucFlags::default(),
        );
    }
    GucRegistry::define_int_guc(
        c"qwen3_embed.query_cache_size",
        c"Most memory the vectors of repeated queries may take: in the model server, and in each backend that embeds without it; 0 turns the cache off.",
        c"A query (one text embedded by a SELECT, qwen3_embed_query among them) is answered from the cache when the same model computed the same tokens at the same size before, bit for bit the same vector; documents being written are never kept.",
        &QUERY_CACHE_SIZE,
        0,
        1 << 20,
        GucContext::Sighup,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_string_guc(
        c"qwen3_embed.server_share_groups",
        c"Group roles (a comma-separated list) whose members share one part of the model server, as one role.",
        c"A session whose user belongs to a listed role (the first that matches, superusers not counted as members) is charged to it in qwen3_embed.server_role_share and takes turns with it; empty (the default): each session user has its own part.",
        &SERVER_SHARE_GROUPS,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"qwen3_embed.sync_naptime",
        c"Milliseconds a sync worker waits before looking at an empty queue again.",
        c"",
        &SYNC_NAPTIME,
        10,
        60_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"qwen3_embed.sync_linger",
        c"Seconds a sync worker stays in a database whose queue is empty before it leaves.",
        c"A new worker's first round loads the tokenizer, so a worker that stays serves the next rows sooner; an idle one still makes room for a database that waits.",
        &SYNC_LINGER,
        0,
        3600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"qwen3_embed.sync_timeout",
        c"Seconds one sync's share of a drain round may take (0: no limit).",
        c"The table's own code (triggers, index expressions) runs in it with the model call: a share that takes longer is cancelled and the sync set aside with back-off, so that one table cannot hold a worker.",
        &SYNC_TIMEOUT,
        0,
        86_400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"qwen3_embed.use_server",
        c"Send this session's calls to the model server, when there is one.",
        c"Off runs the model in this backend (a full model copy in this process).",
        &USE_SERVER,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"qwen3_embed.server_threads",
        c"Compute threads of the model server (0 = one per CPU core).",
        c"A change reloads the model in the server after pg_reload_conf().",
        &SERVER_THREADS,
        0,
        1024,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"qwen3_embed.server_batch_wait",
        c"Longest time, in milliseconds, a request waits in the model server for others to share its forward pass.",
        c"The server only waits when other requests are on their way or the last pass was shared.",
        &SERVER_BATCH_WAIT,
        0,
        1000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"qwen3_embed.cache_dir",
        c"Directory of the packed-weight cache, one file per model that every process maps: empty means ~/.cache/qwen3_embed of the server's OS user, off packs the weights in each process's memory.",
        c"Read at each model load; the model server reads the value it started with. Keep it outside the data directory: the files are derived data, several GB each.",
        &CACHE_DIR,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"qwen3_embed.cache_min_free",
        c"Space the packed-weight cache leaves free on its filesystem: a cache file that would take it is not written, and the weights are packed in memory with a WARNING.",
        c"Checked before a cache file is written and before each of its arrays. The cache directory defaults to the server's home, often the data directory's filesystem, where a full disk stops the server.",
        &CACHE_MIN_FREE,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_int_guc(
        c"qwen3_embed.cache_max_size",
        c"Most space the packed-weight cache directory's files may take; -1: no limit.",
        c"Writing a cache file removes the least recently used files that no process maps to stay within it; when that is not enough, the weights are packed in memory with a WARNING.",
        &CACHE_MAX_SIZE,
        -1,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_string_guc(
        c"qwen3_embed.model_path",
        c"The Qwen3-Embedding model: a .gguf file or a Hugging Face checkpoint directory.",
        c"Read by the server process. A new value takes effect for the next call, no restart needed.",
        &MODEL_PATH,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"qwen3_embed.reranker_path",
        c"The Qwen3-Reranker model of qwen3_rerank: a .gguf file or a Hugging Face checkpoint directory.",
        c"Superuser-only: it makes the server read a file. The model server keeps it resident beside the embedder.",
        &RERANKER_PATH,
        GucContext::Suset,
        GucFlags::default(),
    );
    // Not GucRegistry's: a value that names no device is refused when it is set.
    // SAFETY: defines the setting over DEVICE's storage (as GucRegistry does), with a check hook.
    unsafe {
        pgrx::pg_sys::DefineCustomStringVariable(
            c"qwen3_embed.device".as_ptr(),
            c"Where the model runs: cpu, cuda, cuda:N or auto.".as_ptr(),
            c"Superuser-only: it decides which model the shared model server holds. auto picks CUDA when this build has it and a GPU is present, else the CPU.".as_ptr(),
            DEVICE.as_ptr(),
            c"cpu".as_ptr(),
            pgrx::pg_sys::GucContext::PGC_SUSET,
            0,
            Some(check_device),
            None,
            None,
        );
    }
    GucRegistry::define_int_guc(
        c"qwen3_embed.threads",
        c"Compute threads of one embedding call in a backend (0 = one per CPU core).",
        c"Superuser-only: threads take CPU from every other session.",
        &THREADS,
        0,
        1024,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"qwen3_embed.max_tokens",
        c"Most tokens per input, the appended end-of-text token included.",
        c"Longer inputs are truncated or refused, as qwen3_embed.on_long_input says. Superuser-only: it changes vectors and memory use.",
        &MAX_TOKENS,
        2,
        32768,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"qwen3_embed.max_request_tokens",
        c"Most tokens one call may embed in all (a batch call's inputs together, after truncation).",
        c"A call over it fails with SQLSTATE 54000. Superuser-only: it bounds the memory one call takes.",
        &MAX_REQUEST_TOKENS,
        64,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"qwen3_embed.expect_fingerprint",
        c"The fingerprint (qwen3_embed_info().fingerprint) of the only model whose vectors may be written; empty: any.",
        c"Set it per database (ALTER DATABASE ... SET) so that a changed model_path makes every embedding call fail instead of mixing two models' vectors in one column.",
        &EXPECT_FINGERPRINT,
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
        c"Larger batches use more memory; one input longer than this still runs, alone. Superuser-only: memory is shared by every session.",
        &BATCH_TOKENS,
        64,
        1 << 20,
        GucContext::Suset,
        GucFlags::default(),
    );
}

pub fn model_path() -> Option<String> {
    MODEL_PATH.get().map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.trim().is_empty())
}

/// The packed-weight cache's directory; `None` when set to `off` or when no home is known.
pub fn cache_dir() -> Option<std::path::PathBuf> {
    let v = CACHE_DIR.get().map(|s| s.to_string_lossy().trim().to_string()).unwrap_or_default();
    match v.as_str() {
        "" => qwen3_embed_engine::cache::default_dir(),
        "off" => None,
        dir => Some(dir.into()),
    }
}

/// The packed-weight cache's limits.
pub fn cache_limits() -> qwen3_embed_engine::cache::Limits {
    let mb = |v: i32| (v.max(0) as u64) << 20;
    let max = CACHE_MAX_SIZE.get();
    qwen3_embed_engine::cache::Limits { min_free: mb(CACHE_MIN_FREE.get()), max_size: (max >= 0).then(|| mb(max)) }
}

/// `qwen3_embed.device`'s check hook: cpu, auto, cuda or cuda:N, whether or not this build or
/// machine has CUDA (that is said at the first call, with the reason).
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_device(
    newval: *mut *mut std::ffi::c_char,
    _extra: *mut *mut std::ffi::c_void,
    _source: pgrx::pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL hands the proposed value, a NUL-terminated string or NULL.
    let value = unsafe { newval.as_ref().filter(|p| !p.is_null()).map(|p| std::ffi::CStr::from_ptr(*p)) };
    let Some(value) = value else { return true };
    match value.to_string_lossy().parse::<qwen3_embed_engine::DeviceSpec>() {
        Ok(_) => true,
        Err(_) => {
            // SAFETY: the check-hook protocol: a palloc'd detail for the ERROR PostgreSQL raises.
            unsafe {
                pgrx::pg_sys::GUC_check_errdetail_string =
                    pgrx::pg_sys::pstrdup(c"qwen3_embed.device takes cpu, auto, cuda or cuda:N.".as_ptr());
            }
            false
        }
    }
}

pub fn device() -> String {
    DEVICE.get().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "cpu".into())
}

pub fn threads() -> usize {
    THREADS.get().max(0) as usize
}

pub fn max_tokens() -> usize {
    MAX_TOKENS.get().max(2) as usize
}

pub fn sync_workers() -> usize {
    SYNC_WORKERS.get().max(0) as usize
}

pub fn sync_database() -> String {
    SYNC_DATABASE.get().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

pub fn sync_naptime_ms() -> u64 {
    SYNC_NAPTIME.get().max(10) as u64
}

pub fn sync_linger() -> std::time::Duration {
    std::time::Duration::from_secs(SYNC_LINGER.get().max(0) as u64)
}

pub fn sync_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(SYNC_TIMEOUT.get().max(0) as u64)
}

pub fn max_request_tokens() -> usize {
    MAX_REQUEST_TOKENS.get().max(64) as usize
}

pub fn server_max_tokens() -> usize {
    SERVER_MAX_TOKENS.get().max(1024) as usize
}

/// Bytes the model server's resident models may take together.
pub fn server_model_memory() -> u64 {
    match SERVER_MODEL_MEMORY.get() {
        -1 => u64::MAX,
        0 => {
            // SAFETY: sysconf reads constants of the running system.
            let (pages, size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGE_SIZE)) };
            if pages > 0 && size > 0 {
                (pages as u64).saturating_mul(size as u64) / 2
            } else {
                u64::MAX
            }
        }
        mb => (mb.max(1) as u64) << 20,
    }
}

pub fn server_role_share() -> usize {
    SERVER_ROLE_SHARE.get().clamp(1, 100) as usize
}

/// The role names listed in `qwen3_embed.server_share_groups`, as identifiers: folded to lower
/// case unless double-quoted.
pub fn server_share_groups() -> Vec<String> {
    let raw = SERVER_SHARE_GROUPS.get().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    split_identifiers(&raw)
}

pub(crate) fn split_identifiers(raw: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = raw.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        let Some(&first) = chars.peek() else { break };
        let mut name = String::new();
        if first == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' if chars.next_if_eq(&'"').is_some() => name.push('"'),
                    '"' => break,
                    c => name.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                name.push(c);
            }
            name = name.trim_end().to_lowercase();
        }
        while chars.next_if(|c| *c != ',').is_some() {}
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}

/// The query cache's bound in bytes (0: off).
pub fn query_cache_bytes() -> u64 {
    (QUERY_CACHE_SIZE.get().max(0) as u64) << 20
}

pub fn batch_tokens() -> usize {
    BATCH_TOKENS.get().max(64) as usize
}

pub fn on_long_input() -> LongInput {
    ON_LONG_INPUT.get()
}

/// The limits a call of this session runs under.
pub fn limits() -> qwen3_embed_engine::Limits {
    qwen3_embed_engine::Limits {
        max_tokens: max_tokens(),
        long_input: match on_long_input() {
            LongInput::Truncate => qwen3_embed_engine::LongInput::Truncate,
            LongInput::Error => qwen3_embed_engine::LongInput::Error,
        },
        max_request_tokens: max_request_tokens(),
        expect_fingerprints: expect_fingerprint().into_iter().collect(),
    }
}

/// The limits of a call that writes into a column registered with model `column` (if any).
pub fn limits_for(column: Option<&str>) -> qwen3_embed_engine::Limits {
    let mut limits = limits();
    limits.expect_fingerprints.extend(column.map(str::to_string));
    limits
}

pub fn expect_fingerprint() -> Option<String> {
    EXPECT_FINGERPRINT.get().map(|s| s.to_string_lossy().trim().to_string()).filter(|s| !s.is_empty())
}

pub fn use_server() -> bool {
    USE_SERVER.get()
}

pub fn server_threads() -> usize {
    SERVER_THREADS.get().max(0) as usize
}

pub fn server_batch_wait_ms() -> u64 {
    SERVER_BATCH_WAIT.get().max(0) as u64
}

pub fn reranker_path() -> Option<String> {
    RERANKER_PATH.get().map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.trim().is_empty())
}

/// The configured reranker, or the ERROR that says how to configure one.
pub fn reranker_path_or_raise() -> String {
    reranker_path().unwrap_or_else(|| {
        crate::errors::raise_with(
            pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "qwen3_embed: no reranker configured (qwen3_embed.reranker_path is empty)".into(),
            "As a superuser: ALTER SYSTEM SET qwen3_embed.reranker_path = '/path/to/Qwen3-Reranker-4B-Q8_0.gguf'; SELECT pg_reload_conf();",
        )
    })
}

/// The configured model, or the ERROR that says how to configure one.
pub fn model_path_or_raise() -> String {
    model_path().unwrap_or_else(|| {
        crate::errors::raise_with(
            pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "qwen3_embed: no model configured (qwen3_embed.model_path is empty)".into(),
            "As a superuser: ALTER SYSTEM SET qwen3_embed.model_path = '/path/to/Qwen3-Embedding-4B-Q4_K_M.gguf'; SELECT pg_reload_conf();",
        )
    })
}
