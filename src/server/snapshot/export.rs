//! detcd's backend seen as etcd's buckets: the [`BucketSource`] a snapshot is written from.
//!
//! etcd 3.4's buckets, ascending: `alarm` (an encoded `AlarmMember` → empty), `auth`
//! (`authRevision`), `authRoles`, `authUsers`, `cluster` (`clusterVersion`), `key` (history,
//! see [`crate::mvcc::record_to_etcd`]), `lease` (8-byte big-endian id → `leasepb.Lease`),
//! `members` (hex id → the member as JSON), `members_removed`, `meta` (`consistent_index`
//! and the compaction point). Every bucket is read from the one [`ReadView`] the export holds,
//! so both passes of the writer see the same pairs.

use prost::Message as _;
use serde::Serialize;

use super::{auth_buckets, StoredLease};
use crate::mvcc::{compaction_to_etcd, record_to_etcd, stored_compaction};
use crate::pb::etcdserverpb::AlarmMember;
use crate::server::apply::ReplicatedState;
use crate::server::backend_state::{
    alarm_of_key, auth_in, consistent_index, lease_of_pair, membership_in,
};
use crate::storage::backend::Pair;
use crate::storage::bolt::write::{BucketSource, PairIter};
use crate::storage::{Bucket, ReadView, StorageError};

/// The buckets of a snapshot, ascending (etcd 3.4's set).
const BUCKETS: [&str; 10] = [
    "alarm",
    "auth",
    "authRoles",
    "authUsers",
    "cluster",
    "key",
    "lease",
    "members",
    "members_removed",
    "meta",
];
/// The cluster version recorded: etcd 3.4 refuses to start from a newer one.
const CLUSTER_VERSION: &str = "3.4.0";

/// A member as etcd's `members` bucket stores it (Go's field order and omissions).
#[derive(Serialize)]
struct EtcdMember<'a> {
    id: u64,
    #[serde(rename = "peerURLs")]
    peer_urls: &'a [String],
    #[serde(rename = "isLearner", skip_serializing_if = "std::ops::Not::not")]
    is_learner: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(rename = "clientURLs", skip_serializing_if = "<[String]>::is_empty")]
    client_urls: &'a [String],
}

/// One read view of the backend, presented as etcd's buckets.
pub struct EtcdExport {
    view: ReadView,
    /// Whether every record compaction removed is gone from the view (if not, the snapshot
    /// says the compaction is still to finish, and whoever restores it finishes it).
    compaction_finished: bool,
}

impl EtcdExport {
    /// A view of what `state`'s backend has committed.
    pub fn open(state: &ReplicatedState) -> Result<EtcdExport, StorageError> {
        // Taken under the store's lock: a flush (which deletes compacted records) holds it
        // exclusively, so the view and the backlog agree.
        let store = state.store();
        let view = store.backend().read()?;
        let compaction_finished = store.compaction_backlog() == 0;
        drop(store);
        Ok(EtcdExport {
            view,
            compaction_finished,
        })
    }

    /// The raft index the view reflects.
    pub fn consistent_index(&self) -> Result<u64, StorageError> {
        consistent_index(&self.view)
    }

    fn bucket(&self, name: &str) -> Result<PairIter, StorageError> {
        let pairs: Vec<Pair> = match name {
            "key" => {
                let records = self.view.range(Bucket::Key, &[], None)?;
                #[cfg(madsim)]
                let records = records.filter(|item| {
                    use crate::fault::{active, Bug};
                    let tombstone = matches!(item, Ok((_, v)) if v.first() == Some(&1));
                    !(tombstone && active(Bug::SnapshotDropsTombstones))
                });
                return Ok(Box::new(records.map(|item| {
                    let (k, v) = item?;
                    record_to_etcd(&k, &v).map_err(corrupt)
                })));
            }
            "alarm" => {
                let mut pairs = Vec::new();
                for item in self.view.range(Bucket::Alarm, &[], None)? {
                    let (member_id, alarm) = alarm_of_key(&item?.0)?;
                    let key = AlarmMember { member_id, alarm }.encode_to_vec();
                    pairs.push((key, Vec::new()));
                }
                pairs.sort();
                pairs
            }
            "auth" | "authUsers" | "authRoles" => auth_buckets::pairs(&auth_in(&self.view)?, name),
            "cluster" => vec![(b"clusterVersion".to_vec(), CLUSTER_VERSION.into())],
            "lease" => {
                let mut pairs = Vec::new();
                for item in self.view.range(Bucket::Lease, &[], None)? {
                    let (k, v) = item?;
                    let (id, ttl) = lease_of_pair(&k, &v)?;
                    let lease = StoredLease {
                        id,
                        ttl,
                        remaining_ttl: 0,
                    };
                    pairs.push((k, lease.encode_to_vec()));
                }
                pairs
            }
            "members" => {
                let mut pairs = Vec::new();
                for m in membership_in(&self.view)?
                    .unwrap_or_default()
                    .members
                    .values()
                {
                    let json = serde_json::to_vec(&EtcdMember {
                        id: m.id,
                        peer_urls: &m.peer_urls,
                        is_learner: m.is_learner,
                        name: &m.name,
                        client_urls: &m.client_urls,
                    })
                    .expect("a member always encodes");
                    pairs.push((format!("{:x}", m.id).into_bytes(), json));
                }
                pairs.sort();
                pairs
            }
            "meta" => {
                let index = self.consistent_index()?;
                let mut pairs = vec![(b"consistent_index".to_vec(), index.to_be_bytes().to_vec())];
                let compacted = stored_compaction(&self.view)?;
                pairs.extend(compaction_to_etcd(compacted, self.compaction_finished));
                pairs
            }
            _ => Vec::new(),
        };
        Ok(Box::new(pairs.into_iter().map(Ok)))
    }
}

/// etcd's `Maintenance.Hash` of the view: the CRC-32C of every bucket name and every pair, in
/// file order, except the consistent index (which differs between members holding the same
/// data).
pub fn hash(export: &EtcdExport) -> Result<u32, StorageError> {
    let mut crc = 0;
    for (i, name) in export.names().iter().enumerate() {
        crc = crc32c::crc32c_append(crc, name);
        for pair in export.pairs(i)? {
            let (k, v) = pair?;
            if name == b"meta" && k == b"consistent_index" {
                continue;
            }
            crc = crc32c::crc32c_append(crc, &k);
            crc = crc32c::crc32c_append(crc, &v);
        }
    }
    Ok(crc)
}

fn corrupt(reason: String) -> StorageError {
    StorageError::Corrupt {
        path: "snap/db".into(),
        offset: 0,
        reason,
    }
}

impl BucketSource for EtcdExport {
    fn names(&self) -> Vec<Vec<u8>> {
        BUCKETS.iter().map(|b| b.as_bytes().to_vec()).collect()
    }

    fn pairs(&self, bucket: usize) -> Result<PairIter, StorageError> {
        self.bucket(BUCKETS[bucket])
    }
}
