//! Static analysis of a history ahead of the linearizability search: revision slots and pruning.
//!
//! Owns the [`Plan`] the search runs on (built after the checks of `crate::revision_order`).
//!
//! Key fact: every state change bumps the store revision by exactly one and every `Ok` response
//! but `Compacted` carries a header revision, so in *every* valid linearization an `Ok` write sits
//! exactly at the revision it reported, and an `Ok` op that changed nothing sits between the write
//! creating its header revision `R` and the write creating `R + 1`. Hence:
//! - [`Plan::slots`] holds, per revision `R` in `initial..=max_rev`, the `Ok` write that created it
//!   (if any) and the `Ok` reads whose data is the state at `R`: reads with header `R`, and
//!   ranges at a past revision `R` (whatever their header: the state at `R` is fixed once the
//!   search passes `R`, and their real-time place is checked by `crate::revision_order`).
//!   Serializable reads are slot reads too (every member's state at `R` is the same), with no
//!   real-time constraint;
//! - every revision no `Ok` write claims (a *gap*) must be created by an `Unknown` write, which
//!   may sit at revision `S` only if every linearizable `Ok` op that completed before its invoke
//!   has a revision `< S` ([`UnknownWrite::min_slot`]);
//! - responses prune gap writes ([`Gap`]): a key state seen at `R` with `mod_revision m` forbids
//!   any write to the key at gaps in `(m, R]` and any delete of it in `(create_revision, m)`; if
//!   exactly one op of the history ever put that key to that value and it is `Unknown`, it is the
//!   write of gap `m` (a *pin*). A seen key state must be self-consistent (`initial <
//!   create_revision <= mod_revision <= R`, `version == 1` iff created at `mod_revision`). These
//!   facts hold in every valid linearization, so pruning with them never rejects a valid history.
//!
//! Invariants of a built plan: `slots.len() == max_rev - initial + 1`; `slots[0]` (the initial
//! revision) has no write; `gaps` has exactly the revisions in `initial+1..=max_rev` whose slot has
//! no write, and there are no more gaps than unknown writes.

use std::collections::BTreeMap;

use crate::history::{History, Outcome, Request};
use crate::kv_compile::{compile, compile_expect};
use crate::kv_model::{Entry, Expect, Interner, KeyId, Out, Program, Step};
use crate::linearizability::{Failure, LinearizabilityError};
use crate::revision_order::{ok_linearizable, CompletionIndex};

/// An `Ok` op placed at a revision: the op at `op` (index into `History::ops`).
#[derive(Debug)]
pub(crate) struct OkOp {
    pub op: usize,
    pub prog: Program,
    pub expect: Expect,
}

impl OkOp {
    /// The branch its response reported taking.
    pub fn reported_branch(&self) -> &[Step] {
        self.prog.branch(self.expect.succeeded)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub write: Option<OkOp>,
    pub reads: Vec<OkOp>,
}

/// An `Unknown` write: may fill one gap (or be left out).
#[derive(Debug)]
pub(crate) struct UnknownWrite {
    pub op: usize,
    pub prog: Program,
    /// Lowest revision it may create.
    pub min_slot: i64,
    /// Unknown writes with equal programs share a class (they are interchangeable).
    pub class: usize,
    /// The gap a response proves it created.
    pub reserved_for: Option<i64>,
}

/// What responses imply about the write of one gap revision.
#[derive(Debug, Default)]
pub(crate) struct Gap {
    /// The unknown write a response proves created it.
    pub pinned: Option<usize>,
    /// Keys it may not write (sorted).
    pub forbidden: Vec<KeyId>,
    /// Keys it may not delete (sorted).
    pub no_delete: Vec<KeyId>,
}

impl Gap {
    /// Whether writes (key -> new state) respect the gap's restrictions.
    pub fn admits(&self, writes: &BTreeMap<KeyId, Option<Entry>>) -> bool {
        writes.iter().all(|(k, e)| {
            self.forbidden.binary_search(k).is_err()
                && (e.is_some() || self.no_delete.binary_search(k).is_err())
        })
    }

