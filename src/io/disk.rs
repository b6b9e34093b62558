//! Production disk backend (`cfg(not(madsim))`): `std::fs` plus real fsyncs.
//!
//! Owns every `std::fs` call in detcd. Invariants:
//! * A mutating `Disk` method fsyncs what it changed before returning `Ok`:
//!   file contents (`write_atomic`, `truncate`) and the parent directory
//!   whenever a directory entry appears or disappears (`create_dir_all`,
//!   `open_append` of a new file, `write_atomic`'s rename, `remove`).
//! * `write_atomic` writes `<name>.atomic-tmp`, fsyncs it, renames it over
//!   `<name>` and fsyncs the directory, so a crash leaves the old or the new
//!   contents, never a mix. A stale temporary left by a crash is overwritten
//!   by the next `write_atomic` of the same name and hidden from `list`.
//! * `AppendFile` buffers appends in memory (bounded by `FLUSH_THRESHOLD`);
//!   `sync` writes the buffer and calls `fdatasync`. Dropping an
//!   `AppendFile` hands buffered bytes to the OS but does not sync them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{normalize_rel, DiskError};

/// Bytes a detached removal cuts off a file per step, and the pause after each step.
const SHRINK_STEP: u64 = 4 << 20;
const SHRINK_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Suffix of the temporary file `write_atomic` renames into place. Names
/// ending in it are hidden from `Disk::list`.
const ATOMIC_TMP_SUFFIX: &str = ".atomic-tmp";

/// Appends larger than this bypass the in-memory buffer; the buffer is
/// written to the OS once it would exceed this size.
const FLUSH_THRESHOLD: usize = 256 * 1024;

/// Handle to a directory tree on the real file system. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Disk {
    root: Arc<PathBuf>,
}

impl Disk {
    /// Nothing to wait for: a real fsync has already blocked its caller for as long as it took.
    /// (The simulated disk owes injected sync latency here.)
    pub async fn settle(&self) {}

    /// A handle rooted at `root`. Nothing is created until a method needs it.
    pub fn new(root: impl Into<PathBuf>) -> Disk {
        Disk {
            root: Arc::new(root.into()),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Absolute path of `rel` (for messages; `rel` is not validated).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub(super) fn resolve(&self, op: &'static str, rel: &str) -> Result<PathBuf, DiskError> {
        let norm = normalize_rel(rel).map_err(|e| DiskError::new(op, self.path(rel), e))?;
        Ok(if norm.is_empty() {
            self.root.to_path_buf()
        } else {
            self.root.join(norm)
        })
    }

    /// Creates `rel` and all missing ancestors (including the root), making
    /// every new directory entry durable.
    pub fn create_dir_all(&self, rel: &str) -> Result<(), DiskError> {
        const OP: &str = "create_dir_all";
        let path = self.resolve(OP, rel)?;
        let err = |e| DiskError::new(OP, path.clone(), e);
        let root_existed = self.root.is_dir();
        fs::create_dir_all(&path).map_err(err)?;
        // Fsync every directory from `path` up to the root: each holds the
        // entry of the level below it (cheap, and directories are rare).
        let mut dir: &Path = &path;
        loop {
            sync_dir(dir).map_err(err)?;
            if dir == self.root.as_path() {
                break;
            }
            match dir.parent() {
                Some(parent) => dir = parent,
                None => break,
            }
        }
        if !root_existed {
            if let Some(parent) = self.root.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent).map_err(err)?;
            }
        }
        Ok(())
    }

