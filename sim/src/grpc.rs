//! Translation between the workload vocabulary (`crate::history`, `crate::requests`) and detcd's
//! gRPC KV API, and execution of one request through the real client.
//!
//! Owns [`execute`]. A `Compacted` gRPC error (`etcdserver: mvcc: required revision has been
//! compacted`) is a definite answer and becomes `Ok(Response::Compacted)`; every other error is
//! returned for the caller to classify.

use detcd::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::range_request::{SortOrder as PbOrder, SortTarget as PbTarget};
use detcd::pb::etcdserverpb::request_op::Request as OpRequest;
use detcd::pb::etcdserverpb::response_op::Response as OpResponse;
use detcd::pb::etcdserverpb::{
    CompactionRequest, Compare as PbCompare, DeleteRangeRequest, PutRequest, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, TxnRequest,
};
use detcd::pb::mvccpb;
use tonic::transport::Channel;

use crate::history::{KeyState, Request, Response};
use crate::requests::{
    CmpResult, CmpTarget, DeleteSpec, OpResult, RangeResult, RangeSpec, SortOrder, SortTarget,
    TxnOp, TxnSpec,
};

/// The message of etcd's compacted error.
const COMPACTED: &str = "required revision has been compacted";

fn bytes(s: &str) -> bytes::Bytes {
    s.as_bytes().to_vec().into()
}

fn key_state(kv: &mvccpb::KeyValue) -> KeyState {
    KeyState {
        value: String::from_utf8_lossy(&kv.value).into_owned(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
    }
}

fn kvs(kvs: &[mvccpb::KeyValue]) -> Vec<(String, KeyState)> {
    kvs.iter()
        .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), key_state(kv)))
        .collect()
}

fn header_revision(h: &Option<ResponseHeader>) -> i64 {
    h.as_ref().map_or(0, |h| h.revision)
}

fn range_request(r: &RangeSpec) -> RangeRequest {
    RangeRequest {
        key: bytes(&r.key),
        range_end: bytes(&r.range_end),
        limit: r.limit,
        revision: r.revision,
        sort_order: match r.sort_order {
            SortOrder::None => PbOrder::None,
            SortOrder::Ascend => PbOrder::Ascend,
            SortOrder::Descend => PbOrder::Descend,
        } as i32,
        sort_target: match r.sort_target {
            SortTarget::Key => PbTarget::Key,
            SortTarget::Version => PbTarget::Version,
            SortTarget::Create => PbTarget::Create,
            SortTarget::Mod => PbTarget::Mod,
            SortTarget::Value => PbTarget::Value,
        } as i32,
        serializable: r.serializable,
        keys_only: r.keys_only,
        count_only: r.count_only,
        ..Default::default()
    }
}

fn range_result(r: &RangeResponse) -> RangeResult {
    RangeResult {
        kvs: kvs(&r.kvs),
        more: r.more,
        count: r.count,
    }
}

fn delete_request(d: &DeleteSpec) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: bytes(&d.key),
        range_end: bytes(&d.range_end),
        prev_kv: d.prev_kv,
    }
}

fn put_request(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: bytes(key),
        value: bytes(value),
        ..Default::default()
    }
}

fn txn_request(t: &TxnSpec) -> TxnRequest {
    let ops = |ops: &[TxnOp]| -> Vec<RequestOp> {
        ops.iter()
            .map(|op| RequestOp {
                request: Some(match op {
                    TxnOp::Put { key, value } => OpRequest::RequestPut(put_request(key, value)),
                    TxnOp::Delete(d) => OpRequest::RequestDeleteRange(delete_request(d)),
                    TxnOp::Range(r) => OpRequest::RequestRange(range_request(r)),
                }),
            })
            .collect()
    };
    let compare = t
        .compares
        .iter()
        .map(|c| {
            let (target, union) = match &c.target {
                CmpTarget::Value(v) => (CompareTarget::Value, TargetUnion::Value(bytes(v))),
                CmpTarget::Version(n) => (CompareTarget::Version, TargetUnion::Version(*n)),
                CmpTarget::Create(n) => (CompareTarget::Create, TargetUnion::CreateRevision(*n)),
                CmpTarget::Mod(n) => (CompareTarget::Mod, TargetUnion::ModRevision(*n)),
            };
            PbCompare {
                result: match c.result {
                    CmpResult::Equal => CompareResult::Equal,
                    CmpResult::Greater => CompareResult::Greater,
                    CmpResult::Less => CompareResult::Less,
                    CmpResult::NotEqual => CompareResult::NotEqual,
                } as i32,
                target: target as i32,
                key: bytes(&c.key),
                target_union: Some(union),
                ..Default::default()
            }
        })
        .collect();
    TxnRequest {
        compare,
        success: ops(&t.success),
        failure: ops(&t.failure),
    }
}

