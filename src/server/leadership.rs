//! Leadership moves made on request: MoveLeader's transfer to a named member, and the hand-off
//! a leader makes when it is stopped cleanly (etcd does the same on SIGTERM), so the others do
//! not wait out an election timeout with no leader while their in-flight proposals are lost.
//! Owns no state: both ask raft to transfer and wait until the raft status names the new leader.
//! [`ServerCore::stop_cleanly`] is the whole clean stop (hand-off, then raft's clean stop), shared
//! by the binary's SIGTERM handling and the simulator's clean restarts.

use super::core::ServerCore;
use super::error::RequestError;
use std::time::Duration;

/// How often a transfer's progress is checked.
const POLL: Duration = Duration::from_millis(20);

impl ServerCore {
    /// Asks raft to hand leadership to `target` and waits until the status names it, at most
    /// the request timeout.
    pub async fn transfer_leadership(&self, target: u64) -> Result<(), RequestError> {
        self.raft.transfer_leader(target).await?;
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        while self.status().leader != target {
            if tokio::time::Instant::now() >= deadline {
                return Err(RequestError::LeaderTransferTimeout);
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// Stops this member cleanly, as on SIGTERM: leadership is handed off first
    /// ([`ServerCore::hand_off_leadership`]), then raft applies, flushes and marks what it has
    /// and ends. Returns the member leadership went to, if it moved.
    pub async fn stop_cleanly(&self, recent: Duration) -> Option<u64> {
        let moved = self.hand_off_leadership(recent).await;
        self.raft.stop().await;
        moved
    }

    /// When this member leads and another voter was heard from within `recent`: hands
    /// leadership to the one of those that has replicated the most of the log, and waits for
    /// the move. Returns the new leader once this member's raft status names it; the outcome
    /// is logged, and the caller stops either way.
    pub async fn hand_off_leadership(&self, recent: Duration) -> Option<u64> {
        let Ok(Some(progress)) = self.raft.leader_progress().await else {
            return None;
        };
        let voters: Vec<u64> = (self.state.membership().members.iter())
            .filter(|(_, member)| !member.is_learner)
            .map(|(id, _)| *id)
            .collect();
        let heard = self
            .heard_from
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = tokio::time::Instant::now();
        let target = progress
            .matched
            .iter()
            .filter(|(id, _)| **id != self.member_id)
            .filter(|(id, _)| voters.contains(id))
            .filter(|(id, _)| heard.get(id).is_some_and(|at| now - *at <= recent))
            .max_by_key(|(id, matched)| (**matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id);
        let target = target?;
        tracing::info!(to = %format!("{target:x}"), "leadership transfer starting");
        #[cfg(madsim)]
        if crate::fault::active(crate::fault::Bug::HandOffNoWait) {
            let _ = self.raft.transfer_leader(target).await;
            return Some(target);
        }
        match self.transfer_leadership(target).await {
            Ok(()) => {
                tracing::info!(to = %format!("{target:x}"), "leadership transfer finished");
                Some(target)
            }
            Err(e) => {
                tracing::warn!(error = %e, "leadership transfer failed; stopping anyway");
                None
            }
        }
    }
}
