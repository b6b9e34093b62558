//! Raft's durable state on disk: what goes into the WAL (entries, hard states, snapshot markers)
//! and the snapshot files, and how a restarted member rebuilds its raft log from them.
//!
//! WAL record kinds: `ENTRY` (an `eraftpb::Entry`), `HARD_STATE` (an `eraftpb::HardState`),
//! `SNAPSHOT` (index + term of a snapshot the log continues from, then the snapshot itself:
//! metadata with the conf state, no data). Recovery replays them in order: an entry at index `i`
//! replaces any entries at `i` and after (a new leader overwrote an uncommitted tail), the last
//! hard state wins, and entries at or below the newest snapshot are dropped. After a snapshot the
//! WAL is rotated into one self-contained segment (snapshot marker, hard state, the entries past
//! the snapshot), so old segments can be deleted.
//!
//! The newest snapshot is the newer of the newest valid snapshot file and the WAL's newest
//! marker: the segment is self-contained, so a damaged or missing newest snapshot file (renamed
//! `.broken` by [`SnapshotStore`]) does not cost the member its log. Markers written before the
//! snapshot went into them (16 bytes) only name the point, and need the file.

use super::commit_mark::CommitMark;
use super::RaftError;
use crate::io::Disk;
use crate::storage::{Record, SnapshotStore, Wal};
use protobuf::Message as _;
use raft::eraftpb::{Entry, HardState, Snapshot};

const ENTRY: u8 = 1;
const HARD_STATE: u8 = 2;
const SNAPSHOT: u8 = 3;
/// Snapshot files kept on disk.
const SNAPSHOTS_KEPT: usize = 2;

/// What a restarting member finds on disk.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The newest valid snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// The last persisted hard state.
    pub hard_state: HardState,
    /// Log entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

impl Recovered {
    /// Whether this member has never persisted anything.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.entries.is_empty()
            && self.hard_state == HardState::default()
    }
}

/// The WAL and the snapshot files of one member.
pub struct DurableLog {
    disk: Disk,
    wal: Wal,
    snapshots: SnapshotStore,
    mark: CommitMark,
}

impl DurableLog {
    /// Opens (creating if needed) `wal/` and `snap/` on `disk` and recovers their contents.
    pub fn open(disk: Disk) -> Result<(DurableLog, Recovered), RaftError> {
        let snapshots = SnapshotStore::new(disk.clone(), "snap")?;
        let snapshot = match snapshots.load_newest()? {
            Some((_, _, bytes)) => Some(Snapshot::parse_from_bytes(&bytes)?),
            None => None,
        };
        let (mark, marked_commit) = CommitMark::open(disk.clone())?;
        let (wal, records) = Wal::open(disk.clone(), "wal")?;
        let recovered = replay(snapshot, &records, marked_commit)?;
        Ok((
            DurableLog {
                disk,
                wal,
                snapshots,
                mark,
            },
            recovered,
        ))
    }

    /// Appends entries (not yet durable: call [`DurableLog::sync`]).
    pub fn append_entries(&mut self, entries: &[Entry]) -> Result<(), RaftError> {
        for e in entries {
            self.wal.append(ENTRY, &e.write_to_bytes()?)?;
        }
        Ok(())
    }

