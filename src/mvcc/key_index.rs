//! Per-key revision index: which revisions of one key exist, grouped into
//! generations (etcd's `keyIndex`).
//!
//! A *generation* is one life of a key: it starts with the put that creates
//! the key and ends with the tombstone (delete) that removes it. The values
//! themselves live in the store's revision map; this index holds only
//! [`Revision`]s, so it stays small: a key with one generation of one
//! revision (the common case) is 32 bytes with no heap allocation of its
//! own (`SmallVec`s with one inline slot), and compaction gives back the
//! heap space of revisions it drops.
//!
//! Invariants (checked by `check` in tests):
//! * There is always at least one generation.
//! * Every generation except the last is *closed*: it is non-empty and its
//!   last revision is the tombstone; all its other revisions are puts.
//! * The last generation is *open*: it holds only puts, and is empty exactly
//!   when the key is not live (never created, deleted, or compacted away).
//! * Revisions strictly increase across all generations, in order.
//! * After compaction at `c`, the only revision `<= c` left is, at most, the
//!   latest put `<= c` of the generation live at `c` (needed to read at `c`).
//!
//! Worked example (revisions written as `main.sub`):
//!
//! ```text
//! put  a @2.0      generations: [ {2.0} ]
//! put  a @3.0                   [ {2.0, 3.0} ]
//! del  a @4.0                   [ {2.0, 3.0, 4.0(tomb)}, {} ]
//! put  a @6.0                   [ {2.0, 3.0, 4.0(tomb)}, {6.0} ]
//! put  a @6.1 (same txn)        [ {2.0, 3.0, 4.0(tomb)}, {6.0, 6.1} ]
//!
//! get(3) -> 3.0   get(4) -> none (deleted at 4)   get(5) -> none
//! get(6) -> 6.1   get(1) -> none (not yet created)
//!
//! compact(3): drops 2.0            [ {3.0, 4.0(tomb)}, {6.0, 6.1} ]
//! compact(4): drops 3.0 and 4.0    [ {6.0, 6.1} ]   (tombstone <= 4 goes)
//! compact(6): drops 6.0            [ {6.1} ]        (6.1 is the value at 6)
//! ```
//!
//! If a key's last generation is empty after compaction and nothing else is
//! left, the key index is empty and the store removes the key entirely.

use crate::mvcc::revision::Revision;
use smallvec::{smallvec, SmallVec};

/// One life of a key: puts, ending in a tombstone unless it is the last one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Generation {
    revs: SmallVec<[Revision; 1]>,
}

