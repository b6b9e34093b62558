//! Cluster operations with the real etcdctl 3.4: endpoints written with their scheme (etcdctl
//! then sends `:authority: http://host:port`), `--cluster` forms, and membership changes.

#![cfg(not(madsim))]

mod common;

use common::*;
use std::time::Duration;

/// `endpoint status`, `endpoint health` and `--cluster` forms work with `http://` endpoints,
/// as they do against etcd (etcdctl sends the scheme in `:authority`).
#[test]
fn endpoints_with_scheme_work_for_every_endpoint_command() {
    let c = Cluster::start(3);
    let with_scheme: Vec<String> = (0..3)
        .map(|i| format!("http://{}", c.endpoint(i)))
        .collect();
    let eps = with_scheme.join(",");
    let status = ok(&eps, &["endpoint", "status", "-w", "table"]);
    for ep in &with_scheme {
        assert!(status.contains(ep), "{status}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&ok(&eps, &["endpoint", "status", "-w", "json"])).expect("json");
    let leaders = json
        .as_array()
        .expect("one status per endpoint")
        .iter()
        .filter(|s| s["Status"]["leader"] == s["Status"]["header"]["member_id"])
        .count();
    assert_eq!(leaders, 1, "{json}");
    let health = stdout(&etcdctl(&eps, &["endpoint", "health"]))
        + &stderr(&etcdctl(&eps, &["endpoint", "health"]));
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");
    let one = &with_scheme[0];
    let cluster_status = ok(one, &["endpoint", "status", "--cluster", "-w", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&cluster_status).expect("json");
    assert_eq!(parsed.as_array().map(Vec::len), Some(3), "{cluster_status}");
    let cluster_health = etcdctl(one, &["endpoint", "health", "--cluster"]);
    assert!(
        cluster_health.status.success(),
        "{}",
        stderr(&cluster_health)
    );
    assert_eq!(ok(one, &["put", "k", "v"]).trim(), "OK");
    assert_eq!(ok(one, &["get", "k", "--print-value-only"]).trim(), "v");
}

/// The `Error: ...` line etcdctl ends a failure with.
fn error_line(stderr: String) -> String {
    stderr.trim().lines().last().unwrap_or_default().to_string()
}

/// `member list` as `(hex id, status, name)` rows.
fn members(eps: &str) -> Vec<(String, String, String)> {
    ok(eps, &["member", "list"])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

fn id_of(eps: &str, name: &str) -> String {
    members(eps)
        .into_iter()
        .find(|(_, _, n)| n == name)
        .unwrap_or_else(|| panic!("no member {name}"))
        .0
}

fn serializable_value(ep: &str, key: &str) -> Option<String> {
    let out = etcdctl(ep, &["get", key, "--consistency=s", "--print-value-only"]);
    out.status
        .success()
        .then(|| stdout(&out).trim().to_string())
}

/// etcd's documented procedure: a member dies for good, it is removed, a replacement with an
/// empty data dir is added and started with the `ETCD_*` values `member add` printed; it
/// receives the data and the cluster is whole again.
#[test]
fn a_dead_member_is_replaced_by_a_fresh_one() {
    let mut c = Cluster::start(3);
    let eps = c.endpoints();
    for i in 0..50 {
        ok(&eps, &["put", &format!("k{i}"), &format!("v{i}")]);
    }
    let victim = (c.leader_index() + 1) % 3;
    let victim_name = c.members[victim].name.clone();
    let victim_id = id_of(&eps, &victim_name);
    c.kill(victim);
    let live = c.live_endpoints();
    let cluster_id = {
        let out = ok(&live, &["member", "remove", &victim_id]);
        let expected = format!("Member {victim_id:>16} removed from cluster ");
        assert!(out.starts_with(&expected), "{out}");
        out.trim().rsplit(' ').next().unwrap().to_string()
    };
    assert_eq!(
        error_line(fails(&live, &["member", "remove", &victim_id])),
        "Error: etcdserver: member not found"
    );
    let new = c.add_spec("m4");
    let peer = c.peer_url(new);
    let added = ok(
        &live,
        &["member", "add", "m4", &format!("--peer-urls={peer}")],
    );
    let new_id = added
        .split_whitespace()
        .nth(1)
        .expect("Member <id> added")
        .to_string();
    let expected = format!("Member {new_id:>16} added to cluster {cluster_id:>16}\n\n");
    assert!(added.starts_with(&expected), "{added}");
    assert!(added.contains("ETCD_NAME=\"m4\""), "{added}");
    assert!(
        added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{added}"
    );
    assert!(added.contains(&format!("ETCD_INITIAL_ADVERTISE_PEER_URLS=\"{peer}\"")));
    assert_eq!(
        error_line(fails(
            &live,
            &["member", "add", "again", &format!("--peer-urls={peer}")]
        )),
        "Error: etcdserver: Peer URLs already exists"
    );
    let listed = members(&live);
    assert!(
        listed.contains(&(new_id.clone(), "unstarted".into(), String::new())),
        "{listed:?}"
    );

    c.start_joining(new, &added);
    let ep = c.endpoint(new);
    wait_until(Duration::from_secs(30), || {
        serializable_value(&ep, "k49").as_deref() == Some("v49")
    });
    ok(&ep, &["put", "after", "replaced"]);
    for i in 0..3 {
        if i != victim {
            assert_eq!(
                ok(&c.endpoint(i), &["get", "after", "--print-value-only"]).trim(),
                "replaced"
            );
        }
    }
    wait_until(Duration::from_secs(10), || {
        let rows = members(&ep);
        rows.len() == 3 && rows.iter().all(|(_, status, _)| status == "started")
    });
    let rows = members(&ep);
    assert!(
        rows.iter()
            .any(|(id, _, name)| *id == new_id && name == "m4"),
        "{rows:?}"
    );
    assert!(
        !rows.iter().any(|(_, _, name)| *name == victim_name),
        "{rows:?}"
    );
}

/// A learner joins, serves serializable reads only, cannot be a second learner, and is promoted
/// once it has caught up; updates and bad requests answer with etcd's texts.
#[test]
fn a_learner_is_added_promoted_and_members_are_updated() {
    let mut c = Cluster::start(3);
    let eps = c.endpoints();
    for i in 0..20 {
        ok(&eps, &["put", &format!("k{i}"), "v"]);
    }
    let first = id_of(&eps, "m1");
    assert_eq!(
        error_line(fails(&eps, &["member", "promote", &first])),
        "Error: etcdserver: can only promote a learner member"
    );
    let new = c.add_spec("m4");
    let peer = c.peer_url(new);
    let added = ok(
        &eps,
        &[
            "member",
            "add",
            "m4",
            "--learner",
            &format!("--peer-urls={peer}"),
        ],
    );
    let learner_id = added.split_whitespace().nth(1).unwrap().to_string();
    let other = c.add_spec("m5");
    assert_eq!(
        error_line(fails(
            &eps,
            &[
                "member",
                "add",
                "m5",
                "--learner",
                &format!("--peer-urls={}", c.peer_url(other))
            ]
        )),
        "Error: etcdserver: too many learner members in cluster"
    );
    let table = ok(&eps, &["member", "list", "-w", "table"]);
    let row = table
        .lines()
        .find(|l| l.contains(&learner_id))
        .expect("learner listed");
    assert!(
        row.contains("| unstarted |") && row.ends_with("|       true |"),
        "{table}"
    );

    c.start_joining(new, &added);
    let ep = c.endpoint(new);
    wait_until(Duration::from_secs(30), || {
        serializable_value(&ep, "k19").as_deref() == Some("v")
    });
    assert_eq!(
        error_line(fails(&ep, &["put", "x", "y"])),
        "Error: etcdserver: rpc not supported for learner"
    );
    let promoted = ok(&eps, &["member", "promote", &learner_id]);
    let expected = format!("Member {learner_id:>16} promoted in cluster ");
    assert!(promoted.starts_with(&expected), "{promoted}");
    ok(&ep, &["put", "x", "y"]);
    assert_eq!(ok(&eps, &["get", "x", "--print-value-only"]).trim(), "y");

    let moved = format!("http://127.0.0.1:{}", free_port());
    let updated = ok(
        &eps,
        &[
            "member",
            "update",
            &learner_id,
            &format!("--peer-urls={moved}"),
        ],
    );
    let expected = format!("Member {learner_id:>16} updated in cluster ");
    assert!(updated.starts_with(&expected), "{updated}");
    assert!(ok(&eps, &["member", "list"]).contains(&moved));
    assert_eq!(
        error_line(fails(
            &eps,
            &["member", "update", "1234", &format!("--peer-urls={moved}")]
        )),
        "Error: etcdserver: member not found"
    );
}

/// Grow 3 → 5 and shrink back to 3 (removing two of the original members, the leader among
/// them) while a client keeps writing: every acknowledged write is there at the end.
#[test]
fn growing_to_five_and_shrinking_to_three_under_load_loses_no_acknowledged_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut c = Cluster::start(3);
    let (m4, m5) = (c.add_spec("m4"), c.add_spec("m5"));
    let all: String = (0..5).map(|i| c.endpoint(i)).collect::<Vec<_>>().join(",");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, all) = (stop.clone(), all.clone());
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{i:05}");
                if etcdctl(&all, &["put", &key, "v"]).status.success() {
                    acknowledged.push(key);
                }
                i += 1;
            }
            acknowledged
        })
    };
    for new in [m4, m5] {
        let name = c.members[new].name.clone();
        let peer = format!("--peer-urls={}", c.peer_url(new));
        let added = ok(&c.live_endpoints(), &["member", "add", &name, &peer]);
        c.start_joining(new, &added);
        let ep = c.endpoint(new);
        wait_until(Duration::from_secs(30), || {
            etcdctl(&ep, &["get", "__probe", "--consistency=s"])
                .status
                .success()
                && members(&ep)
                    .iter()
                    .all(|(_, status, _)| status == "started")
        });
    }
    assert_eq!(members(&all).len(), 5);
    let leader = c.leader_index();
    let other = (0..3).find(|i| *i != leader).unwrap();
    for gone in [leader, other] {
        let id = id_of(&all, &c.members[gone].name);
        let stays = (0..5)
            .filter(|i| *i != leader && *i != other)
            .map(|i| c.endpoint(i))
            .collect::<Vec<_>>()
            .join(",");
        ok(&stays, &["member", "remove", &id]);
        // A removed member stops serving and exits, as etcd does.
        assert!(
            c.wait_exit(gone, Duration::from_secs(30)).is_some(),
            "m{} still runs",
            gone + 1
        );
    }
    stop.store(true, Ordering::Relaxed);
    let acknowledged = writer.join().expect("writer");
    assert!(acknowledged.len() > 10, "the writer made no progress");
    let stays: Vec<usize> = (0..5).filter(|i| *i != leader && *i != other).collect();
    let eps = stays
        .iter()
        .map(|i| c.endpoint(*i))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(members(&eps).len(), 3);
    let stored = ok(&eps, &["get", "w", "--prefix", "--keys-only"]);
    let stored: std::collections::BTreeSet<&str> =
        stored.lines().filter(|l| !l.is_empty()).collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|k| !stored.contains(k.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    for i in stays {
        let ep = c.endpoint(i);
        let last = acknowledged.last().unwrap();
        wait_until(Duration::from_secs(10), || {
            serializable_value(&ep, last).as_deref() == Some("v")
        });
    }
}

