//! Property test: [`Store`] against a deliberately naive reference model.
//!
//! The model keeps the complete key -> [`KeyValue`] map for every revision
//! (`states[r]` is the state at revision `r`; index 0 is unused and
//! revision 1 is the empty initial state) plus every event ever produced.
//! It never forgets anything; compaction only moves its `compacted` marker,
//! which decides which reads must fail. Random operation sequences over the
//! keys `a`..`e` (puts, single and range deletes, multi-op transactions with
//! reads inside, valid and invalid compactions, reads at random revisions
//! with random ranges and limits, watch catch-up, hashes, snapshot
//! round-trips) must give identical results, errors and revisions, and the
//! store's internal invariants must hold after every step.

use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::prelude::*;

use crate::mvcc::{Event, EventKind, KeyValue, MvccError, RangeResult, Store};
use crate::storage::Batch;

const PUT_KEYS: [&[u8]; 5] = [b"a", b"b", b"c", b"d", b"e"];
const RANGE_KEYS: [&[u8]; 8] = [b"", b"\0", b"a", b"b", b"c", b"d", b"e", b"f"];
const RANGE_ENDS: [&[u8]; 8] = [b"", b"\0", b"a", b"b", b"c", b"d", b"e", b"f"];

#[derive(Clone, Debug)]
enum TxnOp {
    Put(usize, u8, i64),
    Delete(usize, usize),
    Range(usize, usize, usize),
}

#[derive(Clone, Debug)]
enum Op {
    Put(usize, u8, i64),
    Delete(usize, usize),
    Txn(Vec<TxnOp>),
    Compact(u16),
    Range(usize, usize, u16, usize),
    Events(usize, usize, u16),
    Hash(u16),
    Snapshot,
    /// Commit pending history to the backend (durably or not).
    Flush(bool),
    /// Flush, then rebuild the store from its backend alone, as a restart does.
    Reopen,
}

fn value_of(v: u8) -> Vec<u8> {
    if v.is_multiple_of(5) {
        Vec::new()
    } else {
        vec![b'v', v % 4]
    }
}

fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        k == key
    } else if end == [0] {
        key == [0] || k >= key
    } else {
        key <= k && k < end
    }
}

fn model_range(
    state: &BTreeMap<Vec<u8>, KeyValue>,
    key: &[u8],
    end: &[u8],
    limit: usize,
    revision: i64,
) -> RangeResult {
    let all: Vec<KeyValue> = state
        .values()
        .filter(|kv| in_range(&kv.key, key, end))
        .cloned()
        .collect();
    let count = all.len() as i64;
    let kvs = if limit == 0 {
        all
    } else {
        all.into_iter().take(limit).collect()
    };
    RangeResult {
        kvs,
        count,
        revision,
    }
}

struct Model {
    states: Vec<BTreeMap<Vec<u8>, KeyValue>>,
    compacted: i64,
    events: Vec<Event>,
}

/// What a model transaction produced, for comparison with the store's.
#[derive(Debug, PartialEq)]
enum TxnOut {
    Put(Option<KeyValue>),
    Delete(Vec<KeyValue>),
    Range(RangeResult),
}

impl Model {
    fn new() -> Self {
        Model {
            states: vec![BTreeMap::new(), BTreeMap::new()],
            compacted: -1,
            events: Vec::new(),
        }
    }

    fn current(&self) -> i64 {
        self.states.len() as i64 - 1
    }

    fn latest(&self) -> &BTreeMap<Vec<u8>, KeyValue> {
        &self.states[self.states.len() - 1]
    }

    fn read_rev(&self, rev: i64) -> Result<i64, MvccError> {
        let rev = if rev <= 0 { self.current() } else { rev };
        if rev > self.current() {
            Err(MvccError::FutureRevision)
        } else if rev < self.compacted {
            Err(MvccError::Compacted)
        } else {
            Ok(rev)
        }
    }

    fn range(
        &self,
        key: &[u8],
        end: &[u8],
        rev: i64,
        limit: usize,
    ) -> Result<RangeResult, MvccError> {
        let rev = self.read_rev(rev)?;
        Ok(model_range(
            &self.states[rev as usize],
            key,
            end,
            limit,
            self.current(),
        ))
    }

    fn compact(&mut self, rev: i64) -> Result<(), MvccError> {
        if rev <= self.compacted {
            Err(MvccError::Compacted)
        } else if rev > self.current() {
            Err(MvccError::FutureRevision)
        } else {
            self.compacted = rev;
            Ok(())
        }
    }

    fn events_since(&self, key: &[u8], end: &[u8], start: i64) -> Result<Vec<Event>, MvccError> {
        if start <= self.compacted {
            return Err(MvccError::Compacted);
        }
        Ok(self
            .events
            .iter()
            .filter(|e| e.kv.mod_revision >= start && in_range(&e.kv.key, key, end))
            .cloned()
            .collect())
    }

