//! Production random-access files (`cfg(not(madsim))`): the page file under the storage backend.
//!
//! Owns [`RandomFile`], a file read and written at offsets, and [`Disk::open_random`]. Invariant:
//! bytes written are durable once [`RandomFile::sync`] returns `Ok` (`fdatasync`); a crash may
//! leave any subset of the writes since the last sync, which the backend above must tolerate
//! (redb's commit protocol does: it checksums what a commit points to).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::disk::{sync_parent, Disk};
use super::DiskError;

/// A file read and written at byte offsets. Shareable between threads (`&self` methods).
#[derive(Debug)]
pub struct RandomFile {
    path: PathBuf,
    file: File,
}

impl Disk {
    /// Opens file `rel` for reading and writing at offsets, creating it (durably, empty) if it
    /// does not exist.
    pub fn open_random(&self, rel: &str) -> Result<RandomFile, DiskError> {
        const OP: &str = "open_random";
        let path = self.resolve(OP, rel)?;
        let err = |e| DiskError::new(OP, path.clone(), e);
        let existed = path.is_file();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(err)?;
        if !existed {
            sync_parent(&path).map_err(err)?;
        }
        Ok(RandomFile { path, file })
    }
}

impl RandomFile {
    fn err(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
        move |e| DiskError::new(op, self.path.clone(), e)
    }

    /// The file's current length.
    #[allow(clippy::len_without_is_empty)] // a fallible length; emptiness is never asked
    pub fn len(&self) -> Result<u64, DiskError> {
        Ok(self.file.metadata().map_err(self.err("len"))?.len())
    }

    /// Fills `out` from `offset`; reading past the end is an `UnexpectedEof` error.
    pub fn read_at(&self, offset: u64, out: &mut [u8]) -> Result<(), DiskError> {
        self.file
            .read_exact_at(out, offset)
            .map_err(self.err("read_at"))
    }

    /// Writes `data` at `offset` (not durable until [`RandomFile::sync`]).
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        self.file
            .write_all_at(data, offset)
            .map_err(self.err("write_at"))
    }

    /// Sets the length (new bytes read as zeros; not durable until [`RandomFile::sync`]).
    pub fn set_len(&self, len: u64) -> Result<(), DiskError> {
        self.file.set_len(len).map_err(self.err("set_len"))
    }

    /// Makes every write so far durable.
    pub fn sync(&self) -> Result<(), DiskError> {
        self.file.sync_data().map_err(self.err("sync"))
    }

    /// Absolute path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
