//! Facts the simulator's checkers read from inside the servers they run. Compiled only into
//! `--cfg madsim` builds. Per thread, like [`crate::fault`]: one simulated cluster per thread.
//!
//! Recorded: every (term, member) pair in which a member acted as raft leader, so a checker
//! can require at most one leader per term across the whole run (kills and restarts included:
//! the record outlives every simulated node).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

thread_local! {
    static LEADERS: RefCell<BTreeMap<u64, BTreeSet<u64>>> = const { RefCell::new(BTreeMap::new()) };
}

/// Member `id` acts as leader in `term`.
pub fn leader(term: u64, id: u64) {
    LEADERS.with(|l| {
        l.borrow_mut().entry(term).or_default().insert(id);
    });
}

/// Every term that had a leader, with the members that led in it.
pub fn leaders_by_term() -> BTreeMap<u64, BTreeSet<u64>> {
    LEADERS.with(|l| l.borrow().clone())
}
