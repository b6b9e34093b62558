//! Per-key relaxation of the linearizability search: a fast necessary condition.
//!
//! Owns [`check_keys`]. Projected onto one key `k`, a linearization consists of `k`'s `Ok` writes
//! and reads at their revisions and, at every gap revision (one no `Ok` write reported), either
//! an `Unknown` write of `k` or a write of some other key. Forgetting that each gap is created by
//! exactly one write overall (other keys are assumed able to fill any gap `k` does not) leaves an
//! independent problem per key: the state is one key's entry, and the choice at a gap is "another
//! key" or one of `k`'s unused unknown writes. If some key has no solution, the history is not
//! linearizable.
//!
//! Why: a violation almost always shows on a single key, but the global search would first have
//! to rule out every combination of the other keys' unknown writes; here those combinations never
//! arise. Histories passing this check still go through the global search.
//!
//! Invariants: pins, forbidden keys, reservations and eligibility come from the same
//! `crate::revision_plan::Plan` as the global search, so every solution of the global problem
//! projects to a solution here (never a false rejection). Deterministic: keys in id order, options
//! in a fixed order, a step budget instead of a clock; if the budget runs out the key is passed.

use std::collections::{BTreeMap, HashSet};

use crate::history::History;
use crate::kv_model::{apply_to, cas_compare, explain_guard_failure, Entry, KeyId};
use crate::linearizability::Failure;
use crate::revision_plan::{is_used, OkRead, OkWrite, Plan};

/// One point of key `k`'s projected history, in revision order.
enum Step<'p> {
    Write(i64, &'p OkWrite),
    /// A gap revision `k` may have written (`true`: it must have).
    Gap(i64, bool),
    Reads(i64, Vec<&'p OkRead>),
}

impl Step<'_> {
    fn revision(&self) -> i64 {
        match self {
            Step::Write(r, _) | Step::Gap(r, _) | Step::Reads(r, _) => *r,
        }
    }
}

struct Frame {
    step: usize,
    entry: Option<Entry>,
    used: Vec<u64>,
    /// `None`: another key wrote this gap; `Some(i)`: local unknown write `i`.
    options: Vec<Option<usize>>,
    next: usize,
    path_len: usize,
}

/// The furthest dead end: step index, fillers, failed read ops, entry, reasons.
type DeadEnd = (
    usize,
    Vec<(i64, usize)>,
    Vec<usize>,
    Option<Entry>,
    Vec<String>,
);

struct KeySearch<'p> {
    plan: &'p Plan,
    history: &'p History,
    key: KeyId,
    steps: Vec<Step<'p>>,
    /// Indices into `plan.unknown` of the unknown writes of this key.
    mine: Vec<usize>,
    /// Local class index of each of `mine`.
    class: Vec<usize>,
    classes: usize,
    memo: HashSet<(usize, Option<Entry>, Vec<u32>)>,
    /// `(revision, index into plan.unknown)` on the current branch.
    path: Vec<(i64, usize)>,
    deepest: Option<DeadEnd>,
    spent: u64,
    budget: u64,
}

/// Checks each key's projection (module docs). Returns the failure of the first key that has no
/// solution, if any, and the number of steps spent (at most `budget`).
pub(crate) fn check_keys(plan: &Plan, history: &History, budget: u64) -> (Option<Failure>, u64) {
    let keys = plan.interner.key_count();
    let mut steps: Vec<Vec<Step>> = (0..keys).map(|_| Vec::new()).collect();
    for (s, slot) in plan.slots.iter().enumerate() {
        let rev = plan.initial + s as i64;
        match (&slot.write, plan.gaps.get(&rev)) {
            (Some(w), _) => steps[w.effect.key() as usize].push(Step::Write(rev, w)),
            (None, Some(g)) => {
                for key in 0..keys as KeyId {
                    if g.admits_key(key) {
                        steps[key as usize].push(Step::Gap(rev, g.key == Some(key)));
                    }
                }
            }
            (None, None) => {}
        }
        let mut reads: BTreeMap<KeyId, Vec<&OkRead>> = BTreeMap::new();
        for r in &slot.reads {
            reads.entry(r.check.key()).or_default().push(r);
        }
        for (key, reads) in reads {
            steps[key as usize].push(Step::Reads(rev, reads));
        }
    }
    let mut spent = 0;
    for (key, steps) in steps.into_iter().enumerate() {
        if steps.iter().all(|s| matches!(s, Step::Gap(..))) {
            continue; // no Ok op on this key: nothing to contradict
        }
        let mut search = KeySearch::new(plan, history, key as KeyId, steps, budget - spent);
        let result = search.run();
        spent += search.spent;
        match result {
            Some(false) => return (Some(search.failure()), spent),
            Some(true) => {}
            None => return (None, spent), // budget exhausted: leave it to the global search
        }
    }
    (None, spent)
}

