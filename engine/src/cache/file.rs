//! The cache file: a 4 KiB header, the tensors' arrays (each 64-byte aligned) and a JSON table
//! of them. The header carries the key the file was packed for, its length and a checksum of
//! the header and the table; the table carries a hash of every `CHUNK` of the arrays, taken
//! from the bytes as they were written. All of it is checked on every map, every byte of the
//! arrays included, before a weight is read. Files are written under a temporary name,
//! flushed, then renamed into place.
//!
//! A process that maps a file holds a shared `flock` on it for as long as the mapping lives;
//! eviction takes an exclusive one without waiting, so it never removes a file in use.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

use crate::buf::Region;
use crate::kernels::CODE_MAX;

const MAGIC: &[u8; 8] = b"QW3PACK\0";
/// Version of this container format (the packed layouts have their own, `kernels::PACK_LAYOUT`).
/// 2: the kernel table's code instead of its display name, and a hash of every byte.
pub const FORMAT: u32 = 2;
pub const HEADER: u64 = 4096;
/// The header fields that the checksum covers, and where the checksum ends.
const FIELDS: usize = 96;
const HEADER_USED: usize = FIELDS + 32;
const ALIGN: u64 = 64;
/// Bytes of the arrays under one hash: the unit of parallel verification.
pub const CHUNK: u64 = 64 << 20;

/// What a file must have been packed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// 32 hex digits naming the model's files and shape (`identity::of`).
    pub identity: String,
    pub layout: u32,
    /// The kernel table's code (`Kernels::code`).
    pub isa: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub kind: String,
    pub dims: Vec<usize>,
    /// `(offset, bytes)` of each array.
    pub parts: Vec<(u64, u64)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Table {
    pub tensors: Vec<Entry>,
    pub type_counts: BTreeMap<String, usize>,
    /// XXH3-128 of each `CHUNK` of `[HEADER, table offset)`, the last one shorter.
    pub chunks: Vec<u128>,
}

/// A validated, mapped cache file.
pub struct Mapped {
    pub map: Arc<Mmap>,
    /// The open file, which holds the shared lock; every region keeps it.
    pub file: Arc<File>,
    pub table: Table,
}

impl Mapped {
    pub fn region(&self, (offset, bytes): (u64, u64)) -> Option<Region> {
        Some(
            Region::new(self.map.clone(), usize::try_from(offset).ok()?, usize::try_from(bytes).ok()?)?
                .holding(self.file.clone()),
        )
    }
}

pub enum OpenError {
    Missing,
    /// Present but unusable: truncated, corrupted, or packed for something else.
    Invalid(String),
}

/// The header's fields as read back, for listing files without mapping them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub format: u32,
    pub layout: u32,
    pub isa: String,
    pub identity: String,
}

fn header_bytes(key: &Key, table_offset: u64, table_len: u64, file_len: u64, chunk: u64) -> io::Result<Vec<u8>> {
    let field = |s: &str, len: usize, what: &str| {
        if s.len() > len {
            return Err(io::Error::other(format!("the {what} {s:?} is longer than the header's {len} bytes")));
        }
        let mut b = vec![0u8; len];
        b[..s.len()].copy_from_slice(s.as_bytes());
        Ok(b)
    };
    let mut h = Vec::with_capacity(FIELDS);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&FORMAT.to_le_bytes());
    h.extend_from_slice(&key.layout.to_le_bytes());
    h.extend_from_slice(&field(&key.isa, CODE_MAX, "kernel table code")?);
    h.extend_from_slice(&field(&key.identity, 32, "model identity")?);
    for v in [table_offset, table_len, file_len, chunk] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    Ok(h)
}

fn parse_header(h: &[u8]) -> Option<Header> {
    if h.len() < FIELDS || &h[..8] != MAGIC {
        return None;
    }
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
    let text = |r: std::ops::Range<usize>| String::from_utf8_lossy(&h[r]).trim_end_matches('\0').to_string();
    Some(Header { format: u32_at(8), layout: u32_at(12), isa: text(16..32), identity: text(32..64) })
}

fn checksum(header: &[u8], table: &[u8]) -> [u8; 32] {
    let mut s = Sha256::new();
    s.update(header);
    s.update(table);
    s.finalize().into()
}

