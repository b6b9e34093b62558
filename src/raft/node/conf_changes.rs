//! Membership changes as the node sees them: one is proposed only while none is pending and
//! the proposer's check still holds; a committed change takes effect in raft when it is handed
//! to the applier, and a change that removes this member ends the node. Invariant:
//! once this member's removal is in force, raft is driven no further (no tick, step, send or
//! advance); the node only waits for the applier to reach the removal.

use super::{ConfCheck, RaftNode};
use crate::raft::applier::ProposalReply;
use crate::raft::RaftError;
use raft::eraftpb::{ConfChangeV2, Entry};

impl<O: Send + 'static> RaftNode<O> {
    /// Proposes a membership change unless one is pending (raft would turn a second pending
    /// change into an empty entry) or `still_valid` says what it was decided on has changed.
    pub(super) fn propose_conf_change(
        &mut self,
        change: ConfChangeV2,
        still_valid: ConfCheck,
        reply: ProposalReply<O>,
    ) {
        if self.raw.raft.has_pending_conf() {
            let _ = reply.send(Err(RaftError::ConfChangePending));
            return;
        }
        // No change is pending, so every one in the log has been applied: the proposer's
        // check sees the state this change will apply to.
        if !still_valid() {
            let _ = reply.send(Err(RaftError::ConfChangeStale));
            return;
        }
        #[cfg(madsim)]
        let proposed = change.clone();
        self.propose(reply, |raw, ctx| raw.propose_conf_change(ctx, change));
        #[cfg(madsim)]
        if crate::fault::active(crate::fault::Bug::ConfChangeSkipQuorum) {
            self.apply_uncommitted(&proposed);
        }
    }

    /// This member's removal took effect in raft at index `at`: raft is driven no further (a
    /// removed leader has no progress of its own, which raft-rs would unwrap on its next
    /// persist or commit, and a removed member must not vote), the applier applies up to the
    /// removal, and the node ends.
    pub(super) async fn leave(&mut self, at: u64) -> Result<(), RaftError> {
        while self.apply.applied < at {
            let progress = self.applier.progress.recv().await;
            self.apply = progress.ok_or(RaftError::Stopped)?;
        }
        Err(RaftError::Removed)
    }

    /// Applies a committed membership change to raft. A change raft refuses (it cannot be
    /// applied to the configuration in force) leaves the configuration as it was; the machine
    /// follows the configuration raft reports either way. A change that removes this member
    /// ends the node once it is applied.
    pub(super) fn apply_conf_change(
        &mut self,
        entry: &Entry,
    ) -> Result<(ConfChangeV2, raft::eraftpb::ConfState), RaftError> {
        use protobuf::Message as _;
        let change = ConfChangeV2::parse_from_bytes(&entry.data)?;
        let was_member = self.is_member();
        let cs = match self.raw.apply_conf_change(&change) {
            Ok(cs) => cs,
            Err(e) => {
                let index = entry.index;
                tracing::warn!(index, error = %e, "membership change refused by raft");
                self.storage.conf_state_at(entry.index)?
            }
        };
        self.is_learner = cs.learners.contains(&self.config.id);
        self.storage.set_conf_state(entry.index, cs.clone());
        if was_member && !self.is_member() {
            self.removed_at = Some(entry.index);
        }
        Ok((change, cs))
    }

    /// Whether the configuration in force lists this member (as voter or learner).
    fn is_member(&self) -> bool {
        let conf = self.raw.raft.prs().conf();
        conf.voters().contains(self.config.id) || conf.learners().contains(&self.config.id)
    }

    /// Injected bug `conf-change-skip-quorum`: a proposed change is put into force at once.
    #[cfg(madsim)]
    pub(super) fn apply_uncommitted(&mut self, change: &ConfChangeV2) {
        let was_member = self.is_member();
        if let Ok(cs) = self.raw.apply_conf_change(change) {
            self.is_learner = cs.learners.contains(&self.config.id);
            if was_member && !self.is_member() {
                self.removed_at = Some(self.raw.raft.raft_log.last_index());
            }
        }
    }
}
