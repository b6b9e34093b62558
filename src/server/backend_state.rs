//! What the replicated state keeps in the backend besides key history, and how a member's
//! state is rebuilt from the backend at start.
//!
//! Owns the `meta`, `lease` and `members` records (etcd's bucket and key names):
//! * `meta/consistent_index`: the raft index of the last entry the backend reflects, written in
//!   the same transaction as that entry's changes; a restart replays the WAL only past it.
//! * `lease/<id: 8 bytes big endian>`: the granted TTL (8 bytes big endian). Which keys a lease
//!   holds is not stored: it is rebuilt from the keys' own lease fields, as etcd does.
//! * `members/members`: the member table (bincode).
//! * `alarm/<member id: 8 bytes big endian><alarm type: 4 bytes big endian>`: a raised alarm.
//! * `auth/store`: the whole auth state (bincode; users and roles are few and small).
//!
//! Invariant: after [`load`], the store, lease table and member table are exactly what the last
//! durable flush committed, and the returned index is the consistent index of that flush. A
//! [`BackendImage`] (a raft snapshot's image) is one read view of the whole backend, so its
//! index is the consistent index committed with exactly the state it holds.

use super::alarm::Alarms;
use super::membership::Membership;
use crate::auth::AuthStore;
use crate::lease::Lessor;
use crate::mvcc::{IndexBuilder, Store};
use crate::raft::{ImageChunks, SnapshotImage};
use crate::storage::{dump, Backend, Batch, Bucket, ReadView, StorageError};
use std::collections::BTreeMap;

const CONSISTENT_INDEX: &[u8] = b"consistent_index";
const MEMBERS: &[u8] = b"members";
const AUTH: &[u8] = b"store";

/// State rebuilt from a backend.
pub struct Loaded {
    /// The MVCC store.
    pub store: Store,
    /// The lease table, keys attached.
    pub leases: Lessor,
    /// The member table, if one was ever stored.
    pub membership: Option<Membership>,
    /// Raised alarms.
    pub alarms: Alarms,
    /// Users, roles and the auth switch.
    pub auth: AuthStore,
    /// Raft index the state reflects.
    pub consistent_index: u64,
}

fn corrupt(reason: String) -> StorageError {
    StorageError::Corrupt {
        path: "snap/db".into(),
        offset: 0,
        reason,
    }
}

fn be_i64(bytes: &[u8], what: &str) -> Result<i64, StorageError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| corrupt(format!("{what}: {} bytes, not 8", bytes.len())))?;
    Ok(i64::from_be_bytes(arr))
}

/// The consistent index stored in `view`.
pub fn consistent_index(view: &ReadView) -> Result<u64, StorageError> {
    Ok(match view.get(Bucket::Meta, CONSISTENT_INDEX)? {
        Some(b) => be_i64(&b, "consistent index")? as u64,
        None => 0,
    })
}

/// The whole backend as of one read view: what a raft snapshot sends.
pub struct BackendImage {
    view: ReadView,
    index: u64,
}

impl BackendImage {
    /// An image of everything `backend` has committed.
    pub fn open(backend: &Backend) -> Result<BackendImage, StorageError> {
        let view = backend.read()?;
        let index = consistent_index(&view)?;
        Ok(BackendImage { view, index })
    }
}

impl SnapshotImage for BackendImage {
    fn index(&self) -> u64 {
        self.index
    }

    fn chunks(&self) -> Result<ImageChunks, StorageError> {
        Ok(Box::new(dump::chunks(&self.view)?))
    }
}

/// Rebuilds the replicated state from `backend`.
pub fn load(backend: Backend) -> Result<Loaded, StorageError> {
    let indexed = Store::open_with_leases(backend.clone())?;
    load_with(backend, indexed)
}

/// Rebuilds the replicated state from `backend`, whose key index `index` was fed every
/// history record as they were stored (a snapshot image being loaded).
pub fn load_indexed(backend: Backend, index: IndexBuilder) -> Result<Loaded, StorageError> {
    load_with(backend, index.finish()?)
}

/// The replicated state in `backend`, given its store and the keys holding leases.
fn load_with(
    backend: Backend,
    (store, leased): (Store, BTreeMap<Vec<u8>, i64>),
) -> Result<Loaded, StorageError> {
    let view = backend.read()?;
    let consistent_index = consistent_index(&view)?;
    let membership = membership_in(&view)?;
    let auth = auth_in(&view)?;
    let mut leases = Lessor::default();
    for item in view.range(Bucket::Lease, &[], None)? {
        let (id, ttl) = item?;
        let (id, ttl) = lease_of_pair(&id, &ttl)?;
        // Ids are unique keys, so a grant cannot collide.
        let _ = leases.grant(id, ttl);
    }
    let mut raised = Vec::new();
    for item in view.range(Bucket::Alarm, &[], None)? {
        let (key, _) = item?;
        raised.push(alarm_of_key(&key)?);
    }
    for (key, lease) in leased {
        leases.reattach(&key, 0, lease);
    }
    Ok(Loaded {
        store,
        leases,
        membership,
        alarms: Alarms::from_pairs(raised),
        auth,
        consistent_index,
    })
}

