//! The raft-rs `Storage` the node hands to `RawNode`: raft-rs' in-memory log (`MemStorage`) plus
//! the latest snapshot point, and a source of snapshot images so that a leader can ship the
//! state to a lagging follower.
//!
//! Invariants: the log held here is a copy of what the WAL holds durably (the node writes the WAL
//! first, then this). `snapshot()` carries no state: its metadata names the index of a
//! [`SnapshotImage`] opened from the [`SnapshotSource`] (a consistent backend view, cheap to
//! open), which is kept as the *outgoing* image until the node's next send hands it to the
//! transport ([`RaftStorage::take_outgoing`]); raft-rs asks for snapshots on the node task, and
//! the message it builds leaves with the first send after that. An image is reused for another
//! follower only while someone still holds it, so no view outlives its transfers.

use super::SnapshotImage;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

/// Opens an image of the state machine's current state.
pub type SnapshotSource =
    Arc<dyn Fn() -> Result<Arc<dyn SnapshotImage>, crate::storage::StorageError> + Send + Sync>;

/// The data of the snapshots this storage produces: the state travels as an image alongside.
pub const STREAMED_SNAPSHOT_DATA: &[u8] = b"detcd-streamed-image";

/// A generated snapshot and its image, while a transfer still holds the image.
type Generated = (Snapshot, Weak<dyn SnapshotImage>);

/// Log + hard state + latest snapshot, shared between the node task and raft-rs.
#[derive(Clone, Default)]
pub struct RaftStorage {
    log: MemStorage,
    /// The newest snapshot point (metadata only).
    latest_snapshot: Arc<RwLock<Snapshot>>,
    /// Where snapshot images for a lagging follower come from.
    source: Option<SnapshotSource>,
    /// The last snapshot generated, and its image while a transfer still holds it.
    generated: Arc<Mutex<Option<Generated>>>,
    /// The image of the snapshot generated since the node's last send.
    outgoing: Arc<Mutex<Option<Arc<dyn SnapshotImage>>>>,
    /// The configurations adopted since the latest snapshot point, with the index of the entry
    /// (or snapshot) that brought each in, oldest first; the first is in force at that point.
    confs: Arc<Mutex<Vec<(u64, ConfState)>>>,
    /// Index the log is being compacted to (exclusive), a step at a time.
    compact_target: Arc<AtomicU64>,
}

/// Most log entries one [`RaftStorage::compact_step`] drops.
pub const COMPACT_STEP: u64 = 4096;

impl RaftStorage {
    /// Empty storage whose initial membership is `voters` at index 0 (tests only: a member's
    /// storage starts from its recovered snapshot point, the bootstrap one for a new cluster;
    /// see `server::bootstrap`).
    #[cfg(test)]
    pub fn new_cluster(voters: Vec<u64>) -> Self {
        let storage = Self::default();
        let conf = ConfState::from((voters, vec![]));
        storage.log.initialize_with_conf_state(conf.clone());
        *lock(&storage.confs) = vec![(0, conf)];
        storage
    }

    /// Sets where snapshots sent to followers get their images.
    pub fn set_snapshot_source(&mut self, source: SnapshotSource) {
        self.source = Some(source);
    }

    /// The image of the snapshot raft asked for since the last call, for the transport to
    /// stream with the snapshot message (see the module docs).
    pub fn take_outgoing(&self) -> Option<Arc<dyn SnapshotImage>> {
        lock(&self.outgoing).take()
    }

    /// A snapshot of the machine's current state, with its index, term and configuration.
    fn generate(&self, request_index: u64) -> raft::Result<Snapshot> {
        let unavailable = || raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable);
        let mut cached = lock(&self.generated);
        // A follower continues from the snapshot with the log entries after it, so the cached
        // one serves only while those are still in the log (and its image is still open).
        let first = self.log.first_index()?;
        if let Some((snap, image)) = cached.as_ref() {
            let index = snap.get_metadata().index;
            if index >= request_index && index + 1 >= first {
                if let Some(image) = image.upgrade() {
                    *lock(&self.outgoing) = Some(image);
                    return Ok(snap.clone());
                }
            }
        }
        let source = self.source.as_ref().ok_or_else(unavailable)?;
        let image = source().map_err(|e| {
            tracing::warn!(error = %e, "cannot open a snapshot image");
            unavailable()
        })?;
        let index = image.index();
        if index < request_index || index == 0 || index + 1 < first {
            return Err(unavailable());
        }
        let mut snap = Snapshot {
            data: STREAMED_SNAPSHOT_DATA.to_vec().into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = self.log.term(index)?;
        meta.set_conf_state(self.conf_state_at(index)?);
        *cached = Some((snap.clone(), Arc::downgrade(&image)));
        *lock(&self.outgoing) = Some(image);
        Ok(snap)
    }

    /// Installs a snapshot (restart recovery or one received from the leader): the log is reset
    /// to start right after it.
    pub fn install_snapshot(&self, snapshot: Snapshot) -> raft::Result<()> {
        self.log.wl().apply_snapshot(snapshot.clone())?;
        let meta = snapshot.get_metadata();
        *lock(&self.confs) = vec![(meta.index, meta.get_conf_state().clone())];
        *self.write_snapshot() = snapshot;
        Ok(())
    }

