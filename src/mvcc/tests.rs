//! Unit tests for the store's public API, one group per rule: revisions and
//! versions, history reads, range conventions, transactions, compaction,
//! hashing, watch events and snapshots. Each test builds a small history by
//! hand, so the expected revisions can be read straight off the calls.

use crate::mvcc::{
    Event, EventKind, IndexBuilder, KeyValue, MvccError, Revision, SnapshotRecord, Store,
    StoreSnapshot,
};

fn put(s: &mut Store, key: &str, value: &str) -> Vec<Event> {
    let mut txn = s.write();
    txn.put(key.as_bytes(), value.as_bytes(), 0);
    let events = txn.commit();
    s.check_invariants().unwrap();
    events
}

fn del(s: &mut Store, key: &str, end: &str) -> Vec<Event> {
    let mut txn = s.write();
    txn.delete_range(key.as_bytes(), end.as_bytes());
    let events = txn.commit();
    s.check_invariants().unwrap();
    events
}

fn get(s: &Store, key: &str, rev: i64) -> Option<KeyValue> {
    let r = s.range(key.as_bytes(), b"", rev, 0).unwrap();
    assert!(r.kvs.len() <= 1);
    r.kvs.into_iter().next()
}

fn keys(s: &Store, key: &str, end: &str, rev: i64, limit: usize) -> Vec<String> {
    s.range(key.as_bytes(), end.as_bytes(), rev, limit)
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| String::from_utf8(kv.key).unwrap())
        .collect()
}

fn kv(key: &str, value: &str, create: i64, modr: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec(),
        create_revision: create,
        mod_revision: modr,
        version,
        value: value.as_bytes().to_vec(),
        lease: 0,
    }
}

#[test]
fn doc_example() {
    let mut store = Store::new();
    let mut txn = store.write();
    txn.put(b"foo", b"bar", 0);
    txn.commit();
    let r = store.range(b"foo", b"", 0, 0).unwrap();
    assert_eq!(r.kvs[0].mod_revision, 2);
    assert_eq!(r.revision, 2);
}

#[test]
fn new_store_starts_at_revision_one() {
    let s = Store::new();
    assert_eq!(s.current_revision(), 1);
    assert_eq!(s.compacted_revision(), -1, "never compacted");
    assert_eq!(s.key_count(), 0);
    assert_eq!(s.approx_bytes(), 0);
    let r = s.range(b"\0", b"\0", 0, 0).unwrap();
    assert!(r.kvs.is_empty());
    assert_eq!((r.count, r.revision), (0, 1));
    assert_eq!(s.range(b"a", b"", 1, 0).unwrap().count, 0);
    assert_eq!(Store::default(), s);
}

#[test]
fn put_sets_create_mod_and_version() {
    let mut s = Store::new();
    put(&mut s, "a", "1");
    assert_eq!(get(&s, "a", 0), Some(kv("a", "1", 2, 2, 1)));
    put(&mut s, "a", "2");
    assert_eq!(get(&s, "a", 0), Some(kv("a", "2", 2, 3, 2)));
    put(&mut s, "b", "x");
    assert_eq!(get(&s, "b", 0), Some(kv("b", "x", 4, 4, 1)));
    assert_eq!(s.current_revision(), 4);
    assert_eq!(s.key_count(), 2);
}

#[test]
fn put_returns_prev_and_keeps_lease() {
    let mut s = Store::new();
    let mut txn = s.write();
    assert_eq!(txn.put(b"a", b"1", 7), None);
    txn.commit();
    let mut txn = s.write();
    let prev = txn.put(b"a", b"2", 0).unwrap();
    assert_eq!((prev.value.as_slice(), prev.lease), (&b"1"[..], 7));
    txn.commit();
    assert_eq!(get(&s, "a", 0).unwrap().lease, 0);
    assert_eq!(get(&s, "a", 2).unwrap().lease, 7);
}

