//! The replicated state machine: what every member does with a committed raft entry.
//!
//! Entries hold a protobuf `detcdpb.InternalRequest`; applying one mutates the MVCC store or the
//! member table deterministically (same log ⇒ same state and same results on every member).
//! Lock order (see [`lock_rank`](super::lock_rank)): `store`, then `leases`, then `membership`,
//! then the leader's expiry clock (`ServerCore::clock`); every guard is taken through
//! [`Ranked::acquire`], which panics on an out-of-order acquisition in debug builds. Guards are
//! never held across an await, and preferably never two at once.

use super::error::RequestError;
use super::lock_rank::{Rank, Ranked};
use super::membership::Membership;
use super::txn;
use crate::lease::Lessor;
use crate::mvcc::{Store, StoreSnapshot};
use crate::pb::detcdpb::{internal_request::Request, InternalRequest};
use crate::pb::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseRevokeResponse, PutResponse,
    ResponseHeader, TxnResponse,
};
use crate::raft::StateMachine;
use prost::Message as _;
use raft::eraftpb::{ConfChangeType, ConfChangeV2, ConfState};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The state every member replicates, shared with the RPC handlers.
///
/// Its three locks rank `store` < `leases` < `membership` (< `ServerCore`'s expiry clock): a
/// thread holding one may only take a later one ([`super::lock_rank`]).
pub struct ReplicatedState {
    /// The MVCC store; rank [`Rank::Store`] (first).
    store: RwLock<Store>,
    /// The lease table; rank [`Rank::Leases`] (after the store).
    leases: RwLock<Lessor>,
    /// The member table; rank [`Rank::Membership`] (after the lease table).
    membership: RwLock<Membership>,
    /// Woken after every apply that moves the revision (watchers wait on it). A `Notify`, not
    /// a `watch` channel: tokio's `watch` picks among wakers with a process-global RNG, which
    /// would break simulation replay.
    revision_changed: tokio::sync::Notify,
    /// The revision last announced through `revision_changed`.
    announced: std::sync::atomic::AtomicI64,
}

impl ReplicatedState {
    /// State for a brand-new cluster.
    pub fn new(membership: Membership) -> Self {
        let store = Store::new();
        let announced = std::sync::atomic::AtomicI64::new(store.current_revision());
        ReplicatedState {
            store: RwLock::new(store),
            leases: RwLock::new(Lessor::default()),
            membership: RwLock::new(membership),
            revision_changed: tokio::sync::Notify::new(),
            announced,
        }
    }

    /// Completes after the applied revision next moves. Enable it (or poll it once) *before*
    /// reading the store, so no change between the read and the wait is missed.
    pub fn revision_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.revision_changed.notified()
    }

    fn publish_revision(&self) {
        use std::sync::atomic::Ordering;
        let current = self.store().current_revision();
        if self.announced.swap(current, Ordering::AcqRel) != current {
            self.revision_changed.notify_waiters();
        }
    }

    /// Read access to the key-value store.
    pub fn store(&self) -> Ranked<RwLockReadGuard<'_, Store>> {
        read_ranked(Rank::Store, &self.store)
    }

    /// Write access to the key-value store (apply path, and read-only txns).
    pub fn store_mut(&self) -> Ranked<RwLockWriteGuard<'_, Store>> {
        write_ranked(Rank::Store, &self.store)
    }

    /// Read access to the lease table.
    pub fn leases(&self) -> Ranked<RwLockReadGuard<'_, Lessor>> {
        read_ranked(Rank::Leases, &self.leases)
    }

    /// Write access to the lease table (apply path, and read-only txns).
    pub fn leases_mut(&self) -> Ranked<RwLockWriteGuard<'_, Lessor>> {
        write_ranked(Rank::Leases, &self.leases)
    }

    /// Read access to the member table.
    pub fn membership(&self) -> Ranked<RwLockReadGuard<'_, Membership>> {
        read_ranked(Rank::Membership, &self.membership)
    }

    fn membership_mut(&self) -> Ranked<RwLockWriteGuard<'_, Membership>> {
        write_ranked(Rank::Membership, &self.membership)
    }
}

/// The result of applying one entry, for the member that proposed it.
#[derive(Debug, Clone)]
pub enum Applied {
    /// A Put.
    Put(PutResponse),
    /// A DeleteRange.
    DeleteRange(DeleteRangeResponse),
    /// A Txn.
    Txn(TxnResponse),
    /// A Compaction.
    Compaction(CompactionResponse),
    /// A lease grant.
    LeaseGrant(LeaseGrantResponse),
    /// A lease revocation.
    LeaseRevoke(LeaseRevokeResponse),
    /// Anything without a client-visible response (member attributes, conf changes).
    Done,
}

/// What a proposer gets back.
pub type ApplyResult = Result<Applied, RequestError>;

/// Snapshot encoding format version.
const SNAPSHOT_FORMAT: u8 = 2;

#[derive(Serialize, Deserialize)]
struct StateImage {
    store: StoreSnapshot,
    leases: Lessor,
    membership: Membership,
}

/// Applies committed entries to a [`ReplicatedState`].
pub struct EtcdStateMachine {
    state: Arc<ReplicatedState>,
}

