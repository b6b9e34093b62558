//! The served-revision prober: a client that keeps asking every member, one after another, for
//! its current revision with a serializable (local) read, and records what each member answered
//! and when. [`crate::checkers::served_revision`] then requires that no member ever answers from
//! an older revision than it had already answered from — across crashes and restarts too.

use crate::cluster::member_channel;
use crate::workload::now_ns;
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::RangeRequest;
use madsim::rand::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One answered read: which member, when it was sent and answered (ns since the run started),
/// and the header revision.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServedRead {
    /// Member index (the slot; a replaced member is a new member in the same slot).
    pub member: usize,
    /// The answering member's id (tells a slot's members apart).
    pub member_id: u64,
    /// Sent at.
    pub invoke: u64,
    /// Answered at.
    pub complete: u64,
    /// Revision the member answered from.
    pub revision: i64,
}

/// The prober's log, shared with the runner.
pub type SharedServedLog = Arc<Mutex<Vec<ServedRead>>>;

/// Probes the `n` members until `until`.
pub async fn probe_members(
    n: usize,
    log: SharedServedLog,
    start: tokio::time::Instant,
    until: tokio::time::Instant,
) {
    let clients: Vec<_> = (0..n).map(|i| KvClient::new(member_channel(i))).collect();
    let mut rng = madsim::rand::thread_rng();
    while tokio::time::Instant::now() < until {
        for (member, client) in clients.iter().enumerate() {
            let mut client = client.clone();
            let request = RangeRequest {
                key: b"\0served-probe".to_vec().into(),
                serializable: true,
                count_only: true,
                ..Default::default()
            };
            let invoke = now_ns(start);
            let answer =
                tokio::time::timeout(Duration::from_millis(500), client.range(request)).await;
            if let Ok(Ok(response)) = answer {
                let header = response.into_inner().header.unwrap_or_default();
                log.lock().expect("served log").push(ServedRead {
                    member,
                    member_id: header.member_id,
                    invoke,
                    complete: now_ns(start),
                    revision: header.revision,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(20..150))).await;
    }
}
