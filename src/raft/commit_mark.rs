//! The commit mark: a small file, written apart from the WAL, that records an index this member
//! knew to be committed (and durable in its WAL). It is the second witness that makes a lost WAL
//! tail detectable: the WAL alone cannot tell a tail cut off by an operator or a failing disk
//! from a write torn by a crash, because the hard states that say what was committed sit in the
//! very tail that went missing.
//!
//! Invariant: the mark never exceeds an index that was committed *and* fsynced in the WAL when
//! the mark was written, so on restart `last durable index ≥ mark` must hold; if it does not, the
//! WAL lost synced data and the member refuses to start (`RaftError::LostTail`) instead of
//! serving from less than it had acknowledged. Committed entries are never truncated by raft, so
//! the check cannot fire on a healthy log.
//!
//! The node refreshes the mark every [`MARK_INTERVAL_TICKS`] ticks while the commit index moves
//! and after each snapshot, through an [`io::Worker`](crate::io::Worker), so the raft task does
//! not wait for it (a mark written late is still true); a clean stop writes it in place
//! and waits. A refresh that fails is reported by the next one, which ends the node. So that a
//! refresh costs one small in-place write and `fdatasync` (no file creation, rename or
//! directory fsync, which wait for the file system's journal: up to 42 ms measured under a
//! write load), the file holds two slots written alternately, each `b"DMRK"`, commit index
//! (u64 LE), CRC32 of the preceding 12 bytes. The recorded mark is the larger of the slots
//! that decode: a crash tears at most the slot being written, and the other still holds the
//! previous mark. A one-slot file (the format before) is read as such and rewritten with two.

use crate::io::{Disk, RandomFile, Worker};
use crate::storage::{sealed_u64, StorageError};
use std::sync::{Arc, Mutex};

/// File name of the mark, relative to the member directory.
pub const MARK_FILE: &str = "commit.mark";
/// Ticks between two refreshes of the mark while the commit index moves.
pub const MARK_INTERVAL_TICKS: u64 = 5;
const MAGIC: &[u8; 4] = b"DMRK";
const SLOT_LEN: usize = sealed_u64::SEALED_LEN;

/// Reads and writes the commit mark of one member.
pub struct CommitMark {
    slots: Arc<Mutex<MarkSlots>>,
    /// The largest index handed to the worker.
    requested: u64,
    worker: Worker,
}

/// The mark file and what was last written to it.
struct MarkSlots {
    file: RandomFile,
    written: u64,
    /// The slot the next write overwrites: never the one holding `written`.
    next_slot: usize,
    /// A failed background write, reported by the next refresh.
    failed: Option<StorageError>,
}

impl MarkSlots {
    fn write(&mut self, commit: u64) -> Result<(), StorageError> {
        if commit <= self.written {
            return Ok(());
        }
        let offset = (self.next_slot * SLOT_LEN) as u64;
        self.file.write_at(offset, &encode(commit))?;
        self.file.sync()?;
        self.written = commit;
        self.next_slot = 1 - self.next_slot;
        Ok(())
    }
}

impl CommitMark {
    /// Opens the mark on `disk`; returns it with the recorded index (0 if there is no mark).
    pub fn open(disk: Disk) -> Result<(CommitMark, u64), StorageError> {
        let bytes = if disk.exists(MARK_FILE) {
            disk.read(MARK_FILE)?
        } else {
            Vec::new()
        };
        let slots: Vec<Option<u64>> = bytes.chunks(SLOT_LEN).map(decode).collect();
        let recorded = match slots.iter().flatten().max() {
            Some(&mark) => mark,
            None if bytes.is_empty() => 0,
            None => {
                return Err(StorageError::Corrupt {
                    path: disk.path(MARK_FILE),
                    offset: 0,
                    reason: "commit mark does not decode".into(),
                })
            }
        };
        // The slot holding the recorded mark is kept; the other one is written next.
        let next_slot = if bytes.len() == 2 * SLOT_LEN {
            usize::from(slots[0] == Some(recorded))
        } else {
            // A missing or one-slot mark: both slots hold the recorded index from now on.
            disk.write_atomic(MARK_FILE, &[encode(recorded), encode(recorded)].concat())?;
            1
        };
        let slots = MarkSlots {
            file: disk.open_random(MARK_FILE)?,
            written: recorded,
            next_slot,
            failed: None,
        };
        let mark = CommitMark {
            slots: Arc::new(Mutex::new(slots)),
            requested: recorded,
            worker: Worker::new("detcd-mark"),
        };
        Ok((mark, recorded))
    }

