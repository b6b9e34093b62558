//! Every seed that ever found a bug stays in `sim/regressions.txt` and must keep passing — and
//! replay identically when run twice in one process (some of them found nondeterminism).

use detcd_sim::runner::{run_seed, SeedOptions};

fn regression_seeds() -> Vec<(u64, String)> {
    include_str!("../regressions.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (seed, why) = l.split_once(' ').unwrap_or((l, ""));
            (seed.parse().expect("seed number"), why.to_string())
        })
        .collect()
}

#[test]
fn regression_seeds_pass() {
    for (seed, why) in regression_seeds() {
        let report = run_seed(SeedOptions::new(seed));
        assert!(
            report.ok(),
            "regression seed {seed} ({why}) fails again: {:?}",
            report.failures
        );
    }
}
