//! Membership changes: etcd's rules for accepting MemberAdd / Remove / Update / Promote, the raft
//! conf change each becomes, and how an applied change updates the member table.
//!
//! Every change is one raft ConfChangeV2 with a single step whose context carries the member as
//! the change describes it ([`ChangeContext`]): add → `AddNode` / `AddLearnerNode` for a new id,
//! remove → `RemoveNode`, promote → `AddNode` for a learner, update → the member's own role
//! again (a no-op for raft) with its new peer URLs. The member table follows the configuration
//! raft adopted ([`apply_change`]), so the two can never disagree, even for a change raft
//! refused.
//!
//! The checks run on the member that takes the request, against its view of the table and of
//! which peers it has heard from lately, as etcd's do (`--strict-reconfig-check`, on by
//! default: refuse a change that would leave the started voters without quorum).

use super::membership::{Member, Membership};
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState};
use serde::{Deserialize, Serialize};

/// Most learners a cluster may have (etcd's `maxLearners`).
pub const MAX_LEARNERS: usize = 1;

/// A learner is promotable once its log matches at least this share of the leader's (etcd's
/// `readyPercent`).
pub const LEARNER_READY_RATIO: f64 = 0.9;

/// A membership request etcd refuses, with etcd's texts and gRPC codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// A peer URL that does not parse as `scheme://host:port`.
    #[error("etcdserver: given member URLs are invalid")]
    BadUrls,
    /// Another member already has one of these peer URLs.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// The id is already a member.
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    /// The cluster already has [`MAX_LEARNERS`] learners.
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// The change would leave the started voters without quorum.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    /// Promote of a member that is not a learner.
    #[error("etcdserver: can only promote a learner member")]
    NotLearner,
    /// Promote of a learner whose log lags the leader's.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// Not every voter is connected (a voter add under `--strict-reconfig-check`).
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
}

impl MembershipError {
    /// The gRPC code etcd answers this error with.
    pub fn code(&self) -> tonic::Code {
        match self {
            MembershipError::BadUrls => tonic::Code::InvalidArgument,
            MembershipError::Unhealthy => tonic::Code::Unavailable,
            // etcd 3.4 has no gRPC error for it: clients see the bare error (checked beside
            // etcd 3.4.23 with the etcd-client crate's test_cluster).
            MembershipError::NotEnoughStarted => tonic::Code::Unknown,
            _ => tonic::Code::FailedPrecondition,
        }
    }
}

/// What a conf change's context carries: the member as the change leaves it (name and client
/// URLs of a member already in the table are kept).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeContext {
    /// The member's id.
    pub id: u64,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
}

/// How the member taking a request sees its peers.
pub trait PeerView {
    /// Whether this member has heard from `id` lately (itself always counts).
    fn active(&self, id: u64) -> bool;
}

impl<F: Fn(u64) -> bool> PeerView for F {
    fn active(&self, id: u64) -> bool {
        self(id)
    }
}

/// Whether `url` is a URL etcd accepts as a peer URL (`http(s)://host:port`).
pub fn valid_peer_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let host_port = rest.strip_suffix('/').unwrap_or(rest);
    matches!(scheme, "http" | "https" | "unix" | "unixs")
        && !host_port.contains('/')
        && host_port
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

fn check_urls(
    table: &Membership,
    peer_urls: &[String],
    except: Option<u64>,
) -> Result<(), MembershipError> {
    if peer_urls.is_empty() || !peer_urls.iter().all(|u| valid_peer_url(u)) {
        return Err(MembershipError::BadUrls);
    }
    let taken = table
        .members
        .values()
        .filter(|m| Some(m.id) != except)
        .any(|m| m.peer_urls.iter().any(|u| peer_urls.contains(u)));
    if taken {
        return Err(MembershipError::PeerUrlExists);
    }
    Ok(())
}

/// Checks a MemberAdd of `id` and returns its conf change.
pub fn add(
    table: &Membership,
    id: u64,
    peer_urls: &[String],
    is_learner: bool,
    strict: bool,
    peers: &dyn PeerView,
) -> Result<ConfChangeV2, MembershipError> {
    check_urls(table, peer_urls, None)?;
    if table.members.contains_key(&id) || table.removed.contains(&id) {
        return Err(MembershipError::MemberExists);
    }
    if is_learner {
        if table.members.values().filter(|m| m.is_learner).count() >= MAX_LEARNERS {
            return Err(MembershipError::TooManyLearners);
        }
    } else if strict {
        // etcd: with one more voter, the started ones must still make a quorum (a second
        // member may always join a lone one), and every voter must be connected.
        let voters = table.voters().count() + 1;
        let started = table.voters().filter(|m| !m.name.is_empty()).count();
        if !(started == 1 && voters == 2) && started < voters / 2 + 1 {
            return Err(MembershipError::NotEnoughStarted);
        }
        if !table.voters().all(|m| peers.active(m.id)) {
            return Err(MembershipError::Unhealthy);
        }
    }
    let kind = if is_learner {
        ConfChangeType::AddLearnerNode
    } else {
        ConfChangeType::AddNode
    };
    Ok(change(kind, id, peer_urls))
}

