//! Simulated disk backend (`cfg(madsim)`): in-memory files with a crash model.
//!
//! Owns the per-node simulated disks. Each [`Disk`] root path maps to one
//! in-memory disk in a registry that is **thread-local and keyed by the root
//! path**: madsim runs every simulation (every seed, and each pass of a
//! determinism check) on a fresh OS thread, so runs never observe each
//! other's disks, while all simulated nodes of one run (which have distinct
//! data dirs) share the registry. A harness that reuses a root inside one
//! thread can start from scratch with [`wipe`].
//!
//! Crash model / invariants:
//! * Every file keeps `synced` bytes (survive a crash) and `pending` bytes
//!   (appended, not yet synced). Reads see `synced ++ pending`.
//! * `AppendFile::sync` moves `pending` into `synced`. All other mutating
//!   `Disk` methods are synchronous and durable on return (mirroring the
//!   production backend, which fsyncs files and directories before
//!   returning): `write_atomic` replaces a file all-or-nothing, `truncate`
//!   is truncate+sync, `remove`, `rename`, `create_dir_all` and file creation by
//!   `open_append` are durable directory operations.
//! * [`crash`] drops every `pending` byte. With `tear = Some(seed)` the last
//!   appended file instead keeps a seeded-random prefix of its pending
//!   bytes, and with probability 1/3 a seeded-random suffix of that kept
//!   prefix reads back as zeros (size extended before the data blocks hit
//!   the platter). Garbage is therefore only ever at the very end of a file.
//! * Files are inodes: replacing or removing a name does not affect an open
//!   `AppendFile` on the old inode (its appends go nowhere, as with an
//!   unlinked file). After a crash every `AppendFile` opened before it is
//!   stale and fails with an error, like handles of a dead process.
//! * Everything is ordered (`BTreeMap`/`BTreeSet`), so behaviour is a pure
//!   function of the operations and the tear seed.
//!
//! Injected faults ([`set_faults`], [`flip_bit`]): while a [`DiskFaults`] is
//! set, writes (appends, atomic writes, truncations, file creation) and/or
//! syncs fail with the given OS error (EIO, ENOSPC); a failed append leaves
//! nothing behind, and a failed sync drops the pending bytes (as Linux may
//! after an fsync error), so nothing that failed to persist survives. A sync
//! latency makes each successful sync owe that much time, which the disk's
//! user waits out in [`Disk::settle`] before it acts on what it synced.
//! [`flip_bit`] damages synced data in the older half of a file, where a
//! crash can never leave garbage, so only corruption can explain it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Error, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{normalize_rel, DiskError};

#[path = "sim_random.rs"]
mod random;
pub use random::RandomFile;

thread_local! {
    static REGISTRY: RefCell<BTreeMap<PathBuf, Arc<Mutex<SimState>>>> =
        const { RefCell::new(BTreeMap::new()) };
}

/// Simulates a power failure of the disk rooted at `root` (no-op if no
/// `Disk` was ever created for it on this thread). See the module docs for
/// what survives; `tear` seeds the torn-write choice.
pub fn crash(root: &Path, tear: Option<u64>) {
    let Some(state) = REGISTRY.with(|r| r.borrow().get(root).cloned()) else {
        return;
    };
    let mut st = lock(&state);
    st.epoch += 1;
    let target = st.last_appended.take();
    let mut rng = tear.map(SplitMix64);
    for (id, file) in st.inodes.iter_mut() {
        let torn = rng.as_mut().filter(|_| target == Some(*id));
        if file.unsynced.is_some() {
            file.crash_random(torn);
            continue;
        }
        if let Some(rng) = torn {
            let keep = rng.below(file.pending.len() as u64 + 1) as usize;
            let mut torn = file.pending[..keep].to_vec();
            if keep > 0 && rng.below(3) == 0 {
                let from = rng.below(keep as u64) as usize;
                torn[from..].fill(0);
            }
            file.synced.extend_from_slice(&torn);
        }
        file.pending.clear();
    }
}

