//! Peer transport: raft messages between members over detcd's `detcdpb.Peer` gRPC service.
//!
//! Outbound, each peer has a queue drained by its own task, which batches whatever is waiting
//! and pipelines the batches onto one long-lived `Stream` call. When the stream breaks, the peer
//! is reported unreachable, queued messages are dropped (raft retransmits) and the stream is
//! reopened. A snapshot message goes with its state machine image on a call of its own, on a
//! task of its own ([`super::snapshot_transfer`]), so that heartbeats and appends keep flowing
//! meanwhile; its outcome is reported to raft. A full queue drops messages too, so a dead peer
//! never blocks the node task.
//! A stream that has carried messages for [`SILENCE_LIMIT`] without a word back from the peer
//! (raft answers nearly everything: appends, heartbeats, votes) is presumed stuck and reopened:
//! a connection through a partition can neither fail nor deliver for a long time (TCP backs off
//! its retransmissions, up to 10 s in madsim's model), and HTTP/2 keep-alive, which would cut it
//! in production, does not exist in the simulator (seed 1837: no leader for 8 s after a
//! partition healed, because one member's messages waited behind a backed-off connection).
//!
//! Inbound, [`PeerService`] decodes each message and steps it into the local node (a snapshot
//! once its image is on disk, in the [`SnapshotInbox`]). A batch from
//! another cluster (a member started with another `--initial-cluster-token`) is refused with
//! `FailedPrecondition`; both sides warn about it, each at most once per [`WARN_INTERVAL`] per
//! peer, since the sender reconnects and is refused again every [`RECONNECT_BACKOFF`].

use super::dial::{DialError, Dialer};
use super::node::RaftHandle;
use super::snapshot_transfer::{self, SnapshotInbox, TransferError};
use super::SnapshotImage;
use crate::pb::detcdpb::peer_client::PeerClient;
use crate::pb::detcdpb::peer_server::Peer;
use crate::pb::detcdpb::{MessageBatch, SendAck, SnapshotChunk};
use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

const QUEUE_DEPTH: usize = 4096;
const MAX_BATCH: usize = 256;
/// The largest message a peer accepts (a batch of appends; snapshot images come in chunks).
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
    /// A peer refused our messages because this member was removed from the cluster.
    Removed,
    /// A snapshot sent to `to` succeeded or failed.
    Snapshot {
        /// Receiver of the snapshot.
        to: u64,
        /// Whether it was delivered.
        ok: bool,
    },
}

/// A peer's outbound queue and the URL its sender task talks to.
struct PeerQueue {
    url: String,
    tx: mpsc::Sender<Outbound>,
}

/// Routes outbound raft messages to per-peer queues.
#[derive(Clone)]
pub struct Transport {
    from: u64,
    cluster_id: u64,
    queues: Arc<RwLock<BTreeMap<u64, PeerQueue>>>,
    reports: mpsc::UnboundedSender<PeerReport>,
    heard: HeardFrom,
    dialer: Dialer,
}

impl Transport {
    /// The record of when each peer was last heard from, for [`PeerService::new`].
    pub fn heard(&self) -> HeardFrom {
        self.heard.clone()
    }

    /// A transport for member `from` that dials peers with `dialer`; reports go to the
    /// returned receiver.
    pub fn new(
        from: u64,
        cluster_id: u64,
        dialer: Dialer,
    ) -> (Self, mpsc::UnboundedReceiver<PeerReport>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let t = Transport {
            from,
            cluster_id,
            queues: Arc::default(),
            reports: tx,
            heard: Arc::default(),
            dialer,
        };
        (t, rx)
    }

