//! etcd's gRPC Lock and Election services (v3lockpb / v3electionpb) through tonic clients
//! generated from the same protos, against a real 3-member detcd: a second Lock waits for
//! Unlock and gets a larger fencing token; Campaign waits for the leader to resign, Proclaim
//! and Leader agree, Observe streams every leader change.

#![cfg(not(madsim))]

mod common;
use common::Cluster;
use detcd::pb::etcdserverpb::lease_client::LeaseClient;
use detcd::pb::etcdserverpb::LeaseGrantRequest;
use detcd::pb::v3electionpb::election_client::ElectionClient;
use detcd::pb::v3electionpb::{CampaignRequest, LeaderRequest, ProclaimRequest, ResignRequest};
use detcd::pb::v3lockpb::lock_client::LockClient;
use detcd::pb::v3lockpb::{LockRequest, UnlockRequest};
use std::time::Duration;
use tonic::transport::Channel;

async fn channel(c: &Cluster, i: usize) -> Channel {
    Channel::from_shared(format!("http://{}", c.endpoint(i)))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn lease(ch: Channel) -> i64 {
    LeaseClient::new(ch)
        .lease_grant(LeaseGrantRequest { ttl: 30, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id
}

#[tokio::test]
async fn second_lock_waits_for_unlock_and_gets_a_larger_fencing_token() {
    let c = Cluster::start(3);
    let (a, b) = (channel(&c, 0).await, channel(&c, 2).await);
    let (la, lb) = (lease(a.clone()).await, lease(b.clone()).await);
    let first = LockClient::new(a.clone())
        .lock(LockRequest {
            name: b"res".to_vec().into(),
            lease: la,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.key.as_ref(), format!("res/{la:x}").as_bytes());
    let mut waiter = LockClient::new(b.clone());
    let second = tokio::spawn(async move {
        waiter
            .lock(LockRequest {
                name: b"res".to_vec().into(),
                lease: lb,
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !second.is_finished(),
        "the second Lock must wait while the first is held"
    );
    LockClient::new(a)
        .unlock(UnlockRequest {
            key: first.key.clone(),
        })
        .await
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("second lock acquired after unlock")
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(second.key.as_ref(), format!("res/{lb:x}").as_bytes());
    assert!(
        second.header.unwrap().revision > first.header.unwrap().revision,
        "fencing tokens increase"
    );
}

#[tokio::test]
async fn campaign_proclaim_observe_resign() {
    let c = Cluster::start(3);
    let (a, b) = (channel(&c, 1).await, channel(&c, 2).await);
    let (la, lb) = (lease(a.clone()).await, lease(b.clone()).await);
    let name = || b"elec".to_vec().into();
    let mut ea = ElectionClient::new(a.clone());
    let mut observe = ElectionClient::new(channel(&c, 0).await)
        .observe(LeaderRequest { name: name() })
        .await
        .unwrap()
        .into_inner();
    let leader_a = ea
        .campaign(CampaignRequest {
            name: name(),
            lease: la,
            value: b"alpha".to_vec().into(),
        })
        .await
        .unwrap()
        .into_inner()
        .leader
        .unwrap();
    let mut eb = ElectionClient::new(b);
    let campaign_b = tokio::spawn(async move {
        eb.campaign(CampaignRequest {
            name: name(),
            lease: lb,
            value: b"beta".to_vec().into(),
        })
        .await
    });
    ea.proclaim(ProclaimRequest {
        leader: Some(leader_a.clone()),
        value: b"alpha2".to_vec().into(),
    })
    .await
    .unwrap();
    let now = ea
        .leader(LeaderRequest {
            name: b"elec".to_vec().into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.kv.unwrap().value.as_ref(), b"alpha2");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !campaign_b.is_finished(),
        "beta must wait while alpha leads"
    );
    ea.resign(ResignRequest {
        leader: Some(leader_a.clone()),
    })
    .await
    .unwrap();
    let leader_b = tokio::time::timeout(Duration::from_secs(10), campaign_b)
        .await
        .expect("beta leads after alpha resigns")
        .unwrap()
        .unwrap()
        .into_inner()
        .leader
        .unwrap();
    assert!(leader_b.rev > leader_a.rev);
    let err = ea
        .proclaim(ProclaimRequest {
            leader: Some(leader_a),
            value: b"stale".to_vec().into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "election: not leader");
    let mut seen = Vec::new();
    while seen.last().map(Vec::as_slice) != Some(&b"beta"[..]) {
        let resp = tokio::time::timeout(Duration::from_secs(10), observe.message())
            .await
            .expect("observe delivers")
            .unwrap()
            .unwrap();
        seen.push(resp.kv.unwrap().value.to_vec());
    }
    assert_eq!(
        seen,
        vec![b"alpha".to_vec(), b"alpha2".to_vec(), b"beta".to_vec()]
    );
}
