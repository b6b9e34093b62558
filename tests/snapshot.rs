//! Backups and migration with the real tools: `etcdctl snapshot save` against detcd writes a file
//! that the real `etcdctl snapshot status` reads and `etcdctl snapshot restore` turns into a data
//! dir the real etcd 3.4 starts from with the same keys, values, revisions, history and leases
//! (detcd → etcd); a snapshot saved from the real etcd restores with `detcdctl snapshot restore`
//! into three detcd members that form a healthy cluster with the data on each (etcd → detcd);
//! damaged files are refused with nothing written; a snapshot taken under a write load holds
//! every write acknowledged before it.

#![cfg(not(madsim))]

mod common;
use common::{detcdctl, etcd_binary, etcdctl, free_port, ok, stderr, stdout, Cluster, Single};
use std::path::Path;
use std::process::Output;

/// Writes a little of everything: overwrites, a delete, a lease, a big value, a compaction.
fn fill(ep: &str) {
    for i in 0..40 {
        ok(
            ep,
            &["put", &format!("key{}", i % 10), &format!("value-{i}")],
        );
    }
    ok(ep, &["del", "key3"]);
    let lease = ok(ep, &["lease", "grant", "600"]);
    let id = lease
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    ok(ep, &["put", "--lease", &id, "leased", "x"]);
    ok(ep, &["compaction", "20"]);
    ok(ep, &["put", "big", &"b".repeat(100_000)]);
    ok(ep, &["put", "key1", "last"]);
}

/// What a user compares after a migration: every live key (json, with revisions), a
/// historical read, a compacted read's error and the leases.
fn contents(ep: &str) -> Vec<String> {
    let kvs = |args: &[&str]| -> String {
        let out = ok(ep, args);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        format!("{} rev {}", v["kvs"], v["header"]["revision"])
    };
    vec![
        kvs(&["get", "", "--prefix", "-w", "json"]),
        kvs(&["get", "key1", "--rev", "30", "-w", "json"]),
        stderr(&etcdctl(ep, &["get", "key1", "--rev", "10"]))
            .lines()
            .filter(|l| l.starts_with("Error"))
            .collect(),
        ok(ep, &["lease", "list"]),
    ]
}

/// `endpoint hashkv`'s hash of one endpoint.
fn hashkv(ep: &str) -> String {
    let out = ok(ep, &["endpoint", "hashkv"]);
    out.trim().rsplit(", ").next().expect("hash").to_string()
}

/// Asserts two [`contents`] agree, printing only the first part that differs (values are big).
fn assert_same(got: &[String], want: &[String], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            let at = g.bytes().zip(w.bytes()).take_while(|(a, b)| a == b).count();
            let show = |s: &str| {
                s.get(at.saturating_sub(80)..(at + 200).min(s.len()))
                    .unwrap_or("")
                    .to_string()
            };
            panic!(
                "{what}: part {i} differs at byte {at}:\n got  …{}\n want …{}",
                show(g),
                show(w)
            );
        }
    }
    assert_eq!(got.len(), want.len(), "{what}");
}

fn restore_args<'a>(file: &'a str, dir: &'a str, peer: &'a str, cluster: &'a str) -> Vec<&'a str> {
    vec![
        "snapshot",
        "restore",
        file,
        "--data-dir",
        dir,
        "--name",
        "default",
        "--initial-cluster",
        cluster,
        "--initial-advertise-peer-urls",
        peer,
    ]
}

/// `detcdctl snapshot restore FILE` into `data` for a single member `default` on a fresh peer
/// port (returned, with the output), plus `extra` flags.
fn restore_single(file: &Path, data: &Path, extra: &[&str]) -> (u16, Output) {
    let peer_port = free_port();
    let peer = format!("http://127.0.0.1:{peer_port}");
    let cluster = format!("default={peer}");
    let (file, data) = (file.to_str().unwrap(), data.to_str().unwrap());
    let mut args = restore_args(file, data, &peer, &cluster);
    args.extend(extra);
    (peer_port, detcdctl("127.0.0.1:1", &args))
}

