//! Multi-version concurrency control (MVCC) key-value store, etcd v3 style.
//!
//! This module owns the replicated state machine's data: every key's full
//! history since the last compaction, addressed by [`Revision`]. Only the
//! key index lives in RAM; the history is kept in the storage backend
//! ([`crate::storage::Backend`]), written by [`Store::flush`] and rebuilt
//! into an index by [`Store::open`]. It is deterministic: no threads,
//! clocks or hash-ordered iteration, and no I/O but the backend's, so every
//! Raft member that applies the same commands in the same order ends in the
//! same state and the same [`Store::hash_kv`].
//!
//! Layout (see each file's docs):
//! * [`revision`]: the `(main, sub)` logical clock.
//! * `key_range`: decoding etcd's `(key, range_end)` convention.
//! * `key_index`: per-key generations of revisions (etcd's `keyIndex`).
//! * `history`: the revision -> record map in the backend, plus the records
//!   applied but not yet flushed and the compacted ones not yet deleted.
//! * `index_compaction`: compacting the key index a batch of keys at a time.
//! * `store`: [`Store`]: index + revision-ordered record map; reads at any
//!   retained revision, compaction, hashing, watch events, snapshots.
//! * `txn`: [`WriteTxn`], the only way to change the store: all changes of
//!   one transaction share one new main revision.
//!
//! Invariants upheld across the module:
//! * `compacted_revision() <= current_revision()`, and `current_revision()`
//!   starts at 1 and grows by exactly 1 per transaction that changes
//!   something.
//! * Every revision in a key's index has a record in the revision map, and
//!   every record is referenced by exactly one key index.
//! * A value is stored once (in its record); the key bytes are shared
//!   (`Arc<[u8]>`) between the index and all records of the key.
//!
//! Example (kept as text so the folder can move between crates verbatim;
//! the same steps run as the `doc_example` unit test):
//!
//! ```text
//! let mut store = Store::new();
//! let mut txn = store.write();
//! txn.put(b"foo", b"bar", 0);
//! txn.commit();
//! let r = store.range(b"foo", b"", 0, 0).unwrap();
//! assert_eq!(r.kvs[0].mod_revision, 2);
//! assert_eq!(r.revision, 2);
//! ```

mod etcd_form;
mod history;
mod index_compaction;
mod key_index;
mod key_range;
pub mod revision;
mod store;
mod txn;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use etcd_form::{compaction_from_etcd, compaction_to_etcd, record_from_etcd, record_to_etcd};
pub use revision::Revision;
pub use store::{
    compaction_pair, stored_compaction, EventPage, IndexBuilder, PlannedHash, PlannedRange, Store,
};
#[cfg(test)]
pub use store::{SnapshotRecord, StoreSnapshot};
pub use txn::WriteTxn;

/// A key's value at some revision, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// Main revision of the put that created the current generation.
    pub create_revision: i64,
    /// Main revision of the last change to the key.
    pub mod_revision: i64,
    /// Number of puts in the current generation, starting at 1.
    pub version: i64,
    /// The value.
    pub value: Vec<u8>,
    /// Lease id attached to the key, 0 for none.
    pub lease: i64,
}

/// What a change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change to one key, as delivered to watchers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// For a put, the new key-value. For a delete, only `key` and
    /// `mod_revision` (the deletion's main revision) are set, like etcd.
    pub kv: KeyValue,
    /// The key's value immediately before this change, `None` if it did not
    /// exist.
    pub prev_kv: Option<KeyValue>,
}

/// Errors of revision-addressed operations.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MvccError {
    /// The revision's history has been removed by compaction.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The revision has not been written yet.
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
}

/// Result of a range read.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeResult {
    /// Matching key-values sorted by key ascending, at most `limit` of them.
    pub kvs: Vec<KeyValue>,
    /// Total number of matching keys, ignoring `limit`.
    pub count: i64,
    /// The store's revision for the response header.
    pub revision: i64,
}
