//! `etcdctl lock` and `etcdctl elect` (etcd's client-side recipes over Txn, Watch and Lease)
//! against a 3-member detcd: concurrent lock holders never overlap, and leadership passes to
//! the next candidate when the leader's process exits.

#![cfg(not(madsim))]

mod common;
use common::{wait_until, Cluster};
use std::process::{Child, Command};
use std::time::Duration;

#[test]
fn lock_holders_never_overlap() {
    let c = Cluster::start(3);
    let log = c.dir.path().join("critical-section.log");
    let log = log.to_str().unwrap().to_string();
    let script =
        format!("echo start $ETCD_LOCK_KEY >> {log}; sleep 0.7; echo end $ETCD_LOCK_KEY >> {log}");
    let holders: Vec<Child> = (0..3)
        .map(|i| {
            common::spawn_etcdctl(
                &c.endpoint(i),
                &["lock", "the-lock", "--", "sh", "-c", &script],
            )
        })
        .collect();
    for h in holders {
        let out = h.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", common::stderr(&out));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    for pair in lines.chunks(2) {
        let (start, end) = (pair[0], pair[1]);
        assert!(start.starts_with("start the-lock/"), "{text}");
        assert_eq!(
            start.replace("start", "end"),
            end,
            "critical sections overlapped:\n{text}"
        );
    }
}

#[test]
fn elect_hands_over_when_the_leader_exits() {
    let c = Cluster::start(3);
    let first = common::spawn_etcdctl(&c.endpoint(0), &["elect", "the-election", "alpha"]);
    std::thread::sleep(Duration::from_millis(800));
    let second_out = c.dir.path().join("second.out");
    let second = common::spawn_etcdctl_with(
        &c.endpoint(1),
        &["elect", "the-election", "beta"],
        std::fs::File::create(&second_out).unwrap().into(),
    );
    let observer_out = c.dir.path().join("observer.out");
    let observer = common::spawn_etcdctl_with(
        &c.endpoint(2),
        &["elect", "-l", "the-election"],
        std::fs::File::create(&observer_out).unwrap().into(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(observed_leader(&c, "alpha"));
    // The leader's process exits (SIGTERM: etcdctl closes its session, revoking its lease).
    let _ = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    let out = first.wait_with_output().unwrap();
    assert!(
        common::stdout(&out).starts_with("the-election/"),
        "{}",
        common::stdout(&out)
    );
    assert!(
        common::stdout(&out).contains("\nalpha\n"),
        "{}",
        common::stdout(&out)
    );
    wait_until(Duration::from_secs(15), || observed_leader(&c, "beta"));
    // The second candidate learns it leads and prints its key and value.
    wait_until(Duration::from_secs(15), || {
        std::fs::read_to_string(&second_out).is_ok_and(|t| t.contains("\nbeta\n"))
    });
    wait_until(Duration::from_secs(15), || {
        std::fs::read_to_string(&observer_out).is_ok_and(|t| t.contains("\nbeta\n"))
    });
    let text = std::fs::read_to_string(&observer_out).unwrap();
    let alpha = text.find("alpha").expect("observer saw alpha lead");
    let beta = text.find("beta").expect("observer saw beta lead");
    assert!(alpha < beta, "{text}");
    for mut child in [second, observer] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn observed_leader(c: &Cluster, value: &str) -> bool {
    let out = common::etcdctl(
        &c.endpoints(),
        &[
            "get",
            "the-election/",
            "--prefix",
            "--sort-by=CREATE",
            "--limit",
            "1",
            "--print-value-only",
        ],
    );
    common::stdout(&out).trim() == value
}
