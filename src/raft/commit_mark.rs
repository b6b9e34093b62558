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
//! The node refreshes the mark every [`MARK_INTERVAL_TICKS`] ticks while the commit index moves,
//! after each snapshot, and on a clean stop; it is written atomically (`Disk::write_atomic`), so a
//! crash leaves the old mark or the new one. Format: `b"DMRK"`, commit index (u64 LE), CRC32 of
//! the preceding 12 bytes. (When the paged backend lands, its consistent index takes this role, as
//! etcd's bbolt consistent index does.)

use crate::io::Disk;
use crate::storage::StorageError;

/// File name of the mark, relative to the member directory.
pub const MARK_FILE: &str = "commit.mark";
/// Ticks between two refreshes of the mark while the commit index moves.
pub const MARK_INTERVAL_TICKS: u64 = 5;
const MAGIC: &[u8; 4] = b"DMRK";

/// Reads and writes the commit mark of one member.
#[derive(Clone)]
pub struct CommitMark {
    disk: Disk,
    written: u64,
}

impl CommitMark {
    /// Opens the mark on `disk`; returns it with the recorded index (0 if there is no mark).
    pub fn open(disk: Disk) -> Result<(CommitMark, u64), StorageError> {
        let recorded = if disk.exists(MARK_FILE) {
            decode(&disk.read(MARK_FILE)?).ok_or_else(|| StorageError::Corrupt {
                path: disk.path(MARK_FILE),
                offset: 0,
                reason: "commit mark does not decode".into(),
            })?
        } else {
            0
        };
        Ok((
            CommitMark {
                disk,
                written: recorded,
            },
            recorded,
        ))
    }

    /// Records `commit` (committed and durable in the WAL) if it is past the recorded mark.
    pub fn advance(&mut self, commit: u64) -> Result<(), StorageError> {
        if commit <= self.written {
            return Ok(());
        }
        self.disk.write_atomic(MARK_FILE, &encode(commit))?;
        self.written = commit;
        Ok(())
    }
}

fn encode(commit: u64) -> [u8; 16] {
    let mut buf = [0u8; 16];
    buf[..4].copy_from_slice(MAGIC);
    buf[4..12].copy_from_slice(&commit.to_le_bytes());
    let crc = crc32fast::hash(&buf[..12]);
    buf[12..].copy_from_slice(&crc.to_le_bytes());
    buf
}

fn decode(buf: &[u8]) -> Option<u64> {
    if buf.len() != 16 || &buf[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(buf[12..16].try_into().ok()?);
    if crc != crc32fast::hash(&buf[..12]) {
        return None;
    }
    Some(u64::from_le_bytes(buf[4..12].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_round_trips_and_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path());
        disk.create_dir_all("").unwrap();
        let (mut mark, recorded) = CommitMark::open(disk.clone()).unwrap();
        assert_eq!(recorded, 0);
        mark.advance(42).unwrap();
        mark.advance(7).unwrap();
        let (_, recorded) = CommitMark::open(disk.clone()).unwrap();
        assert_eq!(recorded, 42);
    }

    #[test]
    fn a_damaged_mark_is_an_error_not_zero() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path());
        disk.create_dir_all("").unwrap();
        let mut bytes = encode(9);
        bytes[5] ^= 1;
        disk.write_atomic(MARK_FILE, &bytes).unwrap();
        assert!(CommitMark::open(disk).is_err());
    }
}
