//! Segmented, append-only write-ahead log of typed records.
//!
//! Owns the segment files `<dir>/<seq:016x>.wal` (layout in `record`).
//!
//! Invariants:
//! * Segments have consecutive sequence numbers; replay starts at the newest
//!   *base* segment. The first segment of a fresh log and every segment made
//!   by [`Wal::rotate`] are base segments; segments opened by automatic
//!   size-based rolling are continuations. Segments older than the newest
//!   base are leftovers of an interrupted `rotate` and are deleted at open.
//! * Every segment file appears atomically with a complete, durable header
//!   (`Disk::write_atomic`), so a damaged header is always hard corruption.
//! * Only the last segment may have an unsynced (and thus possibly torn)
//!   tail: automatic rolling syncs the old segment before creating the next.
//!   At open, damage in the last segment with no valid record after it that
//!   a crash can leave (a record cut short, or ending in zeros through the
//!   end of the file: `record::is_torn_tail`) is a torn tail: the file is
//!   truncated to the last good record (synced) and a warning is logged.
//!   Damage followed by a valid record, a complete record failing its
//!   checksum with data at its end, or damage in any earlier segment, is
//!   `StorageError::Corrupt`. (Limitation: a torn frame
//!   whose *payload* embeds a byte-exact valid frame is misreported as
//!   corruption; the opposite mistake, dropping synced data, cannot happen
//!   this way.)
//! * After any I/O error in a mutating method the `Wal` is poisoned (a
//!   failed fsync leaves the file state unknown) and only reopening helps.

use tracing::warn;

use crate::io::{AppendFile, Disk};
use crate::storage::record::{
    encode_frame, find_valid_frame_after, frame_header, is_torn_tail, scan_segment, Record,
    SegmentHeader, FRAME_HEADER_LEN, MAX_PAYLOAD_LEN, SEGMENT_HEADER_LEN,
};
use crate::storage::StorageError;

/// Default size at which a segment is rolled over: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

/// Tunables of a [`Wal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A record that would grow a non-empty segment beyond this many bytes
    /// goes to a new segment instead (a larger record gets one of its own).
    pub segment_size: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// An open write-ahead log. Appends go to the last segment.
#[derive(Debug)]
pub struct Wal {
    disk: Disk,
    dir: String,
    opts: WalOptions,
    /// Oldest segment still on disk (a base segment).
    first_seq: u64,
    /// Segment currently appended to.
    seq: u64,
    file: AppendFile,
    /// Bytes of segments `first_seq..seq`.
    sealed_bytes: u64,
    poisoned: bool,
}

fn segment_name(seq: u64) -> String {
    format!("{seq:016x}.wal")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".wal")?;
    let canonical = hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    canonical.then(|| u64::from_str_radix(hex, 16).ok())?
}

fn check_payload(payload: &[u8]) -> Result<(), StorageError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(StorageError::RecordTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_LEN,
        });
    }
    Ok(())
}

/// Where a log lives; used while opening, before a `Wal` exists.
struct Layout<'a> {
    disk: &'a Disk,
    dir: &'a str,
}

