//! Linearizability checker for detcd histories against etcd's revisioned KV model.
//!
//! Owns the public checking API ([`check_linearizable`], [`check_linearizable_with`],
//! [`check_revisions`]), its error type ([`LinearizabilityError`], [`Failure`]) and the search.
//!
//! What is checked. Put, Delete, Cas and linearizable (`serializable: false`) Get operations must
//! have a single sequential order that (1) respects real time: if `a.complete < b.invoke` then `a`
//! comes before `b`; (2) contains every `Ok` op, whose response must equal what the model of
//! `crate::kv_model` returns at that point (revisions and full key states included); (3) contains
//! any subset of the `Unknown` ops, each anywhere after its invoke, responses unchecked. `Failed`
//! ops are ignored. Serializable gets are checked separately by
//! [`crate::serializable::check_serializable_reads`] (also run by [`check_linearizable`]).
//!
//! How. This is the Wing–Gong–Lowe search (extend a partial linearization one op at a time,
//! backtrack, memoize `(linearized set, model state)`) specialised with revisions: because every
//! state change bumps the revision by one and every `Ok` response reports its revision, each `Ok`
//! op's place is fixed up to the order of reads within one revision, and reads at a revision
//! commute. The only choices left are which `Unknown` write creates each revision that no `Ok`
//! write reported (a *gap*). In order:
//! 1. `crate::revision_order`: well-formedness, duplicate revisions, real-time vs revision order;
//! 2. `crate::revision_plan`: revision slots, what responses imply about gap writes (pins,
//!    forbidden keys, key lifetimes), and contradictions visible without search;
//! 3. `crate::serializable`: serializable gets;
//! 4. `crate::key_projection`: each key on its own (a relaxation that finds most violations
//!    without enumerating other keys' unknown writes), with up to half the step budget;
//! 5. the global search below: walk revisions upward, check each revision's reads against the
//!    model, apply the `Ok` write of the next revision, and at a gap branch over the admissible
//!    unknown writes (depth-first, explicit stack, most recently invoked first). At a gap the
//!    linearized set is "all `Ok` ops up to this revision + the unknown writes used so far", so
//!    memoizing `(model state, used unknown writes)` is WGL's cache; it is canonicalized (keys no
//!    later op can observe are erased; identical unknown writes are counted, not named), and only
//!    one of several interchangeable candidates is tried.
//!
//! Histories without gaps are checked in one linear pass.
//!
//! Determinism: no hashing order is observable (the memo `HashSet` is only probed), candidates are
//! tried in a fixed order, and the budget counts steps, not time. The same history always yields
//! the same result and the same error text.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use crate::history::{History, KeyState};
use crate::key_projection::check_keys;
use crate::kv_model::{explain_guard_failure, Guard, ModelState};
use crate::revision_order::{check_revision_order, ok_linearizable, validate};
use crate::revision_plan::{is_used, Plan, UnknownWrite};

/// Default search budget: revisions walked plus unknown writes tried, per-key and global. Typical
/// valid 2,000-op histories need a few thousand; a step costs well under a microsecond (release).
pub const DEFAULT_MAX_STEPS: u64 = 1_000_000;

/// How many distinct "could not place" reasons a [`Failure`] keeps.
const MAX_REASONS: usize = 8;
/// How many of the last placed ops a [`Failure`] renders.
const RECENT_OPS: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Store revision when the run started (1 for an empty etcd); all keys are absent then.
    pub initial_revision: i64,
    /// Give up with [`LinearizabilityError::Inconclusive`] after this many search steps.
    pub max_steps: u64,
}

impl CheckOptions {
    pub fn new(initial_revision: i64) -> Self {
        Self {
            initial_revision,
            max_steps: DEFAULT_MAX_STEPS,
        }
    }
}

/// A witness that a history is linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linearization {
    /// Ids of the linearized ops in order: every `Ok` linearizable op plus the unknown writes used.
    pub order: Vec<usize>,
    /// `(revision, op id)` of each `Unknown` write that took effect in this linearization.
    pub fillers: Vec<(i64, usize)>,
    /// Model revision after the last op.
    pub final_revision: i64,
    /// Search steps used.
    pub steps: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinearizabilityError {
    /// The history violates an invariant of `crate::history` (a workload bug, not a detcd bug).
    #[error("malformed history: op #{op}: {reason}")]
    Malformed { op: usize, reason: String },
    /// Two `Ok` writes report the same revision.
    #[error("ops #{first} and #{second} both report creating revision {revision}: {detail}")]
    DuplicateRevision {
        revision: i64,
        first: usize,
        second: usize,
        detail: String,
    },
    /// Revision order contradicts real-time order between two `Ok` ops.
    #[error("real-time order violated between #{earlier} and #{later}: {detail}")]
    RealTimeViolation {
        earlier: usize,
        later: usize,
        detail: String,
    },
    /// No linearization exists.
    #[error("not linearizable: {0}")]
    NotLinearizable(Box<Failure>),
    /// A serializable get returned something no execution could have produced.
    #[error("serializable get #{op} cannot be explained: {reason}")]
    SerializableRead { op: usize, reason: String },
    /// The search budget ran out before an answer was found.
    #[error("inconclusive: the search used its budget of {budget} steps; deepest point reached: {deepest}")]
    Inconclusive { budget: u64, deepest: Box<Failure> },
}