    /// The restrictions, for error messages.
    pub fn describe(&self, plan: &Plan, history: &History) -> String {
        let mut out = String::new();
        if let Some(u) = self.pinned {
            out += &format!(
                "; responses show {} created it",
                history.ops[plan.unknown[u].op]
            );
        }
        let names = |keys: &[KeyId]| -> String {
            let names: Vec<&str> = keys
                .iter()
                .take(8)
                .map(|&k| plan.interner.key_name(k))
                .collect();
            names.join(", ")
        };
        if !self.forbidden.is_empty() {
            out += &format!(
                "; responses show it did not write {}",
                names(&self.forbidden)
            );
        }
        if !self.no_delete.is_empty() {
            out += &format!(
                "; responses show it did not delete {}",
                names(&self.no_delete)
            );
        }
        out
    }
}

#[derive(Debug)]
pub(crate) struct Plan {
    pub interner: Interner,
    pub initial: i64,
    pub max_rev: i64,
    pub slots: Vec<Slot>,
    pub gaps: BTreeMap<i64, Gap>,
    pub unknown: Vec<UnknownWrite>,
    pub classes: usize,
    /// Unknown writes by decreasing `min_slot` (the order candidates are tried in).
    pub order: Vec<usize>,
    /// `Ok` ops placed in slots.
    pub ok_ops: usize,
    /// Per key: the highest slot of an `Ok` op that reads or writes it (`i64::MAX` if an unknown
    /// write does).
    last_use: Vec<i64>,
}

impl Plan {
    pub fn slot(&self, rev: i64) -> &Slot {
        &self.slots[(rev - self.initial) as usize]
    }

    /// Whether unknown write `u` may create gap revision `g` and write `key` there: invoked
    /// early enough, not reserved for or pinned to another gap, and `key` not forbidden there.
    pub fn may_write_at(&self, u: usize, g: i64, key: KeyId) -> bool {
        let (w, gap) = (&self.unknown[u], &self.gaps[&g]);
        w.min_slot <= g
            && w.reserved_for.is_none_or(|r| r == g)
            && gap.pinned.is_none_or(|p| p == u)
            && gap.forbidden.binary_search(&key).is_err()
    }

    /// Whether no op placed after revision `rev` can observe or change `key`.
    pub fn dead(&self, key: KeyId, rev: i64) -> bool {
        self.last_use[key as usize] <= rev
    }

    /// Builds the plan (history already validated by `crate::revision_order`).
    pub fn build(history: &History, initial: i64) -> Result<Plan, LinearizabilityError> {
        let early = |why: String, n: usize| {
            LinearizabilityError::NotLinearizable(Box::new(Failure::early(why, n)))
        };
        let ok = ok_linearizable(history);
        let completions = CompletionIndex::new(history, &ok);
        let mut interner = Interner::new(history);
        let mut writes: BTreeMap<i64, OkOp> = BTreeMap::new();
        let mut reads: Vec<(i64, OkOp)> = Vec::new();
        let mut unknown = Vec::new();
        let mut max_rev = initial;
        for (i, op) in history.ops.iter().enumerate() {
            match &op.outcome {
                Outcome::Ok(resp) => {
                    let Some(h) = resp.revision() else { continue };
                    if h < initial {
                        let why = format!(
                            "{op}: header revision {h} precedes the initial revision {initial}"
                        );
                        return Err(early(why, ok.len()));
                    }
                    max_rev = max_rev.max(h);
                    let Some(prog) = compile(&op.request, &mut interner) else {
                        continue;
                    };
                    let expect = compile_expect(&op.request, resp, &mut interner);
                    let placed = OkOp {
                        op: i,
                        prog,
                        expect,
                    };
                    if resp.is_state_change() {
                        if h == initial {
                            let why = format!("{op}: claims to have created the initial revision");
                            return Err(early(why, ok.len()));
                        }
                        writes.insert(h, placed);
                        continue;
                    }
                    let at = match &op.request {
                        Request::Range(r) if r.revision > 0 => r.revision,
                        _ => h,
                    };
                    if at > h || at < initial {
                        let why = format!(
                            "{op}: returned data at revision {at}, outside {initial}..={h}"
                        );
                        return Err(early(why, ok.len()));
                    }
                    reads.push((at, placed));
                }
                Outcome::Unknown if op.request.is_write() => {
                    let Some(prog) = compile(&op.request, &mut interner) else {
                        continue;
                    };
                    let writes_something =
                        |steps: &[Step]| steps.iter().any(|s| !matches!(s, Step::Range(_)));
                    if writes_something(&prog.success) || writes_something(&prog.failure) {
                        let min_slot = completions.min_slot(op.invoke, initial);
                        unknown.push((i, prog, min_slot));
                    }
                }
                _ => {}
            }
        }
        let mut slots: Vec<Slot> = (initial..=max_rev).map(|_| Slot::default()).collect();
        let ok_ops = writes.len() + reads.len();
        for (rev, w) in writes {
            slots[(rev - initial) as usize].write = Some(w);
        }
        for (at, r) in reads {
            slots[(at - initial) as usize].reads.push(r);
        }
        let gaps: BTreeMap<i64, Gap> = (initial + 1..=max_rev)
            .filter(|&r| slots[(r - initial) as usize].write.is_none())
            .map(|r| (r, Gap::default()))
            .collect();
        let mut classes: BTreeMap<Program, usize> = BTreeMap::new();
        let unknown: Vec<UnknownWrite> = unknown
            .into_iter()
            .map(|(op, prog, min_slot)| {
                let next = classes.len();
                let class = *classes.entry(prog.clone()).or_insert(next);
                UnknownWrite {
                    op,
                    prog,
                    min_slot,
                    class,
                    reserved_for: None,
                }
            })
            .collect();
        let mut order: Vec<usize> = (0..unknown.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(unknown[i].min_slot), i));
        let key_count = interner.key_count();
        let mut plan = Plan {
            interner,
            initial,
            max_rev,
            slots,
            gaps,
            unknown,
            classes: classes.len(),
            order,
            ok_ops,
            last_use: vec![i64::MIN; key_count],
        };
        plan.mark_uses();
        plan.derive_pins(history)
            .map_err(|why| early(why, ok_ops))?;
        plan.check_fillable(history)
            .map_err(|why| early(why, ok_ops))?;
        Ok(plan)
    }