/// Hashes a stream of bytes in `CHUNK`s, as it is written.
#[derive(Default)]
struct Chunker {
    hasher: Xxh3,
    filled: u64,
    done: Vec<u128>,
}

impl Chunker {
    fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = (CHUNK - self.filled).min(bytes.len() as u64) as usize;
            self.hasher.update(&bytes[..n]);
            self.filled += n as u64;
            bytes = &bytes[n..];
            if self.filled == CHUNK {
                self.done.push(self.hasher.digest128());
                self.hasher.reset();
                self.filled = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<u128> {
        if self.filled > 0 {
            self.done.push(self.hasher.digest128());
        }
        self.done
    }
}

/// The first chunk of `weights` whose hash is not the one in `chunks`, or a count that does
/// not fit; chunks are hashed in parallel on the current rayon pool.
pub fn verify(weights: &[u8], chunks: &[u128]) -> Result<(), String> {
    let expected = (weights.len() as u64).div_ceil(CHUNK) as usize;
    if chunks.len() != expected {
        return Err(format!(
            "corrupted: its table has {} chunk hashes for {} bytes of weights",
            chunks.len(),
            weights.len()
        ));
    }
    let bad = weights.par_chunks(CHUNK as usize).zip(chunks).enumerate().filter(|(_, (c, &h))| xxh3_128(c) != h);
    match bad.map(|(i, _)| i).min() {
        None => Ok(()),
        Some(i) => {
            let start = HEADER + i as u64 * CHUNK;
            let end = (start + CHUNK).min(HEADER + weights.len() as u64);
            Err(format!("corrupted: bytes {start}..{end} do not match the hash taken when it was written"))
        }
    }
}

/// Writes a cache file under a temporary name in the destination's directory.
pub struct Writer {
    file: File,
    tmp: PathBuf,
    pos: u64,
    hash: Chunker,
    table: Table,
}

/// The temporary name a process writes `dest` under; [`is_partial`] recognizes it.
fn tmp_name(dest: &Path) -> PathBuf {
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("cache");
    dest.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// The cache file name whose temporary file `name` is, if it is one.
pub fn partial_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (dest, pid) = rest.rsplit_once('.')?;
    (pid.bytes().all(|b| b.is_ascii_digit()) && dest.ends_with(super::SUFFIX)).then_some(dest)
}

impl Writer {
    pub fn create(dest: &Path) -> io::Result<Writer> {
        let tmp = tmp_name(dest);
        let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp)?;
        file.write_all(&[0u8; HEADER as usize])?;
        Ok(Writer { file, tmp, pos: HEADER, hash: Chunker::default(), table: Table::default() })
    }

    /// The temporary file being written.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Bytes `add` will write for arrays of these sizes, padding included.
    pub fn bytes_for(&self, sizes: impl IntoIterator<Item = usize>) -> u64 {
        sizes.into_iter().fold(self.pos, |at, n| at.next_multiple_of(ALIGN) + n as u64) - self.pos
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.hash.update(bytes);
        self.pos += bytes.len() as u64;
        Ok(())
    }

    pub fn add(&mut self, name: &str, kind: String, dims: Vec<usize>, parts: &[&[u8]]) -> io::Result<()> {
        let mut at = Vec::with_capacity(parts.len());
        for p in parts {
            let pad = self.pos.next_multiple_of(ALIGN) - self.pos;
            self.put(&[0u8; ALIGN as usize][..pad as usize])?;
            at.push((self.pos, p.len() as u64));
            self.put(p)?;
        }
        self.table.tensors.push(Entry { name: name.to_string(), kind, dims, parts: at });
        Ok(())
    }

