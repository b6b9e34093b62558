//! The apply task: owns the state machine and applies, in log order, the committed entries the
//! raft task hands it, so that applying, backend commits and their fsyncs never hold up ticks,
//! heartbeats and WAL appends (etcd applies off its raft loop the same way).
//!
//! Invariants:
//! - Work arrives over one FIFO channel from the raft task, so a proposal's waiter (registered
//!   right after raft accepted the proposal) is known before its entry arrives, and entries,
//!   confirmed reads, snapshot restores and the stop request are handled in the order the raft
//!   task produced them. The raft task hands out only entries whose commit is durable in the WAL
//!   (see [`super::node`]).
//! - After every batch the applier commits what it applied to the machine's backend and reports
//!   [`ApplyProgress`]: the applied index, and the applied index of its last durable flush. The
//!   raft task advances raft's applied index from it and compacts its log only behind the
//!   durable one. A durable flush happens every [`MAX_UNSYNCED_ENTRIES`] applied entries (or
//!   a quarter of `--snapshot-count`, if smaller) or [`MAX_UNSYNCED_BYTES`] of entry data,
//!   after a restore and at a clean stop.
//! - A confirmed read is released once the applied index reaches its read index.
//! - Entries the machine already reflects (replayed from the WAL after a restart) are skipped.
//! - A storage failure ends the task and records why in the shared status; the raft task sees
//!   the progress channel close and ends too.

use super::read_index::{PendingReads, ReadWaiter};
use super::status::SharedStatus;
use super::{RaftError, RestoreError, StateMachine};
use crate::storage::StorageError;
use raft::eraftpb::{ConfChangeV2, ConfState, Entry, EntryType};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Where a proposer waits for the result of applying its entry.
pub(crate) type ProposalReply<O> = oneshot::Sender<Result<O, RaftError>>;

/// A committed entry handed to the applier; a membership change comes with the configuration
/// raft adopted when the raft task applied it to raft itself.
pub(crate) struct Committed {
    pub entry: Entry,
    pub conf: Option<(ConfChangeV2, ConfState)>,
}

/// What the raft task sends the applier.
pub(crate) enum ApplyWork<O> {
    /// The waiters of proposals raft accepted, under their sequence numbers.
    Register(Vec<(u64, ProposalReply<O>)>),
    /// Committed entries, in log order.
    Entries(Vec<Committed>),
    /// Reads the leader confirmed at `index`.
    Reads {
        index: u64,
        waiters: Vec<ReadWaiter>,
    },
    /// Replace the state with a snapshot image received from the leader.
    Restore {
        index: u64,
        image: Box<dyn Read + Send>,
        done: oneshot::Sender<Result<(), RestoreError>>,
    },
    /// Flush durably and end.
    Stop(oneshot::Sender<Result<(), StorageError>>),
}

/// How far the applier has got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ApplyProgress {
    /// Index of the last entry applied.
    pub applied: u64,
    /// Applied index as of the last durable flush of the machine's backend.
    pub durable: u64,
}

/// The raft task's ends of the applier's channels.
pub(crate) struct ApplierLink<O> {
    pub work: mpsc::UnboundedSender<ApplyWork<O>>,
    pub progress: mpsc::UnboundedReceiver<ApplyProgress>,
}

/// The apply task's state.
struct Applier<S: StateMachine> {
    machine: S,
    me: u64,
    waiters: BTreeMap<u64, ProposalReply<S::Output>>,
    reads: PendingReads,
    status: Arc<SharedStatus>,
    progress: mpsc::UnboundedSender<ApplyProgress>,
    at: ApplyProgress,
    /// The progress last reported.
    reported: ApplyProgress,
    /// Applied entries between two durable flushes.
    durable_every: u64,
    /// Bytes of entry data applied since the last durable flush.
    unsynced_bytes: u64,
    unflushed: bool,
    /// A batch was handled since the last tick.
    busy: bool,
    ticks: u64,
}

/// Most work items handled before the applier commits and reports progress.
const BATCH: usize = 512;

