//! Fault schedules drawn from the seed, and the code that applies and heals them.
//!
//! A schedule is a list of faults applied one after another during the safety phase; each one is
//! applied, held for a while, and healed before the next, so the cluster sees every kind of
//! trouble the issue lists: symmetric partitions (random halves, isolated leader), one-way link
//! cuts, packet loss, delay spikes, kill + restart of one member (often the leader) with a torn
//! disk, two members down at once, rolling restarts (clean stops that hand leadership off, or
//! kills), paused members (a frozen process that later resumes with stale beliefs), failing
//! disks (writes or fsyncs failing with EIO or ENOSPC: the member must stop rather than
//! acknowledge, and is restarted by the supervisor), and a flipped bit in a member's synced WAL
//! or snapshot data (the member must refuse to start from a damaged WAL, and start from the
//! WAL's copy of a damaged snapshot file; at most once per run, and only with 3 or 5 members,
//! so a quorum stays). A single-member cluster gets only the faults that
//! need no second member. Everything is healed afterwards.

use crate::cluster::SimCluster;
use crate::trace::Trace;
use madsim::net::NetSim;
use madsim::rand::prelude::*;
use std::time::Duration;

/// One fault of a schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Cut the cluster into two sides (members listed are one side).
    Partition(Vec<usize>),
    /// Cut the current leader off from everyone.
    IsolateLeader,
    /// Drop messages from one member to another only.
    OneWayCut(usize, usize),
    /// Lose this percentage of packets.
    PacketLoss(u32),
    /// Raise network latency to up to this many milliseconds.
    DelaySpike(u64),
    /// Kill a member (the leader if `leader`), crash its disk, restart it later.
    KillRestart { leader: bool, member: usize },
    /// Kill two members at once, restart both later.
    KillTwo(usize, usize),
    /// Restart every member in turn: stopped cleanly (SIGTERM) or killed.
    RollingRestart,
    /// Freeze a member (the leader if `leader`), like a long GC or VM pause, then let it run on
    /// with whatever it believed before.
    Pause { leader: bool, member: usize },
    /// Make a member's disk fail writes (or only fsyncs) with `errno` (EIO or ENOSPC).
    DiskFailure {
        member: usize,
        errno: i32,
        syncs_only: bool,
    },
    /// Kill a member, flip a bit in its synced WAL or snapshot data, restart it.
    FlipBit { member: usize, seed: u64 },
    /// Make every fsync of a member's disk (the leader's if `leader`) take this many
    /// milliseconds (a slow or overloaded disk: etcd's "slow fdatasync"); past an election
    /// timeout the member is deposed while it still believes it leads.
    SlowDisk {
        leader: bool,
        member: usize,
        sync_ms: u64,
    },
}

/// EIO and ENOSPC.
const DISK_ERRNOS: [i32; 2] = [5, 28];

/// A fault and how long it lasts.
#[derive(Clone, Debug)]
pub struct Step {
    /// The fault.
    pub fault: Fault,
    /// Quiet time before it.
    pub gap: Duration,
    /// How long it is held before healing.
    pub hold: Duration,
}

/// Draws a schedule of `count` faults for an `n`-member cluster from the runtime's seeded RNG;
/// with `flip_bits` it may damage one member's disk for good (once per run: pass it to one
/// schedule only).
pub fn schedule(n: usize, count: usize, flip_bits: bool) -> Vec<Step> {
    let mut rng = madsim::rand::thread_rng();
    let mut flipped = !flip_bits;
    (0..count)
        .map(|_| {
            let choice = if n == 1 {
                // Faults that need no second member.
                [3, 4, 6, 7, 8, 9, 11][rng.gen_range(0..7)]
            } else {
                rng.gen_range(0..12)
            };
            let fault = match choice {
                0 => {
                    let mut side: Vec<usize> = (0..n).filter(|_| rng.gen_bool(0.5)).collect();
                    if side.is_empty() {
                        side.push(rng.gen_range(0..n));
                    }
                    Fault::Partition(side)
                }
                1 => Fault::IsolateLeader,
                2 => {
                    let a = rng.gen_range(0..n);
                    let b = (a + rng.gen_range(1..n)) % n;
                    Fault::OneWayCut(a, b)
                }
                3 => Fault::PacketLoss(rng.gen_range(5..30)),
                4 => Fault::DelaySpike(rng.gen_range(50..400)),
                5 => Fault::KillTwo(rng.gen_range(0..n), rng.gen_range(0..n)),
                6 => Fault::RollingRestart,
                7 => Fault::Pause {
                    leader: rng.gen_bool(0.7),
                    member: rng.gen_range(0..n),
                },
                9 => Fault::DiskFailure {
                    member: rng.gen_range(0..n),
                    errno: DISK_ERRNOS[rng.gen_range(0..2)],
                    syncs_only: rng.gen_bool(0.5),
                },
                11 => Fault::SlowDisk {
                    leader: rng.gen_bool(0.6),
                    member: rng.gen_range(0..n),
                    // Mostly a slow disk; sometimes stalls past an election timeout.
                    sync_ms: if rng.gen_bool(0.6) {
                        rng.gen_range(5..300)
                    } else {
                        rng.gen_range(1000..5000)
                    },
                },
                10 if n >= 3 && !flipped => {
                    flipped = true;
                    Fault::FlipBit {
                        member: rng.gen_range(0..n),
                        seed: rng.gen(),
                    }
                }
                _ => Fault::KillRestart {
                    leader: rng.gen_bool(0.6),
                    member: rng.gen_range(0..n),
                },
            };
            Step {
                fault,
                gap: Duration::from_millis(rng.gen_range(200..3000)),
                hold: Duration::from_millis(rng.gen_range(300..5000)),
            }
        })
        .collect()
}

