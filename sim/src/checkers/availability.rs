//! Availability rules, probed after the chaos phase: with a minority of members down, a write
//! must be acknowledged within a bounded simulated time; with a majority down, no write may be
//! acknowledged; once everyone is back, writes succeed again. Members that refused to start from
//! a damaged disk count as down; more of them than a minority is itself a violation.

use crate::cluster::SimCluster;
use crate::history::{Outcome, Request};
use crate::trace::Trace;
use crate::workload::Client;
use madsim::rand::prelude::*;
use std::time::Duration;

/// Bound for a write to succeed while a minority is down (covers an election or two).
const MINORITY_DOWN_BOUND: Duration = Duration::from_secs(15);
/// Bound for writes to resume after everyone restarts.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

async fn write_until_ok(
    client: &mut Client,
    cluster: &SimCluster,
    key: &str,
    bound: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    let mut n = 0;
    while tokio::time::Instant::now() < deadline {
        n += 1;
        let live: Vec<usize> = (0..cluster.size())
            .filter(|i| cluster.is_serving(*i))
            .collect();
        if live.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let member = live[n % live.len()];
        let request = Request::Put {
            key: key.to_string(),
            value: format!("probe-{n}"),
        };
        if matches!(client.invoke(member, request).await, Outcome::Ok(_)) {
            return true;
        }
    }
    false
}

/// Runs the probes; returns the violations found.
pub async fn probe(
    cluster: &mut SimCluster,
    client: &mut Client,
    trace: &mut Trace,
) -> Vec<String> {
    let mut violations = Vec::new();
    let n = cluster.size();

    // Members that refused to start from damaged disks are down already.
    cluster.wait_started(Duration::from_secs(10)).await;
    let refused = cluster.refused();
    if refused.len() > (n - 1) / 2 {
        // The schedule damages at most one disk, and only with 3 or 5 members: more refusals
        // mean detcd damaged its own durable state.
        violations.push(format!(
            "{} of {n} members refuse to start: {refused:?}",
            refused.len()
        ));
        return violations;
    }
    let tolerated = (n - 1) / 2 - refused.len();
    let mut order: Vec<usize> = (0..n).filter(|i| !refused.contains_key(i)).collect();
    order.shuffle(&mut madsim::rand::thread_rng());
    if let Some(leader) = cluster.leader() {
        order.retain(|i| *i != leader);
        order.insert(0, leader);
    }
    for &i in &order[..tolerated] {
        trace.event(format!("availability: killing m{}", i + 1));
        cluster.kill(i, Some(madsim::rand::random()));
    }
    if !write_until_ok(client, cluster, "k0", MINORITY_DOWN_BOUND).await {
        violations.push(format!("no write acknowledged within {MINORITY_DOWN_BOUND:?} with {tolerated} of {n} members down"));
    }
    let extra = order[tolerated];
    trace.event(format!("availability: killing m{} (no quorum)", extra + 1));
    cluster.kill(extra, Some(madsim::rand::random()));
    for member in (0..n).filter(|i| cluster.is_serving(*i)) {
        let request = Request::Put {
            key: "k1".into(),
            value: format!("no-quorum-{member}"),
        };
        if let Outcome::Ok(_) = client.invoke(member, request).await {
            violations.push(format!(
                "m{} acknowledged a write with a majority down",
                member + 1
            ));
        }
    }
    for &i in &order[..=tolerated] {
        cluster.restart(i);
    }
    trace.event("availability: all restarted".into());
    if !write_until_ok(client, cluster, "k2", RECOVERY_BOUND).await {
        violations.push(format!(
            "writes did not resume within {RECOVERY_BOUND:?} after restarting everyone"
        ));
    }
    violations
}
