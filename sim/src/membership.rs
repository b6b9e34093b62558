//! Membership changes under the faults: etcd's replace-a-dead-member procedure, run by an
//! operator node through the real Cluster API while the workload and the other faults go on.
//!
//! A member is killed for good, removed (`MemberRemove` on any live member, retried until
//! accepted), a member with the same peer URL is added (`MemberAdd`), and the slot restarts as
//! that new member: an empty data dir, `--initial-cluster-state existing`, so it fetches the
//! member table, receives a snapshot from the leader and catches up. Every checker keeps
//! running across it; [`check_converged`] then requires that every serving member ends with
//! the same member table, that it lists exactly the serving slots' current members, and that
//! no removed member is in it.
//!
//! A member may instead be removed while it runs (the leader among others): it must notice its
//! removal, stop serving and exit by itself, as etcd does, within [`EXIT_PATIENCE`].
//!
//! Which seeds replace a member, and when, is drawn from the seed with a generator of its own
//! ([`plan`]), so seeds that replace nothing run exactly as before this module existed.

use crate::cluster::{member_channel, SimCluster};
use crate::trace::Trace;
use detcd::pb::etcdserverpb::cluster_client::ClusterClient;
use detcd::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::request_op::Request as Op;
use detcd::pb::etcdserverpb::{
    Compare, MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    PutRequest, RequestOp, TxnRequest,
};
use madsim::runtime::NodeHandle;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the operator keeps retrying one membership call.
const CALL_PATIENCE: Duration = Duration::from_secs(20);

/// Which member a replacement takes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Victim {
    /// The member in this slot.
    Slot(usize),
    /// Whichever member leads when the replacement starts.
    Leader,
}

/// A replacement due before fault step `before_step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// The fault step it runs before.
    pub before_step: usize,
    /// The member replaced.
    pub victim: Victim,
    /// Removed while it runs (it must notice and exit by itself), instead of killed first.
    pub live: bool,
    /// The new member joins as a learner and is promoted once it is in sync.
    pub learner: bool,
    /// Runs while the fault step it precedes is in force (instead of before it).
    pub with_fault: bool,
}

/// splitmix64: the plan's own deterministic generator.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Which replacements seed `seed` makes in a cluster of `members` (none for fewer than three:
/// removing one of two leaves no quorum to add the new one): two in five seeds replace one
/// member during the first few fault steps. Of those, a quarter replace a dead member (etcd's
/// procedure), a quarter remove a running member, and half remove the running leader; a third
/// add the new member as a learner and promote it; half run while a fault step is in force.
pub fn plan(seed: u64, members: usize) -> Vec<Replacement> {
    let r = mix(seed ^ 0x6d65_6d62_6572_7368);
    if members < 3 || r % 5 >= 2 {
        return Vec::new();
    }
    let slot = Victim::Slot((mix(r ^ 1) % members as u64) as usize);
    let (victim, live) = match mix(r ^ 2) % 4 {
        0 => (slot, false),
        1 => (slot, true),
        _ => (Victim::Leader, true),
    };
    vec![Replacement {
        before_step: 1 + (mix(r) % 4) as usize,
        victim,
        live,
        learner: mix(r ^ 3).is_multiple_of(3),
        with_fault: mix(r ^ 4).is_multiple_of(2),
    }]
}

/// Clients writing to a member while it is removed live.
const LOAD_WRITERS: usize = 8;

/// The fsync time of a member removed live, while it is removed.
const LOAD_SYNC_LATENCY: Duration = Duration::from_millis(2);

/// How long a member removed while it runs may take to notice and exit.
const EXIT_PATIENCE: Duration = Duration::from_secs(30);

/// What a replacement did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The removed member's id, if the removal was accepted.
    pub removed: Option<u64>,
    /// A member removed while it ran that did not exit (a checker failure).
    pub failure: Option<String>,
}

