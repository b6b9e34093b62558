//! Which permissions a request needs, as etcd 3.4 checks them: Range needs read on its range;
//! Put write on its key (and read with `prev_kv`); DeleteRange write on its range (and read
//! with `prev_kv`); a Txn read on every compare's range and what each op of *both* branches
//! needs, nested txns included; a Put with a lease, and a lease revocation, write on every key
//! the lease holds (whoever may revoke the lease deletes them).
//!
//! Reads are checked on the member that serves them, after its ReadIndex and again after the
//! read (a changed auth revision fails the read with `revision of auth store is old`); writes
//! are checked at apply against the auth state of their point in the log, so a revoked
//! permission holds for every write ordered after the revocation.

use crate::auth::{AuthError, AuthInfo, AuthStore, PermKind};
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};

/// Range: read on `[key, range_end)`.
pub fn range(auth: &AuthStore, who: &AuthInfo, r: &RangeRequest) -> Result<(), AuthError> {
    auth.check_op(who, PermKind::Read, &r.key, &r.range_end)
}

/// Put: write on the key, read too with `prev_kv`.
pub fn put(auth: &AuthStore, who: &AuthInfo, r: &PutRequest) -> Result<(), AuthError> {
    auth.check_op(who, PermKind::Write, &r.key, &[])?;
    if r.prev_kv {
        auth.check_op(who, PermKind::Read, &r.key, &[])?;
    }
    Ok(())
}

/// DeleteRange: write on the range, read too with `prev_kv`.
pub fn delete_range(
    auth: &AuthStore,
    who: &AuthInfo,
    r: &DeleteRangeRequest,
) -> Result<(), AuthError> {
    if r.prev_kv {
        auth.check_op(who, PermKind::Read, &r.key, &r.range_end)?;
    }
    auth.check_op(who, PermKind::Write, &r.key, &r.range_end)
}

/// Txn: read on every compare, and every op of both branches.
pub fn txn(auth: &AuthStore, who: &AuthInfo, t: &TxnRequest) -> Result<(), AuthError> {
    #[cfg(madsim)]
    let skip_compares = crate::fault::active(crate::fault::Bug::AuthSkipsTxnCompare);
    #[cfg(not(madsim))]
    let skip_compares = false;
    if !skip_compares {
        for c in &t.compare {
            auth.check_op(who, PermKind::Read, &c.key, &c.range_end)?;
        }
    }
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(Op::RequestRange(r)) => range(auth, who, r)?,
            Some(Op::RequestPut(p)) => put(auth, who, p)?,
            Some(Op::RequestDeleteRange(d)) => delete_range(auth, who, d)?,
            Some(Op::RequestTxn(nested)) => txn(auth, who, nested)?,
            None => {}
        }
    }
    Ok(())
}

/// Write on every key in `keys` (the keys a lease holds).
pub fn lease_keys<'a>(
    auth: &AuthStore,
    who: &AuthInfo,
    keys: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(), AuthError> {
    for key in keys {
        auth.check_op(who, PermKind::Write, key, &[])?;
    }
    Ok(())
}

/// The leases a txn's puts attach keys to, nested txns included.
pub fn txn_leases(t: &TxnRequest, out: &mut Vec<i64>) {
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(Op::RequestPut(p)) if p.lease != 0 => out.push(p.lease),
            Some(Op::RequestTxn(nested)) => txn_leases(nested, out),
            _ => {}
        }
    }
}
