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
//! Which seeds replace a member, and when, is drawn from the seed with a generator of its own
//! ([`plan`]), so seeds that replace nothing run exactly as before this module existed.

use crate::cluster::{member_channel, SimCluster};
use crate::trace::Trace;
use detcd::pb::etcdserverpb::cluster_client::ClusterClient;
use detcd::pb::etcdserverpb::{MemberAddRequest, MemberRemoveRequest};
use madsim::runtime::NodeHandle;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long the operator keeps retrying one membership call.
const CALL_PATIENCE: Duration = Duration::from_secs(20);

/// A replacement due before fault step `before_step` of member `member`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// The fault step it runs before.
    pub before_step: usize,
    /// The member replaced.
    pub member: usize,
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
/// member during the first few fault steps.
pub fn plan(seed: u64, members: usize) -> Vec<Replacement> {
    let r = mix(seed ^ 0x6d65_6d62_6572_7368);
    if members < 3 || r % 5 >= 2 {
        return Vec::new();
    }
    vec![Replacement {
        before_step: 1 + (mix(r) % 4) as usize,
        member: (mix(r ^ 1) % members as u64) as usize,
    }]
}

/// Runs etcd's replace-a-dead-member procedure on slot `victim`; `replacement` numbers it.
/// Returns the removed member's id if the removal was accepted.
pub async fn replace_member(
    cluster: &mut SimCluster,
    operator: &NodeHandle,
    victim: usize,
    replacement: usize,
    trace: &mut Trace,
) -> Option<u64> {
    let Some(old_id) = cluster.core(victim).map(|c| c.member_id) else {
        trace.event(format!("replace m{}: not running; skipped", victim + 1));
        return None;
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
        return None;
    }
    trace.event(format!("replace m{}: killing {old_id:x}", victim + 1));
    cluster.kill(victim, None);
    let removed = operator
        .spawn(call_until_accepted(
            others.clone(),
            move |mut client| async move {
                let r = client
                    .member_remove(MemberRemoveRequest { id: old_id })
                    .await;
                // NotFound: an earlier attempt was applied, its answer lost.
                r.map(|_| ()).or_else(|s| match s.code() {
                    tonic::Code::NotFound => Ok(()),
                    _ => Err(s),
                })
            },
        ))
        .await
        .expect("operator task");
    if let Err(e) = removed {
        trace.event(format!(
            "replace m{}: remove failed ({e}); restarting it",
            victim + 1
        ));
        cluster.restart(victim);
        return None;
    }
    let peer = cluster.peer_url(victim);
    let added = operator
        .spawn(call_until_accepted(others, move |mut client| {
            let peer = peer.clone();
            async move {
                let request = MemberAddRequest {
                    peer_ur_ls: vec![peer],
                    is_learner: false,
                };
                let r = client.member_add(request).await;
                // An earlier attempt was applied, its answer lost.
                r.map(|_| ()).or_else(|s| match s.message() {
                    "etcdserver: Peer URLs already exists" => Ok(()),
                    _ => Err(s),
                })
            }
        }))
        .await
        .expect("operator task");
    match added {
        Ok(()) => {
            trace.event(format!(
                "replace m{}: removed and added; joining",
                victim + 1
            ));
            cluster.restart_replaced(victim, replacement);
        }
        Err(e) => trace.event(format!(
            "replace m{}: add failed ({e}); left out",
            victim + 1
        )),
    }
    Some(old_id)
}

/// Sends `call` to the members in turn until one accepts it, for up to [`CALL_PATIENCE`].
async fn call_until_accepted<F, Fut>(members: Vec<usize>, call: F) -> Result<(), String>
where
    F: Fn(ClusterClient<tonic::transport::Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + CALL_PATIENCE;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        for &i in &members {
            let client = ClusterClient::new(member_channel(i));
            match tokio::time::timeout(Duration::from_secs(3), call(client)).await {
                Ok(Ok(())) => return Ok(()),
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
