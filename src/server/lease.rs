//! The `etcdserverpb.Lease` service, the leader's expiry loop, and forwarding to the leader.
//!
//! Grants and revocations go through raft (every member's lease table is identical). Expiry is
//! decided by the leader alone, from its in-memory [`ExpiryClock`](crate::lease::ExpiryClock): when a member becomes
//! leader every lease gets its full TTL again (as etcd does), keep-alives push a lease's
//! deadline to now + TTL, and an expired lease is revoked through raft — so its keys disappear
//! in one revision on every member. Keep-alives and TimeToLive need the leader's clock, so a
//! follower forwards them over the peer port (`detcdpb.LeaseForward`).

use super::apply::Applied;
use super::core::ServerCore;
use super::error::RequestError;
use crate::auth::PermKind;
use crate::io::clock;
use crate::pb::detcdpb::internal_request::Request as Internal;
use crate::pb::detcdpb::lease_forward_client::LeaseForwardClient;
use crate::pb::detcdpb::lease_forward_server::LeaseForward;
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// etcd's largest lease TTL, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// How often the leader looks for expired leases.
const EXPIRY_CHECK: Duration = Duration::from_millis(250);
/// After proposing a revocation, wait this long before proposing it again.
const REVOKE_RETRY_SECS: i64 = 1;

/// The Lease service (client port) and the LeaseForward service (peer port).
#[derive(Clone)]
pub struct LeaseService {
    core: Arc<ServerCore>,
}

impl LeaseService {
    /// Serves leases on `core`.
    pub fn new(core: Arc<ServerCore>) -> Self {
        LeaseService { core }
    }

    fn is_leader(&self) -> bool {
        self.core.status().leader == self.core.member_id
    }

    /// The leader's peer client, if a leader is known.
    async fn leader_client(&self) -> Result<LeaseForwardClient<Channel>, RequestError> {
        let endpoint = self.core.leader_peer_endpoint()?;
        Ok(LeaseForwardClient::new(endpoint.connect_lazy()))
    }

    /// Awaits a call forwarded to the leader, bounded by the request timeout.
    async fn forwarded<T>(
        &self,
        call: impl std::future::Future<Output = Result<Response<T>, Status>>,
    ) -> Result<T, RequestError> {
        match tokio::time::timeout(self.core.request_timeout, call).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(RequestError::Internal(status.message().to_string())),
            Err(_) => Err(RequestError::Timeout),
        }
    }

    /// Renews `id` on the leader's clock (TTL 0 if the lease does not exist).
    ///
    /// The leader first confirms with a quorum that it still leads (ReadIndex, as etcd does since
    /// its issue 15247): a deposed leader that has not heard of it yet — stalled on a slow disk, say —
    /// would otherwise renew a clock nobody consults while the new leader expires the lease.
    async fn renew(&self, id: i64) -> Result<LeaseKeepAliveResponse, RequestError> {
        let term = self.core.status().term;
        if self.is_leader()
            && !skips_leadership_check()
            && !self.core.confirm_leadership(term).await
            && self.is_leader()
        {
            // Still believes it leads, but no quorum confirmed it: renew nothing.
            return Err(RequestError::NotLeader);
        }
        if !self.is_leader() {
            let mut leader = self.leader_client().await?;
            return self
                .forwarded(leader.renew(LeaseKeepAliveRequest { id }))
                .await;
        }
        let ttl = self.core.state.leases().get(id).map_or(0, |l| l.ttl);
        if ttl > 0 {
            self.core.clock().renew(id, ttl, clock::now());
        }
        Ok(LeaseKeepAliveResponse {
            header: Some(self.core.header(self.core.state.store().current_revision())),
            id,
            ttl,
        })
    }

    async fn time_to_live(
        &self,
        r: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, RequestError> {
        if !self.is_leader() {
            let mut leader = self.leader_client().await?;
            return self.forwarded(leader.time_to_live(r)).await;
        }
        let header = Some(self.core.header(self.core.state.store().current_revision()));
        // Copy the lease out and release the lease table before taking the clock.
        let found = self.core.state.leases().get(r.id).map(|lease| {
            let keys = if r.keys {
                lease.keys.iter().map(|k| k.clone().into()).collect()
            } else {
                Vec::new()
            };
            (lease.ttl, keys)
        });
        let Some((granted_ttl, keys)) = found else {
            return Ok(LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: -1,
                ..Default::default()
            });
        };
        let remaining = self
            .core
            .clock()
            .remaining(r.id, clock::now())
            .unwrap_or(granted_ttl);
        Ok(LeaseTimeToLiveResponse {
            header,
            id: r.id,
            ttl: remaining,
            granted_ttl,
            keys,
        })
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let who = self.core.caller(&request)?;
        let mut r = request.into_inner();
        if r.ttl > MAX_LEASE_TTL {
            return Err(RequestError::LeaseTtlTooLarge.into());
        }
        r.ttl = r.ttl.max(self.core.min_lease_ttl);
        if r.id == 0 {
            r.id = loop {
                let id = (madsim::rand::random::<u64>() >> 1) as i64;
                if id != 0 && !self.core.state.leases().exists(id) {
                    break id;
                }
            };
        }
        match self.core.propose(&who, Internal::LeaseGrant(r)).await? {
            Applied::LeaseGrant(mut resp) => {
                if self.is_leader() {
                    self.core.clock().renew(resp.id, resp.ttl, clock::now());
                }
                resp.header = self.core.complete(resp.header);
                Ok(Response::new(resp))
            }
            other => Err(RequestError::Internal(format!("unexpected {other:?}")).into()),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let who = self.core.caller(&request)?;
        let revoke = Internal::LeaseRevoke(request.into_inner());
        match self.core.propose(&who, revoke).await? {
            Applied::LeaseRevoke(mut resp) => {
                resp.header = self.core.complete(resp.header);
                Ok(Response::new(resp))
            }
            other => Err(RequestError::Internal(format!("unexpected {other:?}")).into()),
        }
    }

    type LeaseKeepAliveStream = BoxStream<'static, Result<LeaseKeepAliveResponse, Status>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let service = self.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok(Some(req)) = inbound.message().await {
                let resp = service.renew(req.id).await.map_err(Status::from);
                if tx.send(resp).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(
            tokio_stream::wrappers::ReceiverStream::new(rx).boxed(),
        ))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        if r.keys && self.core.state.auth.enabled() {
            // Listing a lease's keys needs read permission on each (etcd 3.5's rule).
            let keys: Vec<Vec<u8>> = match self.core.state.leases().get(r.id) {
                Some(lease) => lease.keys.iter().cloned().collect(),
                None => Vec::new(),
            };
            self.core.check_read(&who, |auth, who| {
                keys.iter()
                    .try_for_each(|k| auth.check_op(who, PermKind::Read, k, &[]))
            })?;
        }
        let mut resp = self.time_to_live(r).await?;
        resp.header = self.core.complete(resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let leases = self
            .core
            .state
            .leases()
            .leases()
            .map(|l| LeaseStatus { id: l.id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.core.header(self.core.state.store().current_revision())),
            leases,
        }))
    }
}

