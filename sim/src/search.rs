//! The gap search of the linearizability checker (see `crate::linearizability` for the method).
//!
//! Owns [`Search`]: a depth-first walk over revisions of a `crate::revision_plan::Plan`, with an
//! explicit stack of gap frames, a memo of dead gap configurations and a step budget. A step is
//! one revision walked or one candidate tried. On failure it reports the deepest dead end.
//!
//! Invariants: the walk only moves upwards in revision; at a gap, the frame's state is the model
//! state after every `Ok` op through that revision plus the fillers on the stack; a memoized
//! configuration has no extension to a full linearization (so skipping it never loses one).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};

use crate::absence::Absences;
use crate::gap_budget::shortfall;
use crate::history::History;
use crate::kv_model::{mismatch, run, Store};
use crate::linearizability::{Failure, LinearizabilityError, Linearization};
use crate::presence::Presences;
use crate::revision_plan::{is_used, Plan};

/// How many distinct "could not place" reasons a [`Failure`] keeps.
const MAX_REASONS: usize = 8;
/// How many of the last placed ops a [`Failure`] renders.
const RECENT_OPS: usize = 10;

/// One gap being branched on.
struct Frame {
    state: Store,
    used: Vec<u64>,
    candidates: Vec<usize>,
    next: usize,
    fillers_len: usize,
}

enum Advance {
    Done(Store),
    Dead,
    Gap(Store),
}

/// A branch that could not be extended.
struct DeadEnd {
    /// (revision, whether all reads at it were placed)
    depth: (i64, bool),
    fillers: Vec<(i64, usize)>,
    /// Op indices at `depth.0` that could not be placed.
    failed: Vec<usize>,
    state: Store,
    reasons: Vec<String>,
}

pub(crate) struct Search<'a> {
    plan: &'a Plan,
    history: &'a History,
    budget: u64,
    steps: u64,
    /// Fingerprints of gap configurations known not to lead to a linearization.
    memo: HashSet<u128>,
    /// `(revision, unknown index)` placed on the current branch.
    fillers: Vec<(i64, usize)>,
    deepest: Option<DeadEnd>,
    absences: Absences,
    presences: Presences,
}

impl<'a> Search<'a> {
    pub fn new(plan: &'a Plan, history: &'a History, budget: u64) -> Self {
        Self {
            plan,
            history,
            budget,
            steps: 0,
            memo: HashSet::new(),
            fillers: Vec::new(),
            deepest: None,
            absences: Absences::new(plan),
            presences: Presences::new(plan),
        }
    }

