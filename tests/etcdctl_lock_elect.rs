//! `etcdctl lock` and `etcdctl elect` (etcd's client-side recipes over Txn, Watch and Lease)
//! against a 3-member detcd: concurrent lock holders never overlap, and leadership passes to
//! the next candidate when the leader's process exits.

#![cfg(not(madsim))]

mod common;
use common::{wait_until, Cluster};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn etcdctl_child(endpoints: &str, args: &[&str]) -> Child {
    Command::new(std::env::var("ETCDCTL").unwrap_or_else(|_| "etcdctl".into()))
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl")
}

#[test]
fn lock_holders_never_overlap() {
    let c = Cluster::start(3);
    let log = c.dir.path().join("critical-section.log");
    let log = log.to_str().unwrap().to_string();
    let script =
        format!("echo start $ETCD_LOCK_KEY >> {log}; sleep 0.7; echo end $ETCD_LOCK_KEY >> {log}");
    let holders: Vec<Child> = (0..3)
        .map(|i| {
            etcdctl_child(
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
    let first = etcdctl_child(&c.endpoint(0), &["elect", "the-election", "alpha"]);
    std::thread::sleep(Duration::from_millis(800));
    let second = etcdctl_child(&c.endpoint(1), &["elect", "the-election", "beta"]);
    let observer = etcdctl_child(&c.endpoint(2), &["elect", "-l", "the-election"]);
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
    std::thread::sleep(Duration::from_millis(500));
    let (mut second, mut observer) = (second, observer);
    let _ = second.kill();
    let _ = observer.kill();
    let text = common::stdout(&observer.wait_with_output().unwrap());
    let alpha = text.find("alpha").expect("observer saw alpha lead");
    let beta = text.find("beta").expect("observer saw beta lead");
    assert!(alpha < beta, "{text}");
    let campaign = common::stdout(&second.wait_with_output().unwrap());
    assert!(
        campaign.contains("\nbeta\n"),
        "the second candidate became leader: {campaign}"
    );
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
