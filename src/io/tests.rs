//! Tests of the `Disk` API contract, run against whichever backend the
//! build selects (real fs normally, the simulated disk under `cfg(madsim)`).
//! Invariant: each test uses its own fresh root (a tempdir path).

use super::{normalize_rel, Disk};

fn disk() -> (tempfile::TempDir, Disk) {
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::new(dir.path().join("data"));
    (dir, disk)
}

#[test]
fn normalize_rejects_escapes() {
    assert_eq!(normalize_rel("a//b/./c/").unwrap(), "a/b/c");
    assert_eq!(normalize_rel("").unwrap(), "");
    assert!(normalize_rel("/etc").is_err());
    assert!(normalize_rel("a/../b").is_err());
}

#[test]
fn files_and_dirs() {
    let (_t, disk) = disk();
    assert_eq!(disk.total_size().unwrap(), 0);
    assert!(disk.list("x").is_err());
    disk.create_dir_all("x/y").unwrap();
    assert!(disk.exists("x") && disk.exists("x/y"));
    disk.write_atomic("x/b", b"hello").unwrap();
    disk.write_atomic("x/a", b"hi").unwrap();
    assert_eq!(disk.list("x").unwrap(), vec!["a", "b", "y"]);
    assert_eq!(disk.read("x/b").unwrap(), b"hello");
    disk.write_atomic("x/b", b"bye").unwrap();
    assert_eq!(disk.read("x/b").unwrap(), b"bye");
    assert_eq!(disk.size("x/b").unwrap(), 3);
    assert_eq!(disk.total_size().unwrap(), 5);
    disk.remove("x/a").unwrap();
    assert!(!disk.exists("x/a"));
    assert_eq!(
        disk.remove("x/a").unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    assert!(disk.read("../etc/passwd").is_err());
    assert!(disk.write_atomic("nodir/f", b"").is_err());
}

#[test]
fn rename_moves_and_replaces_files() {
    let (_t, disk) = disk();
    disk.create_dir_all("d/sub").unwrap();
    disk.write_atomic("d/a", b"aaa").unwrap();
    disk.write_atomic("d/b", b"bb").unwrap();
    disk.rename("d/a", "d/a.broken").unwrap();
    assert!(!disk.exists("d/a"));
    assert_eq!(disk.read("d/a.broken").unwrap(), b"aaa");
    disk.rename("d/b", "d/a.broken").unwrap();
    assert_eq!(
        disk.read("d/a.broken").unwrap(),
        b"bb",
        "replaces the target"
    );
    assert_eq!(disk.list("d").unwrap(), vec!["a.broken", "sub"]);
    disk.rename("d/a.broken", "d/sub/moved").unwrap();
    assert_eq!(disk.read("d/sub/moved").unwrap(), b"bb");
    assert_eq!(disk.total_size().unwrap(), 2);
    let missing = disk.rename("d/a", "d/c").unwrap_err();
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    assert!(disk.rename("d/sub/moved", "nodir/x").is_err());
    assert!(disk.rename("d/sub", "d/x").is_err(), "files only");
    assert!(disk.rename("d/sub/moved", "../x").is_err());
}

#[test]
fn append_sync_truncate() {
    let (_t, disk) = disk();
    disk.create_dir_all("").unwrap();
    let mut f = disk.open_append("log").unwrap();
    assert!(f.is_empty());
    f.append(b"abc").unwrap();
    f.append(&vec![7u8; 300 * 1024]).unwrap();
    f.append(b"def").unwrap();
    assert_eq!(f.len(), 6 + 300 * 1024);
    f.sync().unwrap();
    assert_eq!(disk.size("log").unwrap(), f.len());
    drop(f);
    let f = disk.open_append("log").unwrap();
    assert_eq!(f.len(), 6 + 300 * 1024);
    disk.truncate("log", 4).unwrap();
    assert_eq!(disk.read("log").unwrap(), b"abc\x07");
    let mut f = disk.open_append("log").unwrap();
    f.append(b"z").unwrap();
    drop(f);
    assert_eq!(disk.read("log").unwrap(), b"abc\x07z");
}

/// Appended bytes, synced or not, read back through a random-access handle, as through the
/// page cache; in simulation a crash still drops the unsynced ones.
#[test]
fn appended_bytes_read_back_at_offsets_before_a_sync() {
    let (_t, disk) = disk();
    disk.create_dir_all("").unwrap();
    let mut f = disk.open_append("image").unwrap();
    f.append(b"synced.").unwrap();
    f.sync().unwrap();
    f.append(b"pending").unwrap();
    drop(f);
    let r = disk.open_random("image").unwrap();
    assert_eq!(r.len().unwrap(), 14);
    let mut out = [0u8; 10];
    r.read_at(4, &mut out).unwrap();
    assert_eq!(&out, b"ed.pending");
    #[cfg(madsim)]
    {
        super::crash(disk.root(), None);
        let r = disk.open_random("image").unwrap();
        assert_eq!(
            r.len().unwrap(),
            7,
            "the unsynced bytes are lost in a crash"
        );
    }
}

#[cfg(not(madsim))]
#[test]
fn temporaries_are_hidden_and_removable() {
    let (_t, disk) = disk();
    disk.create_dir_all("d").unwrap();
    disk.write_atomic("d/real", b"1").unwrap();
    std::fs::write(disk.path("d/x.snap.atomic-tmp"), b"torn").unwrap();
    assert_eq!(disk.list("d").unwrap(), vec!["real"]);
    assert_eq!(disk.remove_temporaries("d").unwrap(), 1);
    assert_eq!(disk.remove_temporaries("d").unwrap(), 0);
    assert_eq!(disk.total_size().unwrap(), 1);
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    fn check_send<T: Send + Sync>() {}
    check::<Disk>();
    check_send::<super::AppendFile>();
    check_send::<crate::storage::Wal>();
    check::<crate::storage::SnapshotStore>();
}