#[test]
fn reads_at_old_revisions_see_history() {
    let mut s = Store::new();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "b", "1"); // 3
    put(&mut s, "a", "2"); // 4
    del(&mut s, "b", ""); // 5
    assert_eq!(get(&s, "a", 1), None);
    assert_eq!(get(&s, "a", 2), Some(kv("a", "1", 2, 2, 1)));
    assert_eq!(get(&s, "a", 3), Some(kv("a", "1", 2, 2, 1)));
    assert_eq!(get(&s, "a", 4), Some(kv("a", "2", 2, 4, 2)));
    assert_eq!(get(&s, "b", 4), Some(kv("b", "1", 3, 3, 1)));
    assert_eq!(get(&s, "b", 5), None);
    assert_eq!(keys(&s, "\0", "\0", 3, 0), vec!["a", "b"]);
    assert_eq!(keys(&s, "\0", "\0", 5, 0), vec!["a"]);
    // The header revision is always the current one.
    assert_eq!(s.range(b"a", b"", 2, 0).unwrap().revision, 5);
}

#[test]
fn delete_resets_generation() {
    let mut s = Store::new();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "a", "2"); // 3
    let ev = del(&mut s, "a", ""); // 4
    assert_eq!(
        ev,
        vec![Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: b"a".to_vec(),
                mod_revision: 4,
                ..KeyValue::default()
            },
            prev_kv: Some(kv("a", "2", 2, 3, 2)),
        }]
    );
    assert_eq!(s.key_count(), 0);
    put(&mut s, "a", "3"); // 5
    assert_eq!(get(&s, "a", 0), Some(kv("a", "3", 5, 5, 1)));
    assert_eq!(get(&s, "a", 3), Some(kv("a", "2", 2, 3, 2)));
    assert_eq!(get(&s, "a", 4), None);
}

#[test]
fn deleting_nothing_does_not_bump_revision() {
    let mut s = Store::new();
    put(&mut s, "a", "1");
    assert!(del(&mut s, "b", "").is_empty());
    assert!(del(&mut s, "x", "z").is_empty());
    assert!(del(&mut s, "c", "a").is_empty());
    assert_eq!(s.current_revision(), 2);
    del(&mut s, "a", "");
    assert!(del(&mut s, "a", "").is_empty());
    assert_eq!(s.current_revision(), 3);
    assert!(s.write().commit().is_empty());
    assert_eq!(s.current_revision(), 3);
}

#[test]
fn dropped_txn_changes_nothing() {
    let mut s = Store::new();
    put(&mut s, "a", "1");
    let before = Store::from_snapshot(s.to_snapshot());
    {
        let mut txn = s.write();
        txn.put(b"b", b"2", 0);
        txn.delete_range(b"a", b"");
    }
    assert_eq!(s, before);
}