/// Faults injected into one simulated disk: the OS error (`errno`) that writes and/or syncs fail
/// with while set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DiskFaults {
    /// Appends, atomic writes, truncations and file creation fail with this errno.
    pub writes: Option<i32>,
    /// Syncs fail with this errno (and drop what they would have made durable).
    pub syncs: Option<i32>,
    /// Every successful sync takes this long: the time is owed until the disk's user waits it
    /// out with [`Disk::settle`] (a real fsync blocks its caller in place).
    pub sync_latency: std::time::Duration,
}

/// Sets (or, with the default value, clears) the faults of the disk rooted at `root`.
pub fn set_faults(root: &Path, faults: DiskFaults) {
    let state = REGISTRY.with(|r| {
        r.borrow_mut()
            .entry(root.to_path_buf())
            .or_insert_with(|| Arc::new(Mutex::new(SimState::default())))
            .clone()
    });
    lock(&state).faults = faults;
}

/// Flips one bit in the older half of the synced bytes of a file under `dir` of the disk rooted
/// at `root`, chosen by `seed`; returns the file and offset, or None if there is no such data.
/// Page files (opened with `open_random`) are spared: their engine checks pages only in a full
/// integrity scan, so damage there is not detected at start (see `storage::backend`).
pub fn flip_bit(root: &Path, dir: &str, seed: u64) -> Option<(String, usize)> {
    let state = REGISTRY.with(|r| r.borrow().get(root).cloned())?;
    let mut st = lock(&state);
    let prefix = format!("{dir}/");
    let candidates: Vec<(String, u64)> = st
        .names
        .iter()
        .filter(|(name, id)| {
            let file = &st.inodes[*id];
            name.starts_with(&prefix) && file.synced.len() >= 64 && file.opened == 0
        })
        .map(|(name, id)| (name.clone(), *id))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let mut rng = SplitMix64(seed);
    let (name, id) = &candidates[rng.below(candidates.len() as u64) as usize];
    let file = st.inodes.get_mut(id).expect("linked inode exists");
    // Past the first 32 bytes (headers) and within the older half of the file.
    let span = (file.synced.len() / 2 - 32) as u64;
    let offset = 32 + rng.below(span.max(1)) as usize;
    file.synced[offset] ^= 1 << rng.below(8);
    Some((name.clone(), offset))
}

/// Forgets the simulated disk rooted at `root` entirely (as if replaced by
/// an empty one). Existing handles keep the old, now unreachable, disk.
pub fn wipe(root: &Path) {
    REGISTRY.with(|r| r.borrow_mut().remove(root));
}

#[derive(Default)]
struct SimFile {
    synced: Vec<u8>,
    pending: Vec<u8>,
    /// For a file written at offsets ([`RandomFile`]): what reads see and the writes a crash
    /// may lose. `None` when everything is synced (then `synced` is the content).
    unsynced: Option<Box<random::Unsynced>>,
    /// How many times the file was opened for random access (the newest handle owns it).
    opened: u64,
}

impl SimFile {
    fn len(&self) -> u64 {
        match &self.unsynced {
            Some(u) => u.current.len() as u64,
            None => (self.synced.len() + self.pending.len()) as u64,
        }
    }
}

#[derive(Default)]
struct SimState {
    dirs: BTreeSet<String>,
    names: BTreeMap<String, u64>,
    inodes: BTreeMap<u64, SimFile>,
    next_inode: u64,
    /// Bumped by every crash; handles from an older epoch are stale.
    epoch: u64,
    /// Inode most recently appended to (the torn-write candidate).
    last_appended: Option<u64>,
    /// Injected faults.
    faults: DiskFaults,
    /// Sync latency owed since the last [`Disk::settle`].
    owed: std::time::Duration,
}

impl SimState {
    /// The injected error for a write, if writes fail.
    fn write_fault(&self) -> Option<Error> {
        self.faults.writes.map(Error::from_raw_os_error)
    }
}

