//! Leases: the replicated lease table ([`lessor`]) and the leader's in-memory expiry clock
//! ([`expiry`]). Both are sans-I/O: the server drives them (grants and revocations arrive
//! through raft; time arrives as `Instant`s from the caller).

pub mod expiry;
pub mod lessor;

pub use expiry::ExpiryClock;
pub use lessor::{Lease, LeaseError, Lessor};
