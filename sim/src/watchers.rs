//! Watch clients for the watch checker: each watches every key through the real gRPC watch
//! stream of a random member and records the events it receives. Every few seconds (and
//! whenever its stream breaks or stalls) it drops the stream and resumes on another member from
//! its last revision + 1, as a real client does after a failure. If that revision was compacted
//! meanwhile (the stream is canceled with `compact_revision`), it resumes from the compaction
//! point, as a real client must; the events below it are lost to it (see `crate::checkers::watch`).

use crate::cluster::member_channel;
use detcd::pb::etcdserverpb::watch_client::WatchClient;
use detcd::pb::etcdserverpb::watch_request::RequestUnion;
use detcd::pb::etcdserverpb::{WatchCreateRequest, WatchRequest};
use madsim::rand::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One event as a watcher saw it: (revision, key, is_delete, value).
pub type SeenEvent = (i64, Vec<u8>, bool, Vec<u8>);

/// What one watch client recorded.
#[derive(Debug, Default, Clone)]
pub struct WatchLog {
    /// Events in arrival order.
    pub events: Vec<SeenEvent>,
    /// How many times it resumed on a (possibly different) member.
    pub resumes: u64,
    /// The highest `compact_revision` a canceled stream reported (0 = never): the watcher skipped
    /// to it.
    pub skipped_to: i64,
}

/// Shared log of one watch client.
pub type SharedWatchLog = Arc<Mutex<WatchLog>>;

/// Watches every key until `until`, resuming across members; events go to `log`.
pub async fn watch_all(members: usize, log: SharedWatchLog, until: tokio::time::Instant) {
    let mut rng = madsim::rand::thread_rng();
    while tokio::time::Instant::now() < until {
        let member = rng.gen_range(0..members);
        let session = Duration::from_millis(rng.gen_range(1000..6000));
        let next = {
            let log = log.lock().expect("watch log");
            log.events.last().map_or(1, |e| e.0 + 1).max(log.skipped_to)
        };
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let _ =
            tokio::time::timeout(session.min(left), session_on(member, next, log.clone())).await;
        log.lock().expect("watch log").resumes += 1;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(10..200))).await;
    }
}

async fn session_on(member: usize, start_revision: i64, log: SharedWatchLog) {
    let mut client = WatchClient::new(member_channel(member));
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: vec![0].into(),
            range_end: vec![0].into(),
            start_revision,
            ..Default::default()
        })),
    };
    let requests = futures::stream::iter(vec![create]).chain(futures::stream::pending());
    let Ok(response) = client.watch(requests).await else {
        return;
    };
    let mut stream = response.into_inner();
    while let Ok(Some(resp)) = stream.message().await {
        let mut log = log.lock().expect("watch log");
        if resp.canceled {
            log.skipped_to = log.skipped_to.max(resp.compact_revision);
            return;
        }
        for e in resp.events {
            let kv = e.kv.unwrap_or_default();
            log.events.push((
                kv.mod_revision,
                kv.key.to_vec(),
                e.r#type == 1,
                kv.value.to_vec(),
            ));
        }
    }
}

use futures::StreamExt as _;
