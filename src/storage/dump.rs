//! Backend dumps: every pair of every bucket of one [`ReadView`], as one self-checking byte
//! stream produced in bounded chunks (what a leader streams to a member that needs a raft
//! snapshot) and read back pair by pair (what that member loads into its backend).
//!
//! Format (integers little-endian):
//! * header: magic `b"DDMP"`, `u32` version (1);
//! * one record per pair, buckets in [`Bucket::ALL`] order and keys ascending within each:
//!   `u8` bucket tag ([`Bucket::tag`], never 0), `u32` key length, key, `u32` value length,
//!   value;
//! * trailer: `u8` 0, `u64` number of records, `u32` CRC32 (IEEE) of every byte before it.
//!
//! Invariants: neither side ever holds more than one chunk (about [`CHUNK_BYTES`]) plus one pair
//! in memory; [`DumpReader`] yields a pair only from a stream whose header is valid, and ends
//! with an error, never silently, on a stream that is cut short, has trailing bytes, or fails
//! its count or checksum — so a caller that loads the pairs in one transaction and commits only
//! after the last `None` never commits a partial or damaged dump.

use std::io::Read;

use crate::storage::backend::Pair;
use crate::storage::{Bucket, ReadView, StorageError};

const MAGIC: [u8; 4] = *b"DDMP";
const VERSION: u32 = 1;
/// Tag of the trailer.
const END_TAG: u8 = 0;
/// A chunk is cut once it holds at least this many bytes.
pub const CHUNK_BYTES: usize = 1 << 20;

/// A pair read from a dump, with its bucket.
pub type BucketPair = (Bucket, Vec<u8>, Vec<u8>);

type PairIter = std::iter::Peekable<Box<dyn Iterator<Item = Result<Pair, StorageError>> + Send>>;

/// The chunks of a dump of one read view, encoded lazily (see [`chunks`]).
pub struct DumpChunks {
    /// Buckets still to be read, each with its pairs, in order.
    buckets: std::vec::IntoIter<(Bucket, PairIter)>,
    current: Option<(Bucket, PairIter)>,
    hasher: crc32fast::Hasher,
    count: u64,
    started: bool,
    done: bool,
    /// The injected bug `snapshot-drops-record`: leave out the newest history record.
    #[cfg(madsim)]
    drop_last_record: bool,
}

/// A dump of everything `view` holds, as chunks of about [`CHUNK_BYTES`]. The view's iterators
/// are opened here; the pairs are read as the chunks are taken.
pub fn chunks(view: &ReadView) -> Result<DumpChunks, StorageError> {
    let mut buckets = Vec::new();
    for bucket in Bucket::ALL {
        let pairs: Box<dyn Iterator<Item = _> + Send> = Box::new(view.range(bucket, &[], None)?);
        buckets.push((bucket, pairs.peekable()));
    }
    Ok(DumpChunks {
        buckets: buckets.into_iter(),
        current: None,
        hasher: crc32fast::Hasher::new(),
        count: 0,
        started: false,
        done: false,
        #[cfg(madsim)]
        drop_last_record: crate::fault::active(crate::fault::Bug::SnapshotDropsRecord),
    })
}

impl DumpChunks {
    /// The next pair of the dump, moving through the buckets.
    fn next_pair(&mut self) -> Option<Result<(Bucket, Pair), StorageError>> {
        loop {
            if self.current.is_none() {
                self.current = Some(self.buckets.next()?);
            }
            let (bucket, pairs) = self.current.as_mut().expect("set above");
            match pairs.next() {
                Some(item) => {
                    #[cfg(madsim)]
                    if *bucket == Bucket::Key && self.drop_last_record && pairs.peek().is_none() {
                        continue;
                    }
                    return Some(item.map(|pair| (*bucket, pair)));
                }
                None => self.current = None,
            }
        }
    }
}

