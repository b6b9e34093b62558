//! [`Store`]: the MVCC state: a key index in RAM plus the revision-ordered history on disk.
//!
//! Owns:
//! * `index`: key -> [`KeyIndex`] (generations of revisions), ordered by key,
//!   so range reads walk keys in order without sorting. This is all the store
//!   keeps in RAM per key (etcd's treeIndex).
//! * `history`: [`Revision`] -> [`Record`] (value, create revision, version,
//!   lease, tombstone flag) in the backend's `key` bucket ([`History`]), so
//!   watch catch-up, hashing and snapshots walk history in commit order.
//! * `current` / `compacted`: the newest committed main revision (starts at
//!   1, like etcd) and the last compaction point (-1 = never, etcd's
//!   `compactMainRev`: so a fresh store accepts `compact(0)`, once).
//!
//! Invariants (verified by `check_invariants` in tests):
//! * The revisions referenced by all key indexes are exactly the records of
//!   the history, and a record is a tombstone exactly when its index says so.
//! * `-1 <= compacted <= current`; every record's main revision is
//!   `<= current`; every record `<= compacted` is the one value some key
//!   had at `compacted` (tombstones `<= compacted` are gone).
//! * `live_keys` = number of keys live at `current`; `bytes` = sum of
//!   [`Record::size`] over the history, plus the records compaction removed
//!   that are not deleted from the backend yet (their space is not free yet).
//! * What [`Store::flush`] committed is what [`Store::open`] rebuilds: the
//!   index is derived from the records, `compacted` is kept in the `meta`
//!   bucket, and `current` = max(newest record, `compacted`) (every change
//!   leaves a record, and only compaction removes records at or below it).
//!   Records a compaction removed but a crash kept from being deleted are
//!   found again at open (the index is compacted again at `compacted`, and
//!   records no index takes are at or below it) and deleted then.
//!
//! A compaction refuses reads below its revision at once and compacts the
//! key index a batch of keys per flush (`index_compaction`); the records it
//! removes leave the backend in batches too (`history`).
//!
//! Reads at revision `r` ask each key index for the newest revision with
//! `main <= r` and fetch that record; see `key_index` for the generation
//! rules and a worked example. Only [`crate::mvcc::WriteTxn`] mutates
//! data, through `apply_changes`, and compaction removes history.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::mvcc::history::{self, History};
use crate::mvcc::index_compaction::{IndexCompaction, KEYS_PER_STEP};
use crate::mvcc::key_index::KeyIndex;
use crate::mvcc::key_range::KeyRange;
use crate::mvcc::revision::Revision;
use crate::mvcc::txn::WriteTxn;
use crate::mvcc::{Event, EventKind, KeyValue, MvccError};

#[cfg(test)]
mod checks;
mod reads;
mod rebuild;
#[cfg(test)]
mod snapshot_form;
use crate::storage::{Backend, Batch, Bucket, ReadView, StorageError};
pub use reads::{EventPage, PlannedHash, PlannedRange};
pub use rebuild::IndexBuilder;
#[cfg(test)]
pub use snapshot_form::{SnapshotRecord, StoreSnapshot};

/// Fixed per-record overhead counted by [`Store::approx_bytes`]: revision,
/// metadata and a share of map bookkeeping. Only a rough estimate.
pub(crate) const RECORD_OVERHEAD: usize = 64;
/// [`Store::compacted_revision`] of a store never compacted.
const NEVER_COMPACTED: i64 = -1;
/// `meta` key of the compaction revision (etcd's name).
const COMPACTED_KEY: &[u8] = b"finishedCompactRev";

/// One change in history: what a key looked like after the change at its
/// revision (the revision itself is the map key in `Store::records`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) key: Arc<[u8]>,
    pub(crate) value: Vec<u8>,
    pub(crate) create_revision: i64,
    pub(crate) version: i64,
    pub(crate) lease: i64,
    pub(crate) tombstone: bool,
}

impl Record {
    /// Rough size for [`Store::approx_bytes`].
    pub(crate) fn size(&self) -> usize {
        self.key.len() + self.value.len() + RECORD_OVERHEAD
    }

    /// The record as a [`KeyValue`] at `rev`; a tombstone yields only key
    /// and mod revision, like etcd's delete events.
    pub(crate) fn to_kv(&self, rev: Revision) -> KeyValue {
        self.clone().into_kv(rev)
    }

    /// [`Record::to_kv`], moving the value instead of copying it.
    pub(crate) fn into_kv(self, rev: Revision) -> KeyValue {
        if self.tombstone {
            return KeyValue {
                key: self.key.to_vec(),
                mod_revision: rev.main,
                ..KeyValue::default()
            };
        }
        KeyValue {
            key: self.key.to_vec(),
            create_revision: self.create_revision,
            mod_revision: rev.main,
            version: self.version,
            value: self.value,
            lease: self.lease,
        }
    }
}

