//! madsim-only tests of crash behaviour: the WAL and snapshot store on the
//! simulated disk survive `io::crash` with exactly their durable state.
//! Invariant: every test runs inside a madsim runtime (its own thread, so
//! its own disk registry) and uses fixed, distinct root paths.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::io::{crash, Disk};
use crate::storage::{Record, SnapshotStore, StorageError, Wal};

fn rec(i: usize) -> Record {
    Record::new((i % 3) as u8, vec![(i % 250) as u8 + 1; 10 + i % 40])
}

fn append_all(wal: &mut Wal, recs: &[Record]) {
    for r in recs {
        wal.append(r.kind, &r.payload).unwrap();
    }
}

#[madsim::test]
async fn crash_keeps_exactly_the_synced_records() {
    let root = Path::new("/sim/node-1");
    let disk = Disk::new(root);
    let (mut wal, initial) = Wal::open(disk.clone(), "wal").unwrap();
    assert!(
        initial.is_empty(),
        "each simulation starts with empty disks"
    );
    let recs: Vec<Record> = (0..30).map(rec).collect();
    append_all(&mut wal, &recs[..20]);
    wal.sync().unwrap();
    append_all(&mut wal, &recs[20..]);
    crash(root, None);
    // The old handle belongs to the dead process.
    assert!(matches!(
        wal.append(1, b"zombie"),
        Err(StorageError::Io { .. })
    ));
    drop(wal);
    let (mut wal, got) = Wal::open(Disk::new(root), "wal").unwrap();
    assert_eq!(got, recs[..20]);
    // A synced rotate survives a crash; unsynced appends after it do not.
    wal.rotate(&recs[5..7]).unwrap();
    wal.append(9, b"lost").unwrap();
    crash(root, None);
    let (_, got) = Wal::open(Disk::new(root), "wal").unwrap();
    assert_eq!(got, recs[5..7]);
}

#[madsim::test]
async fn torn_crash_yields_a_clean_prefix() {
    let recs: Vec<Record> = (0..40).map(rec).collect();
    let (mut torn, mut zero_tail) = (0, 0);
    for seed in 0..300u64 {
        let root = format!("/sim/tear-{seed}");
        let root = Path::new(&root);
        let disk = Disk::new(root);
        let (mut wal, _) = Wal::open(disk.clone(), "wal").unwrap();
        append_all(&mut wal, &recs[..10]);
        wal.sync().unwrap();
        append_all(&mut wal, &recs[10..]);
        let seg = format!("wal/{}", disk.list("wal").unwrap()[0]);
        let synced_len = {
            let mut len = 20;
            for r in &recs[..10] {
                len += 9 + r.payload.len() as u64;
            }
            len
        };
        crash(root, Some(seed));
        let torn_len = disk.size(&seg).unwrap();
        assert!(torn_len >= synced_len);
        let tail = disk.read(&seg).unwrap();
        if tail.last() == Some(&0) && torn_len > synced_len {
            zero_tail += 1;
        }
        let (mut wal, got) = Wal::open(disk.clone(), "wal").unwrap();
        let n = got.len();
        assert!((10..=40).contains(&n), "seed {seed}: {n}");
        assert_eq!(got, recs[..n], "seed {seed}");
        if n > 10 && n < 40 {
            torn += 1;
        }
        // The repaired log is stable and writable.
        wal.append(7, b"next").unwrap();
        wal.sync().unwrap();
        crash(root, Some(seed ^ 0xdead));
        let (_, again) = Wal::open(disk, "wal").unwrap();
        assert_eq!(again[..n], recs[..n]);
        assert_eq!(again[n..], [Record::new(7, "next")]);
    }
    assert!(
        torn > 100,
        "tear should usually keep a partial tail: {torn}"
    );
    assert!(
        zero_tail > 20,
        "zero-filled tails should occur: {zero_tail}"
    );
}

#[madsim::test]
async fn snapshots_are_atomic_across_crashes() {
    let root = Path::new("/sim/node-snap");
    let store = SnapshotStore::new(Disk::new(root), "snap").unwrap();
    store.save(10, 1, b"ten").unwrap();
    crash(root, Some(1));
    let store = SnapshotStore::new(Disk::new(root), "snap").unwrap();
    assert_eq!(store.load_newest().unwrap(), Some((10, 1, b"ten".to_vec())));
    assert!(Disk::new(root).total_size().unwrap() > 0);
}

/// The intended harness flow: kill a simulated node, `crash` its disk,
/// restart it; the restarted node replays a prefix that covers every record
/// it had synced before the kill.
#[madsim::test]
async fn killed_node_restarts_from_its_durable_prefix() {
    const ROOT: &str = "/sim/node-kill";
    let handle = madsim::runtime::Handle::current();
    let boots: Arc<Mutex<Vec<usize>>> = Arc::default();
    let synced = Arc::new(AtomicUsize::new(0));
    let (b, s) = (boots.clone(), synced.clone());
    let node = handle
        .create_node()
        .name("n1")
        .init(move || {
            let (boots, synced) = (b.clone(), s.clone());
            async move {
                let (mut wal, recs) = Wal::open(Disk::new(ROOT), "wal").unwrap();
                assert_eq!(recs, (0..recs.len()).map(rec).collect::<Vec<_>>());
                boots.lock().unwrap().push(recs.len());
                for i in recs.len().. {
                    let r = rec(i);
                    wal.append(r.kind, &r.payload).unwrap();
                    if i % 4 == 3 {
                        wal.sync().unwrap();
                        synced.store(i + 1, Ordering::SeqCst);
                    }
                    madsim::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
        .build();
    for round in 0..5u64 {
        madsim::time::sleep(Duration::from_millis(37)).await;
        let durable = synced.load(Ordering::SeqCst);
        handle.kill(node.id());
        crash(Path::new(ROOT), Some(round));
        handle.restart(node.id());
        madsim::time::sleep(Duration::from_millis(1)).await;
        let replayed = *boots.lock().unwrap().last().unwrap();
        assert!(replayed >= durable, "round {round}: {replayed} < {durable}");
    }
    assert_eq!(boots.lock().unwrap().len(), 6);
}