    /// Writes the table and the header, flushes, and renames the file to `dest`. `room` is
    /// asked for the table's bytes before they are written.
    pub fn finish(
        mut self,
        key: &Key,
        type_counts: BTreeMap<String, usize>,
        dest: &Path,
        room: impl FnOnce(u64) -> Result<(), String>,
    ) -> Result<(), String> {
        self.table.type_counts = type_counts;
        self.table.chunks = std::mem::take(&mut self.hash).finish();
        let table = serde_json::to_vec(&self.table).map_err(|e| e.to_string())?;
        room(table.len() as u64)?;
        let table_offset = self.pos;
        let write = |w: &mut Writer| -> io::Result<()> {
            w.file.write_all(&table)?;
            let file_len = table_offset + table.len() as u64;
            let header = header_bytes(key, table_offset, table.len() as u64, file_len, CHUNK)?;
            w.file.seek(SeekFrom::Start(0))?;
            w.file.write_all(&header)?;
            w.file.write_all(&checksum(&header, &table))?;
            w.file.sync_all()?;
            std::fs::rename(&w.tmp, dest)?;
            if let Some(dir) = dest.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write(&mut self).map_err(|e| e.to_string())
    }

    /// Removes the temporary file of a write that did not finish.
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Opens `path` with the shared lock that marks it in use, making sure the lock is on the
/// file the path names now (an eviction may have removed the one opened).
fn open_locked(path: &Path) -> io::Result<File> {
    loop {
        let file = File::open(path)?;
        file.lock_shared()?;
        let (held, now) = (file.metadata()?, std::fs::metadata(path)?);
        if (held.dev(), held.ino()) == (now.dev(), now.ino()) {
            return Ok(file);
        }
    }
}

/// Records a use of the file as its access time, the order eviction goes by (set explicitly:
/// `relatime` and `noatime` mounts would not).
pub fn touch(file: &File) {
    let times = [
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
    ];
    // SAFETY: `file` is open and `times` is two valid timespecs. Failure (a file of another
    // owner) only leaves the time as it was.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::futimens(file.as_raw_fd(), times.as_ptr());
    }
}

/// Maps `path` read-only and shared, checks it against `key` and every byte of its weights,
/// and holds its shared lock.
pub fn open(path: &Path, key: &Key) -> Result<Mapped, OpenError> {
    let file = match open_locked(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory => {
            return Err(OpenError::Missing)
        }
        Err(e) => return Err(OpenError::Invalid(format!("cannot open it: {e}"))),
    };
    let invalid = |s: String| OpenError::Invalid(s);
    let len = file.metadata().map_err(|e| invalid(format!("cannot stat it: {e}")))?.len();
    if len < HEADER {
        return Err(invalid(format!("truncated: {len} bytes, shorter than its header")));
    }
    // SAFETY: the file is only ever replaced by rename, never written in place, so the mapped
    // pages do not change under us; a file truncated by someone else would fault, which is
    // why the cache directory belongs to the server's OS user alone.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| invalid(format!("cannot map it: {e}")))?;
    let h = &map[..HEADER as usize];
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
    let Some(found) = parse_header(h) else {
        return Err(invalid("not a qwen3_embed packed-weight file (bad magic)".into()));
    };
    if found.format != FORMAT || found.layout != key.layout {
        return Err(invalid(format!(
            "written by another version (format {}, layout {}; this build reads format {FORMAT}, layout {})",
            found.format, found.layout, key.layout
        )));
    }
    if found.isa != key.isa {
        return Err(invalid(format!("packed for the instruction set {}, not {}", found.isa, key.isa)));
    }
    if found.identity != key.identity {
        return Err(invalid(format!("packed from other model files ({}, not {})", found.identity, key.identity)));
    }
    let (table_offset, table_len, file_len, chunk) = (u64_at(64), u64_at(72), u64_at(80), u64_at(88));
    if file_len != len {
        return Err(invalid(format!("truncated or extended: {len} bytes, its header says {file_len}")));
    }
    if table_offset < HEADER || table_offset.checked_add(table_len) != Some(len) {
        return Err(invalid("corrupted: its table lies outside the file".into()));
    }
    let table_bytes = &map[table_offset as usize..len as usize];
    if checksum(&h[..FIELDS], table_bytes)[..] != h[FIELDS..HEADER_USED] {
        return Err(invalid("corrupted: the checksum of its header and table does not match".into()));
    }
    if chunk != CHUNK {
        return Err(invalid(format!("corrupted: hashed in chunks of {chunk} bytes, not {CHUNK}")));
    }
    let table: Table =
        serde_json::from_slice(table_bytes).map_err(|e| invalid(format!("corrupted: unreadable table: {e}")))?;
    verify(&map[HEADER as usize..table_offset as usize], &table.chunks).map_err(invalid)?;
    for e in &table.tensors {
        if e.parts.iter().any(|&(o, b)| o < HEADER || o.checked_add(b).is_none_or(|end| end > table_offset)) {
            return Err(invalid(format!("corrupted: tensor {} lies outside the weights", e.name)));
        }
    }
    Ok(Mapped { map: Arc::new(map), file: Arc::new(file), table })
}

/// The header of a cache file, read without taking a lock or changing its access time;
/// `None` when it has none.
pub fn read_header(path: &Path) -> Option<Header> {
    let open = |flags| std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path);
    // O_NOATIME is refused on a file of another owner.
    let mut file = open(libc::O_NOATIME).or_else(|_| open(0)).ok()?;
    let mut h = [0u8; FIELDS];
    file.read_exact(&mut h).ok()?;
    parse_header(&h)
}

