//! Applying writes to the MVCC store with etcd's semantics: Put, DeleteRange, Compact, and Txn.
//!
//! A Txn is atomic: first every compare (nested ones included) is evaluated against the state
//! before the txn, fixing which branch runs at each level; then the chosen ops are checked
//! (range revisions, leases, `ignore_*` on missing keys) so that a failing txn changes nothing;
//! only then are the ops executed in one write transaction, sharing one revision.

use super::error::RequestError;
use super::range::{self, RangeSource};
use crate::lease::Lessor;
use crate::mvcc::{KeyValue, MvccError, RangeResult, Store, WriteTxn};
use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::request_op::Request;
use crate::pb::etcdserverpb::response_op::Response;
use crate::pb::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use std::cmp::Ordering;

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// Applies a Put.
pub fn put(
    store: &mut Store,
    leases: &mut Lessor,
    r: &PutRequest,
) -> Result<PutResponse, RequestError> {
    check_put(store, leases, r)?;
    let mut w = store.write();
    let resp = exec_put(&mut w, leases, r);
    w.commit();
    Ok(resp)
}

/// Applies a DeleteRange.
pub fn delete_range(
    store: &mut Store,
    leases: &mut Lessor,
    r: &DeleteRangeRequest,
) -> DeleteRangeResponse {
    let mut w = store.write();
    let resp = exec_delete(&mut w, leases, r);
    w.commit();
    DeleteRangeResponse {
        header: header(store.current_revision()),
        ..resp
    }
}

/// Revokes a lease: the lease and every key attached to it go in one revision.
pub fn revoke(store: &mut Store, leases: &mut Lessor, id: i64) -> Result<i64, RequestError> {
    let keys = leases.revoke(id).map_err(|_| RequestError::LeaseNotFound)?;
    #[cfg(madsim)]
    let keys = if crate::fault::active(crate::fault::Bug::RevokeKeepsKeys) {
        Vec::new()
    } else {
        keys
    };
    let mut w = store.write();
    for key in keys {
        w.delete_range(&key, &[]);
    }
    w.commit();
    Ok(store.current_revision())
}

/// Applies a Txn.
pub fn txn(
    store: &mut Store,
    leases: &mut Lessor,
    r: &TxnRequest,
) -> Result<TxnResponse, RequestError> {
    let mut path = Vec::new();
    choose_branches(store, r, &mut path);
    let mut cursor = path.iter().copied();
    check_txn(store, leases, r, &mut cursor)?;
    let mut w = store.write();
    let mut cursor = path.iter().copied();
    let resp = exec_txn(&mut Applying { w: &mut w, leases }, r, &mut cursor)?;
    w.commit();
    Ok(TxnResponse {
        header: header(store.current_revision()),
        ..resp
    })
}

/// Runs a txn without writes (see `kv::is_read_only`) against the store as it is, under the
/// store's read lock: readers and apply go on beside it.
pub fn read_only_txn(store: &Store, r: &TxnRequest) -> Result<TxnResponse, RequestError> {
    let mut path = Vec::new();
    choose_branches(store, r, &mut path);
    let mut cursor = path.iter().copied();
    let resp = exec_txn(&mut Reading(store), r, &mut cursor)?;
    Ok(TxnResponse {
        header: header(store.current_revision()),
        ..resp
    })
}

/// Records, depth first, whether each (nested) txn's compares hold against the current state.
fn choose_branches(store: &Store, r: &TxnRequest, path: &mut Vec<bool>) {
    let succeeded = r.compare.iter().all(|c| compare_holds(store, c));
    path.push(succeeded);
    let ops = if succeeded { &r.success } else { &r.failure };
    for op in ops {
        if let Some(Request::RequestTxn(t)) = &op.request {
            choose_branches(store, t, path);
        }
    }
}