/// Checks a MemberRemove of `id` (by the member `me`) and returns its conf change.
pub fn remove(
    table: &Membership,
    id: u64,
    me: u64,
    strict: bool,
    peers: &dyn PeerView,
) -> Result<ConfChangeV2, super::error::RequestError> {
    let member = table
        .members
        .get(&id)
        .ok_or(super::error::RequestError::MemberNotFound)?;
    if strict && !member.is_learner {
        let others: Vec<&Member> = table.voters().filter(|m| m.id != id).collect();
        let started = others.iter().filter(|m| !m.name.is_empty()).count();
        if started < others.len() / 2 + 1 {
            return Err(MembershipError::NotEnoughStarted.into());
        }
        // Removing a member that is down cannot hurt the quorum that is up; otherwise the
        // active voters left must still make a quorum.
        if id == me || peers.active(id) {
            let voters = table.voters().count();
            let active = table.voters().filter(|m| peers.active(m.id)).count();
            if active - 1 < 1 + (voters - 1) / 2 {
                return Err(MembershipError::Unhealthy.into());
            }
        }
    }
    Ok(change(ConfChangeType::RemoveNode, id, &member.peer_urls))
}

/// Checks a MemberUpdate of `id` to `peer_urls` and returns its conf change.
pub fn update(
    table: &Membership,
    id: u64,
    peer_urls: &[String],
) -> Result<ConfChangeV2, super::error::RequestError> {
    let member = table
        .members
        .get(&id)
        .ok_or(super::error::RequestError::MemberNotFound)?;
    check_urls(table, peer_urls, Some(id))?;
    let kind = if member.is_learner {
        ConfChangeType::AddLearnerNode
    } else {
        ConfChangeType::AddNode
    };
    Ok(change(kind, id, peer_urls))
}

/// Checks a MemberPromote of `id` against the leader's progress and returns its conf change.
pub fn promote(
    table: &Membership,
    id: u64,
    progress: &crate::raft::LeaderProgress,
) -> Result<ConfChangeV2, super::error::RequestError> {
    let member = table
        .members
        .get(&id)
        .ok_or(super::error::RequestError::MemberNotFound)?;
    if !member.is_learner {
        return Err(MembershipError::NotLearner.into());
    }
    let matched = progress.matched.get(&id).copied().unwrap_or(0) as f64;
    if progress.last_index == 0 || matched / (progress.last_index as f64) < LEARNER_READY_RATIO {
        return Err(MembershipError::LearnerNotReady.into());
    }
    Ok(change(ConfChangeType::AddNode, id, &member.peer_urls))
}

fn change(kind: ConfChangeType, id: u64, peer_urls: &[String]) -> ConfChangeV2 {
    let mut single = ConfChangeSingle::default();
    single.set_change_type(kind);
    single.node_id = id;
    let mut cc = ConfChangeV2::default();
    cc.set_changes(vec![single].into());
    let context = ChangeContext {
        id,
        peer_urls: peer_urls.to_vec(),
    };
    cc.context = bincode::serde::encode_to_vec(&context, bincode::config::standard())
        .expect("a change context always encodes")
        .into();
    cc
}

/// Updates `table` for an applied change: each member the change names ends as raft's
/// configuration `conf` has it (voter, learner or gone), with the peer URLs the change carries.
pub fn apply_change(table: &mut Membership, change: &ConfChangeV2, conf: &ConfState) {
    let context: Option<ChangeContext> =
        bincode::serde::decode_from_slice(&change.context, bincode::config::standard())
            .ok()
            .map(|(c, _)| c);
    for single in change.get_changes() {
        let id = single.node_id;
        let voter = conf.voters.contains(&id);
        let learner = conf.learners.contains(&id);
        if !voter && !learner {
            #[cfg(madsim)]
            if crate::fault::active(crate::fault::Bug::MemberTableKeepsRemoved) {
                continue;
            }
            if table.members.remove(&id).is_some() {
                table.removed.insert(id);
            }
            continue;
        }
        let member = table.members.entry(id).or_insert_with(|| Member {
            id,
            ..Default::default()
        });
        member.is_learner = learner;
        if let Some(ctx) = context.as_ref().filter(|c| c.id == id) {
            member.peer_urls = ctx.peer_urls.clone();
        }
    }
}

#[cfg(test)]
#[path = "reconfig_tests.rs"]
mod tests;
