//! The paged backend: a crash-safe B-tree file (`snap/db`, as etcd names it) holding the state
//! machine's data, so that only the key index has to live in RAM.
//!
//! **Engine: redb.** Chosen over the alternatives because it is pure Rust with no threads of its
//! own (madsim panics on `std::thread::spawn`), has ACID transactions with MVCC read
//! transactions (readers see a consistent view and never block the writer), deterministic
//! internals (no randomly seeded hashing), and a `StorageBackend` trait through which every page
//! read, write and fsync goes to [`crate::io::RandomFile`] — so in simulation the crash-modelling
//! disk, with its torn writes and injected faults, sits underneath it. An LSM such as fjall runs
//! its own compaction threads and files; bbolt ports are young and need mmap. redb's own
//! page cache is bounded (`cache_bytes`).
//!
//! **Schema** (etcd's buckets; every table maps bytes to bytes, the layers above encode):
//! * `key`: revision (etcd's 17-byte `main_sub` form, plus a trailing `t` for a tombstone) →
//!   an encoded `mvccpb.KeyValue`.
//! * `meta`: `consistent_index`, compaction state and the like.
//! * `lease`: lease id (8 bytes, big endian) → the lease's record.
//! * `members`: the member table.
//! * `alarm`: raised alarms, member id and alarm type → nothing.
//!
//! Invariants:
//! * A [`Batch`] commits atomically: after a crash the file holds the state of the last durable
//!   commit, whole. A non-durable commit ([`Backend::commit`] with `durable = false`) is visible
//!   to every later read view at once and becomes durable with the next durable commit; so the
//!   layer above writes its consistent index into every batch and replays its log from the
//!   recovered index.
//! * Every I/O error is returned, never ignored; redb refuses further writes after one.
//! * [`Backend::defragment`] (redb's compaction: live pages moved to the front, the file cut
//!   short) holds the database exclusively: no commit or new read view starts meanwhile, and it
//!   is refused while a read view is open. The database lock is the innermost lock of the
//!   server: it is held only inside this module, never while taking another.
//! * A commit whose header or tree roots fail their checksums at open is reported as
//!   [`StorageError::Corrupt`] (the member refuses to start). Damage inside other pages is found
//!   only by a full integrity scan, which is not run at start (it reads the whole file).

use std::sync::{Arc, RwLock, RwLockReadGuard};

use redb::{Database, Durability, ReadableDatabase, ReadableTableMetadata, TableDefinition};

use crate::io::{Disk, RandomFile};
use crate::storage::StorageError;

/// One table of the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bucket {
    /// History by revision.
    Key,
    /// Consistent index and other bookkeeping.
    Meta,
    /// Leases by id.
    Lease,
    /// The member table.
    Members,
    /// Raised alarms.
    Alarm,
    /// Users, roles and the auth switch.
    Auth,
}

impl Bucket {
    /// Every bucket, in a fixed order.
    pub const ALL: [Bucket; 6] = [
        Bucket::Key,
        Bucket::Meta,
        Bucket::Lease,
        Bucket::Members,
        Bucket::Alarm,
        Bucket::Auth,
    ];

    /// A one-byte name of the bucket for encodings (never 0).
    pub fn tag(self) -> u8 {
        match self {
            Bucket::Key => 1,
            Bucket::Meta => 2,
            Bucket::Lease => 3,
            Bucket::Members => 4,
            Bucket::Alarm => 5,
            Bucket::Auth => 6,
        }
    }

    /// The bucket named `tag` by [`Bucket::tag`].
    pub fn from_tag(tag: u8) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|b| b.tag() == tag)
    }

    fn table(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        TableDefinition::new(match self {
            Bucket::Key => "key",
            Bucket::Meta => "meta",
            Bucket::Lease => "lease",
            Bucket::Members => "members",
            Bucket::Alarm => "alarm",
            Bucket::Auth => "auth",
        })
    }
}

/// Backend errors (redb's, and the I/O errors it passed up).
#[derive(Debug, thiserror::Error)]
#[error("backend: {0}")]
pub struct BackendError(#[from] redb::Error);

/// redb's error types all become [`StorageError::Backend`].
macro_rules! backend_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError::Backend(BackendError(e.into()))
            }
        }
    )*};
}
backend_error_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    redb::CompactionError
);

