//! The raft-rs `Storage` the node hands to `RawNode`: raft-rs' in-memory log (`MemStorage`) plus
//! the latest state-machine snapshot, so that a leader can ship real data to a lagging follower.
//!
//! Invariants: the log held here is a copy of what the WAL holds durably (the node writes the WAL
//! first, then this); `snapshot()` always returns the newest snapshot whose data is the state
//! machine at its metadata index, and that index is ≥ `first_index() - 1` after compaction.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage};
use std::sync::{Arc, RwLock};

/// Log + hard state + latest snapshot, shared between the node task and raft-rs.
#[derive(Clone, Default)]
pub struct RaftStorage {
    log: MemStorage,
    latest_snapshot: Arc<RwLock<Snapshot>>,
}

impl RaftStorage {
    /// Empty storage whose initial membership is `voters` (a brand-new cluster, every member
    /// starts from the same conf state at index 0).
    pub fn new_cluster(voters: Vec<u64>) -> Self {
        let storage = Self::default();
        storage
            .log
            .initialize_with_conf_state(ConfState::from((voters, vec![])));
        storage
    }

    /// Installs a snapshot (restart recovery or one received from the leader): the log is reset
    /// to start right after it.
    pub fn install_snapshot(&self, snapshot: Snapshot) -> raft::Result<()> {
        self.log.wl().apply_snapshot(snapshot.clone())?;
        *self.write_snapshot() = snapshot;
        Ok(())
    }

    /// Records a snapshot taken locally at `snapshot.metadata.index`, then drops log entries up
    /// to `compact_to` (exclusive), which must not exceed the snapshot index + 1.
    pub fn record_snapshot(&self, snapshot: Snapshot, compact_to: u64) -> raft::Result<()> {
        *self.write_snapshot() = snapshot;
        let first = self.log.first_index()?;
        if compact_to > first {
            self.log.wl().compact(compact_to)?;
        }
        Ok(())
    }

    /// Appends entries (truncating any conflicting suffix).
    pub fn append(&self, entries: &[Entry]) -> raft::Result<()> {
        self.log.wl().append(entries)
    }

    /// Replaces the hard state.
    pub fn set_hard_state(&self, hs: HardState) {
        self.log.wl().set_hardstate(hs);
    }

    /// Updates the commit index kept with the hard state.
    pub fn set_commit(&self, commit: u64) {
        self.log.wl().mut_hard_state().commit = commit;
    }

    /// The commit index kept with the hard state.
    pub fn commit(&self) -> u64 {
        self.log.rl().hard_state().commit
    }

    /// Replaces the conf state (after a membership change is applied).
    pub fn set_conf_state(&self, cs: ConfState) {
        self.log.wl().set_conf_state(cs);
    }

    /// The newest snapshot recorded or installed.
    pub fn latest_snapshot(&self) -> Snapshot {
        self.latest_snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Entries in `[low, high)` for rewriting the WAL after a snapshot.
    pub fn entries_from(&self, low: u64) -> raft::Result<Vec<Entry>> {
        let high = self.log.last_index()? + 1;
        if low >= high {
            return Ok(Vec::new());
        }
        self.log
            .entries(low, high, None, GetEntriesContext::empty(false))
    }

    fn write_snapshot(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        self.latest_snapshot
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.log.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.log.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.log.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.log.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.log.last_index()
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let snap = self.latest_snapshot();
        if snap.get_metadata().index < request_index || snap.get_metadata().index == 0 {
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(snap)
    }
}
