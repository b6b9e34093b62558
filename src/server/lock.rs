//! etcd's `v3lockpb.Lock` service (what `etcd`'s gRPC lock API and clients built on it use;
//! `etcdctl lock` runs the same recipe client-side). `Lock` blocks until the caller holds the
//! lock and returns the key it owns; that key's create revision (in the response header's
//! revision at acquisition and in the key itself) is the fencing token — see [`super::recipe`].
//! The lock lasts as long as the caller's lease, or until `Unlock` deletes the key.

use super::core::ServerCore;
use super::recipe;
use crate::pb::v3lockpb::lock_server::Lock;
use crate::pb::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Lock service.
pub struct LockService {
    core: Arc<ServerCore>,
}

impl LockService {
    /// Serves Lock on `core`.
    pub fn new(core: Arc<ServerCore>) -> Self {
        LockService { core }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        let key = recipe::own_key(&r.name, r.lease);
        let (created, _) = recipe::create_key(&self.core, &who, &key, b"", r.lease).await?;
        let guard = recipe::AbandonGuard::new(self.core.clone(), who.clone(), key.clone(), created);
        let prefix = recipe::prefix(&r.name);
        recipe::wait_for_turn(&self.core, &who, &prefix, &key, created).await?;
        guard.disarm();
        let revision = self.core.state.store().current_revision();
        Ok(Response::new(LockResponse {
            header: Some(self.core.header(revision)),
            key: key.into(),
        }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let who = self.core.caller(&request)?;
        let header = recipe::delete_key(&self.core, &who, &request.into_inner().key, 0).await?;
        Ok(Response::new(UnlockResponse {
            header: self.core.complete(header),
        }))
    }
}