    fn mark_uses(&mut self) {
        let mut last_use = std::mem::take(&mut self.last_use);
        let mut mark = |prog: &Program, at: i64| {
            let mut set = |k: KeyId| last_use[k as usize] = last_use[k as usize].max(at);
            prog.compares.iter().for_each(|c| set(c.key));
            for s in prog.success.iter().chain(&prog.failure) {
                match *s {
                    Step::Put { key, .. } => set(key),
                    Step::Delete { lo, hi, .. } => (lo..hi).for_each(&mut set),
                    Step::Range(q) => (q.lo..q.hi).for_each(&mut set),
                }
            }
        };
        for (s, slot) in self.slots.iter().enumerate() {
            let rev = self.initial + s as i64;
            slot.write
                .iter()
                .chain(&slot.reads)
                .for_each(|o| mark(&o.prog, rev));
        }
        for u in &self.unknown {
            mark(&u.prog, i64::MAX);
        }
        self.last_use = last_use;
    }

    /// Derives forbidden keys and pins from every key state a placed `Ok` op saw (module docs).
    fn derive_pins(&mut self, history: &History) -> Result<(), String> {
        let mut writers: BTreeMap<(KeyId, u32), Vec<Option<usize>>> = BTreeMap::new();
        for slot in &self.slots {
            if let Some(w) = &slot.write {
                for_puts(&w.prog, |k, v| {
                    writers.entry((k, v)).or_default().push(None)
                });
            }
        }
        for (u, w) in self.unknown.iter().enumerate() {
            for_puts(&w.prog, |k, v| {
                writers.entry((k, v)).or_default().push(Some(u))
            });
        }
        let initial = self.initial;
        let mut seen: Vec<(usize, i64, KeyId, Entry)> = Vec::new();
        for (s, slot) in self.slots.iter().enumerate() {
            let rev = initial + s as i64;
            for (o, at) in slot
                .reads
                .iter()
                .map(|r| (r, rev))
                .chain(slot.write.iter().map(|w| (w, rev - 1)))
            {
                let is_write = at < rev;
                for out in &o.expect.results {
                    // A write's ranges may see its own puts; its deletes' prev_kvs cannot (a txn
                    // never puts a key it deletes), so they show the state before it.
                    let kvs = match out {
                        Out::Range(r) if !is_write => &r.kvs,
                        Out::Delete { prev, .. } => prev,
                        _ => continue,
                    };
                    seen.extend(kvs.iter().map(|&(k, e)| (o.op, at, k, e)));
                }
            }
        }
        let (empty, unobserved) = (
            self.interner.empty_value(),
            self.interner.unobserved_value(),
        );
        self.lifetimes(history, &seen)?;
        for (op, at, key, e) in seen {
            if !(initial < e.create && e.create <= e.modr && e.modr <= at)
                || e.version < 1
                || (e.version == 1) != (e.create == e.modr)
            {
                return Err(format!(
                    "{}: no state can hold {:?} = {} at revision {at} (needs {initial} < \
                     create_revision <= mod_revision <= {at}, and version 1 exactly when \
                     create_revision == mod_revision)",
                    history.ops[op],
                    self.interner.key_name(key),
                    self.interner.key_state(&e)
                ));
            }
            if e.modr < at {
                for (_, g) in self.gaps.range_mut(e.modr + 1..=at) {
                    g.forbidden.push(key);
                }
            }
            if e.create + 1 < e.modr {
                for (_, g) in self.gaps.range_mut(e.create + 1..e.modr) {
                    g.no_delete.push(key);
                }
            }
            if e.value == empty || e.value == unobserved {
                continue;
            }
            let (Some([Some(u)]), Some(g)) = (
                writers.get(&(key, e.value)).map(Vec::as_slice),
                self.gaps.get_mut(&e.modr),
            ) else {
                continue;
            };
            let w = &mut self.unknown[*u];
            if w.reserved_for.is_some_and(|r| r != e.modr) || g.pinned.is_some_and(|p| p != *u) {
                return Err(format!(
                    "{}: saw {:?} = {}, written by {}, which responses also place elsewhere",
                    history.ops[op],
                    self.interner.key_name(key),
                    self.interner.key_state(&e),
                    history.ops[w.op]
                ));
            }
            w.reserved_for = Some(e.modr);
            g.pinned = Some(*u);
        }
        for g in self.gaps.values_mut() {
            g.forbidden.sort_unstable();
            g.forbidden.dedup();
            g.no_delete.sort_unstable();
            g.no_delete.dedup();
        }
        Ok(())
    }

