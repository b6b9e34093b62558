//! One seed, end to end: derive every parameter from the seed, start the cluster, run clients
//! under a fault schedule (safety phase), heal, probe availability, let the cluster settle
//! (liveness phase), read every key, and run every checker. The verdict carries a hash of the
//! whole trace so a replay can be compared bit for bit.

use crate::auth_phase;
use crate::backups;
use crate::checkers::{
    availability, convergence, coordination as coordination_checks, elections, served_revision,
    watch,
};
use crate::cluster::{MemberParams, SimCluster};
use crate::coordination::{self, CoordinationLog, SharedCoordinationLog};
use crate::faults;
use crate::history::{History, Outcome, Request};
use crate::linearizability;
use crate::membership;
use crate::quota_operator;
use crate::requests::RangeSpec;
use crate::served_probe::{self, SharedServedLog};
use crate::trace::Trace;
use crate::watchers::{self, SharedWatchLog, WatchLog};
use crate::workload::{Client, SharedHistory};
use crate::workload_gen::{prefix_end, Keyspace};
use detcd::fault::Bug;
use madsim::rand::prelude::*;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Search steps the linearizability checker may spend on one history. Valid histories with many
/// unknown writes can need a few million (seed 884 needed between 1 and 5 million); an
/// exhausted budget counts as a failure, never as a pass.
const LINEARIZABILITY_BUDGET: u64 = 20_000_000;

/// The search budget: [`LINEARIZABILITY_BUDGET`], or `DETCD_SIM_BUDGET` when set (for deciding
/// a seed listed in `sim/undecided.txt` with a longer search).
fn linearizability_budget() -> u64 {
    std::env::var("DETCD_SIM_BUDGET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LINEARIZABILITY_BUDGET)
}

/// Writes every op of `history`, one per line, to `path` (`DETCD_SIM_HISTORY`, for studying a
/// failed or undecided seed). A write error is reported, not fatal.
fn dump_history(history: &History, path: &str) {
    let text: String = history.ops.iter().map(|op| format!("{op}\n")).collect();
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("cannot write the history to {path}: {e}");
    }
}

/// How to run a seed.
#[derive(Clone, Copy, Debug)]
pub struct SeedOptions {
    /// The seed.
    pub seed: u64,
    /// A bug to inject, if any.
    pub bug: Option<Bug>,
    /// Simulated length of the safety (fault) phase.
    pub chaos: Duration,
    /// `--quota-backend-bytes` of every member (`None`: unlimited). A quota run also has an
    /// operator compacting and disarming whenever NOSPACE is raised (`crate::quota_operator`).
    pub quota_bytes: Option<u64>,
}

impl SeedOptions {
    /// Default options for `seed`.
    pub fn new(seed: u64) -> SeedOptions {
        SeedOptions {
            seed,
            bug: None,
            chaos: Duration::from_secs(30),
            quota_bytes: None,
        }
    }
}

/// The verdict on one seed.
#[derive(Clone, Debug)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Every violation found (empty = ok).
    pub failures: Vec<String>,
    /// Hash of the trace, history and final states.
    pub trace_hash: u64,
    /// Simulated time the run covered.
    pub simulated: Duration,
    /// Wall time it took.
    pub wall: Duration,
    /// Operations in the history.
    pub ops: usize,
    /// The trace events (for `--verbose`).
    pub events: Vec<(u128, String)>,
}

impl SeedReport {
    /// Whether the seed passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The line `scripts/sim.sh` prints last.
    pub fn summary(&self) -> String {
        let verdict = if self.ok() { "ok" } else { "FAILED" };
        format!(
            "seed {}: {verdict} trace={:016x}",
            self.seed, self.trace_hash
        )
    }
}

/// What a seed produced.
pub struct Outcomes {
    failures: Vec<String>,
    hash: u64,
    ops: usize,
    simulated: Duration,
    events: Vec<(u128, String)>,
}

