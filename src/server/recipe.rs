//! The server-side recipe behind etcd's Lock and Election services: a key per contender under
//! a common prefix, created with the contender's lease; the contender whose key has the lowest
//! create revision holds the lock / leads. Waiting is done on this member's applied revision
//! and confirmed with a linearizable read, so a turn is only granted on up-to-date state.
//!
//! The create revision of a holder's key is its fencing token: it only grows, so a resource
//! that remembers the highest token it has seen can refuse a stale holder.

use super::apply::Applied;
use super::core::ServerCore;
use super::error::RequestError;
use crate::auth::{AuthInfo, AuthStore, PermKind};
use crate::mvcc::KeyValue;
use crate::pb::detcdpb::internal_request::Request as Internal;
use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::response_op::Response as OpResponse;
use crate::pb::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest,
    TxnResponse,
};
use std::sync::Arc;

/// `name/<lease in hex>`, the key a contender with `lease` owns (etcd's layout).
pub fn own_key(name: &[u8], lease: i64) -> Vec<u8> {
    let mut key = prefix(name);
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    key
}

/// `name/`, under which all contenders' keys live.
pub fn prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// The end of the range holding every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn compare_create(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec().into(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
        ..Default::default()
    }
}

/// Runs a txn through raft as `who` (the recipes act with their client's permissions, as
/// etcd's do).
pub async fn txn(
    core: &ServerCore,
    who: &AuthInfo,
    t: TxnRequest,
) -> Result<TxnResponse, RequestError> {
    match core.propose(who, Internal::Txn(t)).await? {
        Applied::Txn(resp) => Ok(resp),
        other => Err(RequestError::Internal(format!("unexpected {other:?}"))),
    }
}

/// Creates `key = value` with `lease` unless it exists; returns its create revision and
/// whether it already existed (with its value).
pub async fn create_key(
    core: &ServerCore,
    who: &AuthInfo,
    key: &[u8],
    value: &[u8],
    lease: i64,
) -> Result<(i64, Option<Vec<u8>>), RequestError> {
    let put = PutRequest {
        key: key.to_vec().into(),
        value: value.to_vec().into(),
        lease,
        ..Default::default()
    };
    let get = RangeRequest {
        key: key.to_vec().into(),
        ..Default::default()
    };
    let resp = txn(
        core,
        who,
        TxnRequest {
            compare: vec![compare_create(key, 0)],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(put)),
            }],
            failure: vec![RequestOp {
                request: Some(Op::RequestRange(get)),
            }],
        },
    )
    .await?;
    if resp.succeeded {
        return Ok((resp.header.map_or(0, |h| h.revision), None));
    }
    match resp.responses.first().and_then(|r| r.response.as_ref()) {
        Some(OpResponse::ResponseRange(r)) => match r.kvs.first() {
            Some(kv) => Ok((kv.create_revision, Some(kv.value.to_vec()))),
            None => Err(RequestError::Internal("contender key vanished".into())),
        },
        _ => Err(RequestError::Internal("unexpected txn response".into())),
    }
}

/// Puts `value` on `key` only if its create revision is still `revision`; false otherwise.
pub async fn put_if_created_at(
    core: &ServerCore,
    who: &AuthInfo,
    key: &[u8],
    revision: i64,
    value: &[u8],
    lease: i64,
) -> Result<(bool, Option<ResponseHeader>), RequestError> {
    let put = PutRequest {
        key: key.to_vec().into(),
        value: value.to_vec().into(),
        lease,
        ..Default::default()
    };
    let resp = txn(
        core,
        who,
        TxnRequest {
            compare: vec![compare_create(key, revision)],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(put)),
            }],
            failure: vec![],
        },
    )
    .await?;
    Ok((resp.succeeded, resp.header))
}

/// Deletes `key` only if its create revision is still `revision` (0: unconditionally).
pub async fn delete_key(
    core: &ServerCore,
    who: &AuthInfo,
    key: &[u8],
    revision: i64,
) -> Result<Option<ResponseHeader>, RequestError> {
    let del = DeleteRangeRequest {
        key: key.to_vec().into(),
        ..Default::default()
    };
    let compare = if revision > 0 {
        vec![compare_create(key, revision)]
    } else {
        vec![]
    };
    let resp = txn(
        core,
        who,
        TxnRequest {
            compare,
            success: vec![RequestOp {
                request: Some(Op::RequestDeleteRange(del)),
            }],
            failure: vec![],
        },
    )
    .await?;
    Ok(resp.header)
}

/// The key under `prefix` with the lowest create revision (the holder / leader), read
/// linearizably.
pub async fn holder(
    core: &ServerCore,
    who: &AuthInfo,
    prefix: &[u8],
) -> Result<Option<KeyValue>, RequestError> {
    core.linearizable_read().await?;
    check_prefix_read(core, who, prefix)?;
    let store = core.state.store();
    let all = store.range(prefix, &prefix_end(prefix), 0, 0)?;
    Ok(all.kvs.into_iter().min_by_key(|kv| kv.create_revision))
}

/// Refuses `who` unless it may read every key under `prefix`.
pub fn check_prefix_read(
    core: &ServerCore,
    who: &AuthInfo,
    prefix: &[u8],
) -> Result<(), RequestError> {
    let end = prefix_end(prefix);
    let read = |auth: &AuthStore, who: &AuthInfo| auth.check_op(who, PermKind::Read, prefix, &end);
    Ok(core.check_read(who, read)?)
}

/// Waits until the contender whose key was created at `mine` holds the lowest create revision
/// under `prefix`. Fails if its key disappears meanwhile (its lease expired or was revoked).
pub async fn wait_for_turn(
    core: &Arc<ServerCore>,
    who: &AuthInfo,
    prefix: &[u8],
    key: &[u8],
    mine: i64,
) -> Result<(), RequestError> {
    #[cfg(madsim)]
    if crate::fault::active(crate::fault::Bug::LockSkipsQueue) {
        return Ok(());
    }
    loop {
        let changed = core.state.revision_changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        match holder(core, who, prefix).await? {
            Some(kv) if kv.create_revision == mine && kv.key == key => return Ok(()),
            Some(_) => {}
            None => return Err(RequestError::SessionExpired),
        }
        let mine_exists = core
            .state
            .store()
            .range(key, &[], 0, 1)?
            .kvs
            .first()
            .is_some_and(|kv| kv.create_revision == mine);
        if !mine_exists {
            return Err(RequestError::SessionExpired);
        }
        changed.await;
    }
}

/// Deletes a contender's key if its waiter goes away before getting its turn (the client
/// disconnected), as etcd's recipes do.
pub struct AbandonGuard {
    core: Arc<ServerCore>,
    who: AuthInfo,
    key: Vec<u8>,
    revision: i64,
    armed: bool,
}

impl AbandonGuard {
    /// Guards the key created at `revision`.
    pub fn new(core: Arc<ServerCore>, who: AuthInfo, key: Vec<u8>, revision: i64) -> Self {
        AbandonGuard {
            core,
            who,
            key,
            revision,
            armed: true,
        }
    }

    /// The contender got its turn: keep the key.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if self.armed {
            let (core, who, key, revision) = (
                self.core.clone(),
                std::mem::take(&mut self.who),
                std::mem::take(&mut self.key),
                self.revision,
            );
            tokio::spawn(async move {
                let _ = delete_key(&core, &who, &key, revision).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_etcds_layout() {
        assert_eq!(own_key(b"lk", 0x694d), b"lk/694d".to_vec());
        assert_eq!(prefix_end(b"lk/"), b"lk0".to_vec());
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b".to_vec());
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }
}
