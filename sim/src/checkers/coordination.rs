//! Lease and lock checkers over the coordination log and the final committed history.
//!
//! Leases: a key whose lease revoke was acknowledged is never read at or after the revoke's
//! revision; a key whose lease was kept alive (every keep-alive acknowledged, TTL far above an
//! election) is still there after the keep-alive period; a lease left alone eventually expires
//! and its key is gone once the cluster is quiet.
//! Locks: fencing tokens of acknowledged fenced writes never go backwards in revision order —
//! a holder that lost its lock can never write after a newer holder.

use crate::checkers::convergence::MemberState;
use crate::coordination::{CoordinationLog, LeaseFate};

/// Checks the lease rules; `final_state` is a converged member's history.
pub fn check_leases(log: &CoordinationLog, final_state: &MemberState) -> Result<(), String> {
    for fate in &log.leases {
        match fate {
            LeaseFate::Revoked {
                key,
                revoke_revision,
                read_revision,
                still_there,
            } => {
                if *still_there && read_revision >= revoke_revision {
                    return Err(format!("{key}: read at revision {read_revision} after its lease was revoked at {revoke_revision}"));
                }
            }
            LeaseFate::KeptAlive { key, present } => {
                if !present {
                    return Err(format!(
                        "{key}: its lease was kept alive, yet the key was gone"
                    ));
                }
            }
            LeaseFate::Abandoned { key } => {
                let last = final_state
                    .events
                    .iter()
                    .rev()
                    .find(|(_, k, _)| k == key.as_bytes());
                if let Some((rev, _, false)) = last {
                    return Err(format!("{key}: its lease was left to expire, but the key (put at {rev}) is still there at the end"));
                }
            }
        }
    }
    Ok(())
}

/// Checks that fenced writes never see a fencing token go backwards.
pub fn check_fencing(log: &CoordinationLog) -> Result<(), String> {
    let mut writes = log.fenced_writes.clone();
    writes.sort();
    for w in writes.windows(2) {
        if w[1].1 < w[0].1 {
            return Err(format!(
                "fenced write with token {} at revision {} came after token {} at revision {}: two lock holders overlapped",
                w[1].1, w[1].0, w[0].1, w[0].0
            ));
        }
    }
    Ok(())
}
