//! The run's event trace: every fault, phase change and checker verdict, with simulated time.
//! Its hash (together with the history's) is printed as `trace=<hash>`; the same seed must give
//! the same hash on every run.

use std::hash::{Hash, Hasher};

/// Ordered, timestamped events of one run.
#[derive(Default, Debug)]
pub struct Trace {
    start: Option<tokio::time::Instant>,
    events: Vec<(u128, String)>,
}

impl Trace {
    /// A trace whose clock starts now.
    pub fn new() -> Trace {
        Trace {
            start: Some(tokio::time::Instant::now()),
            events: Vec::new(),
        }
    }

    /// Records an event at the current simulated time (and prints it at once when
    /// `DETCD_SIM_TRACE` is set, for runs that end in a panic before the trace is shown).
    pub fn event(&mut self, what: String) {
        let at = self.start.map_or(0, |s| s.elapsed().as_nanos());
        if std::env::var_os("DETCD_SIM_TRACE").is_some() {
            eprintln!("  [{:>9.3}s] {what}", at as f64 / 1e9);
        }
        self.events.push((at, what));
    }

    /// An empty trace on this trace's clock, for a task running beside the one that owns it.
    pub fn fork(&self) -> Trace {
        Trace {
            start: self.start,
            events: Vec::new(),
        }
    }

    /// Takes in a forked trace's events, in time order (ties keep this trace's first).
    pub fn absorb(&mut self, other: Trace) {
        self.events.extend(other.events);
        self.events.sort_by_key(|(at, _)| *at);
    }

    /// The recorded events.
    pub fn events(&self) -> &[(u128, String)] {
        &self.events
    }

    /// Folds the events into `h`.
    pub fn hash_into(&self, h: &mut impl Hasher) {
        self.events.hash(h);
    }
}
