//! The replicated lease table: which leases exist, their granted TTL, and which keys are
//! attached to each. Changed only by applied raft entries, so every member holds the same
//! table; it is part of the state-machine snapshot, so leases survive restarts.
//!
//! Invariant: a key is attached to at most one lease, the lease its latest value carries; a
//! revoked lease's keys are deleted in the same revision as the revocation.

use std::collections::{BTreeMap, BTreeSet};

/// One lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    /// Lease id (positive).
    pub id: i64,
    /// Granted time-to-live in seconds.
    pub ttl: i64,
    /// Keys whose current value carries this lease.
    pub keys: BTreeSet<Vec<u8>>,
}

/// Lease table errors.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LeaseError {
    /// Grant with an id already in use.
    #[error("lease already exists")]
    Exists,
    /// The lease does not exist (never granted, revoked or expired).
    #[error("lease not found")]
    NotFound,
}

/// The lease table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lessor {
    leases: BTreeMap<i64, Lease>,
}

impl Lessor {
    /// Grants lease `id` with `ttl` seconds.
    pub fn grant(&mut self, id: i64, ttl: i64) -> Result<&Lease, LeaseError> {
        if self.leases.contains_key(&id) {
            return Err(LeaseError::Exists);
        }
        Ok(self.leases.entry(id).or_insert(Lease {
            id,
            ttl,
            keys: BTreeSet::new(),
        }))
    }

    /// Removes lease `id`, returning the keys that were attached to it (to be deleted).
    pub fn revoke(&mut self, id: i64) -> Result<Vec<Vec<u8>>, LeaseError> {
        let lease = self.leases.remove(&id).ok_or(LeaseError::NotFound)?;
        Ok(lease.keys.into_iter().collect())
    }

    /// The lease, if it exists.
    pub fn get(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// Whether lease `id` exists.
    pub fn exists(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// All leases, by id.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Records that `key`'s value now carries `lease` (0 = none) instead of `previous`.
    pub fn reattach(&mut self, key: &[u8], previous: i64, lease: i64) {
        if previous == lease {
            return;
        }
        if let Some(l) = self.leases.get_mut(&previous) {
            l.keys.remove(key);
        }
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.insert(key.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_attach_revoke() {
        let mut l = Lessor::default();
        l.grant(7, 10).unwrap();
        assert_eq!(l.grant(7, 10).unwrap_err(), LeaseError::Exists);
        l.reattach(b"a", 0, 7);
        l.reattach(b"b", 0, 7);
        l.reattach(b"b", 7, 0);
        assert_eq!(l.get(7).unwrap().keys.len(), 1);
        assert_eq!(l.revoke(7).unwrap(), vec![b"a".to_vec()]);
        assert_eq!(l.revoke(7).unwrap_err(), LeaseError::NotFound);
        assert!(!l.exists(7));
    }
}