/// Checks every byte of the cache file at `path` against the hashes taken when it was written,
/// whatever key it has (its access time, the last use, stays as it was).
pub fn check(path: &Path) -> Result<Header, String> {
    File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let header = read_header(path).ok_or("not a qwen3_embed packed-weight file (bad magic)")?;
    if header.format != FORMAT {
        return Err(format!("written by another version (format {}; this build reads {FORMAT})", header.format));
    }
    let key = Key { identity: header.identity.clone(), layout: header.layout, isa: header.isa.clone() };
    match open(path, &key) {
        Ok(_) => Ok(header),
        Err(OpenError::Missing) => Err("it is gone".into()),
        Err(OpenError::Invalid(why)) => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, key: &Key, arrays: &[&[u8]]) -> PathBuf {
        let dest = dir.join("m-0123456789abcdef-p2-x.qwen3pack");
        let mut w = Writer::create(&dest).unwrap();
        for (i, a) in arrays.iter().enumerate() {
            w.add(&format!("t{i}"), "q:Q8_0".into(), vec![a.len()], &[a]).unwrap();
        }
        w.finish(key, BTreeMap::new(), &dest, |_| Ok(())).unwrap();
        dest
    }

    /// Every kernel table's code fits the header and reads back, the CPU's or not (the AVX-512
    /// table without BF16 had a 21-byte display name, which never matched after a write).
    #[test]
    fn every_table_code_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        for code in crate::kernels::codes() {
            let key = Key { identity: "0123456789abcdef0123456789abcdef".into(), layout: 7, isa: code.into() };
            let path = write(dir.path(), &key, &[&[1u8; 100]]);
            assert!(open(&path, &key).is_ok(), "{code}");
            assert_eq!(read_header(&path).unwrap().isa, code);
        }
        let long = Key { identity: "0".repeat(32), layout: 7, isa: "avx512 (bf16 on avx2)".into() };
        let dest = dir.path().join("long.qwen3pack");
        let w = Writer::create(&dest).unwrap();
        let e = w.finish(&long, BTreeMap::new(), &dest, |_| Ok(())).unwrap_err();
        assert!(e.contains("longer than the header"), "{e}");
    }

    /// Chunks split where `CHUNK` says, however the writes fall.
    #[test]
    fn chunk_hashes_do_not_depend_on_how_the_bytes_were_written() {
        let bytes: Vec<u8> = (0..(CHUNK as usize * 2 + 1000)).map(|i| (i * 31 % 251) as u8).collect();
        let mut a = Chunker::default();
        a.update(&bytes);
        let mut b = Chunker::default();
        for piece in bytes.chunks(7_777_777) {
            b.update(piece);
        }
        let (a, b) = (a.finish(), b.finish());
        assert_eq!(a.len(), 3);
        assert_eq!(a, b);
        assert!(verify(&bytes, &a).is_ok());
        let mut spoiled = bytes.clone();
        spoiled[CHUNK as usize + 5] ^= 1;
        let e = verify(&spoiled, &a).unwrap_err();
        assert!(e.contains(&format!("bytes {}..{}", HEADER + CHUNK, HEADER + 2 * CHUNK)), "{e}");
        assert!(verify(&bytes[..100], &a).is_err());
    }

    #[test]
    fn partial_names_are_recognized() {
        let dest = Path::new("/c/model-0123456789abcdef-p2-avx2.qwen3pack");
        let tmp = tmp_name(dest);
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert_eq!(partial_of(name), Some("model-0123456789abcdef-p2-avx2.qwen3pack"));
        assert_eq!(partial_of("model.qwen3pack"), None);
        assert_eq!(partial_of(".model.qwen3pack.12x.tmp"), None);
    }
}
