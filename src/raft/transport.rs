//! Peer transport: raft messages between members over detcd's `detcdpb.Peer` gRPC service.
//!
//! Outbound, each peer has a queue drained by its own task, which batches whatever is waiting
//! and pipelines the batches onto one long-lived `Stream` call. When the stream breaks, the peer
//! is reported unreachable, queued messages are dropped (raft retransmits) and the stream is
//! reopened. Batches carrying a snapshot go as single `Send` calls so their delivery can be
//! reported to raft. A full queue drops messages too, so a dead peer never blocks the node task.
//! A stream that has carried messages for [`SILENCE_LIMIT`] without a word back from the peer
//! (raft answers nearly everything: appends, heartbeats, votes) is presumed stuck and reopened:
//! a connection through a partition can neither fail nor deliver for a long time (TCP backs off
//! its retransmissions, up to 10 s in madsim's model), and HTTP/2 keep-alive, which would cut it
//! in production, does not exist in the simulator (seed 1837: no leader for 8 s after a
//! partition healed, because one member's messages waited behind a backed-off connection).
//!
//! Inbound, [`PeerService`] decodes each message and steps it into the local node. A batch from
//! another cluster (a member started with another `--initial-cluster-token`) is refused with
//! `FailedPrecondition`; both sides warn about it, each at most once per [`WARN_INTERVAL`] per
//! peer, since the sender reconnects and is refused again every [`RECONNECT_BACKOFF`].

use super::node::RaftHandle;
use crate::pb::detcdpb::peer_client::PeerClient;
use crate::pb::detcdpb::peer_server::Peer;
use crate::pb::detcdpb::{MessageBatch, SendAck};
use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

const QUEUE_DEPTH: usize = 4096;
const MAX_BATCH: usize = 256;
/// How long a batch carrying a snapshot may take to deliver.
const SNAPSHOT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Raft snapshots can be large; peers accept up to this many bytes per call.
pub const MAX_PEER_MESSAGE: usize = 1 << 30;

/// A recurring peer warning (refused messages) is logged at most this often per peer.
pub const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// When each peer's last batch arrived: written by [`PeerService`], read by the senders (a leaf
/// lock, held only to read or write one entry).
pub type HeardFrom = Arc<Mutex<BTreeMap<u64, Instant>>>;

/// How long a stream may carry messages without a batch back from the peer before it is
/// reopened (three election timeouts of silence would already have cost the peer its leader).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(3);

/// When a recurring warning was last logged, per peer.
#[derive(Default)]
struct WarnThrottle {
    last: BTreeMap<u64, Instant>,
}

impl WarnThrottle {
    /// Whether to log the warning about `peer` now (and if so, remembers that it was).
    fn allow(&mut self, peer: u64) -> bool {
        let now = Instant::now();
        if self
            .last
            .get(&peer)
            .is_some_and(|at| now.duration_since(*at) < WARN_INTERVAL)
        {
            return false;
        }
        self.last.insert(peer, now);
        true
    }
}

/// Delivery feedback for the node.
#[derive(Debug)]
pub enum PeerReport {
    /// Sending to this peer failed.
    Unreachable(u64),
    /// A snapshot sent to `to` succeeded or failed.
    Snapshot {
        /// Receiver of the snapshot.
        to: u64,
        /// Whether it was delivered.
        ok: bool,
    },
}

/// Routes outbound raft messages to per-peer queues.
#[derive(Clone)]
pub struct Transport {
    from: u64,
    cluster_id: u64,
    queues: Arc<RwLock<BTreeMap<u64, mpsc::Sender<Message>>>>,
    reports: mpsc::UnboundedSender<PeerReport>,
    heard: HeardFrom,
}

impl Transport {
    /// The record of when each peer was last heard from, for [`PeerService::new`].
    pub fn heard(&self) -> HeardFrom {
        self.heard.clone()
    }

    /// A transport for member `from`; reports go to the returned receiver.
    pub fn new(from: u64, cluster_id: u64) -> (Self, mpsc::UnboundedReceiver<PeerReport>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let t = Transport {
            from,
            cluster_id,
            queues: Arc::default(),
            reports: tx,
            heard: Arc::default(),
        };
        (t, rx)
    }

