//! A checker that never fails proves nothing: each deliberately injected bug must be caught
//! within a small number of seeds.

use detcd::fault::Bug;
use detcd_sim::runner::{run_seed, SeedOptions};
use std::time::Duration;

/// Seeds tried per bug before the test gives up.
const BUDGET: u64 = 12;

fn first_failing_seed(bug: Bug) -> Option<(u64, Vec<String>)> {
    (1..=BUDGET).find_map(|seed| {
        let report = run_seed(SeedOptions {
            bug: Some(bug),
            chaos: Duration::from_secs(20),
            ..SeedOptions::new(seed)
        });
        (!report.ok()).then_some((seed, report.failures))
    })
}

#[test]
fn stale_read_is_caught() {
    let (seed, failures) = first_failing_seed(Bug::StaleRead).expect("stale reads went unnoticed");
    println!("stale-read caught by seed {seed}: {failures:?}");
    assert!(
        failures.iter().any(|f| f.starts_with("linearizability")),
        "{failures:?}"
    );
}

#[test]
fn ack_before_fsync_is_caught() {
    let (seed, failures) =
        first_failing_seed(Bug::AckBeforeFsync).expect("lost fsyncs went unnoticed");
    println!("ack-before-fsync caught by seed {seed}: {failures:?}");
}

#[test]
fn watch_dropping_events_is_caught() {
    let (seed, failures) =
        first_failing_seed(Bug::WatchDropsEvent).expect("dropped watch events went unnoticed");
    println!("watch-drops-event caught by seed {seed}: {failures:?}");
    assert!(
        failures.iter().any(|f| f.starts_with("watch")),
        "{failures:?}"
    );
}

#[test]
fn revoke_keeping_keys_is_caught() {
    let (seed, failures) = first_failing_seed(Bug::RevokeKeepsKeys)
        .expect("keys outliving their lease went unnoticed");
    println!("revoke-keeps-keys caught by seed {seed}: {failures:?}");
    assert!(
        failures.iter().any(|f| f.starts_with("lease")),
        "{failures:?}"
    );
}

#[test]
fn lock_skipping_the_queue_is_caught() {
    let (seed, failures) =
        first_failing_seed(Bug::LockSkipsQueue).expect("overlapping lock holders went unnoticed");
    println!("lock-skips-queue caught by seed {seed}: {failures:?}");
    assert!(
        failures.iter().any(|f| f.starts_with("lock")),
        "{failures:?}"
    );
}
