//! The `etcdserverpb.Cluster` service. MemberList is served from the replicated member table
//! (linearizably when the client asks, as etcd 3.5 clients do); membership changes are not
//! served yet and answer `Unimplemented`.

use super::core::ServerCore;
use super::error::RequestError;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Cluster service.
pub struct ClusterService {
    core: Arc<ServerCore>,
}

impl ClusterService {
    /// Serves Cluster on `core`.
    pub fn new(core: Arc<ServerCore>) -> Self {
        ClusterService { core }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(RequestError::Unimplemented("MemberAdd").into())
    }

    async fn member_remove(
        &self,
        _: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(RequestError::Unimplemented("MemberRemove").into())
    }

    async fn member_update(
        &self,
        _: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(RequestError::Unimplemented("MemberUpdate").into())
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.core.linearizable_read().await?;
        }
        let members = self
            .core
            .state
            .membership()
            .members
            .values()
            .map(|m| Member {
                id: m.id,
                name: m.name.clone(),
                peer_ur_ls: m.peer_urls.clone(),
                client_ur_ls: m.client_urls.clone(),
                is_learner: m.is_learner,
            })
            .collect();
        Ok(Response::new(MemberListResponse {
            header: Some(self.core.header(0)),
            members,
        }))
    }

    async fn member_promote(
        &self,
        _: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(RequestError::Unimplemented("MemberPromote").into())
    }
}
