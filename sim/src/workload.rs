//! Concurrent clients issuing random KV operations through the real gRPC client path, each with
//! a timeout, recording every operation into the shared history as invoke → ok / failed /
//! unknown.
//!
//! Outcome rules: a read that errors or times out is `Failed` (a read changes nothing, so it
//! can be ignored); a write that errors or times out is `Unknown` (it may or may not have taken
//! effect, at any time after its invoke).

use crate::cluster::client_url;
use crate::history::{History, KeyState, Operation, Outcome, Request, Response};
use detcd::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::request_op::Request as OpRequest;
use detcd::pb::etcdserverpb::response_op::Response as OpResponse;
use detcd::pb::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest,
};
use detcd::pb::mvccpb;
use madsim::rand::prelude::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// A history shared by the clients of one run.
pub type SharedHistory = Arc<Mutex<History>>;

/// Nanoseconds since `start`.
pub fn now_ns(start: tokio::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// One client's connections to every member.
pub struct Client {
    id: u64,
    members: Vec<KvClient<Channel>>,
    history: SharedHistory,
    start: tokio::time::Instant,
    op_timeout: Duration,
    last_mod: BTreeMap<String, i64>,
}

impl Client {
    /// A client with lazy connections to the `n` members.
    pub fn new(
        id: u64,
        n: usize,
        history: SharedHistory,
        start: tokio::time::Instant,
        op_timeout: Duration,
    ) -> Client {
        let members = (0..n)
            .map(|i| {
                let channel = Endpoint::from_shared(client_url(i))
                    .expect("valid member URL")
                    .connect_timeout(Duration::from_secs(1))
                    .connect_lazy();
                KvClient::new(channel)
            })
            .collect();
        Client {
            id,
            members,
            history,
            start,
            op_timeout,
            last_mod: BTreeMap::new(),
        }
    }

    /// Issues random operations over `keys` keys until `until`.
    pub async fn run_random(&mut self, keys: usize, until: tokio::time::Instant) {
        let mut rng = madsim::rand::thread_rng();
        let mut n = 0u64;
        while tokio::time::Instant::now() < until {
            n += 1;
            let key = format!("k{}", rng.gen_range(0..keys));
            let value = format!("c{}-{n}", self.id);
            let request = match rng.gen_range(0..100) {
                0..=34 => Request::Put { key, value },
                35..=59 => Request::Get {
                    key,
                    serializable: false,
                },
                60..=69 => Request::Get {
                    key,
                    serializable: true,
                },
                70..=76 => Request::Delete { key },
                _ => {
                    let expected_mod = self.last_mod.get(&key).copied().unwrap_or(0);
                    Request::Cas {
                        key,
                        expected_mod,
                        value,
                    }
                }
            };
            let member = rng.gen_range(0..self.members.len());
            self.invoke(member, request).await;
            tokio::time::sleep(Duration::from_millis(rng.gen_range(1..40))).await;
        }
    }

    /// Runs one operation against `member` and records it.
    pub async fn invoke(&mut self, member: usize, request: Request) -> Outcome {
        let id = {
            let mut h = self.history.lock().expect("history lock");
            let id = h.ops.len();
            h.ops.push(Operation {
                id,
                client: self.id,
                invoke: now_ns(self.start),
                complete: None,
                request: request.clone(),
                outcome: Outcome::Unknown,
            });
            id
        };
        let kv = self.members[member].clone();
        let result = tokio::time::timeout(self.op_timeout, execute(kv, &request)).await;
        let outcome = match result {
            Ok(Ok(response)) => {
                self.observe(&request, &response);
                Outcome::Ok(response)
            }
            _ if matches!(request, Request::Get { .. }) => Outcome::Failed,
            _ => Outcome::Unknown,
        };
        let mut h = self.history.lock().expect("history lock");
        if outcome != Outcome::Unknown {
            h.ops[id].complete = Some(now_ns(self.start));
        }
        h.ops[id].outcome = outcome.clone();
        outcome
    }

    /// Remembers mod revisions so CAS operations often compare against the current one.
    fn observe(&mut self, request: &Request, response: &Response) {
        let key = match request {
            Request::Put { key, .. }
            | Request::Get { key, .. }
            | Request::Delete { key }
            | Request::Cas { key, .. } => key,
        };
        let seen = match response {
            Response::Put { revision } => Some(*revision),
            Response::Get { kv, .. } => Some(kv.as_ref().map_or(0, |k| k.mod_revision)),
            Response::Delete { .. } => Some(0),
            Response::Cas {
                revision,
                succeeded: true,
                ..
            } => Some(*revision),
            Response::Cas { kv, .. } => Some(kv.as_ref().map_or(0, |k| k.mod_revision)),
        };
        if let Some(rev) = seen {
            self.last_mod.insert(key.clone(), rev);
        }
    }
}

fn key_state(kv: &mvccpb::KeyValue) -> KeyState {
    KeyState {
        value: String::from_utf8_lossy(&kv.value).into_owned(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
    }
}

fn header_revision(h: &Option<detcd::pb::etcdserverpb::ResponseHeader>) -> i64 {
    h.as_ref().map_or(0, |h| h.revision)
}

fn first_kv(r: &RangeResponse) -> Option<KeyState> {
    r.kvs.first().map(key_state)
}

async fn execute(mut kv: KvClient<Channel>, request: &Request) -> Result<Response, tonic::Status> {
    Ok(match request {
        Request::Put { key, value } => {
            let r = kv
                .put(PutRequest {
                    key: key.clone().into_bytes().into(),
                    value: value.clone().into_bytes().into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Response::Put {
                revision: header_revision(&r.header),
            }
        }
        Request::Get { key, serializable } => {
            let r = kv
                .range(RangeRequest {
                    key: key.clone().into_bytes().into(),
                    serializable: *serializable,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Response::Get {
                revision: header_revision(&r.header),
                kv: first_kv(&r),
            }
        }
        Request::Delete { key } => {
            let r = kv
                .delete_range(DeleteRangeRequest {
                    key: key.clone().into_bytes().into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
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
            let k: bytes::Bytes = key.clone().into_bytes().into();
            let txn = TxnRequest {
                compare: vec![Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Mod as i32,
                    key: k.clone(),
                    target_union: Some(TargetUnion::ModRevision(*expected_mod)),
                    ..Default::default()
                }],
                success: vec![RequestOp {
                    request: Some(OpRequest::RequestPut(PutRequest {
                        key: k.clone(),
                        value: value.clone().into_bytes().into(),
                        ..Default::default()
                    })),
                }],
                failure: vec![RequestOp {
                    request: Some(OpRequest::RequestRange(RangeRequest {
                        key: k,
                        ..Default::default()
                    })),
                }],
            };
            let r = kv.txn(txn).await?.into_inner();
            let kv = match r.responses.first().and_then(|op| op.response.as_ref()) {
                Some(OpResponse::ResponseRange(range)) => first_kv(range),
                _ => None,
            };
            Response::Cas {
                revision: header_revision(&r.header),
                succeeded: r.succeeded,
                kv,
            }
        }
    })
}
