//! A simulated detcd cluster: every member is the real server (`detcd::server::start`) running
//! as a madsim node with its own IP and its own crash-modelling disk.
//!
//! Members are `m1..mN` at `10.0.0.i` (clients on :2379, peers on :2380). A kill drops the
//! node's tasks, then [`detcd::io::crash`] throws away whatever its disk had not fsynced (and may
//! tear the last write); a restart re-runs the server from that disk. Each running member
//! registers its server core so checkers can read its state directly.
//!
//! Clocks: each member gets a skewed clock (`detcd::io::clock::set_skew`: an offset of up to 3 s
//! and a rate within ±5%), so lease deadlines and raft ticks run on clocks that disagree.
//!
//! Supervision (what systemd's `Restart=always` does for etcd): a member whose raft node stops
//! (it could not persist) or that fails to start on a disk error is crashed — its unsynced
//! writes dropped — and restarted 1–3 s later by a supervisor task, unless the harness killed or
//! restarted it meanwhile (a generation counter tells). A member that refuses to start because
//! its durable state is damaged (a lost WAL tail, a corrupt record) stays down for the rest of
//! the run, as an operator would have to replace it: [`SimCluster::refused`] lists it and the
//! checkers count it as down. So does a member that was removed from the cluster, or that
//! cannot find itself in the member table when it restarts or joins.

use detcd::config::{ClusterState, ListenAddr, ServerConfig};
use detcd::server::core::ServerCore;
use madsim::rand::Rng;
use madsim::runtime::{Handle, NodeHandle};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

thread_local! {
    static CORES: RefCell<BTreeMap<usize, Arc<ServerCore>>> = const { RefCell::new(BTreeMap::new()) };
    /// Members whose server stopped (or failed to start) on an I/O error, awaiting supervision.
    static STOPPED: RefCell<BTreeMap<usize, String>> = const { RefCell::new(BTreeMap::new()) };
    /// Every stop the supervisor handled (for the trace).
    static SUPERVISED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// Members that refused to start from damaged durable state, with the error.
    static REFUSED: RefCell<BTreeMap<usize, String>> = const { RefCell::new(BTreeMap::new()) };
    /// Members the harness is stopping cleanly: their raft stop is not a failure to supervise.
    static STOPPING: RefCell<BTreeSet<usize>> = const { RefCell::new(BTreeSet::new()) };
}

/// How often the supervisor looks for stopped members.
const SUPERVISE_EVERY: Duration = Duration::from_millis(100);

/// The runs' view of each member, shared with the supervisor task.
struct Members {
    nodes: Vec<NodeHandle>,
    /// Each slot's server config, read by the slot's node when it (re)starts. A lock of its
    /// own, taken after (never while waiting for) the members lock: restarts run the node's
    /// init while the members lock is held.
    configs: Arc<std::sync::Mutex<Vec<ServerConfig>>>,
    running: Vec<bool>,
    /// Bumped by every kill and restart the harness makes.
    generation: Vec<u64>,
}

type SharedMembers = Arc<std::sync::Mutex<Members>>;

impl Members {
    /// Slot `i`'s current config.
    fn config(&self, i: usize) -> ServerConfig {
        self.configs.lock().expect("configs")[i].clone()
    }
}

