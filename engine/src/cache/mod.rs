//! The packed-weight cache: the first process that loads a model writes its packed weights
//! once to a file; every later one maps that file read-only and shared, so the operating
//! system keeps one copy in its page cache for all of them and a load takes no repacking.
//!
//! A file is used only when it was packed from the same model files (`identity`), with the
//! same packed layout (`kernels::PACK_LAYOUT`) and for the same kernel table, and when every
//! byte of it is what was written (`file`). A missing or unusable file is (re)built under a
//! lock, so concurrent first loads pack once. A file is written only when it leaves the
//! filesystem a margin and the directory within its budget (`space`), evicting the least
//! recently used files no process maps (`dir`). When the cache cannot be written, the
//! weights are packed in this process's memory as without it.

pub mod dir;
mod file;
mod identity;
mod lock;
pub mod space;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::Tensor;

use crate::backend::cpu::weights::{self, Embedding, Linear, ModelWeights, Piece};
use crate::cancel::Cancel;
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::kernels::dense::{DenseKind, PackedDense};
use crate::kernels::qgemm::{PackedQ, QKind};
use crate::kernels::{self, PACK_LAYOUT};
use crate::tensors::{self, RawTensor};
use dir::CacheFile;
pub use file::check;
use file::{Key, Mapped, OpenError, Writer};
pub use space::Limits;
use space::Room;

/// The ending of a cache file's name.
pub(crate) const SUFFIX: &str = ".qwen3pack";

/// Where the cache lives when nothing says otherwise: `$XDG_CACHE_HOME/qwen3_embed`, else
/// `~/.cache/qwen3_embed` of the user running the process (`$HOME`, else the password
/// database's home). For a Debian PostgreSQL server that is /var/lib/postgresql/.cache/
/// qwen3_embed: outside the data directory, so base backups do not carry it.
pub fn default_dir() -> Option<PathBuf> {
    let non_empty = |v: &str| std::env::var_os(v).filter(|s| !s.is_empty()).map(PathBuf::from);
    let home = || non_empty("HOME").or_else(passwd_home);
    non_empty("XDG_CACHE_HOME").or_else(|| home().map(|h| h.join(".cache"))).map(|d| d.join("qwen3_embed"))
}

