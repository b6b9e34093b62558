//! Consensus: one raft-rs `RawNode` per member, driven by a single task ([`node`]) that hands
//! committed entries to an apply task ([`applier`]) owning the state machine, persisted by
//! [`durable`] (WAL + snapshot files), talking to peers through [`transport`] (raft snapshots
//! streamed by [`snapshot_transfer`]).
//!
//! The layer is generic over a [`StateMachine`]: it knows nothing of keys or gRPC requests, only
//! of opaque entry payloads that the machine applies in log order.

mod applier;
pub mod commit_mark;
pub mod dial;
pub mod durable;
mod election_timer;
pub mod node;
pub mod read_index;
pub mod snapshot_transfer;
pub mod status;
pub mod storage;
pub mod transport;

pub use node::{
    ConfCheck, LeaderProgress, NodeConfig, NodeParts, RaftHandle, RaftNode, DEFAULT_SNAPSHOT_BYTES,
};
pub use status::RaftStatus;

use raft::eraftpb::{ConfChangeV2, ConfState};

/// What the raft node applies committed entries to.
///
/// The machine keeps its state in a backend of its own and knows which raft index that state
/// reflects ([`StateMachine::applied_index`]): the node hands it only entries past that index,
/// and compacts the raft log only behind what the machine has made durable.
pub trait StateMachine: Send + 'static {
    /// Result handed to the member that proposed an entry.
    type Output: Send + 'static;
    /// Index of the last entry the state reflects (after a restart: what the backend holds).
    fn applied_index(&self) -> u64;
    /// Applies one committed normal entry.
    fn apply(&mut self, index: u64, data: &[u8]) -> Self::Output;
    /// Applies one committed membership change; `conf` is the resulting configuration.
    fn apply_conf_change(
        &mut self,
        index: u64,
        change: &ConfChangeV2,
        conf: &ConfState,
    ) -> Self::Output;
    /// Commits what was applied since the last flush to the backend, with the applied index;
    /// with `durable`, everything applied is on disk when this returns.
    fn flush(&mut self, durable: bool) -> Result<(), crate::storage::StorageError>;
    /// Background work between entries, called every tick (nothing is unflushed then): e.g.
    /// deleting what a compaction removed, a batch per call, a larger one when `idle` (no
    /// entries were applied since the last tick).
    fn tick(&mut self, idle: bool) -> Result<(), crate::storage::StorageError>;
    /// Replaces the whole state (durably) with the image read from `image`, which another
    /// member's [`SnapshotImage::chunks`] produced at `index`, unless the state already
    /// reflects `index`.
    fn restore(&mut self, index: u64, image: &mut dyn std::io::Read) -> Result<(), RestoreError>;
}

/// A consistent image of a state machine at one raft index, sent to a member that needs a raft
/// snapshot. It is read lazily, chunk by chunk, while writes go on; holding it keeps that view
/// alive (and its pages from reuse), so it is held only while it is being sent.
pub trait SnapshotImage: Send + Sync {
    /// The raft index the image reflects.
    fn index(&self) -> u64;
    /// The image as a stream of byte chunks of bounded size; each call starts from the
    /// beginning.
    fn chunks(&self) -> Result<ImageChunks, crate::storage::StorageError>;
}

/// The chunks of a [`SnapshotImage`], read as they are taken.
pub type ImageChunks =
    Box<dyn Iterator<Item = Result<Vec<u8>, crate::storage::StorageError>> + Send>;

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The image does not hold the state at the index its snapshot claims.
    #[error("the snapshot image reflects index {image}, not the snapshot's index {snapshot}")]
    IndexMismatch {
        /// The index the image's own state records.
        image: u64,
        /// The index of the snapshot it came with.
        snapshot: u64,
    },
    /// The image could not be read or stored.
    #[error("storing the snapshot: {0}")]
    Storage(#[from] crate::storage::StorageError),
}

/// Errors of the consensus layer.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// Raft refused a proposal outright (no leader known); it never entered the log.
    #[error("proposal dropped: no leader")]
    ProposalDropped,
    /// The node task has exited.
    #[error("raft node stopped")]
    Stopped,
    /// Too many committed entries wait to be applied ([`node::MAX_APPLY_LAG`]); the proposal
    /// never entered the log.
    #[error("too many requests: apply is behind commit")]
    TooManyRequests,
    /// A membership change is still being applied; raft takes one at a time.
    #[error("a membership change is already in progress")]
    ConfChangePending,
    /// The state a membership change was decided on changed before it could be proposed.
    #[error("the member table changed while the membership change was being checked")]
    ConfChangeStale,
    /// This member was removed from the cluster (its removal has been applied).
    #[error("the member has been permanently removed from the cluster")]
    Removed,
    /// raft-rs reported an error.
    #[error("raft: {0}")]
    Raft(raft::Error),
    /// The WAL or snapshot files failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// A message or entry failed to decode.
    #[error("decode: {0}")]
    Decode(#[from] protobuf::ProtobufError),
    /// A snapshot could not be restored into the state machine.
    #[error("restore snapshot: {0}")]
    Restore(#[from] RestoreError),
    /// The WAL ends before an index this member had recorded as committed: synced entries are
    /// gone (a cut or damaged file), so serving would mean answering from less than it had
    /// acknowledged.
    #[error(
        "the WAL ends at index {last} but index {committed} was committed: synced log entries are \
         missing (a cut or damaged WAL); refusing to start — restore this member from a backup \
         or replace it"
    )]
    LostTail {
        /// Last index the WAL (or the snapshot) reaches.
        last: u64,
        /// Highest index recorded as committed.
        committed: u64,
    },
    /// Recovered files are inconsistent.
    #[error("corrupt raft state: {0}")]
    Corrupt(String),
}

impl From<raft::Error> for RaftError {
    fn from(e: raft::Error) -> Self {
        match e {
            raft::Error::ProposalDropped => RaftError::ProposalDropped,
            other => RaftError::Raft(other),
        }
    }
}