/// The member table stored in `view`, if one was ever stored.
pub fn membership_in(view: &ReadView) -> Result<Option<Membership>, StorageError> {
    match view.get(Bucket::Members, MEMBERS)? {
        Some(b) => Ok(Some(
            bincode::serde::decode_from_slice(&b, bincode::config::standard())
                .map_err(|e| corrupt(format!("member table: {e}")))?
                .0,
        )),
        None => Ok(None),
    }
}

/// The auth state stored in `view` (the initial one if none was stored).
pub fn auth_in(view: &ReadView) -> Result<AuthStore, StorageError> {
    match view.get(Bucket::Auth, AUTH)? {
        Some(b) => Ok(
            bincode::serde::decode_from_slice(&b, bincode::config::standard())
                .map_err(|e| corrupt(format!("auth state: {e}")))?
                .0,
        ),
        None => Ok(AuthStore::default()),
    }
}

/// The `auth` pair of an auth state.
pub fn auth_pair(auth: &AuthStore) -> (Vec<u8>, Vec<u8>) {
    let bytes = bincode::serde::encode_to_vec(auth, bincode::config::standard())
        .expect("an auth state always encodes");
    (AUTH.to_vec(), bytes)
}

/// Records the auth state in `batch`.
pub fn put_auth(batch: &mut Batch, auth: &AuthStore) {
    let (key, value) = auth_pair(auth);
    batch.put(Bucket::Auth, key, value);
}

/// The lease id and TTL of a `lease` pair.
pub fn lease_of_pair(key: &[u8], value: &[u8]) -> Result<(i64, i64), StorageError> {
    Ok((be_i64(key, "lease id")?, be_i64(value, "lease ttl")?))
}

/// The `lease` pair of a lease.
pub fn lease_pair(id: i64, ttl: i64) -> (Vec<u8>, Vec<u8>) {
    (id.to_be_bytes().to_vec(), ttl.to_be_bytes().to_vec())
}

/// The member id and alarm type of an `alarm` key.
pub fn alarm_of_key(key: &[u8]) -> Result<(u64, i32), StorageError> {
    if key.len() != 12 {
        return Err(corrupt(format!("alarm key of {} bytes", key.len())));
    }
    let member = u64::from_be_bytes(key[..8].try_into().expect("8 bytes"));
    let alarm = i32::from_be_bytes(key[8..].try_into().expect("4 bytes"));
    Ok((member, alarm))
}

/// The `meta` pair of a consistent index.
pub fn consistent_index_pair(index: u64) -> (Vec<u8>, Vec<u8>) {
    (CONSISTENT_INDEX.to_vec(), index.to_be_bytes().to_vec())
}

/// The `members` pair of a member table.
pub fn membership_pair(membership: &Membership) -> (Vec<u8>, Vec<u8>) {
    let bytes = bincode::serde::encode_to_vec(membership, bincode::config::standard())
        .expect("a member table always encodes");
    (MEMBERS.to_vec(), bytes)
}

/// Records the consistent index in `batch`.
pub fn put_consistent_index(batch: &mut Batch, index: u64) {
    let (key, value) = consistent_index_pair(index);
    batch.put(Bucket::Meta, key, value);
}

/// Records a granted lease in `batch`.
pub fn put_lease(batch: &mut Batch, id: i64, ttl: i64) {
    let (key, value) = lease_pair(id, ttl);
    batch.put(Bucket::Lease, key, value);
}

/// Records a revoked lease in `batch`.
pub fn delete_lease(batch: &mut Batch, id: i64) {
    batch.delete(Bucket::Lease, id.to_be_bytes().to_vec());
}

/// Records the member table in `batch`.
pub fn put_membership(batch: &mut Batch, membership: &Membership) {
    let (key, value) = membership_pair(membership);
    batch.put(Bucket::Members, key, value);
}

/// The `alarm` key of a raised alarm.
pub fn alarm_key(member: u64, alarm: i32) -> Vec<u8> {
    let mut key = member.to_be_bytes().to_vec();
    key.extend_from_slice(&alarm.to_be_bytes());
    key
}

/// Records a raised alarm in `batch`.
pub fn put_alarm(batch: &mut Batch, member: u64, alarm: i32) {
    batch.put(Bucket::Alarm, alarm_key(member, alarm), Vec::new());
}

/// Records a lowered alarm in `batch`.
pub fn delete_alarm(batch: &mut Batch, member: u64, alarm: i32) {
    batch.delete(Bucket::Alarm, alarm_key(member, alarm));
}
