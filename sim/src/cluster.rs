//! A simulated detcd cluster: every member is the real server (`detcd::server::start`) running
//! as a madsim node with its own IP and its own crash-modelling disk.
//!
//! Members are `m1..mN` at `10.0.0.i` (clients on :2379, peers on :2380). A kill drops the
//! node's tasks, then [`detcd::io::crash`] throws away whatever its disk had not fsynced (and may
//! tear the last write); a restart re-runs the server from that disk. Each running member
//! registers its server core so checkers can read its state directly.

use detcd::config::{ClusterState, ServerConfig};
use detcd::server::core::ServerCore;
use madsim::runtime::{Handle, NodeHandle};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

thread_local! {
    static CORES: RefCell<BTreeMap<usize, Arc<ServerCore>>> = const { RefCell::new(BTreeMap::new()) };
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
}

/// IP of member `i` (0-based).
pub fn member_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i + 1) as u8))
}

/// Client URL of member `i`.
pub fn client_url(i: usize) -> String {
    format!("http://{}:2379", member_ip(i))
}

/// The running simulated cluster.
pub struct SimCluster {
    handle: Handle,
    nodes: Vec<NodeHandle>,
    configs: Vec<ServerConfig>,
    running: Vec<bool>,
}

impl SimCluster {
    /// Creates and starts `n` members.
    pub fn start(n: usize, params: MemberParams) -> SimCluster {
        CORES.with(|c| c.borrow_mut().clear());
        let handle = Handle::current();
        let initial: BTreeMap<String, Vec<String>> = (0..n)
            .map(|i| {
                (
                    format!("m{}", i + 1),
                    vec![format!("http://{}:2380", member_ip(i))],
                )
            })
            .collect();
        let mut nodes = Vec::new();
        let mut configs = Vec::new();
        for i in 0..n {
            let config = ServerConfig {
                name: format!("m{}", i + 1),
                data_dir: PathBuf::from(format!("/sim/m{}", i + 1)),
                listen_client: vec![SocketAddr::new(member_ip(i), 2379)],
                advertise_client_urls: vec![client_url(i)],
                listen_peer: vec![SocketAddr::new(member_ip(i), 2380)],
                advertise_peer_urls: vec![format!("http://{}:2380", member_ip(i))],
                initial_cluster: initial.clone(),
                cluster_state: ClusterState::New,
                token: "sim".into(),
                heartbeat: params.heartbeat,
                election_timeout: params.election_timeout,
                snapshot_count: params.snapshot_count,
                catch_up_entries: params.catch_up_entries,
                max_request_bytes: 1_572_864,
                max_txn_ops: 128,
            };
            let init_config = config.clone();
            let node = handle
                .create_node()
                .name(format!("m{}", i + 1))
                .ip(member_ip(i))
                .init(move || {
                    let config = init_config.clone();
                    async move {
                        match detcd::server::start(config).await {
                            Ok(member) => {
                                CORES.with(|c| c.borrow_mut().insert(i, member.core));
                                futures::future::pending::<()>().await;
                            }
                            Err(e) => panic!("member m{} failed to start: {e}", i + 1),
                        }
                    }
                })
                .build();
            nodes.push(node);
            configs.push(config);
        }
        SimCluster {
            handle,
            nodes,
            configs,
            running: vec![true; n],
        }
    }

    /// Number of members.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Whether member `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.running[i]
    }

    /// madsim node id of member `i`.
    pub fn node_id(&self, i: usize) -> madsim::task::NodeId {
        self.nodes[i].id()
    }

    /// Kills member `i` and crashes its disk: unsynced writes are lost, and with `tear` the
    /// last one may survive partially.
    pub fn kill(&mut self, i: usize, tear: Option<u64>) {
        if !self.running[i] {
            return;
        }
        self.handle.kill(self.nodes[i].id());
        detcd::io::crash(&self.configs[i].data_dir.join("member"), tear);
        CORES.with(|c| c.borrow_mut().remove(&i));
        self.running[i] = false;
    }

    /// Freezes member `i` (its tasks stop running; its sockets stay open).
    pub fn pause(&mut self, i: usize) {
        if self.running[i] {
            self.handle.pause(self.nodes[i].id());
        }
    }

    /// Lets a paused member run again.
    pub fn resume(&mut self, i: usize) {
        if self.running[i] {
            self.handle.resume(self.nodes[i].id());
        }
    }

    /// Restarts a killed member from its disk.
    pub fn restart(&mut self, i: usize) {
        if self.running[i] {
            return;
        }
        self.handle.restart(self.nodes[i].id());
        self.running[i] = true;
    }

    /// Server core of member `i` while it runs (None before it has started).
    pub fn core(&self, i: usize) -> Option<Arc<ServerCore>> {
        CORES.with(|c| c.borrow().get(&i).cloned())
    }

    /// Index of the running member that believes it leads at the highest term, if any.
    pub fn leader(&self) -> Option<usize> {
        (0..self.size())
            .filter(|&i| self.running[i])
            .filter_map(|i| self.core(i).map(|c| (i, c.member_id, c.status())))
            .filter(|(_, id, s)| s.leader == *id)
            .max_by_key(|(_, _, s)| s.term)
            .map(|(i, _, _)| i)
    }
}
