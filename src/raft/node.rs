//! The one task that owns raft-rs' `RawNode`: it ticks, steps peer messages, takes proposals and
//! read requests, and runs the Ready loop in raft-rs' documented order. Committed entries are
//! applied by a task of their own ([`super::applier`]), which reports its progress back; this
//! task advances raft's applied index from that progress and records snapshot points behind
//! the applier's last durable flush.
//!
//! Ready order (the durability invariant): messages a leader may send before persisting go out
//! first; a received snapshot is saved and installed; new entries and the hard state are
//! appended to the WAL and fsynced **once per Ready**; only then are committed entries handed to
//! the applier and the messages that depend on the new state (votes, append acks) sent. The two
//! halves are `persist_ready` and `finish_ready`; between them the run loop waits out the time the fsync
//! took (`DurableLog::settle`: nothing in production, where fsync blocks in place; the injected
//! sync latency in the simulator), so a slow disk delays acks, applies and ticks as it would.
//!
//! Backpressure (as etcd): while more than [`MAX_APPLY_LAG`] committed entries wait to be
//! applied, proposals are refused with "too many requests".
//!
//! Commit durability (a member never answers from less than it acknowledged, across restarts
//! too): an entry is applied — and so acknowledged or served — only once a hard state carrying
//! a commit index that covers it is in the WAL. A commit learned in `advance` (the leader's own
//! write was the last one needed) gets its own hard-state record, fsynced unless this member is
//! the sole voter: a sole voter's durable entries are all committed, so recovery raises its
//! commit index to its last durable entry ([`RaftNode::start`]). At start the node applies
//! everything up to the recovered commit index before it returns, so the member serves nothing
//! older than it had acknowledged. Membership changes are applied to raft itself when they are
//! handed out (raft needs them at once); the machine's member table follows in apply order.
//! The commit mark ([`super::commit_mark`]) is refreshed every few ticks and after snapshots
//! without waiting, and on a clean stop waiting for it.
//!
//! A storage failure ends the node (either task; the other follows) and records why in the
//! shared status; the server then stops serving (the binary exits, as etcd does) rather than
//! answering from frozen state.
//!
//! Proposals carry a context `(member id, sequence)`; the member that proposed an entry resolves
//! its waiter when it applies that entry, whichever leader committed it. Sequences start at a
//! random point so a restart never reuses one.

use super::commit_mark::MARK_INTERVAL_TICKS;

mod conf_changes;
mod handle;
mod snapshot_points;
pub use snapshot_points::DEFAULT_SNAPSHOT_BYTES;

pub use handle::RaftHandle;

use super::applier::{self, proposal_context, ApplierLink, ApplyProgress, ApplyWork, Committed};
use super::durable::DurableLog;
use super::election_timer::ElectionTimer;
use super::read_index::{ReadIndexQueue, ReadWaiter};
use super::snapshot_transfer::SnapshotInbox;
use super::status::SharedStatus;
use super::storage::RaftStorage;
use super::transport::{PeerReport, Transport};
use super::{RaftError, StateMachine};
use raft::eraftpb::{ConfChangeV2, Entry, EntryType, Message};
use raft::{RawNode, Ready, Storage};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most committed entries that may wait to be applied before proposals are refused (etcd's
/// `maxGapBetweenApplyAndCommitIndex`).
pub const MAX_APPLY_LAG: u64 = 5000;

/// Timing and log-size settings of a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This member's raft id.
    pub id: u64,
    /// One tick (etcd's heartbeat interval).
    pub tick: Duration,
    /// Election timeout in ticks.
    pub election_ticks: usize,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: usize,
    /// Applied entries between two snapshots (etcd's `--snapshot-count`).
    pub snapshot_count: u64,
    /// Bytes of log entries between two snapshots, whatever their count.
    pub snapshot_bytes: u64,
    /// Entries kept in the log behind a snapshot for slow followers.
    pub catch_up_entries: u64,
    /// Seed for election-timeout randomisation (seeded in simulation).
    pub seed: u64,
}

/// What a node's handle can ask of it.
pub(crate) enum Command<O> {
    Propose {
        data: Vec<u8>,
        reply: applier::ProposalReply<O>,
    },
    ProposeConfChange {
        change: ConfChangeV2,
        still_valid: ConfCheck,
        reply: applier::ProposalReply<O>,
    },
    /// The leader's view of how far each member's log matches its own (None off the leader).
    Progress(oneshot::Sender<Option<LeaderProgress>>),
    ReadIndex(ReadWaiter),
    Step(Box<Message>),
    TransferLeader(u64),
    /// Records the commit mark and ends the node task (a clean shutdown).
    Stop(oneshot::Sender<()>),
}

