//! The one way the extension's state tables are written: `qwen3_embed_state(op, args)`.
//!
//! The state tables (the sync queue's, the column registry, the re-embedding jobs) are readable
//! by every role (under row security) and writable by none but the extension's owner. SQL
//! functions that change them call this gate, which notes the role calling it (the current
//! user: a table owner's role in the sync's security-restricted drain, the session's role
//! otherwise, the owner of a security-definer function inside one), becomes the extension's
//! owner and runs `qwen3_embed_state_<op>(caller, args)`. Those functions (`sql/columns.sql`,
//! `sql/reembed.sql`, `sql/sync.sql`) check the caller's rights on the table concerned before they change
//! anything; only the extension's owner may execute them. So the checks are PostgreSQL's own
//! privilege checks made for the right role, and no argument or stored value can make the
//! extension act for a role that could not act itself.

use pgrx::prelude::*;
use pgrx::JsonB;

use crate::errors::raise_code;

/// The operations `sql/columns.sql`, `sql/reembed.sql` and `sql/sync.sql` define; any other
/// name is refused.
const OPERATIONS: &[&str] = &[
    "column_register",
    "column_move",
    "job_begin",
    "job_lock",
    "job_progress",
    "job_end",
    "job_migrate",
    "job_swap",
    "job_forget",
    "sync_add",
    "sync_remove",
    "sync_retry",
    "sync_alter",
    "sync_refuse",
    "sync_failed",
    "sync_succeeded",
    "queue_add",
    "queue_claim",
    "queue_done",
    "queue_failed",
];

/// The extension's owner; raises unless the extension is installed in this database.
fn extension_owner() -> pg_sys::Oid {
    Spi::get_one::<pg_sys::Oid>(
        "SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'qwen3_embed'",
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        raise_code(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "qwen3_embed: the extension is not installed in this database".into(),
        )
    })
}

/// Runs `f` as `role` with the security context flags `extra` added, and restores the caller's
/// identity when `f` returns or unwinds. (An ERROR that aborts the (sub)transaction restores it
/// too: PostgreSQL resets the user at abort to what it was when the transaction began.)
pub fn run_as<R>(role: pg_sys::Oid, extra: u32, f: impl FnOnce() -> R) -> R {
    struct Restore(pg_sys::Oid, i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: puts back the identity read below, in the same backend.
            unsafe { pg_sys::SetUserIdAndSecContext(self.0, self.1) };
        }
    }
    let mut uid = pg_sys::InvalidOid;
    let mut ctx = 0;
    // SAFETY: reads and sets this backend's current user, as fmgr does for SECURITY DEFINER.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut uid, &mut ctx);
        pg_sys::SetUserIdAndSecContext(role, ctx | extra as i32);
    }
    let _restore = Restore(uid, ctx);
    f()
}

/// The gate. `op` names one of `OPERATIONS`; `args` is its argument object. Returns what the
/// operation returns.
#[pg_extern(volatile, parallel_unsafe, schema = "qwen3_embed")]
fn qwen3_embed_state(op: crate::text::DbText, args: JsonB) -> Option<JsonB> {
    let op = op.as_str();
    if !OPERATIONS.contains(&op) {
        raise_code(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("qwen3_embed_state: unknown operation {op:?}"),
        );
    }
    // SAFETY: reads this backend's current user.
    let caller = unsafe { pg_sys::GetUserId() };
    let owner = extension_owner();
    if matches!(op, "sync_add" | "sync_retry" | "sync_alter") {
        crate::sync::wake_at_commit();
    }
    run_as(owner, pg_sys::SECURITY_LOCAL_USERID_CHANGE, || {
        Spi::get_one_with_args::<JsonB>(
            &format!("SELECT qwen3_embed.qwen3_embed_state_{op}($1, $2)"),
            &[caller.into(), args.into()],
        )
        .unwrap_or_else(|e| raise_code(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("qwen3_embed_state({op}): {e}")))
    })
}