/// The member's life inside its node: serve until the raft node stops, then report.
async fn run_member(i: usize, config: ServerConfig) {
    let refusal = |e: &detcd::server::StartError| {
        matches!(
            e,
            detcd::server::StartError::Raft(
                detcd::raft::RaftError::LostTail { .. }
                    | detcd::raft::RaftError::Corrupt(_)
                    | detcd::raft::RaftError::Storage(detcd::storage::StorageError::Corrupt { .. })
            )
        )
    };
    match detcd::server::start(config).await {
        Ok(member) => {
            CORES.with(|c| c.borrow_mut().insert(i, member.core.clone()));
            let reason = member.core.raft.stopped().await;
            CORES.with(|c| c.borrow_mut().remove(&i));
            if STOPPING.with(|s| s.borrow_mut().remove(&i)) {
                // Stopped cleanly by the harness, which ends the process.
            } else if reason == detcd::raft::RaftError::Removed.to_string() {
                // Removed from the cluster: it stays down, as etcd exits for good.
                REFUSED.with(|r| r.borrow_mut().insert(i, reason));
            } else {
                STOPPED.with(|s| s.borrow_mut().insert(i, reason));
            }
        }
        Err(
            e @ (detcd::server::StartError::NotInTable(_)
            | detcd::server::StartError::NotAdded(_)
            | detcd::server::StartError::Raft(detcd::raft::RaftError::Removed)),
        ) => {
            REFUSED.with(|r| r.borrow_mut().insert(i, e.to_string()));
        }
        Err(e) if refusal(&e) => {
            REFUSED.with(|r| r.borrow_mut().insert(i, e.to_string()));
        }
        Err(detcd::server::StartError::DataDir(e)) => {
            STOPPED.with(|s| s.borrow_mut().insert(i, e.to_string()));
        }
        Err(detcd::server::StartError::Raft(detcd::raft::RaftError::Storage(e))) => {
            STOPPED.with(|s| s.borrow_mut().insert(i, e.to_string()));
        }
        Err(e) => panic!("member m{} failed to start: {e}", i + 1),
    }
    futures::future::pending::<()>().await;
}

/// Crashes and restarts members whose server stopped, like a service manager.
async fn supervise(handle: Handle, members: SharedMembers) {
    loop {
        tokio::time::sleep(SUPERVISE_EVERY).await;
        let stopped = STOPPED.with(|s| std::mem::take(&mut *s.borrow_mut()));
        for (i, reason) in stopped {
            let (node, generation) = {
                let m = members.lock().expect("members");
                if !m.running[i] {
                    continue;
                }
                handle.kill(m.nodes[i].id());
                detcd::io::crash(&m.config(i).data_dir.join("member"), None);
                (m.nodes[i].id(), m.generation[i])
            };
            SUPERVISED.with(|l| l.borrow_mut().push(format!("m{}: {reason}", i + 1)));
            let handle = handle.clone();
            let members = members.clone();
            let delay = Duration::from_millis(madsim::rand::thread_rng().gen_range(1000..3000));
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let m = members.lock().expect("members");
                if m.running[i] && m.generation[i] == generation {
                    handle.restart(node);
                }
            });
        }
    }
}

/// Server timing and log parameters of a run.
#[derive(Clone, Copy, Debug)]
pub struct MemberParams {
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Raft election timeout.
    pub election_timeout: Duration,
    /// `--snapshot-count`.
    pub snapshot_count: u64,
    /// Entries kept behind a snapshot.
    pub catch_up_entries: u64,
    /// `--quota-backend-bytes` as checked (`None`: unlimited).
    pub quota_bytes: Option<u64>,
}

/// IP of member `i` (0-based).
pub fn member_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i + 1) as u8))
}

/// Client URL of member `i`.
pub fn client_url(i: usize) -> String {
    format!("http://{}:2379", member_ip(i))
}

/// A lazily connecting gRPC channel to member `i`'s client port (1 s connect timeout), as every
/// simulated client uses.
pub fn member_channel(i: usize) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(client_url(i))
        .expect("valid member URL")
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
}

/// The running simulated cluster.
pub struct SimCluster {
    handle: Handle,
    members: SharedMembers,
    size: usize,
}

