//! Weight storage that is either this process's own memory or a region of a file mapped
//! read-only and shared (the packed-weight cache): the kernels see a slice either way.

use std::fs::File;
use std::ops::Deref;
use std::sync::Arc;

use memmap2::Mmap;

/// Element types whose every bit pattern is a valid value, stored little-endian.
///
/// # Safety
/// Implement only for types with no padding, no invalid bit patterns and no drop glue.
pub unsafe trait Plain: Copy + Send + Sync + 'static {}
// SAFETY: primitive integers and floats.
unsafe impl Plain for u8 {}
// SAFETY: as above.
unsafe impl Plain for i8 {}
// SAFETY: as above.
unsafe impl Plain for u16 {}
// SAFETY: as above.
unsafe impl Plain for i16 {}
// SAFETY: as above.
unsafe impl Plain for u32 {}
// SAFETY: as above.
unsafe impl Plain for i32 {}
// SAFETY: as above.
unsafe impl Plain for f32 {}

/// A byte range of a shared read-only mapping.
#[derive(Clone)]
pub struct Region {
    map: Arc<Mmap>,
    offset: usize,
    bytes: usize,
    /// The mapped file, kept open while the region lives (its lock marks the file in use).
    _held: Option<Arc<File>>,
}

impl Region {
    /// `None` when the range is outside the mapping.
    pub fn new(map: Arc<Mmap>, offset: usize, bytes: usize) -> Option<Region> {
        (offset.checked_add(bytes)? <= map.len()).then_some(Region { map, offset, bytes, _held: None })
    }

    /// The region, keeping `file` open for as long as it or a copy of it lives.
    pub fn holding(self, file: Arc<File>) -> Region {
        Region { _held: Some(file), ..self }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map[self.offset..self.offset + self.bytes]
    }

    /// The region as `T`s; `None` when its start or size does not fit `T`.
    pub fn typed<T: Plain>(&self) -> Option<Buf<T>> {
        let size = size_of::<T>();
        let start = self.bytes().as_ptr();
        if !self.bytes.is_multiple_of(size) || !(start as usize).is_multiple_of(align_of::<T>()) {
            return None;
        }
        Some(Buf(Store::Mapped { region: self.clone(), len: self.bytes / size }))
    }
}

enum Store<T: Plain> {
    Owned(Vec<T>),
    Mapped { region: Region, len: usize },
}

/// `T`s owned by this process or read from a shared mapping.
pub struct Buf<T: Plain>(Store<T>);

impl<T: Plain> Buf<T> {
    #[cfg(test)]
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Store::Mapped { .. })
    }

    /// The values as this process's own vector (a copy when mapped).
    pub fn into_vec(self) -> Vec<T> {
        match self.0 {
            Store::Owned(v) => v,
            mapped => Buf(mapped).to_vec(),
        }
    }

    /// The values' bytes, as they are written to a cache file.
    pub fn as_bytes(&self) -> &[u8] {
        let s: &[T] = self;
        // SAFETY: `T: Plain` has no padding; the byte view covers exactly the slice.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
    }
}

impl<T: Plain> From<Vec<T>> for Buf<T> {
    fn from(v: Vec<T>) -> Self {
        Buf(Store::Owned(v))
    }
}

impl<T: Plain> Default for Buf<T> {
    fn default() -> Self {
        Buf(Store::Owned(Vec::new()))
    }
}

impl<T: Plain> Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.0 {
            Store::Owned(v) => v,
            // SAFETY: `Region::typed` checked the alignment and that `len` values fit in the
            // region, which lies inside the mapping the `Arc` keeps alive; the mapping is
            // read-only and every bit pattern of `T` is valid.
            Store::Mapped { region, len } => unsafe {
                std::slice::from_raw_parts(region.bytes().as_ptr().cast::<T>(), *len)
            },
        }
    }
}