impl EtcdStateMachine {
    /// A machine applying to `state`.
    pub fn new(state: Arc<ReplicatedState>) -> Self {
        EtcdStateMachine { state }
    }

    fn apply_request(&self, request: Request) -> ApplyResult {
        match request {
            Request::Put(p) => txn::put(
                &mut self.state.store_mut(),
                &mut self.state.leases_mut(),
                &p,
            )
            .map(Applied::Put),
            Request::DeleteRange(d) => Ok(Applied::DeleteRange(txn::delete_range(
                &mut self.state.store_mut(),
                &mut self.state.leases_mut(),
                &d,
            ))),
            Request::Txn(t) => txn::txn(
                &mut self.state.store_mut(),
                &mut self.state.leases_mut(),
                &t,
            )
            .map(Applied::Txn),
            Request::LeaseGrant(g) => {
                let revision = self.state.store().current_revision();
                self.state
                    .leases_mut()
                    .grant(g.id, g.ttl)
                    .map_err(|_| RequestError::LeaseExists)?;
                Ok(Applied::LeaseGrant(LeaseGrantResponse {
                    header: Some(ResponseHeader {
                        revision,
                        ..Default::default()
                    }),
                    id: g.id,
                    ttl: g.ttl,
                    error: String::new(),
                }))
            }
            Request::LeaseRevoke(r) => {
                let revision = txn::revoke(
                    &mut self.state.store_mut(),
                    &mut self.state.leases_mut(),
                    r.id,
                )?;
                Ok(Applied::LeaseRevoke(LeaseRevokeResponse {
                    header: Some(ResponseHeader {
                        revision,
                        ..Default::default()
                    }),
                }))
            }
            Request::Compaction(c) => {
                let mut store = self.state.store_mut();
                store.compact(c.revision)?;
                Ok(Applied::Compaction(CompactionResponse {
                    header: Some(ResponseHeader {
                        revision: store.current_revision(),
                        ..Default::default()
                    }),
                }))
            }
            Request::MemberAttributes(a) => {
                self.state
                    .membership_mut()
                    .set_attributes(a.member_id, &a.name, &a.client_urls);
                Ok(Applied::Done)
            }
        }
    }
}

impl StateMachine for EtcdStateMachine {
    type Output = ApplyResult;

    fn apply(&mut self, index: u64, data: &[u8]) -> ApplyResult {
        match InternalRequest::decode(data) {
            Ok(InternalRequest {
                request: Some(request),
            }) => {
                let result = self.apply_request(request);
                self.state.publish_revision();
                result
            }
            Ok(InternalRequest { request: None }) => Ok(Applied::Done),
            Err(e) => {
                tracing::error!(index, error = %e, "undecodable raft entry skipped");
                Err(RequestError::Internal(format!(
                    "undecodable entry {index}: {e}"
                )))
            }
        }
    }

    fn apply_conf_change(
        &mut self,
        _index: u64,
        change: &ConfChangeV2,
        _conf: &ConfState,
    ) -> ApplyResult {
        let mut membership = self.state.membership_mut();
        for single in change.get_changes() {
            match single.get_change_type() {
                ConfChangeType::RemoveNode => {
                    membership.members.remove(&single.node_id);
                }
                ConfChangeType::AddNode => {
                    if let Some(m) = membership.members.get_mut(&single.node_id) {
                        m.is_learner = false;
                    }
                }
                ConfChangeType::AddLearnerNode => {
                    if let Some(m) = membership.members.get_mut(&single.node_id) {
                        m.is_learner = true;
                    }
                }
            }
        }
        Ok(Applied::Done)
    }

    fn snapshot(&self) -> Vec<u8> {
        let image = StateImage {
            store: self.state.store().to_snapshot(),
            leases: self.state.leases().clone(),
            membership: self.state.membership().clone(),
        };
        let mut out = vec![SNAPSHOT_FORMAT];
        match bincode::serde::encode_to_vec(&image, bincode::config::standard()) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(e) => tracing::error!(error = %e, "snapshot encoding failed"),
        }
        out
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), crate::raft::RestoreError> {
        use crate::raft::RestoreError;
        let (&format, body) = data.split_first().ok_or(RestoreError::Empty)?;
        if format != SNAPSHOT_FORMAT {
            return Err(RestoreError::Format(format));
        }
        let (image, _): (StateImage, usize) =
            bincode::serde::decode_from_slice(body, bincode::config::standard())
                .map_err(|e| RestoreError::Decode(e.to_string()))?;
        *self.state.store_mut() = Store::from_snapshot(image.store);
        *self.state.leases_mut() = image.leases;
        *self.state.membership_mut() = image.membership;
        self.state.publish_revision();
        Ok(())
    }
}

/// Takes `lock` for reading under `rank` (a poisoned lock is still usable: apply never panics
/// half-way through a change).
fn read_ranked<T>(rank: Rank, lock: &RwLock<T>) -> Ranked<RwLockReadGuard<'_, T>> {
    Ranked::acquire(rank, || lock.read().unwrap_or_else(|e| e.into_inner()))
}

/// Takes `lock` for writing under `rank`.
fn write_ranked<T>(rank: Rank, lock: &RwLock<T>) -> Ranked<RwLockWriteGuard<'_, T>> {
    Ranked::acquire(rank, || lock.write().unwrap_or_else(|e| e.into_inner()))
}
