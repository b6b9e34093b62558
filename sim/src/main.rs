//! `detcd-sim`: runs seeds of the simulation suite. `scripts/sim.sh` is the friendly front end.
//!
//! `detcd-sim --seed N` replays one seed; `--seeds A..B` runs a range on `--jobs` threads;
//! `--inject-bug NAME` switches a deliberate bug on; `--check-determinism` runs every seed twice
//! and fails if the trace hashes differ; `--quota BYTES` gives every member that
//! `--quota-backend-bytes` (with an operator that compacts and
//! disarms NOSPACE). The last line per seed is `seed N: ok trace=<hash>`.

use clap::Parser;
use detcd::fault::Bug;
use detcd_sim::runner::{run_seed, SeedOptions, SeedReport};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "detcd-sim",
    about = "Run detcd's deterministic simulation seeds"
)]
struct Args {
    /// Replay one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A range of seeds, `A..B` (inclusive).
    #[arg(long)]
    seeds: Option<String>,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Inject a bug by name (see `detcd::fault::Bug`).
    #[arg(long)]
    inject_bug: Option<String>,
    /// Run each seed twice and require identical trace hashes.
    #[arg(long)]
    check_determinism: bool,
    /// Simulated seconds of the fault phase.
    #[arg(long, default_value_t = 30)]
    chaos_secs: u64,
    /// Run every member with this `--quota-backend-bytes` (and an operator that compacts and
    /// disarms NOSPACE).
    #[arg(long)]
    quota: Option<u64>,
    /// Print each seed's trace.
    #[arg(long)]
    verbose: bool,
    /// Skip the seeds listed in this file (`<seed> <why>` per line, `#` comments): seeds the
    /// linearizability search cannot decide within its budget, kept visible until it can.
    #[arg(long)]
    skip: Option<std::path::PathBuf>,
}

/// The seeds a `--skip` file lists.
fn skipped_seeds(path: &std::path::Path) -> std::io::Result<Vec<u64>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect())
}

fn parse_range(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once("..")?;
    Some((
        a.trim().parse().ok()?,
        b.trim().trim_start_matches('=').parse().ok()?,
    ))
}

fn replay_command(seed: u64, bug: Option<Bug>, quota: Option<u64>) -> String {
    let mut command = format!("scripts/sim.sh --seed {seed}");
    if let Some(b) = bug {
        command += &format!(" --inject-bug {}", b.name());
    }
    if let Some(q) = quota {
        command += &format!(" --quota {q}");
    }
    command
}

fn print_report(r: &SeedReport, bug: Option<Bug>, quota: Option<u64>, verbose: bool) {
    if verbose {
        for (at, e) in &r.events {
            println!("  [{:>9.3}s] {e}", *at as f64 / 1e9);
        }
    }
    for f in &r.failures {
        println!("seed {}: {f}", r.seed);
    }
    if !r.ok() {
        println!(
            "seed {}: replay with: {}",
            r.seed,
            replay_command(r.seed, bug, quota)
        );
    }
    println!(
        "{} ops={} simulated={:.1}s wall={:.2}s",
        r.summary(),
        r.ops,
        r.simulated.as_secs_f64(),
        r.wall.as_secs_f64()
    );
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The servers' own logs, for replaying one seed: DETCD_SIM_LOG=info (an env-filter).
    if let Ok(filter) = std::env::var("DETCD_SIM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let bug = match args.inject_bug.as_deref().map(|n| (n, Bug::from_name(n))) {
        None => None,
        Some((_, Some(b))) => Some(b),
        Some((name, None)) => {
            eprintln!(
                "unknown bug {name:?}; known: {}",
                Bug::ALL.map(|b| b.name()).join(", ")
            );
            return ExitCode::FAILURE;
        }
    };
    let (first, last) = match (&args.seed, &args.seeds) {
        (Some(s), _) => (*s, *s),
        (None, Some(r)) => match parse_range(r) {
            Some(r) => r,
            None => {
                eprintln!("--seeds takes A..B");
                return ExitCode::FAILURE;
            }
        },
        (None, None) => (1, 1),
    };
    let next = Arc::new(AtomicUsize::new(0));
    let skip = match args.skip.as_deref().map(skipped_seeds).transpose() {
        Ok(skip) => skip.unwrap_or_default(),
        Err(e) => {
            eprintln!("--skip: {e}");
            return ExitCode::FAILURE;
        }
    };
    let seeds: Vec<u64> = (first..=last).filter(|s| !skip.contains(s)).collect();
    if seeds.len() as u64 != last - first + 1 {
        println!(
            "skipping {} undecided seeds: {:?}",
            last - first + 1 - seeds.len() as u64,
            skip.iter()
                .filter(|s| (first..=last).contains(*s))
                .collect::<Vec<_>>()
        );
    }
    let seeds: Arc<Vec<u64>> = Arc::new(seeds);
    let failed = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::new(Mutex::new(()));
    let started = Instant::now();
    let simulated = Arc::new(Mutex::new(Duration::ZERO));
    let workers: Vec<_> = (0..args.jobs.max(1))
        .map(|_| {
            let (next, seeds, failed, out, simulated) = (
                next.clone(),
                seeds.clone(),
                failed.clone(),
                out.clone(),
                simulated.clone(),
            );
            let (verbose, determinism, chaos, quota) = (
                args.verbose,
                args.check_determinism,
                args.chaos_secs,
                args.quota,
            );
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { return };
                let options = SeedOptions {
                    seed,
                    bug,
                    chaos: Duration::from_secs(chaos),
                    quota_bytes: quota,
                };
                let mut report = run_seed(options);
                if determinism && report.ok() {
                    let again = run_seed(options);
                    if again.trace_hash != report.trace_hash {
                        report.failures.push(format!(
                            "nondeterministic: trace {:016x} then {:016x}",
                            report.trace_hash, again.trace_hash
                        ));
                    }
                }
                *simulated.lock().expect("lock") += report.simulated;
                let _guard = out.lock().expect("lock");
                print_report(&report, bug, quota, verbose);
                if !report.ok() {
                    failed.lock().expect("lock").push(seed);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let failed = failed.lock().expect("lock").clone();
    let wall = started.elapsed().as_secs_f64();
    let sim = simulated.lock().expect("lock").as_secs_f64();
    println!(
        "{} seeds, {} failed, wall {wall:.1}s, {:.1} simulated s per wall s",
        seeds.len(),
        failed.len(),
        sim / wall.max(1e-9)
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failed seeds: {failed:?}");
        ExitCode::FAILURE
    }
}