#[test]
fn delete_range_shares_one_revision() {
    let mut s = Store::new();
    for k in ["a", "b", "c", "d"] {
        put(&mut s, k, k);
    }
    let mut txn = s.write();
    let prevs = txn.delete_range(b"b", b"\0");
    assert_eq!(
        prevs.iter().map(|p| p.key.clone()).collect::<Vec<_>>(),
        [b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
    );
    let ev = txn.commit();
    assert_eq!(s.current_revision(), 6);
    assert!(ev
        .iter()
        .all(|e| e.kind == EventKind::Delete && e.kv.mod_revision == 6));
    assert_eq!(keys(&s, "\0", "\0", 0, 0), vec!["a"]);
    let all = s.events_since(b"\0", b"\0", 6).unwrap();
    assert_eq!(all, ev);
}

#[test]
fn txn_changes_share_revision_and_read_own_writes() {
    let mut s = Store::new();
    put(&mut s, "a", "0"); // 2
    let mut txn = s.write();
    assert_eq!(txn.revision(), 3);
    let r = txn.range(b"\0", b"\0", 0);
    assert_eq!((r.count, r.revision), (1, 2));
    txn.put(b"b", b"1", 0);
    txn.put(b"c", b"1", 0);
    txn.delete_range(b"a", b"");
    let r = txn.range(b"\0", b"\0", 1);
    assert_eq!((r.count, r.revision), (2, 3));
    assert_eq!(r.kvs, vec![kv("b", "1", 3, 3, 1)]);
    assert_eq!(txn.range(b"a", b"", 0).count, 0);
    let ev = txn.commit();
    assert_eq!(ev.len(), 3);
    assert!(ev.iter().all(|e| e.kv.mod_revision == 3));
    assert_eq!(s.current_revision(), 3);
    assert_eq!(keys(&s, "\0", "\0", 0, 0), vec!["b", "c"]);
    assert_eq!(keys(&s, "\0", "\0", 2, 0), vec!["a"]);
}

#[test]
fn duplicate_put_in_txn_later_wins() {
    let mut s = Store::new();
    put(&mut s, "a", "0"); // 2
    let mut txn = s.write();
    txn.put(b"a", b"1", 0);
    let prev = txn.put(b"a", b"2", 0).unwrap();
    assert_eq!(prev, kv("a", "1", 2, 3, 2));
    let ev = txn.commit();
    assert_eq!(ev[1].prev_kv, Some(kv("a", "1", 2, 3, 2)));
    assert_eq!(get(&s, "a", 0), Some(kv("a", "2", 2, 3, 3)));
    // History keeps both sub revisions; the later one is visible.
    let hist = s.events_since(b"a", b"", 3).unwrap();
    assert_eq!(hist, ev);
}

#[test]
fn put_delete_put_in_one_txn() {
    let mut s = Store::new();
    put(&mut s, "a", "0"); // 2
    let mut txn = s.write();
    txn.put(b"a", b"1", 0);
    txn.delete_range(b"a", b"");
    assert_eq!(txn.put(b"a", b"2", 0), None);
    let ev = txn.commit();
    assert_eq!(
        ev.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::Put, EventKind::Delete, EventKind::Put]
    );
    assert_eq!(ev[2].prev_kv, None);
    assert_eq!(get(&s, "a", 0), Some(kv("a", "2", 3, 3, 1)));
    assert_eq!(s.key_count(), 1);
    assert_eq!(s.events_since(b"\0", b"\0", 3).unwrap(), ev);
}

#[test]
fn range_conventions_limit_and_count() {
    let mut s = Store::new();
    for k in ["a", "b", "c", "d", "e"] {
        put(&mut s, k, k);
    }
    assert_eq!(keys(&s, "b", "d", 0, 0), vec!["b", "c"]);
    assert_eq!(keys(&s, "c", "\0", 0, 0), vec!["c", "d", "e"]);
    assert_eq!(keys(&s, "\0", "\0", 0, 2), vec!["a", "b"]);
    assert_eq!(keys(&s, "", "\0", 0, 0).len(), 5);
    assert!(keys(&s, "d", "b", 0, 0).is_empty());
    assert!(keys(&s, "b", "b", 0, 0).is_empty());
    let r = s.range(b"\0", b"\0", 0, 2).unwrap();
    assert_eq!((r.kvs.len(), r.count), (2, 5));
    let r = s.range(b"a", b"c", 3, 1).unwrap();
    assert_eq!((r.kvs.len(), r.count, r.revision), (1, 2, 6));
}

#[test]
fn read_revision_errors() {
    let mut s = Store::new();
    for v in ["1", "2", "3", "4"] {
        put(&mut s, "a", v); // 2..=5
    }
    assert_eq!(s.range(b"a", b"", 6, 0), Err(MvccError::FutureRevision));
    s.compact(4).unwrap();
    assert_eq!(s.range(b"a", b"", 3, 0), Err(MvccError::Compacted));
    assert_eq!(get(&s, "a", 4), Some(kv("a", "3", 2, 4, 3)));
    assert_eq!(get(&s, "a", 0), Some(kv("a", "4", 2, 5, 4)));
    assert_eq!(s.range(b"a", b"", 6, 0), Err(MvccError::FutureRevision));
    assert_eq!(
        MvccError::Compacted.to_string(),
        "mvcc: required revision has been compacted"
    );
    assert_eq!(
        MvccError::FutureRevision.to_string(),
        "mvcc: required revision is a future revision"
    );
}

