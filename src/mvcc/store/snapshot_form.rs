//! [`StoreSnapshot`] (tests): a store's revisions and retained history in plain owned form, and
//! a store rebuilt from one, to compare stores by what they hold. The replicated state travels
//! between members as backend dumps (`storage::dump`), not in this form.

use super::{Record, Store, NEVER_COMPACTED};
use crate::mvcc::revision::Revision;
use crate::storage::Backend;

/// One record of a [`StoreSnapshot`], in plain owned form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// Revision of the change.
    pub revision: Revision,
    /// Whether the change was a delete (then only `key` is meaningful).
    pub tombstone: bool,
    /// The key.
    pub key: Vec<u8>,
    /// The value after the change.
    pub value: Vec<u8>,
    /// Create revision of the key's generation.
    pub create_revision: i64,
    /// Version of the key after the change.
    pub version: i64,
    /// Lease attached after the change.
    pub lease: i64,
}

/// Everything needed to rebuild a [`Store`]: its revisions and all retained
/// records in revision order. The key index is rebuilt from the records.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StoreSnapshot {
    /// [`Store::current_revision`] when taken.
    pub current_revision: i64,
    /// [`Store::compacted_revision`] when taken.
    pub compacted_revision: i64,
    /// Retained history, ascending by revision.
    pub records: Vec<SnapshotRecord>,
}

impl Store {
    /// Copy out everything needed to rebuild this store: the history it keeps once any
    /// compaction in progress is done (tests).
    pub fn to_snapshot(&self) -> StoreSnapshot {
        let kept: std::collections::BTreeSet<Revision> = self
            .settled_index()
            .values()
            .flat_map(|ki| ki.all_revisions().into_iter().map(|(r, _)| r))
            .collect();
        StoreSnapshot {
            current_revision: self.current,
            compacted_revision: self.compacted,
            records: self
                .history
                .reader()
                .scan(Revision::new(0, 0), None)
                .filter(|(rev, _)| kept.contains(rev))
                .map(|(rev, rec)| SnapshotRecord {
                    revision: rev,
                    tombstone: rec.tombstone,
                    key: rec.key.to_vec(),
                    value: rec.value,
                    create_revision: rec.create_revision,
                    version: rec.version,
                    lease: rec.lease,
                })
                .collect(),
        }
    }

    /// A store in memory rebuilt from a snapshot by replaying its records in revision order
    /// into a fresh index. Lenient towards snapshots this module did not write: records are
    /// sorted, duplicate revisions and tombstones of keys that are not live are dropped, and the
    /// revisions are clamped so that `0 <= compacted <= current` and `current >=` every record.
    pub fn from_snapshot(s: StoreSnapshot) -> Store {
        let mut store = Store::empty(Backend::in_memory());
        let mut records = s.records;
        records.sort_by_key(|r| r.revision);
        records.dedup_by_key(|r| r.revision);
        let mut max_main = 1;
        for r in records {
            let key = store.shared_key(&r.key);
            let rec = Record {
                key,
                value: r.value,
                create_revision: r.create_revision,
                version: r.version,
                lease: r.lease,
                tombstone: r.tombstone,
            };
            if store.insert_record(r.revision, rec) {
                max_main = max_main.max(r.revision.main);
            }
        }
        store.current = s.current_revision.max(max_main);
        store.compacted = s.compacted_revision.clamp(NEVER_COMPACTED, store.current);
        store
    }
}