fn cut(net: &NetSim, cluster: &SimCluster, a: usize, b: usize) {
    net.clog_link(cluster.node_id(a), cluster.node_id(b));
    net.clog_link(cluster.node_id(b), cluster.node_id(a));
}

/// Applies, holds and heals one step.
pub async fn run_step(cluster: &SimCluster, step: &Step, trace: &mut Trace) {
    tokio::time::sleep(step.gap).await;
    let net = NetSim::current();
    let n = cluster.size();
    let tear = || Some(madsim::rand::random::<u64>());
    trace.event(format!("fault {:?} for {:?}", step.fault, step.hold));
    match &step.fault {
        Fault::Partition(side) => {
            for a in side {
                for b in (0..n).filter(|b| !side.contains(b)) {
                    cut(&net, cluster, *a, b);
                }
            }
            tokio::time::sleep(step.hold).await;
        }
        Fault::IsolateLeader => {
            let leader = cluster.leader().unwrap_or(0);
            trace.event(format!("isolating m{}", leader + 1));
            for b in (0..n).filter(|b| *b != leader) {
                cut(&net, cluster, leader, b);
            }
            tokio::time::sleep(step.hold).await;
        }
        Fault::OneWayCut(a, b) => {
            net.clog_link(cluster.node_id(*a), cluster.node_id(*b));
            tokio::time::sleep(step.hold).await;
        }
        Fault::PacketLoss(pct) => {
            net.update_config(|c| c.packet_loss_rate = f64::from(*pct) / 100.0);
            tokio::time::sleep(step.hold).await;
        }
        Fault::DelaySpike(ms) => {
            net.update_config(|c| {
                c.send_latency = Duration::from_millis(1)..Duration::from_millis(*ms)
            });
            tokio::time::sleep(step.hold).await;
        }
        Fault::KillRestart { leader, member } => {
            let victim = if *leader {
                cluster.leader().unwrap_or(*member)
            } else {
                *member
            };
            trace.event(format!("killing m{}", victim + 1));
            cluster.kill(victim, tear());
            tokio::time::sleep(step.hold).await;
            cluster.restart(victim);
        }
        Fault::KillTwo(a, b) => {
            let b = if a == b { (b + 1) % n } else { *b };
            cluster.kill(*a, tear());
            cluster.kill(b, tear());
            tokio::time::sleep(step.hold).await;
            cluster.restart(*a);
            cluster.restart(b);
        }
        Fault::Pause { leader, member } => {
            let victim = if *leader {
                cluster.leader().unwrap_or(*member)
            } else {
                *member
            };
            trace.event(format!("pausing m{}", victim + 1));
            cluster.pause(victim);
            tokio::time::sleep(step.hold).await;
            cluster.resume(victim);
        }
        Fault::DiskFailure {
            member,
            errno,
            syncs_only,
        } => {
            let root = cluster.data_dir(*member).join("member");
            let faults = detcd::io::DiskFaults {
                writes: (!syncs_only).then_some(*errno),
                syncs: Some(*errno),
                ..Default::default()
            };
            detcd::io::set_faults(&root, faults);
            tokio::time::sleep(step.hold).await;
            detcd::io::set_faults(&root, detcd::io::DiskFaults::default());
        }
        Fault::SlowDisk {
            leader,
            member,
            sync_ms,
        } => {
            let victim = if *leader {
                cluster.leader().unwrap_or(*member)
            } else {
                *member
            };
            trace.event(format!("slowing m{}", victim + 1));
            let root = cluster.data_dir(victim).join("member");
            let faults = detcd::io::DiskFaults {
                sync_latency: Duration::from_millis(*sync_ms),
                ..Default::default()
            };
            detcd::io::set_faults(&root, faults);
            tokio::time::sleep(step.hold).await;
            detcd::io::set_faults(&root, detcd::io::DiskFaults::default());
        }
        Fault::FlipBit { member, seed } => {
            cluster.kill(*member, None);
            let root = cluster.data_dir(*member).join("member");
            let dir = if seed % 2 == 0 { "wal" } else { "snap" };
            let flipped = detcd::io::flip_bit(&root, dir, *seed)
                .or_else(|| detcd::io::flip_bit(&root, "wal", *seed));
            trace.event(format!("flipped a bit of m{}: {flipped:?}", member + 1));
            tokio::time::sleep(step.hold).await;
            let file = flipped.as_ref().map(|(file, _)| file.as_str());
            crate::fault_checks::restart_after_flip(cluster, *member, file).await;
        }
        Fault::RollingRestart => {
            // As operators do it (SIGTERM, which hands leadership off), or as a power cycle of
            // each machine in turn: the hold's parity picks, so that schedules stay as drawn.
            let clean = step.hold.as_millis().is_multiple_of(2);
            for i in 0..n {
                if clean {
                    crate::fault_checks::stop_cleanly(cluster, i, trace).await;
                } else {
                    cluster.kill(i, tear());
                }
                tokio::time::sleep(step.hold / 4).await;
                cluster.restart(i);
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
        }
    }
    heal_network(cluster);
    trace.event("healed".to_string());
}

/// Removes every network fault.
pub fn heal_network(cluster: &SimCluster) {
    let net = NetSim::current();
    for a in 0..cluster.size() {
        for b in 0..cluster.size() {
            if a != b {
                net.unclog_link(cluster.node_id(a), cluster.node_id(b));
            }
        }
    }
    net.update_config(|c| {
        c.packet_loss_rate = 0.0;
        c.send_latency = Duration::from_millis(1)..Duration::from_millis(10);
    });
}
