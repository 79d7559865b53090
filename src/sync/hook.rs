//! Commands that need a database to themselves (DROP DATABASE, CREATE DATABASE ... TEMPLATE,
//! ALTER DATABASE ... RENAME TO or SET TABLESPACE) wait for nobody but the sessions connected
//! there: before they run, this hook sends that database's sync worker away and keeps another
//! from starting until they end (`shared::evict`). Installed in every process when the library
//! is preloaded.

use std::ffi::{c_char, CStr};

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;

use super::shared;

static mut PREVIOUS: pg_sys::ProcessUtility_hook_type = None;

pub fn install() {
    // SAFETY: hooks are set in _PG_init while the postmaster loads the library, chained.
    unsafe {
        PREVIOUS = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

/// The database `stmt` needs to itself, and whether the command drops it.
unsafe fn exclusive_database(stmt: *mut pg_sys::Node) -> Option<(String, bool)> {
    let text = |p: *const c_char| (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
    let option = |options: *mut pg_sys::List, name: &str| {
        unsafe { PgList::<pg_sys::DefElem>::from_pg(options) }.iter_ptr().find_map(|d| unsafe {
            (CStr::from_ptr((*d).defname).to_bytes() == name.as_bytes() && !(*d).arg.is_null())
                .then(|| text(pg_sys::defGetString(d)))
                .flatten()
        })
    };
    // SAFETY: the node tags are checked before each cast.
    unsafe {
        if pgrx::is_a(stmt, pg_sys::NodeTag::T_DropdbStmt) {
            return text((*stmt.cast::<pg_sys::DropdbStmt>()).dbname).map(|d| (d, true));
        }
        if pgrx::is_a(stmt, pg_sys::NodeTag::T_RenameStmt) {
            let rename = &*stmt.cast::<pg_sys::RenameStmt>();
            if rename.renameType == pg_sys::ObjectType::OBJECT_DATABASE {
                return text(rename.subname).map(|d| (d, false));
            }
        }
        if pgrx::is_a(stmt, pg_sys::NodeTag::T_CreatedbStmt) {
            return option((*stmt.cast::<pg_sys::CreatedbStmt>()).options, "template").map(|d| (d, false));
        }
        if pgrx::is_a(stmt, pg_sys::NodeTag::T_AlterDatabaseStmt) {
            let alter = &*stmt.cast::<pg_sys::AlterDatabaseStmt>();
            if option(alter.options, "tablespace").is_some() {
                return text(alter.dbname).map(|d| (d, false));
            }
        }
    }
    None
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: the arguments are the executor's, passed on unchanged.
    unsafe {
        let held = exclusive_database((*pstmt).utilityStmt).and_then(|(name, dropped)| {
            let name = std::ffi::CString::new(name).ok()?;
            let db = pg_sys::get_database_oid(name.as_ptr(), true).to_u32();
            (db != 0).then(|| {
                shared::evict(db);
                (db, dropped)
            })
        });
        match PREVIOUS {
            Some(previous) => previous(pstmt, query, read_only_tree, context, params, env, dest, qc),
            None => pg_sys::standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc),
        }
        // On an ERROR the hold lapses by itself (shared::HOLD_MICROS).
        if let Some((db, dropped)) = held {
            shared::release(db, dropped);
        }
    }
}