/// All retained revisions of a single key, grouped by generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyIndex {
    generations: SmallVec<[Generation; 1]>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyIndex {
    /// An index with no revisions (one empty open generation).
    pub(crate) fn new() -> Self {
        Self {
            generations: smallvec![Generation::default()],
        }
    }

    fn open_generation(&mut self) -> &mut Generation {
        if self.generations.is_empty() {
            self.generations.push(Generation::default());
        }
        let last = self.generations.len() - 1;
        &mut self.generations[last]
    }

    /// Record a put at `rev` (must be newer than every recorded revision).
    pub(crate) fn put(&mut self, rev: Revision) {
        debug_assert!(self.last_revision().is_none_or(|last| last < rev));
        self.open_generation().revs.push(rev);
    }

    /// Record a delete at `rev`: closes the open generation with the
    /// tombstone and opens a new empty one. Returns false (and changes
    /// nothing) if the key is not live, since only live keys can be deleted.
    pub(crate) fn tombstone(&mut self, rev: Revision) -> bool {
        if !self.is_live() {
            return false;
        }
        debug_assert!(self.last_revision().is_none_or(|last| last < rev));
        self.open_generation().revs.push(rev);
        self.generations.push(Generation::default());
        true
    }

    /// Whether the key exists at the newest recorded revision.
    pub(crate) fn is_live(&self) -> bool {
        self.generations.last().is_some_and(|g| !g.revs.is_empty())
    }

    /// Whether no revision at all is retained (the store may drop the key).
    pub(crate) fn is_empty(&self) -> bool {
        self.generations.iter().all(|g| g.revs.is_empty())
    }

    /// The newest recorded revision (put or tombstone), if any.
    pub(crate) fn last_revision(&self) -> Option<Revision> {
        self.generations
            .iter()
            .rev()
            .find_map(|g| g.revs.last().copied())
    }

    /// The revision holding the key's value as of main revision `at`: the
    /// newest put with `main <= at`, unless the key was deleted (or not yet
    /// created) at `at`.
    pub(crate) fn get(&self, at: i64) -> Option<Revision> {
        let last = self.generations.len().checked_sub(1)?;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(end)) = (g.revs.first(), g.revs.last()) else {
                continue;
            };
            if i != last && end.main <= at {
                // Closed before or at `at`, and the later generation (if
                // any) had not started yet: the key is deleted at `at`.
                return None;
            }
            if first.main <= at {
                let n = g.revs.partition_point(|r| r.main <= at);
                // n >= 1 because revs[0].main <= at; for a closed generation
                // the tombstone is > at, so revs[n - 1] is a put.
                return g.revs.get(n.wrapping_sub(1)).copied();
            }
        }
        None
    }

    /// The revision immediately before `rev` in the same generation: the
    /// key's state just before the change at `rev` (`None` if `rev` created
    /// the key, or is unknown).
    pub(crate) fn prev_of(&self, rev: Revision) -> Option<Revision> {
        let g = self.generations.iter().find(|g| {
            matches!((g.revs.first(), g.revs.last()), (Some(f), Some(l)) if *f <= rev && rev <= *l)
        })?;
        let idx = g.revs.binary_search(&rev).ok()?;
        idx.checked_sub(1).and_then(|i| g.revs.get(i).copied())
    }

    /// Every recorded revision `>= from`, oldest first.
    pub(crate) fn revisions_since(&self, from: Revision) -> impl Iterator<Item = Revision> + '_ {
        self.generations
            .iter()
            .flat_map(|g| g.revs.iter().copied())
            .filter(move |r| *r >= from)
    }

    /// Every recorded revision, oldest first, with whether it is a tombstone.
    #[cfg(test)]
    pub(crate) fn all_revisions(&self) -> Vec<(Revision, bool)> {
        let last = self.generations.len().saturating_sub(1);
        let mut out = Vec::new();
        for (i, g) in self.generations.iter().enumerate() {
            for (j, r) in g.revs.iter().enumerate() {
                out.push((*r, i != last && j + 1 == g.revs.len()));
            }
        }
        out
    }

    /// The first generation a compaction at `at` keeps: every generation closed at or before
    /// `at` goes, but never the last (open) one.
    fn first_surviving(&self, at: i64) -> usize {
        let mut gen_idx = 0;
        while gen_idx + 1 < self.generations.len() {
            match self.generations[gen_idx].revs.last() {
                Some(tomb) if tomb.main > at => break,
                _ => gen_idx += 1,
            }
        }
        gen_idx
    }

    /// The one revision `<= at` a compaction at `at` would keep (etcd's `keyIndex.keep`), if
    /// any: the newest put `<= at` of the generation live at `at`.
    pub(crate) fn kept_at(&self, at: i64) -> Option<Revision> {
        let g = self.generations.get(self.first_surviving(at))?;
        let n = g.revs.partition_point(|r| r.main <= at);
        n.checked_sub(1).map(|i| g.revs[i])
    }

    /// Compact at main revision `at` (etcd's `keyIndex.compact`): drop every
    /// revision `<= at` except the newest put `<= at` of the generation that
    /// is live at `at`. Tombstones `<= at` go together with their whole
    /// generation. Dropped revisions are appended to `removed`.
    pub(crate) fn compact(&mut self, at: i64, removed: &mut Vec<Revision>) {
        let gen_idx = self.first_surviving(at);
        for g in self.generations.drain(..gen_idx) {
            removed.extend(g.revs);
        }
        // In the first surviving generation, keep the newest revision
        // <= at (the value visible at `at`) and everything after it.
        if let Some(g) = self.generations.first_mut() {
            let n = g.revs.partition_point(|r| r.main <= at);
            #[cfg(madsim)]
            let n = if crate::fault::active(crate::fault::Bug::CompactDropsLatest)
                && n > 0
                && n == g.revs.len()
            {
                n + 1
            } else {
                n
            };
            if n > 1 {
                removed.extend(g.revs.drain(..n - 1));
                g.revs.shrink_to_fit();
            }
        }
        if self.generations.is_empty() {
            self.generations.push(Generation::default());
        }
        if gen_idx > 0 {
            self.generations.shrink_to_fit();
        }
    }

    /// Verify the structural invariants listed in the module docs.
    #[cfg(test)]
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.generations.is_empty() {
            return Err("no generations".into());
        }
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate() {
            if i != last && g.revs.is_empty() {
                return Err(format!("closed generation {i} is empty"));
            }
        }
        let all: Vec<Revision> = self.all_revisions().into_iter().map(|(r, _)| r).collect();
        if all.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("revisions not increasing: {all:?}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::KeyIndex;
    use crate::mvcc::revision::Revision;

    fn r(main: i64, sub: i64) -> Revision {
        Revision::new(main, sub)
    }

    /// The memory promise of the module docs: one revision of one key needs
    /// no allocation beyond the index entry itself.
    #[test]
    fn single_revision_key_is_inline() {
        assert_eq!(std::mem::size_of::<KeyIndex>(), 32);
        let mut ki = KeyIndex::new();
        ki.put(r(2, 0));
        assert!(!ki.generations.spilled() && !ki.generations[0].revs.spilled());
    }

    /// The worked example from the module docs, before compaction.
    fn example() -> KeyIndex {
        let mut ki = KeyIndex::new();
        ki.put(r(2, 0));
        ki.put(r(3, 0));
        assert!(ki.tombstone(r(4, 0)));
        ki.put(r(6, 0));
        ki.put(r(6, 1));
        ki.check().unwrap();
        ki
    }

    #[test]
    fn get_follows_generations() {
        let ki = example();
        assert_eq!(ki.get(1), None);
        assert_eq!(ki.get(2), Some(r(2, 0)));
        assert_eq!(ki.get(3), Some(r(3, 0)));
        assert_eq!(ki.get(4), None);
        assert_eq!(ki.get(5), None);
        assert_eq!(ki.get(6), Some(r(6, 1)));
        assert_eq!(ki.get(100), Some(r(6, 1)));
        assert!(ki.is_live());
    }

    #[test]
    fn tombstone_requires_live_key() {
        let mut ki = KeyIndex::new();
        assert!(!ki.tombstone(r(2, 0)));
        ki.put(r(2, 0));
        assert!(ki.tombstone(r(3, 0)));
        assert!(!ki.is_live());
        assert!(!ki.tombstone(r(4, 0)));
        assert_eq!(ki.get(2), Some(r(2, 0)));
        assert_eq!(ki.get(3), None);
        ki.check().unwrap();
    }

    #[test]
    fn delete_and_recreate_in_one_txn() {
        let mut ki = KeyIndex::new();
        ki.put(r(2, 0));
        assert!(ki.tombstone(r(3, 0)));
        ki.put(r(3, 1));
        assert_eq!(ki.get(3), Some(r(3, 1)));
        assert_eq!(ki.prev_of(r(3, 1)), None);
        assert_eq!(ki.prev_of(r(3, 0)), Some(r(2, 0)));
        assert_eq!(ki.prev_of(r(2, 0)), None);
        assert_eq!(ki.prev_of(r(9, 0)), None);
    }

    #[test]
    fn kept_at_is_what_compaction_keeps_at_or_below() {
        for at in 0..20 {
            let mut compacted = example();
            compacted.compact(at, &mut Vec::new());
            let kept: Vec<Revision> = compacted
                .all_revisions()
                .into_iter()
                .map(|(r, _)| r)
                .filter(|r| r.main <= at)
                .collect();
            assert_eq!(
                example().kept_at(at).into_iter().collect::<Vec<_>>(),
                kept,
                "at {at}"
            );
        }
    }

    #[test]
    fn compaction_matches_worked_example() {
        let mut ki = example();
        let mut removed = Vec::new();
        ki.compact(3, &mut removed);
        assert_eq!(removed, vec![r(2, 0)]);
        assert_eq!(ki.get(3), Some(r(3, 0)));
        assert_eq!(ki.get(4), None);
        ki.check().unwrap();

        removed.clear();
        ki.compact(4, &mut removed);
        assert_eq!(removed, vec![r(3, 0), r(4, 0)]);
        assert_eq!(ki.all_revisions(), vec![(r(6, 0), false), (r(6, 1), false)]);
        assert_eq!(ki.get(4), None);

        removed.clear();
        ki.compact(6, &mut removed);
        assert_eq!(removed, vec![r(6, 0)]);
        assert_eq!(ki.all_revisions(), vec![(r(6, 1), false)]);
        assert_eq!(ki.get(6), Some(r(6, 1)));
        ki.check().unwrap();
    }

    #[test]
    fn compaction_at_tombstone_empties_deleted_key() {
        let mut ki = KeyIndex::new();
        ki.put(r(2, 0));
        ki.put(r(3, 0));
        assert!(ki.tombstone(r(5, 0)));
        let mut removed = Vec::new();
        ki.compact(4, &mut removed);
        assert_eq!(removed, vec![r(2, 0)]);
        assert!(!ki.is_empty());
        removed.clear();
        ki.compact(5, &mut removed);
        assert_eq!(removed, vec![r(3, 0), r(5, 0)]);
        assert!(ki.is_empty());
        ki.check().unwrap();
    }

    #[test]
    fn compaction_before_creation_keeps_everything() {
        let mut ki = KeyIndex::new();
        ki.put(r(5, 0));
        ki.put(r(7, 0));
        let mut removed = Vec::new();
        ki.compact(4, &mut removed);
        assert!(removed.is_empty());
        assert_eq!(ki.all_revisions().len(), 2);
    }

    #[test]
    fn revisions_since_filters() {
        let ki = example();
        let got: Vec<_> = ki.revisions_since(r(4, 0)).collect();
        assert_eq!(got, vec![r(4, 0), r(6, 0), r(6, 1)]);
        assert_eq!(ki.last_revision(), Some(r(6, 1)));
    }
}
