//! Checkers, one property each. Linearizability of the client history lives in
//! [`crate::linearizability`]; here are the checks that read members' own state (convergence,
//! applied-log order, one leader per term) and the availability rules.

pub mod availability;
pub mod convergence;
pub mod coordination;
pub mod elections;
pub mod served_revision;
pub mod watch;
