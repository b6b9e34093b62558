//! Convergence and applied-log order: after the faults heal, every member must reach the same
//! revision with the same HashKV, and every member's applied history (the MVCC events it kept)
//! must be identical, with revisions never going backwards.

use crate::cluster::SimCluster;
use std::time::Duration;

/// What one member's state looks like at the end.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberState {
    /// Current revision.
    pub revision: i64,
    /// HashKV at that revision.
    pub hash: u32,
    /// (revision, key, is_delete) of every event the member kept (those after `compacted`).
    pub events: Vec<(i64, Vec<u8>, bool)>,
    /// The member's compaction revision (0 = never compacted).
    pub compacted: i64,
}

fn member_state(cluster: &SimCluster, i: usize) -> Option<MemberState> {
    let core = cluster.core(i)?;
    let store = core.state.store();
    let (hash, compacted) = store.hash_kv(0).ok()?;
    let events = store
        .events_since(&[0], &[0], compacted + 1)
        .ok()?
        .into_iter()
        .map(|e| {
            (
                e.kv.mod_revision,
                e.kv.key,
                e.kind == detcd::mvcc::EventKind::Delete,
            )
        })
        .collect();
    Some(MemberState {
        revision: store.current_revision(),
        hash,
        events,
        compacted,
    })
}

/// Waits (up to `limit`) for all serving members (those that did not refuse to start from a
/// damaged disk) to apply the same index, then compares them.
pub async fn check(cluster: &SimCluster, limit: Duration) -> Result<Vec<MemberState>, String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let statuses: Vec<_> = (0..cluster.size())
            .filter_map(|i| cluster.core(i).map(|c| c.status()))
            .collect();
        let serving = (0..cluster.size())
            .filter(|i| cluster.is_serving(*i))
            .count();
        let settled = statuses.len() == serving
            && statuses
                .windows(2)
                .all(|w| w[0].applied == w[1].applied && w[0].commit == w[1].commit)
            && statuses.iter().all(|s| s.applied == s.commit);
        if settled {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "members did not converge within {limit:?}: {statuses:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let states: Vec<MemberState> = (0..cluster.size())
        .filter_map(|i| member_state(cluster, i))
        .collect();
    for (i, s) in states.iter().enumerate() {
        if s.events.windows(2).any(|w| w[1].0 < w[0].0) {
            return Err(format!("m{}: applied revisions go backwards", i + 1));
        }
    }
    for (i, s) in states.iter().enumerate().skip(1) {
        if s.revision != states[0].revision || s.hash != states[0].hash {
            return Err(format!(
                "m{} has revision {} hash {:08x} but m1 has revision {} hash {:08x}",
                i + 1,
                s.revision,
                s.hash,
                states[0].revision,
                states[0].hash
            ));
        }
        if s.events != states[0].events {
            return Err(format!("m{} applied a different history than m1", i + 1));
        }
    }
    Ok(states)
}
