//! Rebuilding the key index from stored history records: [`IndexBuilder`], fed every record of
//! the history bucket in ascending revision order — by a scan of the backend when a member
//! starts, or while a raft snapshot image is being loaded into the backend (so a follower that
//! catches up through a snapshot does not scan the history a second time).
//!
//! Invariant: the store [`IndexBuilder::finish`] returns is the one [`Store::open`] would
//! return for the same records, its compaction finished if a crash cut one short.

use std::collections::BTreeMap;

use super::Store;
use crate::mvcc::history::{self, Outline};
use crate::mvcc::revision::Revision;
use crate::storage::{Backend, StorageError};

/// Collects the key index (and the keys holding leases) record by record.
pub struct IndexBuilder {
    store: Store,
    newest: i64,
    leased: BTreeMap<Vec<u8>, i64>,
    /// Records that fit no key's history (left by a compaction cut short, or misfits).
    orphans: Vec<Revision>,
}

impl IndexBuilder {
    /// An empty index over the history in `backend`.
    pub fn new(backend: Backend) -> IndexBuilder {
        IndexBuilder {
            store: Store::empty(backend),
            newest: 1,
            leased: BTreeMap::new(),
            orphans: Vec::new(),
        }
    }

    /// Adds the history record stored as `key` → `value` (records come in ascending order).
    pub fn add_record(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.add(history::outline_of(key, value)?);
        Ok(())
    }

    pub(super) fn add(&mut self, o: Outline<'_>) {
        self.store.bytes += o.size;
        if !self.store.index_record(o.rev, o.key, o.tombstone) {
            // Left by a compaction cut short: part of a key's history already deleted.
            self.orphans.push(o.rev);
            return;
        }
        self.newest = self.newest.max(o.rev.main);
        if o.lease != 0 && !o.tombstone {
            self.leased.insert(o.key.to_vec(), o.lease);
        } else {
            self.leased.remove(o.key);
        }
    }

    /// The store, once every record was added, with every live key whose current value
    /// carries a lease, and that lease.
    pub fn finish(self) -> Result<(Store, BTreeMap<Vec<u8>, i64>), StorageError> {
        let IndexBuilder {
            mut store,
            newest,
            leased,
            orphans,
        } = self;
        let compacted = super::stored_compaction(&store.backend().read()?)?;
        store.current = newest.max(compacted);
        store.compacted = compacted;
        // Above the compaction point every record fits some key's history; one that does not
        // is kept (unreadable, as it always was) rather than deleted.
        let (orphans, misfits): (Vec<Revision>, Vec<Revision>) =
            orphans.into_iter().partition(|rev| rev.main <= compacted);
        if let Some(first) = misfits.first() {
            tracing::warn!(count = misfits.len(), %first, "records that fit no key's history");
        }
        // Finishes a compaction a crash cut short (does nothing after a finished one).
        let leftovers = store.compact_index(compacted);
        store
            .history
            .remove(orphans.into_iter().chain(leftovers).collect());
        Ok((store, leased))
    }
}
