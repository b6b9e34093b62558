//! What a member's disk must guarantee across restarts, checked on real processes with the real
//! etcdctl: a restarted member never serves less than it had acknowledged (a clean stop or a
//! kill -9, read at once), a member whose WAL lost synced entries refuses to start with a
//! clear error instead of serving as if they had never been written, and a damaged snapshot
//! file is set aside and made up for by the WAL.

#![cfg(not(madsim))]

mod common;
use common::{etcdctl, etcdctl_stdin, ok, revision, stdout, Cluster};
use std::time::Duration;

const WRITES: usize = 30;

fn write_keys(c: &Cluster) -> i64 {
    for n in 1..=WRITES {
        ok(&c.endpoint(0), &["put", &format!("k{n}"), &format!("v{n}")]);
    }
    revision(&c.endpoint(0))
}

/// Polls member 0 from the moment it is started; returns the first read it answers.
fn first_answered_read(c: &Cluster) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let out = etcdctl(
            &c.endpoint(0),
            &[
                "get",
                &format!("k{WRITES}"),
                "--consistency=s",
                "-w",
                "json",
                "--dial-timeout=200ms",
                "--command-timeout=500ms",
            ],
        );
        if out.status.success() {
            return serde_json::from_str(&stdout(&out)).expect("json");
        }
    }
    panic!("restarted member never answered");
}

fn assert_serves_everything(c: &Cluster, acked: i64, how: &str) {
    let got = first_answered_read(c);
    let rev = got["header"]["revision"].as_i64().expect("revision");
    assert!(
        rev >= acked,
        "after a {how}, the first read was at revision {rev}, below the acknowledged {acked}: {got}"
    );
    assert_eq!(
        got["count"].as_i64(),
        Some(1),
        "after a {how}, the last acknowledged key is missing: {got}"
    );
}

#[test]
fn a_restarted_single_member_never_serves_less_than_it_acknowledged() {
    let mut c = Cluster::start(1);
    let acked = write_keys(&c);
    c.kill(0);
    c.start_member(0);
    assert_serves_everything(&c, acked, "kill -9");

    c.wait_writable();
    let acked = write_keys(&c);
    assert!(c.terminate(0).success(), "a clean stop exits 0");
    c.start_member(0);
    assert_serves_everything(&c, acked, "clean stop");
}

/// Large entries bound the in-memory raft log by bytes too: 60 puts of 1 MiB take a snapshot
/// point long before `--snapshot-count` (100 000) entries, and everything still survives a
/// kill -9.
#[test]
fn large_entries_take_snapshot_points_before_the_count() {
    let mut c = Cluster::start(1);
    let value = "x".repeat(1 << 20);
    for n in 1..=60 {
        let out = etcdctl_stdin(&c.endpoint(0), &["put", &format!("big{n}")], Some(&value));
        assert!(out.status.success(), "put big{n}: {}", common::stderr(&out));
    }
    assert!(
        c.log(0).contains("saved snapshot point"),
        "no snapshot point after 60 MiB of entries"
    );
    c.kill(0);
    c.start_member(0);
    c.wait_writable();
    for n in [1, 30, 60] {
        let got = ok(
            &c.endpoint(0),
            &["get", &format!("big{n}"), "--print-value-only"],
        );
        assert_eq!(got.len(), value.len() + 1, "big{n} after the restart");
    }
}

/// A flipped bit in the newest snapshot file (metadata and conf state of the last snapshot
/// point) costs nothing: the file is set aside as `.broken`, as etcd does, and the member
/// starts from the copy in its WAL's base segment with every acknowledged write. Before, it
/// refused to start, because the WAL begins after that point.
#[test]
fn a_damaged_snapshot_file_is_recovered_from_the_wal() {
    let mut c = Cluster::start_with(1, &["--snapshot-count", "10"]);
    let acked = write_keys(&c);
    assert!(c.terminate(0).success());
    let newest = newest_file(&c, "snap", "snap");
    let mut bytes = std::fs::read(&newest).expect("read snapshot");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x08;
    std::fs::write(&newest, bytes).expect("damage snapshot");
    c.start_member(0);
    assert_serves_everything(&c, acked, "damaged snapshot file");
    let mut broken = newest.into_os_string();
    broken.push(".broken");
    assert!(
        std::path::Path::new(&broken).exists(),
        "kept for the operator"
    );
    c.wait_writable();
    ok(&c.endpoint(0), &["put", "after", "1"]);
}

/// The newest (by name) file with extension `ext` in `member/<dir>` of member 0.
fn newest_file(c: &Cluster, dir: &str, ext: &str) -> std::path::PathBuf {
    let dir = c.data_dir(0).join("member").join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("member dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
        .pop()
        .unwrap_or_else(|| panic!("no .{ext} file in {}", dir.display()))
}

/// Writes, stops cleanly, shortens the WAL to `cut(len)` bytes, and requires the restart to
/// fail loudly.
fn refuses_to_start_after_cut(cut: impl Fn(u64) -> u64) {
    let mut c = Cluster::start(1);
    write_keys(&c);
    assert!(c.terminate(0).success());
    let segment = newest_file(&c, "wal", "wal");
    let len = std::fs::metadata(&segment).expect("segment").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open segment");
    file.set_len(cut(len)).expect("cut WAL");
    drop(file);
    c.start_member(0);
    let status = c
        .wait_exit(0, Duration::from_secs(20))
        .expect("a member with a cut WAL must not keep running");
    assert!(!status.success(), "exit status {status}");
    let log = c.log(0);
    assert!(
        log.contains("synced log entries are missing"),
        "no clear error in the log:\n{log}"
    );
}

#[test]
fn a_wal_missing_its_synced_tail_is_refused() {
    refuses_to_start_after_cut(|len| len - 1000);
}

#[test]
fn a_wal_cut_to_its_header_is_refused() {
    refuses_to_start_after_cut(|_| detcd::storage::record::SEGMENT_HEADER_LEN as u64);
}

/// Mounts a tmpfs of `size` on `dir` (root only); unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a small tmpfs needs root (CI and the dev machines run as root)"
        );
        SmallDisk(dir.to_path_buf())
    }

    fn grow(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_member_that_cannot_persist_exits_and_restarts_with_every_acknowledged_write() {
    let mut c = Cluster::new(1, &[], &[]);
    let disk = SmallDisk::mount(&c.data_dir(0), "3m");
    c.start_member(0);
    c.wait_writable();
    let value = "x".repeat(64 * 1024);
    let mut acked = Vec::new();
    for n in 0..200 {
        let key = format!("big{n}");
        let out = etcdctl(&c.endpoint(0), &["put", &key, &value]);
        if !out.status.success() {
            break;
        }
        acked.push(key);
    }
    assert!(
        !acked.is_empty() && acked.len() < 200,
        "the disk never filled"
    );
    let status = c
        .wait_exit(0, Duration::from_secs(30))
        .expect("a member that cannot persist must not keep serving");
    assert!(!status.success(), "exit status {status}");
    let log = c.log(0);
    assert!(
        log.contains("No space left on device"),
        "the log does not say why:\n{log}"
    );

    disk.grow("64m");
    c.start_member(0);
    c.wait_writable();
    for key in &acked {
        let out = etcdctl(&c.endpoint(0), &["get", key, "--print-value-only"]);
        assert_eq!(stdout(&out).trim_end(), value, "acknowledged {key} lost");
    }
}