    /// A key state `(create c, mod m, version v)` seen means the key was put exactly `v` times in
    /// `[c, m]`; gaps at `c` and `m` are such puts. If `Ok` puts account for the rest, no gap
    /// strictly between touches the key.
    fn lifetimes(
        &mut self,
        history: &History,
        seen: &[(usize, i64, KeyId, Entry)],
    ) -> Result<(), String> {
        let initial = self.initial;
        let mut ok_puts: BTreeMap<(KeyId, i64), ()> = BTreeMap::new();
        for (s, slot) in self.slots.iter().enumerate() {
            let Some(w) = &slot.write else { continue };
            for step in w.reported_branch() {
                if let Step::Put { key, .. } = *step {
                    ok_puts.insert((key, initial + s as i64), ());
                }
            }
        }
        for &(op, _, key, e) in seen {
            if e.create >= e.modr || e.create <= initial {
                continue;
            }
            let puts = ok_puts.range((key, e.create)..=(key, e.modr)).count() as i64;
            let ends = [e.create, e.modr];
            let pinned = ends.iter().filter(|r| self.gaps.contains_key(r)).count() as i64;
            let extra = e.version - puts - pinned;
            if extra < 0 {
                return Err(format!(
                    "{}: {:?} has version {}, but Ok writes put it {puts} times in revisions \
                     {}..={}",
                    history.ops[op],
                    self.interner.key_name(key),
                    e.version,
                    e.create,
                    e.modr
                ));
            }
            if extra == 0 {
                for (_, g) in self.gaps.range_mut(e.create + 1..e.modr) {
                    g.forbidden.push(key);
                }
            }
        }
        Ok(())
    }

    /// Every gap needs an unknown write that may create it, and the `j`-th gap needs `j` unknown
    /// writes that may sit at or below it.
    fn check_fillable(&self, history: &History) -> Result<(), String> {
        let mut min_slots: Vec<i64> = self.unknown.iter().map(|u| u.min_slot).collect();
        min_slots.sort_unstable();
        for (j, (&s, g)) in self.gaps.iter().enumerate() {
            let fillable = self.unknown.iter().enumerate().any(|(i, u)| {
                u.min_slot <= s
                    && u.reserved_for.is_none_or(|r| r == s)
                    && g.pinned.is_none_or(|p| p == i)
            });
            let available = min_slots.partition_point(|&m| m <= s);
            if !fillable || available <= j {
                return Err(format!(
                    "revision {s}: no Ok write reported creating it, and no Unknown write can have \
                     ({available} Unknown writes may create revisions up to {s}, for {} such \
                     revisions){}",
                    j + 1,
                    g.describe(self, history)
                ));
            }
        }
        Ok(())
    }
}

fn for_puts(prog: &Program, mut f: impl FnMut(KeyId, u32)) {
    for s in prog.success.iter().chain(&prog.failure) {
        if let Step::Put { key, value } = *s {
            f(key, value);
        }
    }
}

/// Whether unknown write `i` is marked in bitset `used`.
pub(crate) fn is_used(used: &[u64], i: usize) -> bool {
    used[i / 64] & (1 << (i % 64)) != 0
}
