//! Request checks done before anything is proposed, as etcd does them: empty keys, conflicting
//! flags, txn size and duplicate writes. A request that passes is well-formed; whether it
//! succeeds (revisions, leases) is decided at apply time.

use super::error::RequestError;
use crate::pb::etcdserverpb::{
    request_op::Request, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use std::collections::BTreeSet;

/// Limits from the server flags.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `--max-txn-ops`.
    pub max_txn_ops: usize,
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
}

/// Checks a Range request.
pub fn range(r: &RangeRequest) -> Result<(), RequestError> {
    non_empty(&r.key)
}

/// Checks a Put request.
pub fn put(r: &PutRequest) -> Result<(), RequestError> {
    non_empty(&r.key)?;
    if r.ignore_value && !r.value.is_empty() {
        return Err(RequestError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(RequestError::LeaseProvided);
    }
    Ok(())
}

/// Checks a DeleteRange request.
pub fn delete_range(r: &DeleteRangeRequest) -> Result<(), RequestError> {
    non_empty(&r.key)
}

/// Checks a Txn request: sizes, every op, and that no branch writes a key twice.
pub fn txn(r: &TxnRequest, limits: &Limits) -> Result<(), RequestError> {
    let max = limits.max_txn_ops;
    if r.compare.len() > max || r.success.len() > max || r.failure.len() > max {
        return Err(RequestError::TooManyTxnOps);
    }
    for c in &r.compare {
        non_empty(&c.key)?;
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(Request::RequestRange(r)) => range(r)?,
            Some(Request::RequestPut(p)) => put(p)?,
            Some(Request::RequestDeleteRange(d)) => delete_range(d)?,
            Some(Request::RequestTxn(t)) => txn(t, limits)?,
            None => {}
        }
    }
    branch_writes(&r.success)?;
    branch_writes(&r.failure)?;
    Ok(())
}

/// Fails unless the encoded request fits `--max-request-bytes`.
pub fn size(encoded_len: usize, limits: &Limits) -> Result<(), RequestError> {
    if encoded_len > limits.max_request_bytes {
        return Err(RequestError::RequestTooLarge);
    }
    Ok(())
}

fn non_empty(key: &[u8]) -> Result<(), RequestError> {
    if key.is_empty() {
        Err(RequestError::EmptyKey)
    } else {
        Ok(())
    }
}

/// The keys a branch puts and the ranges it deletes.
#[derive(Default)]
struct Writes {
    puts: BTreeSet<Vec<u8>>,
    deletes: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Collects one branch's writes; two puts of one key, or a put inside a deleted range, is a
/// duplicate. A nested txn contributes both of its branches (only one runs, so they may
/// overlap each other, but neither may overlap the outer branch).
fn branch_writes(ops: &[RequestOp]) -> Result<Writes, RequestError> {
    let mut w = Writes::default();
    for op in ops {
        match &op.request {
            Some(Request::RequestPut(p)) => {
                if !w.puts.insert(p.key.to_vec()) {
                    return Err(RequestError::DuplicateKey);
                }
            }
            Some(Request::RequestDeleteRange(d)) => {
                w.deletes.push((d.key.to_vec(), d.range_end.to_vec()));
            }
            Some(Request::RequestTxn(t)) => {
                let success = branch_writes(&t.success)?;
                let failure = branch_writes(&t.failure)?;
                let nested: BTreeSet<Vec<u8>> =
                    success.puts.union(&failure.puts).cloned().collect();
                if nested.iter().any(|k| w.puts.contains(k)) {
                    return Err(RequestError::DuplicateKey);
                }
                w.puts.extend(nested);
                w.deletes.extend(success.deletes);
                w.deletes.extend(failure.deletes);
            }
            Some(Request::RequestRange(_)) | None => {}
        }
    }
    let overlaps = w
        .puts
        .iter()
        .any(|k| w.deletes.iter().any(|(start, end)| in_range(k, start, end)));
    if overlaps {
        return Err(RequestError::DuplicateKey);
    }
    Ok(w)
}

/// Whether `key` is in etcd's range `[start, end)` (empty end: just `start`; `\0`: all ≥ start).
pub fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        key == start
    } else if end == [0] {
        key >= start
    } else {
        key >= start && key < end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::etcdserverpb::request_op::Request as R;

    fn put_op(k: &str) -> RequestOp {
        RequestOp {
            request: Some(R::RequestPut(PutRequest {
                key: k.as_bytes().to_vec().into(),
                value: b"v".to_vec().into(),
                ..Default::default()
            })),
        }
    }

    fn del_op(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(R::RequestDeleteRange(DeleteRangeRequest {
                key: k.as_bytes().to_vec().into(),
                range_end: end.as_bytes().to_vec().into(),
                ..Default::default()
            })),
        }
    }

    const LIMITS: Limits = Limits {
        max_txn_ops: 3,
        max_request_bytes: 100,
    };

    #[test]
    fn duplicate_puts_and_put_inside_delete_are_rejected() {
        let t = TxnRequest {
            success: vec![put_op("a"), put_op("a")],
            ..Default::default()
        };
        assert_eq!(txn(&t, &LIMITS), Err(RequestError::DuplicateKey));
        let t = TxnRequest {
            success: vec![put_op("b"), del_op("a", "c")],
            ..Default::default()
        };
        assert_eq!(txn(&t, &LIMITS), Err(RequestError::DuplicateKey));
        let t = TxnRequest {
            success: vec![put_op("a")],
            failure: vec![put_op("a")],
            ..Default::default()
        };
        assert_eq!(txn(&t, &LIMITS), Ok(()), "branches are independent");
    }

    #[test]
    fn nested_txn_put_conflicts_with_outer_put() {
        let inner = TxnRequest {
            success: vec![put_op("a")],
            ..Default::default()
        };
        let t = TxnRequest {
            success: vec![
                put_op("a"),
                RequestOp {
                    request: Some(R::RequestTxn(inner)),
                },
            ],
            ..Default::default()
        };
        assert_eq!(txn(&t, &LIMITS), Err(RequestError::DuplicateKey));
    }

    #[test]
    fn too_many_ops_and_size_limits() {
        let t = TxnRequest {
            success: vec![put_op("a"), put_op("b"), put_op("c"), put_op("d")],
            ..Default::default()
        };
        assert_eq!(txn(&t, &LIMITS), Err(RequestError::TooManyTxnOps));
        assert_eq!(size(101, &LIMITS), Err(RequestError::RequestTooLarge));
        assert_eq!(size(100, &LIMITS), Ok(()));
    }

    #[test]
    fn put_flag_conflicts() {
        let mut p = PutRequest {
            key: b"k".to_vec().into(),
            value: b"v".to_vec().into(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(put(&p), Err(RequestError::ValueProvided));
        p.ignore_value = false;
        p.ignore_lease = true;
        p.lease = 5;
        assert_eq!(put(&p), Err(RequestError::LeaseProvided));
        p.key = Default::default();
        assert_eq!(put(&p), Err(RequestError::EmptyKey));
    }
}