/// Most applied entries the backend holds without an fsync (fewer with a small
/// `--snapshot-count`: a quarter of it): bounds the WAL replay after a crash and the stall of
/// one durable flush, which delays every reply behind it. redb writes a non-durable commit's pages only at the
/// next durable one, so a flush writes and syncs all of them: for entries of 1 KiB, 10 000
/// took ~24 ms (14 MB), 2 500 take ~6 ms (3.6 MB), about etcd's commit every 100 ms at 25 000
/// puts/s.
const MAX_UNSYNCED_ENTRIES: u64 = 2_500;

/// Most bytes of entry data applied without an fsync, whatever their count: bounds by bytes
/// too the work of one durable flush and of the WAL replay after a crash (2 500 entries of
/// 1 MiB were 2.5 GB). With 1 MB values (400 puts, 4 clients) p99.9 fell from 80 ms to 24–36 ms.
const MAX_UNSYNCED_BYTES: u64 = 4 << 20;

/// Spawns the apply task over `machine` (whose state is durable at its applied index) and
/// returns the raft task's ends of its channels.
pub(crate) fn spawn<S: StateMachine>(
    machine: S,
    me: u64,
    tick: Duration,
    snapshot_count: u64,
    status: Arc<SharedStatus>,
) -> ApplierLink<S::Output> {
    let (work_tx, work_rx) = mpsc::unbounded_channel();
    let (progress_tx, progress_rx) = mpsc::unbounded_channel();
    let applied = machine.applied_index();
    let at = ApplyProgress {
        applied,
        durable: applied,
    };
    status.set_applied(applied);
    // The raft task learns where the machine starts (after a clean stop it may be past raft's
    // own applied index, which starts at the snapshot point).
    let _ = progress_tx.send(at);
    let mut applier = Applier {
        machine,
        me,
        waiters: BTreeMap::new(),
        reads: PendingReads::default(),
        status,
        progress: progress_tx,
        at,
        reported: at,
        // Several durable flushes per snapshot interval, so a point can come by bytes first.
        durable_every: (snapshot_count / 4).clamp(1, MAX_UNSYNCED_ENTRIES),
        unsynced_bytes: 0,
        unflushed: false,
        busy: false,
        ticks: 0,
    };
    tokio::spawn(async move {
        if let Err(e) = applier.run(work_rx, tick).await {
            tracing::error!(error = %e, "apply task stopped: storage failure");
            // Recorded before the progress channel closes (with `applier`), so the raft task,
            // which ends when it does, never records a vaguer reason first.
            applier.status.set_stopped(format!("storage failure: {e}"));
        }
    });
    ApplierLink {
        work: work_tx,
        progress: progress_rx,
    }
}