#[test]
fn compact_revision_errors() {
    // As etcd: a fresh store was never compacted (-1), so 0 and then 1 may be compacted.
    let mut s = Store::new();
    assert_eq!(s.compacted_revision(), -1);
    assert_eq!(s.hash_kv(0).unwrap().1, -1, "HashKV reports -1 like etcd");
    s.compact(0).unwrap();
    assert_eq!(s.compacted_revision(), 0);
    assert_eq!(s.compact(0), Err(MvccError::Compacted));
    assert_eq!(s.compact(-1), Err(MvccError::Compacted));
    assert_eq!(s.compact(2), Err(MvccError::FutureRevision));
    s.compact(1).unwrap();
    assert_eq!(Store::new().compact(1), Ok(()), "1 without 0 first");
    put(&mut s, "a", "1"); // 2
    put(&mut s, "a", "2"); // 3
    s.compact(2).unwrap();
    assert_eq!(s.compact(2), Err(MvccError::Compacted));
    assert_eq!(s.compact(1), Err(MvccError::Compacted));
    assert_eq!(s.compact(4), Err(MvccError::FutureRevision));
    s.compact(3).unwrap();
    assert_eq!(s.compacted_revision(), 3);
}

#[test]
fn compaction_keeps_values_live_at_revision() {
    let mut s = Store::new();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "a", "2"); // 3
    put(&mut s, "b", "1"); // 4
    put(&mut s, "a", "3"); // 5
    del(&mut s, "b", ""); // 6
    put(&mut s, "c", "1"); // 7
    let bytes = s.approx_bytes();
    let at4 = s.range(b"\0", b"\0", 4, 0).unwrap();
    s.compact(4).unwrap();
    s.check_invariants().unwrap();
    assert_eq!(s.approx_bytes(), bytes, "freed once deleted");
    s.flush(crate::storage::Batch::default(), false).unwrap();
    s.check_invariants().unwrap();
    assert!(s.approx_bytes() < bytes);
    assert_eq!(s.range(b"\0", b"\0", 4, 0).unwrap(), at4);
    assert_eq!(get(&s, "a", 4), Some(kv("a", "2", 2, 3, 2)));
    assert_eq!(get(&s, "a", 5), Some(kv("a", "3", 2, 5, 3)));
    assert_eq!(get(&s, "b", 5), Some(kv("b", "1", 4, 4, 1)));
    // Compacting at the tombstone drops b entirely.
    s.compact(6).unwrap();
    s.check_invariants().unwrap();
    assert_eq!(get(&s, "b", 6), None);
    assert_eq!(keys(&s, "\0", "\0", 6, 0), vec!["a"]);
    assert_eq!(keys(&s, "\0", "\0", 7, 0), vec!["a", "c"]);
    assert!(s.events_since(b"b", b"", 7).unwrap().is_empty());
    // Only the newest record of each live key remains at or below 6.
    let snap = s.to_snapshot();
    let revs: Vec<Revision> = snap.records.iter().map(|r| r.revision).collect();
    assert_eq!(revs, vec![Revision::new(5, 0), Revision::new(7, 0)]);
}

#[test]
fn compaction_of_recreated_key() {
    let mut s = Store::new();
    put(&mut s, "a", "1"); // 2
    del(&mut s, "a", ""); // 3
    put(&mut s, "a", "2"); // 4
    put(&mut s, "a", "3"); // 5
    s.compact(3).unwrap();
    s.check_invariants().unwrap();
    assert_eq!(get(&s, "a", 3), None);
    assert_eq!(get(&s, "a", 4), Some(kv("a", "2", 4, 4, 1)));
    s.compact(5).unwrap();
    assert_eq!(get(&s, "a", 5), Some(kv("a", "3", 4, 5, 2)));
    assert_eq!(s.to_snapshot().records.len(), 1);
    put(&mut s, "a", "4"); // 6
    assert_eq!(get(&s, "a", 0), Some(kv("a", "4", 4, 6, 3)));
}

