//! The `etcdserverpb.Cluster` service, on the client port and on the peer port.
//!
//! MemberList is served from the replicated member table (linearizably when the client asks, as
//! etcd 3.5 clients do). Membership changes are decided on the leader: a member that does not
//! lead forwards the request to the leader's peer port (where this same service runs) and
//! relays its answer, status codes included. The leader checks etcd's rules
//! ([`super::reconfig`]) against its own view — which peers it heard from within
//! [`ACTIVE_WINDOW`], and how far each log matches — then proposes the conf change and answers
//! once it has applied it. raft takes one change at a time; a request that finds one in
//! progress waits for it, within the request timeout, and is then decided again: the raft task
//! proposes a change only while the member table is the one it was decided on.

use super::core::ServerCore;
use super::error::RequestError;
use super::membership::{added_member_id, Member as TableMember, Membership};
use super::reconfig;
use crate::pb::etcdserverpb::cluster_client::ClusterClient;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use crate::raft::{ConfCheck, RaftError};
use raft::eraftpb::ConfChangeV2;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// A peer heard from within this window counts as active (etcd's `HealthInterval`).
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(5);

/// The Cluster service.
pub struct ClusterService {
    core: Arc<ServerCore>,
    /// Whether callers are peers relaying a client's change (already checked by the member
    /// the client called) rather than clients.
    for_peers: bool,
}

impl ClusterService {
    /// Serves Cluster to clients on `core`: member changes need the `root` role while auth
    /// is enabled (etcd 3.4's rule).
    pub fn new(core: Arc<ServerCore>) -> Self {
        ClusterService {
            core,
            for_peers: false,
        }
    }

    /// Serves Cluster to peers on `core` (the peer port), which relay changes clients sent.
    pub fn for_peers(core: Arc<ServerCore>) -> Self {
        ClusterService {
            core,
            for_peers: true,
        }
    }

    /// Refuses a client's member change unless it may make admin calls.
    fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if !self.for_peers {
            self.core.admin(request)?;
        }
        Ok(())
    }

    fn members(&self) -> Vec<Member> {
        self.core
            .state
            .membership()
            .members
            .values()
            .map(wire_member)
            .collect()
    }

    /// The leader's Cluster client, or None when this member leads; while no leader is known
    /// (or the one known has just been removed: an election follows), waits for one within the
    /// request timeout.
    async fn leader(&self) -> Result<Option<ClusterClient<Channel>>, Status> {
        let deadline = tokio::time::Instant::now() + self.core.request_timeout;
        let known = |id: u64| id != 0 && self.core.state.membership().members.contains_key(&id);
        let mut leader = self.core.status().leader;
        while !known(leader) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            leader = self.core.status().leader;
        }
        if leader == self.core.member_id {
            return Ok(None);
        }
        let endpoint = self.core.leader_peer_endpoint()?;
        Ok(Some(ClusterClient::new(endpoint.connect_lazy())))
    }

    /// Whether the leader heard from `id` within [`ACTIVE_WINDOW`] (itself: always).
    fn active(&self, id: u64) -> bool {
        if id == self.core.member_id {
            return true;
        }
        let heard = self
            .core
            .heard_from
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        heard
            .get(&id)
            .is_some_and(|at| at.elapsed() < ACTIVE_WINDOW)
    }

    /// Decides a change with `decide` (etcd's rules, against the member table) and proposes
    /// it. The raft task proposes it only if the table is still the one it was decided on once
    /// no other change is pending; otherwise (a change in progress, or one applied meanwhile:
    /// two adds of one peer URL racing) it is decided again on the new table. All within the
    /// request timeout.
    async fn decide_and_propose(
        &self,
        decide: impl Fn(&Membership) -> Result<ConfChangeV2, RequestError>,
    ) -> Result<(), RequestError> {
        let attempt = async {
            loop {
                let table = self.core.state.membership().clone();
                let change = decide(&table)?;
                let core = self.core.clone();
                let still_valid: ConfCheck = Arc::new(move || *core.state.membership() == table);
                match self
                    .core
                    .raft
                    .propose_conf_change(change, still_valid)
                    .await
                {
                    Err(RaftError::ConfChangePending | RaftError::ConfChangeStale) => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Ok(result) => return result.map(|_| ()),
                    Err(e) => return Err(RequestError::from(e)),
                }
            }
        };
        tokio::time::timeout(self.core.request_timeout, attempt)
            .await
            .unwrap_or(Err(RequestError::Timeout))
    }
}

fn wire_member(m: &TableMember) -> Member {
    Member {
        id: m.id,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

/// Relays a call forwarded to the leader, bounded by the request timeout.
async fn relay<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<Response<T>, Status>>,
) -> Result<Response<T>, Status> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(RequestError::Timeout.into()))
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.core.refuse_on_learner()?;
        self.admit(&request)?;
        let r = request.into_inner();
        if let Some(mut leader) = self.leader().await? {
            return relay(self.core.request_timeout, leader.member_add(r)).await;
        }
        let id = added_member_id(&r.peer_ur_ls, crate::io::clock::unix_seconds());
        let strict = self.core.strict_reconfig;
        self.decide_and_propose(|table| {
            let active = |id| self.active(id);
            reconfig::add(table, id, &r.peer_ur_ls, r.is_learner, strict, &active)
                .map_err(RequestError::from)
        })
        .await?;
        let member = Member {
            id,
            peer_ur_ls: r.peer_ur_ls,
            is_learner: r.is_learner,
            ..Default::default()
        };
        Ok(Response::new(MemberAddResponse {
            header: Some(self.core.header(0)),
            member: Some(member),
            members: self.members(),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.core.refuse_on_learner()?;
        self.admit(&request)?;
        let r = request.into_inner();
        if let Some(mut leader) = self.leader().await? {
            return relay(self.core.request_timeout, leader.member_remove(r)).await;
        }
        let (me, strict) = (self.core.member_id, self.core.strict_reconfig);
        self.decide_and_propose(|table| {
            let active = |id| self.active(id);
            reconfig::remove(table, r.id, me, strict, &active)
        })
        .await?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.core.header(0)),
            members: self.members(),
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.core.refuse_on_learner()?;
        self.admit(&request)?;
        let r = request.into_inner();
        if let Some(mut leader) = self.leader().await? {
            return relay(self.core.request_timeout, leader.member_update(r)).await;
        }
        self.decide_and_propose(|table| reconfig::update(table, r.id, &r.peer_ur_ls))
            .await?;
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.core.header(0)),
            members: self.members(),
        }))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.core.linearizable_read().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: Some(self.core.header(0)),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.admit(&request)?;
        let r = request.into_inner();
        if let Some(mut leader) = self.leader().await? {
            return relay(self.core.request_timeout, leader.member_promote(r)).await;
        }
        let progress = self
            .core
            .raft
            .leader_progress()
            .await
            .map_err(RequestError::from)?
            .ok_or(RequestError::NoLeader)?;
        self.decide_and_propose(|table| reconfig::promote(table, r.id, &progress))
            .await?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.core.header(0)),
            members: self.members(),
        }))
    }
}
