//! SQL `text` in the database's encoding, as UTF-8 for the engine (and back for what returns
//! text). pgrx's `&str` and `String` assume UTF-8: in a LATIN1 database they fail, and inside
//! arrays they hand out invalid `&str`s. Every SQL function that reads user text takes a
//! `DbText`, which converts with PostgreSQL's own conversion (`pg_server_to_any`).
//!
//! Encodings: every server encoding converts (all of them are ASCII supersets, so ASCII text
//! never needs a conversion); SQL_ASCII declares none, so a byte above 0x7F there is refused
//! (22021) instead of being guessed at.

use std::ffi::{c_char, CStr};

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::{Datum, UnboxDatum};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;

use crate::errors::raise_with;

/// Text read from (or written to) SQL, held as UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbText(pub String);

impl_sql_translatable!(DbText, "text");

impl DbText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn database_encoding() -> u32 {
    // SAFETY: reads the backend's encoding, set once at connection.
    unsafe { pg_sys::GetDatabaseEncoding() as u32 }
}

fn not_utf8(detail: &str) -> ! {
    raise_with(
        Code::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
        format!("qwen3_embed: {detail}"),
        "Store text in a database whose encoding says what its bytes mean (UTF8, LATIN1, WIN1252, EUC_JP, ...): \
         CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0.",
    )
}

/// `bytes`, text in the database's encoding, as UTF-8.
pub fn to_utf8(bytes: &[u8]) -> String {
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        return unsafe { String::from_utf8_unchecked(bytes.to_vec()) };
    }
    let encoding = database_encoding();
    if encoding == pg_sys::pg_enc::PG_UTF8 {
        return String::from_utf8(bytes.to_vec())
            .unwrap_or_else(|_| not_utf8("text in this UTF8 database is not valid UTF-8"));
    }
    if encoding == pg_sys::pg_enc::PG_SQL_ASCII {
        not_utf8("the database's encoding is SQL_ASCII, which does not say what bytes above 0x7F mean")
    }
    let len = i32::try_from(bytes.len()).unwrap_or_else(|_| not_utf8("text over 2 GB"));
    // SAFETY: converts `len` bytes (no terminator needed); returns either the input pointer (no
    // conversion) or a palloc'd NUL-terminated string, or raises an ERROR for a bad byte.
    unsafe {
        let input = bytes.as_ptr().cast::<c_char>();
        let out = pg_sys::pg_server_to_any(input, len, pg_sys::pg_enc::PG_UTF8 as i32);
        if std::ptr::eq(out, input) {
            return String::from_utf8(bytes.to_vec()).unwrap_or_else(|_| not_utf8("text is not valid UTF-8"));
        }
        let converted = CStr::from_ptr(out).to_bytes().to_vec();
        pg_sys::pfree(out.cast());
        String::from_utf8(converted).unwrap_or_else(|_| not_utf8("the conversion to UTF-8 gave invalid UTF-8"))
    }
}

/// `text` (UTF-8) as a `text` datum in the database's encoding, palloc'd in the current context.
pub fn to_datum(text: &str) -> pg_sys::Datum {
    let encoding = database_encoding();
    // SAFETY: `cstring_to_text_with_len` copies `len` bytes into a new varlena; the converted
    // string (when one was made) is NUL-terminated and freed after the copy.
    unsafe {
        let input = text.as_ptr().cast::<c_char>();
        let len = text.len() as i32;
        if text.is_ascii() || encoding == pg_sys::pg_enc::PG_UTF8 || encoding == pg_sys::pg_enc::PG_SQL_ASCII {
            return pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(input, len));
        }
        let out = pg_sys::pg_any_to_server(input, len, pg_sys::pg_enc::PG_UTF8 as i32);
        if std::ptr::eq(out, input) {
            return pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(input, len));
        }
        let datum = pg_sys::Datum::from(pg_sys::cstring_to_text(out));
        pg_sys::pfree(out.cast());
        datum
    }
}

impl FromDatum for DbText {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _typoid: pg_sys::Oid) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        // SAFETY: a non-null text datum; detoasting gives a readable varlena in this context.
        unsafe {
            let varlena = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
            Some(DbText(to_utf8(pgrx::varlena_to_byte_slice(varlena))))
        }
    }
}

// SAFETY: array elements are detoasted text varlenas; they are copied out, nothing is kept.
unsafe impl UnboxDatum for DbText {
    type As<'src> = DbText;
    unsafe fn unbox<'src>(datum: Datum<'src>) -> DbText
    where
        Self: 'src,
    {
        // SAFETY: see above.
        unsafe { DbText(to_utf8(pgrx::varlena_to_byte_slice(datum.sans_lifetime().cast_mut_ptr()))) }
    }
}

// SAFETY: the argument is a text datum (the SQL signature says so).
unsafe impl<'fcx> ArgAbi<'fcx> for DbText {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: as above.
        unsafe { arg.unbox_arg_using_from_datum() }.unwrap_or_else(|| panic!("argument {index} must not be null"))
    }
}

impl IntoDatum for DbText {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(to_datum(&self.0))
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::TEXTOID
    }
}

// SAFETY: the datum handed to Postgres is the palloc'd varlena `into_datum` built.
unsafe impl BoxRet for DbText {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        // SAFETY: as above.
        unsafe { fcinfo.return_raw_datum(to_datum(&self.0)) }
    }
}

/// `Option<DbText>` as an `Option<&str>`.
pub fn opt(t: &Option<DbText>) -> Option<&str> {
    t.as_ref().map(DbText::as_str)
}