/// The MVCC key-value store. See the module docs for layout and invariants.
#[derive(Debug)]
pub struct Store {
    index: BTreeMap<Arc<[u8]>, KeyIndex>,
    history: History,
    current: i64,
    compacted: i64,
    live_keys: usize,
    bytes: usize,
    /// The index compaction still walking the keys, if any (see `index_compaction`).
    compacting: Option<IndexCompaction>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

/// The compaction point stored in `view` (`-1` if never compacted).
pub fn stored_compaction(view: &ReadView) -> Result<i64, StorageError> {
    match view.get(Bucket::Meta, COMPACTED_KEY)? {
        Some(bytes) => Ok(i64::from_be_bytes(bytes.as_slice().try_into().map_err(
            |_| StorageError::Corrupt {
                path: "snap/db".into(),
                offset: 0,
                reason: "bad compaction revision".into(),
            },
        )?)),
        None => Ok(NEVER_COMPACTED),
    }
}

/// The `meta` pair recording compaction point `compacted`, as [`Store::flush`] writes it.
pub fn compaction_pair(compacted: i64) -> (Vec<u8>, Vec<u8>) {
    (COMPACTED_KEY.to_vec(), compacted.to_be_bytes().to_vec())
}

impl Store {
    /// An empty store at revision 1 (like a fresh etcd), never compacted, held in memory.
    pub fn new() -> Store {
        Store::empty(Backend::in_memory())
    }

    fn empty(backend: Backend) -> Store {
        Store {
            index: BTreeMap::new(),
            history: History::new(backend),
            current: 1,
            compacted: NEVER_COMPACTED,
            live_keys: 0,
            bytes: 0,
            compacting: None,
        }
    }

    /// The store kept in `backend`: rebuilds the key index from every stored record.
    pub fn open(backend: Backend) -> Result<Store, StorageError> {
        Store::open_with_leases(backend).map(|(store, _)| store)
    }

    /// [`Store::open`], also returning every live key whose current value carries a lease,
    /// with that lease (gathered in the same scan, to rebuild the lease table).
    pub fn open_with_leases(
        backend: Backend,
    ) -> Result<(Store, BTreeMap<Vec<u8>, i64>), StorageError> {
        let mut builder = IndexBuilder::new(backend.clone());
        history::for_each_outline(&backend, |o| builder.add(o))?;
        builder.finish()
    }

    /// The backend holding the history.
    pub fn backend(&self) -> &Backend {
        self.history.backend()
    }

    /// Commits every change since the last flush, together with `batch` (the caller's own
    /// bookkeeping, e.g. its consistent index), in one backend transaction; durable on return
    /// if `durable`. The transaction also deletes the next batch of records compacted away
    /// ([`Store::compaction_backlog`]). After an error the store must not be written again.
    pub fn flush(&mut self, batch: Batch, durable: bool) -> Result<(), StorageError> {
        self.flush_deleting(batch, durable, history::DELETE_BATCH)
    }

    /// [`Store::flush`] (not durable) made while nothing else is flushed, so it deletes a larger
    /// batch of compacted records.
    pub fn flush_compaction(&mut self, batch: Batch) -> Result<(), StorageError> {
        self.flush_deleting(batch, false, history::IDLE_DELETE_BATCH)
    }

    fn flush_deleting(
        &mut self,
        mut batch: Batch,
        durable: bool,
        delete_limit: usize,
    ) -> Result<(), StorageError> {
        let (key, value) = compaction_pair(self.compacted);
        batch.put(Bucket::Meta, key, value);
        self.step_compaction();
        let freed = self.history.flush(batch, durable, delete_limit)?;
        self.bytes = self.bytes.saturating_sub(freed);
        Ok(())
    }

    /// Work a compaction has left for flushes: records to delete from the backend, plus one
    /// while the key index is still being compacted.
    pub fn compaction_backlog(&self) -> usize {
        self.history.backlog() + usize::from(self.compacting.is_some())
    }

    /// Compacts the next keys of an index compaction in progress.
    fn step_compaction(&mut self) {
        if let Some(compaction) = &mut self.compacting {
            let mut removed = Vec::new();
            if compaction.step(&mut self.index, KEYS_PER_STEP, &mut removed) {
                self.compacting = None;
            }
            self.history.remove(removed);
        }
    }

    /// The newest committed main revision.
    pub fn current_revision(&self) -> i64 {
        self.current
    }

    /// The last compaction revision, -1 if never compacted (what etcd reports in HashKV).
    pub fn compacted_revision(&self) -> i64 {
        self.compacted
    }

    /// Start a write transaction at revision `current + 1`.
    pub fn write(&mut self) -> WriteTxn<'_> {
        WriteTxn::new(self)
    }

