//! The cloneable handle RPC handlers use to reach a running node: proposals (retried while no
//! leader is known), ReadIndex, peer messages, leader transfer and a clean stop, all as commands
//! to the raft task; status reads go to the shared status without a round trip.

use super::Command;
use super::{ConfCheck, LeaderProgress};
use crate::raft::status::{RaftStatus, SharedStatus};
use crate::raft::RaftError;
use raft::eraftpb::{ConfChangeV2, Message};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Cheap, cloneable access to a running node.
pub struct RaftHandle<O> {
    pub(crate) commands: mpsc::Sender<Command<O>>,
    pub(super) status: Arc<SharedStatus>,
    pub(super) id: u64,
}

impl<O> Clone for RaftHandle<O> {
    fn clone(&self) -> Self {
        Self {
            commands: self.commands.clone(),
            status: self.status.clone(),
            id: self.id,
        }
    }
}

impl<O: Send + 'static> RaftHandle<O> {
    /// This member's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Latest raft status.
    pub fn status(&self) -> RaftStatus {
        self.status.load()
    }

    /// Proposes `data` and waits until this member has applied it. A proposal raft refuses
    /// outright (no known leader) is retried until a leader appears; the caller bounds the wait.
    pub async fn propose(&self, data: Vec<u8>) -> Result<O, RaftError> {
        self.submit(|reply| Command::Propose {
            data: data.clone(),
            reply,
        })
        .await
    }

    /// Proposes a membership change and waits until this member has applied it; fails with
    /// [`RaftError::ConfChangePending`] while another one is being applied, and with
    /// [`RaftError::ConfChangeStale`] when `still_valid` (run by the raft task once no change
    /// is pending) says the state the change was decided on has changed.
    pub async fn propose_conf_change(
        &self,
        change: ConfChangeV2,
        still_valid: ConfCheck,
    ) -> Result<O, RaftError> {
        self.submit(|reply| Command::ProposeConfChange {
            change: change.clone(),
            still_valid: still_valid.clone(),
            reply,
        })
        .await
    }

    /// On the leader, how far each member's log matches; None on other members.
    pub async fn leader_progress(&self) -> Result<Option<LeaderProgress>, RaftError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Progress(tx))
            .await
            .map_err(|_| RaftError::Stopped)?;
        rx.await.map_err(|_| RaftError::Stopped)
    }

    /// Sends the command `make` builds and waits for its apply result, re-sending while raft
    /// refuses it for want of a leader (a refused proposal never entered the log).
    async fn submit(
        &self,
        make: impl Fn(oneshot::Sender<Result<O, RaftError>>) -> Command<O>,
    ) -> Result<O, RaftError> {
        loop {
            let (reply, rx) = oneshot::channel();
            self.commands
                .send(make(reply))
                .await
                .map_err(|_| RaftError::Stopped)?;
            match rx.await.map_err(|_| RaftError::Stopped)? {
                Err(RaftError::ProposalDropped) => self.wait_for_leader().await,
                other => return other,
            }
        }
    }

    /// Waits until a read started now may be served from local state (ReadIndex).
    pub async fn read_index(&self) -> Result<(), RaftError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::ReadIndex(tx))
            .await
            .map_err(|_| RaftError::Stopped)?;
        rx.await.map_err(|_| RaftError::Stopped)
    }

    /// Hands a message from a peer to raft.
    pub async fn step(&self, msg: Message) -> Result<(), RaftError> {
        self.commands
            .send(Command::Step(Box::new(msg)))
            .await
            .map_err(|_| RaftError::Stopped)
    }

    /// Asks the leader (this member) to hand leadership to `to`.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), RaftError> {
        self.commands
            .send(Command::TransferLeader(to))
            .await
            .map_err(|_| RaftError::Stopped)
    }

    /// Stops the node cleanly: the commit mark is brought up to date and the task ends.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Waits until the node task has ended (storage failure or stop); returns why.
    pub async fn stopped(&self) -> String {
        self.status.wait_stopped().await
    }

    async fn wait_for_leader(&self) {
        let tick = Duration::from_millis(20);
        tokio::time::sleep(tick).await;
        while self.status.load().leader == 0 {
            tokio::time::sleep(tick).await;
        }
    }
}
