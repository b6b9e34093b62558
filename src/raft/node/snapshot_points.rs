//! Snapshot points of the node: installing a snapshot received from the leader, and recording
//! one locally every `--snapshot-count` entries (metadata only; the state is in the machine's
//! backend). Both keep the order the node's module docs require: the machine's state is durable
//! before the snapshot's metadata reaches the WAL.

use super::RaftNode;
use crate::raft::applier::ApplyWork;
use crate::raft::{RaftError, RestoreError};
use raft::eraftpb::Snapshot;
use raft::Storage;
use tokio::sync::oneshot;

/// Bytes of entries the in-memory raft log may gather past a snapshot point before the next
/// point is taken, also before `--snapshot-count` entries (`NodeConfig::snapshot_bytes`):
/// with 1 KiB values the count alone let it hold 100+ MB (a quarter of the member's memory at
/// 1 M keys). A point costs the WAL's new base segment, and followers may still catch up
/// from the log for `--experimental-snapshot-catchup-entries` behind it.
pub const DEFAULT_SNAPSHOT_BYTES: u64 = 48 << 20;

impl<O: Send + 'static> RaftNode<O> {
    /// Installs a snapshot from the leader: the applier restores the machine from its image
    /// (received into the inbox before raft saw the message), durably, after the entries
    /// handed to it before; then the snapshot's metadata goes to disk and the raft log restarts
    /// after it. A crash between the two leaves a machine ahead of the log, which the restart
    /// handles (entries it already reflects are skipped).
    pub(super) async fn install_snapshot(
        &mut self,
        mut snapshot: Snapshot,
    ) -> Result<(), RaftError> {
        let meta = snapshot.get_metadata().clone();
        let image = Box::new(self.inbox.open(meta.term, meta.index)?);
        let (done, restored) = oneshot::channel();
        self.send_to_applier(ApplyWork::Restore {
            index: meta.index,
            image,
            done,
        })?;
        let restored: Result<(), RestoreError> = restored.await.map_err(|_| RaftError::Stopped)?;
        restored?;
        self.inbox.clear_through(meta.index)?;
        snapshot.data.clear();
        self.durable
            .save_snapshot(&snapshot, &self.raw.raft.hard_state(), &[])?;
        self.is_learner = meta.get_conf_state().learners.contains(&self.config.id);
        self.storage.install_snapshot(snapshot)?;
        self.last_snapshot_index = meta.index;
        self.log_bytes_since_point = 0;
        self.handed_out = self.handed_out.max(meta.index);
        self.raw.raft.raft_log.applied = self.raw.raft.raft_log.applied.max(meta.index);
        tracing::info!(
            index = meta.index,
            term = meta.term,
            "installed snapshot from leader"
        );
        Ok(())
    }

    /// Every `snapshot_count` entries, or `snapshot_bytes` bytes of them: once the
    /// applier has flushed that far durably, records a snapshot point there (metadata only:
    /// the state itself is in the machine's backend) and compacts the raft log behind it, a
    /// step at each call.
    pub(super) fn maybe_snapshot(&mut self) -> Result<(), RaftError> {
        self.storage.compact_step()?;
        let point = self.apply.durable.min(self.handed_out);
        let by_count = point >= self.last_snapshot_index + self.config.snapshot_count;
        let by_bytes = self.log_bytes_since_point >= self.config.snapshot_bytes
            && point > self.last_snapshot_index;
        if !by_count && !by_bytes {
            return Ok(());
        }
        let mut snapshot = Snapshot::default();
        let meta = snapshot.mut_metadata();
        meta.index = point;
        meta.term = self.storage.term(point)?;
        meta.set_conf_state(self.storage.conf_state_at(point)?);
        let tail = self.storage.entries_from(point + 1)?;
        self.durable
            .save_snapshot(&snapshot, &self.raw.raft.hard_state(), &tail)?;
        let compact_to = point.saturating_sub(self.config.catch_up_entries).max(1);
        self.storage.record_snapshot(snapshot, compact_to)?;
        self.last_snapshot_index = point;
        self.log_bytes_since_point = 0;
        self.durable.mark_committed(self.durable_commit)?;
        let rule = if by_count { "entries" } else { "bytes" };
        tracing::info!(
            index = point,
            rule,
            "saved snapshot point and compacted raft log"
        );
        Ok(())
    }
}
