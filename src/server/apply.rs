//! The replicated state machine: what every member does with a committed raft entry.
//!
//! Entries hold a protobuf `detcdpb.InternalRequest`; applying one mutates the MVCC store or the
//! member table deterministically (same log ⇒ same state and same results on every member).
//! Lock order (see [`lock_rank`](super::lock_rank)): `store`, then `leases`, then `membership`,
//! then `alarms`, then `auth` (store, then tokens), then the leader's expiry clock
//! (`ServerCore::clock`); every guard is taken through [`Ranked::acquire`], which panics on an
//! out-of-order acquisition in debug builds. Guards are never held across an await, and
//! preferably never two at once. The backend's own locks (redb's
//! writer lock, taken only by this apply path) rank after all of these: a flush commits while
//! holding the store's write lock, so readers see history and key index change together; the
//! fsync of a durable flush runs after that lock is released.
//!
//! Persistence: applied changes reach the backend at every flush, with the raft index they reach
//! (`applied_index`, the backend's consistent index) in the same transaction; the raft node
//! flushes once per Ready and durably at snapshot points and on a clean stop. After a crash the
//! backend holds the state of its last durable flush and the WAL replays the entries after it.
//!
//! Space: while a NOSPACE alarm is raised, requests that need space (see [`super::alarm`]) are
//! refused at apply on every member, so the log stays deterministic however each member's
//! quota check went.

use super::alarm::{self, Alarms};
use super::auth::apply as auth_apply;
use super::auth::state::AuthState;
use super::backend_state::{self, BackendImage, Loaded};
use super::error::RequestError;
use super::lock_rank::{Rank, Ranked};
use super::membership::Membership;
use super::txn;
use crate::auth::AuthInfo;
use crate::lease::Lessor;
use crate::mvcc::{IndexBuilder, Store};
use crate::pb::detcdpb::{internal_request::Request, InternalRequest};
use crate::pb::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmResponse, AlarmType, CompactionResponse,
    DeleteRangeResponse, LeaseGrantResponse, LeaseRevokeResponse, PutResponse, ResponseHeader,
    TxnResponse,
};
use crate::raft::{RestoreError, SnapshotImage, StateMachine};
use crate::storage::{dump, Backend, Batch, Bucket, StorageError};
use prost::Message as _;
use raft::eraftpb::{ConfChangeV2, ConfState};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The state every member replicates, shared with the RPC handlers.
///
/// Its locks rank `store` < `leases` < `membership` < `alarms` < `auth` (its store, then its
/// tokens) < `ServerCore`'s expiry clock: a thread holding one may only take a later one
/// ([`super::lock_rank`]).
pub struct ReplicatedState {
    /// The MVCC store; rank [`Rank::Store`] (first).
    store: RwLock<Store>,
    /// The lease table; rank [`Rank::Leases`] (after the store).
    leases: RwLock<Lessor>,
    /// The member table; rank [`Rank::Membership`] (after the lease table).
    membership: RwLock<Membership>,
    /// The raised alarms; rank [`Rank::Alarms`] (after the member table).
    alarms: RwLock<Alarms>,
    /// Users, roles and tokens; ranks [`Rank::Auth`] and [`Rank::Tokens`] (after the alarms).
    pub auth: AuthState,
    /// Woken after every apply that moves the revision (watchers wait on it). A `Notify`, not
    /// a `watch` channel: tokio's `watch` picks among wakers with a process-global RNG, which
    /// would break simulation replay.
    revision_changed: tokio::sync::Notify,
    /// Woken after a flush leaves no compacted record to delete (physical compactions wait
    /// on it).
    compaction_drained: tokio::sync::Notify,
    /// The revision last announced through `revision_changed`.
    announced: std::sync::atomic::AtomicI64,
    /// Raft index of the last entry the state reflects (the backend's consistent index once
    /// flushed). Changed only under the store's write lock.
    applied_index: AtomicU64,
    /// The store's used size ([`Store::approx_bytes`]) as of `applied_index`, for the quota
    /// check every write proposal makes without taking the store lock.
    used_bytes: AtomicU64,
}