#[tonic::async_trait]
impl LeaseForward for LeaseService {
    async fn renew(
        &self,
        request: Request<LeaseKeepAliveRequest>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        if !self.is_leader() {
            return Err(RequestError::NotLeader.into());
        }
        Ok(Response::new(
            LeaseService::renew(self, request.into_inner().id).await?,
        ))
    }

    async fn time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        if !self.is_leader() {
            return Err(RequestError::NotLeader.into());
        }
        Ok(Response::new(
            LeaseService::time_to_live(self, request.into_inner()).await?,
        ))
    }
}

/// Whether the injected bug `lease-on-stale-leader` is on (sim builds only): leases renewed and
/// expired without confirming leadership.
fn skips_leadership_check() -> bool {
    #[cfg(madsim)]
    return crate::fault::active(crate::fault::Bug::LeaseOnStaleLeader);
    #[cfg(not(madsim))]
    false
}

/// The leader's expiry loop: runs for the life of the member.
pub async fn run_expiry(core: Arc<ServerCore>) {
    let mut led_term = None;
    loop {
        tokio::time::sleep(EXPIRY_CHECK).await;
        let status = core.status();
        if status.leader != core.member_id {
            core.clock().clear();
            led_term = None;
            continue;
        }
        // The lease table's ids and TTLs, copied out so the clock is taken alone (lock order);
        // a lease granted meanwhile is tracked on the next pass, never expired early.
        let live: BTreeMap<i64, i64> = core
            .state
            .leases()
            .leases()
            .map(|l| (l.id, l.ttl))
            .collect();
        let now = clock::now();
        let expired = {
            let mut clock = core.clock();
            if led_term != Some(status.term) {
                // Newly elected: every lease gets a full TTL from now.
                clock.clear();
                led_term = Some(status.term);
            }
            for (&id, &ttl) in &live {
                clock.track(id, ttl, now);
            }
            clock.retain(|id| live.contains_key(&id));
            #[cfg(madsim)]
            let now = if crate::fault::active(crate::fault::Bug::LeaseEarlyExpiry) {
                now + std::time::Duration::from_secs(2)
            } else {
                now
            };
            let expired = clock.expired(now);
            for id in &expired {
                clock.renew(*id, REVOKE_RETRY_SECS, now);
            }
            expired
        };
        for id in expired {
            let core = core.clone();
            tokio::spawn(async move {
                // A deposed leader's clock is stale (keep-alives went to the new leader): confirm
                // leadership first, as etcd does since its issue 15247. A ReadIndex alone is not
                // enough — a member that has stepped down gets one from the new leader.
                if !skips_leadership_check() && !core.confirm_leadership(status.term).await {
                    return;
                }
                let revoke = Internal::LeaseRevoke(LeaseRevokeRequest { id });
                if let Err(e) = core.propose_own(revoke).await {
                    tracing::debug!(lease = id, error = %e, "revoking an expired lease failed");
                }
            });
        }
    }
}
