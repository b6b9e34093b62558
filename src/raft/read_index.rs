//! Batched linearizable reads (raft ReadIndex).
//!
//! Callers queue a waiter; the raft task issues one `read_index` per batch with a fresh context
//! ([`ReadIndexQueue`]) and, once raft answers with the leader's commit index for that context,
//! hands the batch to the applier, which releases every waiter of it as soon as its applied
//! index reaches that index ([`PendingReads`]). A batch that gets no answer within
//! `retry_ticks` (lost message, no leader) is re-issued under a new context.
//!
//! Invariant: a waiter is released only when `applied >= index` for an index the leader
//! confirmed after the waiter was queued — that is what makes the read linearizable.

use std::collections::BTreeMap;
use tokio::sync::oneshot;

/// Reply channel of one linearizable read.
pub type ReadWaiter = oneshot::Sender<()>;

struct InFlight {
    waiters: Vec<ReadWaiter>,
    issued_at_tick: u64,
}

/// Read-index bookkeeping owned by the node task.
#[derive(Default)]
pub struct ReadIndexQueue {
    queued: Vec<ReadWaiter>,
    next_ctx: u64,
    in_flight: BTreeMap<u64, InFlight>,
}

impl ReadIndexQueue {
    /// Adds a waiter to the next batch.
    pub fn enqueue(&mut self, waiter: ReadWaiter) {
        self.queued.push(waiter);
    }

    /// Takes the queued waiters into a new batch and returns its context, if any are queued and
    /// no batch is waiting for raft (one round at a time: requests arriving meanwhile share the
    /// next round, as etcd does). Batches older than `retry_ticks` are folded into the new one so
    /// they are asked again.
    pub fn issue(&mut self, now_tick: u64, retry_ticks: u64) -> Option<Vec<u8>> {
        let stale: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, b)| now_tick.saturating_sub(b.issued_at_tick) >= retry_ticks)
            .map(|(ctx, _)| *ctx)
            .collect();
        for ctx in stale {
            if let Some(b) = self.in_flight.remove(&ctx) {
                self.queued.extend(b.waiters);
            }
        }
        self.queued.retain(|w| !w.is_closed());
        if self.queued.is_empty() || !self.in_flight.is_empty() {
            return None;
        }
        self.next_ctx += 1;
        let ctx = self.next_ctx;
        let waiters = std::mem::take(&mut self.queued);
        self.in_flight.insert(
            ctx,
            InFlight {
                waiters,
                issued_at_tick: now_tick,
            },
        );
        Some(ctx.to_be_bytes().to_vec())
    }

    /// Raft answered `ctx` with a read index: the waiters of that batch, which may be served
    /// once that index is applied (none for a context no batch waits for: a stale round).
    pub fn confirmed(&mut self, ctx: &[u8]) -> Vec<ReadWaiter> {
        let Ok(bytes) = <[u8; 8]>::try_from(ctx) else {
            return Vec::new();
        };
        self.in_flight
            .remove(&u64::from_be_bytes(bytes))
            .map(|b| b.waiters)
            .unwrap_or_default()
    }
}

/// Confirmed reads waiting for the applied index to reach their read index (owned by the
/// applier).
#[derive(Default)]
pub struct PendingReads {
    by_index: BTreeMap<u64, Vec<ReadWaiter>>,
}

impl PendingReads {
    /// Adds reads confirmed at `index`.
    pub fn add(&mut self, index: u64, waiters: Vec<ReadWaiter>) {
        if !waiters.is_empty() {
            self.by_index.entry(index).or_default().extend(waiters);
        }
    }

    /// Releases every read whose index is applied.
    pub fn release(&mut self, applied: u64) {
        let later = self.by_index.split_off(&(applied + 1));
        for waiter in std::mem::replace(&mut self.by_index, later)
            .into_values()
            .flatten()
        {
            let _ = waiter.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiter_released_only_after_apply_reaches_index() {
        let mut q = ReadIndexQueue::default();
        let (tx, mut rx) = oneshot::channel();
        q.enqueue(tx);
        let ctx = q.issue(0, 10).expect("batch");
        let mut pending = PendingReads::default();
        pending.add(7, q.confirmed(&ctx));
        pending.release(6);
        assert!(rx.try_recv().is_err());
        pending.release(7);
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn unanswered_batch_is_reissued_under_new_context() {
        let mut q = ReadIndexQueue::default();
        let (tx, mut rx) = oneshot::channel();
        q.enqueue(tx);
        let first = q.issue(0, 10).expect("batch");
        let (tx2, mut rx2) = oneshot::channel();
        q.enqueue(tx2);
        assert!(q.issue(5, 10).is_none(), "one round at a time");
        let second = q.issue(10, 10).expect("retried");
        assert_ne!(first, second);
        assert!(
            q.confirmed(&first).is_empty(),
            "stale context must not release"
        );
        let mut pending = PendingReads::default();
        pending.add(3, q.confirmed(&second));
        pending.release(3);
        assert!(rx.try_recv().is_ok());
        assert!(
            rx2.try_recv().is_ok(),
            "the waiter queued meanwhile joined the retried round"
        );
    }
}