fn passwd_home() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 16384];
    // SAFETY: getpwuid_r writes into `pw` and `buf`, both ours and large enough; the result
    // points into them and is read before they go.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut out = std::ptr::null_mut();
        let rc = libc::getpwuid_r(libc::geteuid(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out);
        if rc != 0 || out.is_null() || pw.pw_dir.is_null() {
            return None;
        }
        let dir = std::ffi::CStr::from_ptr(pw.pw_dir).to_bytes();
        (!dir.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(dir)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    /// No cache directory was given.
    Off,
    /// An existing cache file is mapped.
    Mapped,
    /// This process packed the model and wrote the cache file it now maps.
    Built,
    /// The weights are packed in this process's memory: see the note for why.
    InMemory,
}

impl CacheState {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheState::Off => "off",
            CacheState::Mapped => "mapped",
            CacheState::Built => "built",
            CacheState::InMemory => "in memory",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CacheInfo {
    pub state: CacheState,
    /// The cache file in use, or the one that could not be used.
    pub path: Option<PathBuf>,
    /// Size of the cache file in use.
    pub bytes: u64,
    /// What went wrong on the way, for the log: a file that was unusable and rebuilt, or why
    /// the weights are in memory.
    pub note: Option<String>,
}

impl CacheInfo {
    fn new(state: CacheState, path: Option<PathBuf>, note: Option<String>) -> CacheInfo {
        let bytes = match state {
            CacheState::Mapped | CacheState::Built => {
                path.as_ref().and_then(|p| std::fs::metadata(p).ok()).map_or(0, |m| m.len())
            }
            _ => 0,
        };
        CacheInfo { state, path, bytes, note }
    }
}

fn join(a: Option<String>, b: String) -> Option<String> {
    Some(match a {
        Some(a) => format!("{a}; {b}"),
        None => b,
    })
}

fn join_opt(a: Option<String>, b: Option<String>) -> Option<String> {
    match b {
        Some(b) => join(a, b),
        None => a,
    }
}

/// Loads a model's weights for the CPU kernels through the cache in `dir` (`None`: in memory),
/// within `limits`.
pub(crate) fn load(
    dir: Option<&Path>,
    limits: Limits,
    cancel: &dyn Cancel,
    path: &Path,
    config: ModelConfig,
    fetch: &mut dyn FnMut(&str) -> Result<RawTensor>,
    counts: &mut BTreeMap<String, usize>,
) -> Result<(ModelWeights, CacheInfo)> {
    let in_memory =
        |state, file, note, fetch: &mut dyn FnMut(&str) -> Result<RawTensor>, counts: &mut BTreeMap<_, _>| {
            counts.clear();
            Ok((weights::assemble(path, config.clone(), fetch, counts)?, CacheInfo::new(state, file, note)))
        };
    let Some(dir) = dir else {
        return in_memory(CacheState::Off, None, None, fetch, counts);
    };
    let isa = kernels::active()?.code;
    let identity = match identity::of(path, &config) {
        Ok(id) => id,
        Err(e) => {
            let note = format!("cannot identify the model files for the packed-weight cache: {e}");
            return in_memory(CacheState::InMemory, None, Some(note), fetch, counts);
        }
    };
    let key = Key { identity, layout: PACK_LAYOUT, isa: isa.to_string() };
    let dest = dir.join(identity::file_name(path, &key.identity, PACK_LAYOUT, isa));
    let mut note = None;
    let try_map = |note: &mut Option<String>, counts: &mut BTreeMap<String, usize>| match file::open(&dest, &key) {
        Ok(m) => match weights_from(&m, &config) {
            Ok(w) => {
                *counts = m.table.type_counts.clone();
                file::touch(&m.file);
                Some(w)
            }
            Err(why) => {
                *note = join(note.take(), format!("{}: {why}", dest.display()));
                None
            }
        },
        Err(OpenError::Missing) => None,
        Err(OpenError::Invalid(why)) => {
            *note = join(note.take(), format!("{}: {why}", dest.display()));
            None
        }
    };
    if let Some(w) = try_map(&mut note, counts) {
        return Ok((w, CacheInfo::new(CacheState::Mapped, Some(dest), note)));
    }
    let cannot_write = |e: &dyn std::fmt::Display| {
        format!(
            "cannot write the packed-weight cache in {}: {e}; the weights are packed in this process's memory",
            dir.display()
        )
    };
    let no_room = |why: String| {
        format!(
            "no room for the packed-weight cache file {}: {why}; the weights are packed in this process's memory",
            dest.display()
        )
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return in_memory(CacheState::InMemory, Some(dest), join(note, cannot_write(&e)), fetch, counts);
    }
    let _held = match lock::acquire(&lock_path(&dest), cancel) {
        Ok(h) => h,
        Err(lock::LockError::Cancelled) => return Err(EngineError::Cancelled),
        Err(lock::LockError::Io(e)) => {
            return in_memory(CacheState::InMemory, Some(dest), join(note, cannot_write(&e)), fetch, counts)
        }
    };
    // Another process may have built it while this one waited.
    let mut late = None;
    if let Some(w) = try_map(&mut late, counts) {
        return Ok((w, CacheInfo::new(CacheState::Mapped, Some(dest), note)));
    }
    // What is left of this file is unusable, and partial files of it have no writer: this
    // process holds its build lock.
    let others = match make_way(dir, &dest, limits, path) {
        Ok(v) => v,
        Err(why) => {
            let note = join(note, no_room(why));
            return in_memory(CacheState::InMemory, Some(dest), note, fetch, counts);
        }
    };
    let mut writer = match Writer::create(&dest) {
        Ok(w) => w,
        Err(e) => return in_memory(CacheState::InMemory, Some(dest), join(note, cannot_write(&e)), fetch, counts),
    };
    let partial = writer.path().to_path_buf();
    let removed = std::cell::RefCell::new(Vec::new());
    let mut room = Room::new(dir, limits, others, space::free_bytes, |target| {
        let e = dir::evict(dir, target, Some(&partial))?;
        removed.borrow_mut().extend(e.removed);
        Ok(e.left)
    });
    let mut failure = room.take(file::HEADER).err().map(no_room);
    let walked = if failure.is_some() {
        Err(EngineError::Cancelled)
    } else {
        weights::walk(path, &config, &mut *fetch, counts, |name, piece| {
            let Described { kind, dims, parts } = describe(&piece).map_err(|why| {
                failure = Some(format!(
                    "tensor {name} cannot be cached: {why}; the weights are packed in this process's memory"
                ));
                EngineError::Cancelled
            })?;
            let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_ref()).collect();
            room.take(writer.bytes_for(parts.iter().map(|p| p.len()))).map_err(|why| {
                failure = Some(no_room(why));
                EngineError::Cancelled
            })?;
            writer.add(name, kind, dims, &parts).map_err(|e| {
                failure = Some(cannot_write(&e));
                EngineError::Cancelled
            })
        })
    };
    match (walked, failure) {
        (Ok(()), _) => {}
        (Err(_), Some(why)) => {
            writer.abandon();
            let note = join_opt(join(note, why), evictions(&removed.borrow()));
            return in_memory(CacheState::InMemory, Some(dest), note, fetch, counts);
        }
        (Err(e), None) => {
            writer.abandon();
            return Err(e);
        }
    }
    if let Err(why) = writer.finish(&key, counts.clone(), &dest, |bytes| room.take(bytes).map_err(no_room)) {
        let why = if why.starts_with("no room") { why } else { cannot_write(&why) };
        let note = join_opt(join(note, why), evictions(&removed.borrow()));
        return in_memory(CacheState::InMemory, Some(dest), note, fetch, counts);
    }
    let rebuilt = note.map(|n| format!("{n}; rebuilt"));
    let note = join_opt(rebuilt, evictions(&removed.borrow()));
    let mut unreadable = None;
    match try_map(&mut unreadable, counts) {
        Some(w) => Ok((w, CacheInfo::new(CacheState::Built, Some(dest), note))),
        None => {
            let why = format!("the file just written did not read back ({})", unreadable.unwrap_or_default());
            in_memory(CacheState::InMemory, Some(dest), join(note, why), fetch, counts)
        }
    }
}

/// `dest.qwen3pack.lock`: held while `dest` is written.
pub(crate) fn lock_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

/// Before `dest` is written (its build lock held): removes what is left of it and partial
/// files of it, then checks that the model files' size, about the least the packing takes,
/// fits the limits. Returns the bytes the directory's other files take.
fn make_way(dir: &Path, dest: &Path, limits: Limits, model: &Path) -> std::result::Result<u64, String> {
    let io = |e: std::io::Error| format!("cannot read the cache directory {}: {e}", dir.display());
    let name = dest.file_name().and_then(|n| n.to_str());
    for f in dir::list(dir).map_err(io)? {
        let of = if f.partial { f.path.file_name().and_then(|n| n.to_str()).and_then(file::partial_of) } else { None };
        // Its partial files look in use: this process holds their build lock.
        if (f.path == dest && !f.in_use) || (of.is_some() && of == name) {
            let _ = std::fs::remove_file(&f.path);
        }
    }
    let least = identity::source_bytes(model).map_err(|e| format!("cannot read the size of the model files: {e}"))?;
    let files = dir::list(dir).map_err(io)?;
    if let Some(max) = limits.max_size {
        let in_use: u64 = files.iter().filter(|f| f.in_use).map(|f| f.bytes).sum();
        if in_use + least > max {
            return Err(format!(
                "its model files alone take {}, and qwen3_embed.cache_max_size is {} with {} of files in use",
                space::gib(least),
                space::gib(max),
                space::gib(in_use)
            ));
        }
    }
    let free = space::free_bytes(dir).map_err(|e| format!("cannot read the free space of {}: {e}", dir.display()))?;
    if free.saturating_sub(least) < limits.min_free {
        return Err(format!(
            "its model files alone take {}, which would leave less than qwen3_embed.cache_min_free ({}) free on the filesystem of {} ({} free)",
            space::gib(least),
            space::gib(limits.min_free),
            dir.display(),
            space::gib(free)
        ));
    }
    Ok(dir::total(&files))
}

/// The note on files removed to keep the cache directory within its budget, if any were.
fn evictions(removed: &[CacheFile]) -> Option<String> {
    let cache: Vec<&CacheFile> = removed.iter().filter(|f| !f.partial).collect();
    let partial = removed.len() - cache.len();
    if removed.is_empty() {
        return None;
    }
    let names: Vec<String> =
        cache.iter().map(|f| f.path.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    Some(format!(
        "removed {} least recently used cache files no process maps ({}){} to keep within qwen3_embed.cache_max_size, {} in all",
        cache.len(),
        names.join(", "),
        if partial > 0 { format!(" and {partial} partial files of stopped writes") } else { String::new() },
        space::gib(dir::total(removed))
    ))
}

/// A piece as the cache file's table records it, with its arrays.
struct Described<'a> {
    kind: String,
    dims: Vec<usize>,
    parts: Vec<Cow<'a, [u8]>>,
}

/// The kind string, dims and arrays of a piece, or why it cannot be cached.
fn describe(piece: &Piece) -> std::result::Result<Described<'_>, String> {
    let (kind, dims, parts) = match piece {
        Piece::Embed(e) => (format!("embed:{:?}", e.dtype), e.dims(), vec![Cow::Borrowed(e.data.as_bytes())]),
        Piece::Norm(t) => {
            let v = t.to_vec1::<f32>().map_err(|e| e.to_string())?;
            (
                String::from("norm"),
                t.dims().to_vec(),
                vec![Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())],
            )
        }
        Piece::Linear(Linear::Packed(p)) => {
            (format!("q:{:?}", p.kind), vec![p.n, p.k], p.parts().into_iter().map(Cow::Borrowed).collect())
        }
        Piece::Linear(Linear::PackedDense(p)) => {
            (format!("dense:{:?}", p.kind), vec![p.n, p.k], p.parts().into_iter().map(Cow::Borrowed).collect())
        }
        Piece::Linear(l) => return Err(format!("its type {} is not one the kernels take", l.type_name())),
    };
    Ok(Described { kind, dims, parts })
}

