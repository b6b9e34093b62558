//! The member id record: `member/member.id`, this member's own raft id, written once, before its
//! raft log holds anything (etcd keeps the same fact in its WAL's metadata).
//!
//! A member that joins can publish its name to the cluster (a proposal the leader commits)
//! before anything reaches its own log; if it goes down then, its data dir holds nothing but
//! this record, and the cluster lists it as started, so it cannot be told apart by its peer
//! URLs from a removed member that had the same URLs. The record lets it rejoin as itself
//! (`bootstrap`). Layout: the id sealed under `b"DMID"` ([`sealed_u64`]). A record
//! that does not decode is ignored, with a warning: the member then joins as one not started
//! yet, as before the record existed.

use crate::io::{Disk, DiskError};
use crate::storage::sealed_u64;

/// File name of the record, relative to the member directory.
pub const RECORD_FILE: &str = "member.id";
const MAGIC: &[u8; 4] = b"DMID";

/// The recorded id, if a valid record exists.
pub fn read(disk: &Disk) -> Option<u64> {
    if !disk.exists(RECORD_FILE) {
        return None;
    }
    let bytes = match disk.read(RECORD_FILE) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the member id record; ignoring it");
            return None;
        }
    };
    let decoded = sealed_u64::unseal(MAGIC, &bytes);
    if decoded.is_none() {
        tracing::warn!(
            len = bytes.len(),
            "the member id record is damaged; ignoring it"
        );
    }
    decoded
}

/// Writes the record durably (atomically replacing any older one).
pub fn write(disk: &Disk, id: u64) -> Result<(), DiskError> {
    disk.write_atomic(RECORD_FILE, &sealed_u64::seal(MAGIC, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_id_reads_back_and_damage_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path().join("member"));
        disk.create_dir_all("").unwrap();
        assert_eq!(read(&disk), None);
        write(&disk, 0x8e9e_05c5_2164_694d).unwrap();
        assert_eq!(read(&disk), Some(0x8e9e_05c5_2164_694d));
        let mut bytes = disk.read(RECORD_FILE).unwrap();
        bytes[6] ^= 1;
        disk.write_atomic(RECORD_FILE, &bytes).unwrap();
        assert_eq!(read(&disk), None);
        disk.write_atomic(RECORD_FILE, &bytes[..10]).unwrap();
        assert_eq!(read(&disk), None);
    }
}
