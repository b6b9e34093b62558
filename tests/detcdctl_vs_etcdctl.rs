//! detcdctl against the real etcdctl 3.4: the same scripts run with each tool on its own fresh
//! single-member detcd (so revisions line up), and every step must give identical stdout,
//! stderr (minus etcdctl's `{"level":"warn"...}` retry lines) and exit status. Cluster/member
//! IDs, ports and lease IDs — the only things that differ between the two servers — are
//! replaced by placeholders before comparing. Covers put/get/del/txn/compaction in every
//! output format, error cases (compacted and future revisions, empty key, bad and unknown
//! leases, bad arguments), lease commands including a keep-alive ended by a revoke, watch,
//! lock and elect. The harness is `common::side_by_side`; the global flags, endpoint forms and
//! cluster commands are in `detcdctl_vs_etcdctl_cluster.rs`.

#![cfg(not(madsim))]

mod common;
use common::side_by_side::*;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

#[test]
fn kv_commands_match_etcdctl() {
    let (mut e, mut d) = both();
    let steps: &[(&[&str], Option<&str>)] = &[
        (&["put", "foo", "bar"], None),
        (&["put", "foo", "bar2", "--prev-kv"], None),
        (&["put", "foo", "bar3", "--prev-kv", "-w", "json"], None),
        (
            &["put", "foo", "--prev-kv", "-w", "fields"],
            Some("from stdin\n"),
        ),
        (&["put", "a", "1"], None),
        (&["put", "b", "2", "--hex"], None),
        (&["put", "c", "quote\"d\ttab é"], None),
        (&["get", "foo"], None),
        (&["get", "foo", "-w", "json"], None),
        (&["get", "foo", "-w", "fields"], None),
        (&["get", "foo", "--hex"], None),
        (&["get", "a", "c"], None),
        (&["get", "", "--prefix"], None),
        (&["get", "", "--from-key", "-w", "json"], None),
        (&["get", "c", "-w", "fields"], None),
        (
            &[
                "get",
                "",
                "--prefix",
                "--sort-by=create",
                "--order=descend",
                "--limit",
                "2",
            ],
            None,
        ),
        (
            &[
                "get",
                "",
                "--prefix",
                "--sort-by=VALUE",
                "-w",
                "fields",
                "--limit=2",
            ],
            None,
        ),
        (&["get", "a", "--keys-only"], None),
        (&["get", "a", "--print-value-only"], None),
        (
            &["get", "a", "--consistency=s", "-w", "json", "--keys-only"],
            None,
        ),
        (&["get", "foo", "--rev", "2"], None),
        (&["get", "missing"], None),
        (&["del", "a", "--prev-kv"], None),
        (&["del", "missing", "-w", "json"], None),
        (&["del", "b", "--prev-kv", "-w", "fields"], None),
        (&["del", "", "--from-key", "-w", "json"], None),
        (&["put", "k1", "v1"], None),
        (&["put", "k2", "v2"], None),
        (&["compaction", "3"], None),
        (&["compaction", "5", "--physical"], None),
        (&["member", "list"], None),
        (&["member", "list", "-w", "json"], None),
        (&["member", "list", "-w", "fields"], None),
        (&["member", "list", "-w", "table"], None),
    ];
    script(&mut e, &mut d, steps);
}

#[test]
fn errors_match_etcdctl() {
    let (mut e, mut d) = both();
    let steps: &[(&[&str], Option<&str>)] = &[
        (&["put", "x", "1"], None),
        (&["put", "x", "2"], None),
        (&["put", "x", "3"], None),
        (&["compaction", "3"], None),
        (&["compaction", "3"], None),
        (&["compaction", "1000"], None),
        (&["compaction", "abc"], None),
        (&["compaction"], None),
        (&["get", "x", "--rev", "2"], None),
        (&["get", "x", "--rev", "1000"], None),
        (&["put", "", "v"], None),
        (&["put", "k", "v", "--lease", "1234"], None),
        (&["put", "k", "v", "--lease", "zz"], None),
        (&["put", "k", "--ignore-value", "v"], None),
        (&["put", "nokey", "--ignore-value"], None),
        (&["put", "nokey", "v", "--ignore-lease"], None),
        (&["put"], None),
        (&["put", "k"], None),
        (&["get"], None),
        (&["get", "a", "b", "--prefix"], None),
        (&["get", "a", "--prefix", "--from-key"], None),
        (&["get", "a", "--consistency=x"], None),
        (&["get", "a", "--order=up"], None),
        (&["get", "a", "--sort-by=size"], None),
        (&["get", "x", "--print-value-only", "-w", "json"], None),
        (&["get", "x", "-w", "table"], None),
        (&["get", "x", "-w", "yaml"], None),
        (&["del"], None),
        (&["del", "a", "b", "c"], None),
        (&["del", "a", "b", "--from-key"], None),
        (&["watch"], None),
        (&["watch", "a", "b", "--prefix"], None),
        (&["watch", "x", "--rev", "1"], None),
        (&["lock"], None),
        (&["elect"], None),
        (&["elect", "name"], None),
        (&["nosuchcommand"], None),
    ];
    script(&mut e, &mut d, steps);
}