fn compare_holds(store: &Store, c: &Compare) -> bool {
    let Ok(found) = store.range(&c.key, &c.range_end, 0, 0) else {
        return false;
    };
    let target = CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version);
    if found.kvs.is_empty() {
        return target != CompareTarget::Value && compare_kv(c, target, &KeyValue::default());
    }
    found.kvs.iter().all(|kv| compare_kv(c, target, kv))
}

fn compare_kv(c: &Compare, target: CompareTarget, kv: &KeyValue) -> bool {
    let ord = match (target, &c.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => kv.value.as_slice().cmp(v),
        (CompareTarget::Value, _) => kv.value.as_slice().cmp(&[][..]),
        (CompareTarget::Version, u) => kv.version.cmp(&union_int(u)),
        (CompareTarget::Create, u) => kv.create_revision.cmp(&union_int(u)),
        (CompareTarget::Mod, u) => kv.mod_revision.cmp(&union_int(u)),
        (CompareTarget::Lease, u) => kv.lease.cmp(&union_int(u)),
    };
    match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
        CompareResult::NotEqual => ord != Ordering::Equal,
    }
}

fn union_int(u: &Option<TargetUnion>) -> i64 {
    match u {
        Some(TargetUnion::Version(v))
        | Some(TargetUnion::CreateRevision(v))
        | Some(TargetUnion::ModRevision(v))
        | Some(TargetUnion::Lease(v)) => *v,
        Some(TargetUnion::Value(_)) | None => 0,
    }
}

fn chosen<'a>(r: &'a TxnRequest, path: &mut impl Iterator<Item = bool>) -> &'a [RequestOp] {
    if path.next().unwrap_or(false) {
        &r.success
    } else {
        &r.failure
    }
}

fn check_txn(
    store: &Store,
    leases: &Lessor,
    r: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
) -> Result<(), RequestError> {
    for op in chosen(r, path) {
        match &op.request {
            Some(Request::RequestRange(rr)) => check_range_revision(store, rr)?,
            Some(Request::RequestPut(p)) => check_put(store, leases, p)?,
            Some(Request::RequestTxn(t)) => check_txn(store, leases, t, path)?,
            Some(Request::RequestDeleteRange(_)) | None => {}
        }
    }
    Ok(())
}

fn check_range_revision(store: &Store, r: &RangeRequest) -> Result<(), RequestError> {
    if r.revision > store.current_revision() {
        return Err(MvccError::FutureRevision.into());
    }
    if r.revision > 0 && r.revision < store.compacted_revision() {
        return Err(MvccError::Compacted.into());
    }
    Ok(())
}

fn check_put(store: &Store, leases: &Lessor, p: &PutRequest) -> Result<(), RequestError> {
    if p.lease != 0 && !leases.exists(p.lease) {
        return Err(RequestError::LeaseNotFound);
    }
    if p.ignore_value || p.ignore_lease {
        let found = store.range(&p.key, &[], 0, 1)?;
        if found.kvs.is_empty() {
            return Err(RequestError::KeyNotFound);
        }
    }
    Ok(())
}

/// Ranges inside a txn see the txn's own earlier writes.
struct TxnView<'a, 'b>(&'a WriteTxn<'b>);

impl RangeSource for TxnView<'_, '_> {
    fn read(
        &self,
        key: &[u8],
        range_end: &[u8],
        rev: i64,
        limit: usize,
    ) -> Result<RangeResult, MvccError> {
        self.0.range_at(key, range_end, rev, limit)
    }
}

/// What a txn's chosen ops run against.
trait TxnOps {
    fn range(&self, rr: &RangeRequest) -> Result<RangeResponse, RequestError>;
    fn put(&mut self, p: &PutRequest) -> Result<PutResponse, RequestError>;
    fn delete(&mut self, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, RequestError>;
    /// The revision in a nested txn's response header.
    fn view_revision(&self) -> i64;
}

/// Applying a txn: its ops go into one write transaction.
struct Applying<'a, 'b> {
    w: &'a mut WriteTxn<'b>,
    leases: &'a mut Lessor,
}

impl TxnOps for Applying<'_, '_> {
    fn range(&self, rr: &RangeRequest) -> Result<RangeResponse, RequestError> {
        Ok(range::execute(&TxnView(self.w), rr)?)
    }