const EMBED_TYPES: [GgmlDType; 15] = [
    GgmlDType::F32,
    GgmlDType::F16,
    GgmlDType::BF16,
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
    GgmlDType::Q8_0,
    GgmlDType::Q8_1,
    GgmlDType::Q2K,
    GgmlDType::Q3K,
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
    GgmlDType::Q8K,
];
const DENSE_KINDS: [DenseKind; 3] = [DenseKind::F16, DenseKind::Bf16, DenseKind::F32];

/// The model's weights read from a mapped cache file, or what does not fit.
fn weights_from(m: &Mapped, config: &ModelConfig) -> std::result::Result<ModelWeights, String> {
    let mut pieces = HashMap::new();
    for e in &m.table.tensors {
        let bad = || format!("corrupted: tensor {} ({} {:?}) does not fit its arrays", e.name, e.kind, e.dims);
        let regions: Vec<_> = e.parts.iter().map(|&p| m.region(p)).collect::<Option<_>>().ok_or_else(bad)?;
        let (family, ty) = e.kind.split_once(':').unwrap_or((e.kind.as_str(), ""));
        let piece = match (family, e.dims.as_slice()) {
            ("embed", &[rows, hidden]) => {
                let dtype = EMBED_TYPES.into_iter().find(|d| format!("{d:?}") == ty).ok_or_else(bad)?;
                let data = regions.first().and_then(|r| r.typed::<u8>()).ok_or_else(bad)?;
                Piece::Embed(Embedding::new(dtype, rows, hidden, data).ok_or_else(bad)?)
            }
            ("norm", &[n]) => {
                let v: Vec<f32> = regions.first().and_then(|r| r.typed::<f32>()).ok_or_else(bad)?.to_vec();
                if v.len() != n {
                    return Err(bad());
                }
                Piece::Norm(Tensor::from_vec(v, n, &candle_core::Device::Cpu).map_err(|e| e.to_string())?)
            }
            ("q", &[n, k]) => {
                let kind = QKind::ALL.into_iter().find(|q| format!("{q:?}") == ty).ok_or_else(bad)?;
                Piece::Linear(Linear::Packed(PackedQ::from_parts(kind, n, k, &regions).ok_or_else(bad)?))
            }
            ("dense", &[n, k]) => {
                let kind = DENSE_KINDS.into_iter().find(|d| format!("{d:?}") == ty).ok_or_else(bad)?;
                Piece::Linear(Linear::PackedDense(PackedDense::from_parts(kind, n, k, &regions).ok_or_else(bad)?))
            }
            _ => return Err(bad()),
        };
        pieces.insert(e.name.clone(), piece);
    }
    for name in tensors::names(config) {
        let expected = tensors::expected_dims(config, &name);
        let found = match pieces.get(&name) {
            Some(Piece::Embed(e)) => e.dims(),
            Some(Piece::Norm(t)) => t.dims().to_vec(),
            Some(Piece::Linear(l)) => l.dims(),
            None => return Err(format!("corrupted: tensor {name} is missing")),
        };
        if found != expected {
            return Err(format!("corrupted: tensor {name} is {found:?}, the model needs {expected:?}"));
        }
    }
    ModelWeights::from_pieces(config.clone(), |name| {
        pieces.remove(name).ok_or_else(|| EngineError::Compute(format!("tensor {name} is missing")))
    })
    .map_err(|e| e.to_string())
}
