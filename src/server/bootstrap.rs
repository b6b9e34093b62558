//! Who a starting member is, and where its raft log begins.
//!
//! Three cases, decided from what the data dir holds and then from the flags:
//! - **Restart** (the backend holds a member table): the table is the truth, as etcd ignores
//!   `--initial-cluster` once it has data; this member is the one whose peer URLs are
//!   `--initial-advertise-peer-urls`. A data dir restored from a snapshot holds the table it
//!   was restored for, which must match the flags.
//! - **New cluster** (no table, `--initial-cluster-state new`): the table comes from
//!   `--initial-cluster` with etcd's ids, and the raft log starts with a bootstrap snapshot
//!   point at [`BOOTSTRAP_INDEX`] (term 1, every initial member a voter), written to disk before
//!   anything else. The state machine is empty there, so a backend at consistent index 0 is at
//!   that point.
//! - **Join** (no table, `--initial-cluster-state existing`): the table and the cluster id are
//!   fetched from a peer in `--initial-cluster` (`MemberList` on its peer port); this member must
//!   already be in it (added by `MemberAdd`), unstarted, or under the id of its member id record
//!   ([`super::member_id_record`]) if it had joined before and went down before anything reached
//!   its log. Its raft log starts empty, with no configuration:
//!   since every cluster's log starts after [`BOOTSTRAP_INDEX`], the leader cannot replicate
//!   from index 1 and sends a snapshot first (raft-rs's advice for adding members), so the new
//!   member learns the configuration and the state together.

use super::membership::{member_id, Member, Membership};
use super::StartError;
use crate::config::{ClusterState, ServerConfig};
use crate::pb::etcdserverpb::cluster_client::ClusterClient;
use crate::pb::etcdserverpb::MemberListRequest;
use crate::raft::dial::Dialer;
use crate::raft::durable::{DurableLog, Recovered};
use crate::raft::RaftError;
use raft::eraftpb::{ConfState, HardState, Snapshot};
use std::time::Duration;

/// The raft index of a new cluster's bootstrap snapshot point.
pub const BOOTSTRAP_INDEX: u64 = 1;
/// The term of the bootstrap snapshot point.
const BOOTSTRAP_TERM: u64 = 1;
/// How long a joining member keeps asking its peers for the member table.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// This member's identity.
#[derive(Debug)]
pub struct Identity {
    /// Its member id.
    pub me: u64,
    /// The member table to start from.
    pub membership: Membership,
    /// Whether it is joining a running cluster (its raft log starts empty).
    pub joining: bool,
}

/// Finds this member's identity; `stored` is the backend's member table, `fresh_log` whether
/// the WAL is empty, `recorded` the id in the member id record (used when joining).
pub async fn identify(
    config: &ServerConfig,
    stored: Option<&Membership>,
    fresh_log: bool,
    recorded: Option<u64>,
    dialer: &Dialer,
) -> Result<Identity, StartError> {
    let bootstrap = Membership::bootstrap(&config.initial_cluster, &config.token);
    let mismatch = |stored: &Membership| StartError::MemberTableMismatch {
        stored: hex_ids(&stored.ids()),
        flags: hex_ids(&bootstrap.ids()),
    };
    if let Some(table) = stored {
        let Some(me) = table
            .find_by_peer_urls(&config.advertise_peer_urls)
            .map(|m| m.id)
        else {
            if fresh_log {
                return Err(mismatch(table));
            }
            return Err(StartError::NotInTable(config.advertise_peer_urls.join(",")));
        };
        if fresh_log && config.cluster_state == ClusterState::New && table.ids() != bootstrap.ids()
        {
            return Err(mismatch(table));
        }
        return Ok(Identity {
            me,
            membership: table.clone(),
            joining: false,
        });
    }
    if config.cluster_state == ClusterState::New {
        let me = member_id(&config.advertise_peer_urls, &config.token);
        if !bootstrap.members.contains_key(&me) {
            return Err(StartError::NotInCluster(config.name.clone()));
        }
        return Ok(Identity {
            me,
            membership: bootstrap,
            joining: false,
        });
    }
    let (me, membership) = fetch_membership(config, recorded, dialer).await?;
    Ok(Identity {
        me,
        membership,
        joining: true,
    })
}

fn hex_ids(ids: &[u64]) -> Vec<String> {
    ids.iter().map(|id| format!("{id:x}")).collect()
}

/// The id of the member this one is in `table`: the unstarted one (no name yet) with its peer
/// URLs. A member that was removed may still be listed with the same URLs by a peer that has
/// not applied the removal yet; it has a name, so it is never taken for this one.
fn unstarted_with(table: &Membership, peer_urls: &[String]) -> Option<u64> {
    table
        .members
        .values()
        .find(|m| m.name.is_empty() && super::membership::same_urls(&m.peer_urls, peer_urls))
        .map(|m| m.id)
}

