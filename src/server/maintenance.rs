//! The `etcdserverpb.Maintenance` service: Status, Hash and HashKV (etcd's definitions: a CRC-32C
//! of the backend in etcd's form, and of the retained key history), Alarm (GET reads the
//! replicated alarm set; ACTIVATE and DEACTIVATE go through raft, see [`super::alarm`]) and
//! MoveLeader, and Defragment (the backend compacted in place while apply and reads wait, as
//! etcd's defragmentation blocks its member), Snapshot (an etcd-format file streamed from one
//! backend read view, see [`super::snapshot`]). Downgrade answers `Unimplemented`.

use super::apply::Applied;
use super::core::{ServerCore, ETCD_API_VERSION};
use super::error::RequestError;
use super::snapshot::{self, export::EtcdExport, HashedChunks};
use crate::mvcc::PlannedHash;
use crate::pb::detcdpb::internal_request::Request as Internal;
use crate::pb::etcdserverpb::maintenance_server::Maintenance;
use crate::pb::etcdserverpb::ResponseHeader;
use crate::pb::etcdserverpb::{alarm_request::AlarmAction, AlarmMember, AlarmType};
use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use crate::storage::bolt::write::BoltWriter;
use futures::stream::{BoxStream, StreamExt as _};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// The Maintenance service.
pub struct MaintenanceService {
    core: Arc<ServerCore>,
}

impl MaintenanceService {
    /// Serves Maintenance on `core`.
    pub fn new(core: Arc<ServerCore>) -> Self {
        MaintenanceService { core }
    }

    /// A HashKV at `revision` planned under the store's lock (the records are hashed after it
    /// is released), with the store's current revision for the header.
    fn plan_hash(&self, revision: i64) -> Result<(PlannedHash, i64), Status> {
        let store = self.core.state.store();
        let planned = store.plan_hash_kv(revision).map_err(RequestError::from)?;
        Ok((planned, store.current_revision()))
    }

