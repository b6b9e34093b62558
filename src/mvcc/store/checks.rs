//! Test-only checks of a [`Store`]: its invariants (the module docs of `store`) and an equality
//! that compares what a store holds, not how far its background work has got.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Store, NEVER_COMPACTED};
use crate::mvcc::index_compaction::IndexCompaction;
use crate::mvcc::key_index::KeyIndex;
use crate::mvcc::revision::Revision;
use crate::mvcc::store::Record;

impl Store {
    /// The key index as it is once any compaction in progress is done (tests).
    pub(super) fn settled_index(&self) -> BTreeMap<Arc<[u8]>, KeyIndex> {
        let mut index = self.index.clone();
        if let Some(c) = &self.compacting {
            IndexCompaction::new(c.at).step(&mut index, usize::MAX, &mut Vec::new());
        }
        index
    }

    /// Verify the invariants in the module docs.
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        let mut referenced = BTreeMap::new();
        let mut live = 0;
        for (key, ki) in &self.index {
            ki.check()?;
            if ki.is_empty() {
                return Err(format!("empty key index for {key:?}"));
            }
            if ki.is_live() {
                live += 1;
            }
            let old: Vec<Revision> = ki
                .all_revisions()
                .into_iter()
                .map(|(r, _)| r)
                .filter(|r| r.main <= self.compacted)
                .collect();
            let compacted_yet = self.compacting.is_none();
            if compacted_yet
                && (old.len() > 1
                    || old
                        .first()
                        .is_some_and(|r| ki.get(self.compacted) != Some(*r)))
            {
                return Err(format!("{key:?} keeps {old:?} at or below compaction"));
            }
            for (rev, tomb) in ki.all_revisions() {
                if referenced.insert(rev, (key.clone(), tomb)).is_some() {
                    return Err(format!("revision {rev} referenced twice"));
                }
            }
        }
        let records: Vec<(Revision, Record)> = self
            .history
            .reader()
            .scan(Revision::new(0, 0), None)
            .collect();
        if referenced.len() != records.len() {
            return Err("index and records disagree in size".into());
        }
        for ((rev, (key, tomb)), (rrev, rec)) in referenced.iter().zip(&records) {
            if rev != rrev || **key != *rec.key || *tomb != rec.tombstone {
                return Err(format!("index/record mismatch at {rev} vs {rrev}"));
            }
            if rev.main > self.current {
                return Err(format!("record {rev} newer than current"));
            }
            if rev.main <= self.compacted && rec.tombstone && self.compacting.is_none() {
                return Err(format!("tombstone {rev} survived compaction"));
            }
        }
        if !(NEVER_COMPACTED <= self.compacted && self.compacted <= self.current) {
            return Err("compacted out of bounds".into());
        }
        if live != self.live_keys {
            return Err(format!("live_keys {} != {live}", self.live_keys));
        }
        let bytes: usize =
            records.iter().map(|(_, rec)| rec.size()).sum::<usize>() + self.history.doomed_bytes();
        if bytes != self.bytes {
            return Err(format!("bytes {} != {bytes}", self.bytes));
        }
        Ok(())
    }
}

/// Stores are equal when they hold the same revisions, index and history (tests only: it reads
/// the whole history). Records compacted away but not deleted yet do not count.
impl PartialEq for Store {
    fn eq(&self, other: &Self) -> bool {
        self.settled_index() == other.settled_index()
            && self.current == other.current
            && self.compacted == other.compacted
            && self.live_keys == other.live_keys
            // A compaction still walking the index has not doomed every record it will.
            && (self.compacting.is_some()
                || other.compacting.is_some()
                || self.bytes - self.history.doomed_bytes()
                    == other.bytes - other.history.doomed_bytes())
            && self.to_snapshot() == other.to_snapshot()
    }
}