impl Iterator for DumpChunks {
    type Item = Result<Vec<u8>, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut out = Vec::with_capacity(CHUNK_BYTES + 64);
        if !std::mem::replace(&mut self.started, true) {
            out.extend_from_slice(&MAGIC);
            out.extend_from_slice(&VERSION.to_le_bytes());
        }
        while out.len() < CHUNK_BYTES && !self.done {
            match self.next_pair() {
                Some(Ok((bucket, (key, value)))) => {
                    out.push(bucket.tag());
                    put_bytes(&mut out, &key);
                    put_bytes(&mut out, &value);
                    self.count += 1;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => {
                    out.push(END_TAG);
                    out.extend_from_slice(&self.count.to_le_bytes());
                    self.done = true;
                }
            }
        }
        self.hasher.update(&out);
        if self.done {
            let crc = std::mem::take(&mut self.hasher).finalize();
            out.extend_from_slice(&crc.to_le_bytes());
        }
        Some(Ok(out))
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Reads a dump back pair by pair (see the module docs for what it refuses).
pub struct DumpReader<R> {
    source: R,
    hasher: crc32fast::Hasher,
    count: u64,
    offset: u64,
    done: bool,
}

/// A reader of the dump in `source`; fails at once if the header is not a dump's.
pub fn read<R: Read>(source: R) -> Result<DumpReader<R>, StorageError> {
    let mut reader = DumpReader {
        source,
        hasher: crc32fast::Hasher::new(),
        count: 0,
        offset: 0,
        done: false,
    };
    let mut header = [0u8; 8];
    reader.fill(&mut header)?;
    if header[..4] != MAGIC {
        return Err(damaged(0, "not a backend dump (bad magic)".into()));
    }
    let version = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(damaged(4, format!("unsupported dump version {version}")));
    }
    Ok(reader)
}

fn damaged(offset: u64, reason: String) -> StorageError {
    StorageError::Corrupt {
        path: "snapshot dump".into(),
        offset,
        reason,
    }
}

impl<R: Read> DumpReader<R> {
    /// Reads exactly `out.len()` bytes, hashing them.
    fn fill(&mut self, out: &mut [u8]) -> Result<(), StorageError> {
        self.fill_unhashed(out)?;
        self.hasher.update(out);
        Ok(())
    }

    fn fill_unhashed(&mut self, out: &mut [u8]) -> Result<(), StorageError> {
        self.source.read_exact(out).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => damaged(self.offset, "dump cut short".into()),
            _ => damaged(self.offset, format!("reading the dump: {e}")),
        })?;
        self.offset += out.len() as u64;
        Ok(())
    }

    fn bytes(&mut self) -> Result<Vec<u8>, StorageError> {
        let mut len = [0u8; 4];
        self.fill(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        // Read as it comes rather than allocated up front: a damaged length must not allocate
        // gigabytes before the stream turns out to be short.
        let mut out = Vec::new();
        let got = (&mut self.source)
            .take(len as u64)
            .read_to_end(&mut out)
            .map_err(|e| damaged(self.offset, format!("reading the dump: {e}")))?;
        self.offset += got as u64;
        if got < len {
            return Err(damaged(self.offset, "dump cut short".into()));
        }
        self.hasher.update(&out);
        Ok(out)
    }

    fn record(&mut self) -> Result<Option<BucketPair>, StorageError> {
        let at = self.offset;
        let mut tag = [0u8; 1];
        self.fill(&mut tag)?;
        if tag[0] == END_TAG {
            self.trailer()?;
            return Ok(None);
        }
        let bucket = Bucket::from_tag(tag[0])
            .ok_or_else(|| damaged(at, format!("unknown bucket tag {}", tag[0])))?;
        let key = self.bytes()?;
        let value = self.bytes()?;
        self.count += 1;
        Ok(Some((bucket, key, value)))
    }

    /// Checks the record count, the checksum and that nothing follows.
    fn trailer(&mut self) -> Result<(), StorageError> {
        let mut count = [0u8; 8];
        self.fill(&mut count)?;
        let mut crc = [0u8; 4];
        self.fill_unhashed(&mut crc)?;
        if u64::from_le_bytes(count) != self.count {
            return Err(damaged(self.offset, "dump record count mismatch".into()));
        }
        let expected = std::mem::take(&mut self.hasher).finalize();
        if u32::from_le_bytes(crc) != expected {
            return Err(damaged(self.offset, "dump checksum mismatch".into()));
        }
        let mut extra = [0u8; 1];
        match self.source.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(damaged(self.offset, "bytes after the dump's end".into())),
            Err(e) => Err(damaged(self.offset, format!("reading the dump: {e}"))),
        }
    }
}