    /// Refuses a caller without the `root` role while auth is on, with the bare error etcd's
    /// Maintenance service answers then (see [`crate::auth::AuthError::unconverted`]).
    fn admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.core.admin(request).map_err(|e| e.unconverted())?;
        Ok(())
    }

    /// A view of the backend once it reflects every entry applied when this was called (the
    /// apply task commits its batches within a few milliseconds).
    async fn settled_export(&self) -> Result<EtcdExport, Status> {
        let applied = self.core.state.applied_index();
        let deadline = tokio::time::Instant::now() + self.core.request_timeout;
        loop {
            let export = EtcdExport::open(&self.core.state).map_err(internal)?;
            if export.consistent_index().map_err(internal)? >= applied {
                return Ok(export);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RequestError::Timeout.into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

fn internal(e: crate::storage::StorageError) -> Status {
    RequestError::Internal(format!("snapshot: {e}")).into()
}

/// The chunks of a snapshot of `export`: planned and written on a thread of their own in
/// production (reading a large backend takes a while), in place in simulation.
fn snapshot_stream(
    export: EtcdExport,
    header: ResponseHeader,
) -> BoxStream<'static, Result<SnapshotResponse, Status>> {
    let make = move || -> Result<_, crate::storage::StorageError> {
        let writer = BoltWriter::new(export, snapshot::CHUNK_BYTES)?;
        let bytes = writer.file_bytes();
        tracing::info!(bytes, "sending a snapshot");
        Ok(HashedChunks::new(writer, bytes))
    };
    let responses = move || {
        let mut header = Some(header);
        let chunks: Box<dyn Iterator<Item = _> + Send> = match make() {
            Ok(chunks) => Box::new(chunks),
            Err(e) => Box::new(std::iter::once(Err(e))),
        };
        chunks.map(move |item| match item {
            Ok((blob, remaining_bytes)) => Ok(SnapshotResponse {
                header: header.take(),
                remaining_bytes,
                blob: blob.into(),
            }),
            Err(e) => Err(internal(e)),
        })
    };
    #[cfg(not(madsim))]
    {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                for item in responses() {
                    if tx.blocking_send(item).is_err() {
                        break;
                    }
                }
            });
        match spawned {
            Ok(_) => tokio_stream::wrappers::ReceiverStream::new(rx).boxed(),
            Err(e) => {
                let e = RequestError::Internal(format!("snapshot thread: {e}"));
                futures::stream::once(async move { Err(e.into()) }).boxed()
            }
        }
    }
    #[cfg(madsim)]
    futures::stream::iter(responses()).boxed()
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        // etcd's alarm responses carry no header (its applier builds them bare); clients and
        // etcdctl's printers expect that.
        if r.action == AlarmAction::Get as i32 {
            // etcd serves GET through raft: a linearizable read of the alarm set.
            self.core.linearizable_read().await?;
            let alarms = self
                .core
                .state
                .alarms()
                .list()
                .into_iter()
                .filter(|a| r.alarm == AlarmType::None as i32 || a.alarm == r.alarm)
                .collect();
            return Ok(Response::new(AlarmResponse {
                header: None,
                alarms,
            }));
        }
        match self.core.propose(&who, Internal::Alarm(r)).await? {
            Applied::Alarm(resp) => Ok(Response::new(resp)),
            other => {
                Err(RequestError::Internal(format!("unexpected apply result {other:?}")).into())
            }
        }
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let raft = self.core.status();
        let (revision, in_use, size) = {
            let store = self.core.state.store();
            let size = store.backend().file_size();
            (store.current_revision(), store.approx_bytes(), size)
        };
        Ok(Response::new(StatusResponse {
            header: Some(self.core.header(revision)),
            version: ETCD_API_VERSION.to_string(),
            db_size: i64::try_from(size).unwrap_or(i64::MAX),
            leader: raft.leader,
            raft_index: raft.commit,
            raft_term: raft.term,
            raft_applied_index: raft.applied,
            errors: self
                .core
                .state
                .alarms()
                .list()
                .iter()
                .map(AlarmMember::text)
                .collect(),
            db_size_in_use: i64::try_from(in_use).unwrap_or(i64::MAX),
            is_learner: raft.is_learner,
        }))
    }

    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.admin(&request)?;
        // The store's write lock keeps apply and every reader (and so every backend read view)
        // away while the file is rewritten.
        let store = self.core.state.store_mut();
        let (before, after) = store
            .backend()
            .defragment()
            .map_err(|e| RequestError::Internal(format!("defragment: {e}")))?;
        drop(store);
        tracing::info!(before, after, "defragmented the backend");
        // etcd answers with no header (clients such as etcd-client check that).
        Ok(Response::new(DefragmentResponse { header: None }))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.admin(&request)?;
        // As etcd commits its backend first: the hash covers everything applied so far.
        let export = self.settled_export().await?;
        let revision = self.core.state.store().current_revision();
        let hash = snapshot::off_task(move || snapshot::export::hash(&export))
            .await
            .map_err(|e| RequestError::Internal(format!("hash: {e}")))?
            .map_err(internal)?;
        Ok(Response::new(HashResponse {
            header: Some(self.core.header(revision)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        self.admin(&request)?;
        let (planned, revision) = self.plan_hash(request.into_inner().revision)?;
        let (hash, compact_revision) = snapshot::off_task(move || planned.compute())
            .await
            .map_err(|e| RequestError::Internal(format!("hash: {e}")))?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.core.header(revision)),
            hash,
            compact_revision,
        }))
    }

    type SnapshotStream = BoxStream<'static, Result<SnapshotResponse, Status>>;

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.admin(&request)?;
        let export = self.settled_export().await?;
        let header = self.core.header(self.core.state.store().current_revision());
        Ok(Response::new(snapshot_stream(export, header)))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let target = request.into_inner().target_id;
        let status = self.core.status();
        if status.leader != self.core.member_id {
            return Err(RequestError::NotLeader.into());
        }
        let voter = self
            .core
            .state
            .membership()
            .members
            .get(&target)
            .is_some_and(|m| !m.is_learner);
        if !voter {
            return Err(RequestError::BadLeaderTransferee.into());
        }
        if target == self.core.member_id {
            // Already the leader: nothing moves, and etcd answers with no header.
            return Ok(Response::new(MoveLeaderResponse { header: None }));
        }
        self.core.transfer_leadership(target).await?;
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.core.header(0)),
        }))
    }

    async fn downgrade(
        &self,
        _: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(RequestError::Unimplemented("Downgrade").into())
    }
}