#[test]
fn hash_is_deterministic_and_history_sensitive() {
    let build = |last: &str| {
        let mut s = Store::new();
        put(&mut s, "a", "1");
        put(&mut s, "b", "2");
        del(&mut s, "a", "");
        put(&mut s, "c", last);
        s
    };
    let (x, y, z) = (build("3"), build("3"), build("4"));
    assert_eq!(x.hash_kv(0), y.hash_kv(0));
    assert_ne!(x.hash_kv(0), z.hash_kv(0));
    // Revisions up to 4 are identical in x and z.
    assert_eq!(x.hash_kv(4), z.hash_kv(4));
    assert_eq!(x.hash_kv(6), Err(MvccError::FutureRevision));
    // The hash at a revision does not change when history grows.
    let mut w = build("3");
    let h4 = w.hash_kv(4).unwrap();
    put(&mut w, "d", "9");
    assert_eq!(w.hash_kv(4).unwrap(), h4);
    assert_ne!(w.hash_kv(0), x.hash_kv(0));
    // Tombstones count: deleting changes the hash at the delete revision.
    assert_ne!(x.hash_kv(4).unwrap(), x.hash_kv(3).unwrap());
    // After compaction: the records compaction keeps and those above it, and the compaction
    // point is reported; rev == compacted is allowed.
    let mut c = build("3");
    let before = c.hash_kv(4).unwrap().0;
    c.compact(3).unwrap();
    // etcd refuses the compaction revision itself.
    assert_eq!(c.hash_kv(3), Err(MvccError::Compacted));
    let (h, rev) = c.hash_kv(4).unwrap();
    // a's put at 2 lies below the compaction point and is not what a compaction at 4 keeps
    // (a is deleted at 4): no longer hashed. Two members compacted alike agree.
    assert_ne!((h, rev), (before, 3));
    let mut c2 = build("3");
    c2.compact(3).unwrap();
    assert_eq!(c2.hash_kv(4).unwrap(), (h, 3));
    let mut d = build("3");
    let before = d.hash_kv(5).unwrap().0;
    d.compact(4).unwrap();
    // a's put and tombstone are gone: they are no longer hashed.
    assert_ne!(d.hash_kv(5).unwrap(), (before, 4));
    assert_eq!(c.hash_kv(0).unwrap().1, 3);
}

#[test]
fn events_since_reports_puts_and_deletes_with_prev() {
    let mut s = Store::new();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "b", "1"); // 3
    put(&mut s, "a", "2"); // 4
    del(&mut s, "a", "c"); // 5: a, b
    put(&mut s, "a", "3"); // 6
    let ev = s.events_since(b"a", b"", 3).unwrap();
    assert_eq!(
        ev.iter()
            .map(|e| (e.kind, e.kv.mod_revision))
            .collect::<Vec<_>>(),
        [
            (EventKind::Put, 4),
            (EventKind::Delete, 5),
            (EventKind::Put, 6)
        ]
    );
    assert_eq!(ev[0].prev_kv, Some(kv("a", "1", 2, 2, 1)));
    assert_eq!(ev[1].prev_kv, Some(kv("a", "2", 2, 4, 2)));
    assert_eq!(ev[2].prev_kv, None);
    let all = s.events_since(b"\0", b"\0", 2).unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[4].kv.key, b"b".to_vec());
    assert_eq!(all[4].prev_kv, Some(kv("b", "1", 3, 3, 1)));
    assert_eq!(s.events_since(b"b", b"c", 5).unwrap().len(), 1);
    assert!(s.events_since(b"\0", b"\0", 7).unwrap().is_empty());
    assert!(s.events_since(b"\0", b"\0", 100).unwrap().is_empty());
    assert!(s.events_since(b"c", b"a", 2).unwrap().is_empty());
    // Never compacted: from revision 0 (there is nothing at 0) is all of history.
    assert_eq!(s.events_since(b"a", b"", 0), s.events_since(b"a", b"", 1));
    // Watch semantics: start must be strictly after the compaction point,
    // and prev_kv may come from the record kept by compaction.
    put(&mut s, "b", "2"); // 7
    s.compact(6).unwrap();
    assert_eq!(s.events_since(b"a", b"", 6), Err(MvccError::Compacted));
    assert_eq!(s.events_since(b"a", b"", 5), Err(MvccError::Compacted));
    put(&mut s, "a", "4"); // 8
    let ev = s.events_since(b"a", b"", 7).unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].prev_kv, Some(kv("a", "3", 6, 6, 1)));
}

