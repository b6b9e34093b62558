//! Clean stops (SIGTERM, as an operator's rolling restart sends) and the check of their
//! leadership hand-off: when the stopped member reports that leadership moved to a member,
//! that member must itself have led in a newer term than the one the stop began in. A hand-off
//! that only asks raft and stops without waiting (the injected bug `hand-off-no-wait`) reports
//! a move that never happened, and the others wait out an election timeout with no leader.
//! Failures are kept per thread (one simulated run per thread at a time) until the runner takes
//! them.

use crate::cluster::SimCluster;
use crate::trace::Trace;
use std::cell::RefCell;

thread_local! {
    static FAILURES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Forgets the failures of an earlier run on this thread.
pub fn reset() {
    FAILURES.with(|f| f.borrow_mut().clear());
}

/// The hand-off failures seen since [`reset`], each prefixed `hand-off: `.
pub fn take_failures() -> Vec<String> {
    let failures = FAILURES.with(|f| std::mem::take(&mut *f.borrow_mut()));
    failures.iter().map(|f| format!("hand-off: {f}")).collect()
}

/// Stops member `i` cleanly and checks the hand-off it reports.
pub async fn stop(cluster: &SimCluster, i: usize, trace: &mut Trace) {
    let term_before = cluster.core(i).map_or(0, |c| c.status().term);
    trace.event(format!("stopping m{} cleanly", i + 1));
    let Some(to) = cluster.stop_cleanly(i).await else {
        return;
    };
    trace.event(format!("m{} handed leadership to {to:x}", i + 1));
    let led = detcd::observe::leaders_by_term()
        .range(term_before + 1..)
        .any(|(_, ids)| ids.contains(&to));
    if !led {
        FAILURES.with(|f| {
            f.borrow_mut().push(format!(
                "m{} reported handing leadership to {to:x}, which has not led since term \
                 {term_before}",
                i + 1
            ))
        });
    }
}
