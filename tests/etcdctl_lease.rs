//! Leases through the real etcdctl against a 3-member detcd: keys attached to a lease vanish
//! once it expires (decided by the leader, applied through raft), keep-alive keeps them,
//! `timetolive --keys` reports them, revoke deletes them all in one revision, and a lease
//! survives the loss of the leader with its TTL refreshed by the new one.

#![cfg(not(madsim))]

mod common;
use common::{ok, revision, wait_until, Cluster};
use std::time::{Duration, Instant};

fn grant(eps: &str, ttl: u32) -> String {
    let out = ok(eps, &["lease", "grant", &ttl.to_string()]);
    // "lease 694d7a3b2b3a5f0a granted with TTL(5s)"
    let id = out.split_whitespace().nth(1).expect("lease id").to_string();
    assert_eq!(out, format!("lease {id} granted with TTL({ttl}s)\n"));
    id
}

#[test]
fn expiry_deletes_attached_keys_and_timetolive_lists_them() {
    let c = Cluster::start(3);
    let eps = c.endpoints();
    let id = grant(&eps, 3);
    ok(&eps, &["put", "eph/a", "1", "--lease", &id]);
    ok(
        &c.endpoint(1),
        &["put", "eph/b", "2", &format!("--lease={id}")],
    );
    let ttl = ok(&c.endpoint(2), &["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(3s), remaining(")),
        "{ttl}"
    );
    assert!(ttl.ends_with("attached keys([eph/a eph/b])\n"), "{ttl}");
    assert!(ok(&eps, &["lease", "list"]).contains(&id));
    let granted = Instant::now();
    wait_until(Duration::from_secs(10), || {
        ok(&eps, &["get", "eph/", "--prefix", "--keys-only"]).is_empty()
    });
    assert!(
        granted.elapsed() >= Duration::from_secs(2),
        "expired too early: {:?}",
        granted.elapsed()
    );
    assert_eq!(
        ok(&eps, &["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
    // Every member agrees: the deletion went through raft.
    for i in 0..3 {
        assert_eq!(
            ok(
                &c.endpoint(i),
                &["get", "eph/", "--prefix", "--consistency=s"]
            ),
            ""
        );
    }
}

#[test]
fn keep_alive_keeps_keys_until_it_stops() {
    let c = Cluster::start(3);
    let eps = c.endpoints();
    let id = grant(&eps, 3);
    ok(&eps, &["put", "alive", "yes", "--lease", &id]);
    let mut keeper = common::spawn_etcdctl(&c.endpoint(1), &["lease", "keep-alive", &id]);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        ok(&eps, &["get", "alive", "--print-value-only"]),
        "yes\n",
        "kept alive past its TTL"
    );
    let _ = keeper.kill();
    let out = keeper.wait_with_output().unwrap();
    assert!(common::stdout(&out).contains(&format!("lease {id} keepalived with TTL(3)")));
    wait_until(Duration::from_secs(10), || {
        ok(&eps, &["get", "alive"]).is_empty()
    });
}

#[test]
fn revoke_deletes_all_keys_in_one_revision() {
    let c = Cluster::start(3);
    let eps = c.endpoints();
    let id = grant(&eps, 100);
    for k in ["r/a", "r/b", "r/c"] {
        ok(&eps, &["put", k, "v", "--lease", &id]);
    }
    let before = revision(&eps);
    assert_eq!(
        ok(&eps, &["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(
        revision(&eps),
        before + 1,
        "one revision for the whole revocation"
    );
    assert_eq!(ok(&eps, &["get", "r/", "--prefix"]), "");
    let err = common::fails(&eps, &["lease", "revoke", &id]);
    assert!(
        err.contains("etcdserver: requested lease not found"),
        "{err}"
    );
}

#[test]
fn lease_survives_leader_loss_with_ttl_refreshed() {
    let mut c = Cluster::start(3);
    let eps = c.endpoints();
    let id = grant(&eps, 6);
    ok(&eps, &["put", "survivor", "v", "--lease", &id]);
    std::thread::sleep(Duration::from_secs(2));
    let leader = c.leader_index();
    c.kill(leader);
    c.leader_index();
    let live = c.live_endpoints();
    let ttl = ok(&live, &["lease", "timetolive", &id]);
    let remaining: i64 = ttl
        .split("remaining(")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{ttl}"));
    assert!(
        remaining >= 5,
        "the new leader gives the lease a full TTL again: {ttl}"
    );
    assert_eq!(ok(&live, &["get", "survivor", "--print-value-only"]), "v\n");
    wait_until(Duration::from_secs(15), || {
        ok(&live, &["get", "survivor"]).is_empty()
    });
}
