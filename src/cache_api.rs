//! The packed-weight cache's files, for the administrator: `qwen3_embed_cache_files()`.

use pgrx::prelude::*;

use crate::errors::raise_with;
use crate::settings;

/// Every file of the packed-weight cache directory (`qwen3_embed.cache_dir`), least recently
/// used first: its path, size, whether a process maps it, when it was last mapped and
/// written, and what it was packed for. Server file paths: only superusers and members of
/// pg_read_server_files may call it (see the grant below).
#[pg_extern(volatile, parallel_safe)]
#[allow(clippy::type_complexity)]
fn qwen3_embed_cache_files() -> TableIterator<
    'static,
    (
        name!(file, String),
        name!(bytes, i64),
        name!(in_use, bool),
        name!(last_used, TimestampWithTimeZone),
        name!(modified, TimestampWithTimeZone),
        name!(model, Option<String>),
        name!(kernels, Option<String>),
        name!(layout, Option<i32>),
        name!(partial, bool),
    ),
> {
    let Some(dir) = settings::cache_dir() else {
        return TableIterator::new(Vec::new());
    };
    let files = qwen3_embed_engine::cache::dir::list(&dir).unwrap_or_else(|e| {
        raise_with(
            PgSqlErrorCode::ERRCODE_IO_ERROR,
            format!("qwen3_embed: cannot list the packed-weight cache {}: {e}", dir.display()),
            "Check qwen3_embed.cache_dir and that the server's OS user may read it.",
        )
    });
    let time = |t: std::time::SystemTime| {
        to_timestamp(t.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()))
    };
    let rows: Vec<_> = files
        .into_iter()
        .map(|f| {
            (
                f.path.display().to_string(),
                f.bytes as i64,
                f.in_use,
                time(f.last_used),
                time(f.modified),
                f.model,
                f.header.as_ref().map(|h| h.isa.clone()),
                f.header.as_ref().map(|h| h.layout as i32),
                f.partial,
            )
        })
        .collect();
    TableIterator::new(rows)
}
