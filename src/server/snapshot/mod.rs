//! etcd-format snapshots: what `Maintenance.Snapshot` streams and `snapshot restore` reads.
//!
//! A snapshot is a bbolt file ([`crate::storage::bolt`]) with etcd's bucket layout
//! ([`export`]), followed by the 32-byte SHA-256 of the file that etcdctl checks on restore.
//! So a snapshot saved from detcd restores into etcd, and one saved from etcd restores into
//! detcd ([`restore`]).
//!
//! Invariants: a snapshot is one backend read view, taken once the backend reflects every entry
//! this member had applied when the request came, so it holds every write acknowledged before
//! it; the file is written and hashed as it is sent, never held whole in memory (on the server,
//! at most a few chunks and the page plan of [`crate::storage::bolt::write`]).

pub mod auth_buckets;
pub mod export;
pub mod restore;

use sha2::{Digest, Sha256};

use crate::storage::StorageError;

/// Bytes of one streamed chunk (etcd's send buffer is 32 KiB).
pub const CHUNK_BYTES: usize = 32 * 1024;
/// Bytes of the SHA-256 trailer.
pub const HASH_BYTES: usize = 32;

/// Runs `f` (a long read of the backend) on a thread of its own in production, so it does not
/// hold up a runtime worker; in place in simulation (madsim has no threads). Fails only if no
/// thread can be started.
pub async fn off_task<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    #[cfg(not(madsim))]
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("backend-read".into())
            .spawn(move || {
                let _ = tx.send(f());
            })?;
        rx.await
            .map_err(|_| std::io::Error::other("the backend reader panicked"))
    }
    #[cfg(madsim)]
    Ok(f())
}

/// etcd's `leasepb.Lease`: a lease as etcd's `lease` bucket stores it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredLease {
    /// Lease id.
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// Granted TTL in seconds.
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    /// Remaining TTL at the last checkpoint (0: none).
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// A snapshot file's chunks, then one chunk with the SHA-256 of everything before it. Each item
/// carries the bytes still to come after it, as `SnapshotResponse.remaining_bytes` does.
pub struct HashedChunks<I> {
    chunks: I,
    hasher: Option<Sha256>,
    remaining: u64,
}

impl<I: Iterator<Item = Result<Vec<u8>, StorageError>>> HashedChunks<I> {
    /// `chunks` of a file of `file_bytes` bytes, followed by the hash.
    pub fn new(chunks: I, file_bytes: u64) -> Self {
        HashedChunks {
            chunks,
            hasher: Some(Sha256::new()),
            remaining: file_bytes + HASH_BYTES as u64,
        }
    }
}

impl<I: Iterator<Item = Result<Vec<u8>, StorageError>>> Iterator for HashedChunks<I> {
    type Item = Result<(Vec<u8>, u64), StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let hasher = self.hasher.as_mut()?;
        let chunk = match self.chunks.next() {
            Some(Ok(chunk)) => {
                hasher.update(&chunk);
                chunk
            }
            Some(Err(e)) => {
                self.hasher = None;
                return Some(Err(e));
            }
            None => self.hasher.take()?.finalize().to_vec(),
        };
        self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
        Some(Ok((chunk, self.remaining)))
    }
}
