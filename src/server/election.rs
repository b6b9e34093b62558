//! etcd's `v3electionpb.Election` service: Campaign blocks until the caller leads, Proclaim
//! changes the leader's value, Leader reads the current leader, Observe streams every change of
//! leader or value, Resign steps down. Same recipe as the lock ([`super::recipe`]): the
//! contender with the lowest create revision under `name/` leads.

use super::core::ServerCore;
use super::error::RequestError;
use super::range::to_proto;
use super::recipe;
use crate::pb::v3electionpb::election_server::Election;
use crate::pb::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Election service.
pub struct ElectionService {
    core: Arc<ServerCore>,
}

impl ElectionService {
    /// Serves Election on `core`.
    pub fn new(core: Arc<ServerCore>) -> Self {
        ElectionService { core }
    }
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let r = request.into_inner();
        let key = recipe::own_key(&r.name, r.lease);
        let (created, existing) = recipe::create_key(&self.core, &key, &r.value, r.lease).await?;
        if existing.is_some_and(|v| v != r.value.as_ref()) {
            recipe::put_if_created_at(&self.core, &key, created, &r.value, r.lease).await?;
        }
        let guard = recipe::AbandonGuard::new(self.core.clone(), key.clone(), created);
        recipe::wait_for_turn(&self.core, &recipe::prefix(&r.name), &key, created).await?;
        guard.disarm();
        let revision = self.core.state.store().current_revision();
        Ok(Response::new(CampaignResponse {
            header: Some(self.core.header(revision)),
            leader: Some(LeaderKey {
                name: r.name,
                key: key.into(),
                rev: created,
                lease: r.lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let r = request.into_inner();
        let leader = r.leader.ok_or(RequestError::MissingLeaderKey)?;
        let (ok, header) =
            recipe::put_if_created_at(&self.core, &leader.key, leader.rev, &r.value, leader.lease)
                .await?;
        if !ok {
            return Err(RequestError::ElectionNotLeader.into());
        }
        Ok(Response::new(ProclaimResponse {
            header: self.core.complete(header),
        }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let prefix = recipe::prefix(&request.into_inner().name);
        let kv = recipe::holder(&self.core, &prefix)
            .await?
            .ok_or(RequestError::ElectionNoLeader)?;
        let revision = self.core.state.store().current_revision();
        Ok(Response::new(LeaderResponse {
            header: Some(self.core.header(revision)),
            kv: Some(to_proto(kv, false)),
        }))
    }

    type ObserveStream = BoxStream<'static, Result<LeaderResponse, Status>>;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let prefix = recipe::prefix(&request.into_inner().name);
        let core = self.core.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut last: Option<(Vec<u8>, i64)> = None;
            loop {
                let changed = core.state.revision_changed();
                tokio::pin!(changed);
                changed.as_mut().enable();
                match recipe::holder(&core, &prefix).await {
                    Ok(Some(kv)) => {
                        let seen = (kv.key.clone(), kv.mod_revision);
                        if last.as_ref() != Some(&seen) {
                            last = Some(seen);
                            let revision = core.state.store().current_revision();
                            let resp = LeaderResponse {
                                header: Some(core.header(revision)),
                                kv: Some(to_proto(kv, false)),
                            };
                            if tx.send(Ok(resp)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(None) => last = None,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(e))).await;
                        return;
                    }
                }
                changed.await;
            }
        });
        Ok(Response::new(
            tokio_stream::wrappers::ReceiverStream::new(rx).boxed(),
        ))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let leader = request
            .into_inner()
            .leader
            .ok_or(RequestError::MissingLeaderKey)?;
        let header = recipe::delete_key(&self.core, &leader.key, leader.rev).await?;
        Ok(Response::new(ResignResponse {
            header: self.core.complete(header),
        }))
    }
}