#[test]
fn txn_matches_etcdctl() {
    let (mut e, mut d) = both();
    let txn = |s: &'static str| -> (&'static [&'static str], Option<&'static str>) {
        (&["txn"], Some(s))
    };
    let steps: Vec<(&[&str], Option<&str>)> = vec![
        (&["put", "k", "v"], None),
        txn("mod(\"k\") > \"0\"\n\nput t1 v1\nget k\ndel nothing\n\nput t2 v2\n\n"),
        (
            &["txn", "-w", "json"],
            Some("value(\"k\") = \"v\"\n\nget t --prefix\n\n\n"),
        ),
        (
            &["txn", "-w", "fields"],
            Some("value(\"k\") = \"no\"\n\n\nput t2 x --prev-kv\nget t --prefix\n\n"),
        ),
        (
            &["txn", "-i"],
            Some("ver(\"k\") = \"1\"\nc(\"k\") < \"100\"\n\ndel t --prefix --prev-kv\n\n\n"),
        ),
        txn("\nput \"a b\" \"c\\td\"\nget \"a b\"\n\n\n"),
        txn("\n\n\n"),
        txn("value(\"k\") = \"v\"\n\nput x y\n\nput z w"),
        txn("bad\n\n"),
        txn("value(\"k\") = v\n\n"),
        txn("value(\"k\")= \"v\"\n\n"),
        txn("value (\"k\") = \"v\"\n\n"),
        txn("ver(\"k\") = \"x\"\n\n"),
        txn(""),
        txn("\nfoo bar\n\n\n"),
        txn("\nput\n\n\n"),
        txn("\nput \"\" x\n\n\n"),
        (&["txn", "extra"], None),
        (&["txn", "-w", "table"], Some("\nput q r\n\n\n")),
    ];
    script(&mut e, &mut d, &steps);
}

#[test]
fn lease_commands_match_etcdctl() {
    let (mut e, mut d) = both();
    let steps: &[(&[&str], Option<&str>)] = &[
        (&["lease", "grant", "300"], None),
        (&["put", "lk1", "v", "--lease", "{lease}"], None),
        (&["put", "lk2", "v", "--lease={lease}"], None),
        (&["get", "lk1", "-w", "json"], None),
        (&["lease", "timetolive", "{lease}"], None),
        (&["lease", "timetolive", "{lease}", "--keys"], None),
        (
            &["lease", "timetolive", "{lease}", "--keys", "-w", "json"],
            None,
        ),
        (
            &["lease", "timetolive", "{lease}", "--keys", "-w", "fields"],
            None,
        ),
        (&["lease", "keep-alive", "--once", "{lease}"], None),
        (
            &["lease", "keep-alive", "--once", "{lease}", "-w", "json"],
            None,
        ),
        (&["lease", "list"], None),
        (&["lease", "list", "-w", "fields"], None),
        (&["lease", "revoke", "{lease}"], None),
        (&["get", "lk", "--prefix"], None),
        (&["lease", "revoke", "{lease}"], None),
        (&["lease", "timetolive", "{lease}"], None),
        (&["lease", "keep-alive", "--once", "{lease}"], None),
        (&["lease", "grant", "100", "-w", "json"], None),
        (&["lease", "revoke", "{lease}", "-w", "json"], None),
        (&["lease", "grant", "100", "-w", "fields"], None),
        (&["lease", "revoke", "{lease}", "-w", "fields"], None),
        (&["lease", "list", "-w", "json"], None),
        (&["lease", "grant"], None),
        (&["lease", "grant", "x"], None),
        (&["lease", "grant", "99999999999"], None),
        (&["lease", "revoke"], None),
        (&["lease", "revoke", "zz"], None),
        (&["lease", "timetolive"], None),
        (&["lease", "keep-alive"], None),
    ];
    script(&mut e, &mut d, steps);

    // keep-alive until the lease is revoked under it (TTL 6: renewals every 2s).
    let mut outs = Vec::new();
    for side in [&mut e, &mut d] {
        side.run(&["lease", "grant", "6"], None);
        let child = side.spawn(&["lease", "keep-alive", "{lease}"]);
        std::thread::sleep(Duration::from_millis(800));
        common::ok(&side.ep(), &["lease", "revoke", &side.lease.clone()]);
        let out = wait_timeout(child, Duration::from_secs(10));
        outs.push(side.outcome(out));
    }
    assert_eq!(outs[1], outs[0], "keep-alive ended by revoke");
}

