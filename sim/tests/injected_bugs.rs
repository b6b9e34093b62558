//! A checker that never fails proves nothing: each deliberately injected bug must be caught
//! within a small number of seeds.

use detcd::fault::Bug;
use detcd_sim::runner::{run_seed, SeedOptions};
use std::time::Duration;

/// Seeds tried per bug (of the original five) before the test gives up, with a shorter
/// safety phase.
const BUDGET: u64 = 12;
/// Seeds the bugs that only the wider coverage (disk faults, single-member clusters, the
/// served-revision checker) catches get: the bound, at the normal safety phase.
const WIDE_BUDGET: u64 = 40;

/// The `--quota` of quota runs in CI (scripts/test.sh): small enough that NOSPACE is raised
/// within the first seconds of a seed.
const SIM_QUOTA: u64 = 8 * 1024;

fn first_failing_seed(
    bug: Bug,
    budget: u64,
    chaos: Duration,
    quota_bytes: Option<u64>,
) -> Option<(u64, Vec<String>)> {
    (1..=budget).find_map(|seed| {
        let report = run_seed(SeedOptions {
            bug: Some(bug),
            chaos,
            quota_bytes,
            ..SeedOptions::new(seed)
        });
        (!report.ok()).then_some((seed, report.failures))
    })
}

/// Asserts `bug` is caught within the budget, by a checker whose failures start with one of
/// `checkers` (any failure counts when there are none: a lost fsync may surface as a raft
/// panic, a linearizability violation or diverging members).
fn assert_caught(bug: Bug, checkers: &[&str]) {
    assert_caught_within(bug, checkers, BUDGET, Duration::from_secs(20));
}

fn assert_caught_within(bug: Bug, checkers: &[&str], budget: u64, chaos: Duration) {
    assert_caught_with(bug, checkers, budget, chaos, None);
}

fn assert_caught_with(
    bug: Bug,
    checkers: &[&str],
    budget: u64,
    chaos: Duration,
    quota_bytes: Option<u64>,
) {
    let (seed, failures) = first_failing_seed(bug, budget, chaos, quota_bytes)
        .unwrap_or_else(|| panic!("{} went unnoticed", bug.name()));
    println!("{} caught by seed {seed}: {failures:?}", bug.name());
    if !checkers.is_empty() {
        assert!(
            (failures.iter()).any(|f| checkers.iter().any(|prefix| f.starts_with(prefix))),
            "{failures:?}"
        );
    }
}

#[test]
fn stale_read_is_caught() {
    assert_caught(Bug::StaleRead, &["linearizability"]);
}

#[test]
fn ack_before_fsync_is_caught() {
    assert_caught(Bug::AckBeforeFsync, &[]);
}

#[test]
fn watch_dropping_events_is_caught() {
    assert_caught(Bug::WatchDropsEvent, &["watch"]);
}

#[test]
fn a_watch_page_skipping_a_revision_is_caught() {
    assert_caught(Bug::WatchPageSkipsRevision, &["watch"]);
}

#[test]
fn revoke_keeping_keys_is_caught() {
    assert_caught(Bug::RevokeKeepsKeys, &["lease"]);
}

#[test]
fn lock_skipping_the_queue_is_caught() {
    assert_caught(Bug::LockSkipsQueue, &["lock"]);
}

#[test]
fn forgetting_the_commit_index_is_caught() {
    assert_caught_within(
        Bug::ForgetCommitIndex,
        &["served revision"],
        WIDE_BUDGET,
        SeedOptions::new(0).chaos,
    );
}

#[test]
fn ignoring_an_fsync_error_is_caught() {
    assert_caught_within(
        Bug::IgnoreFsyncError,
        &[],
        WIDE_BUDGET,
        SeedOptions::new(0).chaos,
    );
}

#[test]
fn expiring_leases_early_is_caught() {
    assert_caught_within(
        Bug::LeaseEarlyExpiry,
        &["lease"],
        WIDE_BUDGET,
        SeedOptions::new(0).chaos,
    );
}

#[test]
fn compaction_dropping_the_latest_version_is_caught() {
    assert_caught_within(
        Bug::CompactDropsLatest,
        &["linearizability"],
        WIDE_BUDGET,
        Duration::from_secs(20),
    );
}

#[test]
fn range_reporting_no_more_is_caught() {
    assert_caught_within(
        Bug::RangeMoreFalse,
        &["linearizability"],
        WIDE_BUDGET,
        Duration::from_secs(20),
    );
}