/// Run by the raft task just before it proposes a membership change, once no other change
/// is pending: false if what the change was decided on has changed meanwhile.
pub type ConfCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// How far each member's log matches the leader's (for promoting a learner).
#[derive(Clone, Debug, Default)]
pub struct LeaderProgress {
    /// The leader's last log index.
    pub last_index: u64,
    /// Highest index known to match the leader's log, per member.
    pub matched: std::collections::BTreeMap<u64, u64>,
}

/// The raft task's state; `O` is what applying an entry gives its proposer.
pub struct RaftNode<O> {
    raw: RawNode<RaftStorage>,
    storage: RaftStorage,
    durable: DurableLog,
    applier: ApplierLink<O>,
    /// The applier's progress as last reported.
    apply: ApplyProgress,
    /// Index of the last committed entry handed to the applier.
    handed_out: u64,
    /// Waiters of proposals raft accepted, not yet sent to the applier (they go ahead of the
    /// next work sent, so before their entries).
    registrations: Vec<(u64, applier::ProposalReply<O>)>,
    transport: Transport,
    inbox: SnapshotInbox,
    commands: mpsc::Receiver<Command<O>>,
    reports: mpsc::UnboundedReceiver<PeerReport>,
    reads: ReadIndexQueue,
    status: Arc<SharedStatus>,
    next_seq: Arc<AtomicU64>,
    config: NodeConfig,
    ticks: u64,
    last_snapshot_index: u64,
    /// Bytes of entry data and context appended to the log since the last snapshot point.
    log_bytes_since_point: u64,
    election_timer: ElectionTimer,
    is_learner: bool,
    /// Highest commit index whose hard state and entries are durable in the WAL.
    durable_commit: u64,
    /// Index of the membership change that removed this member: the node ends once it is
    /// applied.
    removed_at: Option<u64>,
}

/// Everything `start` needs besides the config.
pub struct NodeParts<S> {
    /// Raft storage, already holding the recovered snapshot, entries and hard state.
    pub storage: RaftStorage,
    /// The WAL and snapshot files.
    pub durable: DurableLog,
    /// The state machine, restored to `applied`.
    pub machine: S,
    /// Index the state machine reflects.
    pub applied: u64,
    /// Outbound peer transport.
    pub transport: Transport,
    /// Snapshot images received from the leader (the same inbox the peer service fills).
    pub inbox: SnapshotInbox,
    /// Delivery reports from the transport.
    pub reports: mpsc::UnboundedReceiver<PeerReport>,
}

