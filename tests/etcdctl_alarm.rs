//! Space quota and the NOSPACE alarm through the real etcdctl against a 3-member detcd started
//! with a small `--quota-backend-bytes`: the write that would pass the quota is refused with
//! etcd's error and raises NOSPACE for the member that refused it; from then on every member
//! refuses writes that need space (a small put through another member too: the capped apply)
//! while reads, deletes and compaction still work; the alarm shows in `alarm list` and in
//! `endpoint status`, survives a member's restart, and `alarm disarm` lowers it once compaction
//! has made room; `defrag` then gives the freed pages back to the file system. detcdctl prints
//! the same as etcdctl for the alarm commands and defrag.

#![cfg(not(madsim))]

mod common;
use common::{detcdctl, etcdctl, fails, ok, stderr, stdout, wait_until, Cluster};
use std::time::Duration;

const QUOTA: &str = "200000";

fn status(endpoint: &str) -> serde_json::Value {
    let out = ok(endpoint, &["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("status json");
    v[0]["Status"].clone()
}

fn member_id(endpoint: &str) -> u64 {
    status(endpoint)["header"]["member_id"]
        .as_u64()
        .expect("member id")
}

fn db_size(endpoint: &str) -> u64 {
    status(endpoint)["dbSize"].as_u64().expect("dbSize")
}

/// Both tools print the same for a command that changes nothing.
fn same_output(endpoint: &str, args: &[&str]) -> String {
    let real = etcdctl(endpoint, args);
    let ours = detcdctl(endpoint, args);
    assert_eq!(stdout(&ours), stdout(&real), "stdout of {args:?}");
    assert_eq!(ours.status.code(), real.status.code(), "exit of {args:?}");
    stdout(&real)
}

#[test]
fn quota_raises_nospace_and_disarm_lowers_it() {
    let mut c = Cluster::start_with(3, &["--quota-backend-bytes", QUOTA]);
    let first = c.endpoint(0);
    let eps = c.endpoints();
    assert_eq!(same_output(&eps, &["alarm", "list"]), "");

    // 30 kB values: a handful fit under the quota, then a put is refused.
    let value = "v".repeat(30_000);
    let mut stored = 0;
    let refusal = loop {
        let out = etcdctl(&first, &["put", &format!("big{stored}"), &value]);
        if !out.status.success() {
            break out;
        }
        stored += 1;
        assert!(stored < 20, "the quota never took effect");
    };
    assert!(stored >= 4, "only {stored} puts fit under {QUOTA} bytes");
    assert_eq!(refusal.status.code(), Some(1));
    assert!(
        stderr(&refusal).ends_with("Error: etcdserver: mvcc: database space exceeded\n"),
        "{}",
        stderr(&refusal)
    );

    let raised = format!("memberID:{} alarm:NOSPACE \n", member_id(&first));
    for i in 0..3 {
        assert_eq!(ok(&c.endpoint(i), &["alarm", "list"]), raised, "member {i}");
    }
    assert_eq!(same_output(&eps, &["alarm", "list"]), raised);
    let json = same_output(&eps, &["alarm", "list", "-w", "json"]);
    assert_eq!(
        json,
        format!(
            "{{\"alarms\":[{{\"memberID\":{},\"alarm\":1}}]}}\n",
            member_id(&first)
        )
    );
    let bad = detcdctl(&eps, &["alarm", "list", "extra"]);
    assert_eq!(bad.status.code(), Some(128));
    assert_eq!(
        stderr(&bad),
        stderr(&etcdctl(&eps, &["alarm", "list", "extra"]))
    );

    // Every member now refuses what needs space, even a put that fits the quota.
    let small = fails(&c.endpoint(1), &["put", "small", "x"]);
    assert!(
        small.ends_with("Error: etcdserver: mvcc: database space exceeded\n"),
        "{small}"
    );
    let lease = fails(&c.endpoint(2), &["lease", "grant", "60"]);
    assert!(
        lease.ends_with(
            "Error: failed to grant lease (etcdserver: mvcc: database space exceeded)\n"
        ),
        "{lease}"
    );
    // The refused put left nothing behind on any member.
    for i in 0..3 {
        assert_eq!(
            ok(&c.endpoint(i), &["get", "small", "--consistency=s"]),
            "",
            "member {i}"
        );
    }
    // Reads work; the status reports the alarm as etcd does.
    assert_eq!(
        ok(&eps, &["get", "big0", "--print-value-only"]),
        format!("{value}\n")
    );
    let status = ok(&c.endpoint(1), &["endpoint", "status", "-w", "json"]);
    assert!(
        status.contains(&format!("\"errors\":[{:?}]", raised.trim_end_matches('\n'))),
        "{status}"
    );

    // The alarm is replicated state: a restarted member still has it.
    c.kill(2);
    c.start_member(2);
    wait_until(Duration::from_secs(20), || {
        stdout(&etcdctl(&c.endpoint(2), &["alarm", "list"])) == raised
    });

    // Deleting and compacting makes room; disarm lowers the alarm and writes work again.
    ok(&eps, &["del", "big", "--prefix"]);
    let revision = common::revision(&eps);
    ok(&eps, &["compaction", &revision.to_string()]);
    let before = db_size(&first);
    let finished: String = (0..3)
        .map(|i| format!("Finished defragmenting etcd member[{}]\n", c.endpoint(i)))
        .collect();
    assert_eq!(ok(&eps, &["defrag"]), finished);
    let after = db_size(&first);
    assert!(
        after < before,
        "defrag left the file at {after} bytes (was {before})"
    );
    let ours = detcdctl(&eps, &["defrag"]);
    assert_eq!((stdout(&ours), ours.status.code()), (finished, Some(0)));
    let disarm = detcdctl(&eps, &["alarm", "disarm"]);
    assert!(disarm.status.success(), "{}", stderr(&disarm));
    assert_eq!(stdout(&disarm), raised, "disarm prints what it lowered");
    assert_eq!(ok(&eps, &["alarm", "disarm"]), "", "nothing left to lower");
    assert_eq!(same_output(&eps, &["alarm", "list", "-w", "json"]), "{}\n");
    for i in 0..3 {
        assert_eq!(ok(&c.endpoint(i), &["alarm", "list"]), "", "member {i}");
    }
    ok(&c.endpoint(1), &["put", "small", "x"]);
    ok(&c.endpoint(2), &["put", &format!("big{stored}"), &value]);
}