/// Runs one seed on a fresh thread (so thread-local simulator state starts clean).
pub fn run_seed(options: SeedOptions) -> SeedReport {
    let wall = Instant::now();
    let joined = std::thread::Builder::new()
        .name(format!("seed-{}", options.seed))
        .spawn(move || {
            detcd::fault::inject(options.bug);
            let mut rt = madsim::runtime::Runtime::with_seed_and_config(
                options.seed,
                madsim::Config::default(),
            );
            rt.set_time_limit(options.chaos + Duration::from_secs(300));
            rt.block_on(simulate(options))
        })
        .expect("spawn seed thread")
        .join();
    match joined {
        Ok(o) => SeedReport {
            seed: options.seed,
            failures: o.failures,
            trace_hash: o.hash,
            simulated: o.simulated,
            wall: wall.elapsed(),
            ops: o.ops,
            events: o.events,
        },
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            SeedReport {
                seed: options.seed,
                failures: vec![format!("panicked: {msg}")],
                trace_hash: 0,
                simulated: Duration::ZERO,
                wall: wall.elapsed(),
                ops: 0,
                events: Vec::new(),
            }
        }
    }
}

/// The simulation body of one seed (must run inside a madsim runtime seeded with `options.seed`).
pub async fn simulate(options: SeedOptions) -> Outcomes {
    let start = tokio::time::Instant::now();
    let mut trace = Trace::new();
    let mut rng = madsim::rand::thread_rng();
    let members = match rng.gen_range(0..5) {
        0 => 1,
        1 => 5,
        _ => 3,
    };
    let params = MemberParams {
        heartbeat: Duration::from_millis(100),
        election_timeout: Duration::from_millis(1000),
        snapshot_count: rng.gen_range(20..300),
        catch_up_entries: rng.gen_range(5..100),
        quota_bytes: options.quota_bytes,
    };
    let clients = rng.gen_range(3..7);
    let keys = Keyspace::random(&mut rng);
    // On a handful of keys, more than four clients' timed-out writes (pauses, failing disks)
    // make the linearizability search exponential (seeds 387, 495, 538, 603 exhausted it).
    let clients = if keys.len() <= 8 {
        clients.min(4)
    } else {
        clients
    };
    let op_timeout = Duration::from_millis(rng.gen_range(1500..4000));
    trace.event(format!("members={members} clients={clients} keys={} prefixes={} {params:?} op_timeout={op_timeout:?} bug={:?}", keys.len(), keys.prefixes().len(), options.bug));

    let mut cluster = SimCluster::start(members, params);
    let history: SharedHistory = Arc::new(Mutex::new(History::default()));
    let handle = madsim::runtime::Handle::current();
    let chaos_end = start + Duration::from_secs(3) + options.chaos;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let node = handle
            .create_node()
            .name(format!("client{c}"))
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, (c + 1) as u8)))
            .build();
        let history = history.clone();
        let keys = keys.clone();
        tasks.push(node.spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Client::new(c as u64, members, history, start, op_timeout)
                .run_random(keys, chaos_end - options.chaos / 3, chaos_end)
                .await;
        }));
    }
    let operator_stop = Arc::new(AtomicBool::new(false));
    let disarmed = Arc::new(AtomicUsize::new(0));
    if options.quota_bytes.is_some() {
        let node = handle
            .create_node()
            .name("operator")
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 6, 1)))
            .build();
        let client = Client::new(200, members, history.clone(), start, op_timeout);
        let (stop, count) = (operator_stop.clone(), disarmed.clone());
        node.spawn(quota_operator::operate(client, members, stop, count));
    }
    let backup_failures = Arc::new(Mutex::new(Vec::new()));
    {
        let node = handle
            .create_node()
            .name("backups")
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 7, 1)))
            .build();
        let (history, stop, found) = (
            history.clone(),
            operator_stop.clone(),
            backup_failures.clone(),
        );
        node.spawn(backups::take_backups(members, history, start, stop, found));
    }
    let mut watch_logs: Vec<SharedWatchLog> = Vec::new();
    let mut watch_nodes = Vec::new();
    for w in 0..2u8 {
        let node = handle
            .create_node()
            .name(format!("watcher{w}"))
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 3, w + 1)))
            .build();
        let log: SharedWatchLog = Arc::new(Mutex::new(WatchLog::default()));
        watch_logs.push(log.clone());
        let until = chaos_end + Duration::from_secs(600);
        node.spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            watchers::watch_all(members, log, until).await;
        });
        watch_nodes.push(node.id());
    }
    let served_log: SharedServedLog = Arc::new(Mutex::new(Vec::new()));
    {
        let log = served_log.clone();
        let until = chaos_end + Duration::from_secs(600);
        let node = handle
            .create_node()
            .name("served-probe")
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 5, 1)))
            .build();
        watch_nodes.push(node.id());
        node.spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            served_probe::probe_members(members, log, start, until).await;
        });
    }
    let steps = faults::schedule(members, 64, true);
    let replacements = membership::plan(options.seed, members);
    // Only seeds that change membership get the operator node (a node changes the run).
    let membership_operator = (!replacements.is_empty()).then(|| {
        handle
            .create_node()
            .name("membership")
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 8, 1)))
            .build()
    });
    let mut removed_ids = std::collections::BTreeSet::new();
    let mut membership_failures = Vec::new();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (index, step) in steps.iter().enumerate() {
        if tokio::time::Instant::now() >= chaos_end {
            break;
        }
        let due = replacements
            .iter()
            .enumerate()
            .find(|(_, r)| r.before_step == index);
        let Some(((n, r), operator)) = due.zip(membership_operator.as_ref()) else {
            faults::run_step(&cluster, step, &mut trace).await;
            continue;
        };
        // Not beside a flipped bit: a member lost for good while another is being replaced
        // leaves two voters with one down, which no procedure can help.
        let beside_fault = r.with_fault && !matches!(step.fault, faults::Fault::FlipBit { .. });
        let outcome = if beside_fault {
            let mut beside = trace.fork();
            let (outcome, ()) = tokio::join!(
                membership::replace_member(&cluster, operator, *r, n + 1, &mut beside),
                faults::run_step(&cluster, step, &mut trace)
            );
            trace.absorb(beside);
            outcome
        } else {
            let outcome =
                membership::replace_member(&cluster, operator, *r, n + 1, &mut trace).await;
            faults::run_step(&cluster, step, &mut trace).await;
            outcome
        };
        removed_ids.extend(outcome.removed);
        membership_failures.extend(outcome.failure);
    }
    for t in tasks {
        let _ = t.await;
    }
    faults::heal_network(&cluster);
    for i in 0..members {
        cluster.restart(i);
    }
    trace.event("safety phase over; all healed".into());

    let mut failures = Vec::new();
    let probe_node = handle
        .create_node()
        .name("probe")
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 1)))
        .build();
    let probe_history = history.clone();
    let (cluster, probe_failures, trace) = probe_node
        .spawn(async move {
            let mut client = Client::new(100, members, probe_history, start, op_timeout);
            let mut trace = trace;
            let violations = availability::probe(&mut cluster, &mut client, &mut trace).await;
            // Liveness phase: final linearizable read of every key, retried until it works.
            for prefix in keys.prefixes() {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                let mut m = 0;
                while tokio::time::Instant::now() < deadline {
                    m += 1;
                    let req = Request::Range(RangeSpec::new(prefix.clone(), prefix_end(prefix)));
                    if matches!(client.invoke(m % members, req).await, Outcome::Ok(_)) {
                        break;
                    }
                }
            }
            (cluster, violations, trace)
        })
        .await
        .expect("probe task");
    let mut trace = trace;
    failures.extend(
        probe_failures
            .into_iter()
            .map(|v| format!("availability: {v}")),
    );

    // Coordination phase: leases and locks under faults, after the KV history is closed (their
    // writes are not part of the linearizability model).
    operator_stop.store(true, Ordering::Release);
    if options.quota_bytes.is_some() {
        let refused = history
            .lock()
            .expect("history lock")
            .ops
            .iter()
            .filter(|op| op.request.is_write() && op.outcome == Outcome::Failed)
            .count();
        trace.event(format!(
            "quota: {refused} writes refused, {} alarms disarmed",
            disarmed.load(Ordering::Relaxed)
        ));
    }
    failures.extend(backup_failures.lock().expect("backup failures").drain(..));
    let history = history.lock().expect("history lock").clone();
    let coordination_log: SharedCoordinationLog = Arc::new(Mutex::new(CoordinationLog::default()));
    let coordination_end = tokio::time::Instant::now() + options.chaos / 2;
    let mut coordination_tasks = Vec::new();
    for c in 0..4u8 {
        let node = handle
            .create_node()
            .name(format!("coordinator{c}"))
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 4, c + 1)))
            .build();
        let log = coordination_log.clone();
        coordination_tasks.push(node.spawn(async move {
            if c % 2 == 0 {
                coordination::lease_client(u64::from(c), members, log, coordination_end).await;
            } else {
                coordination::lock_client(members, log, coordination_end).await;
            }
        }));
    }
    trace.event("coordination phase".into());
    for step in faults::schedule(members, 16, false) {
        if tokio::time::Instant::now() >= coordination_end {
            break;
        }
        faults::run_step(&cluster, &step, &mut trace).await;
    }
    for t in coordination_tasks {
        let _ = t.await;
    }
    heal_and_restart(&cluster).await;
    // Quiet time for abandoned leases to expire (TTL 3 s, refreshed by at most one election).
    tokio::time::sleep(Duration::from_secs(10)).await;
    trace.event("coordination phase over; all healed".into());

    let states = match convergence::check(&cluster, Duration::from_secs(30)).await {
        Ok(states) => states,
        Err(e) => {
            failures.push(format!("convergence: {e}"));
            Vec::new()
        }
    };
    if let Err(e) = membership::check_converged(&cluster, &removed_ids) {
        failures.push(format!("membership: {e}"));
    }
    failures.extend(
        membership_failures
            .iter()
            .map(|f| format!("membership: {f}")),
    );
    if let Err(e) = elections::check_one_leader_per_term() {
        failures.push(format!("election: {e}"));
    }
    failures.extend(crate::fault_checks::take_failures());
    if let Some(reference) = states.first() {
        let caught_up = |logs: &[SharedWatchLog]| {
            logs.iter().all(|l| {
                l.lock()
                    .expect("watch log")
                    .events
                    .last()
                    .map_or(0, |e| e.0)
                    >= reference.revision
                    || reference.events.is_empty()
            })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !caught_up(&watch_logs) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for id in &watch_nodes {
            handle.kill(*id);
        }
        let logs: Vec<WatchLog> = watch_logs
            .iter()
            .map(|l| l.lock().expect("watch log").clone())
            .collect();
        if let Err(e) = watch::check(&logs, reference) {
            failures.push(format!("watch: {e}"));
        }
        trace.event(format!(
            "watchers saw {:?} events with {:?} resumes",
            logs.iter().map(|l| l.events.len()).collect::<Vec<_>>(),
            logs.iter().map(|l| l.resumes).collect::<Vec<_>>()
        ));
    }
    if let Err(e) = served_revision::check(&served_log.lock().expect("served log")) {
        failures.push(format!("served revision: {e}"));
    }
    trace.event(format!(
        "served-revision probe: {} answers; supervisor restarts: {:?}; refused: {:?}",
        served_log.lock().expect("served log").len(),
        cluster.supervised(),
        cluster.refused()
    ));
    let coordination_log = std::mem::take(&mut *coordination_log.lock().expect("coordination log"));
    if let Some(reference) = states.first() {
        if let Err(e) = coordination_checks::check_leases(&coordination_log, reference) {
            failures.push(format!("lease: {e}"));
        }
    }
    if let Err(e) = coordination_checks::check_fencing(&coordination_log) {
        failures.push(format!("lock: {e}"));
    }
    trace.event(format!(
        "coordination: {} leases, {} locks taken, {} fenced writes",
        coordination_log.leases.len(),
        coordination_log.locks_taken,
        coordination_log.fenced_writes.len()
    ));
    // Quota runs end with NOSPACE raised, which the auth phase's writes would only meet.
    if options.quota_bytes.is_none() {
        let auth = auth_phase_under_faults(&cluster, &handle, &mut trace).await;
        failures.extend(auth.violations.iter().map(|v| format!("auth: {v}")));
        trace.event(format!(
            "auth phase: {} permitted writes, {} refused (permitted ones: {:?})",
            auth.permitted_ok, auth.refused, auth.permitted_refusals
        ));
    }
    let options = linearizability::CheckOptions {
        max_steps: linearizability_budget(),
        ..linearizability::CheckOptions::new(1)
    };
    if let Ok(path) = std::env::var("DETCD_SIM_HISTORY") {
        dump_history(&history, &path);
    }
    match linearizability::check_linearizable_with(&history, &options) {
        Ok(lin) => trace.event(format!("linearizability: {} search steps", lin.steps)),
        Err(e) => failures.push(format!("linearizability: {e}")),
    }
    trace.event(format!(
        "checked {} ops: {} failures",
        history.ops.len(),
        failures.len()
    ));
    for i in 0..members {
        cluster.kill(i, None);
    }

    let mut h = DefaultHasher::new();
    trace.hash_into(&mut h);
    format!("{:?}", history.ops).hash(&mut h);
    states.hash(&mut h);
    failures.hash(&mut h);
    Outcomes {
        failures,
        hash: h.finish(),
        ops: history.ops.len(),
        simulated: start.elapsed(),
        events: trace.events().to_vec(),
    }
}

