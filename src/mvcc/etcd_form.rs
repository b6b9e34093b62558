//! The history and compaction state in etcd's own backend form, for etcd-format snapshots
//! (`server::snapshot`): detcd's `key` records and compaction point converted to what etcd's
//! `key` and `meta` buckets hold, and back.
//!
//! etcd's forms: a put is stored under its 17-byte revision with its `mvccpb.KeyValue` (the same
//! bytes detcd stores after its flag byte); a tombstone under the revision plus `t`, with a
//! `KeyValue` holding only the key. The compaction point is `meta/finishedCompactRev` and
//! `meta/scheduledCompactRev`, each a 17-byte revision (`main`, sub 0); a scheduled point past
//! the finished one is a compaction to be finished at start, which both etcd and detcd do.

use prost::Message as _;

use super::history::{parse_revision_key, revision_key, stored_kv, REVISION_KEY_LEN};
use super::revision::Revision;
use super::store::Record;
use crate::pb::mvccpb;
use crate::storage::backend::Pair;

/// etcd's mark of a tombstone's revision key.
const TOMBSTONE_MARK: u8 = b't';
const FINISHED: &[u8] = b"finishedCompactRev";
const SCHEDULED: &[u8] = b"scheduledCompactRev";
/// detcd's flag bytes (see `history`).
const PUT_FLAG: u8 = 0;
const TOMBSTONE_FLAG: u8 = 1;

/// A stored record (detcd's `key` bucket pair) in etcd's form.
pub fn record_to_etcd(key: &[u8], value: &[u8]) -> Result<Pair, String> {
    parse_revision_key(key).ok_or_else(|| format!("bad revision key {key:?}"))?;
    match value.split_first() {
        Some((&PUT_FLAG, body)) => Ok((key.to_vec(), body.to_vec())),
        Some((&TOMBSTONE_FLAG, body)) => {
            let kv = mvccpb::KeyValue::decode(body).map_err(|e| format!("tombstone: {e}"))?;
            let mut etcd_key = key.to_vec();
            etcd_key.push(TOMBSTONE_MARK);
            let only_key = mvccpb::KeyValue {
                key: kv.key,
                ..Default::default()
            };
            Ok((etcd_key, only_key.encode_to_vec()))
        }
        _ => Err(format!("bad record at {key:?}")),
    }
}

/// The pair etcd's `key` bucket holds for the record at `rev`.
pub(crate) fn etcd_record(rev: Revision, rec: &Record) -> Pair {
    let mut key = revision_key(rev).to_vec();
    let kv = if rec.tombstone {
        key.push(TOMBSTONE_MARK);
        mvccpb::KeyValue {
            key: bytes::Bytes::copy_from_slice(&rec.key),
            ..Default::default()
        }
    } else {
        stored_kv(rev, rec)
    };
    (key, kv.encode_to_vec())
}

/// A pair of etcd's `key` bucket as detcd stores it.
pub fn record_from_etcd(key: &[u8], value: &[u8]) -> Result<Pair, String> {
    let rev = parse_revision_key(key).ok_or_else(|| format!("bad revision key {key:?}"))?;
    let kv = mvccpb::KeyValue::decode(value).map_err(|e| format!("record at {rev}: {e}"))?;
    let rev_key = revision_key(rev).to_vec();
    match &key[REVISION_KEY_LEN..] {
        [] => {
            let mut out = Vec::with_capacity(1 + value.len());
            out.push(PUT_FLAG);
            out.extend_from_slice(value);
            Ok((rev_key, out))
        }
        [TOMBSTONE_MARK] => {
            let tombstone = mvccpb::KeyValue {
                key: kv.key,
                mod_revision: rev.main,
                ..Default::default()
            };
            let mut out = vec![TOMBSTONE_FLAG];
            tombstone.encode(&mut out).expect("a Vec grows as needed");
            Ok((rev_key, out))
        }
        _ => Err(format!("bad revision key {key:?}")),
    }
}

/// etcd's `meta` pairs for compaction point `compacted` (none if never compacted); `finished`
/// says whether every record it removes is gone from the view being written.
pub fn compaction_to_etcd(compacted: i64, finished: bool) -> Vec<Pair> {
    if compacted < 0 {
        return Vec::new();
    }
    let rev = revision_key(Revision::new(compacted, 0)).to_vec();
    let mut out = Vec::new();
    if finished {
        out.push((FINISHED.to_vec(), rev.clone()));
    }
    out.push((SCHEDULED.to_vec(), rev));
    out
}

/// The compaction point recorded in etcd's `meta` bucket pair `(key, value)`, if it is one.
pub fn compaction_from_etcd(key: &[u8], value: &[u8]) -> Option<i64> {
    (key == FINISHED || key == SCHEDULED)
        .then(|| parse_revision_key(value).map(|r| r.main))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_the_round_trip_and_tombstones_take_etcds_form() {
        let kv = mvccpb::KeyValue {
            key: b"k".to_vec().into(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            value: b"v".to_vec().into(),
            lease: 7,
        };
        let key = revision_key(Revision::new(3, 0));
        let mut stored = vec![PUT_FLAG];
        stored.extend_from_slice(&kv.encode_to_vec());
        let (etcd_key, etcd_value) = record_to_etcd(&key, &stored).unwrap();
        assert_eq!(
            (etcd_key.as_slice(), etcd_value),
            (&key[..], kv.encode_to_vec())
        );
        assert_eq!(
            record_from_etcd(&etcd_key, &kv.encode_to_vec()).unwrap().1,
            stored
        );

        let tomb = mvccpb::KeyValue {
            key: b"k".to_vec().into(),
            mod_revision: 4,
            ..Default::default()
        };
        let key = revision_key(Revision::new(4, 0));
        let mut stored = vec![TOMBSTONE_FLAG];
        stored.extend_from_slice(&tomb.encode_to_vec());
        let (etcd_key, etcd_value) = record_to_etcd(&key, &stored).unwrap();
        assert_eq!(etcd_key.last(), Some(&b't'));
        let only_key = mvccpb::KeyValue::decode(etcd_value.as_slice()).unwrap();
        assert_eq!(
            (only_key.key.as_ref(), only_key.mod_revision),
            (&b"k"[..], 0)
        );
        assert_eq!(
            record_from_etcd(&etcd_key, &etcd_value).unwrap(),
            (key.to_vec(), stored)
        );
        assert!(record_from_etcd(b"short", &etcd_value).is_err());
    }

    #[test]
    fn compaction_points_round_trip() {
        assert!(compaction_to_etcd(-1, true).is_empty());
        let pairs = compaction_to_etcd(9, false);
        assert_eq!(pairs.len(), 1);
        assert_eq!(compaction_from_etcd(&pairs[0].0, &pairs[0].1), Some(9));
        assert_eq!(compaction_to_etcd(9, true).len(), 2);
        assert_eq!(compaction_from_etcd(b"consistent_index", &[0; 8]), None);
    }
}
