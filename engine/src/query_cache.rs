//! Results of queries already computed, so that a repeated query costs no forward pass. An
//! entry is found by the loaded engine (`Engine::id`: a model loaded again is another engine, so
//! it never meets the vectors of the one before), the caller's scope (its role: no role can tell
//! from a fast answer what another asked), the task, the output size and
//! the exact token ids, and holds the very floats that were computed. Bounded in bytes, least
//! recently used out.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::Task;

/// What the cache holds and how often it answered, for the stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryCacheStats {
    pub entries: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub hits: u64,
    pub misses: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    engine: u64,
    scope: u32,
    task: Task,
    dims: usize,
    ids: Vec<u32>,
}

struct Entry {
    value: Vec<f32>,
    used: u64,
}

/// Bytes an entry takes: its key (kept twice: in the map and in the recency order), its value
/// and the bookkeeping around them.
fn entry_bytes(ids: usize, value: usize) -> u64 {
    (2 * ids * 4 + value * 4 + 160) as u64
}

#[derive(Default)]
struct Inner {
    max_bytes: u64,
    bytes: u64,
    clock: u64,
    entries: HashMap<Key, Entry>,
    by_use: BTreeMap<u64, Key>,
    hits: u64,
    misses: u64,
}

impl Inner {
    fn evict_to(&mut self, max: u64) {
        while self.bytes > max {
            let Some((_, key)) = self.by_use.pop_first() else { break };
            if let Some(e) = self.entries.remove(&key) {
                self.bytes -= entry_bytes(key.ids.len(), e.value.len());
            }
        }
    }
}

#[derive(Default)]
pub struct QueryCache {
    inner: Mutex<Inner>,
}

impl QueryCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the bound (0 empties the cache and keeps nothing), dropping the least recently used
    /// entries past it.
    pub fn set_max_bytes(&self, max: u64) {
        let mut c = self.lock();
        c.max_bytes = max;
        c.evict_to(max);
    }

    /// The result computed before for these token ids, counted as a hit or a miss.
    pub fn get(&self, engine: u64, scope: u32, task: Task, dims: usize, ids: &[u32]) -> Option<Vec<f32>> {
        let mut c = self.lock();
        if c.max_bytes == 0 {
            return None;
        }
        let key = Key { engine, scope, task, dims, ids: ids.to_vec() };
        c.clock += 1;
        let now = c.clock;
        let Some(e) = c.entries.get_mut(&key) else {
            c.misses += 1;
            return None;
        };
        let (before, value) = (e.used, e.value.clone());
        e.used = now;
        let key = c.by_use.remove(&before).expect("every entry is in the recency order");
        c.by_use.insert(now, key);
        c.hits += 1;
        Some(value)
    }

    /// Keeps `value`, the result for these token ids, unless it alone passes the bound.
    pub fn put(&self, engine: u64, scope: u32, task: Task, dims: usize, ids: &[u32], value: &[f32]) {
        let mut c = self.lock();
        let bytes = entry_bytes(ids.len(), value.len());
        if bytes > c.max_bytes {
            return;
        }
        let key = Key { engine, scope, task, dims, ids: ids.to_vec() };
        c.clock += 1;
        let now = c.clock;
        if let Some(old) = c.entries.remove(&key) {
            c.by_use.remove(&old.used);
            c.bytes -= entry_bytes(key.ids.len(), old.value.len());
        }
        let max = c.max_bytes - bytes;
        c.evict_to(max);
        c.by_use.insert(now, key.clone());
        c.entries.insert(key, Entry { value: value.to_vec(), used: now });
        c.bytes += bytes;
    }

    pub fn stats(&self) -> QueryCacheStats {
        let c = self.lock();
        QueryCacheStats {
            entries: c.entries.len() as u64,
            bytes: c.bytes,
            max_bytes: c.max_bytes,
            hits: c.hits,
            misses: c.misses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_give_back_the_same_floats_and_misses_are_counted() {
        let c = QueryCache::new();
        c.set_max_bytes(1 << 20);
        assert_eq!(c.get(1, 0, Task::Embedding, 4, &[5, 6]), None);
        c.put(1, 0, Task::Embedding, 4, &[5, 6], &[0.5, -0.25, 1e-30, f32::MIN_POSITIVE]);
        let hit = c.get(1, 0, Task::Embedding, 4, &[5, 6]).unwrap();
        assert_eq!(
            hit.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            [0.5f32, -0.25, 1e-30, f32::MIN_POSITIVE].map(f32::to_bits)
        );
        // Another engine, scope, size, task or token list is another entry.
        assert_eq!(c.get(2, 0, Task::Embedding, 4, &[5, 6]), None);
        assert_eq!(c.get(1, 7, Task::Embedding, 4, &[5, 6]), None);
        assert_eq!(c.get(1, 0, Task::Embedding, 3, &[5, 6]), None);
        assert_eq!(c.get(1, 0, Task::Rerank, 4, &[5, 6]), None);
        assert_eq!(c.get(1, 0, Task::Embedding, 4, &[5]), None);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries), (1, 6, 1));
    }

    #[test]
    fn the_bound_holds_and_the_least_recently_used_go_first() {
        let c = QueryCache::new();
        let one = entry_bytes(1, 8);
        c.set_max_bytes(3 * one);
        for i in 0..3 {
            c.put(1, 0, Task::Embedding, 8, &[i], &[i as f32; 8]);
        }
        assert!(c.get(1, 0, Task::Embedding, 8, &[0]).is_some());
        c.put(1, 0, Task::Embedding, 8, &[3], &[3.0; 8]);
        assert!(c.stats().bytes <= 3 * one);
        assert!(c.get(1, 0, Task::Embedding, 8, &[1]).is_none(), "the least recently used went out");
        assert!(c.get(1, 0, Task::Embedding, 8, &[0]).is_some());
        assert!(c.get(1, 0, Task::Embedding, 8, &[3]).is_some());
        c.set_max_bytes(one);
        assert_eq!(c.stats().entries, 1);
        c.set_max_bytes(0);
        assert_eq!(c.stats(), QueryCacheStats { hits: 3, misses: 1, ..Default::default() });
        c.put(1, 0, Task::Embedding, 8, &[0], &[0.0; 8]);
        assert_eq!(c.stats().entries, 0, "a cache bound to 0 keeps nothing");
    }
}
