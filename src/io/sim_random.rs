//! Simulated random-access files (`cfg(madsim)`): the page file under the storage backend.
//!
//! Owns [`RandomFile`] and the crash model of files written at offsets. A random file keeps its
//! durable image in `SimFile::synced` and, while writes are unsynced, an [`Unsynced`] overlay:
//! the content reads see plus the ordered log of writes and length changes since the last sync.
//! * [`RandomFile::sync`] replays the log onto the durable image (O(bytes written)).
//! * Opening a file that was appended to and not synced turns its pending bytes into an
//!   unsynced write, so reads see them (as through the page cache) and a crash drops them.
//! * A crash drops the overlay; when this file is the tear target, a seeded-random prefix of the
//!   log reaches the durable image first (the disk wrote some of the queued writes, in order).
//! * Injected faults: a write or length change fails while writes fail; a failing sync drops
//!   the overlay (what it would have made durable is gone, as Linux may after an fsync error).
//! * Handles opened before a crash are stale and fail, like a dead process's descriptors. So
//!   are handles opened before the latest `open_random` of the same file: one process owns a
//!   page file at a time (a member restarted in place must not have its predecessor's
//!   lingering database write into the file, e.g. when it is dropped and closes cleanly).

use std::io::{Error, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{lock, Disk, SimFile, SimState, SplitMix64};
use crate::io::DiskError;

/// One unsynced change.
enum Change {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

/// What a random file holds beyond its durable image.
pub(super) struct Unsynced {
    /// The file as reads see it.
    pub(super) current: Vec<u8>,
    /// Changes since the last sync, oldest first.
    log: Vec<Change>,
}

fn apply(image: &mut Vec<u8>, change: &Change) {
    match change {
        Change::Write { offset, data } => {
            let end = *offset as usize + data.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[*offset as usize..end].copy_from_slice(data);
        }
        Change::SetLen(len) => image.resize(*len as usize, 0),
    }
}

impl SimFile {
    /// Makes every unsynced change durable.
    pub(super) fn sync_random(&mut self) {
        if let Some(u) = self.unsynced.take() {
            for change in &u.log {
                apply(&mut self.synced, change);
            }
        }
    }

    /// Drops unsynced changes at a crash; `tear` keeps a random prefix of them.
    pub(super) fn crash_random(&mut self, tear: Option<&mut SplitMix64>) {
        let Some(u) = self.unsynced.take() else {
            return;
        };
        let keep = tear.map_or(0, |rng| rng.below(u.log.len() as u64 + 1) as usize);
        for change in &u.log[..keep] {
            apply(&mut self.synced, change);
        }
    }

    /// Turns appended bytes not yet synced into an unsynced write, so that reads through a
    /// random handle see them (as through the page cache) and a crash still drops them.
    fn adopt_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let offset = self.view().len() as u64;
        let data = std::mem::take(&mut self.pending);
        self.change(Change::Write { offset, data });
    }

    fn change(&mut self, change: Change) {
        let synced = &self.synced;
        let u = self.unsynced.get_or_insert_with(|| {
            Box::new(Unsynced {
                current: synced.clone(),
                log: Vec::new(),
            })
        });
        apply(&mut u.current, &change);
        u.log.push(change);
    }

    fn view(&self) -> &[u8] {
        self.unsynced.as_ref().map_or(&self.synced, |u| &u.current)
    }
}

impl Disk {
    /// Opens file `rel` for reading and writing at offsets, creating it (durably, empty) if it
    /// does not exist.
    pub fn open_random(&self, rel: &str) -> Result<RandomFile, DiskError> {
        const OP: &str = "open_random";
        let norm = self.resolve(OP, rel)?;
        let mut st = lock(&self.state);
        let inode = match st.names.get(&norm) {
            Some(id) => *id,
            None => {
                self.creatable(&st, OP, &norm)?;
                if let Some(e) = st.write_fault() {
                    return Err(self.err(OP, &norm, e));
                }
                st.link(&norm, SimFile::default())
            }
        };
        let file = st.inodes.get_mut(&inode).expect("linked inode exists");
        file.adopt_pending();
        file.opened += 1;
        let owner = file.opened;
        Ok(RandomFile {
            state: self.state.clone(),
            path: self.path(&norm),
            inode,
            epoch: st.epoch,
            owner,
        })
    }
}

/// A simulated file read and written at byte offsets.
pub struct RandomFile {
    state: Arc<Mutex<SimState>>,
    path: PathBuf,
    inode: u64,
    epoch: u64,
    /// Which `open_random` of the file this handle came from.
    owner: u64,
}

impl std::fmt::Debug for RandomFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomFile")
            .field("path", &self.path)
            .finish()
    }
}

impl RandomFile {
    /// Runs `f` on the file, failing if the handle predates a crash or the file is gone.
    fn with<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut SimState, u64) -> Result<T, Error>,
    ) -> Result<T, DiskError> {
        let mut st = lock(&self.state);
        let result = if st.epoch != self.epoch {
            Err(Error::other("simulated disk: handle predates a crash"))
        } else if !st.inodes.contains_key(&self.inode) {
            Err(Error::new(
                ErrorKind::NotFound,
                "simulated disk: file removed",
            ))
        } else if st.inodes[&self.inode].opened != self.owner {
            Err(Error::other(
                "simulated disk: the file was opened again since",
            ))
        } else {
            f(&mut st, self.inode)
        };
        result.map_err(|e| DiskError::new(op, self.path.clone(), e))
    }

    /// The file's current length.
    #[allow(clippy::len_without_is_empty)] // a fallible length; emptiness is never asked
    pub fn len(&self) -> Result<u64, DiskError> {
        self.with("len", |st, id| Ok(st.inodes[&id].len()))
    }

    /// Fills `out` from `offset`; reading past the end is an `UnexpectedEof` error.
    pub fn read_at(&self, offset: u64, out: &mut [u8]) -> Result<(), DiskError> {
        self.with("read_at", |st, id| {
            let view = st.inodes[&id].view();
            let end = offset as usize + out.len();
            if end > view.len() {
                return Err(Error::new(
                    ErrorKind::UnexpectedEof,
                    "read past end of file",
                ));
            }
            out.copy_from_slice(&view[offset as usize..end]);
            Ok(())
        })
    }

    /// Writes `data` at `offset` (not durable until [`RandomFile::sync`]).
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        let data = data.to_vec();
        self.change("write_at", Change::Write { offset, data })
    }

    /// Sets the length (new bytes read as zeros; not durable until [`RandomFile::sync`]).
    pub fn set_len(&self, len: u64) -> Result<(), DiskError> {
        self.change("set_len", Change::SetLen(len))
    }

    fn change(&self, op: &'static str, change: Change) -> Result<(), DiskError> {
        self.with(op, |st, id| {
            if let Some(e) = st.write_fault() {
                return Err(e);
            }
            st.inodes.get_mut(&id).expect("checked").change(change);
            st.last_appended = Some(id);
            Ok(())
        })
    }

    /// Makes every write so far durable.
    pub fn sync(&self) -> Result<(), DiskError> {
        self.with("sync", |st, id| {
            let faults = st.faults;
            let file = st.inodes.get_mut(&id).expect("checked");
            if let Some(errno) = faults.syncs {
                file.unsynced = None;
                return Err(Error::from_raw_os_error(errno));
            }
            file.sync_random();
            st.owed += faults.sync_latency;
            Ok(())
        })
    }

    /// Absolute path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
