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

/// What the command needs of its caller on the database it takes, as PostgreSQL checks it
/// later: the hook evicts a worker only for a caller who may run the command.
#[derive(Clone, Copy)]
enum Needs {
    /// DROP DATABASE, ALTER DATABASE ... SET TABLESPACE.
    Owner,
    /// ALTER DATABASE ... RENAME TO.
    OwnerAndCreatedb,
    /// CREATE DATABASE ... TEMPLATE: CREATEDB, and the template marked as one or owned.
    Createdb,
}

fn owns(db: pg_sys::Oid) -> bool {
    // SAFETY: catalog checks of the current role, inside the command's transaction.
    unsafe {
        let role = pg_sys::GetUserId();
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
        {
            pg_sys::pg_database_ownercheck(db, role)
        }
        #[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
        {
            pg_sys::object_ownercheck(pg_sys::DatabaseRelationId, db, role)
        }
    }
}

fn may_create_databases() -> bool {
    // SAFETY: a syscache lookup of the current role, released before returning.
    unsafe {
        if pg_sys::superuser() {
            return true;
        }
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::AUTHOID as i32, pg_sys::GetUserId().into());
        if tuple.is_null() {
            return false;
        }
        let createdb = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_authid>(tuple)).rolcreatedb;
        pg_sys::ReleaseSysCache(tuple);
        createdb
    }
}

fn is_template(db: pg_sys::Oid) -> bool {
    // SAFETY: as above, for the database's row.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::DATABASEOID as i32, db.into());
        if tuple.is_null() {
            return false;
        }
        let template = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tuple)).datistemplate;
        pg_sys::ReleaseSysCache(tuple);
        template
    }
}

fn allowed(db: pg_sys::Oid, needs: Needs) -> bool {
    match needs {
        Needs::Owner => owns(db),
        Needs::OwnerAndCreatedb => owns(db) && may_create_databases(),
        Needs::Createdb => may_create_databases() && (is_template(db) || owns(db)),
    }
}

/// The database `stmt` needs to itself, whether the command drops it, and what it needs of
/// its caller.
unsafe fn exclusive_database(stmt: *mut pg_sys::Node) -> Option<(String, bool, Needs)> {
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
            return text((*stmt.cast::<pg_sys::DropdbStmt>()).dbname).map(|d| (d, true, Needs::Owner));
        }
        if pgrx::is_a(stmt, pg_sys::NodeTag::T_RenameStmt) {
            let rename = &*stmt.cast::<pg_sys::RenameStmt>();
            if rename.renameType == pg_sys::ObjectType::OBJECT_DATABASE {
                return text(rename.subname).map(|d| (d, false, Needs::OwnerAndCreatedb));
            }
        }
        if pgrx::is_a(stmt, pg_sys::NodeTag::T_CreatedbStmt) {
            return option((*stmt.cast::<pg_sys::CreatedbStmt>()).options, "template")
                .map(|d| (d, false, Needs::Createdb));
        }
        if pgrx::is_a(stmt, pg_sys::NodeTag::T_AlterDatabaseStmt) {
            let alter = &*stmt.cast::<pg_sys::AlterDatabaseStmt>();
            if option(alter.options, "tablespace").is_some() {
                return text(alter.dbname).map(|d| (d, false, Needs::Owner));
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
        // A caller the command will refuse sends nobody away: PostgreSQL's own check comes later.
        let held = exclusive_database((*pstmt).utilityStmt).and_then(|(name, dropped, needs)| {
            let name = std::ffi::CString::new(name).ok()?;
            let oid = pg_sys::get_database_oid(name.as_ptr(), true);
            let db = oid.to_u32();
            (db != 0 && allowed(oid, needs)).then(|| {
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
