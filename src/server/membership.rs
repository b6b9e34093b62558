//! The cluster's member table and how member and cluster ids are derived.
//!
//! Ids follow etcd's scheme so the same flags give the same ids as etcd: a bootstrap member's id
//! is the first 8 bytes (big endian) of SHA-1 over its sorted peer URLs joined with "" plus the
//! cluster token; a member added later (`MemberAdd`) hashes its peer URLs with the Unix time of
//! the request instead of the token ([`added_member_id`]); the cluster id is the first 8 bytes
//! of SHA-1 over the bootstrap member ids (8 bytes each, big endian) and never changes after.
//! The table is part of the replicated state: bootstrapped identically from `--initial-cluster`
//! on every member (a joining member fetches it from the cluster), then changed only by applied
//! raft entries; the ids of removed members are kept, so a removed member is recognised.

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, BTreeSet};

/// One member as `MemberList` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Raft id.
    pub id: u64,
    /// `--name` (empty until the member has started and published it).
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs (empty until published).
    pub client_urls: Vec<String>,
    /// Whether it is a non-voting learner.
    pub is_learner: bool,
}

/// The member table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The cluster's id (fixed at bootstrap).
    pub cluster_id: u64,
    /// Members by id.
    pub members: BTreeMap<u64, Member>,
    /// Ids of members removed from the cluster.
    pub removed: BTreeSet<u64>,
}

/// etcd's member id for these peer URLs and cluster token.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut h = Sha1::new();
    h.update(sorted_urls(peer_urls).concat().as_bytes());
    h.update(token.as_bytes());
    first_u64(&h.finalize())
}

/// etcd's id for a member added at `unix_seconds` with these peer URLs.
pub fn added_member_id(peer_urls: &[String], unix_seconds: i64) -> u64 {
    let mut h = Sha1::new();
    h.update(sorted_urls(peer_urls).concat().as_bytes());
    h.update(unix_seconds.to_string().as_bytes());
    first_u64(&h.finalize())
}

fn sorted_urls(peer_urls: &[String]) -> Vec<&str> {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    urls
}

/// Whether two lists hold the same URLs, in any order.
pub fn same_urls(a: &[String], b: &[String]) -> bool {
    sorted_urls(a) == sorted_urls(b)
}

/// etcd's cluster id for these member ids.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

impl Membership {
    /// The bootstrap table from `--initial-cluster` (`name → peer URLs`).
    pub fn bootstrap(initial: &BTreeMap<String, Vec<String>>, token: &str) -> Membership {
        let members = initial
            .iter()
            .map(|(name, urls)| {
                let id = member_id(urls, token);
                let m = Member {
                    id,
                    name: name.clone(),
                    peer_urls: urls.clone(),
                    ..Default::default()
                };
                (id, m)
            })
            .collect::<BTreeMap<u64, Member>>();
        let ids: Vec<u64> = members.keys().copied().collect();
        Membership {
            cluster_id: cluster_id(&ids),
            members,
            removed: BTreeSet::new(),
        }
    }

    /// The member whose peer URLs are `peer_urls`.
    pub fn find_by_peer_urls(&self, peer_urls: &[String]) -> Option<&Member> {
        self.members
            .values()
            .find(|m| same_urls(&m.peer_urls, peer_urls))
    }

    /// Voting members.
    pub fn voters(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| !m.is_learner)
    }

    /// Ids of all members.
    pub fn ids(&self) -> Vec<u64> {
        self.members.keys().copied().collect()
    }

    /// Records the attributes a member published when it started.
    pub fn set_attributes(&mut self, id: u64, name: &str, client_urls: &[String]) {
        if let Some(m) = self.members.get_mut(&id) {
            m.name = name.to_string();
            m.client_urls = client_urls.to_vec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_independent_of_url_order() {
        let a = member_id(&["http://b:2380".into(), "http://a:2380".into()], "tok");
        let b = member_id(&["http://a:2380".into(), "http://b:2380".into()], "tok");
        assert_eq!(a, b);
        assert_ne!(
            a,
            member_id(&["http://a:2380".into(), "http://b:2380".into()], "other")
        );
        assert_eq!(cluster_id(&[3, 1, 2]), cluster_id(&[1, 2, 3]));
    }

    #[test]
    fn etcd_default_member_id() {
        // etcd's single default member: `--initial-cluster default=http://localhost:2380`,
        // token `etcd-cluster` has member id 8e9e05c52164694d and cluster id cdf818194e3a8c32.
        let id = member_id(&["http://localhost:2380".into()], "etcd-cluster");
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "cdf818194e3a8c32");
    }
}
