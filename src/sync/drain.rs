//! `qwen3_embed_sync_run()`: drains the sync queue (`sql/sync.sql`), each sync as its table's
//! owner.
//!
//! A sync's rows are embedded and written by `qwen3_embed_sync_drain`, which touches the user's
//! table: its triggers, index expressions, generated columns and CHECK constraints run. So it
//! runs as the table's owner in a security-restricted operation, as PostgreSQL runs a table
//! owner's code in autovacuum and `REFRESH MATERIALIZED VIEW`, whoever drains: a sync worker
//! (a superuser session) or a role calling this function. Each sync's share runs in a
//! subtransaction: when it fails as a whole (not one row: those the drain records itself), it
//! is rolled back and the sync set aside with back-off, while the others go on. A cancel ends
//! the call.

use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::JsonB;

use crate::errors::raise_code;
use crate::state;

/// Batches one sync takes in one model call, at most (`qwen3_embed_sync_drain`'s share).
const MAX_SHARE: i32 = 4;

/// One sync to visit: its id, its table's owner, whether its creator lost its rights.
struct Due {
    id: i32,
    owner: pg_sys::Oid,
    refused: bool,
    failures: i32,
}

/// Drains up to `max_batches` batches of the queue (every sync the caller can see, or one);
/// returns the rows embedded. The batches are shared out among the syncs with due rows; passes
/// over them repeat until `max_batches` or no sync has work.
#[pg_extern(volatile, parallel_unsafe)]
fn qwen3_embed_sync_run(sync_id: default!(Option<i32>, "NULL"), max_batches: default!(i32, 1)) -> i32 {
    if !(1..=100_000).contains(&max_batches) {
        raise_code(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("qwen3_embed_sync_run: max_batches must be between 1 and 100000, got {max_batches}"),
        );
    }
    run(sync_id, max_batches)
}

pub fn run(sync_id: Option<i32>, max_batches: i32) -> i32 {
    let mut used = 0;
    let mut embedded = 0;
    loop {
        let due = list(sync_id);
        let mut progressed = false;
        for s in &due {
            if used >= max_batches {
                break;
            }
            if s.refused {
                gate("sync_refuse", serde_json::json!({ "id": s.id }));
                continue;
            }
            let share = ((max_batches - used) / due.len() as i32).clamp(1, MAX_SHARE);
            match drain_as_owner(s.id, s.owner, share) {
                Ok((rows, batches)) => {
                    embedded += rows;
                    used += batches;
                    progressed |= batches > 0;
                    if s.failures > 0 {
                        gate("sync_succeeded", serde_json::json!({ "id": s.id }));
                    }
                }
                Err((sqlstate, message)) => {
                    gate("sync_failed", serde_json::json!({ "id": s.id, "sqlstate": sqlstate, "message": message }));
                }
            }
        }
        if !progressed || used >= max_batches {
            return embedded;
        }
    }
}