impl<R: Read> Iterator for DumpReader<R> {
    type Item = Result<BucketPair, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.record().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Backend, Batch};

    fn sample() -> Backend {
        let backend = Backend::in_memory();
        let mut batch = Batch::default();
        for i in 0..3000u32 {
            batch.put(Bucket::Key, i.to_be_bytes().to_vec(), vec![i as u8; 700]);
        }
        batch.put(
            Bucket::Meta,
            b"consistent_index".to_vec(),
            9u64.to_be_bytes().to_vec(),
        );
        batch.put(Bucket::Alarm, vec![1; 12], Vec::new());
        backend.commit(batch, false).unwrap();
        backend
    }

    fn encode(backend: &Backend) -> Vec<Vec<u8>> {
        chunks(&backend.read().unwrap())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn everything(backend: &Backend) -> Vec<BucketPair> {
        let view = backend.read().unwrap();
        Bucket::ALL
            .iter()
            .flat_map(|&b| {
                view.range(b, &[], None)
                    .unwrap()
                    .map(move |p| p.map(|(k, v)| (b, k, v)))
            })
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_dump_reads_back_whole_in_bounded_chunks() {
        let backend = sample();
        let parts = encode(&backend);
        assert!(parts.len() >= 2, "2 MB of values must take several chunks");
        assert!(parts.iter().all(|c| c.len() < CHUNK_BYTES + 2000));
        let bytes = parts.concat();
        let read: Vec<BucketPair> = read(&bytes[..]).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(read, everything(&backend));
    }

    #[test]
    fn an_empty_backend_dumps_to_header_and_trailer() {
        let bytes = encode(&Backend::in_memory()).concat();
        assert_eq!(bytes.len(), 8 + 1 + 8 + 4);
        assert_eq!(read(&bytes[..]).unwrap().count(), 0);
    }

    #[test]
    fn damaged_or_cut_dumps_end_in_an_error() {
        let bytes = encode(&sample()).concat();
        let ends_in_error = |b: &[u8]| match read(b) {
            Err(_) => true,
            Ok(r) => r.last().is_some_and(|item| item.is_err()),
        };
        assert!(!ends_in_error(&bytes));
        for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
            assert!(ends_in_error(&bytes[..cut]), "cut at {cut}");
        }
        for flip in [2, 30, bytes.len() / 3, bytes.len() - 6, bytes.len() - 2] {
            let mut bad = bytes.clone();
            bad[flip] ^= 0x10;
            assert!(ends_in_error(&bad), "bit flipped at {flip}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ends_in_error(&longer));
    }

    #[test]
    fn replace_all_loads_a_whole_dump_or_nothing() {
        let source = sample();
        let bytes = encode(&source).concat();
        let target = Backend::in_memory();
        let mut old = Batch::default();
        old.put(Bucket::Lease, b"old".to_vec(), b"lease".to_vec());
        target.commit(old, false).unwrap();
        let before = everything(&target);

        let mut bad = bytes.clone();
        let at = bad.len() - 3;
        bad[at] ^= 1;
        assert!(target.replace_all(read(&bad[..]).unwrap()).is_err());
        assert_eq!(
            everything(&target),
            before,
            "a damaged dump changes nothing"
        );

        let stored = target.replace_all(read(&bytes[..]).unwrap()).unwrap();
        assert_eq!(stored, 3002);
        assert_eq!(everything(&target), everything(&source));
    }
}
