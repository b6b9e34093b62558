//! Every way a client request can fail, and the one mapping from those errors to the gRPC status
//! codes and message texts etcd uses (clients match on the texts, so they are wire facts).

use crate::mvcc::MvccError;
use crate::raft::RaftError;
use tonic::{Code, Status};

/// A request that failed validation, apply or consensus.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Put or a txn put without a key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value` set together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` set together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// More operations in one txn branch than `--max-txn-ops`.
    #[error("etcdserver: too many operations in txn request")]
    TooManyTxnOps,
    /// Two writes to overlapping keys in one txn.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// The encoded request exceeds `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// A grant with a lease id that is already in use.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// A grant with a TTL above etcd's maximum.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// A lease id that does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// An MVCC read or compaction below the compacted revision or above the current one.
    #[error("etcdserver: {0}")]
    Mvcc(#[from] MvccError),
    /// No raft leader is known.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The request did not complete within the server's request timeout; it may or may not
    /// have taken effect.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The server is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// A member id that is not in the cluster.
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// MoveLeader sent to a member that is not the leader.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// MoveLeader to a member that cannot become leader.
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// The leader did not move within the request timeout.
    #[error("etcdserver: request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
    /// A lock or election contender's key vanished while it waited (its lease ended).
    #[error("etcdserver: session expired")]
    SessionExpired,
    /// Proclaim/Resign without the `leader` field.
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    /// Proclaim by a contender that no longer leads.
    #[error("election: not leader")]
    ElectionNotLeader,
    /// Leader of an election nobody leads.
    #[error("election: no leader")]
    ElectionNoLeader,
    /// Too many committed entries wait to be applied; the request was not proposed.
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    /// A write that needs space while the quota is exhausted (or a NOSPACE alarm is raised).
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// A membership request etcd's rules refuse.
    #[error(transparent)]
    Membership(#[from] super::reconfig::MembershipError),
    /// A request a learner does not serve (writes, linearizable reads).
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// Refused by auth (etcd's texts and codes, see [`crate::auth::AuthError`]).
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// An RPC detcd does not serve yet.
    #[error("{0} is not implemented by detcd yet")]
    Unimplemented(&'static str),
    /// A server-side failure that is not the client's fault.
    #[error("etcdserver: {0}")]
    Internal(String),
}

impl RequestError {
    /// The gRPC code etcd uses for this error.
    pub fn code(&self) -> Code {
        use RequestError::*;
        match self {
            EmptyKey | ValueProvided | LeaseProvided | TooManyTxnOps | DuplicateKey
            | RequestTooLarge | KeyNotFound => Code::InvalidArgument,
            LeaseNotFound | MemberNotFound => Code::NotFound,
            Mvcc(_) | LeaseTtlTooLarge => Code::OutOfRange,
            LeaseExists => Code::FailedPrecondition,
            NoLeader | Timeout | Stopped | LeaderTransferTimeout => Code::Unavailable,
            NotLeader | BadLeaderTransferee => Code::FailedPrecondition,
            Unimplemented(_) => Code::Unimplemented,
            Membership(e) => e.code(),
            Auth(e) => e.code(),
            NotSupportedForLearner => Code::Unavailable,
            NoSpace | TooManyRequests => Code::ResourceExhausted,
            SessionExpired | MissingLeaderKey | ElectionNotLeader | ElectionNoLeader => {
                Code::Unknown
            }
            Internal(_) => Code::Internal,
        }
    }
}

impl From<RequestError> for Status {
    fn from(e: RequestError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

impl From<RaftError> for RequestError {
    fn from(e: RaftError) -> Self {
        match e {
            RaftError::ProposalDropped => RequestError::NoLeader,
            RaftError::Stopped => RequestError::Stopped,
            RaftError::TooManyRequests => RequestError::TooManyRequests,
            RaftError::Removed => RequestError::Stopped,
            other => RequestError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_codes_match_etcd() {
        let s = Status::from(RequestError::Mvcc(MvccError::Compacted));
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s = Status::from(RequestError::Mvcc(MvccError::FutureRevision));
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision is a future revision"
        );
        let s = Status::from(RequestError::EmptyKey);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "etcdserver: key is not provided");
        assert_eq!(
            Status::from(RequestError::NoLeader).code(),
            Code::Unavailable
        );
        let s = Status::from(RequestError::from(RaftError::TooManyRequests));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.message(), "etcdserver: too many requests");
    }
}
