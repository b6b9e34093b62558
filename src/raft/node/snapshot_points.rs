//! Snapshot points of the node: installing a snapshot received from the leader, and recording
//! one locally every `--snapshot-count` entries (metadata only; the state is in the machine's
//! backend). Both keep the order the node's module docs require: the machine's state is durable
//! before the snapshot's metadata reaches the WAL.

use super::RaftNode;
use crate::raft::{RaftError, StateMachine};
use raft::eraftpb::Snapshot;
use raft::Storage;

impl<S: StateMachine> RaftNode<S> {
    /// Installs a snapshot from the leader: the machine takes its image (received into the
    /// inbox before raft saw the message) durably first, then the snapshot's metadata goes to
    /// disk and the raft log restarts after it. A crash between the two leaves a machine ahead
    /// of the log, which the restart handles (entries it already reflects are skipped).
    pub(super) fn install_snapshot(&mut self, mut snapshot: Snapshot) -> Result<(), RaftError> {
        let meta = snapshot.get_metadata().clone();
        let mut image = self.inbox.open(meta.term, meta.index)?;
        self.machine.restore(meta.index, &mut image)?;
        drop(image);
        self.inbox.clear_through(meta.index)?;
        snapshot.data.clear();
        self.durable
            .save_snapshot(&snapshot, &self.raw.raft.hard_state(), &[])?;
        self.is_learner = meta.get_conf_state().learners.contains(&self.config.id);
        self.storage.install_snapshot(snapshot)?;
        self.last_snapshot_index = meta.index;
        self.raw.raft.raft_log.applied = self.raw.raft.raft_log.applied.max(meta.index);
        tracing::info!(
            index = meta.index,
            term = meta.term,
            "installed snapshot from leader"
        );
        Ok(())
    }

    /// Every `snapshot_count` applied entries: makes the machine's state durable, records a
    /// snapshot point (metadata only: the state itself is in the machine's backend) and
    /// compacts the raft log behind it.
    pub(super) fn maybe_snapshot(&mut self) -> Result<(), RaftError> {
        let applied = self.raw.raft.raft_log.applied;
        if applied < self.last_snapshot_index + self.config.snapshot_count {
            return Ok(());
        }
        self.machine.flush(true)?;
        let mut snapshot = Snapshot::default();
        let meta = snapshot.mut_metadata();
        meta.index = applied;
        meta.term = self.storage.term(applied)?;
        meta.set_conf_state(self.raw.raft.prs().conf().to_conf_state());
        let tail = self.storage.entries_from(applied + 1)?;
        self.durable
            .save_snapshot(&snapshot, &self.raw.raft.hard_state(), &tail)?;
        let compact_to = applied.saturating_sub(self.config.catch_up_entries).max(1);
        self.storage.record_snapshot(snapshot, compact_to)?;
        self.last_snapshot_index = applied;
        self.durable.mark_committed(self.durable_commit)?;
        tracing::info!(
            index = applied,
            "saved snapshot point and compacted raft log"
        );
        Ok(())
    }
}
