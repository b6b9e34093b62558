//! Reads of a [`Store`]: ranges, counts, HashKV and watch events.
//!
//! Readers share the store's lock with apply, so a read holds it only for what needs the key
//! index. A range and a HashKV are *planned* under the lock: the revisions to read (walked in
//! the in-RAM key index) and a [`Detached`] history (a backend read view plus copies of the
//! few records not flushed yet). The caller releases the lock and then reads the records
//! ([`PlannedRange::fetch`], [`PlannedHash::compute`]), so reading values from disk never holds
//! up writes. Watch events need the key index for every `prev_kv`, so they are read under the
//! lock but in pages ([`Store::events_page`]): each page reads a bounded number of records, and
//! a watcher catching up over millions of revisions takes the lock once per page and holds one
//! page of events in memory at a time.
//!
//! Invariant behind the detached reads: a planned revision was referenced by the key index
//! when planned (or lies above the compaction point), so compaction had not doomed it, and the
//! view keeps it readable whatever compaction deletes afterwards. (A HashKV scans the view from
//! the first revision and hashes only such revisions, skipping the doomed records still in it.)

use std::collections::BTreeSet;

use super::{Record, Store};
use crate::mvcc::etcd_form::etcd_record;
use crate::mvcc::history::Detached;
use crate::mvcc::key_range::KeyRange;
use crate::mvcc::revision::Revision;
use crate::mvcc::{Event, EventKind, MvccError, RangeResult};

/// A range read planned under the store's lock, read after it is released.
pub struct PlannedRange {
    revs: Vec<Revision>,
    count: i64,
    revision: i64,
    records: Detached,
}

impl PlannedRange {
    /// Reads the planned records.
    pub fn fetch(self) -> RangeResult {
        let kvs = self
            .revs
            .iter()
            .filter_map(|&rev| self.records.get(rev).map(|rec| rec.into_kv(rev)))
            .collect();
        RangeResult {
            kvs,
            count: self.count,
            revision: self.revision,
        }
    }
}

/// A HashKV planned under the store's lock, computed after it is released.
pub struct PlannedHash {
    /// Revisions below `to` are hashed: those above `compacted`, and of those at or below it
    /// the ones in `below`.
    to: Revision,
    compacted: i64,
    below: BTreeSet<Revision>,
    records: Detached,
}

impl PlannedHash {
    /// The hash and the compaction revision it was computed against: etcd's definition, the
    /// CRC-32C of `key` followed by the records up to the revision, in etcd's stored form (see
    /// [`crate::mvcc::record_to_etcd`]) and revision order.
    pub fn compute(self) -> (u32, i64) {
        let mut crc = crc32c::crc32c(b"key");
        for (rev, rec) in self.records.scan(Revision::new(0, 0), Some(self.to)) {
            if rev.main > self.compacted || self.below.contains(&rev) {
                let (k, v) = etcd_record(rev, &rec);
                crc = crc32c::crc32c_append(crc, &k);
                crc = crc32c::crc32c_append(crc, &v);
            }
        }
        (crc, self.compacted)
    }
}

/// One page of watch events ([`Store::events_page`]).
#[derive(Debug, PartialEq)]
pub struct EventPage {
    /// The events, in revision order.
    pub events: Vec<Event>,
    /// Where the next page starts when this one was cut short; `None` when it reached the
    /// current revision.
    pub resume_at: Option<i64>,
}

impl Store {
    /// Resolves a read revision: `<= 0` means current; errors when it is newer than current or
    /// older than the compaction point.
    fn resolve_read_rev(&self, rev: i64) -> Result<i64, MvccError> {
        let rev = if rev <= 0 { self.current } else { rev };
        if rev > self.current {
            Err(MvccError::FutureRevision)
        } else if rev < self.compacted {
            Err(MvccError::Compacted)
        } else {
            Ok(rev)
        }
    }

    /// Reads the keys in `(key, range_end)` (etcd convention, see `key_range`) as of main
    /// revision `rev` (0 = current). `limit` 0 means unlimited; `count` always counts every
    /// match.
    pub fn range(
        &self,
        key: &[u8],
        range_end: &[u8],
        rev: i64,
        limit: usize,
    ) -> Result<RangeResult, MvccError> {
        Ok(self.plan_range(key, range_end, rev, limit)?.fetch())
    }

    /// Plans [`Store::range`]: everything but reading the records.
    pub fn plan_range(
        &self,
        key: &[u8],
        range_end: &[u8],
        rev: i64,
        limit: usize,
    ) -> Result<PlannedRange, MvccError> {
        let max = if limit == 0 { usize::MAX } else { limit };
        self.plan(KeyRange::new(key, range_end), rev, max)
    }

