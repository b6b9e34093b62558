//! The leader's expiry clock: when each lease runs out. Only the leader keeps one; it is not
//! replicated. When a member becomes leader every lease gets a full TTL from that moment (etcd's
//! "promote"), so a leader change never expires a lease early; keep-alives push a deadline to
//! now + TTL; expired leases are revoked through raft by the leader.

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Deadlines of the leases the leader knows about.
#[derive(Debug, Default)]
pub struct ExpiryClock {
    deadlines: BTreeMap<i64, Instant>,
}

impl ExpiryClock {
    /// Forgets everything (this member is no longer leader).
    pub fn clear(&mut self) {
        self.deadlines.clear();
    }

    /// Gives lease `id` a full `ttl` from `now`.
    pub fn renew(&mut self, id: i64, ttl: i64, now: Instant) {
        self.deadlines
            .insert(id, now + Duration::from_secs(ttl.max(0) as u64));
    }

    /// Tracks lease `id` from `now` if it is not tracked yet.
    pub fn track(&mut self, id: i64, ttl: i64, now: Instant) {
        if !self.deadlines.contains_key(&id) {
            self.renew(id, ttl, now);
        }
    }

    /// Stops tracking `id`.
    pub fn forget(&mut self, id: i64) {
        self.deadlines.remove(&id);
    }

    /// Keeps only the ids `live` says exist.
    pub fn retain(&mut self, live: impl Fn(i64) -> bool) {
        self.deadlines.retain(|id, _| live(*id));
    }

    /// Leases whose deadline has passed.
    pub fn expired(&self, now: Instant) -> Vec<i64> {
        self.deadlines
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Whole seconds left for `id` (rounded up, as etcd reports), if tracked.
    pub fn remaining(&self, id: i64, now: Instant) -> Option<i64> {
        let left = self.deadlines.get(&id)?.saturating_duration_since(now);
        Some(left.as_millis().div_ceil(1000) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renew_extends_and_expired_reports_past_deadlines() {
        let now = Instant::now();
        let mut c = ExpiryClock::default();
        c.renew(1, 5, now);
        c.track(2, 1, now);
        c.track(1, 100, now);
        assert_eq!(
            c.remaining(1, now),
            Some(5),
            "track does not reset a tracked lease"
        );
        let later = now + Duration::from_secs(2);
        assert_eq!(c.expired(later), vec![2]);
        c.renew(1, 5, later);
        assert_eq!(c.remaining(1, later + Duration::from_millis(500)), Some(5));
        c.forget(2);
        assert!(c.expired(later + Duration::from_secs(10)) == vec![1]);
    }
}
