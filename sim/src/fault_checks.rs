//! Checks made while a fault is applied, of what the fault itself must lead to:
//!
//! * A clean stop (SIGTERM, as an operator's rolling restart sends) that reports handing
//!   leadership to a member: that member must itself have led in a newer term than the one the
//!   stop began in. A hand-off that only asks raft and stops without waiting (the injected bug
//!   `hand-off-no-wait`) reports a move that never happened, and the others wait out an election
//!   timeout with no leader.
//! * A member whose only damage is a flipped bit in a snapshot file must start again: the WAL's
//!   base segment carries the snapshot too. Recovery that ignores that copy (the injected bug
//!   `ignore-wal-snapshot`) refuses to start.
//!
//! Failures are kept per thread (one simulated run per thread at a time) until the runner takes
//! them.

use crate::cluster::SimCluster;
use crate::trace::Trace;
use std::cell::RefCell;
use std::time::Duration;

thread_local! {
    static FAILURES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// How long a member restarted after a flipped bit gets to start serving or refuse.
const START_LIMIT: Duration = Duration::from_secs(10);

/// Forgets the failures of an earlier run on this thread.
pub fn reset() {
    FAILURES.with(|f| f.borrow_mut().clear());
}

/// The failures seen since [`reset`], each prefixed with the check's name.
pub fn take_failures() -> Vec<String> {
    FAILURES.with(|f| std::mem::take(&mut *f.borrow_mut()))
}

fn fail(check: &str, failure: String) {
    FAILURES.with(|f| f.borrow_mut().push(format!("{check}: {failure}")));
}

/// Stops member `i` cleanly and checks the hand-off it reports.
pub async fn stop_cleanly(cluster: &SimCluster, i: usize, trace: &mut Trace) {
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
        let failure = format!(
            "m{} reported handing leadership to {to:x}, which has not led since term {term_before}",
            i + 1
        );
        fail("hand-off", failure);
    }
}

/// Restarts member `i` after a bit of `file` (relative to its member directory) was flipped;
/// a damaged snapshot file must not keep it from starting.
pub async fn restart_after_flip(cluster: &SimCluster, i: usize, file: Option<&str>) {
    cluster.restart(i);
    let Some(file) = file.filter(|f| f.starts_with("snap/") && f.ends_with(".snap")) else {
        return;
    };
    let deadline = tokio::time::Instant::now() + START_LIMIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(error) = cluster.refused().get(&i) {
            let failure = format!(
                "m{} refused to start after a flipped bit in {file}: {error}",
                i + 1
            );
            fail("snapshot file", failure);
            return;
        }
        if cluster.core(i).is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
