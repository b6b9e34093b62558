//! Reading etcd-format snapshots (detcd's or etcd's): `snapshot status`, and `snapshot
//! restore` into a new detcd data directory.
//!
//! Restore follows etcdctl 3.4: the SHA-256 trailer is checked first (a file without one is
//! refused unless `--skip-hash-check`, as is a database copied out of a data dir), the target
//! data dir must not exist, and the snapshot's own member table is replaced by the one given on
//! the command line. The data dir gets only the backend (`member/snap/db`): history, leases,
//! alarms and the compaction point converted to detcd's form, the new member table, and
//! consistent index 0 — so the member starts as a brand-new cluster member whose state is the
//! snapshot's, and every member restored from the same file with the same `--initial-cluster`
//! starts from the same state.
//!
//! A backend file copied out of a detcd data dir (redb, not bbolt; restored with
//! `--skip-hash-check`, as etcd's own copied-out files are) is copied whole, with the new
//! member table and consistent index 0 committed into the copy.
//!
//! Invariant: nothing is written before the file has passed its hash check and a full read
//! ([`status`]); a failure while writing removes the backend file it created.

use std::path::{Path, PathBuf};

use prost::Message as _;
use sha2::{Digest, Sha256};

use super::{auth_buckets, StoredLease, HASH_BYTES};
use crate::auth::AuthStore;
use crate::io::{Disk, DiskError, RandomFile};
use crate::mvcc::Store;
use crate::mvcc::{compaction_from_etcd, compaction_pair, record_from_etcd};
use crate::pb::etcdserverpb::AlarmMember;
use crate::server::backend_state::{
    alarm_key, auth_pair, consistent_index_pair, lease_pair, membership_pair,
};
use crate::server::membership::Membership;
use crate::server::{BACKEND_CACHE_BYTES, BACKEND_FILE};
use crate::storage::bolt::read::BoltFile;
use crate::storage::dump::BucketPair;
use crate::storage::{Backend, Batch, Bucket, StorageError};

/// Why a snapshot could not be read or restored (etcdctl's texts).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The trailer does not match the file.
    #[error("expected sha256 {}, got {}", go_bytes(.expected), go_bytes(.got))]
    HashMismatch {
        /// The trailer.
        expected: Vec<u8>,
        /// The file's hash.
        got: Vec<u8>,
    },
    /// No trailer, and the hash check was not skipped.
    #[error("snapshot missing hash but --skip-hash-check=false")]
    MissingHash,
    /// The target data dir exists.
    #[error("data-dir {:?} exists", .0.display().to_string())]
    DataDirExists(PathBuf),
    /// The snapshot file does not exist.
    #[error("stat {}: no such file or directory", .0.display())]
    NotFound(PathBuf),
    /// The file is not a valid snapshot.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading or writing failed.
    #[error(transparent)]
    Disk(#[from] DiskError),
}

/// Bytes as Go's `%v` prints a byte slice: `[1 2 3]`.
fn go_bytes(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(u8::to_string).collect();
    format!("[{}]", parts.join(" "))
}

/// What `snapshot status` reports (etcdctl's fields and their definitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// CRC-32C over every bucket name, key and value, in file order.
    pub hash: u32,
    /// Main revision of the newest history record.
    pub revision: i64,
    /// Pairs in all buckets.
    pub total_key: u64,
    /// Bytes of the database in use (pages × page size).
    pub total_size: u64,
}

/// Opens `path` for reading, refusing a missing file (opening would create it).
fn open(path: &Path) -> Result<RandomFile, SnapshotError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let disk = Disk::new(dir.unwrap_or(Path::new(".")));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| SnapshotError::NotFound(path.to_path_buf()))?;
    if !disk.exists(name) {
        return Err(SnapshotError::NotFound(path.to_path_buf()));
    }
    Ok(disk.open_random(name)?)
}