    /// Records a snapshot taken locally at `snapshot.metadata.index`, and that log entries up
    /// to `compact_to` (exclusive), which must not exceed the snapshot index + 1, are to be
    /// dropped: the first step of that now, the rest by [`RaftStorage::compact_step`].
    pub fn record_snapshot(&self, snapshot: Snapshot, compact_to: u64) -> raft::Result<()> {
        let index = snapshot.get_metadata().index;
        {
            // Keep the configuration in force at the point and those adopted after it.
            let mut confs = lock(&self.confs);
            let in_force = confs.iter().rposition(|(at, _)| *at <= index).unwrap_or(0);
            confs.drain(..in_force);
        }
        *self.write_snapshot() = snapshot;
        self.compact_target.fetch_max(compact_to, Ordering::Relaxed);
        self.compact_step()
    }

    /// Drops at most [`COMPACT_STEP`] more entries towards the target of the last snapshot
    /// point. Entries go a step at a time because freeing a whole snapshot interval at once
    /// (100 000 entries of 1 KiB) held the node task ~15 ms.
    pub fn compact_step(&self) -> raft::Result<()> {
        let first = self.log.first_index()?;
        let to = self
            .compact_target
            .load(Ordering::Relaxed)
            .min(first + COMPACT_STEP);
        if to > first {
            self.log.wl().compact(to)?;
            let mut cached = lock(&self.generated);
            if cached
                .as_ref()
                .is_some_and(|(s, _)| s.get_metadata().index + 1 < to)
            {
                *cached = None;
            }
        }
        Ok(())
    }

    /// Appends entries (truncating any conflicting suffix).
    pub fn append(&self, entries: &[Entry]) -> raft::Result<()> {
        self.log.wl().append(entries)
    }

    /// Replaces the hard state.
    pub fn set_hard_state(&self, hs: HardState) {
        self.log.wl().set_hardstate(hs);
    }

    /// Updates the commit index kept with the hard state.
    pub fn set_commit(&self, commit: u64) {
        self.log.wl().mut_hard_state().commit = commit;
    }

    /// The commit index kept with the hard state.
    pub fn commit(&self) -> u64 {
        self.log.rl().hard_state().commit
    }

    /// Replaces the conf state with the one the membership change at `index` brought in.
    pub fn set_conf_state(&self, index: u64, cs: ConfState) {
        lock(&self.confs).push((index, cs.clone()));
        self.log.wl().set_conf_state(cs);
    }

    /// The configuration in force once the entry at `index` is applied (`index` at or after
    /// the latest snapshot point).
    pub fn conf_state_at(&self, index: u64) -> raft::Result<ConfState> {
        let confs = lock(&self.confs);
        match confs.iter().rev().find(|(at, _)| *at <= index) {
            Some((_, cs)) => Ok(cs.clone()),
            None => Ok(self.log.initial_state()?.conf_state),
        }
    }

    /// The newest snapshot recorded or installed.
    pub fn latest_snapshot(&self) -> Snapshot {
        self.latest_snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Entries in `[low, high)` for rewriting the WAL after a snapshot.
    pub fn entries_from(&self, low: u64) -> raft::Result<Vec<Entry>> {
        let high = self.log.last_index()? + 1;
        if low >= high {
            return Ok(Vec::new());
        }
        self.log
            .entries(low, high, None, GetEntriesContext::empty(false))
    }

    fn write_snapshot(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        self.latest_snapshot
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.log.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.log.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.log.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.log.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.log.last_index()
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        self.generate(request_index)
    }
}

/// Locks `m` (a poisoned lock is still usable: every value it guards is replaced whole).
fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters(cs: &ConfState) -> Vec<u64> {
        cs.voters.clone()
    }

    #[test]
    fn conf_state_at_an_index_is_the_one_in_force_there_and_survives_a_snapshot_point() {
        let storage = RaftStorage::new_cluster(vec![1]);
        let entries: Vec<Entry> = (1..=10)
            .map(|index| Entry {
                index,
                term: 1,
                ..Default::default()
            })
            .collect();
        storage.append(&entries).expect("append");
        storage.set_conf_state(3, ConfState::from((vec![1, 2], vec![])));
        storage.set_conf_state(7, ConfState::from((vec![1, 2, 3], vec![])));
        assert_eq!(voters(&storage.conf_state_at(2).unwrap()), vec![1]);
        assert_eq!(voters(&storage.conf_state_at(3).unwrap()), vec![1, 2]);
        assert_eq!(voters(&storage.conf_state_at(6).unwrap()), vec![1, 2]);
        assert_eq!(voters(&storage.conf_state_at(9).unwrap()), vec![1, 2, 3]);

        // A snapshot point at 5 drops what was in force only before it, nothing after.
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = 5;
        storage.record_snapshot(snapshot, 4).expect("record");
        assert_eq!(voters(&storage.conf_state_at(5).unwrap()), vec![1, 2]);
        assert_eq!(voters(&storage.conf_state_at(8).unwrap()), vec![1, 2, 3]);
        assert_eq!(lock(&storage.confs).len(), 2);
    }
}