impl SimState {
    fn new_inode(&mut self, file: SimFile) -> u64 {
        self.next_inode += 1;
        self.inodes.insert(self.next_inode, file);
        self.next_inode
    }

    /// Points `name` at a new inode, dropping the one it replaces.
    fn link(&mut self, name: &str, file: SimFile) -> u64 {
        let id = self.new_inode(file);
        if let Some(old) = self.names.insert(name.to_string(), id) {
            self.inodes.remove(&old);
        }
        id
    }
}

fn lock(state: &Mutex<SimState>) -> MutexGuard<'_, SimState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn parent_of(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(p, _)| p)
}

fn name_of(rel: &str) -> &str {
    rel.rsplit_once('/').map_or(rel, |(_, n)| n)
}

/// Handle to one simulated node's disk. Cheap to clone; all clones (and all
/// `Disk::new` calls with the same root on this thread) share state.
#[derive(Clone)]
pub struct Disk {
    root: Arc<PathBuf>,
    state: Arc<Mutex<SimState>>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("root", &self.root)
            .field("simulated", &true)
            .finish()
    }
}

impl Disk {
    /// Waits out the latency owed by the syncs done since the last call (see
    /// [`DiskFaults::sync_latency`]).
    pub async fn settle(&self) {
        let owed = std::mem::take(&mut lock(&self.state).owed);
        if !owed.is_zero() {
            tokio::time::sleep(owed).await;
        }
    }