    /// Starts (or replaces) the sender task for peer `id` at `url` (e.g. `http://10.0.0.2:2380`).
    pub fn add_peer(&self, id: u64, url: &str) -> Result<(), tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(url.to_string())?
            .connect_timeout(Duration::from_secs(1))
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(3))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect_lazy();
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        self.write_queues().insert(id, tx);
        let sender = PeerSender {
            to: id,
            from: self.from,
            cluster_id: self.cluster_id,
            client: PeerClient::new(channel).max_decoding_message_size(MAX_PEER_MESSAGE),
            queue: rx,
            reports: self.reports.clone(),
            warned: WarnThrottle::default(),
            heard: self.heard.clone(),
        };
        tokio::spawn(sender.run());
        Ok(())
    }

    /// Queues messages for their receivers; never blocks.
    pub fn send(&self, msgs: Vec<Message>) {
        let queues = self.queues.read().unwrap_or_else(|e| e.into_inner());
        for msg in msgs {
            let to = msg.to;
            let is_snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
            let delivered = queues.get(&to).is_some_and(|q| q.try_send(msg).is_ok());
            if !delivered {
                let _ = self.reports.send(PeerReport::Unreachable(to));
                if is_snapshot {
                    let _ = self.reports.send(PeerReport::Snapshot { to, ok: false });
                }
            }
        }
    }

    fn write_queues(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u64, mpsc::Sender<Message>>> {
        self.queues.write().unwrap_or_else(|e| e.into_inner())
    }
}

struct PeerSender {
    to: u64,
    from: u64,
    cluster_id: u64,
    client: PeerClient<Channel>,
    queue: mpsc::Receiver<Message>,
    reports: mpsc::UnboundedSender<PeerReport>,
    warned: WarnThrottle,
    heard: HeardFrom,
}

/// How long a broken stream waits before reconnecting (messages meanwhile are dropped).
const RECONNECT_BACKOFF: Duration = Duration::from_millis(50);
/// Batches buffered on an open stream before the sender drops instead of waiting.
const STREAM_BUFFER: usize = 64;

impl PeerSender {
    /// Keeps one stream open to the peer and pipelines batches onto it; batches carrying a
    /// snapshot go as separate calls so their delivery can be reported.
    async fn run(mut self) {
        let mut check = tokio::time::interval(Duration::from_secs(1));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let opened = Instant::now();
            let mut sent_at: Option<Instant> = None;
            let (tx, rx) = mpsc::channel::<MessageBatch>(STREAM_BUFFER);
            let mut client = self.client.clone();
            let mut call = Box::pin(async move {
                client
                    .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
            });
            let broken = loop {
                tokio::select! {
                    // biased: tokio picks unbiased branches with a process-global RNG, which would break
                    // simulation replay.
                    biased;
                    result = &mut call => {
                        if let Err(status) = result {
                            tracing::debug!(to = self.to, %status, "peer stream closed");
                            self.note_refusal(&status);
                        }
                        break true;
                    }
                    next = self.queue.recv() => {
                        let Some(first) = next else { return };
                        let batch = self.take_batch(first);
                        if batch.iter().any(|m| m.get_msg_type() == MessageType::MsgSnapshot) {
                            self.send_with_report(batch).await;
                        } else if tx.try_send(self.encode(&batch)).is_err() {
                            break true;
                        } else {
                            sent_at = Some(Instant::now());
                        }
                    }
                    _ = check.tick() => {
                        if self.stuck(opened, sent_at) {
                            tracing::debug!(to = self.to, "peer silent on an open stream; reopening");
                            break true;
                        }
                    }
                }
            };
            if broken {
                let _ = self.reports.send(PeerReport::Unreachable(self.to));
                tokio::time::sleep(RECONNECT_BACKOFF).await;
                while let Ok(m) = self.queue.try_recv() {
                    if m.get_msg_type() == MessageType::MsgSnapshot {
                        let _ = self.reports.send(PeerReport::Snapshot {
                            to: self.to,
                            ok: false,
                        });
                    }
                }
            }
        }
    }

    /// Whether the stream opened at `opened`, last used at `sent_at`, has gone unanswered for
    /// [`SILENCE_LIMIT`]: something was sent after the peer was last heard from (or the stream
    /// opened), and that is longer ago than the limit.
    fn stuck(&self, opened: Instant, sent_at: Option<Instant>) -> bool {
        let heard = self
            .heard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&self.to)
            .copied();
        let since = heard.map_or(opened, |h| h.max(opened));
        sent_at.is_some_and(|sent| sent > since) && since.elapsed() > SILENCE_LIMIT
    }

    /// Warns (throttled) when the peer refused our messages rather than being unreachable.
    fn note_refusal(&mut self, status: &Status) {
        if status.code() == tonic::Code::FailedPrecondition && self.warned.allow(self.to) {
            tracing::warn!(
                peer = %format!("{:x}", self.to),
                local_cluster_id = %format!("{:x}", self.cluster_id),
                "peer rejected our raft messages: {}",
                status.message()
            );
        }
    }

    fn take_batch(&mut self, first: Message) -> Vec<Message> {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match self.queue.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        batch
    }

    fn encode(&self, batch: &[Message]) -> MessageBatch {
        MessageBatch {
            from: self.from,
            cluster_id: self.cluster_id,
            messages: batch
                .iter()
                .filter_map(|m| m.write_to_bytes().ok().map(Bytes::from))
                .collect(),
        }
    }

    async fn send_with_report(&mut self, batch: Vec<Message>) {
        let snapshots = batch
            .iter()
            .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
            .count();
        let request = self.encode(&batch);
        let result = tokio::time::timeout(SNAPSHOT_SEND_TIMEOUT, self.client.send(request)).await;
        if let Ok(Err(status)) = &result {
            self.note_refusal(status);
        }
        let ok = matches!(result, Ok(Ok(_)));
        if !ok {
            let _ = self.reports.send(PeerReport::Unreachable(self.to));
        }
        for _ in 0..snapshots {
            let _ = self.reports.send(PeerReport::Snapshot { to: self.to, ok });
        }
    }
}

