//! pgvector `vector` values built from Rust floats.
//! Layout (pgvector's `Vector`): varlena header, int16 dim, int16 unused, float4 x[dim].

use pgrx::pg_sys;
use pgrx::prelude::*;

/// An owned embedding that Postgres receives as a pgvector `vector`.
pub struct Vector(pub Vec<f32>);

impl_sql_translatable!(Vector, "vector");

const HEADER: usize = 8;

impl IntoDatum for Vector {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        let dims = self.0.len();
        let size = HEADER + 4 * dims;
        // SAFETY: palloc0 returns `size` zeroed bytes in the current memory context, which we
        // fill within bounds; Postgres frees them with the context.
        unsafe {
            let ptr = pg_sys::palloc0(size) as *mut u8;
            pgrx::set_varsize_4b(ptr as *mut pg_sys::varlena, size as i32);
            (ptr.add(4) as *mut i16).write_unaligned(dims as i16);
            std::ptr::copy_nonoverlapping(self.0.as_ptr() as *const u8, ptr.add(HEADER), 4 * dims);
            Some(pg_sys::Datum::from(ptr))
        }
    }

    fn type_oid() -> pg_sys::Oid {
        vector_type_oid()
    }
}

// SAFETY: the datum handed to Postgres is the palloc'd varlena built by `into_datum`.
unsafe impl pgrx::callconv::BoxRet for Vector {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut pgrx::callconv::FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        match self.into_datum() {
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}

/// The oid of pgvector's `vector` type, resolved through the search path (a syscache lookup).
fn vector_type_oid() -> pg_sys::Oid {
    pgrx::regtypein("vector")
}