    /// Appends a hard state (not yet durable: call [`DurableLog::sync`]).
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<(), RaftError> {
        self.wal.append(HARD_STATE, &hs.write_to_bytes()?)?;
        Ok(())
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> Result<(), RaftError> {
        #[cfg(madsim)]
        if crate::fault::active(crate::fault::Bug::AckBeforeFsync) {
            return Ok(());
        }
        self.wal.sync()?;
        Ok(())
    }

    /// Waits as long as the syncs since the last call took, where that is not already behind us
    /// (simulated sync latency; see `crate::io::Disk::settle`).
    pub async fn settle(&self) {
        self.disk.settle().await;
    }

    /// Has the commit mark record, without waiting, that everything up to `commit` is
    /// committed and durable in the WAL (the caller has synced it). A no-op unless `commit` is
    /// past the mark; fails if an earlier refresh of the mark failed.
    pub fn mark_committed(&mut self, commit: u64) -> Result<(), RaftError> {
        self.mark.advance(commit)?;
        Ok(())
    }

    /// Like [`DurableLog::mark_committed`], waiting until the mark is durable (a clean stop).
    pub fn mark_committed_now(&mut self, commit: u64) -> Result<(), RaftError> {
        self.mark.advance_now(commit)?;
        Ok(())
    }

    /// Saves a snapshot file, then rotates the WAL to continue from it with `hs` and `tail`
    /// (the entries after the snapshot), and drops old snapshot files.
    pub fn save_snapshot(
        &mut self,
        snap: &Snapshot,
        hs: &HardState,
        tail: &[Entry],
    ) -> Result<(), RaftError> {
        let meta = snap.get_metadata();
        let encoded = snap.write_to_bytes()?;
        self.snapshots.save(meta.index, meta.term, &encoded)?;
        let mut marker = Vec::with_capacity(16 + encoded.len());
        marker.extend_from_slice(&meta.index.to_le_bytes());
        marker.extend_from_slice(&meta.term.to_le_bytes());
        marker.extend_from_slice(&encoded);
        let mut records = vec![
            Record::new(SNAPSHOT, marker),
            Record::new(HARD_STATE, hs.write_to_bytes()?),
        ];
        for e in tail {
            records.push(Record::new(ENTRY, e.write_to_bytes()?));
        }
        self.wal.rotate(&records)?;
        self.snapshots.purge(SNAPSHOTS_KEPT)?;
        Ok(())
    }
}

/// Rebuilds the raft log from the WAL records that follow `snapshot`. `marked_commit` is the
/// commit mark (an index known committed and durable when it was written): a log that ends
/// before it, or before its own last hard state's commit, lost synced data.
fn replay(
    snapshot: Option<Snapshot>,
    records: &[Record],
    marked_commit: u64,
) -> Result<Recovered, RaftError> {
    let mut hard_state = HardState::default();
    let mut entries: Vec<Entry> = Vec::new();
    let mut snapshot = snapshot;
    for r in records {
        match r.kind {
            ENTRY => {
                let e = Entry::parse_from_bytes(&r.payload)?;
                // Entries are contiguous, so the first one at or after `e.index` is found by
                // arithmetic (a linear search here made replay quadratic in the log length).
                if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
                    if e.index <= last.index {
                        let keep = e.index.saturating_sub(first.index);
                        entries.truncate(keep as usize);
                    }
                }
                if let Some(last) = entries.last() {
                    if last.index + 1 != e.index {
                        return Err(RaftError::Corrupt(format!(
                            "WAL skips from entry {} to {}",
                            last.index, e.index
                        )));
                    }
                }
                entries.push(e);
            }
            HARD_STATE => hard_state = HardState::parse_from_bytes(&r.payload)?,
            SNAPSHOT => {
                if let Some(marked) = marker_snapshot(&r.payload)? {
                    let known = snapshot.as_ref().map_or(0, |s| s.get_metadata().index);
                    if marked.get_metadata().index > known {
                        snapshot = Some(marked);
                    }
                }
            }
            other => {
                return Err(RaftError::Corrupt(format!(
                    "unknown WAL record kind {other}"
                )))
            }
        }
    }
    let snap_index = snapshot.as_ref().map_or(0, |s| s.get_metadata().index);
    entries.retain(|e| e.index > snap_index);
    if let Some(first) = entries.first() {
        if first.index != snap_index + 1 {
            return Err(RaftError::Corrupt(format!(
                "WAL entries start at {} but the newest snapshot is at {snap_index}",
                first.index
            )));
        }
    }
    let last = entries.last().map_or(snap_index, |e| e.index);
    let committed = hard_state.commit.max(marked_commit);
    if committed > last {
        return Err(RaftError::LostTail { last, committed });
    }
    hard_state.commit = committed.max(snap_index);
    Ok(Recovered {
        snapshot,
        hard_state,
        entries,
    })
}