impl Layout<'_> {
    fn rel(&self, seq: u64) -> String {
        format!("{}/{}", self.dir, segment_name(seq))
    }

    fn corrupt(&self, seq: u64, offset: usize, reason: String) -> StorageError {
        StorageError::Corrupt {
            path: self.disk.path(&self.rel(seq)),
            offset: offset as u64,
            reason,
        }
    }

    /// Reads segments newest to oldest down to the newest base segment,
    /// repairs a torn tail of the last one and deletes obsolete older ones.
    /// Returns (first seq, last seq, bytes of all but the last, records).
    fn replay(&self, seqs: &[u64]) -> Result<(u64, u64, u64, Vec<Record>), StorageError> {
        let last = *seqs.last().expect("non-empty");
        let mut per_segment = Vec::new();
        let mut sealed_bytes = 0;
        let mut base_pos = None;
        for (pos, &seq) in seqs.iter().enumerate().rev() {
            if seq != last && seqs[pos + 1] != seq + 1 {
                let reason = format!("WAL segment {:016x} is missing", seq + 1);
                return Err(self.corrupt(seqs[pos + 1], 0, reason));
            }
            let rel = self.rel(seq);
            let bytes = self.disk.read(&rel)?;
            let header = SegmentHeader::decode(&bytes).map_err(|r| self.corrupt(seq, 0, r))?;
            if header.seq != seq {
                let reason = format!("header says segment {:016x}", header.seq);
                return Err(self.corrupt(seq, 0, reason));
            }
            let scan = scan_segment(&bytes);
            if let Some((offset, reason)) = scan.damage {
                if seq != last {
                    return Err(self.corrupt(seq, offset, reason));
                }
                if let Some(next) = find_valid_frame_after(&bytes, offset) {
                    let reason = format!("{reason}; a valid record follows at offset {next}");
                    return Err(self.corrupt(seq, offset, reason));
                }
                if !is_torn_tail(&bytes, offset) {
                    let reason =
                        format!("{reason}: synced data changed (not what a torn write leaves)");
                    return Err(self.corrupt(seq, offset, reason));
                }
                warn!(
                    path = %self.disk.path(&rel).display(),
                    offset,
                    dropped_bytes = bytes.len() - offset,
                    %reason,
                    "truncating torn WAL tail"
                );
                self.disk.truncate(&rel, offset as u64)?;
            } else if seq != last {
                sealed_bytes += bytes.len() as u64;
            }
            per_segment.push(scan.records);
            if header.base {
                base_pos = Some(pos);
                break;
            }
        }
        let Some(base_pos) = base_pos else {
            let reason = "oldest WAL segment is not a base segment (older segments missing)";
            return Err(self.corrupt(seqs[0], 0, reason.to_string()));
        };
        for &old in &seqs[..base_pos] {
            let rel = self.rel(old);
            warn!(path = %self.disk.path(&rel).display(),
                "removing WAL segment superseded by an interrupted rotate");
            self.disk.remove(&rel)?;
        }
        per_segment.reverse();
        let records = per_segment.into_iter().flatten().collect();
        Ok((seqs[base_pos], last, sealed_bytes, records))
    }
}

impl Wal {
    /// Opens (creating if needed) the log in directory `dir` of `disk` with
    /// default options; returns it with every record found, in order.
    pub fn open(disk: Disk, dir: &str) -> Result<(Wal, Vec<Record>), StorageError> {
        Wal::open_with_options(disk, dir, WalOptions::default())
    }

    /// Like [`Wal::open`] with explicit options.
    pub fn open_with_options(
        disk: Disk,
        dir: &str,
        opts: WalOptions,
    ) -> Result<(Wal, Vec<Record>), StorageError> {
        if opts.segment_size == 0 {
            return Err(StorageError::InvalidArgument(
                "segment_size must be positive".into(),
            ));
        }
        let dir = dir.trim_end_matches('/').to_string();
        disk.create_dir_all(&dir)?;
        let stale = disk.remove_temporaries(&dir)?;
        if stale > 0 {
            warn!(dir = %disk.path(&dir).display(), stale, "removed stale temporary files");
        }
        let mut seqs = Vec::new();
        for name in disk.list(&dir)? {
            match parse_segment_name(&name) {
                Some(seq) => seqs.push(seq),
                None => {
                    warn!(dir = %disk.path(&dir).display(), %name, "ignoring unexpected file in WAL directory")
                }
            }
        }
        seqs.sort_unstable();
        let log = Layout {
            disk: &disk,
            dir: &dir,
        };
        let (first_seq, seq, sealed_bytes, records) = if seqs.is_empty() {
            let header = SegmentHeader { seq: 1, base: true }.encode();
            disk.write_atomic(&log.rel(1), &header)?;
            (1, 1, 0, Vec::new())
        } else {
            log.replay(&seqs)?
        };
        let file = disk.open_append(&log.rel(seq))?;
        let wal = Wal {
            disk,
            dir,
            opts,
            first_seq,
            seq,
            file,
            sealed_bytes,
            poisoned: false,
        };
        Ok((wal, records))
    }