    /// Names of the entries (files and directories) directly inside
    /// `rel_dir`, sorted. Non-UTF-8 names and `write_atomic` temporaries are
    /// skipped.
    pub fn list(&self, rel_dir: &str) -> Result<Vec<String>, DiskError> {
        const OP: &str = "list";
        let path = self.resolve(OP, rel_dir)?;
        let err = |e| DiskError::new(OP, path.clone(), e);
        let mut names = Vec::new();
        for entry in fs::read_dir(&path).map_err(err)? {
            let entry = entry.map_err(err)?;
            if let Ok(name) = entry.file_name().into_string() {
                if !name.ends_with(ATOMIC_TMP_SUFFIX) {
                    names.push(name);
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Whole contents of file `rel`.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>, DiskError> {
        let path = self.resolve("read", rel)?;
        fs::read(&path).map_err(|e| DiskError::new("read", path, e))
    }

    /// Whether a file or directory exists at `rel` (false for invalid paths).
    pub fn exists(&self, rel: &str) -> bool {
        self.resolve("exists", rel)
            .map(|p| p.exists())
            .unwrap_or(false)
    }

    /// Length in bytes of file `rel`.
    pub fn size(&self, rel: &str) -> Result<u64, DiskError> {
        let path = self.resolve("size", rel)?;
        fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| DiskError::new("size", path, e))
    }

    /// Removes file `rel` and makes the removal durable.
    pub fn remove(&self, rel: &str) -> Result<(), DiskError> {
        const OP: &str = "remove";
        let path = self.resolve(OP, rel)?;
        fs::remove_file(&path).map_err(|e| DiskError::new(OP, path.clone(), e))?;
        sync_parent(&path).map_err(|e| DiskError::new(OP, path, e))
    }

    /// Removes file `rel` on a thread of its own and returns at once: for files nothing reads
    /// any more, whose removal (35–40 ms for two WAL segments under a write load, done at once)
    /// nobody should wait for; it is shrunk in steps first (`shrink_and_remove`). A failure is
    /// logged; the file, or what is left of it, is then left for the owner to find again.
    pub fn remove_detached(&self, rel: &str) {
        let (disk, owned) = (self.clone(), rel.to_string());
        let spawned = std::thread::Builder::new()
            .name("detcd-remove".into())
            .spawn(move || super::log_detached_removal(disk.shrink_and_remove(&owned)));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no thread for a file removal; removing inline");
            super::log_detached_removal(self.remove(rel));
        }
    }

    /// Shrinks file `rel` a step at a time, then unlinks it, without a directory fsync. Under a
    /// write load, unlinking two 100 MB WAL segments at once (even on a thread of its own)
    /// stalled every client 35–50 ms; in steps of [`SHRINK_STEP`] bytes with a short pause
    /// between them the stall was gone (max latency 34–40 ms before, 14–16 ms after). A crash
    /// part way leaves a shorter file or the file itself, both obsolete, so the removal need
    /// not be durable.
    fn shrink_and_remove(&self, rel: &str) -> Result<(), DiskError> {
        const OP: &str = "remove";
        let path = self.resolve(OP, rel)?;
        let result = (|| {
            let file = OpenOptions::new().write(true).open(&path)?;
            let mut len = file.metadata()?.len();
            while len > SHRINK_STEP {
                len -= SHRINK_STEP;
                file.set_len(len)?;
                std::thread::sleep(SHRINK_PAUSE);
            }
            drop(file);
            fs::remove_file(&path)
        })();
        result.map_err(|e| DiskError::new(OP, path, e))
    }

    /// Renames file `from` to `to` (replacing a file there) and makes it durable.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        const OP: &str = "rename";
        let (src, dst) = (self.resolve(OP, from)?, self.resolve(OP, to)?);
        let result = (|| {
            if fs::metadata(&src)?.is_dir() {
                return Err(io::Error::other("is a directory"));
            }
            fs::rename(&src, &dst)?;
            sync_parent(&dst)?;
            if src.parent() != dst.parent() {
                sync_parent(&src)?;
            }
            Ok(())
        })();
        result.map_err(|e| DiskError::new(OP, src, e))
    }

    /// Atomically and durably replaces (or creates) file `rel` with `bytes`.
    pub fn write_atomic(&self, rel: &str, bytes: &[u8]) -> Result<(), DiskError> {
        self.write_atomic_parts(rel, &[bytes])
    }

    /// Like [`Disk::write_atomic`] with the contents given as consecutive
    /// parts (avoids concatenating a header with a large payload).
    pub fn write_atomic_parts(&self, rel: &str, parts: &[&[u8]]) -> Result<(), DiskError> {
        const OP: &str = "write_atomic";
        let path = self.resolve(OP, rel)?;
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "no file name");
            return Err(DiskError::new(OP, path, e));
        };
        let tmp = path.with_file_name(format!("{name}{ATOMIC_TMP_SUFFIX}"));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            for part in parts {
                file.write_all(part)?;
            }
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, &path)?;
            sync_parent(&path)
        })();
        if result.is_err() {
            // Best effort: the temporary is invisible to `list` anyway.
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(|e| DiskError::new(OP, path, e))
    }

    /// Deletes `write_atomic` temporaries a crash left in `rel_dir` (they
    /// are invisible to `list`); returns how many were deleted.
    pub fn remove_temporaries(&self, rel_dir: &str) -> Result<usize, DiskError> {
        const OP: &str = "remove_temporaries";
        let path = self.resolve(OP, rel_dir)?;
        let err = |e| DiskError::new(OP, path.clone(), e);
        let mut removed = 0;
        for entry in fs::read_dir(&path).map_err(err)? {
            let entry = entry.map_err(err)?;
            let is_tmp = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(ATOMIC_TMP_SUFFIX));
            if is_tmp {
                fs::remove_file(entry.path()).map_err(err)?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&path).map_err(err)?;
        }
        Ok(removed)
    }

    /// Opens file `rel` for appending, creating it (durably, but empty) if
    /// it does not exist.
    pub fn open_append(&self, rel: &str) -> Result<AppendFile, DiskError> {
        const OP: &str = "open_append";
        let path = self.resolve(OP, rel)?;
        let err = |e| DiskError::new(OP, path.clone(), e);
        let existed = path.is_file();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        if !existed {
            sync_parent(&path).map_err(err)?;
        }
        let len = file.metadata().map_err(err)?.len();
        Ok(AppendFile {
            path,
            file,
            written: len,
            buf: Vec::new(),
        })
    }

    /// Sets the length of file `rel` to `len` and fsyncs it.
    pub fn truncate(&self, rel: &str, len: u64) -> Result<(), DiskError> {
        const OP: &str = "truncate";
        let path = self.resolve(OP, rel)?;
        let err = |e| DiskError::new(OP, path.clone(), e);
        let file = OpenOptions::new().write(true).open(&path).map_err(err)?;
        file.set_len(len).map_err(err)?;
        file.sync_all().map_err(err)
    }

    /// Total bytes of all regular files under the root (0 if the root does
    /// not exist). Used for the "DB SIZE" metric.
    pub fn total_size(&self) -> Result<u64, DiskError> {
        if !self.root.exists() {
            return Ok(0);
        }
        dir_size(&self.root)
    }
}

