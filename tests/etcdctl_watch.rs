//! The real etcdctl's `watch` against a 3-member detcd: live prefix watches see writes made
//! through other members, history replays from a past revision, compaction cancels a watch that
//! starts too early, and a watch whose member dies resumes on another without gaps or repeats.

#![cfg(not(madsim))]

mod common;
use common::{ok, revision, Cluster};
use std::process::Child;
use std::time::Duration;

fn spawn_watch(endpoints: &str, args: &[&str]) -> Child {
    let mut all = vec!["watch"];
    all.extend_from_slice(args);
    common::spawn_etcdctl(endpoints, &all)
}

fn finish(mut child: Child) -> (String, String) {
    std::thread::sleep(Duration::from_millis(1000));
    let _ = child.kill();
    let out = child.wait_with_output().expect("watch output");
    (common::stdout(&out), common::stderr(&out))
}

#[test]
fn live_prefix_watch_on_a_follower_sees_writes_made_elsewhere() {
    let c = Cluster::start(3);
    let watch = spawn_watch(&c.endpoint(2), &["w/", "--prefix"]);
    std::thread::sleep(Duration::from_millis(500));
    ok(&c.endpoint(0), &["put", "w/a", "1"]);
    ok(&c.endpoint(1), &["put", "other", "x"]);
    ok(&c.endpoint(0), &["put", "w/b", "2"]);
    ok(&c.endpoint(1), &["del", "w/a"]);
    let (out, _) = finish(watch);
    assert_eq!(out, "PUT\nw/a\n1\nPUT\nw/b\n2\nDELETE\nw/a\n\n");
}

#[test]
fn history_replay_and_compaction() {
    let c = Cluster::start(3);
    let eps = c.endpoints();
    let start = revision(&eps) + 1;
    for i in 0..5 {
        ok(&eps, &["put", "h", &i.to_string()]);
    }
    let (out, _) = finish(spawn_watch(&eps, &["h", "--rev", &start.to_string()]));
    assert_eq!(
        out,
        "PUT\nh\n0\nPUT\nh\n1\nPUT\nh\n2\nPUT\nh\n3\nPUT\nh\n4\n"
    );
    let compact_at = start + 2;
    ok(&eps, &["compaction", &compact_at.to_string()]);
    let (_, err) = finish(spawn_watch(&eps, &["h", "--rev", &start.to_string()]));
    assert!(
        err.contains("etcdserver: mvcc: required revision has been compacted"),
        "{err}"
    );
    let (out, _) = finish(spawn_watch(&eps, &["h", "--rev", &compact_at.to_string()]));
    assert_eq!(out, "PUT\nh\n2\nPUT\nh\n3\nPUT\nh\n4\n");
}

#[test]
fn watch_resumes_on_another_member_without_gaps_or_duplicates() {
    let mut c = Cluster::start(3);
    let first = c.endpoint(0);
    let watch = spawn_watch(
        &format!("{first},{},{}", c.endpoint(1), c.endpoint(2)),
        &["r/", "--prefix"],
    );
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..5 {
        ok(&c.endpoint(1), &["put", &format!("r/{i}"), "v"]);
    }
    c.kill(0);
    c.leader_index();
    for i in 5..10 {
        ok(&c.live_endpoints(), &["put", &format!("r/{i}"), "v"]);
    }
    std::thread::sleep(Duration::from_millis(2000));
    let (out, _) = finish(watch);
    let keys: Vec<&str> = out.lines().filter(|l| l.starts_with("r/")).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("r/{i}")).collect();
    assert_eq!(
        keys, expected,
        "events must arrive once each, in order:\n{out}"
    );
}
