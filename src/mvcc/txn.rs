//! [`WriteTxn`]: the only way to change a [`Store`], mirroring etcd's write
//! transaction.
//!
//! Owns the transaction's pending changes. They are kept as an ordered list
//! of [`Event`]s (change `i` lands at revision `(current + 1).i`) plus a
//! key -> latest-change index so reads inside the transaction see its own
//! earlier writes. Nothing touches the store until [`WriteTxn::commit`];
//! dropping the transaction discards it.
//!
//! Invariants:
//! * Every pending change shares main revision `store.current + 1`; sub
//!   revisions are the positions in `changes`.
//! * `latest[k]` is the position of the last change to `k`, so the view of
//!   `k` inside the transaction is: that change if any (put = its value,
//!   delete = absent), else the store at `current`.
//! * A delete is recorded only for a key live in that view, so a delete that
//!   matches nothing changes nothing and, if it is the only operation, the
//!   revision does not move.
//!
//! Example: at current revision 4 with `a` (version 2, created at 3), a
//! transaction that puts `a`, deletes `a`, then puts `a` again produces
//! `5.0 put a (v3, create 3)`, `5.1 delete a`, `5.2 put a (v1, create 5)`,
//! and after commit the store reads `a` at revision 5 as version 1.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;

use crate::mvcc::key_range::KeyRange;
use crate::mvcc::revision::Revision;
use crate::mvcc::store::{Record, Store};
use crate::mvcc::{Event, EventKind, KeyValue, RangeResult};

/// A pending write transaction on a [`Store`]; see the module docs.
#[must_use = "a WriteTxn does nothing unless committed"]
#[derive(Debug)]
pub struct WriteTxn<'a> {
    store: &'a mut Store,
    changes: Vec<Event>,
    latest: BTreeMap<Vec<u8>, usize>,
}

/// What a key looks like inside the transaction, borrowed.
enum Visible<'s> {
    Pending(&'s KeyValue),
    Stored(Revision, Record),
}

impl Visible<'_> {
    fn to_kv(&self) -> KeyValue {
        match self {
            Visible::Pending(kv) => (*kv).clone(),
            Visible::Stored(rev, rec) => rec.to_kv(*rev),
        }
    }
}

/// Merge two ascending key streams into one ascending stream without
/// duplicates.
struct MergeKeys<'s, A: Iterator<Item = &'s [u8]>, B: Iterator<Item = &'s [u8]>> {
    a: Peekable<A>,
    b: Peekable<B>,
}

impl<'s, A: Iterator<Item = &'s [u8]>, B: Iterator<Item = &'s [u8]>> Iterator
    for MergeKeys<'s, A, B>
{
    type Item = &'s [u8];

    fn next(&mut self) -> Option<&'s [u8]> {
        let order = match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => Ordering::Less,
            (None, _) => Ordering::Greater,
        };
        match order {
            Ordering::Less => self.a.next(),
            Ordering::Greater => self.b.next(),
            Ordering::Equal => {
                self.b.next();
                self.a.next()
            }
        }
    }
}

impl<'a> WriteTxn<'a> {
    pub(crate) fn new(store: &'a mut Store) -> Self {
        WriteTxn {
            store,
            changes: Vec::new(),
            latest: BTreeMap::new(),
        }
    }

    /// The main revision this transaction's writes land at
    /// (`current + 1`).
    pub fn revision(&self) -> i64 {
        self.store.current_revision() + 1
    }