    /// Counts the keys [`Store::range`] would return, reading no record.
    pub fn count(&self, key: &[u8], range_end: &[u8], rev: i64) -> Result<RangeResult, MvccError> {
        Ok(self.plan(KeyRange::new(key, range_end), rev, 0)?.fetch())
    }

    /// Plans a read of at most `max` of the keys in `kr` at `rev`, counting them all.
    fn plan(&self, kr: KeyRange<'_>, rev: i64, max: usize) -> Result<PlannedRange, MvccError> {
        let at = self.resolve_read_rev(rev)?;
        let mut revs = Vec::new();
        let mut count = 0i64;
        if let Some(bounds) = kr.bounds() {
            for ki in self.index.range::<[u8], _>(bounds).map(|(_, ki)| ki) {
                let Some(rev) = ki.get(at) else { continue };
                count += 1;
                if revs.len() < max {
                    revs.push(rev);
                }
            }
        }
        Ok(PlannedRange {
            records: self.history.detach_revisions(&revs),
            revs,
            count,
            revision: self.current,
        })
    }

    /// etcd's HashKV at `rev` (0 = current; at or below the compaction point: compacted).
    /// Returns the hash and the compaction revision it was computed against.
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64), MvccError> {
        Ok(self.plan_hash_kv(rev)?.compute())
    }

    /// Plans [`Store::hash_kv`]: everything but reading the records. Which records at or
    /// below the compaction point count follows etcd 3.4 exactly: those a compaction at the
    /// hash revision would keep (each key's newest put at or below it, unless deleted since);
    /// if that set is empty, every record compaction retained.
    pub fn plan_hash_kv(&self, rev: i64) -> Result<PlannedHash, MvccError> {
        if rev > 0 && rev <= self.compacted {
            return Err(MvccError::Compacted);
        }
        let rev = self.resolve_read_rev(rev)?;
        // What a compaction at `at` keeps, at or below the compaction point; and whether it
        // keeps anything at all at or below `at`.
        let kept_at = |at: i64| {
            let (mut kept, mut any) = (BTreeSet::new(), false);
            for r in self.index.values().filter_map(|ki| ki.kept_at(at)) {
                any = true;
                if r.main <= self.compacted {
                    kept.insert(r);
                }
            }
            (kept, any)
        };
        let mut below = BTreeSet::new();
        if self.compacted >= 0 {
            let (kept, any) = kept_at(rev);
            below = if any { kept } else { kept_at(self.compacted).0 };
        }
        let to = Revision::first_of(rev.saturating_add(1));
        Ok(PlannedHash {
            to,
            compacted: self.compacted,
            below,
            records: self.history.detach_scan(Revision::new(0, 0), Some(to)),
        })
    }

    /// Every change to keys in `(key, range_end)` with main revision in `[start_rev, current]`,
    /// in revision order, each with the key's value just before it as `prev_kv`. Needs
    /// `start_rev > compacted` (so a watcher's start revision 0 must be resolved to
    /// `current + 1` by the caller); a `start_rev` beyond current yields no events.
    pub fn events_since(
        &self,
        key: &[u8],
        range_end: &[u8],
        start_rev: i64,
    ) -> Result<Vec<Event>, MvccError> {
        if start_rev <= self.compacted {
            return Err(MvccError::Compacted);
        }
        Ok(self
            .events_page(key, range_end, start_rev, usize::MAX)?
            .events)
    }

    /// The first page of [`Store::events_since`]: the events of the first `max` records read
    /// (more if the last revision read has more changes: a page never splits a revision).
    ///
    /// Also accepts `start_rev == compacted` (a watcher may start there, as in etcd): the
    /// values that revision wrote are still stored and come first, as puts without `prev_kv`.
    pub fn events_page(
        &self,
        key: &[u8],
        range_end: &[u8],
        start_rev: i64,
        max: usize,
    ) -> Result<EventPage, MvccError> {
        if start_rev < self.compacted || (start_rev == self.compacted && start_rev <= 0) {
            return Err(MvccError::Compacted);
        }
        let from = Revision::first_of(start_rev);
        let kr = KeyRange::new(key, range_end);
        let reader = self.history.reader();
        // Candidates in revision order: one key's own index is far shorter than all history.
        let candidates: Box<dyn Iterator<Item = (Revision, Option<Record>)>> = match kr {
            KeyRange::Empty => Box::new(std::iter::empty()),
            KeyRange::Single(k) => match self.index.get(k) {
                Some(ki) => Box::new(ki.revisions_since(from).map(|r| (r, reader.get(r)))),
                None => Box::new(std::iter::empty()),
            },
            _ => Box::new(reader.scan(from, None).map(|(r, rec)| {
                let wanted = kr.contains(&rec.key);
                (r, wanted.then_some(rec))
            })),
        };
        let mut events = Vec::new();
        let mut last_main = None;
        for (read, (rev, rec)) in candidates.enumerate() {
            if read >= max && last_main != Some(rev.main) {
                return Ok(EventPage {
                    events,
                    resume_at: Some(rev.main),
                });
            }
            last_main = Some(rev.main);
            let Some(rec) = rec else { continue };
            if rev.main == self.compacted {
                // The compaction kept only the values live then; their past is gone.
                if !rec.tombstone {
                    events.push(Event {
                        kind: EventKind::Put,
                        kv: rec.into_kv(rev),
                        prev_kv: None,
                    });
                }
            } else {
                events.push(self.event_for(&reader, rev, rec));
            }
        }
        Ok(EventPage {
            events,
            resume_at: None,
        })
    }

    /// The watch event for the record `rec` at `rev`.
    fn event_for(
        &self,
        reader: &crate::mvcc::history::Reader<'_>,
        rev: Revision,
        rec: Record,
    ) -> Event {
        let prev_kv = self
            .index
            .get(&*rec.key)
            .and_then(|ki| ki.prev_of(rev))
            .and_then(|p| {
                reader
                    .get(p)
                    .filter(|prev| !prev.tombstone)
                    .map(|prev| prev.into_kv(p))
            });
        Event {
            kind: if rec.tombstone {
                EventKind::Delete
            } else {
                EventKind::Put
            },
            kv: rec.into_kv(rev),
            prev_kv,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Batch;

    fn put(store: &mut Store, key: &str, value: &str) {
        let mut w = store.write();
        w.put(key.as_bytes(), value.as_bytes(), 0);
        w.commit();
    }

    /// Flushes until every record compaction removed is deleted from the backend.
    fn drain(store: &mut Store) {
        store.flush(Batch::default(), false).unwrap();
        while store.compaction_backlog() > 0 {
            store.flush_compaction(Batch::default()).unwrap();
        }
    }

    #[test]
    fn planned_reads_see_the_store_as_planned_after_compaction_deletes_it() {
        let mut store = Store::new();
        for i in 0..40 {
            put(&mut store, &format!("k{:02}", i % 10), &format!("v{i}"));
            if i == 20 {
                store.flush(Batch::default(), false).unwrap();
            }
        }
        // Some records are flushed, the newest are still pending.
        let at = store.current_revision() - 5;
        let expected = store.range(b"k", b"l", at, 0).unwrap();
        let expected_hash = store.hash_kv(at).unwrap();
        let planned = store.plan_range(b"k", b"l", at, 0).unwrap();
        let planned_hash = store.plan_hash_kv(at).unwrap();
        for i in 0..10 {
            put(&mut store, &format!("k{i:02}"), "newer");
        }
        store.compact(store.current_revision()).unwrap();
        drain(&mut store);
        assert!(store.range(b"k", b"l", at, 0).is_err(), "compacted by now");
        assert_eq!(planned.fetch(), expected);
        assert_eq!(planned_hash.compute(), expected_hash);
    }

    #[test]
    fn a_limited_range_counts_every_key_and_count_reads_none() {
        let mut store = Store::new();
        for i in 0..10 {
            put(&mut store, &format!("k{i}"), "v");
        }
        let limited = store.range(b"k", b"l", 0, 3).unwrap();
        assert_eq!((limited.kvs.len(), limited.count), (3, 10));
        let counted = store.count(b"k", b"l", 0).unwrap();
        assert_eq!((counted.kvs.len(), counted.count), (0, 10));
        assert_eq!(counted.revision, store.current_revision());
    }

    #[test]
    fn a_watch_may_start_at_the_compaction_point_and_pages_resume_there() {
        let mut store = Store::new();
        for i in 0..6 {
            put(&mut store, &format!("k{}", i % 3), &format!("v{i}"));
        }
        let compacted = store.current_revision() - 1;
        store.compact(compacted).unwrap();
        drain(&mut store);
        let page = store.events_page(b"k", b"l", compacted, 1).unwrap();
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0].kv.mod_revision, compacted);
        assert!(page.events[0].prev_kv.is_none(), "its past is compacted");
        assert_eq!(page.resume_at, Some(compacted + 1));
        let rest = store.events_page(b"k", b"l", compacted + 1, 1).unwrap();
        assert_eq!(rest.events.len(), 1);
        assert!(rest.events[0].prev_kv.is_some());
        assert_eq!(rest.resume_at, None);
        assert_eq!(
            store.events_page(b"k", b"l", compacted - 1, 1),
            Err(MvccError::Compacted)
        );
        assert_eq!(
            store.events_since(b"k", b"l", compacted),
            Err(MvccError::Compacted),
            "events_since itself needs a revision above the compaction point"
        );
    }
}