    fn rel(&self, seq: u64) -> String {
        Layout {
            disk: &self.disk,
            dir: &self.dir,
        }
        .rel(seq)
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        Ok(())
    }

    /// Marks the log poisoned if `r` failed.
    fn guard<T>(&mut self, r: Result<T, crate::io::DiskError>) -> Result<T, StorageError> {
        if r.is_err() {
            self.poisoned = true;
        }
        Ok(r?)
    }

    /// Appends one record. It is durable only after the next [`Wal::sync`]
    /// (or an automatic segment roll, which syncs the finished segment).
    pub fn append(&mut self, kind: u8, payload: &[u8]) -> Result<(), StorageError> {
        self.check_usable()?;
        check_payload(payload)?;
        let frame_len = (FRAME_HEADER_LEN + payload.len()) as u64;
        let used = self.file.len();
        if used > SEGMENT_HEADER_LEN as u64 && used + frame_len > self.opts.segment_size {
            self.roll()?;
        }
        let header = frame_header(kind, payload);
        let r = self.file.append(&header);
        self.guard(r)?;
        let r = self.file.append(payload);
        self.guard(r)
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        let r = self.file.sync();
        #[cfg(madsim)]
        if r.is_err() && crate::fault::active(crate::fault::Bug::IgnoreFsyncError) {
            return Ok(());
        }
        self.guard(r)
    }

    /// Seals the current segment (synced) and continues in a new one.
    fn roll(&mut self) -> Result<(), StorageError> {
        let r = self.file.sync();
        self.guard(r)?;
        let next = self.seq + 1;
        let rel = self.rel(next);
        let header = SegmentHeader {
            seq: next,
            base: false,
        };
        let r = self.disk.write_atomic(&rel, &header.encode());
        self.guard(r)?;
        let r = self.disk.open_append(&rel);
        let file = self.guard(r)?;
        self.sealed_bytes += self.file.len();
        self.file = file;
        self.seq = next;
        Ok(())
    }

    /// Replaces the whole log by a new, synced base segment holding exactly
    /// `records`, then deletes every older segment. Unsynced appends made
    /// before the call are discarded with the old segments. After a crash at
    /// any point, reopening yields either the old log or exactly `records`.
    /// The old segments are removed in the background ([`Disk::remove_detached`]).
    pub fn rotate(&mut self, records: &[Record]) -> Result<(), StorageError> {
        self.check_usable()?;
        let mut total = SEGMENT_HEADER_LEN;
        for r in records {
            check_payload(&r.payload)?;
            total += FRAME_HEADER_LEN + r.payload.len();
        }
        let next = self.seq + 1;
        let mut buf = Vec::with_capacity(total);
        buf.extend_from_slice(
            &SegmentHeader {
                seq: next,
                base: true,
            }
            .encode(),
        );
        for r in records {
            encode_frame(&mut buf, r.kind, &r.payload);
        }
        let rel = self.rel(next);
        let r = self.disk.write_atomic(&rel, &buf);
        self.guard(r)?;
        let r = self.disk.open_append(&rel);
        self.file = self.guard(r)?;
        let old = self.first_seq..next;
        self.first_seq = next;
        self.seq = next;
        self.sealed_bytes = 0;
        // Obsolete now (a reopen deletes what is left of them), so nobody waits for their
        // removal, which stalled the raft task 35–40 ms at each snapshot point.
        for seq in old {
            self.disk.remove_detached(&self.rel(seq));
        }
        Ok(())
    }

    /// Bytes of all segments on disk, including unsynced appends.
    pub fn size_bytes(&self) -> u64 {
        self.sealed_bytes + self.file.len()
    }

    /// Sequence numbers of the segments in use, oldest first.
    pub fn segments(&self) -> std::ops::RangeInclusive<u64> {
        self.first_seq..=self.seq
    }
}