/// The snapshot a WAL marker carries (None for a marker from before snapshots went into them).
fn marker_snapshot(payload: &[u8]) -> Result<Option<Snapshot>, RaftError> {
    #[cfg(madsim)]
    if crate::fault::active(crate::fault::Bug::IgnoreWalSnapshot) {
        return Ok(None);
    }
    match payload.get(16..) {
        Some(encoded) if !encoded.is_empty() => Ok(Some(Snapshot::parse_from_bytes(encoded)?)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8].into(),
            ..Default::default()
        }
    }

    #[test]
    fn later_entries_overwrite_a_conflicting_tail() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path());
        let (mut log, rec) = DurableLog::open(disk.clone()).unwrap();
        assert!(rec.is_empty());
        log.append_entries(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .unwrap();
        log.append_entries(&[entry(2, 2)]).unwrap();
        let hs = HardState {
            term: 2,
            commit: 2,
            ..Default::default()
        };
        log.set_hard_state(&hs).unwrap();
        log.sync().unwrap();
        drop(log);
        let (_, rec) = DurableLog::open(disk).unwrap();
        let got: Vec<(u64, u64)> = rec.entries.iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(got, vec![(1, 1), (2, 2)]);
        assert_eq!(rec.hard_state, hs);
    }

    #[test]
    fn snapshot_rotation_keeps_only_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path());
        let (mut log, _) = DurableLog::open(disk.clone()).unwrap();
        let all: Vec<Entry> = (1..=10).map(|i| entry(i, 1)).collect();
        log.append_entries(&all).unwrap();
        log.sync().unwrap();
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 8;
        snap.mut_metadata().term = 1;
        snap.data = b"state".to_vec().into();
        let hs = HardState {
            commit: 9,
            ..Default::default()
        };
        log.save_snapshot(&snap, &hs, &all[8..]).unwrap();
        log.append_entries(&[entry(11, 1)]).unwrap();
        log.sync().unwrap();
        drop(log);
        let (_, rec) = DurableLog::open(disk).unwrap();
        assert_eq!(rec.snapshot.unwrap().data.as_ref(), b"state");
        let idx: Vec<u64> = rec.entries.iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![9, 10, 11]);
        assert_eq!(rec.hard_state.commit, 9);
    }

    #[test]
    fn a_damaged_newest_snapshot_file_is_replaced_by_the_wal_marker() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::new(dir.path());
        let (mut log, _) = DurableLog::open(disk.clone()).unwrap();
        let all: Vec<Entry> = (1..=12).map(|i| entry(i, 1)).collect();
        log.append_entries(&all).unwrap();
        log.sync().unwrap();
        let hs = HardState {
            commit: 11,
            ..Default::default()
        };
        for index in [4, 8] {
            let mut snap = Snapshot::default();
            snap.mut_metadata().index = index;
            snap.mut_metadata().term = 1;
            snap.mut_metadata().mut_conf_state().voters = vec![1, 2, index];
            log.save_snapshot(&snap, &hs, &all[index as usize..])
                .unwrap();
        }
        drop(log);
        let newest = format!("snap/{:016x}-{:016x}.snap", 1, 8);
        let mut bytes = disk.read(&newest).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        disk.write_atomic(&newest, &bytes).unwrap();

        let (_, rec) = DurableLog::open(disk).unwrap();
        let snapshot = rec.snapshot.expect("the marker's snapshot");
        assert_eq!(snapshot.get_metadata().index, 8);
        assert_eq!(
            snapshot.get_metadata().get_conf_state().voters,
            vec![1, 2, 8]
        );
        let idx: Vec<u64> = rec.entries.iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![9, 10, 11, 12]);
        assert_eq!(rec.hard_state.commit, 11);
    }
}
