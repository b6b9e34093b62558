//! The coordination workload (run after the KV history is closed, under its own faults):
//! lease clients and lock clients going through the real gRPC Lease and Lock services.
//!
//! Lease clients grant a lease, attach a key, then either revoke it, keep it alive, or let it
//! expire, recording what was acknowledged and what they read. Lock clients take a lock, then
//! make a *fenced* write — a txn that puts their fencing token (the create revision of their
//! lock key) into a shared key only if their lock key still exists — then unlock.

use crate::cluster::member_channel;
use detcd::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::lease_client::LeaseClient;
use detcd::pb::etcdserverpb::request_op::Request as Op;
use detcd::pb::etcdserverpb::{
    Compare, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest,
};
use detcd::pb::v3lockpb::lock_client::LockClient;
use detcd::pb::v3lockpb::{LockRequest, UnlockRequest};
use madsim::rand::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::Channel;

/// The shared key lock holders write their fencing tokens into.
pub const FENCED_KEY: &str = "fenced";

/// What one lease's life looked like to its client.
#[derive(Clone, Debug)]
pub enum LeaseFate {
    /// Revoke was acknowledged at this revision; a later read of the key (at `read_revision`)
    /// returned `still_there`.
    Revoked {
        /// Key attached to the lease.
        key: String,
        /// Revision of the acknowledged revoke.
        revoke_revision: i64,
        /// Header revision of the linearizable read done after the revoke.
        read_revision: i64,
        /// Whether that read still saw the key.
        still_there: bool,
    },
    /// Every keep-alive was answered in time; `present` is false if one of them found the lease
    /// gone or the final read (after the last keep-alive) did not see the key.
    KeptAlive {
        /// Key attached to the lease.
        key: String,
        /// Whether the read after the keep-alive period saw the key.
        present: bool,
    },
    /// Left to expire (checked at the end: its key must be gone).
    Abandoned {
        /// Key attached to the lease.
        key: String,
    },
}

/// Everything the coordination clients recorded.
#[derive(Default, Debug)]
pub struct CoordinationLog {
    /// Leases and what happened to them.
    pub leases: Vec<LeaseFate>,
    /// Fenced writes acknowledged as applied: (revision, token).
    pub fenced_writes: Vec<(i64, i64)>,
    /// Locks acquired.
    pub locks_taken: u64,
}

/// Shared log.
pub type SharedCoordinationLog = Arc<Mutex<CoordinationLog>>;

const OP_TIMEOUT: Duration = Duration::from_secs(3);

async fn with_timeout<T, E>(f: impl std::future::Future<Output = Result<T, E>>) -> Option<T> {
    tokio::time::timeout(OP_TIMEOUT, f).await.ok()?.ok()
}

/// Longest wait between two answers to keep-alives of a kept-alive lease (TTL 3 s) for it to
/// count as kept alive in time.
const KEEP_ALIVE_GAP: Duration = Duration::from_secs(2);

