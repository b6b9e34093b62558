//! Tests of `storage::snapshot`: save/load, newest selection, skipping
//! damaged files and keeping them as `.broken`, purge. Invariant: each test owns a fresh root.

use tempfile::TempDir;

use crate::io::Disk;
use crate::storage::SnapshotStore;

fn fresh() -> (TempDir, Disk, SnapshotStore) {
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::new(dir.path().join("node"));
    let store = SnapshotStore::new(disk.clone(), "snap").unwrap();
    (dir, disk, store)
}

fn path(index: u64, term: u64) -> String {
    format!("snap/{term:016x}-{index:016x}.snap")
}

#[test]
fn save_and_load_newest() {
    let (_t, disk, store) = fresh();
    assert_eq!(store.load_newest().unwrap(), None);
    store.save(5, 1, b"five").unwrap();
    store.save(10, 2, b"ten").unwrap();
    store.save(7, 2, b"seven").unwrap();
    let big = vec![0xab; 1 << 20];
    store.save(3, 1, &big).unwrap();
    assert_eq!(store.list().unwrap(), vec![(3, 1), (5, 1), (7, 2), (10, 2)]);
    assert_eq!(store.load_newest().unwrap(), Some((10, 2, b"ten".to_vec())));
    assert!(disk.exists(&path(10, 2)));
    // Overwriting the same snapshot is atomic replacement.
    store.save(10, 2, b"TEN").unwrap();
    assert_eq!(store.load_newest().unwrap().unwrap().2, b"TEN");
    // Reopening the store sees the same files.
    let again = SnapshotStore::new(disk.clone(), "snap/").unwrap();
    assert_eq!(again.load_newest().unwrap().unwrap().0, 10);
    assert_eq!(again.list().unwrap().len(), 4);
}

#[test]
fn damaged_snapshots_are_skipped_and_kept_as_broken() {
    let (_t, disk, store) = fresh();
    store.save(1, 1, b"one").unwrap();
    store.save(2, 1, b"two").unwrap();
    store.save(3, 1, b"three").unwrap();
    store.save(4, 2, b"four").unwrap();
    // Newest: payload bit flip.
    let mut bytes = disk.read(&path(4, 2)).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    disk.write_atomic(&path(4, 2), &bytes).unwrap();
    // Next: torn (truncated) file.
    disk.truncate(&path(3, 1), 20).unwrap();
    // Next: header does not match its name (copied under another name).
    let other = disk.read(&path(1, 1)).unwrap();
    disk.write_atomic(&path(2, 1), &other).unwrap();
    disk.write_atomic("snap/notes.txt", b"keep me").unwrap();
    let torn = disk.read(&path(3, 1)).unwrap();
    assert_eq!(store.load_newest().unwrap(), Some((1, 1, b"one".to_vec())));
    assert_eq!(store.list().unwrap(), vec![(1, 1)]);
    assert!(disk.exists("snap/notes.txt"));
    // Each bad file is kept, unchanged, for the operator (as etcd does).
    let broken = |i, t| format!("{}.broken", path(i, t));
    assert_eq!(disk.read(&broken(4, 2)).unwrap(), bytes);
    assert_eq!(disk.read(&broken(3, 1)).unwrap(), torn);
    assert_eq!(disk.read(&broken(2, 1)).unwrap(), other);
    // Every file bad: None, and nothing valid is left behind.
    disk.write_atomic(&path(1, 1), b"").unwrap();
    assert_eq!(store.load_newest().unwrap(), None);
    assert!(store.list().unwrap().is_empty());
    assert!(disk.exists(&broken(1, 1)));
    // Purging never touches the broken files.
    store.save(9, 3, b"nine").unwrap();
    assert_eq!(store.purge(0).unwrap(), 1);
    assert_eq!(disk.list("snap").unwrap().len(), 5, "4 broken + notes");
}

#[test]
fn purge_keeps_the_newest() {
    let (_t, _disk, store) = fresh();
    for i in 1..=6u64 {
        store.save(i * 10, 1 + i / 3, &i.to_le_bytes()).unwrap();
    }
    assert_eq!(store.purge(10).unwrap(), 0);
    assert_eq!(store.purge(2).unwrap(), 4);
    assert_eq!(store.list().unwrap(), vec![(50, 2), (60, 3)]);
    assert_eq!(store.load_newest().unwrap().unwrap().0, 60);
    assert_eq!(store.purge(0).unwrap(), 2);
    assert_eq!(store.load_newest().unwrap(), None);
}