    pub fn run(mut self) -> Result<Linearization, LinearizabilityError> {
        let plan = self.plan;
        let start = Store::new(plan.initial, plan.interner.key_count());
        let mut next = Some((start, vec![0u64; plan.unknown.len().div_ceil(64)]));
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            if let Some((state, used)) = next.take() {
                match self.advance(state)? {
                    Advance::Done(state) => return Ok(self.linearization(state)),
                    Advance::Dead => {}
                    Advance::Gap(state) => {
                        let key = self.memo_key(&state, &used);
                        if !self.memo.contains(&key) {
                            let candidates = self.candidates(&state, &used);
                            if candidates.is_empty() {
                                self.dead_gap(&state, &used);
                                self.memo.insert(key);
                            } else {
                                let fillers_len = self.fillers.len();
                                stack.push(Frame {
                                    state,
                                    used,
                                    candidates,
                                    next: 0,
                                    fillers_len,
                                });
                            }
                        }
                    }
                }
            }
            let Some(frame) = stack.last_mut() else {
                let failure = self.failure();
                return Err(LinearizabilityError::NotLinearizable(Box::new(failure)));
            };
            if frame.next == frame.candidates.len() {
                let frame = stack.pop().expect("non-empty");
                self.memo.insert(self.memo_key(&frame.state, &frame.used));
                continue;
            }
            let u = frame.candidates[frame.next];
            frame.next += 1;
            self.fillers.truncate(frame.fillers_len);
            let mut state = frame.state.clone();
            let exec = run(&plan.unknown[u].prog, &state, &plan.interner);
            state.commit(&exec.writes);
            let mut used = frame.used.clone();
            used[u / 64] |= 1 << (u % 64);
            self.fillers.push((state.revision(), u));
            self.tick()?;
            match self.lookahead(&state, &used) {
                Some(why) => self.dead_end(&state, true, vec![(usize::MAX, why)]),
                None => next = Some((state, used)),
            }
        }
    }

    /// The memo key of a gap configuration. Configurations that differ only in keys nothing can
    /// observe any more, or in which members of a class of identical unknown writes were used
    /// (all used ones were eligible, so all are eligible now), have the same futures.
    fn memo_key(&self, state: &Store, used: &[u64]) -> u128 {
        let plan = self.plan;
        let mut canonical = state.clone();
        for key in 0..plan.interner.key_count() as u32 {
            if plan.dead(key, state.revision()) {
                canonical.erase(key);
            }
        }
        let mut counts = vec![0u32; plan.classes];
        for (i, u) in plan.unknown.iter().enumerate() {
            if is_used(used, i) {
                counts[u.class] += 1;
            }
        }
        let half = |salt: u8| {
            let mut h = DefaultHasher::new();
            salt.hash(&mut h);
            canonical.hash(&mut h);
            counts.hash(&mut h);
            h.finish()
        };
        (u128::from(half(1)) << 64) | u128::from(half(2))
    }

    fn tick(&mut self) -> Result<(), LinearizabilityError> {
        self.steps += 1;
        if self.steps <= self.budget {
            return Ok(());
        }
        Err(LinearizabilityError::Inconclusive {
            budget: self.budget,
            deepest: Box::new(self.failure()),
        })
    }

    /// Walks revisions from `state` until the end, a dead end, or a gap.
    fn advance(&mut self, mut state: Store) -> Result<Advance, LinearizabilityError> {
        let plan = self.plan;
        loop {
            self.tick()?;
            let rev = state.revision();
            let failed: Vec<(usize, String)> = plan
                .slot(rev)
                .reads
                .iter()
                .filter_map(|r| {
                    let exec = run(&r.prog, &state, &plan.interner);
                    let why = if exec.changed() {
                        format!(
                            "it changed nothing, but at revision {rev} the model changes the store"
                        )
                    } else {
                        mismatch(&r.expect, &exec, &plan.interner)?
                    };
                    Some((r.op, format!("{why} (at revision {rev})")))
                })
                .collect();
            if !failed.is_empty() {
                self.dead_end(&state, false, failed);
                return Ok(Advance::Dead);
            }
            if rev == plan.max_rev {
                return Ok(Advance::Done(state));
            }
            let Some(w) = &plan.slot(rev + 1).write else {
                return Ok(Advance::Gap(state));
            };
            let exec = run(&w.prog, &state, &plan.interner);
            let why = mismatch(&w.expect, &exec, &plan.interner).or_else(|| {
                let created = rev + 1;
                (!exec.changed()).then(|| {
                    format!("it created revision {created}, but there the model changes nothing")
                })
            });
            if let Some(why) = why {
                self.dead_end(
                    &state,
                    true,
                    vec![(w.op, format!("{why} (after revision {rev})"))],
                );
                return Ok(Advance::Dead);
            }
            state.commit(&exec.writes);
        }
    }

    /// Unknown writes that may create revision `state.revision() + 1`, in the order to try them:
    /// one per class (the latest invoked), only those that change the store in a way the gap
    /// admits.
    fn candidates(&self, state: &Store, used: &[u64]) -> Vec<usize> {
        let plan = self.plan;
        let s = state.revision() + 1;
        let gap = &plan.gaps[&s];
        let mut out: Vec<usize> = Vec::new();
        let mut classes_seen: Vec<usize> = Vec::new();
        for &i in &plan.order {
            let u = &plan.unknown[i];
            if is_used(used, i)
                || u.min_slot > s
                || u.reserved_for.is_some_and(|r| r != s)
                || gap.pinned.is_some_and(|p| p != i)
                || classes_seen.contains(&u.class)
            {
                continue;
            }
            classes_seen.push(u.class);
            let exec = run(&u.prog, state, &plan.interner);
            if exec.changed() && gap.admits(&exec.writes) {
                out.push(i);
            }
        }
        out
    }

    /// Records that no unknown write can create the gap after `state`.
    fn dead_gap(&mut self, state: &Store, used: &[u64]) {
        let depth = (state.revision(), true);
        if self.deepest.as_ref().is_some_and(|d| {
            d.depth > depth || (d.depth == depth && d.reasons.len() >= MAX_REASONS)
        }) {
            return;
        }
        let plan = self.plan;
        let s = state.revision() + 1;
        let gap = &plan.gaps[&s];
        let (mut placed, mut late, mut other) = (0, 0, 0);
        for (i, u) in plan.unknown.iter().enumerate() {
            if is_used(used, i) {
                placed += 1;
            } else if u.min_slot > s {
                late += 1;
            } else {
                other += 1;
            }
        }
        let why = format!(
            "revision {s}: no Ok write reported creating it, and no Unknown write can create it \
             here{} [{} Unknown writes: {placed} already placed, {late} invoked after an op of \
             revision >= {s} completed, {other} would change nothing here or contradict what \
             responses saw]",
            gap.describe(plan, self.history),
            plan.unknown.len()
        );
        self.dead_end(state, true, vec![(usize::MAX, why)]);
    }

    /// Why no extension of the branch at `state` can match what later ops saw, if the lookahead
    /// of `crate::presence`, `crate::absence` and `crate::gap_budget` finds a reason.
    fn lookahead(&self, state: &Store, used: &[u64]) -> Option<String> {
        let (plan, ops) = (self.plan, &self.history.ops);
        let s = state.revision();
        let name = |k| plan.interner.key_name(k);
        let mut needs = match self.presences.check(plan, state, used) {
            Ok(needs) => needs,
            Err(u) => {
                return Some(format!(
                    "{:?} after revision {s} cannot become what {} saw at revision {}: {}",
                    name(u.key),
                    ops[u.reader],
                    u.seen_at,
                    u.why
                ))
            }
        };
        match self.absences.check(plan, state, used) {
            Ok(more) => needs.extend(more),
            Err(u) => {
                return Some(format!(
                    "{:?} is present after revision {s}, but {} shows it absent at revision {}, \
                     and no write still to come can delete it in between",
                    name(u.key),
                    ops[u.reader],
                    u.seen_absent
                ))
            }
        }
        let (need, short) = shortfall(plan, s, needs)?;
        Some(format!(
            "after revision {s}, the gaps up to revision {} are {short} short of the distinct \
             writes still needed (puts and deletes) for keys to look as later ops saw them, \
             {:?} as {} saw it among them",
            need.deadline,
            name(need.key),
            ops[need.reader]
        ))
    }

    /// Records a dead end after `state`; `unplaced` = (op index or `usize::MAX`, reason).
    fn dead_end(&mut self, state: &Store, reads_done: bool, unplaced: Vec<(usize, String)>) {
        let depth = (state.revision(), reads_done);
        let ops = &self.history.ops;
        let render = |(op, why): &(usize, String)| match ops.get(*op) {
            Some(op) => format!("{op}: {why}"),
            None => why.clone(),
        };
        match &mut self.deepest {
            Some(d) if d.depth > depth => {}
            Some(d) if d.depth == depth => {
                for line in unplaced.iter().map(render) {
                    if d.reasons.len() < MAX_REASONS && !d.reasons.contains(&line) {
                        d.reasons.push(line);
                    }
                }
            }
            _ => {
                let failed = unplaced
                    .iter()
                    .map(|u| u.0)
                    .filter(|&i| !reads_done && i < ops.len())
                    .collect();
                let mut reasons: Vec<String> = unplaced.iter().map(render).collect();
                reasons.truncate(MAX_REASONS);
                self.deepest = Some(DeadEnd {
                    depth,
                    fillers: self.fillers.clone(),
                    failed,
                    state: state.clone(),
                    reasons,
                });
            }
        }
    }

    /// Op indices of the linearization through revision `last` using `fillers`, minus `skip`
    /// (reads at `last` that could not be placed).
    fn order(&self, fillers: &[(i64, usize)], last: i64, skip: &[usize]) -> Vec<usize> {
        let plan = self.plan;
        let by_rev: BTreeMap<i64, usize> = fillers
            .iter()
            .map(|&(r, u)| (r, plan.unknown[u].op))
            .collect();
        let mut out = Vec::new();
        for rev in plan.initial..=last.min(plan.max_rev) {
            let slot = plan.slot(rev);
            out.extend(
                slot.write
                    .as_ref()
                    .map(|w| w.op)
                    .or_else(|| by_rev.get(&rev).copied()),
            );
            out.extend(
                slot.reads
                    .iter()
                    .map(|r| r.op)
                    .filter(|op| !skip.contains(op)),
            );
        }
        out
    }

    fn linearization(&self, state: Store) -> Linearization {
        let ops = &self.history.ops;
        let ids = |v: Vec<usize>| {
            v.into_iter()
                .filter(|&i| !ops[i].request.is_serializable_read())
                .map(|i| ops[i].id)
                .collect()
        };
        Linearization {
            order: ids(self.order(&self.fillers, state.revision(), &[])),
            fillers: self.filler_ids(&self.fillers),
            final_revision: state.revision(),
            steps: self.steps,
        }
    }

    fn filler_ids(&self, fillers: &[(i64, usize)]) -> Vec<(i64, usize)> {
        let ops = &self.history.ops;
        fillers
            .iter()
            .map(|&(r, u)| (r, ops[self.plan.unknown[u].op].id))
            .collect()
    }

    fn failure(&self) -> Failure {
        let plan = self.plan;
        let Some(d) = &self.deepest else {
            let why = "the search stopped before reaching any dead end".to_string();
            return Failure::early(why, plan.ok_ops);
        };
        let order = self.order(&d.fillers, d.depth.0, &d.failed);
        let ops = &self.history.ops;
        let placed_ok = order.len() - d.fillers.len();
        Failure {
            revision: Some(d.depth.0),
            recent: order[order.len().saturating_sub(RECENT_OPS)..]
                .iter()
                .map(|&i| ops[i].to_string())
                .collect(),
            linearized: order.iter().map(|&i| ops[i].id).collect(),
            fillers: self.filler_ids(&d.fillers),
            state: d.state.describe(&plan.interner),
            unplaced: d.reasons.clone(),
            remaining: plan.ok_ops.saturating_sub(placed_ok),
        }
    }
}