#[test]
fn snapshot_round_trip_preserves_everything() {
    let mut s = Store::new();
    put(&mut s, "a", "1");
    put(&mut s, "b", "1");
    del(&mut s, "a", "");
    put(&mut s, "a", "2");
    put(&mut s, "c", "1");
    s.compact(4).unwrap();
    del(&mut s, "\0", "\0");
    put(&mut s, "b", "2");
    let mut r = Store::from_snapshot(s.to_snapshot());
    r.check_invariants().unwrap();
    assert_eq!(r, s);
    assert_eq!(r.hash_kv(0), s.hash_kv(0));
    assert_eq!(r.current_revision(), s.current_revision());
    assert_eq!(r.compacted_revision(), 4);
    assert_eq!(r.key_count(), s.key_count());
    s.flush(crate::storage::Batch::default(), false).unwrap();
    assert_eq!(r.approx_bytes(), s.approx_bytes());
    for rev in 4..=s.current_revision() {
        assert_eq!(r.range(b"\0", b"\0", rev, 0), s.range(b"\0", b"\0", rev, 0));
    }
    assert_eq!(
        r.events_since(b"\0", b"\0", 5),
        s.events_since(b"\0", b"\0", 5)
    );
    // Both continue identically.
    put(&mut s, "d", "1");
    put(&mut r, "d", "1");
    assert_eq!(r, s);
    // An empty store round-trips too.
    assert_eq!(
        Store::from_snapshot(Store::new().to_snapshot()),
        Store::new()
    );
}

#[test]
fn snapshot_is_serde() {
    fn assert_serde<T: serde::Serialize + serde::de::DeserializeOwned>() {}
    assert_serde::<KeyValue>();
}

#[test]
fn from_snapshot_is_lenient() {
    let rec = |main, key: &str, tombstone| SnapshotRecord {
        revision: Revision::new(main, 0),
        tombstone,
        key: key.as_bytes().to_vec(),
        value: if tombstone { vec![] } else { b"v".to_vec() },
        create_revision: if tombstone { 0 } else { main },
        version: i64::from(!tombstone),
        lease: 0,
    };
    let snap = StoreSnapshot {
        current_revision: 2,
        compacted_revision: 9,
        records: vec![
            rec(4, "b", false),
            rec(2, "a", false),
            rec(3, "z", true), // tombstone of a key that never lived
            rec(2, "a", false),
        ],
    };
    let s = Store::from_snapshot(snap);
    s.check_invariants().unwrap();
    assert_eq!(s.current_revision(), 4);
    assert_eq!(s.compacted_revision(), 4);
    assert_eq!(s.key_count(), 2);
    assert_eq!(s.to_snapshot().records.len(), 2);
}

#[test]
fn key_count_and_bytes_track_changes() {
    let mut s = Store::new();
    put(&mut s, "a", "12345");
    let one = s.approx_bytes();
    assert!(one >= 6);
    put(&mut s, "b", "1");
    put(&mut s, "a", "x");
    assert_eq!(s.key_count(), 2);
    assert!(s.approx_bytes() > one);
    del(&mut s, "\0", "\0");
    assert_eq!(s.key_count(), 0);
    s.compact(s.current_revision()).unwrap();
    assert_eq!(s.to_snapshot().records.len(), 0);
    assert!(s.approx_bytes() > 0, "counted until deleted");
    s.flush(crate::storage::Batch::default(), false).unwrap();
    assert_eq!(s.approx_bytes(), 0);
}

#[test]
fn flushed_store_reopens_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let disk = crate::io::Disk::new(dir.path());
    disk.create_dir_all("").unwrap();
    let backend = crate::storage::Backend::open(&disk, "db", 1 << 20).unwrap();
    let mut s = Store::open(backend).unwrap();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "b", "1"); // 3
    del(&mut s, "a", ""); // 4
    put(&mut s, "a", "2"); // 5
    s.flush(crate::storage::Batch::default(), true).unwrap();
    s.compact(3).unwrap();
    put(&mut s, "c", "1"); // 6
    s.flush(crate::storage::Batch::default(), true).unwrap();
    put(&mut s, "d", "unflushed"); // 7, lost with the process
    let expected = s.to_snapshot();
    drop(s);
    let reopened =
        Store::open(crate::storage::Backend::open(&disk, "db", 1 << 20).unwrap()).unwrap();
    reopened.check_invariants().unwrap();
    assert_eq!(reopened.current_revision(), 6);
    assert_eq!(reopened.compacted_revision(), 3);
    assert_eq!(reopened.key_count(), 3);
    let mut without_d = expected;
    without_d.records.retain(|r| r.key != b"d");
    without_d.current_revision = 6;
    assert_eq!(reopened.to_snapshot(), without_d);
    assert_eq!(get(&reopened, "a", 0), Some(kv("a", "2", 5, 5, 1)));
    assert_eq!(reopened.range(b"a", b"", 2, 0), Err(MvccError::Compacted));
}

