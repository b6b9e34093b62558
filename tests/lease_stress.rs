//! Leases under concurrency, against a real single-member detcd and on tokio's multi-threaded
//! runtime: many clients granting short leases, attaching keys, asking TimeToLive, keeping
//! alive and revoking at once, while the leader's expiry loop revokes what runs out. The member
//! must neither deadlock (a watchdog turns a hang into a failure) nor trip its lock-rank check
//! (a debug-build panic in the log, which makes an inversion fail deterministically even when
//! the deadlock itself does not strike), and expiry must still work afterwards.

#![cfg(not(madsim))]

mod common;
use common::Cluster;
use detcd::pb::etcdserverpb::lease_client::LeaseClient;
use detcd::pb::etcdserverpb::{
    kv_client::KvClient, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, PutRequest,
};
use std::time::Duration;
use tokio::time::{timeout, Instant};
use tonic::transport::Channel;

const TASKS: usize = 8;
const OPS: usize = 300;

/// One client's mix of lease operations; returns how many succeeded.
async fn churn(channel: Channel, task: usize) -> usize {
    let mut leases = LeaseClient::new(channel.clone());
    let mut kv = KvClient::new(channel);
    let mut mine: Vec<i64> = Vec::new();
    let mut succeeded = 0;
    for op in 0..OPS {
        let id = mine.last().copied().unwrap_or(0);
        let ok = match op % 5 {
            0 => match leases
                .lease_grant(LeaseGrantRequest { ttl: 1, id: 0 })
                .await
            {
                Ok(r) => {
                    mine.push(r.into_inner().id);
                    true
                }
                Err(_) => false,
            },
            1 => kv
                .put(PutRequest {
                    key: format!("stress/{task}/{op}").into_bytes().into(),
                    value: b"v".to_vec().into(),
                    lease: id,
                    ..Default::default()
                })
                .await
                .is_ok(),
            2 => leases
                .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
                .await
                .is_ok(),
            3 => {
                let once = futures::stream::iter([LeaseKeepAliveRequest { id }]);
                match leases.lease_keep_alive(once).await {
                    Ok(resp) => resp.into_inner().message().await.is_ok(),
                    Err(_) => false,
                }
            }
            _ => {
                let victim = if mine.is_empty() {
                    0
                } else {
                    mine.remove(op % mine.len())
                };
                leases
                    .lease_revoke(LeaseRevokeRequest { id: victim })
                    .await
                    .is_ok()
            }
        };
        succeeded += usize::from(ok);
    }
    succeeded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lease_traffic_with_expiry_neither_deadlocks_nor_breaks_lock_order() {
    // Enough worker threads for the handler, the expiry loop and the apply loop to block one
    // another even on a 2-core machine (tokio's default is one worker per core).
    let c = Cluster::start_with_env(
        1,
        &["--heartbeat-interval", "50", "--election-timeout", "500"],
        &[("TOKIO_WORKER_THREADS", "8")],
    );
    let channel = Channel::from_shared(format!("http://{}", c.endpoint(0)))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| tokio::spawn(churn(channel.clone(), t)))
        .collect();
    let done = timeout(Duration::from_secs(60), futures::future::join_all(tasks))
        .await
        .expect("lease traffic finished within 60 s (a hang means the member deadlocked)");
    let succeeded: usize = done.into_iter().map(|r| r.unwrap()).sum();
    assert!(
        succeeded > TASKS * OPS / 2,
        "most operations succeed ({succeeded})"
    );
    let log = c.log(0);
    if let Some(at) = log.lines().position(|l| l.contains("panicked")) {
        let lines: Vec<&str> = log.lines().skip(at).take(3).collect();
        panic!("member panicked:\n{}", lines.join("\n"));
    }

    // The expiry loop survived: a fresh 1 s lease still expires.
    let mut leases = LeaseClient::new(channel);
    let id = leases
        .lease_grant(LeaseGrantRequest { ttl: 1, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ttl = timeout(
            Duration::from_secs(10),
            leases.lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false }),
        )
        .await
        .expect("TimeToLive answers")
        .unwrap()
        .into_inner()
        .ttl;
        if ttl == -1 {
            break;
        }
        assert!(Instant::now() < deadline, "a 1 s lease expires within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
