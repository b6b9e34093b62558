//! Snapshot files: one checksummed file per raft snapshot.
//!
//! Owns `<dir>/<term:016x>-<index:016x>.snap`. File layout (little-endian):
//! magic `b"DSNP"`, `u32` version (1), `u64` index, `u64` term, `u32` CRC32
//! of (the 24 bytes before it ++ payload), payload.
//!
//! Invariants:
//! * Files are written with `Disk::write_atomic`, so a visible file is
//!   complete unless the disk damaged it afterwards.
//! * "Newest" means the largest `(index, term)`; the name and the header
//!   must agree, otherwise the file is invalid.
//! * `load_newest` never returns an invalid snapshot: an invalid file is
//!   logged, renamed `<name>.broken` (kept for the operator, as etcd does)
//!   and skipped in favour of the next newest. I/O errors are returned, not
//!   skipped.
//! * Names that do not parse as snapshot names (`.broken` files included)
//!   are ignored: never loaded, never deleted.

use tracing::warn;

use crate::io::Disk;
use crate::storage::StorageError;

const MAGIC: [u8; 4] = *b"DSNP";
const VERSION: u32 = 1;
/// Bytes before the payload.
const HEADER_LEN: usize = 28;
/// Appended to the name of an invalid snapshot file (etcd's `.broken`).
const BROKEN_SUFFIX: &str = ".broken";

/// Snapshot files in one directory of a [`Disk`].
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    disk: Disk,
    dir: String,
}

fn file_name(index: u64, term: u64) -> String {
    format!("{term:016x}-{index:016x}.snap")
}

/// Parses a snapshot file name into `(index, term)`.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".snap")?;
    let (term, index) = stem.split_once('-')?;
    let hex = |s: &str| {
        let ok = s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| u64::from_str_radix(s, 16).ok())?
    };
    Some((hex(index)?, hex(term)?))
}

fn encode_header(index: u64, term: u64, payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0..4].copy_from_slice(&MAGIC);
    out[4..8].copy_from_slice(&VERSION.to_le_bytes());
    out[8..16].copy_from_slice(&index.to_le_bytes());
    out[16..24].copy_from_slice(&term.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&out[0..24]);
    h.update(payload);
    out[24..28].copy_from_slice(&h.finalize().to_le_bytes());
    out
}

/// Checks a whole snapshot file against the `(index, term)` of its name and
/// strips the header. `Err` carries the offset and reason of the damage.
fn decode(mut bytes: Vec<u8>, index: u64, term: u64) -> Result<Vec<u8>, (u64, String)> {
    if bytes.len() < HEADER_LEN {
        return Err((0, format!("file too short ({} bytes)", bytes.len())));
    }
    let expected = encode_header(index, term, &bytes[HEADER_LEN..]);
    if bytes[0..4] != MAGIC {
        return Err((0, "bad snapshot magic".into()));
    }
    if bytes[4..8] != expected[4..8] {
        return Err((4, "unsupported snapshot version".into()));
    }
    if bytes[8..24] != expected[8..24] {
        return Err((8, "header index/term do not match the file name".into()));
    }
    if bytes[24..28] != expected[24..28] {
        return Err((24, "snapshot checksum mismatch".into()));
    }
    bytes.drain(..HEADER_LEN);
    Ok(bytes)
}

impl SnapshotStore {
    /// A store in directory `dir` of `disk` (created if missing; temporaries
    /// of saves interrupted by a crash are deleted).
    pub fn new(disk: Disk, dir: &str) -> Result<SnapshotStore, StorageError> {
        let dir = dir.trim_end_matches('/').to_string();
        disk.create_dir_all(&dir)?;
        let stale = disk.remove_temporaries(&dir)?;
        if stale > 0 {
            warn!(dir = %disk.path(&dir).display(), stale, "removed torn snapshot temporaries");
        }
        Ok(SnapshotStore { disk, dir })
    }

    fn rel(&self, index: u64, term: u64) -> String {
        format!("{}/{}", self.dir, file_name(index, term))
    }

    /// Durably and atomically writes the snapshot `(index, term)`,
    /// replacing a file of the same name.
    pub fn save(&self, index: u64, term: u64, payload: &[u8]) -> Result<(), StorageError> {
        let header = encode_header(index, term, payload);
        self.disk
            .write_atomic_parts(&self.rel(index, term), &[&header, payload])?;
        Ok(())
    }

    /// `(index, term)` of every snapshot file, oldest first (not validated).
    pub fn list(&self) -> Result<Vec<(u64, u64)>, StorageError> {
        let mut found: Vec<(u64, u64)> = self
            .disk
            .list(&self.dir)?
            .iter()
            .filter_map(|name| parse_name(name))
            .collect();
        found.sort_unstable();
        Ok(found)
    }

    /// The newest valid snapshot as `(index, term, payload)`, or `None`.
    /// Invalid (corrupt, torn, misnamed) files met on the way are renamed
    /// `<name>.broken`.
    pub fn load_newest(&self) -> Result<Option<(u64, u64, Vec<u8>)>, StorageError> {
        for (index, term) in self.list()?.into_iter().rev() {
            let rel = self.rel(index, term);
            match decode(self.disk.read(&rel)?, index, term) {
                Ok(payload) => return Ok(Some((index, term, payload))),
                Err((offset, reason)) => {
                    let broken = format!("{rel}{BROKEN_SUFFIX}");
                    warn!(path = %self.disk.path(&rel).display(), offset, %reason,
                        renamed_to = %self.disk.path(&broken).display(),
                        "invalid snapshot file kept as broken");
                    self.disk.rename(&rel, &broken)?;
                }
            }
        }
        Ok(None)
    }

    /// Deletes all but the newest `keep` snapshot files; returns how many
    /// were deleted.
    pub fn purge(&self, keep: usize) -> Result<usize, StorageError> {
        let all = self.list()?;
        let doomed = all.len().saturating_sub(keep);
        for &(index, term) in &all[..doomed] {
            self.disk.remove(&self.rel(index, term))?;
        }
        Ok(doomed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let name = file_name(0x1234, 7);
        assert_eq!(name, "0000000000000007-0000000000001234.snap");
        assert_eq!(parse_name(&name), Some((0x1234, 7)));
        assert_eq!(parse_name("0000000000000007-0000000000001234.snap.x"), None);
        assert_eq!(parse_name("000000000000007-0000000000001234.snap"), None);
        assert_eq!(parse_name("000000000000000G-0000000000001234.snap"), None);
    }
}