/// Runs replacement `plan` (the `replacement`-th): the victim is killed and removed (etcd's
/// replace-a-dead-member procedure) or removed while it runs, in which case it must stop
/// serving and exit by itself; then a fresh member takes its slot.
pub async fn replace_member(
    cluster: &SimCluster,
    operator: &NodeHandle,
    plan: Replacement,
    replacement: usize,
    trace: &mut Trace,
) -> Outcome {
    // Members restarted by the last fault step get the time to start serving again.
    cluster.wait_started(Duration::from_secs(10)).await;
    let victim = match plan.victim {
        Victim::Slot(i) => i,
        Victim::Leader => match cluster.leader() {
            Some(i) => i,
            None => {
                trace.event("replace the leader: no leader; skipped".into());
                return Outcome::default();
            }
        },
    };
    let Some(old_id) = cluster.core(victim).map(|c| c.member_id) else {
        trace.event(format!("replace m{}: not running; skipped", victim + 1));
        return Outcome::default();
    };
    // An operator checks the rest of the cluster is healthy first: a removal with another
    // member down can leave no quorum for the add (or, committed late, none at all).
    let others: Vec<usize> = (0..cluster.size()).filter(|i| *i != victim).collect();
    if let Some(down) = others.iter().find(|i| cluster.core(**i).is_none()) {
        trace.event(format!(
            "replace m{}: m{} is down; skipped",
            victim + 1,
            down + 1
        ));
        return Outcome::default();
    }
    if plan.live {
        let role = if plan.victim == Victim::Leader {
            " (the leader)"
        } else {
            ""
        };
        trace.event(format!(
            "replace m{}{role}: removing {old_id:x} live",
            victim + 1
        ));
    } else {
        trace.event(format!("replace m{}: killing {old_id:x}", victim + 1));
        cluster.kill(victim, None);
    }
    // Writes keep arriving at the member while it is removed, and queue up during its fsyncs:
    // the leader's proposals then meet its own removal in one raft round (real processes found
    // raft-rs unwrapping the removed leader's progress there).
    let load_stop = Arc::new(AtomicBool::new(false));
    if plan.live {
        // A real disk's fsync time, during which the writes queue up for the next raft round.
        let root = cluster.data_dir(victim).join("member");
        let faults = detcd::io::DiskFaults {
            sync_latency: LOAD_SYNC_LATENCY,
            ..Default::default()
        };
        detcd::io::set_faults(&root, faults);
        for writer in 0..LOAD_WRITERS {
            operator.spawn(write_until(victim, writer, load_stop.clone()));
        }
    }
    let removed = operator
        .spawn(call_until_accepted(
            others.clone(),
            move |mut client| async move {
                let r = client
                    .member_remove(MemberRemoveRequest { id: old_id })
                    .await;
                // NotFound: an earlier attempt was applied, its answer lost.
                done_or(r, |s| s.code() == tonic::Code::NotFound)
            },
        ))
        .await
        .expect("operator task");
    load_stop.store(true, Ordering::Relaxed);
    if plan.live {
        let root = cluster.data_dir(victim).join("member");
        detcd::io::set_faults(&root, detcd::io::DiskFaults::default());
    }
    if let Err(e) = removed {
        trace.event(format!(
            "replace m{}: remove failed ({e}); restarting it",
            victim + 1
        ));
        cluster.restart(victim);
        return Outcome::default();
    }
    let mut outcome = Outcome {
        removed: Some(old_id),
        failure: None,
    };
    if plan.live {
        if !wait_exit(cluster, victim).await {
            outcome.failure = Some(format!(
                "m{} ({old_id:x}) was removed but still runs after {EXIT_PATIENCE:?}",
                victim + 1
            ));
        }
        trace.event(format!(
            "replace m{}: the removed member exited",
            victim + 1
        ));
        cluster.kill(victim, None);
    }
    add_replacement(
        cluster,
        operator,
        &others,
        victim,
        replacement,
        plan.learner,
        trace,
    )
    .await;
    outcome
}

/// Adds a member with slot `victim`'s peer URL (as a learner, then promoted once it is in
/// sync, when `learner`) and starts the slot as that new member.
async fn add_replacement(
    cluster: &SimCluster,
    operator: &NodeHandle,
    others: &[usize],
    victim: usize,
    replacement: usize,
    learner: bool,
    trace: &mut Trace,
) {
    let peer = cluster.peer_url(victim);
    let wanted = peer.clone();
    let added = operator
        .spawn(call_until_accepted(others.to_vec(), move |mut client| {
            let peer = peer.clone();
            async move {
                let request = MemberAddRequest {
                    peer_ur_ls: vec![peer.clone()],
                    is_learner: learner,
                };
                match client.member_add(request).await {
                    Ok(r) => Ok(r.into_inner().member.map_or(0, |m| m.id)),
                    // An earlier attempt was applied, its answer lost: look the member up.
                    Err(s) if s.message() == "etcdserver: Peer URLs already exists" => {
                        let list = client.member_list(MemberListRequest::default()).await?;
                        let members = list.into_inner().members;
                        let found = members.iter().find(|m| m.peer_ur_ls.contains(&peer));
                        Ok(found.map_or(0, |m| m.id))
                    }
                    Err(s) => Err(s),
                }
            }
        }))
        .await
        .expect("operator task");
    let new_id = match added {
        Ok(id) => id,
        Err(e) => {
            let slot = victim + 1;
            trace.event(format!("replace m{slot}: add failed ({e}); left out"));
            return;
        }
    };
    let kind = if learner { "a learner" } else { "a voter" };
    trace.event(format!(
        "replace m{}: removed and added {new_id:x} ({wanted}) as {kind}; joining",
        victim + 1
    ));
    cluster.restart_replaced(victim, replacement);
    if !learner {
        return;
    }
    // Promotion is refused until the learner's log is close enough to the leader's.
    let promoted = operator
        .spawn(call_until_accepted(
            others.to_vec(),
            move |mut client| async move {
                let r = client
                    .member_promote(MemberPromoteRequest { id: new_id })
                    .await;
                // An earlier attempt was applied, its answer lost.
                done_or(r, |s| {
                    s.message() == "etcdserver: can only promote a learner member"
                })
            },
        ))
        .await
        .expect("operator task");
    match promoted {
        Ok(()) => trace.event(format!("replace m{}: learner promoted", victim + 1)),
        Err(e) => trace.event(format!(
            "replace m{}: promotion failed ({e}); stays a learner",
            victim + 1
        )),
    }
}

