//! Raft snapshots between members, streamed: the leader sends the `MsgSnapshot` and then the
//! state machine's [`SnapshotImage`] in chunks over one `Snapshot` call; the receiver writes the
//! chunks to a file in its snapshot directory and steps the message into raft only once the
//! whole image is on disk, checked and synced. When raft then hands the snapshot to the node, the
//! node restores the machine from that file ([`SnapshotInbox::open`]).
//!
//! Owns the received files, `snap/<term:016x>-<index:016x>.snap.db` (etcd keeps its received
//! databases there under a similar name), and their temporaries (`….snap.db.part`).
//!
//! Invariants:
//! * Memory per transfer is bounded on both sides: the sender reads the image one chunk at a
//!   time and keeps at most [`IN_FLIGHT_CHUNKS`] queued; the receiver writes each chunk out as
//!   it arrives. An image of any size can be sent.
//! * A `.snap.db` file exists only complete: bytes go to the `.part` file, which is renamed
//!   once the sender's checksum matches and it is synced. A transfer that fails leaves no file
//!   (the leader retries when raft asks again).
//! * Only the node deletes complete files: at start, and after installing one the files of
//!   snapshots at or below its index (never a newer one, which may have been received during
//!   the install and wait in raft's queue), so a file is never gone while raft may still hand
//!   its snapshot to the node.
//! * A stalled transfer ends: each chunk must be taken by the connection within
//!   [`CHUNK_TIMEOUT`], and the answer must come within [`ACK_TIMEOUT`] of the last chunk.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use super::SnapshotImage;
use crate::io::{AppendFile, Disk, RandomFile};
use crate::pb::detcdpb::peer_client::PeerClient;
use crate::pb::detcdpb::SnapshotChunk;
use crate::storage::StorageError;

/// Chunks read ahead of the connection.
pub const IN_FLIGHT_CHUNKS: usize = 2;
/// How long the connection may take to accept one chunk.
pub const CHUNK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the receiver may take to answer after the last chunk (it syncs the file).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(20);
/// Read buffer when restoring from a received file.
const READ_BUFFER: usize = 1 << 20;
const SUFFIX: &str = ".snap.db";
const PART_SUFFIX: &str = ".snap.db.part";

/// Why a snapshot transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Reading the image or writing the received file failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The peer refused the call or the connection failed.
    #[error("peer call failed: {0}")]
    Call(#[from] tonic::Status),
    /// The connection stopped taking chunks, or the answer did not come.
    #[error("snapshot transfer stalled")]
    Stalled,
    /// The image given for the message is of another index.
    #[error("image at index {image} offered for a snapshot at {snapshot}")]
    WrongImage {
        /// The image's index.
        image: u64,
        /// The snapshot message's index.
        snapshot: u64,
    },
    /// The received bytes do not match the sender's checksum.
    #[error("received image does not match its checksum")]
    Checksum,
    /// A snapshot message was queued without the image it was generated from.
    #[error("no image for the snapshot message")]
    NoImage,
    /// The stream ended before its last chunk.
    #[error("snapshot stream ended early")]
    Truncated,
}

/// Streams `msg` (a `MsgSnapshot`) and `image` to the peer behind `client`.
pub async fn send(
    mut client: PeerClient<Channel>,
    from: u64,
    cluster_id: u64,
    msg: Message,
    image: Arc<dyn SnapshotImage>,
) -> Result<(), TransferError> {
    let index = msg.get_snapshot().get_metadata().index;
    if image.index() != index {
        return Err(TransferError::WrongImage {
            image: image.index(),
            snapshot: index,
        });
    }
    let first = SnapshotChunk {
        from,
        cluster_id,
        message: msg.write_to_bytes().map(Bytes::from).unwrap_or_default(),
        ..Default::default()
    };
    let (tx, rx) = mpsc::channel(IN_FLIGHT_CHUNKS);
    let (finished, producer_done) = oneshot::channel();
    tokio::spawn(async move {
        let _ = finished.send(produce(first, image, tx).await);
    });
    let mut call = Box::pin(client.snapshot(tokio_stream::wrappers::ReceiverStream::new(rx)));
    let mut producer_done = Box::pin(producer_done);
    let produced = tokio::select! {
        biased;
        answer = &mut call => {
            answer?;
            return Ok(());
        }
        produced = &mut producer_done => produced.unwrap_or(Err(TransferError::Stalled)),
    };
    produced?;
    match tokio::time::timeout(ACK_TIMEOUT, call).await {
        Ok(answer) => answer.map(|_| ()).map_err(TransferError::from),
        Err(_) => Err(TransferError::Stalled),
    }
}

