//! `--auto-compaction-mode periodic --auto-compaction-retention 2s`, as etcd runs it: the
//! leader compacts on its own, so an old revision becomes `required revision has been
//! compacted` on every member while the latest values stay readable.

#![cfg(not(madsim))]

mod common;
use common::{etcdctl, ok, stderr, wait_until, Cluster};
use std::time::Duration;

fn write_versions(eps: &str, n: usize) {
    for i in 0..n {
        ok(eps, &["put", "ac/key", &format!("v{i}")]);
    }
}

#[test]
fn periodic_auto_compaction_compacts_old_revisions() {
    let c = Cluster::start_with(
        3,
        &[
            "--auto-compaction-mode",
            "periodic",
            "--auto-compaction-retention",
            "2s",
        ],
    );
    let eps = c.endpoints();
    let first = common::revision(&eps) + 1;
    write_versions(&eps, 5);
    wait_until(Duration::from_secs(20), || {
        // Keep writing, so the revision sampled a retention ago moves past `first`.
        ok(&eps, &["put", "ac/tick", "x"]);
        let old = etcdctl(&eps, &["get", "ac/key", "--rev", &first.to_string()]);
        !old.status.success()
            && stderr(&old).contains("etcdserver: mvcc: required revision has been compacted")
    });
    assert_eq!(ok(&eps, &["get", "ac/key", "--print-value-only"]), "v4\n");
    // Every member compacted: the compaction went through raft.
    for i in 0..3 {
        let old = etcdctl(
            &c.endpoint(i),
            &[
                "get",
                "ac/key",
                "--rev",
                &first.to_string(),
                "--consistency=s",
            ],
        );
        assert!(!old.status.success(), "member {i} still serves {first}");
    }
}