/// Heals the network, restarts every member and waits (up to a minute) for a leader: a member
/// still paying for fsyncs issued during a slow disk fault can take long to elect one (seed
/// 85: a sole member restarted with three 4.8 s fsyncs owed).
async fn heal_and_restart(cluster: &SimCluster) {
    faults::heal_network(cluster);
    for i in 0..cluster.size() {
        cluster.restart(i);
    }
    let leaderless_until = tokio::time::Instant::now() + Duration::from_secs(60);
    while cluster.leader().is_none() && tokio::time::Instant::now() < leaderless_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The [`auth_phase`]: set up on the healed cluster, the user's work under a few fault steps,
/// then healed again for the end of it.
async fn auth_phase_under_faults(
    cluster: &SimCluster,
    handle: &madsim::runtime::Handle,
    trace: &mut Trace,
) -> auth_phase::AuthLog {
    let members = cluster.size();
    let node = handle
        .create_node()
        .name("auth")
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 10, 1)))
        .build();
    trace.event("auth phase".into());
    let session = match node.spawn(auth_phase::prepare(members)).await {
        Ok(Ok(session)) => session,
        Ok(Err(violation)) => {
            return auth_phase::AuthLog {
                violations: vec![violation],
                ..Default::default()
            }
        }
        Err(e) => {
            return auth_phase::AuthLog {
                violations: vec![format!("the auth phase panicked: {e}")],
                ..Default::default()
            }
        }
    };
    let work = node.spawn(async move {
        let mut session = session;
        session.work(30).await;
        session
    });
    for step in faults::schedule(members, 4, false) {
        faults::run_step(cluster, &step, trace).await;
    }
    let session = work.await;
    heal_and_restart(cluster).await;
    let serving: Vec<usize> = (0..members).filter(|&i| cluster.is_serving(i)).collect();
    match session {
        Ok(session) => node
            .spawn(session.finish(serving))
            .await
            .unwrap_or_default(),
        Err(e) => auth_phase::AuthLog {
            violations: vec![format!("the auth phase panicked: {e}")],
            ..Default::default()
        },
    }
}