impl ReplicatedState {
    /// State for a brand-new cluster, held in memory (tests).
    pub fn new(membership: Membership) -> Self {
        Self::from_loaded(
            Loaded {
                store: Store::new(),
                leases: Lessor::default(),
                membership: None,
                alarms: Alarms::default(),
                auth: Default::default(),
                consistent_index: 0,
            },
            membership,
        )
    }

    /// State rebuilt from a backend; `bootstrap` is the member table when none was stored.
    pub fn from_loaded(loaded: Loaded, bootstrap: Membership) -> Self {
        let announced = std::sync::atomic::AtomicI64::new(loaded.store.current_revision());
        let used_bytes = AtomicU64::new(loaded.store.approx_bytes() as u64);
        ReplicatedState {
            store: RwLock::new(loaded.store),
            leases: RwLock::new(loaded.leases),
            membership: RwLock::new(loaded.membership.unwrap_or(bootstrap)),
            alarms: RwLock::new(loaded.alarms),
            auth: AuthState::new(loaded.auth),
            revision_changed: tokio::sync::Notify::new(),
            compaction_drained: tokio::sync::Notify::new(),
            announced,
            applied_index: AtomicU64::new(loaded.consistent_index),
            used_bytes,
        }
    }

    /// The store's used size as of the last applied entry.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Acquire)
    }

    /// Records that `store` now reflects raft index `index` (call with the store's write lock
    /// held, so readers of the store see a matching index and size).
    fn publish_applied(&self, store: &Store, index: u64) {
        self.applied_index.store(index, Ordering::Release);
        self.used_bytes
            .store(store.approx_bytes() as u64, Ordering::Release);
    }

    /// Raft index of the last entry the state reflects.
    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(Ordering::Acquire)
    }

    /// An image of the whole state for a raft snapshot (a read view of the backend; see
    /// [`BackendImage`]).
    pub fn snapshot_image(&self) -> Result<Arc<dyn SnapshotImage>, StorageError> {
        Ok(Arc::new(BackendImage::open(&self.backend())?))
    }

    /// Completes once no record removed by compaction is left in the backend.
    pub async fn compaction_drained(&self) {
        loop {
            let drained = self.compaction_drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.store().compaction_backlog() == 0 {
                return;
            }
            drained.await;
        }
    }

    /// The backend underneath the store.
    pub fn backend(&self) -> Backend {
        self.store().backend().clone()
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

    /// Read access to the raised alarms.
    pub fn alarms(&self) -> Ranked<RwLockReadGuard<'_, Alarms>> {
        read_ranked(Rank::Alarms, &self.alarms)
    }

    fn alarms_mut(&self) -> Ranked<RwLockWriteGuard<'_, Alarms>> {
        write_ranked(Rank::Alarms, &self.alarms)
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
    /// An alarm change: the alarms it changed.
    Alarm(AlarmResponse),
    /// Anything without a client-visible response (member attributes, conf changes).
    Done,
}

/// What a proposer gets back.
pub type ApplyResult = Result<Applied, RequestError>;

/// Applies committed entries to a [`ReplicatedState`].
pub struct EtcdStateMachine {
    state: Arc<ReplicatedState>,
    /// Lease and member changes applied since the last flush.
    batch: Batch,
    /// Told the member table after every change to it (the peer transport follows it).
    on_members_changed: Option<MembersChanged>,
}

/// What the machine calls with the member table after a change to it.
pub type MembersChanged = Box<dyn Fn(&Membership) + Send>;

impl EtcdStateMachine {
    /// A machine applying to `state`.
    pub fn new(state: Arc<ReplicatedState>) -> Self {
        EtcdStateMachine {
            state,
            batch: Batch::default(),
            on_members_changed: None,
        }
    }