    /// Whether the transaction has made any change so far.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    fn visible(&self, key: &[u8]) -> Option<Visible<'_>> {
        if let Some(&i) = self.latest.get(key) {
            let ev = self.changes.get(i)?;
            return match ev.kind {
                EventKind::Put => Some(Visible::Pending(&ev.kv)),
                EventKind::Delete => None,
            };
        }
        self.store
            .current_record(key)
            .map(|(rev, rec)| Visible::Stored(rev, rec))
    }

    /// Keys in `kr` known to the store or touched by this transaction,
    /// ascending, not necessarily live.
    fn candidate_keys<'s>(&'s self, kr: KeyRange<'s>) -> impl Iterator<Item = &'s [u8]> + 's {
        let pending: Box<dyn Iterator<Item = &'s [u8]> + 's> = match kr.bounds() {
            Some(bounds) => Box::new(
                self.latest
                    .range::<[u8], _>(bounds)
                    .map(|(k, _)| k.as_slice()),
            ),
            None => Box::new(std::iter::empty()),
        };
        MergeKeys {
            a: self.store.index_keys(kr).peekable(),
            b: pending.peekable(),
        }
    }

    /// Read `(key, range_end)` (etcd convention) as this transaction sees
    /// it: the store at `current` overlaid with the transaction's own
    /// changes. `revision` is `current + 1` once the transaction has
    /// changes, else `current`, as in etcd.
    pub fn range(&self, key: &[u8], range_end: &[u8], limit: usize) -> RangeResult {
        let mut kvs = Vec::new();
        let mut count = 0i64;
        for k in self.candidate_keys(KeyRange::new(key, range_end)) {
            if let Some(v) = self.visible(k) {
                count += 1;
                if limit == 0 || kvs.len() < limit {
                    kvs.push(v.to_kv());
                }
            }
        }
        RangeResult {
            kvs,
            count,
            revision: self.view_revision(),
        }
    }

    /// The revision reads inside the transaction are at: `current + 1` once it has changes,
    /// else `current` (etcd's rule for a txn's response header).
    pub fn view_revision(&self) -> i64 {
        if self.has_changes() {
            self.revision()
        } else {
            self.store.current_revision()
        }
    }

    /// Like [`WriteTxn::range`], but `rev > 0` reads committed history at `rev` instead (as a
    /// Range with a revision inside an etcd txn does); `rev` equal to the view revision, or
    /// `rev <= 0`, reads the transaction's own view.
    pub fn range_at(
        &self,
        key: &[u8],
        range_end: &[u8],
        rev: i64,
        limit: usize,
    ) -> Result<RangeResult, crate::mvcc::MvccError> {
        let view = self.view_revision();
        if rev <= 0 || rev == view {
            return Ok(self.range(key, range_end, limit));
        }
        if rev > view {
            return Err(crate::mvcc::MvccError::FutureRevision);
        }
        let mut result = self.store.range(key, range_end, rev, limit)?;
        result.revision = view;
        Ok(result)
    }

    fn push(&mut self, ev: Event) {
        self.latest.insert(ev.kv.key.clone(), self.changes.len());
        self.changes.push(ev);
    }

    /// Put `key = value` with `lease`; returns the key's previous value as
    /// this transaction sees it. A key already put in this transaction gets
    /// its version bumped again (the later put wins).
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Option<KeyValue> {
        let rev = self.revision();
        let prev = self.visible(key).map(|v| v.to_kv());
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: value.to_vec(),
            lease,
        };
        self.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: prev.clone(),
        });
        prev
    }

    /// Delete every live key in `(key, range_end)`; returns their previous
    /// values sorted by key. Deleting nothing records no change.
    pub fn delete_range(&mut self, key: &[u8], range_end: &[u8]) -> Vec<KeyValue> {
        let prevs: Vec<KeyValue> = self
            .candidate_keys(KeyRange::new(key, range_end))
            .filter_map(|k| self.visible(k).map(|v| v.to_kv()))
            .collect();
        let rev = self.revision();
        for prev in &prevs {
            self.push(Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: prev.key.clone(),
                    mod_revision: rev,
                    ..KeyValue::default()
                },
                prev_kv: Some(prev.clone()),
            });
        }
        prevs
    }

    /// Apply the changes at revision `current + 1` (which becomes current)
    /// and return them as events in order. With no changes the store's
    /// revision does not move and the result is empty.
    pub fn commit(self) -> Vec<Event> {
        let WriteTxn { store, changes, .. } = self;
        store.apply_changes(&changes);
        changes
    }
}
