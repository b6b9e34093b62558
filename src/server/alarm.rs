//! Alarms and the space quota, as etcd has them.
//!
//! Owns [`Alarms`], the replicated set of raised alarms (member id, alarm type), and the quota
//! rules:
//! * A write that needs space (Put, a Txn with puts, LeaseGrant) is refused before it is proposed
//!   when the backend's used size plus the write's cost would pass `--quota-backend-bytes`; the
//!   refusing member then raises NOSPACE for itself through raft ([`ServerCore::check_quota`]).
//! * While a NOSPACE alarm is raised anywhere in the cluster, every member refuses such writes
//!   at apply time too (etcd's capped applier), so no member stores them; reads, deletes,
//!   compaction and alarm changes still apply. `etcdctl alarm disarm` lowers it.
//!
//! The used size is the backend's live history (what compaction frees; redb reuses freed pages,
//! so unlike bbolt no defragmentation is needed to make room). Alarms are part of the replicated
//! state: stored in the backend's `alarm` bucket and in snapshot images.

use std::collections::BTreeSet;

use super::core::ServerCore;
use super::error::RequestError;
use crate::pb::detcdpb::internal_request::Request as Internal;
use crate::pb::etcdserverpb::{
    alarm_request::AlarmAction, request_op, AlarmMember, AlarmRequest, AlarmType, TxnRequest,
};

/// etcd's default quota (`--quota-backend-bytes` 0): 2 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// What etcd counts per put on top of key and value (its `kvOverhead`).
const PUT_OVERHEAD: u64 = 256;
/// What etcd counts per lease grant.
const LEASE_OVERHEAD: u64 = 64;

/// The quota for a `--quota-backend-bytes` value: 0 means the default, a negative value none.
pub fn quota_from_flag(flag: i64) -> Option<u64> {
    match flag {
        0 => Some(DEFAULT_QUOTA_BYTES),
        n if n < 0 => None,
        n => Some(n as u64),
    }
}

/// The raised alarms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alarms {
    raised: BTreeSet<(u64, i32)>,
}

impl Alarms {
    /// Alarms from stored `(member, type)` pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u64, i32)>) -> Self {
        Alarms {
            raised: pairs.into_iter().collect(),
        }
    }

    /// Raises `alarm` for `member`; returns whether it was new.
    pub fn activate(&mut self, member: u64, alarm: i32) -> bool {
        self.raised.insert((member, alarm))
    }

    /// Lowers `alarm` for `member`; returns whether it was raised.
    pub fn deactivate(&mut self, member: u64, alarm: i32) -> bool {
        self.raised.remove(&(member, alarm))
    }

    /// Every raised alarm, by member then type.
    pub fn list(&self) -> Vec<AlarmMember> {
        self.raised
            .iter()
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Whether `alarm` is raised for `member`.
    pub fn is_raised(&self, member: u64, alarm: AlarmType) -> bool {
        self.raised.contains(&(member, alarm as i32))
    }

    /// Whether NOSPACE is raised for any member.
    pub fn no_space(&self) -> bool {
        self.raised
            .iter()
            .any(|&(_, a)| a == AlarmType::Nospace as i32)
    }
}

/// What a Put costs against the quota.
pub fn put_cost(key: &[u8], value: &[u8]) -> u64 {
    PUT_OVERHEAD + key.len() as u64 + value.len() as u64
}

/// What a Txn costs: the puts of its costlier branch (nested txns included).
pub fn txn_cost(t: &TxnRequest) -> u64 {
    let branch = |ops: &[crate::pb::etcdserverpb::RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => put_cost(&p.key, &p.value),
                Some(request_op::Request::RequestTxn(t)) => txn_cost(t),
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}

/// What a request costs against the quota (0: it needs no space and is never refused).
pub fn cost(request: &Internal) -> u64 {
    match request {
        Internal::Put(p) => put_cost(&p.key, &p.value),
        Internal::Txn(t) => txn_cost(t),
        Internal::LeaseGrant(_) => LEASE_OVERHEAD,
        _ => 0,
    }
}

impl ServerCore {
    /// Refuses a request that needs space when the quota would be exceeded, first raising
    /// NOSPACE for this member through raft (once), as etcd does.
    pub(super) async fn check_quota(&self, request: &Internal) -> Result<(), RequestError> {
        let needed = cost(request);
        let (Some(quota), true) = (self.quota_bytes, needed > 0) else {
            return Ok(());
        };
        let used = self.state.used_bytes();
        if used.saturating_add(needed) <= quota {
            return Ok(());
        }
        let raised = self
            .state
            .alarms()
            .is_raised(self.member_id, AlarmType::Nospace);
        if !raised {
            tracing::warn!(
                used,
                quota,
                "database space exceeded; raising the NOSPACE alarm"
            );
            let raise = Internal::Alarm(AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: self.member_id,
                alarm: AlarmType::Nospace as i32,
            });
            // The write is refused either way; a failed raise is retried by the next one.
            if let Err(e) = self.replicate(raise).await {
                tracing::warn!(error = %e, "raising the NOSPACE alarm failed");
            }
        }
        Err(RequestError::NoSpace)
    }
}
