//! [`History`]: the revision → record map of a [`Store`](super::Store), kept on disk in the
//! backend's `key` bucket, so that values and old revisions cost no RAM.
//!
//! Owns the record encoding and the records not yet committed to the backend:
//! * `pending`: records applied since the last [`History::flush`], newer than every committed
//!   one (revisions only grow), read from RAM until the flush commits them.
//! * `doomed`: revisions removed by compaction but still in the backend. No key index refers
//!   to them any more, and every read skips them. Each flush deletes at most
//!   [`DELETE_BATCH`] of them ([`IDLE_DELETE_BATCH`] on the tick), oldest first, so a compaction of
//!   millions of revisions never stalls writes and readers for one huge commit; the store
//!   drives flushes until none are left ([`History::backlog`]). A crash part-way leaves the
//!   rest in the backend, where the restart finds them again (see `Store::open`).
//!
//! Encoding: the backend key is etcd's 17-byte revision (`main` big endian, `_`, `sub` big
//! endian); the value is one flag byte (0 = put, 1 = tombstone) followed by the protobuf
//! `mvccpb.KeyValue` of the change (etcd stores that same message).
//!
//! A read that fails is fatal: a member that cannot read its own data must not answer from less
//! (etcd panics there too); the disk that failed is named in the panic.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use prost::Message as _;

use crate::mvcc::revision::Revision;
use crate::mvcc::store::Record;
use crate::pb::mvccpb;
use crate::storage::{Backend, Batch, Bucket, ReadView, StorageError};

/// Most doomed revisions one flush of applied entries deletes (etcd's compaction batch limit
/// is 1000); a flush from the idle tick deletes [`IDLE_DELETE_BATCH`].
#[cfg(not(madsim))]
pub(crate) const DELETE_BATCH: usize = 1024;
/// Most doomed revisions one flush deletes: few in simulation, so that compactions span many
/// flushes and crashes, snapshots and restarts meet them half done.
#[cfg(madsim)]
pub(crate) const DELETE_BATCH: usize = 8;
/// Most doomed revisions a flush made only to delete them (on the node's tick) deletes.
pub(crate) const IDLE_DELETE_BATCH: usize = 4 * DELETE_BATCH;

/// Length of an encoded revision key.
pub(crate) const REVISION_KEY_LEN: usize = 17;

/// etcd's on-disk revision key.
pub(crate) fn revision_key(rev: Revision) -> [u8; REVISION_KEY_LEN] {
    let mut out = [0u8; REVISION_KEY_LEN];
    out[..8].copy_from_slice(&rev.main.to_be_bytes());
    out[8] = b'_';
    out[9..].copy_from_slice(&rev.sub.to_be_bytes());
    out
}

pub(crate) fn parse_revision_key(key: &[u8]) -> Option<Revision> {
    if key.len() < REVISION_KEY_LEN || key[8] != b'_' {
        return None;
    }
    let main = i64::from_be_bytes(key[..8].try_into().ok()?);
    let sub = i64::from_be_bytes(key[9..17].try_into().ok()?);
    Some(Revision::new(main, sub))
}

/// The `mvccpb.KeyValue` a record at `rev` is stored as (after detcd's flag byte).
pub(crate) fn stored_kv(rev: Revision, rec: &Record) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: bytes::Bytes::copy_from_slice(&rec.key),
        create_revision: rec.create_revision,
        mod_revision: rev.main,
        version: rec.version,
        value: bytes::Bytes::copy_from_slice(&rec.value),
        lease: rec.lease,
    }
}

fn encode(rev: Revision, rec: &Record) -> Vec<u8> {
    let kv = stored_kv(rev, rec);
    let mut out = Vec::with_capacity(1 + kv.encoded_len());
    out.push(u8::from(rec.tombstone));
    kv.encode(&mut out).expect("a Vec grows as needed");
    out
}

/// Decodes a stored record; the protobuf's fields borrow from `value` (one copy of the value
/// is made, into the record).
fn decode(key: &[u8], value: Vec<u8>) -> Result<(Revision, Record), String> {
    let rev = parse_revision_key(key).ok_or_else(|| format!("bad revision key {key:?}"))?;
    let &flag = value
        .first()
        .ok_or_else(|| format!("empty record at {rev}"))?;
    let body = bytes::Bytes::from(value).slice(1..);
    let kv = mvccpb::KeyValue::decode(body).map_err(|e| format!("record at {rev}: {e}"))?;
    Ok((
        rev,
        Record {
            key: Arc::from(&kv.key[..]),
            value: kv.value.to_vec(),
            create_revision: kv.create_revision,
            version: kv.version,
            lease: kv.lease,
            tombstone: flag == 1,
        },
    ))
}