fn list(sync_id: Option<i32>) -> Vec<Due> {
    Spi::connect(|c| {
        let rows = c.select(
            "SELECT id, owner, refused, failures FROM qwen3_embed.qwen3_embed_sync_due($1)",
            None,
            &[sync_id.into()],
        )?;
        rows.map(|r| {
            Ok(Due {
                id: r.get::<i32>(1)?.unwrap_or_default(),
                owner: r.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid),
                refused: r.get::<bool>(3)?.unwrap_or(false),
                failures: r.get::<i32>(4)?.unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| raise_code(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("qwen3_embed_sync_run: {e}")))
}

fn gate(op: &str, args: serde_json::Value) {
    Spi::run_with_args("SELECT qwen3_embed.qwen3_embed_state($1, $2)", &[op.into(), JsonB(args).into()])
        .unwrap_or_else(|e| raise_code(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("qwen3_embed_sync_run: {e}")));
}

unsafe extern "C-unwind" {
    // utils/timeout.h, which pgrx does not bind.
    fn enable_timeout_after(id: std::ffi::c_int, delay_ms: std::ffi::c_int);
    fn disable_timeout(id: std::ffi::c_int, keep_indicator: bool);
    fn get_timeout_active(id: std::ffi::c_int) -> bool;
}

/// `TimeoutId::STATEMENT_TIMEOUT` (the same in PostgreSQL 15 to 18).
const STATEMENT_TIMEOUT: std::ffi::c_int = 3;

/// The statement timer, armed for one sync's share when no statement timeout of the caller's
/// runs already (a sync worker has none): its expiry cancels the share as `statement_timeout`
/// would, and the share counts as failed.
struct ShareTimer {
    armed: bool,
    started: std::time::Instant,
    limit: std::time::Duration,
}

impl ShareTimer {
    fn arm() -> Self {
        let limit = crate::settings::sync_timeout();
        // SAFETY: the backend's own timer, as postgres.c arms it for a statement.
        let armed = !limit.is_zero() && unsafe { !get_timeout_active(STATEMENT_TIMEOUT) };
        if armed {
            let ms = limit.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: as above.
            unsafe { enable_timeout_after(STATEMENT_TIMEOUT, ms) };
        }
        ShareTimer { armed, started: std::time::Instant::now(), limit }
    }

    /// Whether the share ran out of its time (a cancel then is this timer's).
    fn expired(&self) -> bool {
        self.armed && self.started.elapsed() >= self.limit
    }
}

impl Drop for ShareTimer {
    fn drop(&mut self) {
        if self.armed {
            // SAFETY: as above.
            unsafe { disable_timeout(STATEMENT_TIMEOUT, false) };
        }
    }
}

/// One sync's share, as `owner` in a security-restricted operation, in a subtransaction: the
/// rows embedded and batches taken, or the error (SQLSTATE, message) that rolled it back. A
/// cancel is raised again after the rollback, unless it came from `qwen3_embed.sync_timeout`.
/// Settings the owner's code changes (even with `set_config(..., false)`) end with the share,
/// as in `REFRESH MATERIALIZED VIEW`.
fn drain_as_owner(id: i32, owner: pg_sys::Oid, share: i32) -> Result<(i32, i32), (String, String)> {
    let timer = ShareTimer::arm();
    // SAFETY: the subtransaction protocol of PL/pgSQL's exception blocks: begin, then release
    // or roll back, each time restoring the memory context and resource owner of the caller.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let resowner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let restore = move || {
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = resowner;
        };
        PgTryBuilder::new(|| {
            let flags = pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION;
            let nest = pg_sys::NewGUCNestLevel();
            let (rows, batches) = state::run_as(owner, flags, || {
                Spi::run("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")?;
                Spi::get_two_with_args::<i32, i32>(
                    "SELECT embedded, batches FROM qwen3_embed.qwen3_embed_sync_drain($1, $2)",
                    &[id.into(), share.into()],
                )
            })
            .unwrap_or_else(|e| raise_code(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("{e}")));
            pg_sys::AtEOXact_GUC(false, nest);
            pg_sys::ReleaseCurrentSubTransaction();
            restore();
            Ok((rows.unwrap_or(0), batches.unwrap_or(0)))
        })
        .catch_others(|e| {
            restore();
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            restore();
            let (code, message) = match &e {
                CaughtError::PostgresError(r)
                | CaughtError::ErrorReport(r)
                | CaughtError::RustPanic { ereport: r, .. } => (r.sql_error_code(), r.message().to_string()),
            };
            if code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED {
                if timer.expired() {
                    let limit = timer.limit.as_secs();
                    return Err((
                        sqlstate(code),
                        format!("the sync's share of a round took longer than qwen3_embed.sync_timeout ({limit} s)"),
                    ));
                }
                e.rethrow();
            }
            Err((sqlstate(code), message))
        })
        .execute()
    }
}

/// The five-character SQLSTATE of `code` (PostgreSQL packs it six bits a character).
fn sqlstate(code: PgSqlErrorCode) -> String {
    let packed = code as isize as u32;
    (0..5).map(|i| char::from(b'0' + ((packed >> (6 * i)) & 0x3F) as u8)).collect()
}
