//! etcd's `v3electionpb.Election` service: Campaign blocks until the caller leads, Proclaim
//! changes the leader's value, Leader reads the current leader, Observe streams every change of
//! leader or value, Resign steps down. Same recipe as the lock ([`super::recipe`]): the
//! contender with the lowest create revision under `name/` leads.

use super::core::ServerCore;
use super::error::RequestError;
use super::range::to_proto;
use super::recipe;
use crate::mvcc::{EventKind, KeyValue, MvccError};
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
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        let key = recipe::own_key(&r.name, r.lease);
        let (created, existing) =
            recipe::create_key(&self.core, &who, &key, &r.value, r.lease).await?;
        if existing.is_some_and(|v| v != r.value.as_ref()) {
            recipe::put_if_created_at(&self.core, &who, &key, created, &r.value, r.lease).await?;
        }
        let guard = recipe::AbandonGuard::new(self.core.clone(), who.clone(), key.clone(), created);
        let prefix = recipe::prefix(&r.name);
        recipe::wait_for_turn(&self.core, &who, &prefix, &key, created).await?;
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
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        let leader = r.leader.ok_or(RequestError::MissingLeaderKey)?;
        let (key, rev, lease) = (&leader.key, leader.rev, leader.lease);
        let (ok, header) =
            recipe::put_if_created_at(&self.core, &who, key, rev, &r.value, lease).await?;
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
        let who = self.core.caller(&request)?;
        let prefix = recipe::prefix(&request.into_inner().name);
        let kv = recipe::holder(&self.core, &who, &prefix)
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
        let who = self.core.caller(&request)?;
        let prefix = recipe::prefix(&request.into_inner().name);
        recipe::check_prefix_read(&self.core, &who, &prefix)?;
        let core = self.core.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let mut observer = Observer {
            core,
            prefix,
            leader: None,
            next: 0,
        };
        // Establish the starting point before answering, so every change made after Observe
        // returns is reported.
        let first = observer.step().await?;
        tokio::spawn(async move { observer.run(tx, first).await });
        Ok(Response::new(
            tokio_stream::wrappers::ReceiverStream::new(rx).boxed(),
        ))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let who = self.core.caller(&request)?;
        let leader = request
            .into_inner()
            .leader
            .ok_or(RequestError::MissingLeaderKey)?;
        let header = recipe::delete_key(&self.core, &who, &leader.key, leader.rev).await?;
        Ok(Response::new(ResignResponse {
            header: self.core.complete(header),
        }))
    }
}

type ObserveOut = tokio::sync::mpsc::Sender<Result<LeaderResponse, Status>>;

/// Follows an election the way etcd's Observe does: the current leader first; then every value
/// the leader proclaims (from the history of its key, so none is skipped); when the leader's
/// key goes, the next contender whose key appears under the prefix.
struct Observer {
    core: Arc<ServerCore>,
    prefix: Vec<u8>,
    /// The leader's key, once known.
    leader: Option<Vec<u8>>,
    /// The first revision not yet looked at.
    next: i64,
}

impl Observer {
    async fn run(&mut self, tx: ObserveOut, first: Vec<KeyValue>) {
        let core = self.core.clone();
        let mut pending = Some(first);
        loop {
            let changed = core.state.revision_changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (step, was_first) = match pending.take() {
                Some(first) => (Ok(first), true),
                None => (self.step().await, false),
            };
            let found = match step {
                Ok(found) => found,
                Err(e) => {
                    let _ = tx.send(Err(Status::from(e))).await;
                    return;
                }
            };
            for kv in found {
                let revision = core.state.store().current_revision();
                let resp = LeaderResponse {
                    header: Some(core.header(revision)),
                    kv: Some(to_proto(kv, false)),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
            if !was_first {
                // (After the first step, look again at once: it ran before `changed` existed.)
                changed.await;
            }
        }
    }

    /// The leader values to report since the last step.
    async fn step(&mut self) -> Result<Vec<KeyValue>, RequestError> {
        self.core.linearizable_read().await?;
        let core = self.core.clone();
        let store = core.state.store();
        let current = store.current_revision();
        let end = recipe::prefix_end(&self.prefix);
        if self.next == 0 {
            self.next = current + 1;
            return Ok(self.take_holder(&store, current)?.into_iter().collect());
        }
        let mut out = Vec::new();
        while self.next <= current {
            let (key, range_end) = match &self.leader {
                Some(key) => (key.clone(), Vec::new()),
                None => (self.prefix.clone(), end.clone()),
            };
            let events = match store.events_since(&key, &range_end, self.next) {
                Ok(events) => events,
                Err(MvccError::Compacted) => {
                    // The history is gone: carry on from the current holder.
                    self.next = current + 1;
                    out.extend(self.take_holder(&store, current)?);
                    return Ok(out);
                }
                Err(e) => return Err(e.into()),
            };
            self.next = current + 1;
            for e in events {
                let at = e.kv.mod_revision;
                match (e.kind, self.leader.is_some()) {
                    (EventKind::Put, true) => out.push(e.kv),
                    (EventKind::Put, false) => {
                        // First contender after a time without any: it leads.
                        self.leader = Some(e.kv.key.clone());
                        out.push(e.kv);
                        self.next = at + 1;
                        break;
                    }
                    (EventKind::Delete, true) => {
                        // The leader went: its successor is the oldest contender left then.
                        out.extend(self.take_holder(&store, at)?);
                        self.next = at + 1;
                        break;
                    }
                    (EventKind::Delete, false) => {}
                }
            }
        }
        Ok(out)
    }

    /// Makes the oldest contender at `revision` the leader and returns its key-value then.
    fn take_holder(
        &mut self,
        store: &crate::mvcc::Store,
        revision: i64,
    ) -> Result<Option<KeyValue>, RequestError> {
        let all = store.range(&self.prefix, &recipe::prefix_end(&self.prefix), revision, 0)?;
        let holder = all.kvs.into_iter().min_by_key(|kv| kv.create_revision);
        self.leader = holder.as_ref().map(|kv| kv.key.clone());
        Ok(holder)
    }
}
