//! The real etcdctl 3.4 against a 3-member detcd cluster: the KV commands, compaction and the
//! cluster/maintenance commands print what etcd users expect, and bad requests get etcd's errors.

#![cfg(not(madsim))]

mod common;
use common::{etcdctl_stdin, fails, ok, stdout, Cluster};

#[test]
fn kv_commands_history_and_compaction() {
    let c = Cluster::start(3);
    let eps = c.endpoints();
    let base = common::revision(&eps);

    assert_eq!(ok(&eps, &["put", "foo", "bar"]), "OK\n");
    assert_eq!(ok(&eps, &["get", "foo"]), "foo\nbar\n");
    assert_eq!(ok(&eps, &["put", "foo", "baz"]), "OK\n");
    // A read through another member sees the acknowledged write (linearizable by default).
    assert_eq!(
        ok(&c.endpoint(2), &["get", "foo", "--print-value-only"]),
        "baz\n"
    );
    // History: the first version is still readable at its revision.
    let first = (base + 1).to_string();
    assert_eq!(ok(&eps, &["get", "foo", "--rev", &first]), "foo\nbar\n");

    let json: serde_json::Value =
        serde_json::from_str(&ok(&eps, &["get", "foo", "-w", "json"])).unwrap();
    let kv = &json["kvs"][0];
    assert_eq!(kv["create_revision"].as_i64(), Some(base + 1));
    assert_eq!(kv["mod_revision"].as_i64(), Some(base + 2));
    assert_eq!(kv["version"].as_i64(), Some(2));
    assert_eq!(json["header"]["revision"].as_i64(), Some(base + 2));
    assert!(json["header"]["cluster_id"].as_u64().unwrap() != 0);
    assert!(json["header"]["member_id"].as_u64().unwrap() != 0);
    assert!(json["header"]["raft_term"].as_u64().unwrap() >= 1);

    for k in ["dir/a", "dir/b", "dir/c"] {
        ok(&eps, &["put", k, &format!("v-{k}")]);
    }
    assert_eq!(
        ok(&eps, &["get", "dir/", "--prefix", "--keys-only"]),
        "dir/a\n\ndir/b\n\ndir/c\n\n"
    );
    assert_eq!(
        ok(
            &eps,
            &[
                "get",
                "dir/",
                "--prefix",
                "--limit",
                "2",
                "--order",
                "DESCEND",
                "--print-value-only"
            ]
        ),
        "v-dir/c\nv-dir/b\n"
    );
    let fields = ok(
        &eps,
        &["get", "dir/", "--prefix", "--limit", "1", "-w", "fields"],
    );
    assert!(fields.contains("\"Count\" : 3"), "{fields}");
    assert!(fields.contains("\"More\" : true"), "{fields}");
    assert_eq!(ok(&eps, &["del", "dir/a"]), "1\n");
    assert_eq!(
        ok(&eps, &["del", "dir/", "--prefix", "--prev-kv"]),
        "2\ndir/b\nv-dir/b\ndir/c\nv-dir/c\n"
    );
    assert_eq!(ok(&eps, &["get", "dir/", "--prefix"]), "");

    // Txn from stdin (etcdctl's interactive format): compares, then success ops, then failure ops.
    let script = "value(\"foo\") = \"baz\"\n\nput foo qux\nget foo\n\nput foo nope\n\n";
    let out = etcdctl_stdin(&eps, &["txn"], Some(script));
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(stdout(&out), "SUCCESS\n\nOK\n\nfoo\nqux\n");
    let out = etcdctl_stdin(&eps, &["txn"], Some(script));
    assert_eq!(stdout(&out), "FAILURE\n\nOK\n");
    assert_eq!(ok(&eps, &["get", "foo", "--print-value-only"]), "nope\n");

    // Compaction: older revisions become unreadable with etcd's error; current ones stay.
    let rev = (base + 2).to_string();
    assert_eq!(
        ok(&eps, &["compaction", &rev]),
        format!("compacted revision {rev}\n")
    );
    let err = fails(&eps, &["get", "foo", "--rev", &first]);
    assert!(
        err.contains("etcdserver: mvcc: required revision has been compacted"),
        "{err}"
    );
    assert_eq!(ok(&eps, &["get", "foo", "--rev", &rev]), "foo\nbaz\n");
    let err = fails(&eps, &["compaction", &rev]);
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );
    let err = fails(&eps, &["get", "foo", "--rev", "100000"]);
    assert!(
        err.contains("etcdserver: mvcc: required revision is a future revision"),
        "{err}"
    );
}

#[test]
fn member_list_and_endpoint_commands_show_real_values() {
    let c = Cluster::start(3);
    let eps = c.endpoints();
    let table = ok(&eps, &["member", "list", "-w", "table"]);
    for (i, m) in c.members.iter().enumerate() {
        let line = table
            .lines()
            .find(|l| {
                l.contains(&format!("| {} |", m.name)) || l.contains(&format!(" {} ", m.name))
            })
            .unwrap_or_else(|| panic!("{} missing from\n{table}", m.name));
        assert!(line.contains("started"), "{line}");
        assert!(
            line.contains(&format!("http://127.0.0.1:{}", m.peer_port)),
            "{line}"
        );
        assert!(
            line.contains(&format!("http://{}", c.endpoint(i))),
            "{line}"
        );
        assert!(line.contains("false"), "{line}");
    }
    let status = ok(&eps, &["endpoint", "status", "-w", "table"]);
    assert_eq!(
        status.matches("true").count(),
        1,
        "exactly one leader:\n{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&eps, &["endpoint", "status", "-w", "json"])).unwrap();
    let statuses = json.as_array().unwrap();
    assert_eq!(statuses.len(), 3);
    let leader = statuses[0]["Status"]["leader"].as_u64().unwrap();
    assert!(leader != 0);
    for s in statuses {
        let st = &s["Status"];
        assert_eq!(
            st["leader"].as_u64(),
            Some(leader),
            "all members agree on the leader"
        );
        assert!(st["raftIndex"].as_u64().unwrap() > 0);
        assert!(st["raftTerm"].as_u64().unwrap() >= 1);
        assert!(st["dbSize"].as_i64().unwrap() > 0);
    }
    // etcdctl 3.4 prints health results on stderr.
    let out = common::etcdctl(&eps, &["endpoint", "health"]);
    assert!(out.status.success());
    let health = common::stderr(&out);
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");
}

#[test]
fn bad_requests_get_etcd_errors() {
    let c = Cluster::start(1);
    let eps = c.endpoints();
    let err = fails(&eps, &["put", "", "v"]);
    assert!(err.contains("etcdserver: key is not provided"), "{err}");
    let big = "x".repeat(1_600_000);
    let out = etcdctl_stdin(&eps, &["put", "big"], Some(&big));
    let err = common::stderr(&out);
    assert!(err.contains("etcdserver: request is too large"), "{err}");
    let many: String = (0..129).map(|i| format!("put k{i} v\n")).collect();
    let out = etcdctl_stdin(&eps, &["txn"], Some(&format!("\n{many}\n\n")));
    assert!(common::stderr(&out).contains("etcdserver: too many operations in txn request"));
    let out = etcdctl_stdin(&eps, &["txn"], Some("\nput a 1\nput a 2\n\n\n"));
    assert!(common::stderr(&out).contains("etcdserver: duplicate key given in txn request"));
    let err = fails(&eps, &["put", "k", "--ignore-value"]);
    assert!(err.contains("etcdserver: key not found"), "{err}");
}
