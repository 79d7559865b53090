//! The cache file: a 4 KiB header, the tensors' arrays (each 64-byte aligned) and a JSON table
//! of them. The header carries the key the file was packed for, its length, a checksum of the
//! header and the table, and a hash of 64 bytes of every MiB of the arrays; all are checked on
//! every map. Files are written under a temporary name, flushed, then renamed into place.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::buf::Region;

const MAGIC: &[u8; 8] = b"QW3PACK\0";
/// Version of this container format (the packed layouts have their own, `kernels::PACK_LAYOUT`).
const FORMAT: u32 = 1;
const HEADER: u64 = 4096;
const ALIGN: u64 = 64;
const SAMPLE_EVERY: u64 = 1 << 20;
const SAMPLE: usize = 64;

/// What a file must have been packed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// 32 hex digits naming the model's files and shape (`identity::of`).
    pub identity: String,
    pub layout: u32,
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
}

/// A validated, mapped cache file.
pub struct Mapped {
    pub map: Arc<Mmap>,
    pub table: Table,
}

impl Mapped {
    pub fn region(&self, (offset, bytes): (u64, u64)) -> Option<Region> {
        Region::new(self.map.clone(), usize::try_from(offset).ok()?, usize::try_from(bytes).ok()?)
    }
}

pub enum OpenError {
    Missing,
    /// Present but unusable: truncated, corrupted, or packed for something else.
    Invalid(String),
}

fn header_bytes(key: &Key, table_offset: u64, table_len: u64, file_len: u64, sample: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(96);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&FORMAT.to_le_bytes());
    h.extend_from_slice(&key.layout.to_le_bytes());
    let mut isa = [0u8; 16];
    let n = key.isa.len().min(16);
    isa[..n].copy_from_slice(&key.isa.as_bytes()[..n]);
    h.extend_from_slice(&isa);
    let mut id = [0u8; 32];
    let n = key.identity.len().min(32);
    id[..n].copy_from_slice(&key.identity.as_bytes()[..n]);
    h.extend_from_slice(&id);
    for v in [table_offset, table_len, file_len, sample] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h
}

fn checksum(header: &[u8], table: &[u8]) -> [u8; 32] {
    let mut s = Sha256::new();
    s.update(header);
    s.update(table);
    s.finalize().into()
}

/// A hash of `SAMPLE` bytes at every `SAMPLE_EVERY` of the arrays `[HEADER, end)`.
fn sample_hash(read: impl Fn(u64, &mut [u8]) -> io::Result<()>, end: u64) -> io::Result<u64> {
    let mut s = Sha256::new();
    let mut buf = [0u8; SAMPLE];
    let mut at = HEADER;
    while at < end {
        let n = (end - at).min(SAMPLE as u64) as usize;
        read(at, &mut buf[..n])?;
        s.update(&buf[..n]);
        at += SAMPLE_EVERY;
    }
    Ok(u64::from_le_bytes(s.finalize()[..8].try_into().expect("8 bytes")))
}

/// Writes a cache file under a temporary name in the destination's directory.
pub struct Writer {
    file: File,
    tmp: PathBuf,
    pos: u64,
    table: Table,
}

impl Writer {
    pub fn create(dest: &Path) -> io::Result<Writer> {
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("cache");
        let tmp = dest.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp)?;
        file.write_all(&[0u8; HEADER as usize])?;
        Ok(Writer { file, tmp, pos: HEADER, table: Table::default() })
    }

    pub fn add(&mut self, name: &str, kind: String, dims: Vec<usize>, parts: &[&[u8]]) -> io::Result<()> {
        let mut at = Vec::with_capacity(parts.len());
        for p in parts {
            let pad = self.pos.next_multiple_of(ALIGN) - self.pos;
            self.file.write_all(&[0u8; ALIGN as usize][..pad as usize])?;
            self.pos += pad;
            self.file.write_all(p)?;
            at.push((self.pos, p.len() as u64));
            self.pos += p.len() as u64;
        }
        self.table.tensors.push(Entry { name: name.to_string(), kind, dims, parts: at });
        Ok(())
    }

    /// Writes the table and the header, flushes, and renames the file to `dest`.
    pub fn finish(mut self, key: &Key, type_counts: BTreeMap<String, usize>, dest: &Path) -> io::Result<()> {
        self.table.type_counts = type_counts;
        let table = serde_json::to_vec(&self.table).map_err(io::Error::other)?;
        let table_offset = self.pos;
        self.file.write_all(&table)?;
        let file_len = table_offset + table.len() as u64;
        self.file.flush()?;
        let sample = sample_hash(|at, b| self.file.read_exact_at(b, at), table_offset)?;
        let header = header_bytes(key, table_offset, table.len() as u64, file_len, sample);
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&header)?;
        self.file.write_all(&checksum(&header, &table))?;
        self.file.sync_all()?;
        std::fs::rename(&self.tmp, dest)?;
        if let Some(dir) = dest.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Removes the temporary file of a write that did not finish.
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Maps `path` read-only and shared, and checks it against `key`.
pub fn open(path: &Path, key: &Key) -> Result<Mapped, OpenError> {
    let file = match File::open(path) {
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
    if &h[..8] != MAGIC {
        return Err(invalid("not a qwen3_embed packed-weight file (bad magic)".into()));
    }
    let format = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    let layout = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes"));
    if format != FORMAT || layout != key.layout {
        return Err(invalid(format!(
            "written by another version (format {format}, layout {layout}; this build reads format {FORMAT}, layout {})",
            key.layout
        )));
    }
    let isa = String::from_utf8_lossy(&h[16..32]).trim_end_matches('\0').to_string();
    if isa != key.isa {
        return Err(invalid(format!("packed for the instruction set {isa}, not {}", key.isa)));
    }
    let identity = String::from_utf8_lossy(&h[32..64]).trim_end_matches('\0').to_string();
    if identity != key.identity {
        return Err(invalid(format!("packed from other model files ({identity}, not {})", key.identity)));
    }
    let (table_offset, table_len, file_len, sample) = (u64_at(64), u64_at(72), u64_at(80), u64_at(88));
    if file_len != len {
        return Err(invalid(format!("truncated or extended: {len} bytes, its header says {file_len}")));
    }
    if table_offset < HEADER || table_offset.checked_add(table_len) != Some(len) {
        return Err(invalid("corrupted: its table lies outside the file".into()));
    }
    let table_bytes = &map[table_offset as usize..len as usize];
    if checksum(&h[..96], table_bytes)[..] != h[96..128] {
        return Err(invalid("corrupted: the checksum of its header and table does not match".into()));
    }
    let table: Table =
        serde_json::from_slice(table_bytes).map_err(|e| invalid(format!("corrupted: unreadable table: {e}")))?;
    let read = |at: u64, b: &mut [u8]| {
        b.copy_from_slice(&map[at as usize..at as usize + b.len()]);
        Ok(())
    };
    if sample_hash(read, table_offset).map_err(|e| invalid(e.to_string()))? != sample {
        return Err(invalid("corrupted: its weights do not match the hash taken when it was written".into()));
    }
    for e in &table.tensors {
        if e.parts.iter().any(|&(o, b)| o < HEADER || o.checked_add(b).is_none_or(|end| end > table_offset)) {
            return Err(invalid(format!("corrupted: tensor {} lies outside the weights", e.name)));
        }
    }
    Ok(Mapped { map: Arc::new(map), table })
}