/// Changes committed together by [`Backend::commit`], puts and deletes applied in the order
/// given (replacing everything is [`Backend::replace_all`]).
#[derive(Debug, Default)]
pub struct Batch {
    changes: Vec<(Bucket, Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    /// Sets `key` to `value` in `bucket`.
    pub fn put(&mut self, bucket: Bucket, key: Vec<u8>, value: Vec<u8>) {
        self.changes.push((bucket, key, Some(value)));
    }

    /// Removes `key` from `bucket`.
    pub fn delete(&mut self, bucket: Bucket, key: Vec<u8>) {
        self.changes.push((bucket, key, None));
    }

    /// Moves every change of `other` to the end of this batch.
    pub fn append(&mut self, other: &mut Batch) {
        self.changes.append(&mut other.changes);
    }

    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// The page file and its database. Cheap to clone; clones share the database.
#[derive(Clone, Debug)]
pub struct Backend {
    db: Arc<RwLock<Database>>,
    file: Option<Arc<PageFile>>,
}

impl Backend {
    /// Opens (creating if needed) the backend in file `rel` of `disk`, with a page cache of at
    /// most `cache_bytes`. A file left by a crash is recovered to its last durable commit.
    pub fn open(disk: &Disk, rel: &str, cache_bytes: usize) -> Result<Backend, StorageError> {
        let file = Arc::new(PageFile(disk.open_random(rel)?));
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create_with_backend(SharedFile(file.clone()))
            .map_err(|e| match e {
                redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason)) => {
                    StorageError::Corrupt {
                        path: disk.path(rel),
                        offset: 0,
                        reason,
                    }
                }
                other => other.into(),
            })?;
        Backend::init(db, Some(file))
    }

    /// A backend held in memory only (unit tests, and tools that need a scratch store).
    pub fn in_memory() -> Backend {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("an in-memory database always opens");
        Backend::init(db, None).expect("an in-memory database always initialises")
    }

    fn init(db: Database, file: Option<Arc<PageFile>>) -> Result<Backend, StorageError> {
        let mut tx = db.begin_write()?;
        // Empty tables need no fsync: lost in a crash, they are created again.
        tx.set_durability(Durability::None)?;
        for bucket in Bucket::ALL {
            tx.open_table(bucket.table())?;
        }
        tx.commit()?;
        Ok(Backend {
            db: Arc::new(RwLock::new(db)),
            file,
        })
    }

    /// Shared use of the database (a poisoned lock is still usable: redb keeps its own state
    /// consistent).
    fn db(&self) -> RwLockReadGuard<'_, Database> {
        self.db.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the live pages to the front of the file and cuts off the free space behind them,
    /// like etcd's defragmentation; returns the file size before and after. Refused with
    /// [`StorageError::Backend`] while a read view is open.
    pub fn defragment(&self) -> Result<(u64, u64), StorageError> {
        let before = self.file_size();
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        db.compact()?;
        drop(db);
        Ok((before, self.file_size()))
    }

    /// Commits `batch` atomically; with `durable` it (and every earlier commit) is on disk when
    /// this returns.
    pub fn commit(&self, batch: Batch, durable: bool) -> Result<(), StorageError> {
        self.commit_with(batch, durable, |_, _, _| {})
    }

    /// [`Backend::commit`], calling `removed` with the bucket, key and old value of every pair
    /// a delete of the batch removed (how the layer above learns what it freed without reading
    /// first).
    pub fn commit_with(
        &self,
        batch: Batch,
        durable: bool,
        mut removed: impl FnMut(Bucket, &[u8], &[u8]),
    ) -> Result<(), StorageError> {
        // Held until the commit is done, so a defragmentation never meets a live write.
        let db = self.db();
        let mut tx = db.begin_write()?;
        tx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        tx.set_quick_repair(true);
        let mut tables = Tables::new(&tx);
        for (bucket, key, value) in batch.changes {
            let table = tables.get(bucket)?;
            match value {
                Some(v) => {
                    table.insert(key.as_slice(), v.as_slice())?;
                }
                None => {
                    if let Some(old) = table.remove(key.as_slice())? {
                        removed(bucket, &key, old.value());
                    }
                }
            }
        }
        drop(tables);
        tx.commit()?;
        drop(db);
        Ok(())
    }