    /// Starts (or replaces) the sender task for peer `id` at `url` (e.g. `http://10.0.0.2:2380`).
    pub fn add_peer(&self, id: u64, url: &str) -> Result<(), DialError> {
        let channel = self
            .dialer
            .endpoint(url)?
            .configure(|e| {
                e.connect_timeout(Duration::from_secs(1))
                    .http2_keep_alive_interval(Duration::from_secs(1))
                    .keep_alive_timeout(Duration::from_secs(3))
                    .keep_alive_while_idle(true)
            })
            .connect_lazy();
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let url = url.to_string();
        self.write_queues().insert(id, PeerQueue { url, tx });
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

    /// Queues messages for their receivers; never blocks. A snapshot message leaves with
    /// `image` (the image raft's snapshot was generated from); without one it fails at once.
    pub fn send(&self, msgs: Vec<Message>, image: Option<Arc<dyn SnapshotImage>>) {
        let queues = self.queues.read().unwrap_or_else(|e| e.into_inner());
        for msg in msgs {
            let to = msg.to;
            let is_snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
            let outbound = Outbound {
                image: image.clone().filter(|_| is_snapshot),
                msg,
            };
            let delivered = queues
                .get(&to)
                .is_some_and(|q| q.tx.try_send(outbound).is_ok());
            if !delivered {
                let _ = self.reports.send(PeerReport::Unreachable(to));
                if is_snapshot {
                    let _ = self.reports.send(PeerReport::Snapshot { to, ok: false });
                }
            }
        }
    }

    /// Makes the peers exactly `peers` (id → URL): senders start for new peers and for peers
    /// whose URL changed; a dropped peer's sender ends once its queue is drained.
    pub fn set_peers(&self, peers: &BTreeMap<u64, String>) -> Result<(), DialError> {
        let current: BTreeMap<u64, String> = {
            let queues = self.queues.read().unwrap_or_else(|e| e.into_inner());
            queues.iter().map(|(id, q)| (*id, q.url.clone())).collect()
        };
        self.write_queues().retain(|id, _| peers.contains_key(id));
        for (id, url) in peers {
            if current.get(id) != Some(url) {
                tracing::info!(peer = %format!("{id:x}"), %url, "peer added or moved");
                self.add_peer(*id, url)?;
            }
        }
        Ok(())
    }

    fn write_queues(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u64, PeerQueue>> {
        self.queues.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A queued message, with the image a snapshot message carries.
pub struct Outbound {
    msg: Message,
    image: Option<Arc<dyn SnapshotImage>>,
}

struct PeerSender {
    to: u64,
    from: u64,
    cluster_id: u64,
    client: PeerClient<Channel>,
    queue: mpsc::Receiver<Outbound>,
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
                        if batch.is_empty() {
                            continue;
                        }
                        if tx.try_send(self.encode(&batch)).is_err() {
                            break true;
                        }
                        sent_at = Some(Instant::now());
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
                    if m.msg.get_msg_type() == MessageType::MsgSnapshot {
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

    /// Warns (throttled) when the peer refused our messages rather than being unreachable; a
    /// peer that knows this member was removed ends it.
    fn note_refusal(&mut self, status: &Status) {
        if status.code() == tonic::Code::PermissionDenied {
            let _ = self.reports.send(PeerReport::Removed);
        }
        if status.code() == tonic::Code::FailedPrecondition && self.warned.allow(self.to) {
            tracing::warn!(
                peer = %format!("{:x}", self.to),
                local_cluster_id = %format!("{:x}", self.cluster_id),
                "peer rejected our raft messages: {}",
                status.message()
            );
        }
    }

    /// Takes what is queued (up to [`MAX_BATCH`]) as one batch; snapshot messages leave the
    /// batch to go on their own transfer.
    fn take_batch(&mut self, first: Outbound) -> Vec<Message> {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(out) = next.take() {
            if out.msg.get_msg_type() == MessageType::MsgSnapshot {
                self.start_snapshot(out);
            } else {
                batch.push(out.msg);
            }
            if batch.len() < MAX_BATCH {
                next = self.queue.try_recv().ok();
            }
        }
        batch
    }

    /// Streams a snapshot message and its image on a task of its own; raft hears how it went.
    fn start_snapshot(&self, out: Outbound) {
        let (to, reports) = (self.to, self.reports.clone());
        let (client, from, cluster_id) = (self.client.clone(), self.from, self.cluster_id);
        tokio::spawn(async move {
            let result = match out.image {
                Some(image) => {
                    snapshot_transfer::send(client, from, cluster_id, out.msg, image).await
                }
                None => Err(TransferError::NoImage),
            };
            if let Err(e) = &result {
                tracing::warn!(to = %format!("{to:x}"), error = %e, "sending a snapshot failed");
                let _ = reports.send(PeerReport::Unreachable(to));
            } else {
                tracing::info!(to = %format!("{to:x}"), "sent a snapshot");
            }
            let _ = reports.send(PeerReport::Snapshot {
                to,
                ok: result.is_ok(),
            });
        });
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
}

/// The inbound side: the `detcdpb.Peer` gRPC service.
pub struct PeerService<O> {
    cluster_id: u64,
    node: RaftHandle<O>,
    heard: HeardFrom,
    /// Where received snapshot images go.
    inbox: SnapshotInbox,
    /// Refused senders, for throttling the warning (a leaf lock, held only to check it).
    warned: Mutex<WarnThrottle>,
    /// Whether a member id was removed from the cluster.
    removed: RemovedCheck,
}

/// Tells whether a member id was removed from the cluster (its messages are refused).
pub type RemovedCheck = Arc<dyn Fn(u64) -> bool + Send + Sync>;

impl<O: Send + 'static> PeerService<O> {
    /// Serves peers of cluster `cluster_id`, stepping their messages into `node` and writing
    /// received snapshot images to `inbox`. Wrap it in `PeerServer` with
    /// `max_decoding_message_size(MAX_PEER_MESSAGE)`. Arrivals are recorded in `heard` (the
    /// local [`Transport::heard`]).
    pub fn new(
        cluster_id: u64,
        node: RaftHandle<O>,
        heard: HeardFrom,
        inbox: SnapshotInbox,
        removed: RemovedCheck,
    ) -> Self {
        PeerService {
            cluster_id,
            node,
            heard,
            inbox,
            warned: Mutex::default(),
            removed,
        }
    }

    /// Refuses a sender from another cluster or one that was removed (etcd answers it 410 Gone,
    /// and it stops); records when a peer of ours was heard from.
    fn admit(&self, from: u64, cluster_id: u64) -> Result<(), Status> {
        if (self.removed)(from) {
            return Err(Status::permission_denied(
                "the member has been permanently removed from the cluster",
            ));
        }
        if cluster_id != self.cluster_id {
            let warn = self
                .warned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .allow(from);
            if warn {
                tracing::warn!(
                    from = %format!("{from:x}"),
                    "rejected peer message: cluster ID mismatch (local {:x}, remote {cluster_id:x})",
                    self.cluster_id,
                );
            }
            return Err(Status::failed_precondition(format!(
                "cluster ID mismatch: local {:x}, remote {cluster_id:x}",
                self.cluster_id
            )));
        }
        self.heard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(from, Instant::now());
        Ok(())
    }

    async fn step(&self, bytes: &[u8]) -> Result<(), Status> {
        let msg = Message::parse_from_bytes(bytes)
            .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))?;
        self.node
            .step(msg)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))
    }

    async fn deliver(&self, batch: MessageBatch) -> Result<(), Status> {
        self.admit(batch.from, batch.cluster_id)?;
        for bytes in batch.messages {
            self.step(&bytes).await?;
        }
        Ok(())
    }

    /// Receives one snapshot: its image into the inbox, then the message into raft.
    async fn receive_snapshot(
        &self,
        chunks: &mut tonic::Streaming<SnapshotChunk>,
    ) -> Result<(), Status> {
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        self.admit(first.from, first.cluster_id)?;
        let msg = Message::parse_from_bytes(&first.message)
            .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))?;
        if msg.get_msg_type() != MessageType::MsgSnapshot {
            return Err(Status::invalid_argument("not a snapshot message"));
        }
        let meta = msg.get_snapshot().get_metadata();
        let storage_failed = |e: crate::storage::StorageError| {
            tracing::error!(error = %e, "cannot store a received snapshot");
            Status::internal(e.to_string())
        };
        let mut incoming = self
            .inbox
            .create(meta.term, meta.index)
            .map_err(storage_failed)?;
        let mut chunk = first;
        while !chunk.last {
            incoming.write(&chunk.data).map_err(storage_failed)?;
            chunk = chunks
                .message()
                .await?
                .ok_or_else(|| Status::aborted(TransferError::Truncated.to_string()))?;
        }
        incoming.write(&chunk.data).map_err(storage_failed)?;
        incoming.finish(chunk.checksum).map_err(|e| {
            tracing::warn!(error = %e, "refused a received snapshot");
            Status::data_loss(e.to_string())
        })?;
        tracing::info!(
            index = meta.index,
            term = meta.term,
            "received a snapshot image"
        );
        self.node
            .step(msg)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))
    }
}

#[tonic::async_trait]
impl<O: Send + 'static> Peer for PeerService<O> {
    async fn snapshot(
        &self,
        request: Request<tonic::Streaming<SnapshotChunk>>,
    ) -> Result<Response<SendAck>, Status> {
        self.receive_snapshot(&mut request.into_inner()).await?;
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
