//! Checks of compactions and of reads at past revisions racing with them.
//!
//! Owns [`check_compactions`]. The compaction point `c` only grows, and only through a
//! successful Compact (`c` := its revision `x`, which needs `c < x <= current revision`), so along
//! any linearization it is a non-decreasing step function. A read at revision `r` must fail with
//! `Compacted` exactly when `r < c` at its linearization point; a Compact of `x <= c` fails with
//! `Compacted`. What a read at `r >= c` returns is checked by the linearizability search (it is
//! the state at `r`); this module checks the compaction side, with conditions that hold in every
//! valid execution (necessary, not sufficient):
//!
//! 1. an `Ok` Compact of `x` with header revision `H` has `x <= H`;
//! 2. two `Ok` Compacts `a`, `b` with `a` before `b` (by real time or by header revision) have
//!    `x_a < x_b`;
//! 3. a linearizable read at `r > 0` that returned data comes before every `Ok` Compact of
//!    `x > r`: none of them completed before it was invoked or has a lower header revision;
//! 4. a read at `r` (linearizable or not) that failed with `Compacted` was preceded by a Compact
//!    of some `x > r` (`Ok` or `Unknown`) invoked before the read completed;
//! 5. a Compact of `x` that failed with `Compacted` likewise needs a Compact of some `x' >= x`.
//!
//! Serializable reads that returned data are exempt from 3 (a lagging member may not have
//! applied the compaction yet).

use crate::history::{History, Operation, Outcome, Request, Response};
use crate::linearizability::LinearizabilityError;

/// A compaction that may have happened: op, revision, invoke, `Some((complete, header))` if `Ok`.
type Compaction = (usize, i64, u64, Option<(u64, i64)>);

/// Checks `history` against the conditions in the module docs.
pub fn check_compactions(history: &History) -> Result<(), LinearizabilityError> {
    let ops = &history.ops;
    let mut compactions: Vec<Compaction> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let Request::Compact { revision: x } = op.request else {
            continue;
        };
        match &op.outcome {
            Outcome::Ok(Response::Compact { revision: h }) => {
                if x > *h {
                    return Err(violation(
                        op,
                        format!("it compacted revision {x}, above the current revision {h}"),
                    ));
                }
                let complete = op.complete.expect("Ok ops complete");
                compactions.push((i, x, op.invoke, Some((complete, *h))));
            }
            Outcome::Unknown => compactions.push((i, x, op.invoke, None)),
            _ => {}
        }
    }
    let done = |c: &Compaction| c.3;
    for a in &compactions {
        for b in &compactions {
            if let (Some((ca, ha)), Some(_)) = (done(a), done(b)) {
                let before = ca < ops[b.0].invoke || ha < done(b).expect("Ok").1;
                if before && a.1 >= b.1 {
                    let why = format!(
                        "it compacted {} after {} had compacted {}",
                        b.1, ops[a.0], a.1
                    );
                    return Err(violation(&ops[b.0], why));
                }
            }
        }
    }
    for op in ops {
        let (r, serializable) = match &op.request {
            Request::Range(spec) if spec.revision > 0 => (spec.revision, spec.serializable),
            Request::Compact { revision } => (*revision, false),
            _ => continue,
        };
        let is_compact = matches!(op.request, Request::Compact { .. });
        match &op.outcome {
            Outcome::Ok(Response::Compacted) => {
                let complete = op.complete.expect("Ok ops complete");
                let explained = compactions
                    .iter()
                    .any(|c| (c.1 > r || (is_compact && c.1 == r)) && ops[c.0].invoke < complete);
                if !explained {
                    return Err(violation(op, format!("it was told revision {r} is compacted, but no compaction of a revision that high was invoked before it completed")));
                }
            }
            Outcome::Ok(Response::Range { revision: h, .. }) if !serializable => {
                let later = compactions.iter().filter(|c| c.1 > r).find_map(|c| {
                    let (complete, ch) = done(c)?;
                    (complete < op.invoke || ch < *h).then_some(c.0)
                });
                if let Some(c) = later {
                    let why = format!("it read revision {r}, after {} had compacted it", ops[c]);
                    return Err(violation(op, why));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn violation(op: &Operation, reason: String) -> LinearizabilityError {
    LinearizabilityError::Compaction {
        op: op.id,
        reason: format!("{op}: {reason}"),
    }
}
