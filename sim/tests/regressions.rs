//! Every seed that ever found a bug stays in `sim/regressions.txt` and must keep passing — and
//! replay identically when run twice in one process (some of them found nondeterminism).

use detcd_sim::runner::{run_seed, SeedOptions};

/// `(options, why)` per line of `sim/regressions.txt`: `<seed> [quota=<bytes>] <what it found>`.
fn regression_seeds() -> Vec<(SeedOptions, String)> {
    include_str!("../regressions.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (seed, why) = l.split_once(' ').unwrap_or((l, ""));
            let mut options = SeedOptions::new(seed.parse().expect("seed number"));
            let why = match why.strip_prefix("quota=") {
                Some(rest) => {
                    let (bytes, why) = rest.split_once(' ').unwrap_or((rest, ""));
                    options.quota_bytes = Some(bytes.parse().expect("quota bytes"));
                    why
                }
                None => why,
            };
            (options, why.to_string())
        })
        .collect()
}

#[test]
fn regression_seeds_pass() {
    for (options, why) in regression_seeds() {
        let report = run_seed(options);
        assert!(
            report.ok(),
            "regression seed {} ({why}) fails again: {:?}",
            options.seed,
            report.failures
        );
    }
}
