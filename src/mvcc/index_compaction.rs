//! Compacting the key index a batch of keys at a time, so that a compaction of a million keys
//! never holds the store's write lock for one long walk (etcd compacts its index in one walk;
//! its backend work is what it batches).
//!
//! Owns [`IndexCompaction`]: the revision being compacted to and the first key not yet
//! compacted. Invariants:
//! * Keys before the cursor are compacted at `at`; keys at or after it may still hold
//!   revisions at or below `at` that compaction will remove. Reads are not affected: every read
//!   is at a revision `>= at` (the store refuses older ones as soon as the compaction is
//!   applied), and a key index answers those alike before and after its compaction.
//! * Compacting at a later revision subsumes an unfinished one (a key compacted at `a` then at
//!   `b >= a` ends exactly as one compacted at `b`), so a new compaction restarts the walk from
//!   the first key.
//! * The walk is deterministic (key order), so every member removes the same revisions; only
//!   when they are deleted from the backend differs, which no reader sees.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::mvcc::key_index::KeyIndex;
use crate::mvcc::revision::Revision;

/// Keys compacted per step.
#[cfg(not(madsim))]
pub(crate) const KEYS_PER_STEP: usize = 4096;
/// Keys compacted per step: few in simulation, so that compactions run across many flushes,
/// writes, snapshots and crashes.
#[cfg(madsim)]
pub(crate) const KEYS_PER_STEP: usize = 4;

/// An index compaction in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexCompaction {
    /// The compaction revision.
    pub(crate) at: i64,
    /// The first key not compacted yet (`None`: from the start).
    next: Option<Arc<[u8]>>,
}

impl IndexCompaction {
    /// A compaction at `at`, from the first key.
    pub(crate) fn new(at: i64) -> Self {
        IndexCompaction { at, next: None }
    }

    /// Compacts up to `max_keys` keys of `index` from the cursor, adding the revisions no index
    /// keeps any more to `removed`. Returns whether the whole index is done.
    pub(crate) fn step(
        &mut self,
        index: &mut BTreeMap<Arc<[u8]>, KeyIndex>,
        max_keys: usize,
        removed: &mut Vec<Revision>,
    ) -> bool {
        let from = match &self.next {
            Some(k) => Bound::Included(&**k),
            None => Bound::Unbounded,
        };
        let mut emptied = Vec::new();
        let mut next = None;
        for (n, (key, ki)) in index
            .range_mut::<[u8], _>((from, Bound::Unbounded))
            .enumerate()
        {
            if n == max_keys {
                next = Some(Arc::clone(key));
                break;
            }
            ki.compact(self.at, removed);
            if ki.is_empty() {
                emptied.push(Arc::clone(key));
            }
        }
        for key in emptied {
            index.remove(&key);
        }
        self.next = next;
        self.next.is_none()
    }
}
