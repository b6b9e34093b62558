//! A lock-free view of the node's raft state, written by the raft task after every Ready (term,
//! leader, commit, learner) and by the apply task after every batch (applied), and read by RPC
//! handlers (response headers, `Status`, leader checks).
//!
//! Invariant: each counter has one writer; values may be a moment stale for readers, never
//! torn. Once the node ends, the first of its tasks to end records why (`stopped`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use tokio::sync::Notify;

/// Shared raft status counters.
#[derive(Debug, Default)]
pub struct SharedStatus {
    term: AtomicU64,
    leader: AtomicU64,
    commit: AtomicU64,
    applied: AtomicU64,
    is_learner: AtomicBool,
    /// Why the node task ended, once it has (set once, never cleared).
    stopped: OnceLock<String>,
    stopped_notify: Notify,
}

/// A consistent-enough copy of [`SharedStatus`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftStatus {
    /// Current raft term.
    pub term: u64,
    /// Known leader id (0 when none).
    pub leader: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Whether this member is a learner.
    pub is_learner: bool,
}

impl SharedStatus {
    /// Publishes the raft task's part of the status (all but the applied index).
    pub fn store_raft(&self, term: u64, leader: u64, commit: u64, is_learner: bool) {
        self.term.store(term, Ordering::Release);
        self.leader.store(leader, Ordering::Release);
        self.commit.store(commit, Ordering::Release);
        self.is_learner.store(is_learner, Ordering::Release);
    }

    /// Publishes the apply task's applied index.
    pub fn set_applied(&self, applied: u64) {
        self.applied.store(applied, Ordering::Release);
    }

    /// Records that the node has ended and why (the first reason recorded stays); wakes
    /// [`SharedStatus::wait_stopped`].
    pub fn set_stopped(&self, reason: String) {
        let _ = self.stopped.set(reason);
        self.stopped_notify.notify_waiters();
    }

    /// Why the node task ended, if it has.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.get().map(String::as_str)
    }

    /// Waits until the node task has ended; returns why.
    pub async fn wait_stopped(&self) -> String {
        loop {
            let notified = self.stopped_notify.notified();
            if let Some(reason) = self.stopped() {
                return reason.to_string();
            }
            notified.await;
        }
    }

    /// Reads the latest published status.
    pub fn load(&self) -> RaftStatus {
        RaftStatus {
            term: self.term.load(Ordering::Acquire),
            leader: self.leader.load(Ordering::Acquire),
            commit: self.commit.load(Ordering::Acquire),
            applied: self.applied.load(Ordering::Acquire),
            is_learner: self.is_learner.load(Ordering::Acquire),
        }
    }
}