/// A leader deposed while stalled on a slow disk only answers keep-alives alone long enough for
/// the new leader to expire the lease when the stall outlasts a TTL and a keep-alive client is
/// on that member: rarer than the other bugs' triggers, so it gets more seeds.
#[test]
fn renewing_on_a_stale_leader_is_caught() {
    assert_caught_within(
        Bug::LeaseOnStaleLeader,
        &["lease"],
        250,
        SeedOptions::new(0).chaos,
    );
}

/// A backend whose consistent index runs ahead of its history loses acknowledged writes at the
/// first crash of a member: they are neither in the backend nor replayed from the WAL.
#[test]
fn backend_index_ahead_of_history_is_caught() {
    assert_caught_within(
        Bug::BackendIndexAhead,
        &[],
        WIDE_BUDGET,
        Duration::from_secs(20),
    );
}

/// A write refused for space must not be stored: one that is (its proposer told otherwise)
/// becomes visible to later reads, which the linearizability checker rejects.
#[test]
fn nospace_keeping_the_write_is_caught() {
    assert_caught_with(
        Bug::NoSpaceKeepsWrite,
        &["linearizability"],
        WIDE_BUDGET,
        Duration::from_secs(20),
        Some(SIM_QUOTA),
    );
}

/// A raft snapshot whose image leaves out the newest history record makes the member that
/// installs it diverge from the others, which the convergence checker sees, or, once that
/// member leads, hand out a revision already given out, which the linearizability checker
/// sees (whichever the first seed that catches it shows first).
#[test]
fn snapshot_dropping_a_record_is_caught() {
    assert_caught_within(
        Bug::SnapshotDropsRecord,
        &["convergence", "linearizability"],
        WIDE_BUDGET,
        Duration::from_secs(30),
    );
}

/// Snapshot points recorded past the backend's durable state (the apply task calling every
/// flush durable) lose the entries in between at the first crash of a member that recorded
/// one: they are neither in the backend nor in the rewritten WAL.
#[test]
fn snapshot_point_past_the_durable_backend_is_caught() {
    assert_caught_within(
        Bug::SnapshotPastDurable,
        &[],
        WIDE_BUDGET,
        Duration::from_secs(20),
    );
}

#[test]
fn a_snapshot_without_its_tombstones_is_caught() {
    assert_caught_within(
        Bug::SnapshotDropsTombstones,
        &["linearizability"],
        WIDE_BUDGET,
        SeedOptions::new(0).chaos,
    );
}

/// A member table that keeps a removed member disagrees with raft's configuration; the seeds
/// that replace a member (two in five of the 3- and 5-member runs) show it in the table.
#[test]
fn a_member_table_keeping_a_removed_member_is_caught() {
    assert_caught_within(
        Bug::MemberTableKeepsRemoved,
        &["membership"],
        WIDE_BUDGET,
        SeedOptions::new(0).chaos,
    );
}

/// A leader that puts its own removal into force before it is committed stops before the
/// change leaves it: the seeds that remove the running leader see it never exit.
#[test]
fn a_conf_change_applied_before_it_commits_is_caught() {
    assert_caught_within(
        Bug::ConfChangeSkipQuorum,
        &["membership"],
        WIDE_BUDGET,
        SeedOptions::new(0).chaos,
    );
}

/// A member that votes twice in one term lets two candidates win it: the election checker
/// sees two leaders in that term.
#[test]
fn a_member_voting_twice_in_a_term_is_caught() {
    assert_caught_within(
        Bug::VoteTwice,
        &["election"],
        WIDE_BUDGET,
        SeedOptions::new(0).chaos,
    );
}

#[test]
fn a_txn_compare_read_without_permission_is_caught() {
    assert_caught_within(
        Bug::AuthSkipsTxnCompare,
        &["auth"],
        WIDE_BUDGET,
        SeedOptions::new(0).chaos,
    );
}

#[test]
fn a_hand_off_that_does_not_wait_is_caught() {
    assert_caught_within(
        Bug::HandOffNoWait,
        &["hand-off"],
        WIDE_BUDGET,
        SeedOptions::new(0).chaos,
    );
}

#[test]
fn recovery_ignoring_the_wal_snapshot_is_caught() {
    assert_caught_within(
        Bug::IgnoreWalSnapshot,
        &["snapshot file"],
        WIDE_BUDGET,
        SeedOptions::new(0).chaos,
    );
}