/// Adds of one peer URL sent at once to every member: exactly one is accepted, the others
/// answer etcd's "Peer URLs already exists" (each is decided again once the one before it is
/// applied), and the table gains one member.
#[test]
fn concurrent_adds_of_one_peer_url_add_one_member() {
    let mut c = Cluster::start(3);
    let spare = c.add_spec("m4");
    let peer = format!("--peer-urls={}", c.peer_url(spare));
    let adds: Vec<_> = (0..3)
        .map(|i| {
            let (ep, peer) = (c.endpoint(i), peer.clone());
            std::thread::spawn(move || etcdctl(&ep, &["member", "add", "m4", &peer]))
        })
        .collect();
    let outputs: Vec<_> = adds.into_iter().map(|t| t.join().expect("add")).collect();
    let accepted = outputs.iter().filter(|o| o.status.success()).count();
    assert_eq!(accepted, 1, "{outputs:?}");
    for refused in outputs.iter().filter(|o| !o.status.success()) {
        assert_eq!(
            error_line(stderr(refused)),
            "Error: etcdserver: Peer URLs already exists"
        );
    }
    assert_eq!(members(&c.live_endpoints()).len(), 4);
}

/// Removing the leader through another member answers the client with success: the leader
/// applies its own removal and lingers (etcd's ten ticks) until the answer is out, then exits.
#[test]
fn removing_the_leader_through_a_follower_answers_the_client() {
    let mut c = Cluster::start(3);
    let leader = c.leader_index();
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let id = id_of(&c.endpoint(follower), &c.members[leader].name);
    let out = ok(&c.endpoint(follower), &["member", "remove", &id]);
    assert!(
        out.contains(&format!("Member {id} removed from cluster")),
        "{out}"
    );
    assert!(
        c.wait_exit(leader, Duration::from_secs(30)).is_some(),
        "the removed leader still runs"
    );
    assert_eq!(members(&c.endpoint(follower)).len(), 2);
}