    /// Calls `listener` with the member table after every change to it.
    pub fn on_members_changed(&mut self, listener: MembersChanged) {
        self.on_members_changed = Some(listener);
    }

    fn members_changed(&self) {
        if let Some(listener) = &self.on_members_changed {
            // Called on a copy: the listener takes the transport's locks.
            let table = self.state.membership().clone();
            listener(&table);
        }
    }

    fn record_membership(&mut self) {
        backend_state::put_membership(&mut self.batch, &self.state.membership());
    }

    /// Raises or lowers an alarm; the response lists it if it changed anything (etcd answers
    /// an ACTIVATE with the alarm even when it was already raised).
    fn apply_alarm(&mut self, a: &AlarmRequest) -> AlarmResponse {
        let member = crate::pb::etcdserverpb::AlarmMember {
            member_id: a.member_id,
            alarm: a.alarm,
        };
        let mut alarms = self.state.alarms_mut();
        let listed = match AlarmAction::try_from(a.action) {
            // Raising "no alarm" changes nothing (etcd ignores it too).
            Ok(AlarmAction::Activate) if a.alarm == AlarmType::None as i32 => false,
            Ok(AlarmAction::Activate) => {
                alarms.activate(a.member_id, a.alarm);
                backend_state::put_alarm(&mut self.batch, a.member_id, a.alarm);
                true
            }
            Ok(AlarmAction::Deactivate) => {
                let removed = alarms.deactivate(a.member_id, a.alarm);
                if removed {
                    backend_state::delete_alarm(&mut self.batch, a.member_id, a.alarm);
                }
                removed
            }
            Ok(AlarmAction::Get) | Err(_) => false,
        };
        AlarmResponse {
            header: None,
            alarms: if listed { vec![member] } else { Vec::new() },
        }
    }

    /// Commits what was applied since the last commit to the backend with the applied index
    /// (durably if asked: the fsync happens without the store lock). A commit made only to
    /// delete compacted records on an idle tick (`compaction_only`) deletes a larger batch.
    fn commit(&mut self, durable: bool, compaction_only: bool) -> Result<(), StorageError> {
        let mut batch = std::mem::take(&mut self.batch);
        let mut store = self.state.store_mut();
        backend_state::put_consistent_index(&mut batch, self.state.applied_index());
        #[cfg(madsim)]
        if crate::fault::active(crate::fault::Bug::BackendIndexAhead) {
            store.backend().commit(std::mem::take(&mut batch), true)?;
        }
        // Visible to readers at once.
        if compaction_only {
            store.flush_compaction(batch)?;
        } else {
            store.flush(batch, false)?;
        }
        // The commit may have deleted compacted records: the used size shrank.
        self.state
            .publish_applied(&store, self.state.applied_index());
        let drained = store.compaction_backlog() == 0;
        let backend = store.backend().clone();
        drop(store);
        if drained {
            self.state.compaction_drained.notify_waiters();
        }
        if durable {
            backend.commit(Batch::default(), true)?;
        }
        Ok(())
    }

    fn mark_applied(&self, index: u64) {
        // Under the store lock, so a reader of the store sees a matching index.
        let store = self.state.store_mut();
        self.state.publish_applied(&store, index);
    }

    /// Applies `request`; `who` sent it (None: the server itself), checked first while auth is
    /// enabled.
    fn apply_request(&mut self, request: Request, who: Option<&AuthInfo>) -> ApplyResult {
        if let (Some(who), true) = (who, self.state.auth.enabled()) {
            auth_apply::check_write(&self.state, who, &request)?;
        }
        if alarm::cost(&request) > 0 && self.state.alarms().no_space() {
            #[cfg(madsim)]
            if crate::fault::active(crate::fault::Bug::NoSpaceKeepsWrite) {
                let _ = self.apply_unchecked(request, who);
            }
            return Err(RequestError::NoSpace);
        }
        self.apply_unchecked(request, who)
    }

