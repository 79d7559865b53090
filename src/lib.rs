//! qwen3_embed: Qwen3-Embedding inside PostgreSQL, returning pgvector vectors.
//! Thin glue over the `qwen3-embed-engine` crate: settings, errors, the `vector` type, the
//! SQL functions, and where the engine runs.

use pgrx::prelude::*;

mod api;
mod cache_api;
mod errors;
mod host;
mod rerank;
mod settings;
mod state;
mod sync;
mod text;
mod vector;

::pgrx::pg_module_magic!(name, version);

/// The cargo profile this library was built with, as `qwen3_embed_info()` reports it: a debug
/// build (`cargo pgrx install` without `--release`) embeds several times slower.
pub const BUILD_PROFILE: &str = if cfg!(debug_assertions) { "debug" } else { "release" };

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    errors::no_backtraces();
    settings::register();
    // SAFETY: reading a flag Postgres sets while it loads shared_preload_libraries.
    let preloading = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    if cfg!(debug_assertions) {
        // Once per server start when preloaded (the postmaster, whose WARNING goes only to the
        // log), else once per backend that loads the library, at LOG so that no client sees it.
        let msg = "qwen3_embed: this library is a debug build, several times slower than a release build; \
                   reinstall it with scripts/install.sh (the release profile)";
        if preloading {
            pgrx::warning!("{msg}");
        } else {
            pgrx::log!("{msg}");
        }
    }
    if preloading && settings::SERVER.get() {
        host::server::register();
        sync::register();
    }
}

/// The schema of the extension's state tables and internal routines (`sql/schema.sql` says why).
#[pg_schema]
mod qwen3_embed {}
// (Named by its full path: pgrx would take a bare `qwen3_embed` for the function of that name.)
extension_sql_file!("../sql/schema.sql", name = "state_schema", requires = [qwen3_embed::qwen3_embed]);
extension_sql_file!(
    "../sql/columns.sql",
    name = "columns",
    requires = ["state_schema", api::qwen3_embed_info, api::qwen3_embed_batch_for_column, state::qwen3_embed_state]
);
extension_sql_file!("../sql/trigger.sql", name = "trigger", requires = ["columns"]);
extension_sql_file!(
    "../sql/reembed.sql",
    name = "reembed",
    requires = ["columns", api::qwen3_embed_outside_transaction]
);
extension_sql_file!(
    "../sql/sync.sql",
    name = "sync",
    requires = [
        "columns",
        state::qwen3_embed_state,
        sync::qwen3_embed_sync_wake,
        sync::qwen3_embed_sync_worker,
        sync::qwen3_embed_sync_workers_here
    ]
);
extension_sql_file!("../sql/sync_index.sql", name = "sync_index", requires = ["sync"]);
extension_sql_file!("../sql/adopt.sql", name = "adopt", requires = ["sync"]);
extension_sql_file!(
    "../sql/search.sql",
    name = "search",
    requires = ["sync", "columns", api::qwen3_embed_query, api::qwen3_embed_default_task, rerank::qwen3_rerank]
);
extension_sql_file!("../sql/dump.sql", name = "dump", requires = ["reembed", "sync"]);
extension_sql_file!("../sql/cleanup.sql", name = "cleanup", requires = ["reembed", "sync", "adopt"]);
extension_sql_file!("../sql/cache_files.sql", name = "cache_files", requires = [cache_api::qwen3_embed_cache_files]);
extension_sql_file!("../sql/comments.sql", name = "comments", finalize);

// The library builds for 13 and 14, but the SQL needs 15: the views are security_invoker (so
// that row-level security on the state tables applies to the caller). Refuse with a clear
// message instead of failing halfway through the script.
#[cfg(any(feature = "pg13", feature = "pg14"))]
extension_sql!(
    r#"
DO $$
BEGIN
    RAISE EXCEPTION 'qwen3_embed needs PostgreSQL 15 or later, this is %', pg_catalog.version()
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Its views use security_invoker (PostgreSQL 15), so that row-level security on its state tables applies to the caller.';
END
$$;
"#,
    name = "needs_postgresql_15",
    bootstrap
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn embeds_a_unit_vector_of_the_model_size() {
        let (dims, norm) = Spi::get_two::<i32, f64>(
            "SELECT vector_dims(v), vector_norm(v) FROM (SELECT qwen3_embed('hello world') v) s",
        )
        .unwrap();
        assert_eq!(dims, Some(256));
        assert!((norm.unwrap() - 1.0).abs() < 1e-5);
    }

    #[pg_test]
    fn batch_equals_single_calls() {
        let worst = Spi::get_one::<f64>(
            "SELECT max(b.embedding <=> qwen3_embed(t.body))
             FROM unnest(ARRAY['one', 'two words', 'a third, longer input']) WITH ORDINALITY t(body, ord)
             JOIN qwen3_embed_batch(ARRAY['one', 'two words', 'a third, longer input']) b USING (ord)",
        )
        .unwrap()
        .unwrap();
        assert!(worst < 1e-6, "cosine distance {worst}");
    }

    #[pg_test]
    fn share_group_names_are_read_as_identifiers() {
        let names = crate::settings::split_identifiers(r#" Tenant_A, "Mixed Case" ,b,, "q""uote" "#);
        assert_eq!(names, ["tenant_a", "Mixed Case", "b", "q\"uote"]);
        assert!(crate::settings::split_identifiers(" , ").is_empty());
    }

    /// Engine threads must never run a Postgres signal handler: every signal is blocked there.
    #[pg_test]
    fn engine_threads_block_every_signal() {
        Spi::run("SELECT qwen3_embed('wake the engine threads')").unwrap();
        let mut checked = 0;
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if !name.starts_with("qwen3-embed") {
                continue;
            }
            let status = std::fs::read_to_string(dir.join("status")).unwrap();
            let blocked = status.lines().find(|l| l.starts_with("SigBlk:")).unwrap();
            let mask = u64::from_str_radix(blocked.split_whitespace().nth(1).unwrap(), 16).unwrap();
            // SIGINT, SIGTERM, SIGALRM, SIGUSR1, SIGHUP: what Postgres backends handle.
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGALRM, libc::SIGUSR1, libc::SIGHUP] {
                assert!(mask & (1 << (sig - 1)) != 0, "{name}: signal {sig} not blocked");
            }
            checked += 1;
        }
        assert!(checked >= 2, "found {checked} engine threads");
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    use std::path::Path;

    use qwen3_embed_engine::fixture::{self, Shape};

    const ROOT: &str = env!("CARGO_MANIFEST_DIR");

    /// The test model: the tiny fixture the engine tests also use, generated if missing.
    pub fn setup(_options: Vec<&str>) {
        let root = Path::new(ROOT);
        fixture::ensure(
            fixture::Kind::Embedding,
            &Shape::preset("tiny").expect("preset"),
            42,
            &root.join("fixtures/tokenizer/tokenizer.json"),
            &root.join("fixtures/generated/tiny"),
            &fixture::test_formats(),
        )
        .expect("generate the test fixture (run scripts/setup.sh for the tokenizer)");
    }

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        let model = format!("{ROOT}/fixtures/generated/tiny/model-q8_0.gguf");
        vec![Box::leak(format!("qwen3_embed.model_path = '{model}'").into_boxed_str()), "qwen3_embed.threads = 2"]
    }
}
