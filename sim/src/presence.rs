//! Lookahead pruning for the gap search: a key state seen later pins the key's incarnation and
//! how many puts it still needs.
//!
//! Owns [`Presences`], built once per `crate::revision_plan::Plan`: per key, every state a placed
//! `Ok` op saw, `(R, entry)` (reads at their slot, a write's delete `prev_kv`s just before it);
//! the revisions of `Ok` writes whose reported branch puts it; the unknown writes with a put of it.
//!
//! Soundness. After revision `s`, let `(R, e)` be the first sighting of key `k` with `R >= s`
//! and `e.create <= s`. The key lives as one incarnation from `e.create` to `R`, so now it must
//! be present with `create == e.create`, `version <= e.version` and `mod <= e.mod` (equal if
//! `e.mod <= s`). Its version grows by one per put, so the puts in `(s, e.mod]` number exactly
//! `e.version - version` (one per revision: etcd rejects a txn that puts a key twice, and the
//! workload never sends one): `Ok` writes account for some, and each of the rest needs its own gap
//! in `(s, e.mod]` that an unused unknown write with a put of `k` may fill (and those puts are
//! a need of `crate::gap_budget`, counted with every other key's). Violating any of this, no
//! extension is a linearization. (Seed 12: six puts of one key to place in a run of
//! gaps, found only at the read that saw version 6.)

use std::collections::BTreeSet;

use crate::gap_budget::Need;
use crate::kv_model::{Entry, KeyId, Out, Step, Store};
use crate::revision_plan::{is_used, Plan};

/// Why a branch cannot be extended: `key`'s state after the branch's revision cannot become what
/// op `reader` saw at revision `seen_at`.
pub(crate) struct Unreachable {
    pub key: KeyId,
    pub seen_at: i64,
    pub reader: usize,
    pub why: &'static str,
}

pub(crate) struct Presences {
    /// Per key: sorted `(revision, op index, state seen)`.
    seen: Vec<Vec<(i64, usize, Entry)>>,
    /// Per key: sorted revisions of `Ok` writes whose branch puts it.
    ok_puts: Vec<Vec<i64>>,
    /// Per key: unknown writes (indices into `Plan::unknown`) with a put of it.
    putters: Vec<Vec<usize>>,
}

impl Presences {
    pub fn new(plan: &Plan) -> Self {
        let n = plan.interner.key_count();
        let mut seen = vec![Vec::new(); n];
        let mut ok_puts = vec![Vec::new(); n];
        let mut putters = vec![Vec::new(); n];
        for (s, slot) in plan.slots.iter().enumerate() {
            let rev = plan.initial + s as i64;
            for r in &slot.reads {
                for out in &r.expect.results {
                    if let Out::Range(o) = out {
                        for &(k, e) in &o.kvs {
                            seen[k as usize].push((rev, r.op, e));
                        }
                    }
                }
            }
            let Some(w) = &slot.write else { continue };
            for out in &w.expect.results {
                if let Out::Delete { prev, .. } = out {
                    for &(k, e) in prev {
                        seen[k as usize].push((rev - 1, w.op, e));
                    }
                }
            }
            for_puts(w.reported_branch(), |k| ok_puts[k as usize].push(rev));
        }
        for (i, u) in plan.unknown.iter().enumerate() {
            for_puts(&u.prog.success, |k| putters[k as usize].push(i));
            for_puts(&u.prog.failure, |k| putters[k as usize].push(i));
        }
        for list in &mut seen {
            list.sort_unstable_by_key(|&(rev, op, _)| (rev, op));
        }
        for list in &mut ok_puts {
            list.dedup();
        }
        for list in &mut putters {
            list.dedup();
        }
        Self {
            seen,
            ok_puts,
            putters,
        }
    }

    /// A key of `state` that can no longer become what a later op saw, or else the puts the
    /// branch still owes (for `crate::gap_budget`).
    pub fn check(
        &self,
        plan: &Plan,
        state: &Store,
        used: &[u64],
    ) -> Result<Vec<Need>, Unreachable> {
        let s = state.revision();
        let mut needs = Vec::new();
        for key in 0..plan.interner.key_count() as KeyId {
            let seen = &self.seen[key as usize];
            let from = seen.partition_point(|&(r, _, _)| r < s);
            let Some(&(seen_at, reader, e)) = seen[from..].iter().find(|(_, _, e)| e.create <= s)
            else {
                continue;
            };
            let fail = |why| {
                Err(Unreachable {
                    key,
                    seen_at,
                    reader,
                    why,
                })
            };
            let Some(now) = state.get(key) else {
                return fail("it is absent now, though that op saw it created earlier");
            };
            if now.create != e.create {
                return fail("it was created at another revision than that op saw");
            }
            if now.version > e.version || now.modr > e.modr {
                return fail("it has been put more often or later than that op saw");
            }
            if e.modr <= s && (now.modr != e.modr || now.version != e.version) {
                return fail("it cannot change any more, yet differs from what that op saw");
            }
            let ok = &self.ok_puts[key as usize];
            let ok_puts = ok[ok.partition_point(|&r| r <= s)..]
                .iter()
                .take_while(|&&r| r <= e.modr)
                .count() as i64;
            let needed = e.version - now.version - ok_puts;
            if needed < 0 {
                return fail("writes still to come put it more often than that op saw");
            }
            if needed == 0 {
                continue;
            }
            let writers = self.writers(plan, key, s, e.modr, used);
            let free = plan
                .gaps
                .range(s + 1..=e.modr)
                .filter(|(&g, _)| writers.iter().any(|&u| plan.may_write_at(u, g, key)))
                .count();
            if free < needed as usize {
                return fail("too few gaps remain for the puts of it that op's version needs");
            }
            needs.push(Need {
                key,
                deadline: e.modr,
                reader,
                count: needed as usize,
                writers,
            });
        }
        Ok(needs)
    }

    /// The unused unknown writes that may put `key` at a gap in `(after, until]`.
    fn writers(
        &self,
        plan: &Plan,
        key: KeyId,
        after: i64,
        until: i64,
        used: &[u64],
    ) -> BTreeSet<usize> {
        self.putters[key as usize]
            .iter()
            .copied()
            .filter(|&u| {
                !is_used(used, u)
                    && plan
                        .gaps
                        .range(after + 1..=until)
                        .any(|(&g, _)| plan.may_write_at(u, g, key))
            })
            .collect()
    }
}

fn for_puts(steps: &[Step], mut f: impl FnMut(KeyId)) {
    for step in steps {
        if let Step::Put { key, .. } = *step {
            f(key);
        }
    }
}
