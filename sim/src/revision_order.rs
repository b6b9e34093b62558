//! Static checks of `Ok` revisions against real-time order, needing neither search nor model.
//!
//! Owns history validation ([`validate`]), the list of `Ok` linearizable ops with their revisions
//! ([`ok_linearizable`]), the duplicate-revision and real-time checks behind
//! `crate::linearizability::check_revisions` ([`check_revision_order`]), and [`CompletionIndex`],
//! which bounds where an `Unknown` write may take effect.
//!
//! Order keys: the write that created revision `R` has key `(R, 0)`, a read-like `Ok` op with
//! header revision `R` has key `(R, 1)`. In every valid linearization ops appear in key order
//! (reads of one revision in any real-time-consistent order), so if `a.complete < b.invoke` then
//! `key(a) <= key(b)` must hold, with equality only between two reads. Two `Ok` writes never share
//! a revision.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{History, Outcome, Time};
use crate::linearizability::LinearizabilityError;

/// Checks every op is well formed and ids are unique.
pub(crate) fn validate(history: &History) -> Result<(), LinearizabilityError> {
    let mut ids = BTreeSet::new();
    for op in &history.ops {
        op.check_well_formed()
            .map_err(|reason| LinearizabilityError::Malformed { op: op.id, reason })?;
        if !ids.insert(op.id) {
            return Err(LinearizabilityError::Malformed {
                op: op.id,
                reason: "duplicate operation id".to_string(),
            });
        }
    }
    Ok(())
}

/// `(op index, header revision, is_write)` of every `Ok` linearizable op that has a header (not
/// `Compacted`), in history order.
pub(crate) fn ok_linearizable(history: &History) -> Vec<(usize, i64, bool)> {
    let mut out = Vec::new();
    for (i, op) in history.ops.iter().enumerate() {
        if let Outcome::Ok(resp) = &op.outcome {
            if let (Some(rev), false) = (resp.revision(), op.request.is_serializable_read()) {
                out.push((i, rev, resp.is_state_change()));
            }
        }
    }
    out
}

/// No two `Ok` writes share a revision, and revision order (write of `R` < reads at `R` < write
/// of `R + 1`) never contradicts real-time order among `Ok` linearizable ops.
pub(crate) fn check_revision_order(
    history: &History,
    ok: &[(usize, i64, bool)],
) -> Result<(), LinearizabilityError> {
    let ops = &history.ops;
    let mut writers: BTreeMap<i64, usize> = BTreeMap::new();
    for &(i, rev, is_write) in ok {
        if !is_write {
            continue;
        }
        if let Some(&first) = writers.get(&rev) {
            return Err(LinearizabilityError::DuplicateRevision {
                revision: rev,
                first: ops[first].id,
                second: ops[i].id,
                detail: format!("{} and {}", ops[first], ops[i]),
            });
        }
        writers.insert(rev, i);
    }
    let key = |&(_, rev, is_write): &(usize, i64, bool)| (rev, u8::from(!is_write));
    let complete =
        |e: &(usize, i64, bool)| ops[e.0].complete.expect("Ok ops have completion times");
    let mut by_complete: Vec<&(usize, i64, bool)> = ok.iter().collect();
    by_complete.sort_by_key(|e| (complete(e), e.0));
    let mut by_invoke: Vec<&(usize, i64, bool)> = ok.iter().collect();
    by_invoke.sort_by_key(|e| (ops[e.0].invoke, e.0));
    let mut done = 0;
    let mut max: Option<&(usize, i64, bool)> = None;
    for b in by_invoke {
        while done < by_complete.len() && complete(by_complete[done]) < ops[b.0].invoke {
            let a = by_complete[done];
            if max.is_none_or(|m| key(a) > key(m)) {
                max = Some(a);
            }
            done += 1;
        }
        if let Some(a) = max.filter(|a| key(a) > key(b)) {
            let what = |e: &(usize, i64, bool)| {
                if e.2 {
                    "created revision"
                } else {
                    "read at revision"
                }
            };
            return Err(LinearizabilityError::RealTimeViolation {
                earlier: ops[a.0].id,
                later: ops[b.0].id,
                detail: format!(
                    "{} {} {}, yet it completed before {} was invoked, which {} {}",
                    ops[a.0],
                    what(a),
                    a.1,
                    ops[b.0],
                    what(b),
                    b.1
                ),
            });
        }
    }
    Ok(())
}

/// Answers "what is the highest revision of an `Ok` linearizable op completed before `t`?".
pub(crate) struct CompletionIndex {
    completes: Vec<Time>,
    prefix_max: Vec<i64>,
}

impl CompletionIndex {
    pub fn new(history: &History, ok: &[(usize, i64, bool)]) -> Self {
        let mut pairs: Vec<(Time, i64)> = ok
            .iter()
            .map(|&(i, rev, _)| (history.ops[i].complete.expect("Ok ops complete"), rev))
            .collect();
        pairs.sort_unstable();
        let mut prefix_max = Vec::with_capacity(pairs.len());
        let mut max = i64::MIN;
        for &(_, rev) in &pairs {
            max = max.max(rev);
            prefix_max.push(max);
        }
        Self {
            completes: pairs.into_iter().map(|p| p.0).collect(),
            prefix_max,
        }
    }

    /// Lowest revision a write invoked at `invoke` may create, given `initial`.
    pub fn min_slot(&self, invoke: Time, initial: i64) -> i64 {
        let n = self.completes.partition_point(|&c| c < invoke);
        let before = if n == 0 {
            initial
        } else {
            self.prefix_max[n - 1].max(initial)
        };
        before + 1
    }
}