impl<O: Send + 'static> RaftNode<O> {
    /// Builds the node, spawns its raft and apply tasks and applies everything recovered as
    /// committed; returns the handle.
    pub async fn start<S: StateMachine<Output = O>>(
        config: NodeConfig,
        parts: NodeParts<S>,
    ) -> Result<RaftHandle<O>, RaftError> {
        let raft_config = raft::Config {
            id: config.id,
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            applied: parts.applied,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let initial = parts.storage.initial_state()?;
        let sole_voter = initial.conf_state.voters == [config.id];
        #[cfg(madsim)]
        let sole_voter = sole_voter && !crate::fault::active(crate::fault::Bug::ForgetCommitIndex);
        if sole_voter {
            // Every durable entry of a sole voter is committed (see the module doc).
            let last = parts.storage.last_index()?;
            if initial.hard_state.commit < last {
                parts.storage.set_commit(last);
            }
        }
        let durable_commit = parts.storage.initial_state()?.hard_state.commit;
        let raw = RawNode::new(&raft_config, parts.storage.clone(), &logger)?;
        let (tx, rx) = mpsc::channel(8192);
        let status = Arc::new(SharedStatus::default());
        let handle = RaftHandle {
            commands: tx,
            status: status.clone(),
            id: config.id,
        };
        let last_snapshot_index = parts.storage.latest_snapshot().get_metadata().index;
        let seq_start = madsim::rand::random::<u64>() >> 1;
        let election_timer = ElectionTimer::new(config.seed, config.id, config.election_ticks);
        let link = applier::spawn(
            parts.machine,
            config.id,
            config.tick,
            config.snapshot_count,
            status.clone(),
        );
        let mut node = RaftNode {
            raw,
            storage: parts.storage,
            durable: parts.durable,
            applier: link,
            apply: ApplyProgress {
                applied: parts.applied,
                durable: parts.applied,
            },
            handed_out: parts.applied,
            registrations: Vec::new(),
            transport: parts.transport,
            inbox: parts.inbox,
            commands: rx,
            reports: parts.reports,
            reads: ReadIndexQueue::default(),
            status,
            next_seq: Arc::new(AtomicU64::new(seq_start)),
            config,
            ticks: 0,
            last_snapshot_index,
            log_bytes_since_point: 0,
            election_timer,
            is_learner: false,
            durable_commit,
            removed_at: None,
        };
        node.election_timer.derandomize(&mut node.raw);
        // Apply everything recovered as committed before anyone can read this member.
        while node.raw.has_ready() {
            node.on_ready_settled().await?;
        }
        let committed = node.raw.raft.raft_log.committed;
        while node.apply.applied < committed {
            let progress = node.applier.progress.recv().await;
            node.on_progress(progress)?;
        }
        node.publish_status();
        tokio::spawn(async move {
            let reason = match node.run().await {
                Ok(()) => "stopped".to_string(),
                Err(RaftError::Removed) => {
                    tracing::warn!("this member was removed from the cluster; stopping");
                    RaftError::Removed.to_string()
                }
                Err(e) => {
                    tracing::error!(error = %e, "raft node stopped: storage failure");
                    format!("storage failure: {e}")
                }
            };
            node.status.set_stopped(reason);
        });
        Ok(handle)
    }

    async fn run(&mut self) -> Result<(), RaftError> {
        let mut ticker = tokio::time::interval(crate::io::clock::true_duration(self.config.tick));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Some(at) = self.removed_at {
                return self.leave(at).await;
            }
            tokio::select! {
                // biased: tokio picks unbiased branches with a process-global RNG, which would break
                // simulation replay.
                biased;
                _ = ticker.tick() => self.on_tick()?,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => {
                        if let Some(done) = self.on_command(cmd) {
                            return self.stop(done).await;
                        }
                        for _ in 0..512 {
                            match self.commands.try_recv() {
                                Ok(cmd) => {
                                    if let Some(done) = self.on_command(cmd) {
                                        return self.stop(done).await;
                                    }
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    None => return Ok(()),
                },
                Some(report) = self.reports.recv() => self.on_report(report)?,
                progress = self.applier.progress.recv() => self.on_progress(progress)?,
            }
            self.election_timer.derandomize(&mut self.raw);
            // A read round that completes inside a Ready lets the reads queued behind it start
            // at once, so keep going until no new round is issued.
            loop {
                let issued = self
                    .reads
                    .issue(self.ticks, self.config.election_ticks as u64);
                if let Some(ctx) = &issued {
                    self.raw.read_index(ctx.clone());
                }
                self.on_ready_settled().await?;
                if issued.is_none() || self.removed_at.is_some() {
                    break;
                }
            }
        }
    }

    fn on_tick(&mut self) -> Result<(), RaftError> {
        self.ticks += 1;
        self.raw.tick();
        if self.ticks.is_multiple_of(MARK_INTERVAL_TICKS) {
            self.durable.mark_committed(self.durable_commit)?;
        }
        Ok(())
    }

    /// The applier reported progress (None: it ended, after a storage failure it recorded):
    /// raft's applied index follows it, and a snapshot point may be due.
    fn on_progress(&mut self, progress: Option<ApplyProgress>) -> Result<(), RaftError> {
        let Some(mut progress) = progress else {
            return Err(RaftError::Stopped);
        };
        while let Ok(later) = self.applier.progress.try_recv() {
            progress = later;
        }
        self.apply = progress;
        if self.removed_at.is_some_and(|at| progress.applied >= at) {
            return Err(RaftError::Removed);
        }
        // After an installed snapshot raft's applied index is already past older reports; raft
        // takes no applied index past what it has committed and persisted.
        let log = &self.raw.raft.raft_log;
        let applied = progress.applied.min(log.committed).min(log.persisted);
        if applied > log.applied {
            self.raw.advance_apply_to(applied);
        }
        self.maybe_snapshot()?;
        self.publish_status();
        Ok(())
    }

    /// Hands work to the applier, after the registrations collected since the last work;
    /// fails once the applier has ended.
    fn send_to_applier(&mut self, work: ApplyWork<O>) -> Result<(), RaftError> {
        let stopped = |_| RaftError::Stopped;
        if !self.registrations.is_empty() {
            let proposals = std::mem::take(&mut self.registrations);
            self.applier
                .work
                .send(ApplyWork::Register(proposals))
                .map_err(stopped)?;
        }
        self.applier.work.send(work).map_err(stopped)
    }

    /// A clean stop: the applier applies what it was handed and flushes durably, the commit
    /// mark catches up, then the task ends.
    async fn stop(&mut self, done: oneshot::Sender<()>) -> Result<(), RaftError> {
        let (flushed, rx) = oneshot::channel();
        self.send_to_applier(ApplyWork::Stop(flushed))?;
        rx.await.map_err(|_| RaftError::Stopped)??;
        self.durable.mark_committed_now(self.durable_commit)?;
        tracing::info!(commit = self.durable_commit, "raft node stopped cleanly");
        let _ = done.send(());
        Ok(())
    }

    /// Handles one command; returns the reply channel of a stop request.
    fn on_command(&mut self, cmd: Command<O>) -> Option<oneshot::Sender<()>> {
        match cmd {
            Command::Propose { data, reply } => {
                self.propose(reply, |raw, ctx| raw.propose(ctx, data))
            }
            Command::ProposeConfChange {
                change,
                still_valid,
                reply,
            } => self.propose_conf_change(change, still_valid, reply),
            Command::Progress(reply) => {
                let r = &self.raw.raft;
                let progress = (r.state == raft::StateRole::Leader).then(|| LeaderProgress {
                    last_index: r.raft_log.last_index(),
                    matched: r.prs().iter().map(|(id, p)| (*id, p.matched)).collect(),
                });
                let _ = reply.send(progress);
            }
            Command::ReadIndex(waiter) => self.reads.enqueue(waiter),
            Command::Step(msg) => {
                #[cfg(madsim)]
                if crate::fault::active(crate::fault::Bug::VoteTwice)
                    && msg.get_msg_type() == raft::eraftpb::MessageType::MsgRequestVote
                    && msg.term == self.raw.raft.term
                {
                    self.raw.raft.vote = 0;
                }
                if let Err(e) = self.raw.step(*msg) {
                    tracing::debug!(error = %e, "dropped raft message");
                }
            }
            Command::TransferLeader(to) => self.raw.transfer_leader(to),
            Command::Stop(done) => return Some(done),
        }
        None
    }

    /// Proposes through `submit` (given raft and the proposal context) unless apply lags too
    /// far behind; the waiter is registered once raft has accepted the proposal.
    fn propose(
        &mut self,
        reply: applier::ProposalReply<O>,
        submit: impl FnOnce(&mut RawNode<RaftStorage>, Vec<u8>) -> raft::Result<()>,
    ) {
        if self.raw.raft.raft_log.committed > self.apply.applied + MAX_APPLY_LAG {
            let _ = reply.send(Err(RaftError::TooManyRequests));
            return;
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        match submit(&mut self.raw, proposal_context(self.config.id, seq)) {
            // Registered before the entry can be handed out: the applier sees it first.
            Ok(()) => self.registrations.push((seq, reply)),
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    fn on_report(&mut self, report: PeerReport) -> Result<(), RaftError> {
        match report {
            PeerReport::Removed => return Err(RaftError::Removed),
            PeerReport::Unreachable(id) => self.raw.report_unreachable(id),
            PeerReport::Snapshot { to, ok } => {
                let status = if ok {
                    raft::SnapshotStatus::Finish
                } else {
                    raft::SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
        }
        Ok(())
    }

    /// Handles one Ready, waiting out the time its fsync took before anything acts on it: votes
    /// and acks leave, and entries apply, only once they are durable.
    async fn on_ready_settled(&mut self) -> Result<(), RaftError> {
        if let Some(ready) = self.persist_ready().await? {
            self.durable.settle().await;
            self.finish_ready(ready)?;
        }
        Ok(())
    }

    /// The first half of a Ready: sends what may leave before persisting, installs a snapshot,
    /// appends and fsyncs entries and hard state. None if raft has nothing ready.
    async fn persist_ready(&mut self) -> Result<Option<Ready>, RaftError> {
        if !self.raw.has_ready() {
            return Ok(None);
        }
        let mut ready = self.raw.ready();
        if !ready.messages().is_empty() {
            self.send(ready.take_messages());
        }
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone()).await?;
        }
        for rs in ready.take_read_states() {
            let waiters = self.reads.confirmed(&rs.request_ctx);
            if !waiters.is_empty() {
                self.send_to_applier(ApplyWork::Reads {
                    index: rs.index,
                    waiters,
                })?;
            }
        }
        if !ready.entries().is_empty() {
            let appended: usize = (ready.entries().iter())
                .map(|e| e.data.len() + e.context.len())
                .sum();
            self.log_bytes_since_point += appended as u64;
            self.durable.append_entries(ready.entries())?;
            self.storage.append(ready.entries())?;
        }
        if let Some(hs) = ready.hs() {
            self.durable.set_hard_state(hs)?;
            self.storage.set_hard_state(hs.clone());
        }
        if ready.must_sync() || !ready.entries().is_empty() || ready.hs().is_some() {
            self.durable.sync()?;
            self.durable_commit = self.durable_commit.max(self.storage.commit());
        }
        Ok(Some(ready))
    }

    /// The second half of a Ready, once it is durable: hands committed entries to the
    /// applier, sends the messages that needed persistence, advances raft (its applied index
    /// follows the applier's reports).
    fn finish_ready(&mut self, mut ready: Ready) -> Result<(), RaftError> {
        let committed = ready.take_committed_entries();
        self.hand_out(committed)?;
        if self.removed_at.is_some() {
            // See `leave`: nothing is sent and raft does not advance.
            return Ok(());
        }
        if !ready.persisted_messages().is_empty() {
            self.send(ready.take_persisted_messages());
        }
        let mut light = self.raw.advance_append(ready);
        if let Some(commit) = light.commit_index() {
            self.storage.set_commit(commit);
            self.persist_commit(commit)?;
        }
        self.send(light.take_messages());
        self.hand_out(light.take_committed_entries())?;
        if self.removed_at.is_some() {
            return Ok(());
        }
        self.publish_status();
        Ok(())
    }

    /// Makes a commit index learned in `advance` durable before the entries it covers are
    /// applied (see the module doc on commit durability).
    fn persist_commit(&mut self, commit: u64) -> Result<(), RaftError> {
        if commit <= self.durable_commit {
            return Ok(());
        }
        #[cfg(madsim)]
        if crate::fault::active(crate::fault::Bug::ForgetCommitIndex) {
            return Ok(());
        }
        self.durable.set_hard_state(&self.raw.raft.hard_state())?;
        if self.raw.raft.prs().conf().voters().ids().len() > 1 {
            self.durable.sync()?;
        }
        self.durable_commit = commit;
        Ok(())
    }

    /// Hands committed entries, in order, to the applier. Membership changes take effect in
    /// raft at once (replayed ones after a restart too: raft's configuration is not persisted
    /// apart from the log).
    fn hand_out(&mut self, entries: Vec<Entry>) -> Result<(), RaftError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut batch = Vec::with_capacity(entries.len());
        for entry in entries {
            let conf = match entry.get_entry_type() {
                EntryType::EntryNormal => None,
                EntryType::EntryConfChangeV2 => Some(self.apply_conf_change(&entry)?),
                EntryType::EntryConfChange => {
                    tracing::warn!(index = entry.index, "ignoring a v1 conf change entry");
                    None
                }
            };
            batch.push(Committed { entry, conf });
            if self.removed_at.is_some() {
                // Entries past this member's removal are not its to apply.
                break;
            }
        }
        let last = batch.last().map_or(0, |c: &Committed| c.entry.index);
        self.handed_out = self.handed_out.max(last);
        self.send_to_applier(ApplyWork::Entries(batch))
    }

    /// Hands messages to the transport, a snapshot message with the image raft generated it
    /// from (generated since the last send: see [`RaftStorage::take_outgoing`]).
    fn send(&self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            self.transport.send(msgs, self.storage.take_outgoing());
        }
    }

    fn publish_status(&self) {
        let r = &self.raw.raft;
        #[cfg(madsim)]
        if r.state == raft::StateRole::Leader {
            crate::observe::leader(r.term, self.config.id);
        }
        self.status
            .store_raft(r.term, r.leader_id, r.raft_log.committed, self.is_learner);
    }
}