/// Stops the member on a backend read failure (see the module docs).
fn fatal(e: impl std::fmt::Display) -> ! {
    tracing::error!(error = %e, "backend read failed; stopping");
    panic!("backend read failed: {e}")
}

/// Revisions a compaction removed, oldest first (a sorted queue: a compaction adds hundreds of
/// thousands at once, flushes take them from the front).
#[derive(Debug, Default)]
struct Doomed(VecDeque<Revision>);

impl Doomed {
    /// Adds `revs` (in any order), keeping the queue sorted.
    fn add(&mut self, mut revs: Vec<Revision>) {
        revs.sort_unstable();
        match (self.0.back(), revs.first()) {
            (Some(last), Some(first)) if first <= last => {
                // One linear merge of the two sorted runs.
                let old = std::mem::take(&mut self.0);
                let mut merged = VecDeque::with_capacity(old.len() + revs.len());
                let (mut a, mut b) = (old.into_iter().peekable(), revs.into_iter().peekable());
                loop {
                    let next = match (a.peek(), b.peek()) {
                        (Some(x), Some(y)) if x <= y => a.next(),
                        (Some(_), Some(_)) => b.next(),
                        (Some(_), None) => a.next(),
                        (None, _) => b.next(),
                    };
                    match next {
                        Some(rev) if merged.back() != Some(&rev) => merged.push_back(rev),
                        Some(_) => {}
                        None => break,
                    }
                }
                self.0 = merged;
            }
            _ => self.0.extend(revs),
        }
    }

    fn contains(&self, rev: &Revision) -> bool {
        self.0.binary_search(rev).is_ok()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// The `n` oldest (fewer if there are not as many).
    fn oldest(&self, n: usize) -> Vec<Revision> {
        self.0.iter().take(n).copied().collect()
    }

    /// Forgets the `n` oldest.
    fn drop_oldest(&mut self, n: usize) {
        self.0.drain(..n.min(self.0.len()));
    }

    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = &Revision> {
        self.0.iter()
    }
}

/// The revision → record map; see the module docs.
#[derive(Debug)]
pub(crate) struct History {
    backend: Backend,
    pending: BTreeMap<Revision, Record>,
    doomed: Doomed,
}

impl History {
    /// The history stored in `backend`.
    pub(crate) fn new(backend: Backend) -> History {
        History {
            backend,
            pending: BTreeMap::new(),
            doomed: Doomed::default(),
        }
    }

    /// The backend underneath.
    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Adds a record (newer than every record so far).
    pub(crate) fn insert(&mut self, rev: Revision, rec: Record) {
        self.pending.insert(rev, rec);
    }

    /// Removes the records at `revs` (compaction): they are doomed, pending ones included, and
    /// their sizes are returned by the flushes that delete them.
    ///
    /// Pending ones are not simply dropped: each flush deletes the *oldest* doomed records, so
    /// that whatever a crash leaves of a key's doomed records is its oldest ones followed by
    /// the newer ones. Dropping a pending tombstone at once while an older, stored put of the
    /// same key waits for its turn would let a crash resurrect the deleted key at restart.
    pub(crate) fn remove(&mut self, revs: Vec<Revision>) {
        self.doomed.add(revs);
    }

    /// Doomed revisions not yet deleted from the backend.
    pub(crate) fn backlog(&self) -> usize {
        self.doomed.len()
    }

    /// A reader of the history as it is now.
    pub(crate) fn reader(&self) -> Reader<'_> {
        let view = self.backend.read().unwrap_or_else(|e| fatal(e));
        Reader {
            history: self,
            view,
        }
    }