fn dir_size(dir: &Path) -> Result<u64, DiskError> {
    let err = |e| DiskError::new("total_size", dir.to_path_buf(), e);
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Removed concurrently (e.g. a purged snapshot): not counted.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(e)),
        };
        if meta.is_dir() {
            total += dir_size(&entry.path())?;
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(super) fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}

/// An open file that only grows at its end. Bytes passed to
/// [`AppendFile::append`] are durable once [`AppendFile::sync`] returns `Ok`.
#[derive(Debug)]
pub struct AppendFile {
    path: PathBuf,
    file: File,
    /// Bytes already handed to the OS.
    written: u64,
    /// Appended bytes not yet handed to the OS.
    buf: Vec<u8>,
}

impl AppendFile {
    /// Appends `bytes` at the end (not durable until `sync`).
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), DiskError> {
        if self.buf.len() + bytes.len() > FLUSH_THRESHOLD {
            self.flush()?;
        }
        if bytes.len() >= FLUSH_THRESHOLD {
            self.file
                .write_all(bytes)
                .map_err(|e| DiskError::new("append", self.path.clone(), e))?;
            self.written += bytes.len() as u64;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// Makes every appended byte durable (write + `fdatasync`).
    pub fn sync(&mut self) -> Result<(), DiskError> {
        self.flush()?;
        self.file
            .sync_data()
            .map_err(|e| DiskError::new("sync", self.path.clone(), e))
    }

    /// Current length including not-yet-synced appends.
    pub fn len(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Absolute path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buf)
            .map_err(|e| DiskError::new("append", self.path.clone(), e))?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

impl Drop for AppendFile {
    fn drop(&mut self) {
        // Unsynced data carries no durability promise; handing it to the OS
        // keeps a clean shutdown equivalent to "everything appended".
        let _ = self.flush();
    }
}