    fn apply_unchecked(&mut self, request: Request, who: Option<&AuthInfo>) -> ApplyResult {
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
                backend_state::put_lease(&mut self.batch, g.id, g.ttl);
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
                backend_state::delete_lease(&mut self.batch, r.id);
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
            Request::Alarm(a) => Ok(Applied::Alarm(self.apply_alarm(&a))),
            Request::Auth(bytes) => {
                auth_apply::apply(&self.state, &mut self.batch, who, &bytes)?;
                Ok(Applied::Done)
            }
            Request::MemberAttributes(a) => {
                self.state
                    .membership_mut()
                    .set_attributes(a.member_id, &a.name, &a.client_urls);
                self.record_membership();
                Ok(Applied::Done)
            }
        }
    }
}

impl StateMachine for EtcdStateMachine {
    type Output = ApplyResult;

    fn applied_index(&self) -> u64 {
        self.state.applied_index()
    }

    fn apply(&mut self, index: u64, data: &[u8]) -> ApplyResult {
        let result = match InternalRequest::decode(data) {
            Ok(InternalRequest {
                request: Some(request),
                auth_header,
            }) => {
                let who = auth_header.as_ref().map(auth_apply::caller_of);
                self.apply_request(request, who.as_ref())
            }
            Ok(InternalRequest { request: None, .. }) => Ok(Applied::Done),
            Err(e) => {
                tracing::error!(index, error = %e, "undecodable raft entry skipped");
                Err(RequestError::Internal(format!(
                    "undecodable entry {index}: {e}"
                )))
            }
        };
        self.mark_applied(index);
        self.state.publish_revision();
        result
    }

    fn apply_conf_change(
        &mut self,
        index: u64,
        change: &ConfChangeV2,
        conf: &ConfState,
    ) -> ApplyResult {
        super::reconfig::apply_change(&mut self.state.membership_mut(), change, conf);
        self.record_membership();
        self.members_changed();
        self.mark_applied(index);
        Ok(Applied::Done)
    }

    fn flush(&mut self, durable: bool) -> Result<(), StorageError> {
        self.commit(durable, false)
    }

    fn tick(&mut self, idle: bool) -> Result<(), StorageError> {
        if self.state.store().compaction_backlog() > 0 {
            self.commit(false, idle)?;
        }
        Ok(())
    }

    fn restore(&mut self, index: u64, image: &mut dyn Read) -> Result<(), RestoreError> {
        if index <= self.state.applied_index() {
            // The state already reflects the snapshot (a restart after installing it).
            return Ok(());
        }
        // Changes not flushed yet are superseded by the image.
        self.batch = Batch::default();
        {
            // Readers wait until the store, the tables and the index change together.
            let mut store = self.state.store_mut();
            let backend = store.backend().clone();
            // The key index is built from the history records as they go into the backend.
            let mut key_index = IndexBuilder::new(backend.clone());
            let image_pairs = dump::read(image)?.map(|item| {
                let (bucket, key, value) = item?;
                if bucket == Bucket::Key {
                    key_index.add_record(&key, &value)?;
                }
                Ok((bucket, key, value))
            });
            let pairs = backend.replace_all(image_pairs)?;
            let loaded = backend_state::load_indexed(backend, key_index)?;
            if loaded.consistent_index != index {
                return Err(RestoreError::IndexMismatch {
                    image: loaded.consistent_index,
                    snapshot: index,
                });
            }
            tracing::info!(
                index,
                pairs,
                revision = loaded.store.current_revision(),
                keys = loaded.store.key_count(),
                "restored the state from a snapshot image"
            );
            *store = loaded.store;
            *self.state.leases_mut() = loaded.leases;
            if let Some(membership) = loaded.membership {
                *self.state.membership_mut() = membership;
            }
            *self.state.alarms_mut() = loaded.alarms;
            self.state.auth.update(|auth| *auth = loaded.auth);
            self.state.publish_applied(&store, index);
        }
        // Outside the store lock: the listener takes the transport's locks.
        self.members_changed();
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