/// `recorded`, if `table` lists it with `peer_urls`.
fn recorded_in(table: &Membership, recorded: Option<u64>, peer_urls: &[String]) -> Option<u64> {
    recorded.filter(|id| {
        (table.members.get(id))
            .is_some_and(|m| super::membership::same_urls(&m.peer_urls, peer_urls))
    })
}

/// Asks the peers of `--initial-cluster` (other than this member) for the member table until one
/// answers with a table that lists this member: by the `recorded` id with these peer URLs (a
/// member that went down right after joining, before anything reached its log, may have
/// published its name already), or else unstarted; returns its id and the table.
async fn fetch_membership(
    config: &ServerConfig,
    recorded: Option<u64>,
    dialer: &Dialer,
) -> Result<(u64, Membership), StartError> {
    let own = &config.advertise_peer_urls;
    let urls: Vec<String> = config
        .initial_cluster
        .values()
        .flatten()
        .filter(|u| !own.contains(u))
        .cloned()
        .collect();
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let mut answered = false;
    loop {
        for url in &urls {
            let reply = ask_members(dialer, url).await;
            answered |= reply.is_ok();
            match reply {
                Ok(table) => {
                    match recorded_in(&table, recorded, own).or(unstarted_with(&table, own)) {
                        Some(me) => {
                            let members = table.members.len();
                            tracing::info!(peer = %url, members, "fetched the cluster's member table");
                            return Ok((me, table));
                        }
                        None => {
                            tracing::warn!(peer = %url, "the peer's member table does not list this member as added")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(peer = %url, error = %e, "could not fetch the member table")
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(if answered {
                StartError::NotAdded(own.join(","))
            } else {
                StartError::NoPeerAnswered(urls.join(","))
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn ask_members(
    dialer: &Dialer,
    url: &str,
) -> Result<Membership, Box<dyn std::error::Error + Send + Sync>> {
    let endpoint = dialer.endpoint(url)?.configure(|e| {
        e.connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(3))
    });
    let mut client = ClusterClient::new(endpoint.connect().await?);
    let reply = client
        .member_list(MemberListRequest {
            linearizable: false,
        })
        .await?
        .into_inner();
    let members = reply
        .members
        .into_iter()
        .map(|m| {
            let member = Member {
                id: m.id,
                name: m.name,
                peer_urls: m.peer_ur_ls,
                client_urls: m.client_ur_ls,
                is_learner: m.is_learner,
            };
            (m.id, member)
        })
        .collect();
    Ok(Membership {
        cluster_id: reply.header.map_or(0, |h| h.cluster_id),
        members,
        removed: Default::default(),
    })
}

/// For a new cluster's first start: writes the bootstrap snapshot point to `durable` and puts
/// it in `recovered`, as if it had been read back.
pub fn write_bootstrap_point(
    durable: &mut DurableLog,
    recovered: &mut Recovered,
    voters: Vec<u64>,
) -> Result<(), RaftError> {
    let mut snapshot = Snapshot::default();
    let meta = snapshot.mut_metadata();
    meta.index = BOOTSTRAP_INDEX;
    meta.term = BOOTSTRAP_TERM;
    meta.set_conf_state(ConfState::from((voters, vec![])));
    let hard_state = HardState {
        term: BOOTSTRAP_TERM,
        commit: BOOTSTRAP_INDEX,
        ..Default::default()
    };
    durable.save_snapshot(&snapshot, &hard_state, &[])?;
    recovered.snapshot = Some(snapshot);
    recovered.hard_state = hard_state;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str, url: &str) -> (u64, Member) {
        let member = Member {
            id,
            name: name.into(),
            peer_urls: vec![url.into()],
            ..Default::default()
        };
        (id, member)
    }

    /// A joiner killed after publishing its name rejoins under its recorded id; without a
    /// record, only an unstarted entry with its URLs is taken (never a removed member's).
    #[test]
    fn a_rejoining_member_is_found_by_its_recorded_id() {
        let own = vec!["http://10.0.0.1:2380".to_string()];
        let table = Membership {
            members: [
                member(7, "m1", "http://10.0.0.1:2380"),
                member(8, "m2", "http://10.0.0.2:2380"),
            ]
            .into(),
            ..Default::default()
        };
        assert_eq!(recorded_in(&table, Some(7), &own), Some(7));
        assert_eq!(recorded_in(&table, Some(8), &own), None, "other URLs");
        assert_eq!(recorded_in(&table, Some(9), &own), None, "not listed");
        assert_eq!(recorded_in(&table, None, &own), None);
        assert_eq!(
            unstarted_with(&table, &own),
            None,
            "started: could be a removed one"
        );
        let mut fresh = table.clone();
        fresh
            .members
            .insert(9, member(9, "", "http://10.0.0.1:2380").1);
        assert_eq!(unstarted_with(&fresh, &own), Some(9));
    }
}