impl LinearizabilityError {
    /// Whether the error proves the system misbehaved (as opposed to a malformed history or an
    /// exhausted budget).
    pub fn is_violation(&self) -> bool {
        !matches!(self, Self::Malformed { .. } | Self::Inconclusive { .. })
    }
}

/// The furthest point the search reached, for debugging a failing seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Model revision of the deepest partial linearization; `None` if the contradiction was
    /// found before searching (then only `unplaced` and `remaining` are filled in).
    pub revision: Option<i64>,
    /// Op ids of that partial linearization, in order.
    pub linearized: Vec<usize>,
    /// Renderings of its last few ops.
    pub recent: Vec<String>,
    /// `(revision, op id)` of the `Unknown` writes it used.
    pub fillers: Vec<(i64, usize)>,
    /// Model state after it.
    pub state: Vec<(String, KeyState)>,
    /// Why it could not be extended: one line per op (or revision) that could not be placed.
    pub unplaced: Vec<String>,
    /// `Ok` linearizable ops not in `linearized`.
    pub remaining: usize,
}

impl Failure {
    pub(crate) fn early(reason: String, remaining: usize) -> Self {
        Self {
            revision: None,
            linearized: Vec::new(),
            recent: Vec::new(),
            fillers: Vec::new(),
            state: Vec::new(),
            unplaced: vec![reason],
            remaining,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(revision) = self.revision else {
            f.write_str("contradiction found before searching:")?;
            for r in &self.unplaced {
                write!(f, "\n    - {r}")?;
            }
            return Ok(());
        };
        write!(
            f,
            "no linearization gets past revision {revision} ({} ops placed, {} Ok ops left)",
            self.linearized.len(),
            self.remaining
        )?;
        f.write_str("\n  could not place:")?;
        for r in &self.unplaced {
            write!(f, "\n    - {r}")?;
        }
        write!(f, "\n  model state at revision {revision}:")?;
        if self.state.is_empty() {
            f.write_str(" (no keys)")?;
        }
        for (k, kv) in &self.state {
            write!(f, "\n    {k:?} = {kv}")?;
        }
        if !self.recent.is_empty() {
            f.write_str("\n  last placed ops:")?;
            for op in &self.recent {
                write!(f, "\n    {op}")?;
            }
        }
        if !self.fillers.is_empty() {
            f.write_str("\n  Unknown writes placed at revisions no Ok write created:")?;
            for (rev, op) in &self.fillers {
                write!(f, " {rev}<-#{op}")?;
            }
        }
        Ok(())
    }
}

/// Checks the linearizable ops of `history` (see the module docs) and its serializable gets.
/// The store is assumed empty at `initial_revision` when the history starts.
pub fn check_linearizable(
    history: &History,
    initial_revision: i64,
) -> Result<(), LinearizabilityError> {
    check_linearizable_with(history, &CheckOptions::new(initial_revision)).map(|_| ())
}

/// [`check_linearizable`] with options, returning the linearization found.
pub fn check_linearizable_with(
    history: &History,
    options: &CheckOptions,
) -> Result<Linearization, LinearizabilityError> {
    let plan = Plan::build(history, options.initial_revision)?;
    crate::serializable::check_serializable_reads(history, options.initial_revision)?;
    let (failure, spent) = check_keys(&plan, history, options.max_steps / 2);
    if let Some(failure) = failure {
        return Err(LinearizabilityError::NotLinearizable(Box::new(failure)));
    }
    let mut search = Search::new(&plan, history, options.max_steps);
    search.steps = spent;
    search.run()
}

/// Cheap sanity checks that need no search and no initial revision: the history is well formed,
/// no two `Ok` writes report the same revision, and whenever an `Ok` linearizable op completed
/// before another was invoked, its revision orders it first (a write of `R` precedes reads at `R`,
/// which precede the write of `R + 1`). [`check_linearizable`] runs these too.
pub fn check_revisions(history: &History) -> Result<(), LinearizabilityError> {
    validate(history)?;
    check_revision_order(history, &ok_linearizable(history))
}

/// One gap being branched on.
struct Frame {
    state: ModelState,
    used: Vec<u64>,
    candidates: Vec<usize>,
    next: usize,
    fillers_len: usize,
}

enum Advance {
    Done(ModelState),
    Dead,
    Gap(ModelState),
}

/// A branch that could not be extended.
struct DeadEnd {
    /// (revision, whether all reads at it were placed)
    depth: (i64, bool),
    fillers: Vec<(i64, usize)>,
    /// Op indices at `depth.0` that could not be placed.
    failed: Vec<usize>,
    state: ModelState,
    reasons: Vec<String>,
}

struct Search<'a> {
    plan: &'a Plan,
    history: &'a History,
    budget: u64,
    steps: u64,
    /// Gap configurations known not to lead to a linearization: (model state with unobservable
    /// keys erased, number of unknown writes used per class).
    memo: HashSet<(ModelState, Vec<u32>)>,
    /// `(revision, unknown index)` placed on the current branch.
    fillers: Vec<(i64, usize)>,
    deepest: Option<DeadEnd>,
}

