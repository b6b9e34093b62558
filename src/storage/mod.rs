//! Durable state of a detcd node: the write-ahead log and snapshot files.
//!
//! Owns [`StorageError`] and re-exports the public types of its submodules:
//! * `record`: the on-disk WAL encoding (record frames, segment headers).
//! * `wal`: the segmented, append-only write-ahead log ([`Wal`]).
//! * `snapshot`: checksummed, atomically written snapshot files
//!   ([`SnapshotStore`]).
//! * `backend`: the paged, crash-safe B-tree file holding the state machine's data
//!   ([`Backend`]).
//! * `dump`: a backend's whole content as one checksummed stream of chunks, for raft
//!   snapshots sent to other members.
//! * `sealed_u64`: one u64 with a magic tag and a CRC in 16 bytes (small records of one
//!   value: the commit mark's slots, the member id record).
//! * `bolt`: bbolt's file format (etcd's backend and snapshot files), written from sorted
//!   buckets as a chunk stream and read page by page.
//!
//! Invariants: all file access goes through [`crate::io::Disk`]; every
//! on-disk structure is covered by a CRC32 (IEEE, `crc32fast`) and every
//! integer is little-endian; corruption that cannot be explained by a crash
//! during an unsynced write is reported as [`StorageError::Corrupt`], never
//! silently dropped.

use std::path::PathBuf;

use crate::io::DiskError;

pub mod backend;
pub mod bolt;
pub mod dump;
pub mod record;
pub mod sealed_u64;
pub mod snapshot;
pub mod wal;

pub use backend::{Backend, BackendError, Batch, Bucket, ReadView};
pub use record::Record;
pub use snapshot::SnapshotStore;
pub use wal::{Wal, WalOptions, DEFAULT_SEGMENT_SIZE};

#[cfg(all(test, madsim))]
mod sim_tests;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod wal_tests;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The disk failed (or refused) an operation.
    #[error("I/O error: {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// On-disk data is damaged in a way a crash cannot explain.
    #[error("corrupt data in {} at offset {offset}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A record payload does not fit the `u32` length field.
    #[error("record payload of {len} bytes exceeds the maximum of {max}")]
    RecordTooLarge { len: usize, max: usize },
    /// The paged backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A caller-supplied argument is unusable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An earlier I/O error left the WAL in an unknown state (e.g. a failed
    /// fsync); it refuses further writes until reopened.
    #[error("WAL is unusable after an earlier I/O error; reopen it")]
    Poisoned,
}

impl From<DiskError> for StorageError {
    fn from(e: DiskError) -> Self {
        StorageError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}
