//! Replayable election timeouts: raft-rs draws them from an OS-seeded RNG, which a simulation
//! cannot replay, so [`ElectionTimer`] replaces each one with a timeout derived from the node's
//! seed, its id and a counter.
//!
//! Invariant: whenever raft may have reset its timer — term, role or leader changed, or the
//! election clock is at zero (a pre-candidate re-campaigning at the same term resets it without
//! any other visible change) — the timeout is replaced, within `[min, 2 * min)` ticks as raft-rs
//! itself draws it, so the same seed yields the same elections.

use raft::{RawNode, StateRole, Storage};

/// The derandomizer's memory: what raft looked like at the last replacement.
pub(super) struct ElectionTimer {
    seed: u64,
    id: u64,
    min_ticks: u64,
    last: (u64, StateRole, u64),
    resets: u64,
}

impl ElectionTimer {
    pub fn new(seed: u64, id: u64, min_ticks: usize) -> Self {
        Self {
            seed,
            id,
            min_ticks: min_ticks as u64,
            last: (u64::MAX, StateRole::Follower, 0),
            resets: 0,
        }
    }

    /// Replaces raft's randomized election timeout if raft may have reset it since the last call.
    pub fn derandomize<S: Storage>(&mut self, raw: &mut RawNode<S>) {
        let r = &raw.raft;
        let key = (r.term, r.state, r.leader_id);
        if key == self.last && r.election_elapsed != 0 {
            return;
        }
        self.last = key;
        self.resets += 1;
        let mix = splitmix64(
            self.seed
                ^ self.id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ self.resets.rotate_left(32)
                ^ r.term,
        );
        let timeout = self.min_ticks + mix % self.min_ticks;
        raw.raft.set_randomized_election_timeout(timeout as usize);
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