    fn txn(&mut self, ops: &[TxnOp]) -> (Vec<TxnOut>, Vec<Event>) {
        let rev = self.current() + 1;
        let mut state = self.latest().clone();
        let mut events = Vec::new();
        let mut outs = Vec::new();
        for op in ops {
            match *op {
                TxnOp::Put(k, v, lease) => {
                    let key = PUT_KEYS[k].to_vec();
                    let prev = state.get(&key).cloned();
                    let kv = KeyValue {
                        key: key.clone(),
                        create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                        mod_revision: rev,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                        value: value_of(v),
                        lease,
                    };
                    state.insert(key, kv.clone());
                    events.push(Event {
                        kind: EventKind::Put,
                        kv,
                        prev_kv: prev.clone(),
                    });
                    outs.push(TxnOut::Put(prev));
                }
                TxnOp::Delete(ks, es) => {
                    let (key, end) = (RANGE_KEYS[ks], RANGE_ENDS[es]);
                    let gone: Vec<KeyValue> = state
                        .values()
                        .filter(|kv| in_range(&kv.key, key, end))
                        .cloned()
                        .collect();
                    for prev in &gone {
                        state.remove(&prev.key);
                        events.push(Event {
                            kind: EventKind::Delete,
                            kv: KeyValue {
                                key: prev.key.clone(),
                                mod_revision: rev,
                                ..KeyValue::default()
                            },
                            prev_kv: Some(prev.clone()),
                        });
                    }
                    outs.push(TxnOut::Delete(gone));
                }
                TxnOp::Range(ks, es, limit) => {
                    let header = if events.is_empty() { rev - 1 } else { rev };
                    outs.push(TxnOut::Range(model_range(
                        &state,
                        RANGE_KEYS[ks],
                        RANGE_ENDS[es],
                        limit,
                        header,
                    )));
                }
            }
        }
        if !events.is_empty() {
            self.states.push(state);
            self.events.extend(events.iter().cloned());
        }
        (outs, events)
    }
}

fn store_txn(store: &mut Store, ops: &[TxnOp]) -> (Vec<TxnOut>, Vec<Event>) {
    let mut txn = store.write();
    let mut outs = Vec::new();
    for op in ops {
        outs.push(match *op {
            TxnOp::Put(k, v, lease) => TxnOut::Put(txn.put(PUT_KEYS[k], &value_of(v), lease)),
            TxnOp::Delete(ks, es) => {
                TxnOut::Delete(txn.delete_range(RANGE_KEYS[ks], RANGE_ENDS[es]))
            }
            TxnOp::Range(ks, es, limit) => {
                TxnOut::Range(txn.range(RANGE_KEYS[ks], RANGE_ENDS[es], limit))
            }
        });
    }
    (outs, txn.commit())
}

fn pick_rev(sel: u16, current: i64, extra: i64) -> i64 {
    // Uniform over [-1, current + extra]: includes "0 = current", negative,
    // compacted, valid and future revisions.
    i64::from(sel) % (current + extra + 2) - 1
}

/// Full-range reads at every readable revision must agree with the model.
fn check_history(store: &Store, model: &Model) {
    for rev in model.compacted.max(1)..=model.current() {
        assert_eq!(
            store.range(b"\0", b"\0", rev, 0),
            model.range(b"\0", b"\0", rev, 0),
            "history at {rev}"
        );
    }
}

fn check_round_trip(store: &Store) -> Store {
    let restored = Store::from_snapshot(store.to_snapshot());
    restored.check_invariants().unwrap();
    assert_eq!(&restored, store);
    assert_eq!(restored.hash_kv(0), store.hash_kv(0));
    for rev in store.compacted_revision().max(1)..=store.current_revision() {
        assert_eq!(
            restored.range(b"\0", b"\0", rev, 0),
            store.range(b"\0", b"\0", rev, 0)
        );
        assert_eq!(restored.hash_kv(rev), store.hash_kv(rev));
    }
    restored
}

/// Every event from `start` on, read in pages of `max` records; checks that pages move forward
/// and never split a revision.
fn paged_events(store: &Store, key: &[u8], end: &[u8], mut start: i64, max: usize) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    loop {
        let page = store.events_page(key, end, start, max).unwrap();
        if let (Some(last), Some(first)) = (out.last(), page.events.first()) {
            assert!(
                last.kv.mod_revision < first.kv.mod_revision,
                "a page split a revision"
            );
        }
        out.extend(page.events);
        match page.resume_at {
            Some(at) => {
                assert!(at > start, "no progress from {start}");
                start = at;
            }
            None => return out,
        }
    }
}