impl<S: StateMachine> Applier<S> {
    async fn run(
        &mut self,
        mut work: mpsc::UnboundedReceiver<ApplyWork<S::Output>>,
        tick: Duration,
    ) -> Result<(), RaftError> {
        let mut ticker = tokio::time::interval(crate::io::clock::true_duration(tick));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // biased: unbiased select draws from a process-global RNG (simulation replay).
                biased;
                _ = ticker.tick() => self.on_tick()?,
                item = work.recv() => {
                    // The raft task ended (its own failure, recorded by it): nothing to flush for.
                    let Some(item) = item else { return Ok(()) };
                    if self.handle(item)? {
                        return Ok(());
                    }
                    for _ in 1..BATCH {
                        let Ok(item) = work.try_recv() else { break };
                        if self.handle(item)? {
                            return Ok(());
                        }
                    }
                    self.finish_batch()?;
                }
            }
        }
    }

    fn on_tick(&mut self) -> Result<(), RaftError> {
        self.ticks += 1;
        if self.ticks.is_multiple_of(128) {
            self.waiters.retain(|_, w| !w.is_closed());
        }
        // Large batches of background work (compacted records to delete) only when idle: under
        // load a large one would hold up the entries behind it. Nothing is unflushed between
        // batches.
        let idle = !std::mem::take(&mut self.busy);
        self.machine.tick(idle)?;
        Ok(())
    }

    /// Handles one work item; true once a stop request has been served.
    fn handle(&mut self, item: ApplyWork<S::Output>) -> Result<bool, RaftError> {
        match item {
            ApplyWork::Register(proposals) => self.waiters.extend(proposals),
            ApplyWork::Entries(entries) => {
                for committed in entries {
                    self.apply(committed);
                }
            }
            ApplyWork::Reads { index, waiters } => self.reads.add(index, waiters),
            ApplyWork::Restore {
                index,
                mut image,
                done,
            } => {
                let result = self.machine.restore(index, &mut image);
                if result.is_ok() {
                    // Changes not flushed yet are superseded by the image, which is durable.
                    self.unflushed = false;
                    self.unsynced_bytes = 0;
                    self.at.applied = self.at.applied.max(index);
                    self.at.durable = self.at.durable.max(index);
                }
                let _ = done.send(result);
            }
            ApplyWork::Stop(done) => {
                let result = self.machine.flush(true);
                self.status.set_applied(self.at.applied);
                let _ = done.send(result);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Applies one committed entry (unless the machine already reflects it) and answers its
    /// proposer if this member proposed it.
    fn apply(&mut self, committed: Committed) {
        let Committed { entry, conf } = committed;
        let index = entry.index;
        let fresh = index > self.machine.applied_index();
        let output = match (conf, entry.get_entry_type()) {
            _ if !fresh => None,
            (Some((change, cs)), _) => Some(self.machine.apply_conf_change(index, &change, &cs)),
            // Empty entries (a new leader's) move the machine's applied index too.
            (None, EntryType::EntryNormal) => Some(self.machine.apply(index, &entry.data)),
            (None, _) => None,
        };
        if output.is_some() {
            self.unflushed = true;
            self.unsynced_bytes += entry.data.len() as u64;
        }
        self.at.applied = self.at.applied.max(index);
        if !fresh {
            // Skipped entries are in the backend's durable state (restart, restore).
            self.at.durable = self.at.durable.max(index);
        }
        if let (Some(output), Some(seq)) = (output, own_proposal(&entry.context, self.me)) {
            if let Some(waiter) = self.waiters.remove(&seq) {
                let _ = waiter.send(Ok(output));
            }
        }
    }

    /// Commits the batch to the backend (durably every `durable_every` entries or
    /// [`MAX_UNSYNCED_BYTES`] of them), releases the reads it made servable and reports
    /// progress.
    fn finish_batch(&mut self) -> Result<(), RaftError> {
        if self.unflushed {
            let durable = self.at.applied >= self.at.durable + self.durable_every
                || self.unsynced_bytes >= MAX_UNSYNCED_BYTES;
            self.machine.flush(durable)?;
            self.unflushed = false;
            if durable {
                self.unsynced_bytes = 0;
            }
            #[cfg(madsim)]
            let durable = durable || crate::fault::active(crate::fault::Bug::SnapshotPastDurable);
            if durable {
                self.at.durable = self.at.applied;
            }
        }
        self.busy = true;
        self.reads.release(self.at.applied);
        if self.at != self.reported {
            self.status.set_applied(self.at.applied);
            // The raft task may have ended; its failure is recorded by it.
            let _ = self.progress.send(self.at);
            self.reported = self.at;
        }
        Ok(())
    }
}

/// The context a proposal carries: the proposing member and its sequence number.
pub(crate) fn proposal_context(member: u64, seq: u64) -> Vec<u8> {
    let mut ctx = Vec::with_capacity(16);
    ctx.extend_from_slice(&member.to_be_bytes());
    ctx.extend_from_slice(&seq.to_be_bytes());
    ctx
}

/// The sequence number of an entry `me` proposed.
fn own_proposal(ctx: &[u8], me: u64) -> Option<u64> {
    let member = u64::from_be_bytes(ctx.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(ctx.get(8..16)?.try_into().ok()?);
    (member == me).then_some(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposal_context_round_trip_identifies_own_proposals() {
        let ctx = proposal_context(7, 42);
        assert_eq!(own_proposal(&ctx, 7), Some(42));
        assert_eq!(own_proposal(&ctx, 8), None);
        assert_eq!(own_proposal(&[], 7), None);
    }
}
