//! A member started with the wrong `--initial-cluster-token` belongs to another cluster (other
//! member ids, another cluster id): the other members must reject its raft messages, and both
//! sides must say so in their logs with both cluster ids — once per peer, not once per message.

#![cfg(not(madsim))]

mod common;
use common::{wait_until, Cluster, TOKEN};
use std::time::Duration;

/// The cluster id member `i` logged at start-up (`cluster_id=...`).
fn logged_cluster_id(c: &Cluster, i: usize) -> String {
    let mut id = None;
    wait_until(Duration::from_secs(10), || {
        id = c.log(i).split("cluster_id=").nth(1).map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_hexdigit)
                .collect::<String>()
        });
        id.is_some()
    });
    id.expect("cluster id in the log")
}

#[test]
fn a_member_with_another_token_is_rejected_and_both_sides_log_the_cluster_ids() {
    let mut c = Cluster::new(3, &[], &[]);
    c.start_member(0);
    c.start_member(1);
    c.start_member_with(2, "another-token", &["--log-level", "debug"]);
    assert_ne!(TOKEN, "another-token");
    c.wait_writable();
    let (good, bad) = (logged_cluster_id(&c, 0), logged_cluster_id(&c, 2));
    assert_ne!(good, bad);

    // The receiving side: m1 rejects m3's messages, m3 rejects m1's and m2's.
    let receiver = |local: &str, remote: &str| {
        format!("rejected peer message: cluster ID mismatch (local {local}, remote {remote})")
    };
    wait_until(Duration::from_secs(20), || {
        c.log(0).contains(&receiver(&good, &bad)) && c.log(2).contains(&receiver(&bad, &good))
    });
    // The sending side: m3 hears from both peers that they refused it, with both ids.
    let sender = format!("cluster ID mismatch: local {good}, remote {bad}");
    wait_until(Duration::from_secs(20), || {
        c.log(2)
            .lines()
            .filter(|l| l.contains("peer rejected our raft messages") && l.contains(&sender))
            .count()
            == 2
    });

    // After many more rejected reconnects (m3 logs each at debug level), still one line per peer.
    let reconnects = |c: &Cluster| c.log(2).matches("peer stream closed").count();
    let seen = reconnects(&c);
    wait_until(Duration::from_secs(20), || reconnects(&c) >= seen + 20);
    let log = c.log(2);
    let lines = |text: &'static str| log.lines().filter(move |l| l.contains(text));
    assert_eq!(lines("peer rejected our raft messages").count(), 2, "{log}");
    // Only the peers that sent to m3 (the leader; candidates) were refused: once each.
    let senders: Vec<&str> = lines("rejected peer message")
        .filter_map(|l| l.split("from=").nth(1))
        .collect();
    let distinct: std::collections::BTreeSet<&&str> = senders.iter().collect();
    assert!(
        !senders.is_empty() && distinct.len() == senders.len(),
        "{log}"
    );
}
