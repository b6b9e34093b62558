//! Concurrent clients issuing random KV operations (drawn by `crate::workload_gen`) through the
//! real gRPC client path (`crate::grpc`), each with a timeout, recording every operation into
//! the shared history as invoke → ok / failed / unknown.
//!
//! Outcome rules: a read that errors or times out is `Failed` (a read changes nothing, so it
//! can be ignored), except that the compacted error is a definite `Ok(Compacted)` answer; a write
//! or compaction that errors or times out is `Unknown` (it may or may not have taken effect, at
//! any time after its invoke), except that a compaction refused as a future revision and a write
//! refused for space (`database space exceeded`: never applied anywhere) are `Failed`.

use crate::cluster::member_channel;
use crate::grpc::execute;
use crate::history::{History, Operation, Outcome, Request};
use crate::workload_gen::{Generator, Keyspace};
use detcd::pb::etcdserverpb::kv_client::KvClient;
use madsim::rand::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::Channel;

/// The message of etcd's NOSPACE refusal.
const NO_SPACE: &str = "database space exceeded";

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
    generator: Option<Generator>,
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
        let members = (0..n).map(|i| KvClient::new(member_channel(i))).collect();
        Client {
            id,
            members,
            history,
            start,
            op_timeout,
            generator: None,
        }
    }

    /// Issues random operations over `keys` until `until`, compactions only before
    /// `compact_until` (so the watch checker has uncompacted history to compare at the end).
    pub async fn run_random(
        &mut self,
        keys: Keyspace,
        compact_until: tokio::time::Instant,
        until: tokio::time::Instant,
    ) {
        let mut rng = madsim::rand::thread_rng();
        self.generator = Some(Generator::new(self.id, keys));
        while tokio::time::Instant::now() < until {
            let request = self
                .generator
                .as_mut()
                .expect("set above")
                .next(&mut rng, tokio::time::Instant::now() < compact_until);
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
                if let Some(g) = &mut self.generator {
                    g.observe(&request, &response);
                }
                Outcome::Ok(response)
            }
            Ok(Err(status))
                if matches!(request, Request::Compact { .. })
                    && status.message().contains("future revision") =>
            {
                Outcome::Failed
            }
            // Refused for space: before proposing, or by every member's capped apply.
            Ok(Err(status)) if status.message().contains(NO_SPACE) => Outcome::Failed,
            _ if !request.is_write() && !matches!(request, Request::Compact { .. }) => {
                Outcome::Failed
            }
            _ => Outcome::Unknown,
        };
        let mut h = self.history.lock().expect("history lock");
        if outcome != Outcome::Unknown {
            h.ops[id].complete = Some(now_ns(self.start));
        }
        h.ops[id].outcome = outcome.clone();
        outcome
    }
}