/// Runs `request` through `kv`.
pub async fn execute(kv: KvClient<Channel>, request: &Request) -> Result<Response, tonic::Status> {
    match send(kv, request).await {
        Err(status) if status.message().contains(COMPACTED) => Ok(Response::Compacted),
        other => other,
    }
}

async fn send(mut kv: KvClient<Channel>, request: &Request) -> Result<Response, tonic::Status> {
    Ok(match request {
        Request::Put { key, value } => {
            let r = kv.put(put_request(key, value)).await?.into_inner();
            Response::Put {
                revision: header_revision(&r.header),
            }
        }
        Request::Get { key, serializable } => {
            let mut spec = RangeSpec::new(key.clone(), "");
            spec.serializable = *serializable;
            let r = kv.range(range_request(&spec)).await?.into_inner();
            Response::Get {
                revision: header_revision(&r.header),
                kv: r.kvs.first().map(key_state),
            }
        }
        Request::Delete { key } => {
            let d = DeleteSpec {
                key: key.clone(),
                range_end: String::new(),
                prev_kv: false,
            };
            let r = kv.delete_range(delete_request(&d)).await?.into_inner();
            Response::Delete {
                revision: header_revision(&r.header),
                deleted: r.deleted,
            }
        }
        Request::Cas {
            key,
            expected_mod,
            value,
        } => {
            let t = TxnSpec {
                compares: vec![crate::requests::Compare {
                    key: key.clone(),
                    target: CmpTarget::Mod(*expected_mod),
                    result: CmpResult::Equal,
                }],
                success: vec![TxnOp::Put {
                    key: key.clone(),
                    value: value.clone(),
                }],
                failure: vec![TxnOp::Range(RangeSpec::new(key.clone(), ""))],
            };
            let r = kv.txn(txn_request(&t)).await?.into_inner();
            let kv = match r.responses.first().and_then(|op| op.response.as_ref()) {
                Some(OpResponse::ResponseRange(range)) => range.kvs.first().map(key_state),
                _ => None,
            };
            Response::Cas {
                revision: header_revision(&r.header),
                succeeded: r.succeeded,
                kv,
            }
        }
        Request::Range(spec) => {
            let r = kv.range(range_request(spec)).await?.into_inner();
            Response::Range {
                revision: header_revision(&r.header),
                result: range_result(&r),
            }
        }
        Request::DeleteRange(d) => {
            let r = kv.delete_range(delete_request(d)).await?.into_inner();
            Response::DeleteRange {
                revision: header_revision(&r.header),
                deleted: r.deleted,
                prev_kvs: kvs(&r.prev_kvs),
            }
        }
        Request::Txn(t) => {
            let r = kv.txn(txn_request(t)).await?.into_inner();
            let results = r
                .responses
                .iter()
                .map(|op| match &op.response {
                    Some(OpResponse::ResponsePut(_)) => Ok(OpResult::Put),
                    Some(OpResponse::ResponseDeleteRange(d)) => Ok(OpResult::Delete {
                        deleted: d.deleted,
                        prev_kvs: kvs(&d.prev_kvs),
                    }),
                    Some(OpResponse::ResponseRange(range)) => {
                        Ok(OpResult::Range(range_result(range)))
                    }
                    _ => Err(tonic::Status::internal("unexpected txn response op")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Response::Txn {
                revision: header_revision(&r.header),
                succeeded: r.succeeded,
                results,
            }
        }
        Request::Compact { revision } => {
            let r = kv
                .compact(CompactionRequest {
                    revision: *revision,
                    physical: false,
                })
                .await?
                .into_inner();
            Response::Compact {
                revision: header_revision(&r.header),
            }
        }
    })
}