/// The index a follower builds while it loads a snapshot image, record by record, is the one
/// a restart builds by scanning the backend (a raft snapshot install relies on it).
#[test]
fn an_index_built_record_by_record_is_the_one_a_reopen_builds() {
    use crate::storage::Bucket;
    let dir = tempfile::tempdir().unwrap();
    let disk = crate::io::Disk::new(dir.path());
    disk.create_dir_all("").unwrap();
    let backend = crate::storage::Backend::open(&disk, "db", 1 << 20).unwrap();
    let mut s = Store::open(backend.clone()).unwrap();
    put(&mut s, "a", "1");
    put(&mut s, "b", "1");
    del(&mut s, "a", "");
    let mut txn = s.write();
    txn.put(b"leased", b"v", 7);
    txn.put(b"a", b"2", 0);
    txn.commit();
    s.compact(3).unwrap();
    put(&mut s, "c", "1");
    s.flush(crate::storage::Batch::default(), true).unwrap();
    drop(s);
    let (scanned, scanned_leases) = Store::open_with_leases(backend.clone()).unwrap();
    let mut builder = IndexBuilder::new(backend.clone());
    let view = backend.read().unwrap();
    view.for_each(Bucket::Key, |k, v| builder.add_record(k, v))
        .unwrap();
    drop(view);
    let (built, built_leases) = builder.finish().unwrap();
    built.check_invariants().unwrap();
    assert_eq!(built.to_snapshot(), scanned.to_snapshot());
    assert_eq!(built.compacted_revision(), 3);
    assert_eq!(built.approx_bytes(), scanned.approx_bytes());
    assert_eq!(built_leases, scanned_leases);
    assert_eq!(built_leases.get(b"leased".as_slice()), Some(&7));
}

#[test]
fn a_compaction_cut_short_by_a_crash_finishes_after_reopen() {
    use crate::mvcc::history::DELETE_BATCH;
    let dir = tempfile::tempdir().unwrap();
    let disk = crate::io::Disk::new(dir.path());
    disk.create_dir_all("").unwrap();
    let open = || Store::open(crate::storage::Backend::open(&disk, "db", 1 << 20).unwrap());
    let mut s = open().unwrap();
    let quick_put = |s: &mut Store, key: &str, value: &str| {
        let mut txn = s.write();
        txn.put(key.as_bytes(), value.as_bytes(), 0);
        txn.commit();
    };
    quick_put(&mut s, "x", "1"); // 2
    let overwrites = DELETE_BATCH + 900;
    for i in 0..overwrites {
        quick_put(&mut s, "y", &i.to_string()); // 3 ..
    }
    let mut txn = s.write();
    txn.delete_range(b"x", b"");
    txn.commit(); // x's tombstone, newest of all
    s.flush(crate::storage::Batch::default(), true).unwrap();
    let full = s.approx_bytes();
    s.compact(s.current_revision()).unwrap();
    // Every record but y's last is doomed: x's put, y's older values, x's tombstone.
    assert_eq!(s.compaction_backlog(), overwrites + 1);
    assert_eq!(
        s.approx_bytes(),
        full,
        "nothing is freed before it is deleted"
    );
    s.flush(crate::storage::Batch::default(), true).unwrap();
    assert_eq!(s.compaction_backlog(), overwrites + 1 - DELETE_BATCH);
    assert!(s.approx_bytes() < full);
    s.check_invariants().unwrap();
    drop(s); // a crash: x's tombstone is still stored, its put is gone

    let mut s = open().unwrap();
    s.check_invariants().unwrap();
    assert_eq!(s.compaction_backlog(), overwrites + 1 - DELETE_BATCH);
    assert_eq!(get(&s, "x", 0), None);
    assert_eq!(s.key_count(), 1);
    while s.compaction_backlog() > 0 {
        s.flush(crate::storage::Batch::default(), false).unwrap();
    }
    s.check_invariants().unwrap();
    let y = get(&s, "y", 0).unwrap();
    assert_eq!(y.value, (overwrites - 1).to_string().into_bytes());
    assert_eq!(
        s.approx_bytes(),
        Store::open(s.backend().clone()).unwrap().approx_bytes()
    );
    s.flush(crate::storage::Batch::default(), true).unwrap();
    drop(s);
    let s = open().unwrap();
    assert_eq!(s.compaction_backlog(), 0);
    s.check_invariants().unwrap();
    assert_eq!(
        s.approx_bytes(),
        y.key.len() + y.value.len() + crate::mvcc::store::RECORD_OVERHEAD
    );
}