impl<'a> Search<'a> {
    fn new(plan: &'a Plan, history: &'a History, budget: u64) -> Self {
        Self {
            plan,
            history,
            budget,
            steps: 0,
            memo: HashSet::new(),
            fillers: Vec::new(),
            deepest: None,
        }
    }

    fn run(mut self) -> Result<Linearization, LinearizabilityError> {
        let plan = self.plan;
        let start = ModelState::new(plan.initial, plan.interner.key_count());
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
            state.apply(plan.unknown[u].effect);
            let mut used = frame.used.clone();
            used[u / 64] |= 1 << (u % 64);
            self.fillers.push((state.revision(), u));
            self.tick()?;
            next = Some((state, used));
        }
    }

    /// The memo key of a gap configuration. Configurations that differ only in keys nothing can
    /// observe any more, or in which members of a class of identical unknown writes were used
    /// (all used ones were eligible, so all are eligible now), have the same futures.
    fn memo_key(&self, state: &ModelState, used: &[u64]) -> (ModelState, Vec<u32>) {
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
        (canonical, counts)
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
    fn advance(&mut self, mut state: ModelState) -> Result<Advance, LinearizabilityError> {
        let plan = self.plan;
        loop {
            self.tick()?;
            let rev = state.revision();
            let failed: Vec<(usize, String)> = plan
                .slot(rev)
                .reads
                .iter()
                .filter_map(|r| {
                    let why = r.check.check(&state, &plan.interner).err()?;
                    Some((r.op, why))
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
            if !state.holds(w.guard, w.effect.key()) {
                let why = explain_guard_failure(
                    w.guard,
                    w.effect.key(),
                    state.get(w.effect.key()),
                    rev,
                    &plan.interner,
                );
                self.dead_end(&state, true, vec![(w.op, why)]);
                return Ok(Advance::Dead);
            }
            state.apply(w.effect);
        }
    }

    /// Unknown writes that may create revision `state.revision() + 1`, in the order to try them.
    fn candidates(&self, state: &ModelState, used: &[u64]) -> Vec<usize> {
        let plan = self.plan;
        let s = state.revision() + 1;
        let gap = &plan.gaps[&s];
        if gap.conflict.is_some() {
            return Vec::new();
        }
        let mut out: Vec<usize> = Vec::new();
        for (i, u) in plan.unknown.iter().enumerate() {
            let key = u.effect.key();
            if is_used(used, i)
                || u.min_slot > s
                || u.reserved_for.is_some_and(|r| r != s)
                || !gap.admits(u.effect)
                || !state.holds(u.guard, key)
                || (gap.creates && state.get(key).is_some())
            {
                continue;
            }
            // Identical unused writes are interchangeable from here on, and so are puts to keys
            // nothing can observe any more: try one of each.
            let neutral =
                |w: &UnknownWrite| w.guard == Guard::Always && plan.dead(w.effect.key(), s - 1);
            let dup = out.iter().any(|&j| {
                let w = &plan.unknown[j];
                (w.effect == u.effect && w.guard == u.guard) || (neutral(w) && neutral(u))
            });
            if !dup {
                out.push(i);
            }
        }
        out.sort_by_key(|&i| (std::cmp::Reverse(plan.unknown[i].min_slot), i));
        out
    }

    /// Records that no unknown write can create the gap after `state`.
    fn dead_gap(&mut self, state: &ModelState, used: &[u64]) {
        let depth = (state.revision(), true);
        if self.deepest.as_ref().is_some_and(|d| {
            d.depth > depth || (d.depth == depth && d.reasons.len() >= MAX_REASONS)
        }) {
            return;
        }
        let plan = self.plan;
        let s = state.revision() + 1;
        let gap = &plan.gaps[&s];
        let mut why = format!(
            "revision {s}: no Ok write reported creating it, and no Unknown write can create it here{}",
            gap.describe(&plan.interner, self.history)
        );
        if gap.conflict.is_none() {
            why += &plan.tally(s, used);
        }
        self.dead_end(state, true, vec![(usize::MAX, why)]);
    }

    /// Records a dead end after `state`; `unplaced` = (op index or `usize::MAX`, reason).
    fn dead_end(&mut self, state: &ModelState, reads_done: bool, unplaced: Vec<(usize, String)>) {
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

    fn linearization(&self, state: ModelState) -> Linearization {
        let ids = |v: Vec<usize>| v.into_iter().map(|i| self.history.ops[i].id).collect();
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