    /// Adds every change since the last flush, and the deletion of up to `delete_limit`
    /// doomed revisions, to `batch` and commits it (durably if asked); returns the sum of the
    /// sizes of the records deleted. On failure nothing is forgotten; the caller must stop
    /// writing (the disk is failing).
    pub(crate) fn flush(
        &mut self,
        mut batch: Batch,
        durable: bool,
        delete_limit: usize,
    ) -> Result<usize, StorageError> {
        let mut changes = Batch::default();
        let deleting = self.doomed.oldest(delete_limit);
        let mut freed = 0;
        for rev in &deleting {
            match self.pending.remove(rev) {
                // Deleted before it was ever written (everything older goes in this commit too).
                Some(rec) => freed += rec.size(),
                None => changes.delete(Bucket::Key, revision_key(*rev).to_vec()),
            }
        }
        for (rev, rec) in &self.pending {
            changes.put(Bucket::Key, revision_key(*rev).to_vec(), encode(*rev, rec));
        }
        changes.append(&mut batch);
        self.backend
            .commit_with(changes, durable, |bucket, key, value| {
                if bucket == Bucket::Key {
                    // A record that does not parse still frees its bytes; count them.
                    freed += outline(key, value).map_or(key.len() + value.len(), |o| o.size);
                }
            })?;
        self.pending.clear();
        self.doomed.drop_oldest(deleting.len());
        Ok(freed)
    }

    /// Sum of the sizes of the doomed records (tests: the store's size counts them until they
    /// are deleted).
    #[cfg(test)]
    pub(crate) fn doomed_bytes(&self) -> usize {
        let Ok(view) = self.backend.read() else {
            return 0;
        };
        let stored = |rev: &Revision| {
            let value = view.get(Bucket::Key, &revision_key(*rev)).ok().flatten()?;
            outline(&revision_key(*rev), &value).ok().map(|o| o.size)
        };
        self.doomed
            .iter()
            .filter_map(|rev| match self.pending.get(rev) {
                Some(rec) => Some(rec.size()),
                None => stored(rev),
            })
            .sum()
    }
}

/// The stored record at `rev` in `view`.
fn stored(view: &ReadView, rev: Revision) -> Option<Record> {
    let key = revision_key(rev);
    let bytes = view.get(Bucket::Key, &key).unwrap_or_else(|e| fatal(e))?;
    Some(decode(&key, bytes).unwrap_or_else(|e| fatal(e)).1)
}

/// Stored records with `from <= revision < to` (`to` None = all) in `view`, ascending.
fn scan_stored(
    view: &ReadView,
    from: Revision,
    to: Option<Revision>,
) -> impl Iterator<Item = (Revision, Record)> + 'static {
    let to_key = to.map(revision_key);
    view.range(
        Bucket::Key,
        &revision_key(from),
        to_key.as_ref().map(|k| &k[..]),
    )
    .unwrap_or_else(|e| fatal(e))
    .map(|item| {
        let (k, v) = item.unwrap_or_else(|e| fatal(e));
        decode(&k, v).unwrap_or_else(|e| fatal(e))
    })
}

/// The pending records with `from <= revision < to` (`to` None = all).
fn pending_range(
    pending: &BTreeMap<Revision, Record>,
    from: Revision,
    to: Option<Revision>,
) -> std::collections::btree_map::Range<'_, Revision, Record> {
    match to {
        Some(to) => pending.range(from..to),
        None => pending.range(from..),
    }
}

/// Records with `from <= revision < to` (`to` None = all), ascending: the stored ones in `view`,
/// then the `pending` ones (every pending record is newer than every stored one).
fn scan_merged<'a>(
    view: &ReadView,
    pending: &'a BTreeMap<Revision, Record>,
    from: Revision,
    to: Option<Revision>,
) -> impl Iterator<Item = (Revision, Record)> + 'a {
    let pending = pending_range(pending, from, to).map(|(rev, rec)| (*rev, rec.clone()));
    scan_stored(view, from, to).chain(pending)
}

/// Reads records: pending ones from RAM, the rest from one backend read view.
pub(crate) struct Reader<'h> {
    history: &'h History,
    view: ReadView,
}

impl Reader<'_> {
    /// The record at `rev`.
    pub(crate) fn get(&self, rev: Revision) -> Option<Record> {
        if self.history.doomed.contains(&rev) {
            return None;
        }
        match self.history.pending.get(&rev) {
            Some(rec) => Some(rec.clone()),
            None => stored(&self.view, rev),
        }
    }

    /// Records with `from <= revision < to` (`to` None = all), ascending.
    pub(crate) fn scan(
        &self,
        from: Revision,
        to: Option<Revision>,
    ) -> impl Iterator<Item = (Revision, Record)> + '_ {
        let doomed = &self.history.doomed;
        scan_merged(&self.view, &self.history.pending, from, to)
            .filter(move |(rev, _)| !doomed.contains(rev))
    }

    /// Takes this reader's view along with `pending` (copies of pending records), to read
    /// them later without the history (see [`Detached`]).
    fn detach(self, pending: impl Iterator<Item = (Revision, Record)>) -> Detached {
        Detached {
            view: self.view,
            pending: pending.collect(),
        }
    }
}

