//! File-system boundary of detcd: the only module allowed to touch a disk.
//!
//! Owns the [`Disk`] handle (a cheap, clonable handle rooted at a data
//! directory) and the [`AppendFile`] and [`RandomFile`] handles it hands out, and the
//! [`Worker`] that runs disk work off the caller's task. Two backends share one API:
//!
//! * `disk` (`cfg(not(madsim))`): `std::fs` with real `fsync` of files and
//!   directories.
//! * `sim_disk` (`cfg(madsim)`): an in-memory disk per root path with an
//!   explicit crash model (`sim_disk::crash`), because madsim's own fs has no
//!   notion of durability.
//!
//! Invariants shared by both backends:
//! * Every path argument is relative to the root, `/`-separated, and may not
//!   be absolute or contain `..` (rejected with `InvalidInput`).
//! * When a mutating `Disk` method returns `Ok`, its effect is durable
//!   (file data, size and directory entries are fsynced). The exceptions
//!   are [`AppendFile::append`], whose bytes are durable only after a
//!   successful [`AppendFile::sync`], and [`RandomFile`] writes and length
//!   changes, durable only after a successful [`RandomFile::sync`].
//!   [`Disk::remove_detached`] returns at once and its removal need not be durable.
//! * `write_atomic` is all-or-nothing across crashes.
//! * `list` returns names sorted bytewise and never shows `write_atomic`
//!   temporaries.

use std::path::PathBuf;

#[cfg(not(madsim))]
pub mod disk;
#[cfg(not(madsim))]
pub use disk::{AppendFile, Disk};
#[cfg(not(madsim))]
mod random_file;
#[cfg(not(madsim))]
pub use random_file::RandomFile;

#[cfg(madsim)]
pub mod sim_disk;
#[cfg(madsim)]
pub use sim_disk::{crash, flip_bit, set_faults, AppendFile, Disk, DiskFaults, RandomFile};

pub mod clock;
pub mod signal;
mod worker;
pub use worker::Worker;

#[cfg(test)]
mod tests;

/// A failed disk operation: which operation, on which absolute path, and the
/// underlying OS (or simulated) error.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct DiskError {
    /// Name of the `Disk`/`AppendFile` operation that failed.
    pub op: &'static str,
    /// Absolute path (root joined with the relative path).
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

impl DiskError {
    pub(crate) fn new(op: &'static str, path: PathBuf, source: std::io::Error) -> Self {
        DiskError { op, path, source }
    }

    /// Kind of the underlying I/O error (e.g. `NotFound`).
    pub fn kind(&self) -> std::io::ErrorKind {
        self.source.kind()
    }
}

/// Normalises a root-relative path to `a/b/c` form (`""` is the root
/// itself). Empty and `.` components are dropped; absolute paths and `..`
/// are rejected.
/// The end of a detached removal (`Disk::remove_detached`): a failure other than the file being
/// gone already is logged, and the file stays for its owner to find again.
fn log_detached_removal(result: Result<(), DiskError>) {
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(error = %e, "could not remove an obsolete file");
        }
        _ => {}
    }
}

pub(crate) fn normalize_rel(rel: &str) -> Result<String, std::io::Error> {
    if rel.starts_with('/') || rel.starts_with('\\') {
        return Err(invalid(format!("absolute path not allowed: {rel:?}")));
    }
    let mut parts = Vec::new();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid(format!("`..` not allowed: {rel:?}"))),
            p if p.contains('\\') || p.contains('\0') => {
                return Err(invalid(format!("bad path component in {rel:?}")))
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

/// An OS error as Go prints it: `address already in use`, not `Address already in use (os
/// error 98)` (etcd's and etcdctl's texts quote the OS this way).
pub fn go_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

/// Reads a whole file named by a flag, outside any data dir (a certificate or key). TLS is not
/// simulated, so this reads the real file system in both builds.
pub fn read_flag_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

/// When a file named by a flag was last modified (None if it cannot be read), so that
/// certificates can be reloaded once rotated.
pub fn flag_file_modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