impl SimCluster {
    /// Creates and starts `n` members.
    pub fn start(n: usize, params: MemberParams) -> SimCluster {
        CORES.with(|c| c.borrow_mut().clear());
        STOPPED.with(|s| s.borrow_mut().clear());
        REFUSED.with(|r| r.borrow_mut().clear());
        STOPPING.with(|s| s.borrow_mut().clear());
        crate::fault_checks::reset();
        SUPERVISED.with(|l| l.borrow_mut().clear());
        let handle = Handle::current();
        let initial: BTreeMap<String, Vec<String>> = (0..n)
            .map(|i| {
                (
                    format!("m{}", i + 1),
                    vec![format!("http://{}:2380", member_ip(i))],
                )
            })
            .collect();
        let members = Arc::new(std::sync::Mutex::new(Members {
            nodes: Vec::new(),
            configs: Arc::default(),
            running: vec![true; n],
            generation: vec![0; n],
        }));
        for i in 0..n {
            let config = ServerConfig {
                name: format!("m{}", i + 1),
                data_dir: PathBuf::from(format!("/sim/m{}", i + 1)),
                listen_client: vec![ListenAddr::plain(SocketAddr::new(member_ip(i), 2379))],
                client_tls: Default::default(),
                advertise_client_urls: vec![client_url(i)],
                listen_peer: vec![ListenAddr::plain(SocketAddr::new(member_ip(i), 2380))],
                peer_tls: Default::default(),
                advertise_peer_urls: vec![format!("http://{}:2380", member_ip(i))],
                initial_cluster: initial.clone(),
                cluster_state: ClusterState::New,
                token: "sim".into(),
                heartbeat: params.heartbeat,
                election_timeout: params.election_timeout,
                snapshot_count: params.snapshot_count,
                // 24–119 bytes per counted entry, around a simulated entry's size (its 16-byte
                // context and a small request), so that points come by either rule.
                snapshot_bytes: params.snapshot_count * (24 + params.snapshot_count % 96),
                strict_reconfig_check: true,
                catch_up_entries: params.catch_up_entries,
                max_request_bytes: 1_572_864,
                max_txn_ops: 128,
                // bcrypt's cheapest cost: the simulator checks rules, not hash strength.
                auth: detcd::config::AuthConfig {
                    bcrypt_cost: 4,
                    ..Default::default()
                },
                quota_bytes: params.quota_bytes,
                // Its compactions would not be in the checked history.
                auto_compaction: detcd::server::auto_compact::AutoCompaction::Off,
            };
            let shared = members.lock().expect("members").configs.clone();
            shared.lock().expect("configs").push(config);
            // The node runs whatever config its slot has when it (re)starts: a replaced member
            // starts afresh with a new data dir.
            let node = handle
                .create_node()
                .name(format!("m{}", i + 1))
                .ip(member_ip(i))
                .init(move || {
                    let config = shared.lock().expect("configs")[i].clone();
                    run_member(i, config)
                })
                .build();
            // Every member's clock is a little off: up to 3 s ahead and ±5% fast or slow.
            let mut rng = madsim::rand::thread_rng();
            let skew = detcd::io::clock::Skew {
                offset_ms: rng.gen_range(0..3000),
                rate: rng.gen_range(0.95..1.05),
            };
            detcd::io::clock::set_skew(node.id(), skew);
            members.lock().expect("members").nodes.push(node);
        }
        handle
            .create_node()
            .name("supervisor")
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 9, 1)))
            .build()
            .spawn(supervise(handle.clone(), members.clone()));
        SimCluster {
            handle,
            members,
            size: n,
        }
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Members> {
        self.members.lock().expect("members")
    }

    /// Members that refused to start from damaged durable state, with their errors.
    pub fn refused(&self) -> BTreeMap<usize, String> {
        REFUSED.with(|r| r.borrow().clone())
    }

    /// Every stop the supervisor has handled so far (member and reason), oldest first.
    pub fn supervised(&self) -> Vec<String> {
        SUPERVISED.with(|l| l.borrow().clone())
    }

    /// Whether member `i` runs and serves (not killed, not refused).
    pub fn is_serving(&self, i: usize) -> bool {
        self.is_running(i) && !self.refused().contains_key(&i)
    }

    /// Waits (up to `limit`) until every running member has either started serving or refused
    /// to start, so that [`SimCluster::refused`] is settled.
    pub async fn wait_started(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            let refused = self.refused();
            let settled = (0..self.size)
                .filter(|i| self.is_running(*i))
                .all(|i| self.core(i).is_some() || refused.contains_key(&i));
            if settled {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Data directory of member `i`.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.members().config(i).data_dir
    }

    /// Number of members.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether member `i` runs (its process is up, or is being restarted by the supervisor).
    pub fn is_running(&self, i: usize) -> bool {
        self.members().running[i]
    }

    /// madsim node id of member `i`.
    pub fn node_id(&self, i: usize) -> madsim::task::NodeId {
        self.members().nodes[i].id()
    }

    /// Kills member `i` and crashes its disk: unsynced writes are lost, and with `tear` the
    /// last one may survive partially.
    pub fn kill(&self, i: usize, tear: Option<u64>) {
        self.take_down(i, Some(tear));
    }

    /// Stops member `i` as SIGTERM stops detcd ([`ServerCore::stop_cleanly`]: leadership handed
    /// off, raft stopped cleanly), then ends its process without crashing its disk: what it
    /// wrote survives, synced or not, as after a process exit. Returns the member leadership
    /// was handed to, if it moved.
    pub async fn stop_cleanly(&self, i: usize) -> Option<u64> {
        let core = self.core(i)?;
        let (node, recent) = {
            let m = self.members();
            if !m.running[i] {
                return None;
            }
            (m.nodes[i].clone(), m.config(i).election_timeout)
        };
        STOPPING.with(|s| s.borrow_mut().insert(i));
        let moved = node
            .spawn(async move { core.stop_cleanly(recent).await })
            .await;
        STOPPING.with(|s| s.borrow_mut().remove(&i));
        self.take_down(i, None);
        moved.ok().flatten()
    }

    /// Ends member `i`'s process; with `crash`, its disk is crashed too (with that tear).
    fn take_down(&self, i: usize, crash: Option<Option<u64>>) {
        let mut m = self.members();
        if !m.running[i] {
            return;
        }
        self.handle.kill(m.nodes[i].id());
        if let Some(tear) = crash {
            detcd::io::crash(&m.config(i).data_dir.join("member"), tear);
        }
        CORES.with(|c| c.borrow_mut().remove(&i));
        STOPPED.with(|s| s.borrow_mut().remove(&i));
        m.running[i] = false;
        m.generation[i] += 1;
    }

    /// Freezes member `i` (its tasks stop running; its sockets stay open).
    pub fn pause(&self, i: usize) {
        let m = self.members();
        if m.running[i] {
            self.handle.pause(m.nodes[i].id());
        }
    }

    /// Lets a paused member run again.
    pub fn resume(&self, i: usize) {
        let m = self.members();
        if m.running[i] {
            self.handle.resume(m.nodes[i].id());
        }
    }

    /// Restarts a killed member from its disk.
    pub fn restart(&self, i: usize) {
        let mut m = self.members();
        if m.running[i] {
            return;
        }
        self.handle.restart(m.nodes[i].id());
        REFUSED.with(|r| r.borrow_mut().remove(&i));
        m.running[i] = true;
        m.generation[i] += 1;
    }

    /// Turns slot `i` (killed now if it runs) into a new member that joins the running cluster: an empty data
    /// dir of its own (the `replacement`-th), `--initial-cluster-state existing`; then starts it.
    pub fn restart_replaced(&self, i: usize, replacement: usize) {
        // A fault step running meanwhile may have restarted the old member.
        self.kill(i, None);
        {
            let m = self.members();
            let mut configs = m.configs.lock().expect("configs");
            configs[i].data_dir = PathBuf::from(format!("/sim/m{}-r{replacement}", i + 1));
            configs[i].cluster_state = ClusterState::Existing;
        }
        self.restart(i);
    }

    /// Peer URL of member `i`.
    pub fn peer_url(&self, i: usize) -> String {
        self.members().config(i).advertise_peer_urls[0].clone()
    }

    /// Server core of member `i` while it runs (None before it has started).
    pub fn core(&self, i: usize) -> Option<Arc<ServerCore>> {
        CORES.with(|c| c.borrow().get(&i).cloned())
    }

    /// Index of the running member that believes it leads at the highest term, if any.
    pub fn leader(&self) -> Option<usize> {
        (0..self.size())
            .filter(|&i| self.is_running(i))
            .filter_map(|i| self.core(i).map(|c| (i, c.member_id, c.status())))
            .filter(|(_, id, s)| s.leader == *id)
            .max_by_key(|(_, _, s)| s.term)
            .map(|(i, _, _)| i)
    }
}