/// A lease client: grants leases and decides their fate until `until`.
pub async fn lease_client(
    id: u64,
    members: usize,
    log: SharedCoordinationLog,
    until: tokio::time::Instant,
) {
    let mut rng = madsim::rand::thread_rng();
    let mut n = 0;
    while tokio::time::Instant::now() < until {
        n += 1;
        let ch = member_channel(rng.gen_range(0..members));
        let (mut leases, mut kv) = (LeaseClient::new(ch.clone()), KvClient::new(ch));
        let mode = rng.gen_range(0..3);
        let ttl = 3;
        // The leader's TTL runs from when it applies the grant, which can be long before a
        // lagging member answers: the first keep-alive's deadline runs from the request.
        let granted_at = tokio::time::Instant::now();
        let Some(grant) = with_timeout(leases.lease_grant(LeaseGrantRequest { ttl, id: 0 })).await
        else {
            continue;
        };
        let lease = grant.into_inner().id;
        let key = format!("lease/{id}-{n}");
        let put = PutRequest {
            key: key.clone().into_bytes().into(),
            value: b"v".to_vec().into(),
            lease,
            ..Default::default()
        };
        if with_timeout(kv.put(put)).await.is_none() {
            continue;
        }
        let read = |kv: &mut KvClient<Channel>, key: String| {
            let mut kv = kv.clone();
            async move {
                with_timeout(kv.range(RangeRequest {
                    key: key.into_bytes().into(),
                    ..Default::default()
                }))
                .await
                .map(|r| r.into_inner())
            }
        };
        let fate = match mode {
            0 => {
                tokio::time::sleep(Duration::from_millis(rng.gen_range(100..1500))).await;
                let Some(revoked) =
                    with_timeout(leases.lease_revoke(LeaseRevokeRequest { id: lease })).await
                else {
                    continue;
                };
                let revoke_revision = revoked.into_inner().header.map_or(0, |h| h.revision);
                let Some(r) = read(&mut kv, key.clone()).await else {
                    continue;
                };
                LeaseFate::Revoked {
                    key,
                    revoke_revision,
                    read_revision: r.header.map_or(0, |h| h.revision),
                    still_there: !r.kvs.is_empty(),
                }
            }
            1 => {
                // Keep-alives every 1.5 s on a 3 s lease: each answered within KEEP_ALIVE_GAP of
                // the previous answer (or of the grant request) leaves
                // the leader at least a second of margin (clock rate ±5 %, message delays), so it
                // must never expire.
                let mut last_answer = granted_at;
                let mut in_time = true;
                let mut lost = false;
                for _ in 0..rng.gen_range(3..8) {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    let req = futures::stream::iter(vec![LeaseKeepAliveRequest { id: lease }]);
                    let answer = match with_timeout(leases.lease_keep_alive(req)).await {
                        Some(resp) => with_timeout(resp.into_inner().message()).await.flatten(),
                        None => None,
                    };
                    let Some(answer) = answer else {
                        in_time = false;
                        break;
                    };
                    in_time &= last_answer.elapsed() < KEEP_ALIVE_GAP;
                    last_answer = tokio::time::Instant::now();
                    if answer.ttl <= 0 {
                        lost = true;
                        break;
                    }
                }
                if !in_time {
                    continue;
                }
                let Some(r) = read(&mut kv, key.clone()).await else {
                    continue;
                };
                LeaseFate::KeptAlive {
                    key,
                    present: !r.kvs.is_empty() && !lost,
                }
            }
            _ => LeaseFate::Abandoned { key },
        };
        log.lock().expect("coordination log").leases.push(fate);
    }
}

/// A lock client: lock, fenced write, unlock, until `until`.
pub async fn lock_client(members: usize, log: SharedCoordinationLog, until: tokio::time::Instant) {
    let mut rng = madsim::rand::thread_rng();
    while tokio::time::Instant::now() < until {
        let ch = member_channel(rng.gen_range(0..members));
        let (mut leases, mut locks, mut kv) = (
            LeaseClient::new(ch.clone()),
            LockClient::new(ch.clone()),
            KvClient::new(ch),
        );
        let Some(grant) =
            with_timeout(leases.lease_grant(LeaseGrantRequest { ttl: 5, id: 0 })).await
        else {
            continue;
        };
        let lease = grant.into_inner().id;
        let lock = LockRequest {
            name: b"sim-lock".to_vec().into(),
            lease,
        };
        let Ok(Ok(held)) = tokio::time::timeout(Duration::from_secs(10), locks.lock(lock)).await
        else {
            continue;
        };
        let key = held.into_inner().key;
        log.lock().expect("coordination log").locks_taken += 1;
        let Some(own) = with_timeout(kv.range(RangeRequest {
            key: key.clone(),
            ..Default::default()
        }))
        .await
        else {
            continue;
        };
        let Some(token) = own.into_inner().kvs.first().map(|kv| kv.create_revision) else {
            continue;
        };
        tokio::time::sleep(Duration::from_millis(rng.gen_range(10..300))).await;
        let fenced = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Create as i32,
                key: key.clone(),
                target_union: Some(TargetUnion::CreateRevision(token)),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: FENCED_KEY.as_bytes().to_vec().into(),
                    value: token.to_string().into_bytes().into(),
                    ..Default::default()
                })),
            }],
            failure: vec![],
        };
        if let Some(resp) = with_timeout(kv.txn(fenced)).await {
            let resp = resp.into_inner();
            if resp.succeeded {
                let revision = resp.header.map_or(0, |h| h.revision);
                log.lock()
                    .expect("coordination log")
                    .fenced_writes
                    .push((revision, token));
            }
        }
        let _ = with_timeout(locks.unlock(UnlockRequest { key })).await;
        let _ = with_timeout(leases.lease_revoke(LeaseRevokeRequest { id: lease })).await;
    }
}