    /// Has `commit` (committed and durable in the WAL) recorded, off the caller's task, if it
    /// is past the mark. Fails if an earlier refresh failed.
    pub fn advance(&mut self, commit: u64) -> Result<(), StorageError> {
        if commit > self.requested {
            self.requested = commit;
            let slots = Arc::clone(&self.slots);
            self.worker.submit(move || {
                let mut slots = lock(&slots);
                if let Err(e) = slots.write(commit) {
                    slots.failed.get_or_insert(e);
                }
            });
        }
        lock(&self.slots).failed.take().map_or(Ok(()), Err)
    }

    /// Records `commit` at once and waits until it is durable.
    pub fn advance_now(&mut self, commit: u64) -> Result<(), StorageError> {
        self.requested = self.requested.max(commit);
        let mut slots = lock(&self.slots);
        if let Some(e) = slots.failed.take() {
            return Err(e);
        }
        slots.write(commit)
    }
}

/// Locks the slots (a poisoned lock is still usable: `write` leaves them consistent).
fn lock(slots: &Mutex<MarkSlots>) -> std::sync::MutexGuard<'_, MarkSlots> {
    slots.lock().unwrap_or_else(|e| e.into_inner())
}

fn encode(commit: u64) -> [u8; SLOT_LEN] {
    sealed_u64::seal(MAGIC, commit)
}

fn decode(buf: &[u8]) -> Option<u64> {
    sealed_u64::unseal(MAGIC, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty member directory (dropped with the returned guard).
    fn fresh_disk() -> (tempfile::TempDir, Disk) {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path());
        disk.create_dir_all("").unwrap();
        (dir, disk)
    }

    #[test]
    fn mark_round_trips_and_only_moves_forward() {
        let (_dir, disk) = fresh_disk();
        let (mut mark, recorded) = CommitMark::open(disk.clone()).unwrap();
        assert_eq!(recorded, 0);
        mark.advance(42).unwrap();
        mark.advance(7).unwrap();
        drop(mark);
        let (_, recorded) = CommitMark::open(disk.clone()).unwrap();
        assert_eq!(recorded, 42);
    }

    #[test]
    fn a_torn_slot_leaves_the_previous_mark() {
        let (_dir, disk) = fresh_disk();
        let (mut mark, _) = CommitMark::open(disk.clone()).unwrap();
        for commit in [5, 9, 12] {
            mark.advance(commit).unwrap();
        }
        drop(mark);
        // The slots alternate, so 12 and 9 are in different ones; tear the one holding 12.
        let mut bytes = disk.read(MARK_FILE).unwrap();
        let newest = if decode(&bytes[..SLOT_LEN]) == Some(12) {
            0
        } else {
            1
        };
        assert_eq!(
            decode(&bytes[(1 - newest) * SLOT_LEN..][..SLOT_LEN]),
            Some(9)
        );
        bytes[newest * SLOT_LEN + 3] ^= 1;
        disk.write_atomic(MARK_FILE, &bytes).unwrap();
        let (mut mark, recorded) = CommitMark::open(disk.clone()).unwrap();
        assert_eq!(recorded, 9);
        // The next refresh overwrites the torn slot, not the one holding 9.
        mark.advance(20).unwrap();
        drop(mark);
        let bytes = disk.read(MARK_FILE).unwrap();
        assert_eq!(decode(&bytes[newest * SLOT_LEN..][..SLOT_LEN]), Some(20));
        assert_eq!(
            decode(&bytes[(1 - newest) * SLOT_LEN..][..SLOT_LEN]),
            Some(9)
        );
    }

    #[test]
    fn a_one_slot_mark_from_before_is_read_and_kept() {
        let (_dir, disk) = fresh_disk();
        disk.write_atomic(MARK_FILE, &encode(33)).unwrap();
        let (mut mark, recorded) = CommitMark::open(disk.clone()).unwrap();
        assert_eq!(recorded, 33);
        mark.advance_now(40).unwrap();
        let (_, recorded) = CommitMark::open(disk).unwrap();
        assert_eq!(recorded, 40);
    }

    #[test]
    fn a_damaged_mark_is_an_error_not_zero() {
        let (_dir, disk) = fresh_disk();
        let mut bytes = encode(9);
        bytes[5] ^= 1;
        disk.write_atomic(MARK_FILE, &bytes).unwrap();
        assert!(CommitMark::open(disk).is_err());
    }
}