/// Reads the snapshot at `path` through: its hash, revision and sizes.
pub fn status(path: &Path) -> Result<SnapshotStatus, SnapshotError> {
    let bolt = BoltFile::open(open(path)?)?;
    let mut crc = 0u32;
    let mut status = SnapshotStatus {
        hash: 0,
        revision: 0,
        total_key: 0,
        total_size: bolt.size(),
    };
    for (name, root) in bolt.buckets()? {
        crc = crc32c::crc32c_append(crc, &name);
        let is_key = name == b"key";
        for pair in bolt.pairs(root) {
            let (k, v) = pair?;
            crc = crc32c::crc32c_append(crc, &k);
            crc = crc32c::crc32c_append(crc, &v);
            if is_key && k.len() >= 8 {
                status.revision = i64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
            }
            status.total_key += 1;
        }
    }
    status.hash = crc;
    Ok(status)
}

/// Checks the SHA-256 trailer of the snapshot at `path` (etcdctl's rule: a file whose size is
/// 32 bytes past a multiple of 512 has one).
pub fn verify_hash(path: &Path) -> Result<(), SnapshotError> {
    let file = open(path)?;
    let len = file.len()?;
    if len % 512 != HASH_BYTES as u64 {
        return Err(SnapshotError::MissingHash);
    }
    let body = len - HASH_BYTES as u64;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < body {
        let n = buf.len().min((body - at) as usize);
        file.read_at(at, &mut buf[..n])?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    let mut expected = vec![0u8; HASH_BYTES];
    file.read_at(body, &mut expected)?;
    let got = hasher.finalize().to_vec();
    if got != expected {
        return Err(SnapshotError::HashMismatch { expected, got });
    }
    Ok(())
}

/// A pair of the snapshot's bucket `bucket` in detcd's form, or `None` for what a restore
/// leaves out (the old member table, cluster version, the auth buckets, read beforehand, and
/// meta, which is written afresh).
fn convert(bucket: &[u8], k: &[u8], v: &[u8]) -> Result<Option<BucketPair>, String> {
    Ok(match bucket {
        b"key" => {
            let (k, v) = record_from_etcd(k, v)?;
            Some((Bucket::Key, k, v))
        }
        b"lease" => {
            let lease = StoredLease::decode(v).map_err(|e| format!("lease: {e}"))?;
            let (k, v) = lease_pair(lease.id, lease.ttl);
            Some((Bucket::Lease, k, v))
        }
        b"alarm" => {
            let alarm = AlarmMember::decode(k).map_err(|e| format!("alarm: {e}"))?;
            Some((
                Bucket::Alarm,
                alarm_key(alarm.member_id, alarm.alarm),
                Vec::new(),
            ))
        }
        _ => None,
    })
}

/// Restores the snapshot at `path` into a new data dir `data_dir` for a cluster of
/// `membership`; returns the revision restored. The file is a snapshot (etcd's or detcd's), an
/// etcd backend copied out of a data dir, or (with the hash check skipped) a detcd backend
/// copied out of one.
pub fn restore(
    path: &Path,
    data_dir: &Path,
    membership: &Membership,
    skip_hash_check: bool,
) -> Result<i64, SnapshotError> {
    if !skip_hash_check {
        verify_hash(path)?;
    }
    if is_detcd_backend(path)? {
        return restore_backend_copy(path, data_dir, membership);
    }
    let status = status(path)?;
    let bolt = BoltFile::open(open(path)?)?;
    let mut compacted = None;
    let mut auth = AuthStore::default();
    for (name, root) in bolt.buckets()? {
        if name == b"meta" {
            for pair in bolt.pairs(root) {
                let (k, v) = pair?;
                compacted = compacted.max(compaction_from_etcd(&k, &v));
            }
        } else if name.starts_with(b"auth") {
            for pair in bolt.pairs(root) {
                let (k, v) = pair?;
                auth_buckets::from_buckets(&mut auth, &name, &k, &v).map_err(|reason| {
                    StorageError::Corrupt {
                        path: "snapshot".into(),
                        offset: 0,
                        reason,
                    }
                })?;
            }
        }
    }
    refuse_existing(data_dir)?;
    let disk = Disk::new(data_dir.join("member"));
    disk.create_dir_all("snap")?;
    let written = write_backend(&disk, &bolt, membership, compacted, &auth);
    if written.is_err() {
        let _ = disk.remove(BACKEND_FILE);
    }
    written?;
    Ok(status.revision)
}

/// Refuses a data dir that exists (etcdctl's rule: a restore never writes into one).
fn refuse_existing(data_dir: &Path) -> Result<(), SnapshotError> {
    if Disk::new(data_dir).exists("") {
        return Err(SnapshotError::DataDirExists(data_dir.to_path_buf()));
    }
    Ok(())
}

/// The backend of a data dir [`restore`] wrote (what the member will open at start).
pub fn open_restored(data_dir: &Path) -> Result<Backend, SnapshotError> {
    let disk = Disk::new(data_dir.join("member"));
    Ok(Backend::open(&disk, BACKEND_FILE, BACKEND_CACHE_BYTES)?)
}

/// The first bytes of a redb file: detcd's own backend (`member/snap/db`).
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

fn is_detcd_backend(path: &Path) -> Result<bool, SnapshotError> {
    let file = open(path)?;
    let mut head = [0u8; REDB_MAGIC.len()];
    if file.len()? < head.len() as u64 {
        return Ok(false);
    }
    file.read_at(0, &mut head)?;
    Ok(head == REDB_MAGIC)
}

/// Restores a backend file copied out of a detcd data dir: the copy, with the new member
/// table and consistent index 0 committed into it.
fn restore_backend_copy(
    path: &Path,
    data_dir: &Path,
    membership: &Membership,
) -> Result<i64, SnapshotError> {
    refuse_existing(data_dir)?;
    let source = open(path)?;
    let disk = Disk::new(data_dir.join("member"));
    disk.create_dir_all("snap")?;
    let copied = (|| -> Result<i64, SnapshotError> {
        let mut target = disk.open_append(BACKEND_FILE)?;
        let (len, mut at) = (source.len()?, 0u64);
        let mut buf = vec![0u8; 1 << 20];
        while at < len {
            let n = buf.len().min((len - at) as usize);
            source.read_at(at, &mut buf[..n])?;
            target.append(&buf[..n])?;
            at += n as u64;
        }
        target.sync()?;
        drop(target);
        let backend = Backend::open(&disk, BACKEND_FILE, BACKEND_CACHE_BYTES)?;
        let mut batch = Batch::default();
        let (k, v) = consistent_index_pair(0);
        batch.put(Bucket::Meta, k, v);
        let (k, v) = membership_pair(membership);
        batch.put(Bucket::Members, k, v);
        backend.commit(batch, true)?;
        Ok(Store::open(backend)?.current_revision())
    })();
    if copied.is_err() {
        let _ = disk.remove(BACKEND_FILE);
    }
    copied
}

fn write_backend(
    disk: &Disk,
    bolt: &BoltFile,
    membership: &Membership,
    compacted: Option<i64>,
    auth: &AuthStore,
) -> Result<(), SnapshotError> {
    let backend = Backend::open(disk, BACKEND_FILE, BACKEND_CACHE_BYTES)?;
    let buckets = bolt.buckets()?;
    let mut fixed = vec![
        (Bucket::Meta, consistent_index_pair(0)),
        (Bucket::Members, membership_pair(membership)),
        (Bucket::Auth, auth_pair(auth)),
    ];
    if let Some(compacted) = compacted {
        fixed.push((Bucket::Meta, compaction_pair(compacted)));
    }
    let fixed = fixed.into_iter().map(|(b, (k, v))| Ok((b, k, v)));
    let converted = buckets.into_iter().flat_map(|(name, root)| {
        bolt.pairs(root).filter_map(move |pair| {
            let result = pair.and_then(|(k, v)| {
                convert(&name, &k, &v).map_err(|reason| StorageError::Corrupt {
                    path: "snapshot".into(),
                    offset: 0,
                    reason,
                })
            });
            result.transpose()
        })
    });
    backend.replace_all(fixed.chain(converted))?;
    Ok(())
}