#[test]
fn detcd_snapshot_restores_into_etcd() {
    let c = Cluster::start(1);
    let ep = c.endpoint(0);
    fill(&ep);
    let before = contents(&ep);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let file = file.to_str().unwrap();
    let saved = ok(&ep, &["snapshot", "save", file]);
    assert_eq!(saved, format!("Snapshot saved at {file}\n"));
    // Both tools read the same status from it, in every format.
    for format in ["simple", "table", "json", "fields"] {
        let real = ok(&ep, &["snapshot", "status", file, "-w", format]);
        let ours = detcdctl(&ep, &["snapshot", "status", file, "-w", format]);
        assert_eq!(stdout(&ours), real, "status -w {format}");
    }
    let status: serde_json::Value =
        serde_json::from_str(&ok(&ep, &["snapshot", "status", file, "-w", "json"])).unwrap();
    assert_eq!(status["revision"].as_i64(), Some(common::revision(&ep)));

    // The real etcdctl restores it and the real etcd serves it.
    let peer_port = free_port();
    let peer = format!("http://127.0.0.1:{peer_port}");
    let cluster = format!("default={peer}");
    let data = dir.path().join("etcd-data");
    ok(
        &ep,
        &restore_args(file, data.to_str().unwrap(), &peer, &cluster),
    );
    let etcd = Single::start_in(&etcd_binary(), &data, peer_port);
    assert_same(&contents(&etcd.endpoint), &before, "etcd from detcd");
    // And it takes writes from the snapshot's revision on.
    let rev = status["revision"].as_i64().unwrap();
    ok(&etcd.endpoint, &["put", "after", "1"]);
    assert_eq!(common::revision(&etcd.endpoint), rev + 1);
}

#[test]
fn etcd_snapshot_restores_into_three_detcd_members() {
    let etcd = Single::start(&etcd_binary());
    fill(&etcd.endpoint);
    let before = contents(&etcd.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("from-etcd.db");
    let file = file.to_str().unwrap();
    ok(&etcd.endpoint, &["snapshot", "save", file]);
    let real_status = ok(&etcd.endpoint, &["snapshot", "status", file]);
    let etcd_hashkv = hashkv(&etcd.endpoint);
    assert_eq!(
        stdout(&detcdctl(&etcd.endpoint, &["snapshot", "status", file])),
        real_status
    );
    drop(etcd);

    let mut c = Cluster::new(3, &[], &[]);
    let cluster: Vec<String> = c
        .members
        .iter()
        .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
        .collect();
    let cluster = cluster.join(",");
    for i in 0..3 {
        let m = &c.members[i];
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let data = c.data_dir(i);
        let out = detcdctl(
            "127.0.0.1:1",
            &[
                "snapshot",
                "restore",
                file,
                "--data-dir",
                data.to_str().unwrap(),
                "--name",
                &m.name,
                "--initial-cluster",
                &cluster,
                "--initial-cluster-token",
                common::TOKEN,
                "--initial-advertise-peer-urls",
                &peer,
            ],
        );
        assert!(out.status.success(), "restore: {}", stderr(&out));
        assert_eq!(stdout(&out), "");
    }
    for i in 0..3 {
        c.start_member(i);
    }
    c.wait_all_published();
    for i in 0..3 {
        let ep = c.endpoint(i);
        common::wait_until(std::time::Duration::from_secs(20), || {
            etcdctl(&ep, &["endpoint", "health"]).status.success()
        });
        assert_same(&contents(&ep), &before, &format!("member {i}"));
        // HashKV is etcd's: the same history hashes the same on etcd and on detcd.
        assert_eq!(hashkv(&ep), etcd_hashkv, "member {i}");
    }
    // The restored cluster replicates new writes.
    ok(&c.endpoint(0), &["put", "after-restore", "1"]);
    for i in 0..3 {
        let got = ok(
            &c.endpoint(i),
            &["get", "after-restore", "--print-value-only"],
        );
        assert_eq!(got, "1\n", "member {i}");
    }
}

/// Asserts `detcdctl snapshot restore` refuses `file` with `message`, writing nothing.
fn refused(file: &Path, message: &str, extra: &[&str]) {
    let data = file.with_extension("restored");
    let mut args = vec!["snapshot", "restore", file.to_str().unwrap()];
    args.extend(["--data-dir", data.to_str().unwrap()]);
    args.extend(extra);
    let out = detcdctl("127.0.0.1:1", &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(message), "{}", stderr(&out));
    assert!(
        !data.exists(),
        "restore of a bad file wrote {}",
        data.display()
    );
}

#[test]
fn damaged_snapshots_are_refused_and_nothing_is_written() {
    let c = Cluster::start(1);
    let ep = c.endpoint(0);
    fill(&ep);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    let saved = detcdctl(&ep, &["snapshot", "save", good.to_str().unwrap()]);
    assert_eq!(
        stdout(&saved),
        format!("Snapshot saved at {}\n", good.display())
    );
    let bytes = std::fs::read(&good).unwrap();

    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    let flipped_file = dir.path().join("flipped.db");
    std::fs::write(&flipped_file, &flipped).unwrap();
    refused(&flipped_file, "Error: expected sha256 [", &[]);

    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len() - 32 - 4096]).unwrap();
    refused(
        &cut,
        "Error: snapshot missing hash but --skip-hash-check=false",
        &[],
    );
    // Without the hash check the damage is still found: pages are missing.
    refused(&cut, "Error: corrupt data", &["--skip-hash-check"]);

    // An existing data dir is never overwritten.
    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    let out = detcdctl(
        "127.0.0.1:1",
        &[
            "snapshot",
            "restore",
            good.to_str().unwrap(),
            "--data-dir",
            existing.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!(
        "Error: data-dir {:?} exists",
        existing.display().to_string()
    )));
}

