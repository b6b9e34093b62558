//! The etcd-compatible server: recovery, the raft node, the gRPC services, and startup.
//!
//! Start-up order: bind every listening address ([`listen`]), recover the WAL and snapshot,
//! rebuild the replicated state (refusing a data dir restored for another member table), start
//! the raft node and the peer transport, serve peers and clients, then publish this member's
//! name and client URLs through raft (as etcd does) so `member list` shows them everywhere.

pub mod alarm;
pub mod apply;
pub mod auth;
#[cfg(not(madsim))]
mod authority;
pub mod auto_compact;
pub mod backend_state;
pub mod bootstrap;
pub mod cluster;
pub mod core;
pub mod election;
pub mod error;
#[cfg(not(madsim))]
pub mod grpc_limit;
#[cfg(not(madsim))]
mod hpack_raw;
pub mod kv;
pub mod leadership;
pub mod lease;
pub mod listen;
pub mod lock;
pub mod lock_rank;
pub mod maintenance;
pub mod member_id_record;
pub mod membership;
pub mod range;
pub mod recipe;
pub mod reconfig;
pub mod snapshot;
#[cfg(not(madsim))]
pub mod tls;
pub mod txn;
pub mod validate;
pub mod watch;

use self::apply::{EtcdStateMachine, ReplicatedState};
use self::core::ServerCore;
use self::membership::Membership;
use crate::config::{ListenAddr, ServerConfig, TlsFiles};
use crate::io::Disk;
use crate::pb::detcdpb::lease_forward_server::LeaseForwardServer;
use crate::pb::detcdpb::peer_server::PeerServer;
use crate::pb::detcdpb::{internal_request::Request as Internal, MemberAttributes};
use crate::pb::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use crate::pb::{v3electionpb::election_server::ElectionServer, v3lockpb::lock_server::LockServer};
use crate::raft::dial::Dialer;
use crate::raft::durable::DurableLog;
use crate::raft::snapshot_transfer::SnapshotInbox;
use crate::raft::storage::RaftStorage;
use crate::raft::transport::{PeerService, Transport, MAX_PEER_MESSAGE};
use crate::raft::{NodeConfig, NodeParts, RaftError, RaftNode};
use crate::storage::Backend;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Extra bytes a gRPC request may carry beyond `--max-request-bytes` (etcd's allowance).
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// The backend file inside the member directory (etcd's path).
pub(crate) const BACKEND_FILE: &str = "snap/db";
/// Upper bound of the backend's page cache (the OS page cache holds more of the file).
pub(crate) const BACKEND_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// This member's name is not in `--initial-cluster`.
    #[error("member {0:?} is not in the initial cluster")]
    NotInCluster(String),
    /// Joining: no member of `--initial-cluster` answered with the member table.
    #[error("could not fetch the cluster's member table from any peer ({0}); is the cluster up?")]
    NoPeerAnswered(String),
    /// Restart: the stored member table has no member with this member's peer URLs.
    #[error(
        "no member of this data dir's member table has peer URLs {0}: the member was removed \
         from the cluster (start a new one with an empty data dir), or \
         --initial-advertise-peer-urls differs from what it was started with"
    )]
    NotInTable(String),
    /// Joining: the cluster has no member with this member's peer URLs.
    #[error(
        "the cluster has no member with peer URLs {0}: add it first (etcdctl member add), then \
         start it with the ETCD_* values that command prints"
    )]
    NotAdded(String),
    /// Recovery or raft failed.
    #[error(transparent)]
    Raft(#[from] RaftError),
    /// The certificate flags cannot be used.
    #[cfg(not(madsim))]
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The backend reflects less than the raft log was compacted to: log entries it needs
    /// are gone (a replaced or damaged `snap/db`).
    #[error(
        "the backend (snap/db) reflects raft index {backend} but the log starts after snapshot \
         {snapshot}: entries in between are gone; restore this member from a backup or replace it"
    )]
    BackendBehind {
        /// The backend's consistent index.
        backend: u64,
        /// The newest snapshot's index.
        snapshot: u64,
    },
    /// The data dir's member table is not the one `--initial-cluster` describes (a data dir
    /// restored for other flags).
    #[error(
        "the data dir's member table {stored:?} does not match --initial-cluster \
         (members {flags:?}): start the member with the flags its data dir was restored with"
    )]
    MemberTableMismatch {
        /// Member ids in the data dir.
        stored: Vec<String>,
        /// Member ids from the flags.
        flags: Vec<String>,
    },
    /// A peer URL is malformed, or cannot be dialled with the peer TLS settings.
    #[error("bad peer URL: {0}")]
    PeerUrl(#[from] crate::raft::dial::DialError),
    /// The data directory could not be created.
    #[error("data dir: {0}")]
    DataDir(#[from] crate::io::DiskError),
    /// The `--auth-token jwt,...` keys cannot be used.
    #[error(transparent)]
    Jwt(#[from] auth::jwt::JwtError),
    /// A client or peer address could not be bound.
    #[error(transparent)]
    Listen(#[from] listen::ListenError),
}

/// A started member.
pub struct RunningMember {
    /// Shared server state (for in-process callers such as the simulator).
    pub core: Arc<ServerCore>,
    /// The serving tasks; they end only on error.
    pub tasks: Vec<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
}

/// Recovers and starts a member, serving peers and clients until the process ends.
pub async fn start(config: ServerConfig) -> Result<RunningMember, StartError> {
    let (client_tls, peer_tls) = tls_files(&config)?;
    let peer_listeners = bind_side(&config.listen_peer, &peer_tls)?;
    let client_listeners = bind_side(&config.listen_client, &client_tls)?;
    let dialer = peer_dialer(&config, &peer_tls)?;
    let disk = Disk::new(config.data_dir.join("member"));
    disk.create_dir_all("")?;
    let (mut durable, mut recovered) = DurableLog::open(disk.clone())?;
    tracing::info!(entries = recovered.entries.len(), "read the WAL");

    let backend =
        Backend::open(&disk, BACKEND_FILE, BACKEND_CACHE_BYTES).map_err(RaftError::from)?;
    tracing::info!(size = backend.file_size(), "opened the backend");
    let mut loaded = backend_state::load(backend).map_err(RaftError::from)?;
    tracing::info!(
        revision = loaded.store.current_revision(),
        keys = loaded.store.key_count(),
        consistent_index = loaded.consistent_index,
        "rebuilt the key index"
    );
    let recorded = member_id_record::read(&disk);
    let identity = bootstrap::identify(
        &config,
        loaded.membership.as_ref(),
        recovered.is_empty(),
        recorded,
        &dialer,
    )
    .await?;
    let me = identity.me;
    if recorded != Some(me) {
        member_id_record::write(&disk, me)?;
    }
    let cid = identity.membership.cluster_id;
    if !identity.joining {
        if recovered.is_empty() {
            let voters = identity.membership.voters().map(|m| m.id).collect();
            bootstrap::write_bootstrap_point(&mut durable, &mut recovered, voters)?;
        }
        // The state machine is empty at the bootstrap point (see `bootstrap`).
        loaded.consistent_index = loaded.consistent_index.max(bootstrap::BOOTSTRAP_INDEX);
    }
    let state = Arc::new(ReplicatedState::from_loaded(
        loaded,
        identity.membership.clone(),
    ));
    let mut machine = EtcdStateMachine::new(state.clone());
    let mut storage = RaftStorage::default();
    let image_state = state.clone();
    storage.set_snapshot_source(Arc::new(move || image_state.snapshot_image()));
    let inbox = SnapshotInbox::new(disk.clone(), "snap").map_err(RaftError::from)?;
    let mut applied = 0;
    if let Some(snapshot) = recovered.snapshot {
        let index = snapshot.get_metadata().index;
        if state.applied_index() < index {
            return Err(StartError::BackendBehind {
                backend: state.applied_index(),
                snapshot: index,
            });
        }
        applied = index;
        storage
            .install_snapshot(snapshot)
            .map_err(RaftError::from)?;
    }
    storage
        .append(&recovered.entries)
        .map_err(RaftError::from)?;
    storage.set_hard_state(recovered.hard_state);
    tracing::info!(
        name = %config.name,
        member_id = %format!("{me:x}"),
        cluster_id = %format!("{cid:x}"),
        applied,
        joining = identity.joining,
        entries = storage.entries_from(applied + 1).map(|e| e.len()).unwrap_or(0),
        "recovered member state"
    );

    let (transport, reports) = Transport::new(me, cid, dialer.clone());
    let heard_from = transport.heard();
    transport.set_peers(&peer_urls(&state.membership(), me))?;
    let peers = transport.clone();
    machine.on_members_changed(Box::new(move |table| {
        if let Err(e) = peers.set_peers(&peer_urls(table, me)) {
            tracing::error!(error = %e, "a member's peer URL is unusable");
        }
    }));
    let election_ticks =
        (config.election_timeout.as_millis() / config.heartbeat.as_millis().max(1)) as usize;
    let node_config = NodeConfig {
        id: me,
        tick: config.heartbeat,
        election_ticks,
        heartbeat_ticks: 1,
        snapshot_count: config.snapshot_count,
        snapshot_bytes: config.snapshot_bytes,
        catch_up_entries: config.catch_up_entries,
        seed: madsim::rand::random(),
    };
    let raft = RaftNode::start(
        node_config,
        NodeParts {
            storage,
            durable,
            machine,
            applied,
            transport,
            reports,
            inbox: inbox.clone(),
        },
    )
    .await?;

    let core = Arc::new(ServerCore {
        raft: raft.clone(),
        state,
        member_id: me,
        cluster_id: cid,
        limits: validate::Limits {
            max_txn_ops: config.max_txn_ops,
            max_request_bytes: config.max_request_bytes,
        },
        request_timeout: Duration::from_secs(5) + 2 * config.election_timeout,
        disk,
        expiry: std::sync::Mutex::new(crate::lease::ExpiryClock::default()),
        min_lease_ttl: (config.election_timeout.as_millis() * 3 / 2).div_ceil(1000) as i64,
        quota_bytes: config.quota_bytes,
        heard_from: heard_from.clone(),
        strict_reconfig: config.strict_reconfig_check,
        dialer,
        client_cert_auth: config.client_tls.client_cert_auth,
        bcrypt_cost: config.auth.bcrypt_cost,
    });
    core.state.auth.set_token_ttl(config.auth.token_ttl);
    if let Some(options) = &config.auth.jwt {
        core.state.auth.use_jwt(auth::jwt::JwtKeys::load(options)?);
    }

    let mut tasks = Vec::new();
    for listener in peer_listeners {
        let table = core.state.clone();
        let removed = Arc::new(move |id| table.membership().removed.contains(&id));
        let service = PeerServer::new(PeerService::new(
            cid,
            raft.clone(),
            heard_from.clone(),
            inbox.clone(),
            removed,
        ))
        .max_decoding_message_size(MAX_PEER_MESSAGE);
        let forward = LeaseForwardServer::new(lease::LeaseService::new(core.clone()));
        let members = ClusterServer::new(cluster::ClusterService::for_peers(core.clone()));
        let router = listen::server()
            .add_service(service)
            .add_service(forward)
            .add_service(members);
        tasks.push(tokio::spawn(listener.serve(router)));
    }
    for listener in client_listeners {
        tasks.push(tokio::spawn(serve_clients(
            core.clone(),
            listener,
            config.max_request_bytes,
        )));
    }
    tokio::spawn(lease::run_expiry(core.clone()));
    if config.auto_compaction != auto_compact::AutoCompaction::Off {
        tokio::spawn(auto_compact::run(core.clone(), config.auto_compaction));
    }
    tokio::spawn(publish_attributes(
        core.clone(),
        config.name.clone(),
        config.advertise_client_urls.clone(),
    ));
    tracing::info!(clients = ?config.listen_client, peers = ?config.listen_peer, "serving");
    Ok(RunningMember { core, tasks })
}

/// The first peer URL of every member but `me`.
fn peer_urls(table: &Membership, me: u64) -> std::collections::BTreeMap<u64, String> {
    table
        .members
        .values()
        .filter(|m| m.id != me)
        .filter_map(|m| Some((m.id, m.peer_urls.first()?.clone())))
        .collect()
}

/// Binds every address in `addrs`, failing on the first that cannot be bound.
fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<listen::Listener>, StartError> {
    Ok(addrs
        .iter()
        .map(|addr| listen::bind(*addr))
        .collect::<Result<_, _>>()?)
}

/// Binds `addrs`, the `https://` ones with TLS from `tls` (one side's certificate flags).
fn bind_side(addrs: &[ListenAddr], tls: &TlsFiles) -> Result<Vec<listen::Listener>, StartError> {
    let plain: Vec<SocketAddr> = addrs.iter().map(|l| l.addr).collect();
    let listeners = bind_all(&plain)?;
    #[cfg(not(madsim))]
    {
        let acceptor = match addrs.iter().any(|l| l.tls) {
            true => Some(tls::acceptor(tls)?),
            false => None,
        };
        Ok(listeners
            .into_iter()
            .zip(addrs)
            .map(|(listener, l)| match (&acceptor, l.tls) {
                (Some(acceptor), true) => listener.with_tls(acceptor.clone()),
                _ => listener,
            })
            .collect())
    }
    #[cfg(madsim)]
    {
        let _ = tls;
        Ok(listeners)
    }
}

/// The client and peer certificate settings, with `--auto-tls` / `--peer-auto-tls`
/// certificates generated (for the hosts this member listens on) where asked for.
fn tls_files(config: &ServerConfig) -> Result<(TlsFiles, TlsFiles), StartError> {
    #[cfg(not(madsim))]
    {
        let hosts = |addrs: &[ListenAddr]| -> Vec<String> {
            let mut hosts: Vec<String> = addrs.iter().map(|l| l.addr.ip().to_string()).collect();
            hosts.push("localhost".into());
            hosts.dedup();
            hosts
        };
        let dir = &config.data_dir;
        let client = hosts(&config.listen_client);
        let peer = hosts(&config.listen_peer);
        Ok((
            tls::resolve_auto(&config.client_tls, dir, "client", &client)?,
            tls::resolve_auto(&config.peer_tls, dir, "peer", &peer)?,
        ))
    }
    #[cfg(madsim)]
    Ok((config.client_tls.clone(), config.peer_tls.clone()))
}

/// How this member dials its peers: with TLS from the peer certificate settings `files` when
/// it has them (in simulation: always plain).
fn peer_dialer(config: &ServerConfig, files: &TlsFiles) -> Result<Dialer, StartError> {
    #[cfg(not(madsim))]
    {
        let https = |u: &String| u.starts_with("https://");
        let any_https = config.initial_cluster.values().flatten().any(https)
            || config.advertise_peer_urls.iter().any(https);
        if files.trusted_ca_file.is_some() || (files.has_certificate() && any_https) {
            return Ok(tls::peer_dialer(files)?);
        }
    }
    let _ = (config, files);
    Ok(Dialer::default())
}

async fn serve_clients(
    core: Arc<ServerCore>,
    listener: listen::Listener,
    max_request_bytes: usize,
) -> Result<(), tonic::transport::Error> {
    let limit = max_request_bytes + GRPC_OVERHEAD_BYTES;
    let router = listen::server()
        .add_service(
            KvServer::new(kv::KvService::new(core.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            ClusterServer::new(cluster::ClusterService::new(core.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            MaintenanceServer::new(maintenance::MaintenanceService::new(core.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            WatchServer::new(watch::WatchService::new(core.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            LeaseServer::new(lease::LeaseService::new(core.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(AuthServer::new(auth::AuthService::new(core.clone())))
        .add_service(
            LockServer::new(lock::LockService::new(core.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            ElectionServer::new(election::ElectionService::new(core.clone()))
                .max_decoding_message_size(limit),
        );
    listener.serve(router).await
}

/// Proposes this member's name and client URLs until the cluster has applied them.
async fn publish_attributes(core: Arc<ServerCore>, name: String, client_urls: Vec<String>) {
    let attrs = MemberAttributes {
        member_id: core.member_id,
        name,
        client_urls,
    };
    loop {
        match core
            .replicate(Internal::MemberAttributes(attrs.clone()))
            .await
        {
            Ok(_) => {
                tracing::info!("published member attributes to the cluster");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "publishing member attributes failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