    /// The simulated disk for `root`, created empty on first use.
    pub fn new(root: impl Into<PathBuf>) -> Disk {
        let root = root.into();
        let state = REGISTRY.with(|r| {
            r.borrow_mut()
                .entry(root.clone())
                .or_insert_with(|| Arc::new(Mutex::new(SimState::default())))
                .clone()
        });
        Disk {
            root: Arc::new(root),
            state,
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

    fn resolve(&self, op: &'static str, rel: &str) -> Result<String, DiskError> {
        normalize_rel(rel).map_err(|e| self.err(op, rel, e))
    }

    fn err(&self, op: &'static str, rel: &str, e: Error) -> DiskError {
        DiskError::new(op, self.path(rel), e)
    }

    fn fail(&self, op: &'static str, rel: &str, kind: ErrorKind, msg: &str) -> DiskError {
        self.err(op, rel, Error::new(kind, format!("simulated disk: {msg}")))
    }

    /// The inode of file `rel`, or a `NotFound`/`IsADirectory`-style error.
    fn inode(&self, st: &SimState, op: &'static str, rel: &str) -> Result<u64, DiskError> {
        match st.names.get(rel) {
            Some(id) => Ok(*id),
            None if st.dirs.contains(rel) => {
                Err(self.fail(op, rel, ErrorKind::Other, "is a directory"))
            }
            None => Err(self.fail(op, rel, ErrorKind::NotFound, "no such file")),
        }
    }

    /// Checks that a file may be created at `rel`.
    fn creatable(&self, st: &SimState, op: &'static str, rel: &str) -> Result<(), DiskError> {
        if rel.is_empty() || st.dirs.contains(rel) {
            return Err(self.fail(op, rel, ErrorKind::Other, "is a directory"));
        }
        if !st.dirs.contains(parent_of(rel)) {
            return Err(self.fail(op, rel, ErrorKind::NotFound, "no such directory"));
        }
        Ok(())
    }

    /// Creates `rel` and all missing ancestors (including the root).
    pub fn create_dir_all(&self, rel: &str) -> Result<(), DiskError> {
        const OP: &str = "create_dir_all";
        let norm = self.resolve(OP, rel)?;
        let mut st = lock(&self.state);
        let mut prefixes = vec![String::new()];
        let mut acc = String::new();
        for part in norm.split('/').filter(|p| !p.is_empty()) {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            prefixes.push(acc.clone());
        }
        if let Some(file) = prefixes.iter().find(|p| st.names.contains_key(*p)) {
            return Err(self.fail(OP, file, ErrorKind::AlreadyExists, "is a file"));
        }
        st.dirs.extend(prefixes);
        Ok(())
    }

    /// Names of the entries directly inside `rel_dir`, sorted.
    pub fn list(&self, rel_dir: &str) -> Result<Vec<String>, DiskError> {
        const OP: &str = "list";
        let norm = self.resolve(OP, rel_dir)?;
        let st = lock(&self.state);
        if !st.dirs.contains(&norm) {
            return Err(self.fail(OP, rel_dir, ErrorKind::NotFound, "no such directory"));
        }
        let children = st.dirs.iter().filter(|d| !d.is_empty());
        let names: BTreeSet<&str> = children
            .chain(st.names.keys())
            .filter(|p| parent_of(p) == norm)
            .map(|p| name_of(p))
            .collect();
        Ok(names.into_iter().map(str::to_string).collect())
    }

    /// Whole contents of file `rel` (synced and pending bytes).
    pub fn read(&self, rel: &str) -> Result<Vec<u8>, DiskError> {
        let norm = self.resolve("read", rel)?;
        let st = lock(&self.state);
        let file = &st.inodes[&self.inode(&st, "read", &norm)?];
        let mut out = Vec::with_capacity(file.len() as usize);
        match &file.unsynced {
            Some(u) => out.extend_from_slice(&u.current),
            None => {
                out.extend_from_slice(&file.synced);
                out.extend_from_slice(&file.pending);
            }
        }
        Ok(out)
    }

    /// Whether a file or directory exists at `rel` (false for invalid paths).
    pub fn exists(&self, rel: &str) -> bool {
        let Ok(norm) = self.resolve("exists", rel) else {
            return false;
        };
        let st = lock(&self.state);
        st.dirs.contains(&norm) || st.names.contains_key(&norm)
    }

    /// Length in bytes of file `rel`.
    pub fn size(&self, rel: &str) -> Result<u64, DiskError> {
        let norm = self.resolve("size", rel)?;
        let st = lock(&self.state);
        Ok(st.inodes[&self.inode(&st, "size", &norm)?].len())
    }

    /// Removes file `rel` (durably).
    pub fn remove(&self, rel: &str) -> Result<(), DiskError> {
        let norm = self.resolve("remove", rel)?;
        let mut st = lock(&self.state);
        let id = self.inode(&st, "remove", &norm)?;
        st.names.remove(&norm);
        st.inodes.remove(&id);
        Ok(())
    }

    /// [`Disk::remove`] without a result, as production's detached removal (done at once here:
    /// the simulation has no threads); a failure is logged and the file stays.
    pub fn remove_detached(&self, rel: &str) {
        super::log_detached_removal(self.remove(rel));
    }

    /// Renames file `from` to `to` (replacing a file there), durably. The
    /// inode moves with the name, so an open `AppendFile` stays valid.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        const OP: &str = "rename";
        let (src, dst) = (self.resolve(OP, from)?, self.resolve(OP, to)?);
        let mut st = lock(&self.state);
        let id = self.inode(&st, OP, &src)?;
        self.creatable(&st, OP, &dst)?;
        st.names.remove(&src);
        if let Some(old) = st.names.insert(dst, id) {
            if old != id {
                st.inodes.remove(&old);
            }
        }
        Ok(())
    }

    /// Atomically and durably replaces (or creates) file `rel` with `bytes`.
    pub fn write_atomic(&self, rel: &str, bytes: &[u8]) -> Result<(), DiskError> {
        self.write_atomic_parts(rel, &[bytes])
    }

    /// Like [`Disk::write_atomic`] with the contents given as parts.
    pub fn write_atomic_parts(&self, rel: &str, parts: &[&[u8]]) -> Result<(), DiskError> {
        const OP: &str = "write_atomic";
        let norm = self.resolve(OP, rel)?;
        let mut st = lock(&self.state);
        self.creatable(&st, OP, &norm)?;
        if let Some(e) = st.write_fault() {
            return Err(self.err(OP, &norm, e));
        }
        let file = SimFile {
            synced: parts.concat(),
            ..SimFile::default()
        };
        st.link(&norm, file);
        Ok(())
    }

    /// The simulated `write_atomic` never leaves temporaries: checks that
    /// `rel_dir` exists and returns 0.
    pub fn remove_temporaries(&self, rel_dir: &str) -> Result<usize, DiskError> {
        self.list(rel_dir).map(|_| 0)
    }

    /// Opens file `rel` for appending, creating it (durably, empty) if needed.
    pub fn open_append(&self, rel: &str) -> Result<AppendFile, DiskError> {
        const OP: &str = "open_append";
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
        Ok(AppendFile {
            state: self.state.clone(),
            path: self.path(&norm),
            inode,
            epoch: st.epoch,
            len: st.inodes[&inode].len(),
        })
    }

    /// Sets the length of file `rel` to `len` (zero-extending) and syncs it.
    pub fn truncate(&self, rel: &str, len: u64) -> Result<(), DiskError> {
        let norm = self.resolve("truncate", rel)?;
        let mut st = lock(&self.state);
        let id = self.inode(&st, "truncate", &norm)?;
        if let Some(e) = st.write_fault() {
            return Err(self.err("truncate", &norm, e));
        }
        let file = st.inodes.get_mut(&id).expect("linked inode exists");
        file.sync_random();
        let pending = std::mem::take(&mut file.pending);
        file.synced.extend_from_slice(&pending);
        file.synced.resize(len as usize, 0);
        Ok(())
    }

    /// Total bytes of all files on this disk.
    pub fn total_size(&self) -> Result<u64, DiskError> {
        let st = lock(&self.state);
        Ok(st.names.values().map(|id| st.inodes[id].len()).sum())
    }
}

/// An open simulated file that only grows at its end.
pub struct AppendFile {
    state: Arc<Mutex<SimState>>,
    path: PathBuf,
    inode: u64,
    epoch: u64,
    len: u64,
}

impl std::fmt::Debug for AppendFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendFile")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish()
    }
}