    fn put(&mut self, p: &PutRequest) -> Result<PutResponse, RequestError> {
        Ok(exec_put(self.w, self.leases, p))
    }

    fn delete(&mut self, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, RequestError> {
        Ok(exec_delete(self.w, self.leases, d))
    }

    fn view_revision(&self) -> i64 {
        self.w.view_revision()
    }
}

/// Serving a read-only txn: its ranges read the store.
struct Reading<'a>(&'a Store);

impl Reading<'_> {
    fn not_read_only() -> RequestError {
        RequestError::Internal("a txn served as read-only has a write".into())
    }
}

impl TxnOps for Reading<'_> {
    fn range(&self, rr: &RangeRequest) -> Result<RangeResponse, RequestError> {
        Ok(range::execute(self.0, rr)?)
    }

    fn put(&mut self, _: &PutRequest) -> Result<PutResponse, RequestError> {
        Err(Self::not_read_only())
    }

    fn delete(&mut self, _: &DeleteRangeRequest) -> Result<DeleteRangeResponse, RequestError> {
        Err(Self::not_read_only())
    }

    fn view_revision(&self) -> i64 {
        self.0.current_revision()
    }
}

fn exec_txn(
    ops: &mut impl TxnOps,
    r: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
) -> Result<TxnResponse, RequestError> {
    let succeeded = path.next().unwrap_or(false);
    let chosen = if succeeded { &r.success } else { &r.failure };
    let mut responses = Vec::with_capacity(chosen.len());
    for op in chosen {
        let response = match &op.request {
            Some(Request::RequestRange(rr)) => Some(Response::ResponseRange(ops.range(rr)?)),
            Some(Request::RequestPut(p)) => Some(Response::ResponsePut(ops.put(p)?)),
            Some(Request::RequestDeleteRange(d)) => {
                Some(Response::ResponseDeleteRange(ops.delete(d)?))
            }
            Some(Request::RequestTxn(t)) => {
                let mut nested = exec_txn(ops, t, path)?;
                nested.header = header(ops.view_revision());
                Some(Response::ResponseTxn(nested))
            }
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}

fn exec_put(w: &mut WriteTxn<'_>, leases: &mut Lessor, p: &PutRequest) -> PutResponse {
    let prev = w.range(&p.key, &[], 1).kvs.into_iter().next();
    let value = match (&prev, p.ignore_value) {
        (Some(prev), true) => prev.value.clone(),
        _ => p.value.to_vec(),
    };
    let lease = match (&prev, p.ignore_lease) {
        (Some(prev), true) => prev.lease,
        _ => p.lease,
    };
    w.put(&p.key, &value, lease);
    leases.reattach(&p.key, prev.as_ref().map_or(0, |kv| kv.lease), lease);
    PutResponse {
        header: header(w.revision()),
        prev_kv: if p.prev_kv {
            prev.map(|kv| range::to_proto(kv, false))
        } else {
            None
        },
    }
}

fn exec_delete(
    w: &mut WriteTxn<'_>,
    leases: &mut Lessor,
    d: &DeleteRangeRequest,
) -> DeleteRangeResponse {
    let deleted = w.delete_range(&d.key, &d.range_end);
    for kv in &deleted {
        leases.reattach(&kv.key, kv.lease, 0);
    }
    DeleteRangeResponse {
        header: header(w.view_revision()),
        deleted: deleted.len() as i64,
        prev_kvs: if d.prev_kv {
            deleted
                .into_iter()
                .map(|kv| range::to_proto(kv, false))
                .collect()
        } else {
            Vec::new()
        },
    }
}