/// Reads the image chunk by chunk into `tx`, the first chunk carrying `first`'s header.
async fn produce(
    mut next: SnapshotChunk,
    image: Arc<dyn SnapshotImage>,
    tx: mpsc::Sender<SnapshotChunk>,
) -> Result<(), TransferError> {
    let mut hasher = crc32fast::Hasher::new();
    let mut chunks = image.chunks()?;
    loop {
        match chunks.next().transpose()? {
            Some(data) => {
                hasher.update(&data);
                next.data = Bytes::from(data);
            }
            None => {
                next.last = true;
                next.checksum = std::mem::take(&mut hasher).finalize();
            }
        }
        let last = next.last;
        let chunk = std::mem::take(&mut next);
        match tokio::time::timeout(CHUNK_TIMEOUT, tx.send(chunk)).await {
            Ok(Ok(())) => {}
            // The call ended (the sender side reports why).
            Ok(Err(_)) => return Ok(()),
            Err(_) => return Err(TransferError::Stalled),
        }
        if last {
            return Ok(());
        }
    }
}

/// The received snapshot files of one member (see the module docs).
#[derive(Clone, Debug)]
pub struct SnapshotInbox {
    disk: Disk,
    dir: String,
}

impl SnapshotInbox {
    /// The inbox in `dir` of `disk`, emptied of files left by an earlier run (a received image
    /// is either installed or not needed after a restart: the leader sends a new one).
    pub fn new(disk: Disk, dir: &str) -> Result<SnapshotInbox, StorageError> {
        disk.create_dir_all(dir)?;
        let inbox = SnapshotInbox {
            disk,
            dir: dir.trim_end_matches('/').to_string(),
        };
        inbox.clear()?;
        Ok(inbox)
    }

    fn rel(&self, term: u64, index: u64, suffix: &str) -> String {
        format!("{}/{term:016x}-{index:016x}{suffix}", self.dir)
    }

    /// Deletes every received file.
    pub fn clear(&self) -> Result<(), StorageError> {
        for name in self.disk.list(&self.dir)? {
            if name.ends_with(SUFFIX) || name.ends_with(PART_SUFFIX) {
                self.disk.remove(&format!("{}/{name}", self.dir))?;
            }
        }
        Ok(())
    }

    /// Deletes the received files of snapshots at or below `index` (temporaries of transfers
    /// still running are left to them).
    pub fn clear_through(&self, index: u64) -> Result<(), StorageError> {
        for name in self.disk.list(&self.dir)? {
            let Some(stem) = name.strip_suffix(SUFFIX) else {
                continue;
            };
            let at = stem
                .split_once('-')
                .and_then(|(_, i)| u64::from_str_radix(i, 16).ok());
            if at.is_some_and(|at| at <= index) {
                self.disk.remove(&format!("{}/{name}", self.dir))?;
            }
        }
        Ok(())
    }

    /// Starts receiving the image of the snapshot at `(term, index)`.
    pub fn create(&self, term: u64, index: u64) -> Result<Incoming, StorageError> {
        let part = self.rel(term, index, PART_SUFFIX);
        if self.disk.exists(&part) {
            self.disk.remove(&part)?;
        }
        Ok(Incoming {
            file: Some(self.disk.open_append(&part)?),
            disk: self.disk.clone(),
            done: self.rel(term, index, SUFFIX),
            part,
            hasher: crc32fast::Hasher::new(),
        })
    }