fn run(ops: Vec<Op>) {
    let mut store = Store::new();
    let mut model = Model::new();
    let mut hashes: BTreeMap<(i64, i64), u32> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Put(k, v, lease) => {
                let (outs, ev) = store_txn(&mut store, &[TxnOp::Put(k, v, lease)]);
                assert_eq!((outs, ev), model.txn(&[TxnOp::Put(k, v, lease)]));
            }
            Op::Delete(ks, es) => {
                let (outs, ev) = store_txn(&mut store, &[TxnOp::Delete(ks, es)]);
                assert_eq!((outs, ev), model.txn(&[TxnOp::Delete(ks, es)]));
            }
            Op::Txn(ops) => {
                assert_eq!(store_txn(&mut store, &ops), model.txn(&ops));
            }
            Op::Compact(sel) => {
                let rev = pick_rev(sel, model.current(), 1).max(-1);
                assert_eq!(store.compact(rev), model.compact(rev), "compact {rev}");
            }
            Op::Range(ks, es, sel, limit) => {
                let rev = pick_rev(sel, model.current(), 1);
                let (key, end) = (RANGE_KEYS[ks], RANGE_ENDS[es]);
                assert_eq!(
                    store.range(key, end, rev, limit),
                    model.range(key, end, rev, limit)
                );
                // A planned range reads what was there when planned, whatever a flush (which
                // deletes compacted records) did meanwhile.
                if let Ok(planned) = store.plan_range(key, end, rev, limit) {
                    store.flush(Batch::default(), false).unwrap();
                    assert_eq!(Ok(planned.fetch()), model.range(key, end, rev, limit));
                }
            }
            Op::Events(ks, es, sel) => {
                let start = pick_rev(sel, model.current(), 2);
                let (key, end) = (RANGE_KEYS[ks], RANGE_ENDS[es]);
                let all = store.events_since(key, end, start);
                assert_eq!(all, model.events_since(key, end, start));
                if let Ok(all) = all {
                    for max in [1, 2] {
                        assert_eq!(paged_events(&store, key, end, start, max), all);
                    }
                }
            }
            Op::Hash(sel) => {
                let rev = pick_rev(sel, model.current(), 1);
                let got = store.hash_kv(rev);
                // etcd's HashKV also refuses the compaction revision itself.
                let expected = match model.read_rev(rev) {
                    Ok(_) if rev > 0 && rev <= model.compacted => Err(MvccError::Compacted),
                    other => other,
                };
                match expected {
                    Err(e) => assert_eq!(got, Err(e)),
                    Ok(r) => {
                        let (h, compacted) = got.unwrap();
                        assert_eq!(compacted, model.compacted);
                        let prior = *hashes.entry((r, compacted)).or_insert(h);
                        assert_eq!(prior, h, "hash at {r} changed");
                    }
                }
            }
            Op::Snapshot => store = check_round_trip(&store),
            Op::Flush(durable) => store.flush(Batch::default(), durable).unwrap(),
            Op::Reopen => {
                store.flush(Batch::default(), true).unwrap();
                let reopened = Store::open(store.backend().clone()).unwrap();
                assert_eq!(reopened, store);
                store = reopened;
            }
        }
        store.check_invariants().unwrap();
        assert_eq!(store.current_revision(), model.current());
        assert_eq!(store.compacted_revision(), model.compacted);
        assert_eq!(store.key_count(), model.latest().len());
        check_history(&store, &model);
    }
    check_round_trip(&store);
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        3 => (0..5usize, any::<u8>(), 0..3i64).prop_map(|(k, v, l)| TxnOp::Put(k, v, l)),
        2 => (0..8usize, 0..8usize).prop_map(|(k, e)| TxnOp::Delete(k, e)),
        2 => (0..8usize, 0..8usize, 0..4usize).prop_map(|(k, e, l)| TxnOp::Range(k, e, l)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..5usize, any::<u8>(), 0..3i64).prop_map(|(k, v, l)| Op::Put(k, v, l)),
        2 => (0..5usize).prop_map(|k| Op::Delete(k + 2, 0)),
        2 => (0..8usize, 0..8usize).prop_map(|(k, e)| Op::Delete(k, e)),
        3 => vec(txn_op(), 0..6).prop_map(Op::Txn),
        2 => any::<u16>().prop_map(Op::Compact),
        3 => (0..8usize, 0..8usize, any::<u16>(), 0..4usize)
            .prop_map(|(k, e, r, l)| Op::Range(k, e, r, l)),
        2 => (0..8usize, 0..8usize, any::<u16>()).prop_map(|(k, e, s)| Op::Events(k, e, s)),
        1 => any::<u16>().prop_map(Op::Hash),
        1 => Just(Op::Snapshot),
        2 => any::<bool>().prop_map(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn store_matches_reference_model(ops in vec(op(), 1..60)) {
        run(ops);
    }
}