/// Records read without the store's lock: a backend read view and copies of the pending
/// records a read needs, both taken while the history could not change, so together they are
/// the history as it was then. Later flushes and compaction deletions do not reach the view.
/// Holds no doomed list: callers read only revisions the key index referred to then, or
/// revisions above the compaction point, which compaction never dooms.
pub(crate) struct Detached {
    view: ReadView,
    pending: BTreeMap<Revision, Record>,
}

impl Detached {
    /// The record at `rev`.
    pub(crate) fn get(&self, rev: Revision) -> Option<Record> {
        match self.pending.get(&rev) {
            Some(rec) => Some(rec.clone()),
            None => stored(&self.view, rev),
        }
    }

    /// Records with `from <= revision < to` (`to` None = all), ascending.
    pub(crate) fn scan(
        &self,
        from: Revision,
        to: Option<Revision>,
    ) -> impl Iterator<Item = (Revision, Record)> + '_ {
        scan_merged(&self.view, &self.pending, from, to)
    }
}

impl History {
    /// A detached reader for the revisions `revs` (a range read's plan).
    pub(crate) fn detach_revisions(&self, revs: &[Revision]) -> Detached {
        let pending = revs
            .iter()
            .filter_map(|rev| self.pending.get(rev).map(|rec| (*rev, rec.clone())));
        self.reader().detach(pending)
    }

    /// A detached reader for the records with `from <= revision < to` (`to` None = all).
    pub(crate) fn detach_scan(&self, from: Revision, to: Option<Revision>) -> Detached {
        let pending = pending_range(&self.pending, from, to).map(|(rev, rec)| (*rev, rec.clone()));
        self.reader().detach(pending)
    }
}

/// What rebuilding the key index needs of a stored record.
pub(crate) struct Outline<'a> {
    pub(crate) rev: Revision,
    pub(crate) key: &'a [u8],
    pub(crate) tombstone: bool,
    pub(crate) lease: i64,
    /// [`Record::size`] of the record.
    pub(crate) size: usize,
}

/// Reads the key and lease of an encoded record without copying or decoding the value.
fn outline<'a>(key: &[u8], value: &'a [u8]) -> Result<Outline<'a>, String> {
    use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
    let rev = parse_revision_key(key).ok_or_else(|| format!("bad revision key {key:?}"))?;
    let (&flag, mut buf) = value
        .split_first()
        .ok_or_else(|| format!("empty record at {rev}"))?;
    let bad = |e: prost::DecodeError| format!("record at {rev}: {e}");
    let (mut kv_key, mut lease, mut value_len) = (&[][..], 0i64, 0usize);
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(bad)?;
        match (tag, wire) {
            (1 | 5, WireType::LengthDelimited) => {
                let len = decode_varint(&mut buf).map_err(bad)? as usize;
                if len > buf.len() {
                    return Err(format!("record at {rev}: field {tag} overruns the record"));
                }
                let (field, rest) = buf.split_at(len);
                if tag == 1 {
                    kv_key = field;
                } else {
                    value_len = len;
                }
                buf = rest;
            }
            (6, WireType::Varint) => lease = decode_varint(&mut buf).map_err(bad)? as i64,
            _ => skip_field(wire, tag, &mut buf, DecodeContext::default()).map_err(bad)?,
        }
    }
    Ok(Outline {
        rev,
        key: kv_key,
        tombstone: flag == 1,
        lease,
        size: kv_key.len() + value_len + super::store::RECORD_OVERHEAD,
    })
}

/// Calls `f` on an outline of every record stored in `backend`, ascending (to rebuild the key
/// index at start without copying values).
pub(crate) fn for_each_outline(
    backend: &Backend,
    mut f: impl FnMut(Outline<'_>),
) -> Result<(), StorageError> {
    backend.read()?.for_each(Bucket::Key, |k, v| {
        f(outline_of(k, v)?);
        Ok::<(), StorageError>(())
    })
}

/// The outline of the history record stored as `key` → `value`.
pub(crate) fn outline_of<'a>(key: &[u8], value: &'a [u8]) -> Result<Outline<'a>, StorageError> {
    outline(key, value).map_err(|reason| StorageError::Corrupt {
        path: "snap/db".into(),
        offset: 0,
        reason,
    })
}
