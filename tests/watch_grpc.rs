//! Watch through a tonic client: a watcher that stops reading never holds up writes, and when it
//! reads again it gets every event, in revision order, exactly once; and a client that
//! half-closes its request stream keeps receiving events.

#![cfg(not(madsim))]

mod common;
use common::Cluster;
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::watch_client::WatchClient;
use detcd::pb::etcdserverpb::watch_request::RequestUnion;
use detcd::pb::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use std::time::Duration;
use tonic::transport::Channel;

fn create_request(key: &[u8], range_end: &[u8]) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.to_vec().into(),
            range_end: range_end.to_vec().into(),
            ..Default::default()
        })),
    }
}

const WRITES: usize = 3000;

#[tokio::test]
async fn a_stalled_watcher_does_not_block_writes_and_misses_nothing() {
    let c = Cluster::start(3);
    let channel = |i: usize| {
        Channel::from_shared(format!("http://{}", c.endpoint(i)))
            .unwrap()
            .connect_lazy()
    };
    let create = create_request(b"slow/", b"slow0");
    let requests = futures::stream::iter(vec![create]).chain(futures::stream::pending());
    let mut stream = WatchClient::new(channel(1))
        .watch(requests)
        .await
        .unwrap()
        .into_inner();
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created);

    // The watcher now reads nothing while 3000 writes go through another member.
    let mut writers = Vec::new();
    for w in 0..8 {
        let mut kv = KvClient::new(channel(0));
        writers.push(tokio::spawn(async move {
            for i in (w..WRITES).step_by(8) {
                let put = PutRequest {
                    key: format!("slow/{i:05}").into_bytes().into(),
                    value: vec![b'x'; 512].into(),
                    ..Default::default()
                };
                kv.put(put).await.unwrap();
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(writers))
        .await
        .expect("writes complete while a watcher is stalled");

    let mut revisions = Vec::new();
    while revisions.len() < WRITES {
        let resp = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("events keep coming")
            .unwrap()
            .unwrap();
        revisions.extend(
            resp.events
                .iter()
                .map(|e| e.kv.as_ref().unwrap().mod_revision),
        );
    }
    assert_eq!(revisions.len(), WRITES);
    assert!(
        revisions.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive, in order, no repeats"
    );
}

#[tokio::test]
async fn a_watch_keeps_delivering_after_the_client_half_closes_its_requests() {
    let c = Cluster::start(1);
    let channel = Channel::from_shared(format!("http://{}", c.endpoint(0)))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // A request stream of one item: the client's send side ends right after the create.
    let requests = futures::stream::iter(vec![create_request(b"half", b"")]);
    let mut stream = WatchClient::new(channel.clone())
        .watch(requests)
        .await
        .unwrap()
        .into_inner();
    let created = stream.message().await.unwrap().expect("created response");
    assert!(created.created);
    KvClient::new(channel)
        .put(PutRequest {
            key: b"half".to_vec().into(),
            value: b"closed".to_vec().into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .expect("the response stream is still open");
    assert_eq!(resp.watch_id, created.watch_id);
    let kv = resp.events[0].kv.as_ref().unwrap();
    assert_eq!((&kv.key[..], &kv.value[..]), (&b"half"[..], &b"closed"[..]));
}

use futures::StreamExt as _;
