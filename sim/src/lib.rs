//! detcd's deterministic simulation suite. The real server code runs as madsim nodes; one seed
//! decides every message delay, partition, crash and timeout; checkers decide whether the
//! cluster was ever wrong. See `scripts/sim.sh` for running and replaying seeds.
//!
//! Modules: [`cluster`] (members as nodes, kill/crash/restart), [`faults`] (seeded schedules),
//! [`workload`] (clients recording a [`history`]), [`checkers`] (one property each, with
//! [`linearizability`] the main one), [`runner`] (one seed end to end; quota runs add the
//! operator of `quota_operator`; every run ends with the [`auth_phase`]), [`trace`].

#[cfg(not(madsim))]
compile_error!("detcd-sim only means something in a simulator build: use scripts/sim.sh or RUSTFLAGS=\"--cfg madsim\"");

mod absence;
pub mod auth_phase;
mod backups;
pub mod checkers;
pub mod cluster;
pub mod compaction;
pub mod coordination;
mod fault_checks;
pub mod faults;
mod gap_budget;
mod grpc;
pub mod history;
mod kv_compile;
mod kv_model;
mod kv_range;
pub mod linearizability;
pub mod membership;
mod presence;
mod quota_operator;
pub mod requests;
mod revision_order;
mod revision_plan;
pub mod runner;
mod search;
pub mod served_probe;
pub mod trace;
pub mod watchers;
pub mod workload;
pub mod workload_gen;

#[cfg(test)]
mod linearizability_proptests;
#[cfg(test)]
mod linearizability_tests;
#[cfg(test)]
mod testgen;