    /// Compact history at main revision `rev`: afterwards reads need a
    /// revision `>= rev`. As in etcd, `rev` must be above the last compaction
    /// (a fresh store accepts 0) and at most current. Keeps, per key, only the value it had at `rev`
    /// (if live) and everything newer; tombstones `<= rev` are dropped along
    /// with their generations.
    pub fn compact(&mut self, rev: i64) -> Result<(), MvccError> {
        if rev <= self.compacted {
            return Err(MvccError::Compacted);
        }
        if rev > self.current {
            return Err(MvccError::FutureRevision);
        }
        self.compacted = rev;
        // Reads below `rev` are refused from now on; the key index is compacted a batch of
        // keys per flush (the first batch now), which restarts one still in progress.
        self.compacting = Some(IndexCompaction::new(rev));
        self.step_compaction();
        Ok(())
    }

    /// Compacts every key index at `rev` in one walk; returns the revisions no index keeps.
    fn compact_index(&mut self, rev: i64) -> Vec<Revision> {
        let mut removed = Vec::new();
        IndexCompaction::new(rev).step(&mut self.index, usize::MAX, &mut removed);
        removed
    }

    /// Number of keys live at the current revision.
    pub fn key_count(&self) -> usize {
        self.live_keys
    }

    /// Rough size of retained history in bytes (keys + values + a fixed
    /// per-revision overhead), for "DB size" style status reporting.
    pub fn approx_bytes(&self) -> usize {
        self.bytes
    }

    /// The index's `Arc` for `key` if the key is known, else a new one.
    fn shared_key(&self, key: &[u8]) -> Arc<[u8]> {
        match self.index.get_key_value(key) {
            Some((k, _)) => Arc::clone(k),
            None => Arc::from(key),
        }
    }

    /// Add `rec` at `rev` to history and the key's index. Returns false
    /// (and changes nothing) for a tombstone of a key that is not live or a
    /// revision not newer than the key's last one.
    fn insert_record(&mut self, rev: Revision, rec: Record) -> bool {
        if !self.index_record(rev, &rec.key, rec.tombstone) {
            return false;
        }
        self.bytes += rec.size();
        self.history.insert(rev, rec);
        true
    }

    /// Adds `rev` to the index of `key` (see [`Store::insert_record`]).
    fn index_record(&mut self, rev: Revision, key: &[u8], tombstone: bool) -> bool {
        if let Some(ki) = self.index.get(key) {
            if ki.last_revision().is_some_and(|last| last >= rev) {
                return false;
            }
        }
        if tombstone {
            let Some(ki) = self.index.get_mut(key) else {
                return false;
            };
            if !ki.tombstone(rev) {
                return false;
            }
            self.live_keys = self.live_keys.saturating_sub(1);
        } else {
            let ki = match self.index.get_mut(key) {
                Some(ki) => ki,
                None => self.index.entry(Arc::from(key)).or_default(),
            };
            if !ki.is_live() {
                self.live_keys += 1;
            }
            ki.put(rev);
        }
        true
    }

    /// The record visible for `key` at the current revision, if live.
    pub(crate) fn current_record(&self, key: &[u8]) -> Option<(Revision, Record)> {
        let rev = self.index.get(key)?.get(self.current)?;
        self.history.reader().get(rev).map(|rec| (rev, rec))
    }

    /// Keys in the index within `kr` (live or not), ascending.
    pub(crate) fn index_keys<'s>(
        &'s self,
        kr: KeyRange<'s>,
    ) -> Box<dyn Iterator<Item = &'s [u8]> + 's> {
        match kr.bounds() {
            Some(bounds) => Box::new(self.index.range::<[u8], _>(bounds).map(|(k, _)| &**k)),
            None => Box::new(std::iter::empty()),
        }
    }

    /// Commit a transaction's changes, in order, at main revision
    /// `current + 1` (sub revision = position), then advance `current`.
    /// No-op for an empty change list.
    pub(crate) fn apply_changes(&mut self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let main = self.current + 1;
        for (sub, ev) in events.iter().enumerate() {
            let rev = Revision::new(main, sub as i64);
            let key = self.shared_key(&ev.kv.key);
            let rec = match ev.kind {
                EventKind::Put => Record {
                    key,
                    value: ev.kv.value.clone(),
                    create_revision: ev.kv.create_revision,
                    version: ev.kv.version,
                    lease: ev.kv.lease,
                    tombstone: false,
                },
                EventKind::Delete => Record {
                    key,
                    value: Vec::new(),
                    create_revision: 0,
                    version: 0,
                    lease: 0,
                    tombstone: true,
                },
            };
            let applied = self.insert_record(rev, rec);
            debug_assert!(applied, "txn produced an inapplicable change");
        }
        self.current = main;
    }
}
