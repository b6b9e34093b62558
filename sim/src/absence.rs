//! Lookahead pruning for the gap search: keys that are present now but that a later read saw
//! absent must be deletable in between, by enough distinct writes.
//!
//! Owns [`Absences`], built once per `crate::revision_plan::Plan`: per key, the revisions at
//! which a placed op shows it absent (a read whose result holds every present key of its
//! interval, `kvs.len() == count`; or any key state seen with create revision `c`, which means
//! absent at `c - 1`), the revisions of `Ok` writes whose reported branch deletes it, and the `Unknown`
//! writes with a delete covering it; per gap, the keys that are surely present before it and
//! that it may not write (`kept`: a read saw the key at `R >= gap` created before the gap, and
//! the gap forbids writing it).
//!
//! Soundness. After revision `s`, let `k` be present with its next absent sighting at `R >= s`
//! and no `Ok` write in `(s, R]` deleting it. Then an unused unknown write must delete `k` at a
//! gap `g` in `(s, R]` it is admitted to (`min_slot`, reservation, pin, `k` neither forbidden nor
//! no-delete at `g`), with a branch whose delete covering `k` touches no key of `kept(g)` and
//! whose puts touch no forbidden key of `g` (such a branch would write a key `g` may not
//! write). If there is none, no extension is a linearization; otherwise the delete is a need of
//! `crate::gap_budget`, which counts it against the gaps left together with the puts that
//! `crate::presence` finds owed. These checks only reject branches with no linearization. Without them a depth-first search learns it at `R`, after
//! branching on every gap before `R` (seed 603: seventeen gaps in a row ahead of reads of the
//! whole keyspace).

use std::collections::{BTreeMap, BTreeSet};

use crate::gap_budget::Need;
use crate::kv_model::{KeyId, Out, Program, Step, Store};
use crate::revision_plan::{is_used, Plan};

/// Why a branch cannot be extended: `key` is present after the branch's revision but op
/// `reader` (an index into `History::ops`) shows it absent at `seen_absent`, and no write still
/// to come can delete it in between.
pub(crate) struct Undeletable {
    pub key: KeyId,
    pub seen_absent: i64,
    pub reader: usize,
}

pub(crate) struct Absences {
    /// Per key: sorted `(revision, op index)` of the placed ops that show it absent.
    absent_at: Vec<Vec<(i64, usize)>>,
    /// Per key: sorted revisions of `Ok` writes whose branch deletes it.
    ok_deletes: Vec<Vec<i64>>,
    /// Per key: unknown writes (indices into `Plan::unknown`) with a delete covering it.
    deleters: Vec<Vec<usize>>,
    /// Per gap revision: keys surely present before it that it may not write (sorted).
    kept: BTreeMap<i64, Vec<KeyId>>,
}

impl Absences {
    pub fn new(plan: &Plan) -> Self {
        let n = plan.interner.key_count();
        let mut absent_at = vec![Vec::new(); n];
        let mut ok_deletes = vec![Vec::new(); n];
        let mut deleters = vec![Vec::new(); n];
        let mut kept: BTreeMap<i64, Vec<KeyId>> =
            plan.gaps.keys().map(|&g| (g, Vec::new())).collect();
        for (s, slot) in plan.slots.iter().enumerate() {
            let rev = plan.initial + s as i64;
            for r in &slot.reads {
                let branch = r.reported_branch();
                for (step, out) in branch.iter().zip(&r.expect.results) {
                    let (Step::Range(q), Out::Range(o)) = (step, out) else {
                        continue;
                    };
                    for &(k, e) in o.kvs.iter().filter(|(_, e)| e.create < rev) {
                        for (&g, keys) in kept.range_mut(e.create + 1..=rev) {
                            if plan.gaps[&g].forbidden.binary_search(&k).is_ok() {
                                keys.push(k);
                            }
                        }
                    }
                    if o.kvs.len() as i64 != o.count {
                        continue;
                    }
                    for k in q.lo..q.hi {
                        if o.kvs.iter().all(|&(seen, _)| seen != k) {
                            absent_at[k as usize].push((rev, r.op));
                        }
                    }
                }
            }
            if let Some(w) = &slot.write {
                for_deleted(w.reported_branch(), |k| ok_deletes[k as usize].push(rev));
            }
            // A key seen with create revision `c` was absent at `c - 1`.
            for o in slot.reads.iter().chain(&slot.write) {
                for out in &o.expect.results {
                    let kvs = match out {
                        Out::Range(r) => &r.kvs,
                        Out::Delete { prev, .. } => prev,
                        Out::Put => continue,
                    };
                    for &(k, e) in kvs.iter().filter(|(_, e)| e.create > plan.initial + 1) {
                        absent_at[k as usize].push((e.create - 1, o.op));
                    }
                }
            }
        }
        for (i, u) in plan.unknown.iter().enumerate() {
            for_deleted(&u.prog.success, |k| deleters[k as usize].push(i));
            for_deleted(&u.prog.failure, |k| deleters[k as usize].push(i));
        }
        for list in &mut absent_at {
            list.sort_unstable();
            list.dedup_by_key(|(rev, _)| *rev);
        }
        for list in &mut ok_deletes {
            list.dedup();
        }
        for list in kept.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        for list in &mut deleters {
            list.dedup();
        }
        Self {
            absent_at,
            ok_deletes,
            deleters,
            kept,
        }
    }

