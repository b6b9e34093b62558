//! What every RPC handler shares: the raft handle, the replicated state, ids, limits, and the
//! two ways to reach the state — propose a write and wait for its apply, or wait for a
//! linearizable read point — both bounded by the request timeout.

use super::apply::{Applied, ReplicatedState};
use super::auth::apply::header_of;
use super::error::RequestError;
use super::lock_rank::{Rank, Ranked};
use super::validate::{self, Limits};
use crate::auth::AuthInfo;
use crate::io::Disk;
use crate::lease::ExpiryClock;
use crate::pb::detcdpb::{internal_request::Request, AuthHeader, InternalRequest};
use crate::pb::etcdserverpb::ResponseHeader;
use crate::raft::transport::HeardFrom;
use crate::raft::{RaftHandle, RaftStatus};
use prost::Message as _;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

/// The etcd API version detcd speaks (reported by `Status`).
pub const ETCD_API_VERSION: &str = "3.5.0";

/// Shared server context.
pub struct ServerCore {
    /// The raft node.
    pub raft: RaftHandle<super::apply::ApplyResult>,
    /// Replicated state.
    pub state: Arc<ReplicatedState>,
    /// This member's id.
    pub member_id: u64,
    /// The cluster's id.
    pub cluster_id: u64,
    /// Request limits.
    pub limits: Limits,
    /// How long a request may wait for raft.
    pub request_timeout: Duration,
    /// The member's data directory (for its on-disk size).
    pub disk: Disk,
    /// Lease deadlines (meaningful on the leader only). Take it only through
    /// [`ServerCore::clock`]: it ranks last ([`Rank::Expiry`]), after the store, lease-table and
    /// member-table locks of [`ReplicatedState`], so never take one of those while holding it
    /// (copy what is needed out of the lease table first, then take the clock).
    pub(super) expiry: std::sync::Mutex<ExpiryClock>,
    /// Smallest TTL a lease is granted (etcd: 1.5 election timeouts, rounded up).
    pub min_lease_ttl: i64,
    /// The backend's space quota (`None`: unlimited); see [`super::alarm`].
    pub quota_bytes: Option<u64>,
    /// When each peer was last heard from (membership checks on the leader).
    pub heard_from: HeardFrom,
    /// `--strict-reconfig-check`.
    pub strict_reconfig: bool,
    /// How this member dials its peers (TLS for `https://` peer URLs).
    pub dialer: crate::raft::dial::Dialer,
    /// `--client-cert-auth`: a client certificate's common name names the caller.
    pub client_cert_auth: bool,
    /// `--bcrypt-cost`: how hard password hashes are to compute.
    pub bcrypt_cost: u32,
}

impl ServerCore {
    /// A response header at `revision` with this member's ids and the current term.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft.status().term,
        }
    }

    /// Fills in the ids and term of a header that carries only a revision.
    pub fn complete(&self, header: Option<ResponseHeader>) -> Option<ResponseHeader> {
        Some(self.header(header.map_or(0, |h| h.revision)))
    }

    /// The leader's expiry clock (lock rank [`Rank::Expiry`]: hold no other state lock then).
    pub fn clock(&self) -> Ranked<MutexGuard<'_, ExpiryClock>> {
        Ranked::acquire(Rank::Expiry, || {
            self.expiry.lock().unwrap_or_else(|e| e.into_inner())
        })
    }

    /// Raft status.
    pub fn status(&self) -> RaftStatus {
        self.raft.status()
    }

    /// Refuses what a learner does not serve (etcd: writes, linearizable reads, membership).
    pub fn refuse_on_learner(&self) -> Result<(), RequestError> {
        if self.status().is_learner {
            return Err(RequestError::NotSupportedForLearner);
        }
        Ok(())
    }

    /// The leader's peer endpoint (to forward to), if a leader is known.
    pub fn leader_peer_endpoint(&self) -> Result<crate::raft::dial::DialEndpoint, RequestError> {
        let leader = self.status().leader;
        let url = self
            .state
            .membership()
            .members
            .get(&leader)
            .and_then(|m| m.peer_urls.first().cloned())
            .ok_or(RequestError::NoLeader)?;
        Ok(self
            .dialer
            .endpoint(&url)
            .map_err(|e| RequestError::Internal(format!("leader URL: {e}")))?
            .configure(|e| e.connect_timeout(Duration::from_secs(1))))
    }

    /// Replicates a request `who` sent and returns what applying it produced on this member
    /// (where auth checks it again, see [`super::auth::apply`]). A request that needs space
    /// is refused first when the quota would be exceeded ([`super::alarm`]); a learner refuses
    /// every request.
    pub async fn propose(&self, who: &AuthInfo, request: Request) -> Result<Applied, RequestError> {
        self.refuse_on_learner()?;
        self.check_quota(&request).await?;
        self.send(Some(header_of(who)), request).await
    }

    /// Replicates one of the server's own requests (lease expiry, auto compaction) with the
    /// learner and quota checks of [`ServerCore::propose`], and no auth check.
    pub async fn propose_own(&self, request: Request) -> Result<Applied, RequestError> {
        self.refuse_on_learner()?;
        self.check_quota(&request).await?;
        self.replicate(request).await
    }

    /// Replicates one of the server's own requests without a quota, learner or auth check.
    pub(super) async fn replicate(&self, request: Request) -> Result<Applied, RequestError> {
        self.send(None, request).await
    }

    async fn send(
        &self,
        auth_header: Option<AuthHeader>,
        request: Request,
    ) -> Result<Applied, RequestError> {
        let data = InternalRequest {
            request: Some(request),
            auth_header,
        }
        .encode_to_vec();
        validate::size(data.len(), &self.limits)?;
        match tokio::time::timeout(self.request_timeout, self.raft.propose(data)).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// Waits until local state reflects every write acknowledged before this call (ReadIndex).
    pub async fn linearizable_read(&self) -> Result<(), RequestError> {
        #[cfg(madsim)]
        if crate::fault::active(crate::fault::Bug::StaleRead) {
            return Ok(());
        }
        self.refuse_on_learner()?;
        match tokio::time::timeout(self.request_timeout, self.raft.read_index()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// Whether this member led in `term` and still does after a ReadIndex round, i.e. a quorum
    /// confirmed it leads (a ReadIndex alone also succeeds on a member that has just stepped
    /// down: the new leader answers it).
    pub async fn confirm_leadership(&self, term: u64) -> bool {
        let leads = |s: RaftStatus| s.leader == self.member_id && s.term == term;
        leads(self.status()) && self.linearizable_read().await.is_ok() && leads(self.status())
    }

    fn timeout_error(&self) -> RequestError {
        if self.raft.status().leader == 0 {
            RequestError::NoLeader
        } else {
            RequestError::Timeout
        }
    }
}