impl<'p> KeySearch<'p> {
    fn new(
        plan: &'p Plan,
        history: &'p History,
        key: KeyId,
        steps: Vec<Step<'p>>,
        budget: u64,
    ) -> Self {
        let mine: Vec<usize> = (0..plan.unknown.len())
            .filter(|&i| plan.unknown[i].effect.key() == key)
            .collect();
        let mut local: BTreeMap<usize, usize> = BTreeMap::new();
        let class: Vec<usize> = mine
            .iter()
            .map(|&i| {
                let next = local.len();
                *local.entry(plan.unknown[i].class).or_insert(next)
            })
            .collect();
        Self {
            plan,
            history,
            key,
            steps,
            classes: local.len(),
            mine,
            class,
            memo: HashSet::new(),
            path: Vec::new(),
            deepest: None,
            spent: 0,
            budget,
        }
    }

    /// `Some(true)`: a solution exists; `Some(false)`: none; `None`: budget exhausted.
    fn run(&mut self) -> Option<bool> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut next = Some((0, None, vec![0u64; self.mine.len().div_ceil(64)]));
        loop {
            if let Some((step, entry, used)) = next.take() {
                match self.advance(step, entry) {
                    Walk::Done => return Some(true),
                    Walk::OutOfBudget => return None,
                    Walk::Dead => {}
                    Walk::Gap(step, entry) => {
                        let key = self.memo_key(step, entry, &used);
                        if !self.memo.contains(&key) {
                            let options = self.options(step, entry.as_ref(), &used);
                            if options.is_empty() {
                                let why = format!(
                                    "revision {}: responses show key {:?} wrote it, but none of \
                                     its Unknown writes can have",
                                    self.steps[step].revision(),
                                    self.plan.interner.key_name(self.key)
                                );
                                self.dead_end(step, entry, Vec::new(), vec![why]);
                                self.memo.insert(key);
                            } else {
                                let path_len = self.path.len();
                                let frame = Frame {
                                    step,
                                    entry,
                                    used,
                                    options,
                                    next: 0,
                                    path_len,
                                };
                                stack.push(frame);
                            }
                        }
                    }
                }
            }
            let Some(frame) = stack.last_mut() else {
                return Some(false);
            };
            if frame.next == frame.options.len() {
                let f = stack.pop().expect("non-empty");
                self.memo.insert(self.memo_key(f.step, f.entry, &f.used));
                continue;
            }
            let option = frame.options[frame.next];
            frame.next += 1;
            self.path.truncate(frame.path_len);
            let (step, mut entry, mut used) = (frame.step, frame.entry, frame.used.clone());
            if let Some(local) = option {
                let rev = self.steps[step].revision();
                let u = self.mine[local];
                entry = apply_to(self.plan.unknown[u].effect, entry.as_ref(), rev);
                used[local / 64] |= 1 << (local % 64);
                self.path.push((rev, u));
            }
            next = Some((step + 1, entry, used));
        }
    }

    /// Walks steps from `step` with the key's state `entry` until the end, a dead end or a gap.
    fn advance(&mut self, mut step: usize, mut entry: Option<Entry>) -> Walk {
        let plan = self.plan;
        while step < self.steps.len() {
            self.spent += 1;
            if self.spent > self.budget {
                return Walk::OutOfBudget;
            }
            match &self.steps[step] {
                Step::Gap(..) => return Walk::Gap(step, entry),
                Step::Write(rev, w) => {
                    if !cas_compare(w.guard, entry.as_ref()) {
                        let why = explain_guard_failure(
                            w.guard,
                            self.key,
                            entry.as_ref(),
                            rev - 1,
                            &plan.interner,
                        );
                        let why = format!("{}: {why}", self.history.ops[w.op]);
                        self.dead_end(step, entry, Vec::new(), vec![why]);
                        return Walk::Dead;
                    }
                    entry = apply_to(w.effect, entry.as_ref(), *rev);
                }
                Step::Reads(rev, reads) => {
                    let (failed, why): (Vec<usize>, Vec<String>) = reads
                        .iter()
                        .filter_map(|r| {
                            let why = r.check.check_entry(entry.as_ref(), *rev, &plan.interner);
                            Some((r.op, format!("{}: {}", self.history.ops[r.op], why.err()?)))
                        })
                        .unzip();
                    if !failed.is_empty() {
                        self.dead_end(step, entry, failed, why);
                        return Walk::Dead;
                    }
                }
            }
            step += 1;
        }
        Walk::Done
    }

    /// The choices at gap step `step`, in the order to try them.
    fn options(&self, step: usize, entry: Option<&Entry>, used: &[u64]) -> Vec<Option<usize>> {
        let plan = self.plan;
        let Step::Gap(s, must) = self.steps[step] else {
            unreachable!("options are only asked at gaps")
        };
        let gap = &plan.gaps[&s];
        let mut out: Vec<usize> = Vec::new();
        for (local, &u) in self.mine.iter().enumerate() {
            let w = &plan.unknown[u];
            if is_used(used, local)
                || w.min_slot > s
                || w.reserved_for.is_some_and(|r| r != s)
                || !gap.admits(w.effect)
                || !cas_compare(w.guard, entry)
                || (gap.creates && entry.is_some())
                || out.iter().any(|&l| self.class[l] == self.class[local])
            {
                continue;
            }
            out.push(local);
        }
        out.sort_by_key(|&l| (std::cmp::Reverse(plan.unknown[self.mine[l]].min_slot), l));
        let skip = (!must).then_some(None);
        skip.into_iter().chain(out.into_iter().map(Some)).collect()
    }

    fn memo_key(
        &self,
        step: usize,
        entry: Option<Entry>,
        used: &[u64],
    ) -> (usize, Option<Entry>, Vec<u32>) {
        let mut counts = vec![0u32; self.classes];
        for (local, &c) in self.class.iter().enumerate() {
            if is_used(used, local) {
                counts[c] += 1;
            }
        }
        (step, entry, counts)
    }

    fn dead_end(
        &mut self,
        step: usize,
        entry: Option<Entry>,
        failed: Vec<usize>,
        why: Vec<String>,
    ) {
        match &mut self.deepest {
            Some(d) if d.0 > step => {}
            Some(d) if d.0 == step => {
                for line in why {
                    if d.4.len() < 8 && !d.4.contains(&line) {
                        d.4.push(line);
                    }
                }
            }
            _ => self.deepest = Some((step, self.path.clone(), failed, entry, why)),
        }
    }

    fn failure(&self) -> Failure {
        let plan = self.plan;
        let ops = &self.history.ops;
        let (depth, fillers, failed, entry, reasons) = self.deepest.as_ref().expect("a dead end");
        let by_rev: BTreeMap<i64, usize> = fillers
            .iter()
            .map(|&(r, u)| (r, plan.unknown[u].op))
            .collect();
        let (mut order, mut total) = (Vec::new(), 0);
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Write(_, w) => {
                    total += 1;
                    order.extend((i < *depth).then_some(w.op));
                }
                Step::Gap(r, _) => order.extend(by_rev.get(r).filter(|_| i < *depth)),
                Step::Reads(_, reads) => {
                    total += reads.len();
                    let placed = reads.iter().map(|r| r.op);
                    order.extend(
                        placed.filter(|op| i < *depth || (i == *depth && !failed.contains(op))),
                    );
                }
            }
        }
        let step = &self.steps[*depth];
        let revision = match step {
            Step::Reads(r, _) => *r,
            Step::Write(r, _) | Step::Gap(r, _) => r - 1,
        };
        let name = plan.interner.key_name(self.key);
        let mut unplaced = vec![format!(
            "key {name:?} alone admits no linearization (whichever writes of other keys fill \
             the revisions no Ok write reported); the ops below are its projection:"
        )];
        unplaced.extend(reasons.iter().cloned());
        Failure {
            revision: Some(revision),
            recent: order[order.len().saturating_sub(10)..]
                .iter()
                .map(|&i| ops[i].to_string())
                .collect(),
            linearized: order.iter().map(|&i| ops[i].id).collect(),
            fillers: fillers
                .iter()
                .map(|&(r, u)| (r, ops[plan.unknown[u].op].id))
                .collect(),
            state: entry
                .iter()
                .map(|e| (name.to_string(), plan.interner.key_state(e)))
                .collect(),
            unplaced,
            remaining: total - (order.len() - by_rev.len()),
        }
    }
}

enum Walk {
    Done,
    Gap(usize, Option<Entry>),
    Dead,
    OutOfBudget,
}