    /// A present key of `state` that no write still to come can delete in time, or else the
    /// deletes the branch still needs (for `crate::gap_budget`).
    pub fn check(
        &self,
        plan: &Plan,
        state: &Store,
        used: &[u64],
    ) -> Result<Vec<Need>, Undeletable> {
        let s = state.revision();
        let mut needed = Vec::new();
        for key in 0..plan.interner.key_count() as KeyId {
            if state.get(key).is_none() {
                continue;
            }
            let absent = &self.absent_at[key as usize];
            let Some(&(deadline, reader)) = absent.get(absent.partition_point(|&(r, _)| r < s))
            else {
                continue;
            };
            let ok = &self.ok_deletes[key as usize];
            if ok
                .get(ok.partition_point(|&r| r <= s))
                .is_some_and(|&r| r <= deadline)
            {
                continue;
            }
            let deleters = self.deleters(plan, key, s, deadline, used);
            if deleters.is_empty() {
                return Err(Undeletable {
                    key,
                    seen_absent: deadline,
                    reader,
                });
            }
            needed.push(Need {
                key,
                deadline,
                reader,
                count: 1,
                writers: deleters,
            });
        }
        Ok(needed)
    }

    /// The unused unknown writes that may delete `key` at a gap in `(after, until]`.
    fn deleters(
        &self,
        plan: &Plan,
        key: KeyId,
        after: i64,
        until: i64,
        used: &[u64],
    ) -> BTreeSet<usize> {
        self.deleters[key as usize]
            .iter()
            .copied()
            .filter(|&u| {
                !is_used(used, u)
                    && after < until
                    && plan.gaps.range(after + 1..=until).any(|(&g, gap)| {
                        plan.may_write_at(u, g, key)
                            && gap.no_delete.binary_search(&key).is_err()
                            && self.may_delete_at(plan, &plan.unknown[u].prog, key, g)
                    })
            })
            .collect()
    }

    /// Whether a branch of `prog` deletes `key` at gap `g` without writing what `g` forbids.
    fn may_delete_at(&self, plan: &Plan, prog: &Program, key: KeyId, g: i64) -> bool {
        let kept = &self.kept[&g];
        let forbidden = &plan.gaps[&g].forbidden;
        [&prog.success, &prog.failure].into_iter().any(|steps| {
            let mut covers = false;
            for step in steps {
                match *step {
                    Step::Delete { lo, hi, .. } => {
                        if kept.iter().any(|&k| (lo..hi).contains(&k)) {
                            return false;
                        }
                        covers |= (lo..hi).contains(&key);
                    }
                    Step::Put { key: k, .. } if forbidden.binary_search(&k).is_ok() => {
                        return false;
                    }
                    _ => {}
                }
            }
            covers
        })
    }
}

fn for_deleted(steps: &[Step], mut f: impl FnMut(KeyId)) {
    for step in steps {
        if let Step::Delete { lo, hi, .. } = *step {
            (lo..hi).for_each(&mut f);
        }
    }
}
