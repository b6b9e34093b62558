//! Linearizability checker for detcd histories against etcd's revisioned KV model.
//!
//! Owns the public checking API ([`check_linearizable`], [`check_linearizable_with`],
//! [`check_revisions`]), its error type ([`LinearizabilityError`], [`Failure`]) and the search.
//!
//! What is checked. Every KV op (single-key or range reads, range deletes, multi-key txns, reads
//! at past revisions) must have a single sequential order that (1) respects real time for
//! linearizable ops: if `a.complete < b.invoke` then `a` comes before `b`; (2) contains every `Ok`
//! op, whose response must equal what the model of `crate::kv_model` returns at that point
//! (header revisions, full key states, counts, `more`, txn branches and results); (3) contains
//! any subset of the `Unknown` writes, each anywhere after its invoke, responses unchecked.
//! `Failed` ops are ignored. Serializable reads must show the state at their header revision
//! but need not respect real time. Compactions and `Compacted` errors are checked by
//! `crate::compaction` (also run by [`check_linearizable_with`]).
//!
//! How. This is the Wing–Gong–Lowe search (extend a partial linearization one op at a time,
//! backtrack, memoize `(linearized set, model state)`) specialised with revisions: because every
//! state change bumps the revision by one and every `Ok` response reports its revision, each `Ok`
//! op's place is fixed up to the order of reads within one revision, and reads at a revision
//! commute. The model state is the whole keyspace; a read at a past revision `r` is checked when
//! the search passes `r`, so no state needs its history. The only choices left are which `Unknown`
//! write creates each revision that no `Ok` write reported (a *gap*). In order:
//! 1. `crate::revision_order`: well-formedness, duplicate revisions, real-time vs revision order;
//! 2. `crate::revision_plan`: revision slots, what responses imply about gap writes (pins,
//!    forbidden keys), and contradictions visible without search;
//! 3. the search below: walk revisions upward, check each revision's reads against the model,
//!    apply the `Ok` write of the next revision, and at a gap branch over the admissible unknown
//!    writes (depth-first, explicit stack, most recently invoked first). At a gap the linearized
//!    set is "all `Ok` ops up to this revision + the unknown writes used so far", so memoizing
//!    `(model state, used unknown writes)` is WGL's cache; it is canonicalized (keys no later op
//!    can observe are erased; identical unknown writes are counted, not named) and stored as a
//!    128-bit fingerprint, and only one of several interchangeable candidates is tried.
//!
//! Histories without gaps are checked in one linear pass. Search cost is dominated by gaps whose
//! write no response pins; independent keys need no separate treatment because an unpinned gap
//! write that no later op can tell apart from another leads to the same memoized state.
//!
//! Determinism: no hashing order is observable (the memo `HashSet` is only probed, fingerprints
//! use fixed-key SipHash), candidates are tried in a fixed order, and the budget counts steps, not
//! time. The same history always yields the same result and the same error text.

use std::fmt;

use crate::history::{History, KeyState};
use crate::revision_order::{check_revision_order, ok_linearizable, validate};
use crate::revision_plan::Plan;
use crate::search::Search;

/// Default search budget: revisions walked plus unknown writes tried, per-key and global. Typical
/// valid 2,000-op histories need a few thousand; a step costs well under a microsecond (release).
pub const DEFAULT_MAX_STEPS: u64 = 1_000_000;

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
    /// Compactions and `Compacted` errors no order of compactions explains.
    #[error("compaction violated by #{op}: {reason}")]
    Compaction { op: usize, reason: String },
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

/// Checks `history` (see the module docs).
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
    check_revisions(history)?;
    crate::compaction::check_compactions(history)?;
    let plan = Plan::build(history, options.initial_revision)?;
    Search::new(&plan, history, options.max_steps).run()
}

/// Cheap sanity checks that need no search and no initial revision: the history is well formed,
/// no two `Ok` writes report the same revision, and whenever an `Ok` linearizable op completed
/// before another was invoked, its revision orders it first (a write of `R` precedes reads at `R`,
/// which precede the write of `R + 1`). [`check_linearizable`] runs these too.
pub fn check_revisions(history: &History) -> Result<(), LinearizabilityError> {
    validate(history)?;
    check_revision_order(history, &ok_linearizable(history))
}