    /// The received image of the snapshot at `(term, index)`, for restoring.
    pub fn open(&self, term: u64, index: u64) -> Result<impl Read + Send + 'static, StorageError> {
        let rel = self.rel(term, index, SUFFIX);
        if !self.disk.exists(&rel) {
            return Err(StorageError::Io {
                op: "open snapshot image",
                path: self.disk.path(&rel),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        let file = self.disk.open_random(&rel)?;
        let len = file.len()?;
        Ok(std::io::BufReader::with_capacity(
            READ_BUFFER,
            FileReader {
                file,
                offset: 0,
                len,
            },
        ))
    }
}

/// An image being received; dropped before [`Incoming::finish`], it leaves nothing behind.
pub struct Incoming {
    file: Option<AppendFile>,
    disk: Disk,
    part: String,
    done: String,
    hasher: crc32fast::Hasher,
}

impl Incoming {
    /// Appends the next bytes of the image.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.hasher.update(data);
        let file = self.file.as_mut().expect("open until finished");
        file.append(data)?;
        Ok(())
    }

    /// Checks the image against the sender's `checksum`, syncs it and makes it visible.
    pub fn finish(mut self, checksum: u32) -> Result<(), TransferError> {
        if std::mem::take(&mut self.hasher).finalize() != checksum {
            return Err(TransferError::Checksum);
        }
        let file = self.file.as_mut().expect("open until finished");
        file.sync().map_err(StorageError::from)?;
        self.disk
            .rename(&self.part, &self.done)
            .map_err(StorageError::from)?;
        self.file = None;
        Ok(())
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Best effort: a leftover is deleted at the next start anyway.
            let _ = self.disk.remove(&self.part);
        }
    }
}

/// `Read` over a [`RandomFile`] of known length.
struct FileReader {
    file: RandomFile,
    offset: u64,
    len: u64,
}

impl Read for FileReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = out.len().min((self.len - self.offset) as usize);
        self.file
            .read_at(self.offset, &mut out[..n])
            .map_err(|e| std::io::Error::new(e.kind(), e))?;
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(inbox: &SnapshotInbox, term: u64, index: u64) {
        let mut incoming = inbox.create(term, index).unwrap();
        incoming.write(b"image").unwrap();
        let crc = crc32fast::hash(b"image");
        incoming.finish(crc).unwrap();
    }

    #[test]
    fn an_install_keeps_images_of_newer_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path());
        let inbox = SnapshotInbox::new(disk.clone(), "snap").unwrap();
        received(&inbox, 2, 10);
        received(&inbox, 3, 20);
        let mut partial = inbox.create(3, 30).unwrap();
        partial.write(b"half").unwrap();
        inbox.clear_through(10).unwrap();
        let mut left = disk.list("snap").unwrap();
        left.sort();
        assert_eq!(
            left,
            [
                "0000000000000003-0000000000000014.snap.db",
                "0000000000000003-000000000000001e.snap.db.part"
            ]
        );
        assert!(inbox.open(3, 20).is_ok());
        drop(partial);
        assert!(partial_gone(&disk));
    }

    fn partial_gone(disk: &Disk) -> bool {
        !disk
            .list("snap")
            .unwrap()
            .iter()
            .any(|n| n.ends_with(".part"))
    }

    #[test]
    fn a_wrong_checksum_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path());
        let inbox = SnapshotInbox::new(disk.clone(), "snap").unwrap();
        let mut incoming = inbox.create(1, 5).unwrap();
        incoming.write(b"image").unwrap();
        assert!(matches!(incoming.finish(0), Err(TransferError::Checksum)));
        assert!(disk.list("snap").unwrap().is_empty());
        assert!(inbox.open(1, 5).is_err());
    }
}
