//! Time as a member sees it: the one place detcd reads "now" for decisions that depend on a
//! node's own clock (lease deadlines) and sets the pace of its raft ticks.
//!
//! In production these are tokio's monotonic clock and the configured tick. In simulation each
//! node may be given a skewed clock ([`set_skew`]): a fixed offset plus a drift rate, so lease
//! expiry and elections run on clocks that disagree, as real machines' do. madsim itself has one
//! clock for every node, so the skew is applied here. Invariant: a node's clock is monotonic
//! (the rate is positive and the offset fixed while a node runs).

use std::time::Duration;
use tokio::time::Instant;

/// Wall-clock seconds since the Unix epoch (madsim simulates the system clock too, so this
/// replays in simulation); only for values etcd derives from the wall clock, such as the id of
/// an added member, never for timing.
pub fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// This node's current time.
#[cfg(not(madsim))]
pub fn now() -> Instant {
    Instant::now()
}

/// How long `period` of this node's time lasts in true time (the raft tick interval).
#[cfg(not(madsim))]
pub fn true_duration(period: Duration) -> Duration {
    period
}

#[cfg(madsim)]
pub use self::sim::{now, set_skew, true_duration, Skew};

#[cfg(madsim)]
mod sim {
    use super::*;
    use madsim::task::NodeId;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// A node's clock error: it reads `offset_ms` ahead of true time and runs `rate` times as
    /// fast (1.0 = exact), counted from when the skew was set. (Monotonic clocks of different
    /// machines have unrelated origins, so only the difference between nodes matters: a node
    /// "behind" is one whose peers are ahead.)
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct Skew {
        /// Offset in milliseconds.
        pub offset_ms: u64,
        /// Speed relative to true time (> 0).
        pub rate: f64,
    }

    thread_local! {
        static SKEWS: RefCell<BTreeMap<NodeId, (Skew, Instant)>> =
            const { RefCell::new(BTreeMap::new()) };
    }

    /// Gives `node` a skewed clock from now on (a rate of 1.0 and offset 0 make it exact).
    pub fn set_skew(node: NodeId, skew: Skew) {
        assert!(skew.rate > 0.0, "a clock must run forwards");
        SKEWS.with(|s| s.borrow_mut().insert(node, (skew, Instant::now())));
    }

    fn current() -> Option<(Skew, Instant)> {
        let node = madsim::plugin::node();
        SKEWS.with(|s| s.borrow().get(&node).copied())
    }

    /// This node's current time.
    pub fn now() -> Instant {
        let real = Instant::now();
        let Some((skew, since)) = current() else {
            return real;
        };
        let elapsed = real.duration_since(since).mul_f64(skew.rate);
        since + elapsed + Duration::from_millis(skew.offset_ms)
    }

    /// How long `period` of this node's time lasts in true time.
    pub fn true_duration(period: Duration) -> Duration {
        match current() {
            Some((skew, _)) => period.div_f64(skew.rate),
            None => period,
        }
    }
}
