//! A 3-member detcd cluster under member failures, checked with the real etcdctl: one member
//! down (leader included) never stops writes, a restarted member catches up (from the log or
//! from a snapshot), two down stops writes without losing what was acknowledged, and a full
//! stop/restart keeps every acknowledged write.

#![cfg(not(madsim))]

mod common;
use common::{etcdctl, ok, status_fields, stdout, wait_until, Cluster};
use std::time::Duration;

fn serializable_get(c: &Cluster, member: usize, key: &str) -> String {
    stdout(&etcdctl(
        &c.endpoint(member),
        &["get", key, "--consistency=s", "--print-value-only"],
    ))
}

/// Waits until member `i` serves `key = value` from its own state.
fn wait_caught_up(c: &Cluster, i: usize, key: &str, value: &str) {
    wait_until(Duration::from_secs(30), || {
        serializable_get(c, i, key) == format!("{value}\n")
    });
}

#[test]
fn any_single_member_can_fail_and_rejoin() {
    let mut c = Cluster::start(3);
    let mut n = 0;
    for round in 0..3 {
        // Kill the leader in the first round, then each follower in turn.
        let victim = if round == 0 {
            c.leader_index()
        } else {
            (c.leader_index() + 1) % 3
        };
        c.kill(victim);
        // Writes are served again as soon as the survivors have (or elect) a leader; requests
        // caught in the election window may time out, as with etcd.
        c.leader_index();
        let live = c.live_endpoints();
        for _ in 0..5 {
            n += 1;
            let out = etcdctl(&live, &["put", &format!("k{n}"), &format!("v{n}")]);
            assert!(
                out.status.success(),
                "write with member {victim} down failed: {}",
                common::stderr(&out)
            );
        }
        c.start_member(victim);
        wait_caught_up(&c, victim, &format!("k{n}"), &format!("v{n}"));
        for k in 1..=n {
            assert_eq!(
                serializable_get(&c, victim, &format!("k{k}")),
                format!("v{k}\n")
            );
        }
    }
}

/// As etcd does on SIGTERM, a leader stopped cleanly first hands leadership to a live voter:
/// the moment it has exited the others already follow a new leader, instead of serving no
/// writes until an election timeout (1 s) has passed.
#[test]
fn a_leader_stopped_cleanly_hands_leadership_over_first() {
    let mut c = Cluster::start(3);
    c.wait_writable();
    let leader = c.leader_index();
    assert!(c.terminate(leader).success());
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let ids: Vec<String> = others
        .iter()
        .map(|&i| status_fields(&c.endpoint(i))["MemberID"].clone())
        .collect();
    for &i in &others {
        let status = status_fields(&c.endpoint(i));
        assert!(
            ids.contains(&status["Leader"]),
            "member {i} follows {:?} right after the leader stopped; live members are {ids:?}",
            status["Leader"]
        );
    }
    assert!(c.log(leader).contains("leadership transfer finished"));
    ok(&c.live_endpoints(), &["put", "after-handoff", "1"]);
}

#[test]
fn two_members_down_blocks_writes_and_loses_nothing() {
    let mut c = Cluster::start(3);
    let eps = c.endpoints();
    for i in 0..10 {
        ok(&eps, &["put", &format!("acked{i}"), "yes"]);
    }
    c.kill(1);
    c.kill(2);
    let out = etcdctl(
        &c.endpoint(0),
        &["put", "lonely", "x", "--command-timeout=3s"],
    );
    assert!(
        !out.status.success(),
        "a write without quorum must not be acknowledged"
    );
    let out = etcdctl(&c.endpoint(0), &["get", "acked0", "--command-timeout=3s"]);
    assert!(
        !out.status.success(),
        "a linearizable read without quorum must fail"
    );
    c.start_member(1);
    c.start_member(2);
    c.wait_writable();
    for i in 0..10 {
        assert_eq!(
            ok(&eps, &["get", &format!("acked{i}"), "--print-value-only"]),
            "yes\n"
        );
    }
    ok(&eps, &["put", "after", "quorum"]);
}

#[test]
fn full_stop_and_restart_keeps_every_acknowledged_write() {
    let mut c = Cluster::start_with(3, &["--snapshot-count", "25"]);
    let eps = c.endpoints();
    for i in 0..60 {
        ok(&eps, &["put", &format!("durable{i}"), &format!("{i}")]);
    }
    ok(&eps, &["del", "durable0"]);
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.start_member(i);
    }
    c.wait_writable();
    assert_eq!(ok(&eps, &["get", "durable0"]), "");
    let all = ok(&eps, &["get", "durable", "--prefix", "--print-value-only"]);
    let mut values: Vec<u32> = all.lines().map(|l| l.parse().unwrap()).collect();
    values.sort();
    assert_eq!(values, (1..60).collect::<Vec<_>>());
}

#[test]
fn lagging_member_catches_up_from_a_snapshot() {
    let mut c = Cluster::start_with(
        3,
        &[
            "--snapshot-count",
            "20",
            "--experimental-snapshot-catchup-entries",
            "5",
        ],
    );
    let victim = (c.leader_index() + 1) % 3;
    c.kill(victim);
    c.leader_index();
    let live = c.live_endpoints();
    // 80 values of 32 KiB: an image of several chunks.
    let value = |i: usize| format!("{i}-{}", "v".repeat(32 * 1024));
    for i in 0..80 {
        ok(&live, &["put", &format!("s{i}"), &value(i)]);
    }
    let grant = ok(&live, &["lease", "grant", "600"]);
    let lease = grant.split_whitespace().nth(1).unwrap().to_string();
    ok(&live, &["put", "leased", "x", "--lease", &lease]);
    ok(&live, &["put", "s79", "79"]);
    c.start_member(victim);
    wait_caught_up(&c, victim, "s79", "79");
    let mine = etcdctl(
        &c.endpoint(victim),
        &["get", "s", "--prefix", "--consistency=s"],
    );
    let theirs = etcdctl(&live, &["get", "s", "--prefix", "--consistency=s"]);
    assert_eq!(stdout(&mine).lines().count(), 160);
    assert_eq!(stdout(&mine), stdout(&theirs));
    // The lease and its key came with the image.
    let leased = stdout(&etcdctl(
        &c.endpoint(victim),
        &["get", "leased", "-w", "json", "--consistency=s"],
    ));
    let lease_id = u64::from_str_radix(&lease, 16).unwrap();
    assert!(
        leased.contains(&format!("\"lease\":{lease_id}")),
        "{leased}"
    );
    assert!(
        c.log(victim).contains("installed snapshot from leader"),
        "the member must have caught up through a raft snapshot"
    );
    // The received image file is gone once installed.
    let snap_dir = c.data_dir(victim).join("member/snap");
    let leftovers: Vec<_> = std::fs::read_dir(&snap_dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".snap.db"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // And it survives its own restart after installing the snapshot.
    c.kill(victim);
    c.start_member(victim);
    wait_caught_up(&c, victim, "s0", &value(0));
}
