//! The HNSW index a sync makes once its column holds `index_rows` vectors (`sql/sync_index.sql`).
//!
//! Between two rounds, a sync worker looks for a sync whose index may be due, counts its
//! vectors as the table's owner, and when there are enough runs `CREATE INDEX CONCURRENTLY` as
//! that owner, in a security-restricted operation. That command commits transactions of its
//! own, so it must run at the top level of the worker, outside any function or transaction
//! block, as a client's statement would: it is planned and handed to `ProcessUtility` directly.
//! A build that fails is recorded in the sync (`qwen3_embed_sync_status.index`) and the invalid
//! index it left is dropped the same way.

use std::ffi::CString;
use std::ptr;

use pgrx::bgworkers::BackgroundWorker;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgList;

use crate::state;

/// A worker's first look: a build still marked as running was cut short (only one worker serves
/// a database at a time): it is recorded as failed and what it left is dropped.
pub fn interrupted() {
    let cut = BackgroundWorker::transaction(|| {
        Spi::connect(|client| {
            client
                .select("SELECT id, owner FROM qwen3_embed.qwen3_embed_sync_index_syncs('building')", None, &[])
                .map(|rows| {
                    rows.filter_map(|r| Some((r.get::<i32>(1).ok()??, r.get::<pg_sys::Oid>(2).ok()??)))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    });
    for (id, owner) in cut {
        end(id, owner, Some("the build was interrupted: its worker stopped".into()));
    }
}

/// Builds at most one due index; returns whether it tried.
pub fn look() -> bool {
    let due = BackgroundWorker::transaction(|| {
        Spi::get_two::<i32, pg_sys::Oid>(
            "SELECT id, owner FROM qwen3_embed.qwen3_embed_sync_index_syncs('waiting') LIMIT 1",
        )
        .ok()
        .and_then(|(id, owner)| Some((id?, owner?)))
    });
    let Some((id, owner)) = due else { return false };
    let plan = BackgroundWorker::transaction(|| {
        let enough = as_owner(owner, || {
            Spi::get_one_with_args::<bool>("SELECT qwen3_embed.qwen3_embed_sync_index_enough($1)", &[id.into()])
        })
        .ok()
        .flatten()
        .unwrap_or(false);
        Spi::get_two_with_args::<String, String>(
            "SELECT index_name::text, statement FROM qwen3_embed.qwen3_embed_sync_index_begin($1, $2)",
            &[id.into(), enough.into()],
        )
        .ok()
        .and_then(|(name, statement)| Some((name?, statement?)))
    });
    let Some((name, statement)) = plan else { return true };
    let error = top_level(owner, &statement).err();
    if let Some(e) = &error {
        pgrx::log!("qwen3_embed sync worker: building index {name} failed: {e}");
    }
    end(id, owner, error);
    true
}

/// Records how sync `id`'s build ended, and drops the invalid index a failed one left.
fn end(id: i32, owner: pg_sys::Oid, error: Option<String>) {
    let drop = BackgroundWorker::transaction(|| {
        Spi::get_one_with_args::<String>(
            "SELECT qwen3_embed.qwen3_embed_sync_index_end($1, $2)",
            &[id.into(), error.clone().into()],
        )
        .ok()
        .flatten()
    });
    if let Some(drop) = drop {
        if let Err(e) = top_level(owner, &drop) {
            pgrx::log!("qwen3_embed sync worker: {drop} failed: {e}");
        }
    }
}

fn as_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    state::run_as(owner, pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION, f)
}

/// Runs one utility statement as `owner` at the top level, in a transaction of its own (which
/// the statement may commit and start again); returns its error message when it fails.
fn top_level(owner: pg_sys::Oid, sql: &str) -> Result<(), String> {
    let sql = CString::new(sql).map_err(|e| e.to_string())?;
    // SAFETY: the worker is between transactions here (BackgroundWorker::transaction returned):
    // this starts one, runs the statement as exec_simple_query would, and commits it, or on an
    // ERROR aborts it (which releases the session locks a failed concurrent build holds).
    unsafe {
        // The abort puts back the user its transaction began with, which is the owner when the
        // statement had committed and begun another: the worker's own identity is put back after.
        let (mut uid, mut sec) = (pg_sys::InvalidOid, 0);
        pg_sys::GetUserIdAndSecContext(&mut uid, &mut sec);
        // The statement's parse and plan trees must outlive the transactions it commits (as
        // exec_simple_query keeps them in MessageContext).
        let trees = pg_sys::AllocSetContextCreateInternal(
            pg_sys::TopMemoryContext,
            c"qwen3_embed index build".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        pg_sys::StartTransactionCommand();
        let outcome = PgTryBuilder::new(|| {
            as_owner(owner, || run_utility(&sql, trees));
            pg_sys::CommitTransactionCommand();
            Ok(())
        })
        .catch_others(|e| {
            pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
            pg_sys::AbortCurrentTransaction();
            pg_sys::SetUserIdAndSecContext(uid, sec);
            Err(match &e {
                CaughtError::PostgresError(r)
                | CaughtError::ErrorReport(r)
                | CaughtError::RustPanic { ereport: r, .. } => r.message().to_string(),
            })
        })
        .execute();
        pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
        pg_sys::MemoryContextDelete(trees);
        outcome
    }
}

/// Parses, plans and runs `sql` (utility statements) with `ProcessUtility` at the top level, its
/// trees in `trees`.
///
/// # Safety
/// Inside a transaction started by `StartTransactionCommand`, outside any transaction block;
/// `trees` outlives the call.
unsafe fn run_utility(sql: &CString, trees: pg_sys::MemoryContext) {
    pg_sys::MemoryContextSwitchTo(trees);
    let raws = PgList::<pg_sys::RawStmt>::from_pg(pg_sys::pg_parse_query(sql.as_ptr()));
    for raw in raws.iter_ptr() {
        let queries =
            pg_sys::pg_analyze_and_rewrite_fixedparams(raw, sql.as_ptr(), ptr::null_mut(), 0, ptr::null_mut());
        let plans = PgList::<pg_sys::PlannedStmt>::from_pg(pg_sys::pg_plan_queries(
            queries,
            sql.as_ptr(),
            pg_sys::CURSOR_OPT_PARALLEL_OK as i32,
            ptr::null_mut(),
        ));
        for stmt in plans.iter_ptr() {
            let dest = pg_sys::CreateDestReceiver(pg_sys::CommandDest::DestNone);
            let mut done: pg_sys::QueryCompletion = std::mem::zeroed();
            pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            pg_sys::ProcessUtility(
                stmt,
                sql.as_ptr(),
                false,
                pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL,
                ptr::null_mut(),
                ptr::null_mut(),
                dest,
                &mut done,
            );
            // A concurrent build pops the snapshot and commits; anything else leaves it pushed.
            if pg_sys::ActiveSnapshotSet() {
                pg_sys::PopActiveSnapshot();
            }
            // The commits inside switched to the new transaction's context.
            pg_sys::MemoryContextSwitchTo(trees);
        }
    }
}