/// The inbound side: the `detcdpb.Peer` gRPC service.
pub struct PeerService<O> {
    cluster_id: u64,
    node: RaftHandle<O>,
    heard: HeardFrom,
    /// Refused senders, for throttling the warning (a leaf lock, held only to check it).
    warned: Mutex<WarnThrottle>,
}

impl<O: Send + 'static> PeerService<O> {
    /// Serves peers of cluster `cluster_id`, stepping their messages into `node`. Wrap it in
    /// `PeerServer` with `max_decoding_message_size(MAX_PEER_MESSAGE)`. Arrivals are recorded
    /// in `heard` (the local [`Transport::heard`]).
    pub fn new(cluster_id: u64, node: RaftHandle<O>, heard: HeardFrom) -> Self {
        PeerService {
            cluster_id,
            node,
            heard,
            warned: Mutex::default(),
        }
    }
}

impl<O: Send + 'static> PeerService<O> {
    async fn deliver(&self, batch: MessageBatch) -> Result<(), Status> {
        if batch.cluster_id != self.cluster_id {
            let warn = self
                .warned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .allow(batch.from);
            if warn {
                tracing::warn!(
                    from = %format!("{:x}", batch.from),
                    "rejected peer message: cluster ID mismatch (local {:x}, remote {:x})",
                    self.cluster_id,
                    batch.cluster_id
                );
            }
            return Err(Status::failed_precondition(format!(
                "cluster ID mismatch: local {:x}, remote {:x}",
                self.cluster_id, batch.cluster_id
            )));
        }
        self.heard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(batch.from, Instant::now());
        for bytes in batch.messages {
            let msg = Message::parse_from_bytes(&bytes)
                .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))?;
            self.node
                .step(msg)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl<O: Send + 'static> Peer for PeerService<O> {
    async fn send(&self, request: Request<MessageBatch>) -> Result<Response<SendAck>, Status> {
        self.deliver(request.into_inner()).await?;
        Ok(Response::new(SendAck {}))
    }

    async fn stream(
        &self,
        request: Request<tonic::Streaming<MessageBatch>>,
    ) -> Result<Response<SendAck>, Status> {
        let mut batches = request.into_inner();
        while let Some(batch) = batches.message().await? {
            self.deliver(batch).await?;
        }
        Ok(Response::new(SendAck {}))
    }
}