/// Found by the simulator (seeds 34, 148 with a small deletion batch): a compaction that
/// dropped a not-yet-flushed tombstone at once, while the older, stored put of the same key
/// waited for its deletion batch, let a crash in between resurrect the deleted key.
#[test]
fn a_crash_mid_compaction_never_resurrects_a_deleted_key() {
    use crate::mvcc::history::DELETE_BATCH;
    let dir = tempfile::tempdir().unwrap();
    let disk = crate::io::Disk::new(dir.path());
    disk.create_dir_all("").unwrap();
    let open = || Store::open(crate::storage::Backend::open(&disk, "db", 1 << 20).unwrap());
    let mut s = open().unwrap();
    // Enough older revisions that "gone"'s put is not in the first deletion batch.
    for i in 0..DELETE_BATCH + 10 {
        let mut txn = s.write();
        txn.put(b"filler", i.to_string().as_bytes(), 0);
        txn.commit();
    }
    put(&mut s, "gone", "1");
    s.flush(crate::storage::Batch::default(), true).unwrap();
    // Deleted and compacted within one flush interval: the tombstone was never stored.
    del(&mut s, "gone", "");
    s.compact(s.current_revision()).unwrap();
    s.flush(crate::storage::Batch::default(), true).unwrap();
    assert!(
        s.compaction_backlog() > 0,
        "the put waits for a later batch"
    );
    drop(s); // a crash

    let s = open().unwrap();
    s.check_invariants().unwrap();
    assert_eq!(get(&s, "gone", 0), None, "a deleted key came back");
    assert_eq!(s.key_count(), 1);
}

#[test]
fn an_index_compaction_in_steps_reads_the_same_throughout() {
    use crate::mvcc::index_compaction::KEYS_PER_STEP;
    let mut s = Store::new();
    let keys = 2 * KEYS_PER_STEP + 5;
    let write = |s: &mut Store, key: usize, value: &str| {
        let mut txn = s.write();
        txn.put(format!("k{key:06}").as_bytes(), value.as_bytes(), 0);
        txn.commit();
    };
    for pass in ["old", "new"] {
        for k in 0..keys {
            write(&mut s, k, pass);
        }
    }
    let mut txn = s.write();
    txn.delete_range(b"k000000", b"k000010");
    txn.commit();
    let at = s.current_revision();
    let before = s.range(b"\0", b"\0", at, 0).unwrap().kvs;
    s.compact(at).unwrap();
    assert!(s.compaction_backlog() > 0);
    assert_eq!(s.range(b"\0", b"\0", at, 0).unwrap().kvs, before);
    assert_eq!(s.range(b"\0", b"\0", at - 1, 0), Err(MvccError::Compacted));
    // Writes while the index is being compacted.
    write(&mut s, 3, "during");
    write(&mut s, keys - 1, "during");
    let mut steps = 0;
    while s.compaction_backlog() > 0 {
        s.flush(crate::storage::Batch::default(), false).unwrap();
        assert_eq!(s.range(b"\0", b"\0", at, 0).unwrap().kvs, before);
        steps += 1;
    }
    assert!(steps > 2, "the walk took several flushes");
    s.check_invariants().unwrap();
    assert_eq!(s.key_count(), keys - 10 + 1);
    assert_eq!(s.to_snapshot().records.len(), keys - 10 + 1 + 1);
    assert_eq!(get(&s, "k000003", 0).unwrap().value, b"during".to_vec());
}