#[test]
fn a_member_started_with_other_flags_than_its_restore_refuses_to_start() {
    let c = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");
    ok(
        &c.endpoint(0),
        &["snapshot", "save", file.to_str().unwrap()],
    );
    let data = dir.path().join("restored");
    assert!(restore_single(&file, &data, &[]).1.status.success());
    // Started on another peer URL: another member id than the restored table holds.
    let other = free_port();
    let mut child = common::member_command(
        env!("CARGO_BIN_EXE_detcd"),
        "default",
        &data,
        (free_port(), other),
        &format!("default=http://127.0.0.1:{other}"),
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut status = None;
    common::wait_until(std::time::Duration::from_secs(20), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert!(!status.unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert!(
        stderr(&out).contains("does not match --initial-cluster"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_database_copied_out_of_a_data_dir_restores_with_skip_hash_check() {
    for server in [etcd_binary(), env!("CARGO_BIN_EXE_detcd").to_string()] {
        let dir = tempfile::tempdir().unwrap();
        let source_data = dir.path().join("source");
        let source = Single::start_in(&server, &source_data, free_port());
        fill(&source.endpoint);
        let before = contents(&source.endpoint);
        // Stopped cleanly: a killed member's backend may lack its last writes (its WAL has
        // them), and a copy of the file alone would too.
        source.stop();
        // A copy, as an operator would take it off a dead member's disk.
        let db = dir.path().join("copied.db");
        std::fs::copy(source_data.join("member/snap/db"), &db).unwrap();
        let detcd_data = dir.path().join("detcd");
        let (_, refused) = restore_single(&db, &detcd_data, &[]);
        assert!(
            stderr(&refused).contains("snapshot missing hash"),
            "{server}"
        );
        let (peer_port, out) = restore_single(&db, &detcd_data, &["--skip-hash-check"]);
        assert!(out.status.success(), "{server}: {}", stderr(&out));
        let detcd = Single::start_in(env!("CARGO_BIN_EXE_detcd"), &detcd_data, peer_port);
        assert_same(
            &contents(&detcd.endpoint),
            &before,
            &format!("from {server}"),
        );
    }
}

#[test]
fn a_snapshot_under_load_holds_every_write_acknowledged_before_it() {
    let c = Cluster::start(1);
    let ep = c.endpoint(0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (ep, stop, acked) = (ep.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // Batches of puts in one etcdctl run (`txn` keeps them all in one revision).
                let script: String = (i..i + 50)
                    .map(|n| format!("put load{n:06} v{n}\n"))
                    .collect();
                let out = common::etcdctl_stdin(&ep, &["txn"], Some(&format!("\n{script}\n\n")));
                assert!(out.status.success(), "{}", stderr(&out));
                i += 50;
                acked.store(i, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    common::wait_until(std::time::Duration::from_secs(30), || {
        acked.load(std::sync::atomic::Ordering::SeqCst) >= 500
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("load.db");
    let before = acked.load(std::sync::atomic::Ordering::SeqCst);
    ok(&ep, &["snapshot", "save", file.to_str().unwrap()]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    let data = dir.path().join("restored");
    let (peer_port, out) = restore_single(&file, &data, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let restored = Single::start_in(env!("CARGO_BIN_EXE_detcd"), &data, peer_port);
    let keys = ok(
        &restored.endpoint,
        &["get", "load", "--prefix", "--keys-only", "-w", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&keys).unwrap();
    let n = v["kvs"].as_array().map_or(0, Vec::len);
    assert!(
        n >= before,
        "snapshot holds {n} keys, {before} were acknowledged before it"
    );
    assert_eq!(
        n % 50,
        0,
        "a transaction is in a snapshot whole or not at all"
    );
}

/// Users, roles and permissions travel in snapshots both ways (etcd's `auth*` buckets, bcrypt
/// hashes as they are): set up on detcd, restored into etcd, back into detcd, and enforced.
#[test]
fn users_and_roles_move_between_detcd_and_etcd_in_snapshots() {
    let c = Cluster::start(1);
    let ep = c.endpoint(0);
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "add", "alice:alicepw"],
        &["role", "add", "app"],
        &[
            "role",
            "grant-permission",
            "--prefix",
            "app",
            "readwrite",
            "app/",
        ],
        &["user", "grant-role", "alice", "app"],
        &["put", "app/k", "v"],
        &["put", "other", "x"],
    ] {
        ok(&ep, args);
    }
    let enforced = |ep: &str| {
        ok(ep, &["auth", "enable"]);
        let got = ok(
            ep,
            &["--user=alice:alicepw", "get", "app/k", "--print-value-only"],
        );
        assert_eq!(got, "v\n");
        let denied = common::fails(ep, &["--user=alice:alicepw", "get", "other"]);
        assert!(denied.contains("etcdserver: permission denied"), "{denied}");
        ok(ep, &["--user=root:rootpw", "auth", "disable"]);
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("from-detcd.db");
    ok(&ep, &["snapshot", "save", file.to_str().unwrap()]);
    let peer_port = free_port();
    let peer = format!("http://127.0.0.1:{peer_port}");
    let cluster = format!("default={peer}");
    let data = dir.path().join("etcd-data");
    let (f, d) = (file.to_str().unwrap(), data.to_str().unwrap());
    ok(&ep, &restore_args(f, d, &peer, &cluster));
    let etcd = Single::start_in(&etcd_binary(), &data, peer_port);
    enforced(&etcd.endpoint);

    let back = dir.path().join("from-etcd.db");
    ok(
        &etcd.endpoint,
        &["snapshot", "save", back.to_str().unwrap()],
    );
    let detcd_data = dir.path().join("detcd-data");
    let (peer_port, out) = restore_single(&back, &detcd_data, &[]);
    assert!(out.status.success(), "restore: {}", stderr(&out));
    let detcd = Single::start_in(env!("CARGO_BIN_EXE_detcd"), &detcd_data, peer_port);
    enforced(&detcd.endpoint);
}