impl AppendFile {
    fn live<'a>(
        &self,
        op: &'static str,
        st: &'a mut SimState,
    ) -> Result<&'a mut SimState, DiskError> {
        if st.epoch != self.epoch {
            let e = Error::other("simulated disk: handle predates a crash");
            return Err(DiskError::new(op, self.path.clone(), e));
        }
        Ok(st)
    }

    /// Appends `bytes` at the end (pending until `sync`).
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), DiskError> {
        let mut guard = lock(&self.state);
        let st = self.live("append", &mut guard)?;
        if let Some(e) = st.write_fault() {
            return Err(DiskError::new("append", self.path.clone(), e));
        }
        if let Some(file) = st.inodes.get_mut(&self.inode) {
            file.pending.extend_from_slice(bytes);
            st.last_appended = Some(self.inode);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Makes every appended byte durable.
    pub fn sync(&mut self) -> Result<(), DiskError> {
        let mut guard = lock(&self.state);
        let st = self.live("sync", &mut guard)?;
        if let Some(errno) = st.faults.syncs {
            if let Some(file) = st.inodes.get_mut(&self.inode) {
                file.pending.clear();
            }
            let e = Error::from_raw_os_error(errno);
            return Err(DiskError::new("sync", self.path.clone(), e));
        }
        if let Some(file) = st.inodes.get_mut(&self.inode) {
            let pending = std::mem::take(&mut file.pending);
            file.synced.extend_from_slice(&pending);
        }
        st.owed += st.faults.sync_latency;
        Ok(())
    }

    /// Current length including not-yet-synced appends.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Absolute path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Tiny deterministic PRNG for the torn-write choice.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish value in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
