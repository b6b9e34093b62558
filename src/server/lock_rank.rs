//! Lock ranks: the one order in which a thread may take the server's state locks, checked at
//! run time in debug and test builds.
//!
//! The order is [`Rank::Store`] → [`Rank::Leases`] → [`Rank::Membership`] → [`Rank::Alarms`] →
//! [`Rank::Auth`] → [`Rank::Tokens`] → [`Rank::Expiry`] (the store lock, the lease-table,
//! member-table, alarm, auth and token locks of
//! [`ReplicatedState`](super::apply::ReplicatedState), then the leader's expiry clock of
//! [`ServerCore`](super::core::ServerCore)): while holding one of them a thread may only take a
//! lock of a higher rank. Taking the same lock twice is out of order too — a std `RwLock` queues
//! a second read behind a waiting writer, so a nested read can deadlock just like an inversion.
//! Code should rather not hold two of them at all: copy what it needs out of one guard and drop
//! it before taking the next (the expiry clock is always taken alone).
//!
//! Every acquisition goes through [`Ranked::acquire`]. With `debug_assertions` it records the
//! rank in a per-thread list and panics *before blocking* when the new rank is not above every
//! rank the thread holds, so an inversion fails every test run that reaches it instead of
//! deadlocking once in a while. The list is exact because a guard is never held across an
//! `.await` (std guards are not `Send`), under tokio and madsim alike. Release builds only
//! carry the rank.

use std::ops::{Deref, DerefMut};

/// A lock's place in the order (lower ranks are taken first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// `ReplicatedState::store`.
    Store,
    /// `ReplicatedState::leases`.
    Leases,
    /// `ReplicatedState::membership`.
    Membership,
    /// `ReplicatedState::alarms`.
    Alarms,
    /// `ReplicatedState::auth` (users, roles, the auth switch).
    Auth,
    /// `ReplicatedState::tokens` (the member's live auth tokens).
    Tokens,
    /// `ServerCore::expiry` (the leader's lease clock).
    Expiry,
}

/// A lock guard that knows its rank; derefs to the guard's target.
pub struct Ranked<G> {
    guard: G,
    rank: Rank,
}

impl<G> Ranked<G> {
    /// Takes a lock of `rank` with `lock`, checking the order first (debug builds).
    pub fn acquire(rank: Rank, lock: impl FnOnce() -> G) -> Self {
        held::push(rank);
        Ranked {
            guard: lock(),
            rank,
        }
    }
}

impl<G: Deref> Deref for Ranked<G> {
    type Target = G::Target;

    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for Ranked<G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

impl<G> Drop for Ranked<G> {
    fn drop(&mut self) {
        held::pop(self.rank);
    }
}

#[cfg(debug_assertions)]
mod held {
    use super::Rank;
    use std::cell::RefCell;

    thread_local! {
        static HELD: RefCell<Vec<Rank>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn push(rank: Rank) {
        let highest = HELD.with(|h| h.borrow().last().copied());
        if let Some(top) = highest {
            debug_assert!(
                rank > top,
                "lock order violated: taking {rank:?} while holding {top:?} \
                 (order: Store, Leases, Membership, Expiry)"
            );
        }
        HELD.with(|h| h.borrow_mut().push(rank));
    }

    pub(super) fn pop(rank: Rank) {
        let _ = HELD.try_with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|r| *r == rank) {
                h.remove(i);
            }
        });
    }
}

#[cfg(not(debug_assertions))]
mod held {
    use super::Rank;

    pub(super) fn push(_: Rank) {}

    pub(super) fn pop(_: Rank) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Mutex, RwLock};

    #[test]
    fn ascending_order_is_allowed_and_released_ranks_can_be_taken_again() {
        let (store, leases, clock) = (RwLock::new(1), RwLock::new(2), Mutex::new(3));
        {
            let s = Ranked::acquire(Rank::Store, || store.read().unwrap());
            let l = Ranked::acquire(Rank::Leases, || leases.read().unwrap());
            drop(s);
            let c = Ranked::acquire(Rank::Expiry, || clock.lock().unwrap());
            assert_eq!(*l + *c, 5);
        }
        let c = Ranked::acquire(Rank::Expiry, || clock.lock().unwrap());
        drop(c);
        let mut s = Ranked::acquire(Rank::Store, || store.write().unwrap());
        *s += 1;
        assert_eq!(*s, 2);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "lock order violated: taking Leases while holding Expiry")]
    fn taking_a_lower_rank_panics_before_blocking() {
        let (leases, clock) = (RwLock::new(()), Mutex::new(()));
        let _c = Ranked::acquire(Rank::Expiry, || clock.lock().unwrap());
        let _l = Ranked::acquire(Rank::Leases, || leases.read().unwrap());
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "taking Store while holding Store")]
    fn taking_the_same_lock_twice_panics() {
        let store = RwLock::new(());
        let _a = Ranked::acquire(Rank::Store, || store.read().unwrap());
        let _b = Ranked::acquire(Rank::Store, || store.read().unwrap());
    }
}
