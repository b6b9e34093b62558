//! The `etcdserverpb.KV` service: Range, Put, DeleteRange, Txn, Compact.
//!
//! Writes go through raft; linearizable reads wait for a ReadIndex and then read local state;
//! serializable reads read local state at once. Read-only txns take the read path. With auth
//! enabled, reads are checked here and writes at apply ([`super::auth::check`]).

use super::apply::Applied;
use super::auth::check;
use super::core::ServerCore;
use super::error::RequestError;
use super::{range, txn, validate};
use crate::pb::detcdpb::internal_request::Request as Internal;
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The KV service.
pub struct KvService {
    core: Arc<ServerCore>,
}

impl KvService {
    /// Serves KV on `core`.
    pub fn new(core: Arc<ServerCore>) -> Self {
        KvService { core }
    }

    fn unexpected(applied: Applied) -> Status {
        RequestError::Internal(format!("unexpected apply result {applied:?}")).into()
    }
}

fn is_read_only(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(Op::RequestRange(_)) | None => true,
            Some(Op::RequestTxn(nested)) => is_read_only(nested),
            Some(Op::RequestPut(_)) | Some(Op::RequestDeleteRange(_)) => false,
        })
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        validate::range(&r)?;
        if !r.serializable {
            self.core.linearizable_read().await?;
        }
        self.core
            .check_read(&who, |auth, who| check::range(auth, who, &r))?;
        let mut resp =
            range::execute(&range::Unlocked(&self.core.state), &r).map_err(RequestError::from)?;
        self.core.recheck_read(&who)?;
        resp.header = self.core.complete(resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        validate::put(&r)?;
        match self.core.propose(&who, Internal::Put(r)).await? {
            Applied::Put(mut resp) => {
                resp.header = self.core.complete(resp.header);
                Ok(Response::new(resp))
            }
            other => Err(Self::unexpected(other)),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        validate::delete_range(&r)?;
        match self.core.propose(&who, Internal::DeleteRange(r)).await? {
            Applied::DeleteRange(mut resp) => {
                resp.header = self.core.complete(resp.header);
                Ok(Response::new(resp))
            }
            other => Err(Self::unexpected(other)),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        validate::txn(&r, &self.core.limits)?;
        let mut resp = if is_read_only(&r) {
            self.core.linearizable_read().await?;
            self.core
                .check_read(&who, |auth, who| check::txn(auth, who, &r))?;
            let resp = txn::read_only_txn(&self.core.state.store(), &r)?;
            self.core.recheck_read(&who)?;
            resp
        } else {
            match self.core.propose(&who, Internal::Txn(r)).await? {
                Applied::Txn(resp) => resp,
                other => return Err(Self::unexpected(other)),
            }
        };
        resp.header = self.core.complete(resp.header);
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        let physical = r.physical;
        match self.core.propose(&who, Internal::Compaction(r)).await? {
            Applied::Compaction(mut resp) => {
                if physical {
                    // As etcd: answer once the old revisions are gone from the backend.
                    let drained = self.core.state.compaction_drained();
                    tokio::time::timeout(self.core.request_timeout, drained)
                        .await
                        .map_err(|_| Status::from(RequestError::Timeout))?;
                }
                resp.header = self.core.complete(resp.header);
                Ok(Response::new(resp))
            }
            other => Err(Self::unexpected(other)),
        }
    }
}