/// Sends `writer`'s write transactions to member `member` until `stop`. Each goes through
/// raft like any write, but its compare never holds and its failure branch is empty, so no
/// revision changes under the linearizability checker's model.
async fn write_until(member: usize, writer: usize, stop: Arc<AtomicBool>) {
    let mut kv = KvClient::new(member_channel(member));
    let key: bytes::Bytes = format!("membership/load/{writer}").into_bytes().into();
    while !stop.load(Ordering::Relaxed) {
        let txn = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Version as i32,
                key: key.clone(),
                target_union: Some(TargetUnion::Version(i64::MAX)),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: key.clone(),
                    ..Default::default()
                })),
            }],
            failure: vec![],
        };
        if tokio::time::timeout(Duration::from_secs(1), kv.txn(txn))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until member `victim` has ended as removed (or refuses to start for want of a table
/// entry, if a crash came in between); false if it still runs after [`EXIT_PATIENCE`].
async fn wait_exit(cluster: &SimCluster, victim: usize) -> bool {
    let deadline = tokio::time::Instant::now() + EXIT_PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if cluster.refused().contains_key(&victim) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A membership call's answer, with the refusals `already_done` recognises (an earlier
/// attempt was applied, its answer lost) counted as success.
fn done_or<T>(
    answer: Result<tonic::Response<T>, tonic::Status>,
    already_done: impl Fn(&tonic::Status) -> bool,
) -> Result<(), tonic::Status> {
    match answer {
        Ok(_) => Ok(()),
        Err(s) if already_done(&s) => Ok(()),
        Err(s) => Err(s),
    }
}

/// Sends `call` to the members in turn until one accepts it, for up to [`CALL_PATIENCE`].
async fn call_until_accepted<F, Fut, T>(members: Vec<usize>, call: F) -> Result<T, String>
where
    F: Fn(ClusterClient<tonic::transport::Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + CALL_PATIENCE;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        for &i in &members {
            let client = ClusterClient::new(member_channel(i));
            match tokio::time::timeout(Duration::from_secs(3), call(client)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(status)) => last = status.message().to_string(),
                Err(_) => last = "timed out".into(),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(last)
}

/// Every serving member's member table is the same, and it names exactly the serving members
/// (and the members that are down), never a removed one; `removed` are the ids replaced.
pub fn check_converged(cluster: &SimCluster, removed: &BTreeSet<u64>) -> Result<(), String> {
    let tables: Vec<(usize, detcd::server::membership::Membership)> = (0..cluster.size())
        .filter_map(|i| cluster.core(i).map(|c| (i, c.state.membership().clone())))
        .collect();
    let Some((first, table)) = tables.first() else {
        return Ok(());
    };
    for (i, other) in &tables[1..] {
        if other.members != table.members {
            return Err(format!(
                "m{} and m{} disagree on the member table: {:?} vs {:?}",
                first + 1,
                i + 1,
                table.ids(),
                other.ids()
            ));
        }
    }
    if let Some(id) = table.ids().iter().find(|id| removed.contains(id)) {
        return Err(format!(
            "removed member {id:x} is still in the member table"
        ));
    }
    for (i, _) in &tables {
        let id = cluster.core(*i).map_or(0, |c| c.member_id);
        if !table.members.contains_key(&id) {
            return Err(format!(
                "serving member m{} ({id:x}) is not in the table",
                i + 1
            ));
        }
    }
    Ok(())
}