fn wait_timeout(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status();
}

#[test]
fn watch_matches_etcdctl() {
    let (mut e, mut d) = both();
    let mut outs = Vec::new();
    for side in [&mut e, &mut d] {
        let watchers = [
            side.spawn(&["watch", "w", "--prefix", "--prev-kv"]),
            side.spawn(&["watch", "w", "-w", "json"]),
            side.spawn(&["watch", "w", "wz", "-w", "fields"]),
        ];
        std::thread::sleep(Duration::from_millis(1000));
        for args in [
            &["put", "w", "v1"][..],
            &["put", "w", "v2"],
            &["put", "wa", "x"],
            &["del", "w"],
            &["put", "other", "o"],
        ] {
            common::ok(&side.ep(), args);
        }
        std::thread::sleep(Duration::from_millis(800));
        for w in watchers {
            signal(&w, "-TERM");
            outs.push(side.outcome(wait_timeout(w, Duration::from_secs(5))));
        }
        // a watch replaying history from a revision
        let replay = side.spawn(&["watch", "w", "--rev", "2"]);
        std::thread::sleep(Duration::from_millis(800));
        signal(&replay, "-TERM");
        outs.push(side.outcome(wait_timeout(replay, Duration::from_secs(5))));
    }
    let (want, got) = outs.split_at(outs.len() / 2);
    assert_eq!(got, want);
    assert!(want[0].stdout.contains("PUT\nw\nv1\n"), "{:?}", want[0]);
}

#[test]
fn lock_and_elect_match_etcdctl() {
    let (mut e, mut d) = both();
    let mut outs = Vec::new();
    for side in [&mut e, &mut d] {
        let run = side.run(
            &[
                "lock",
                "L",
                "--",
                "sh",
                "-c",
                "echo key=${ETCD_LOCK_KEY%/*} rev=$ETCD_LOCK_REV; exit 3",
            ],
            None,
        );
        outs.push(run);
        outs.push(side.run(&["lock", "L", "--", "/nonexistent/cmd"], None));
        let holder = side.spawn(&["lock", "L"]);
        std::thread::sleep(Duration::from_millis(1000));
        signal(&holder, "-INT");
        let mut held = side.outcome(wait_timeout(holder, Duration::from_secs(5)));
        held.stdout = held.stdout.split('/').next().unwrap_or("").to_string();
        outs.push(held);
        let leader = side.spawn(&["elect", "E", "proposal"]);
        std::thread::sleep(Duration::from_millis(1000));
        let observer = side.spawn(&["elect", "-l", "E"]);
        std::thread::sleep(Duration::from_millis(1000));
        signal(&observer, "-INT");
        signal(&leader, "-INT");
        for child in [leader, observer] {
            let mut o = side.outcome(wait_timeout(child, Duration::from_secs(5)));
            o.stdout = o
                .stdout
                .lines()
                .map(|l| l.split('/').next().unwrap_or("").to_string() + "\n")
                .collect();
            outs.push(o);
        }
        outs.push(side.run(&["get", "", "--prefix", "--keys-only"], None));
    }
    let (want, got) = outs.split_at(outs.len() / 2);
    assert_eq!(got, want);
}