    /// Replaces everything the backend holds with `pairs`, in one durable transaction: when it
    /// returns `Ok` the backend holds exactly those pairs, on disk; if `pairs` yields an error
    /// (or the commit fails) nothing changed. Returns the number of pairs stored.
    pub fn replace_all(
        &self,
        pairs: impl Iterator<Item = Result<(Bucket, Vec<u8>, Vec<u8>), StorageError>>,
    ) -> Result<u64, StorageError> {
        let db = self.db();
        let mut tx = db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        tx.set_quick_repair(true);
        let filled = (|| {
            for bucket in Bucket::ALL {
                tx.delete_table(bucket.table())?;
                tx.open_table(bucket.table())?;
            }
            let mut tables = Tables::new(&tx);
            let mut count = 0;
            for item in pairs {
                let (bucket, key, value) = item?;
                tables
                    .get(bucket)?
                    .insert(key.as_slice(), value.as_slice())?;
                count += 1;
            }
            Ok::<u64, StorageError>(count)
        })();
        match filled {
            Ok(count) => {
                tx.commit()?;
                Ok(count)
            }
            Err(e) => {
                tx.abort()?;
                Err(e)
            }
        }
    }

    /// A consistent read view of everything committed so far.
    pub fn read(&self) -> Result<ReadView, StorageError> {
        Ok(ReadView {
            tx: self.db().begin_read()?,
        })
    }

    /// Bytes the backend file occupies (0 in memory).
    pub fn file_size(&self) -> u64 {
        self.file.as_ref().map_or(0, |f| f.0.len().unwrap_or(0))
    }
}

/// A table of the backend opened for writing.
type BytesTable<'tx> = redb::Table<'tx, &'static [u8], &'static [u8]>;

/// The tables of one write transaction, opening each when first needed (consecutive changes to
/// one bucket reuse its open table).
struct Tables<'tx> {
    tx: &'tx redb::WriteTransaction,
    open: Option<(Bucket, BytesTable<'tx>)>,
}

impl<'tx> Tables<'tx> {
    fn new(tx: &'tx redb::WriteTransaction) -> Self {
        Tables { tx, open: None }
    }

    fn get(&mut self, bucket: Bucket) -> Result<&mut BytesTable<'tx>, StorageError> {
        if self.open.as_ref().is_none_or(|(b, _)| *b != bucket) {
            self.open = None;
            self.open = Some((bucket, self.tx.open_table(bucket.table())?));
        }
        Ok(&mut self.open.as_mut().expect("opened above").1)
    }
}

/// A consistent view of the backend as of its creation; writes committed later are not seen.
pub struct ReadView {
    tx: redb::ReadTransaction,
}

/// A key-value pair read from a [`ReadView`].
pub type Pair = (Vec<u8>, Vec<u8>);

impl ReadView {
    /// The value of `key` in `bucket`.
    pub fn get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let table = self.tx.open_table(bucket.table())?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Pairs of `bucket` with `from <= key < to` (`to` None = to the end), ascending, read
    /// lazily.
    pub fn range(
        &self,
        bucket: Bucket,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> Result<impl Iterator<Item = Result<Pair, StorageError>> + 'static, StorageError> {
        let table = self.tx.open_table(bucket.table())?;
        let range = match to {
            Some(to) => table.range::<&[u8]>(from..to)?,
            None => table.range::<&[u8]>(from..)?,
        };
        Ok(range.map(|item| {
            let (k, v) = item?;
            Ok((k.value().to_vec(), v.value().to_vec()))
        }))
    }

    /// Calls `f` on every pair of `bucket` in key order, borrowing the bytes from the pages (no
    /// copies: for scans over the whole history, such as rebuilding the key index at start).
    pub fn for_each<E: From<StorageError>>(
        &self,
        bucket: Bucket,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let table = self
            .tx
            .open_table(bucket.table())
            .map_err(StorageError::from)?;
        for item in table.range::<&[u8]>(..).map_err(StorageError::from)? {
            let (k, v) = item.map_err(StorageError::from)?;
            f(k.value(), v.value())?;
        }
        Ok(())
    }

    /// Number of pairs in `bucket`.
    pub fn len(&self, bucket: Bucket) -> Result<u64, StorageError> {
        Ok(self.tx.open_table(bucket.table())?.len()?)
    }
}

/// The page file, shared by the database and [`Backend::file_size`].
#[derive(Debug)]
struct PageFile(RandomFile);

/// redb's view of the page file.
#[derive(Debug)]
struct SharedFile(Arc<PageFile>);

fn io_error(e: crate::io::DiskError) -> std::io::Error {
    std::io::Error::new(e.kind(), e)
}

impl redb::StorageBackend for SharedFile {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.0 .0.len().map_err(io_error)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.0 .0.read_at(offset, out).map_err(io_error)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.0 .0.set_len(len).map_err(io_error)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.0 .0.sync().map_err(io_error)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.0 .0.write_at(offset, data).map_err(io_error)
    }
}
