//! Server configuration: etcd's flags (and their `ETCD_*` environment variables), parsed and
//! checked into a [`ServerConfig`].
//!
//! Defaults follow etcd: with no flags a single member named `default` serves clients on
//! `http://localhost:2379`, peers on `http://localhost:2380`, and keeps data in `default.etcd`.

use crate::server::auto_compact::{AutoCompaction, AutoCompactionError};
use clap::Parser;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of the `detcd` server (a subset of etcd's, same names and meanings).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "detcd",
    about = "An etcd v3 compatible, Raft-replicated key-value store",
    disable_version_flag = true
)]
pub struct Flags {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: `<name>.etcd`).
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub listen_client_urls: String,
    /// Client URLs to advertise to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub advertise_client_urls: String,
    /// URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub listen_peer_urls: String,
    /// This member's peer URLs to advertise to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping: `name=peerURL,...`.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// `new` for a new cluster, `existing` to join one.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new")]
    pub initial_cluster_state: String,
    /// Initial cluster token, making ids unique across clusters.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Reject membership changes that could leave the cluster without quorum.
    #[arg(
        long,
        env = "ETCD_STRICT_RECONFIG_CHECK",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub strict_reconfig_check: bool,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Entries a leader keeps behind a snapshot for slow followers (etcd 3.5's flag).
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES",
        default_value_t = 5000
    )]
    pub experimental_snapshot_catchup_entries: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    pub max_request_bytes: usize,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: usize,
    /// Interpret 'auto-compaction-retention' one of: periodic|revision.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic")]
    pub auto_compaction_mode: String,
    /// Auto compaction retention for mvcc key value store. 0 means disable auto compaction.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,
    /// Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).
    #[arg(
        long,
        env = "ETCD_QUOTA_BACKEND_BYTES",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub quota_backend_bytes: i64,
    /// Auth token provider: `simple` (etcd's default) or
    /// `jwt,pub-key=<file>,priv-key=<file>,sign-method=<alg>[,ttl=<duration>]`.
    #[arg(long, env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,
    /// Seconds a simple token lives after its last use.
    #[arg(long, env = "ETCD_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub auth_token_ttl: u64,
    /// bcrypt cost of password hashes (4 to 31).
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = 10)]
    pub bcrypt_cost: u32,
    /// Logger: `zap` (JSON lines, etcd's default) or `capnslog` (plain text).
    #[arg(long, env = "ETCD_LOGGER", default_value = "zap")]
    pub logger: String,
    /// Log level: debug, info, warn, error, panic or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Path to the client server TLS cert file.
    #[arg(long, env = "ETCD_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Enable client cert authentication.
    #[arg(
        long,
        env = "ETCD_CLIENT_CERT_AUTH",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub client_cert_auth: bool,
    /// Path to the peer server TLS cert file.
    #[arg(long, env = "ETCD_PEER_CERT_FILE")]
    pub peer_cert_file: Option<PathBuf>,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE")]
    pub peer_key_file: Option<PathBuf>,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE")]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Enable peer client cert authentication.
    #[arg(
        long,
        env = "ETCD_PEER_CLIENT_CERT_AUTH",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub peer_client_cert_auth: bool,
    /// Comma-separated list of supported TLS cipher suites between client/server and peers
    /// (empty will be auto-populated by Go).
    #[arg(long, env = "ETCD_CIPHER_SUITES", default_value = "")]
    pub cipher_suites: String,
    /// Client TLS using generated certificates.
    #[arg(
        long,
        env = "ETCD_AUTO_TLS",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub auto_tls: bool,
    /// Peer TLS using generated certificates.
    #[arg(
        long,
        env = "ETCD_PEER_AUTO_TLS",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub peer_auto_tls: bool,
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
}

/// A listening address and whether it speaks TLS (an `https://` URL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr {
    /// The socket address.
    pub addr: SocketAddr,
    /// TLS (`https://`) rather than plain (`http://`).
    pub tls: bool,
}

impl ListenAddr {
    /// A plain (`http://`) listening address.
    pub fn plain(addr: SocketAddr) -> ListenAddr {
        ListenAddr { addr, tls: false }
    }
}

/// The certificate flags of one side (clients or peers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// The server's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// CA certificates client certificates are checked against (PEM).
    pub trusted_ca_file: Option<PathBuf>,
    /// Whether a client must present a certificate signed by the trusted CA.
    pub client_cert_auth: bool,
    /// `--auto-tls` / `--peer-auto-tls`: without a certificate and key, a self-signed pair is
    /// generated into the data dir (`fixtures/client` or `fixtures/peer`).
    pub auto: bool,
    /// `--cipher-suites`: the TLS 1.2 suites offered, by their IANA names (empty: rustls's
    /// defaults). TLS 1.3 suites are always offered, as Go does.
    pub cipher_suites: Vec<String>,
}

impl TlsFiles {
    /// Whether this side has (or will generate) a certificate and key.
    pub fn has_certificate(&self) -> bool {
        self.auto || (self.cert_file.is_some() && self.key_file.is_some())
    }
}

/// Whether this member bootstraps a new cluster or joins an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// `--initial-cluster-state new`.
    New,
    /// `--initial-cluster-state existing`.
    Existing,
}

/// A checked configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Member name.
    pub name: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Client listen addresses.
    pub listen_client: Vec<ListenAddr>,
    /// TLS for the `https://` client listeners.
    pub client_tls: TlsFiles,
    /// Advertised client URLs.
    pub advertise_client_urls: Vec<String>,
    /// Peer listen addresses.
    pub listen_peer: Vec<ListenAddr>,
    /// TLS for the `https://` peer listeners, and for dialing `https://` peers.
    pub peer_tls: TlsFiles,
    /// This member's advertised peer URLs.
    pub advertise_peer_urls: Vec<String>,
    /// `name → peer URLs` from `--initial-cluster`.
    pub initial_cluster: BTreeMap<String, Vec<String>>,
    /// New or existing cluster.
    pub cluster_state: ClusterState,
    /// Cluster token.
    pub token: String,
    /// Heartbeat interval (one raft tick).
    pub heartbeat: Duration,
    /// Election timeout.
    pub election_timeout: Duration,
    /// Entries between snapshots.
    pub snapshot_count: u64,
    /// Bytes of log entries between snapshots, whatever their count (no etcd flag: the
    /// default is [`crate::raft::DEFAULT_SNAPSHOT_BYTES`]).
    pub snapshot_bytes: u64,
    /// Whether membership changes that could cost the quorum are refused.
    pub strict_reconfig_check: bool,
    /// Entries kept behind a snapshot.
    pub catch_up_entries: u64,
    /// Max request size.
    pub max_request_bytes: usize,
    /// Space quota of the backend (`None`: unlimited).
    pub quota_bytes: Option<u64>,
    /// Auto-compaction of the history.
    pub auto_compaction: AutoCompaction,
    /// Max ops per txn branch.
    pub max_txn_ops: usize,
    /// Tokens and password hashing.
    pub auth: AuthConfig,
}

/// How auth hands out tokens and hashes passwords.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// How long a simple token lives after its last use (`--auth-token-ttl`).
    pub token_ttl: Duration,
    /// `--bcrypt-cost`.
    pub bcrypt_cost: u32,
    /// `--auth-token jwt,...`: JWT tokens instead of simple ones.
    pub jwt: Option<crate::server::auth::jwt::JwtOptions>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            token_ttl: crate::auth::tokens::DEFAULT_TTL,
            bcrypt_cost: bcrypt::DEFAULT_COST,
            jwt: None,
        }
    }
}

/// A flag value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A URL that is not `scheme://host:port`.
    #[error("invalid URL {0:?}: expected http://host:port")]
    BadUrl(String),
    /// `--initial-cluster` entry without `name=url`.
    #[error("invalid --initial-cluster entry {0:?}: expected name=url")]
    BadInitialCluster(String),
    /// This member's name is missing from `--initial-cluster`.
    #[error("couldn't find local name {0:?} in the initial cluster configuration")]
    NameNotInCluster(String),
    /// The advertised peer URLs differ from those in `--initial-cluster`.
    #[error("--initial-cluster has {name}={listed:?} but --initial-advertise-peer-urls are {advertised:?}")]
    PeerUrlMismatch {
        /// Member name.
        name: String,
        /// URLs in `--initial-cluster`.
        listed: Vec<String>,
        /// URLs advertised.
        advertised: Vec<String>,
    },
    /// Unknown `--initial-cluster-state`.
    #[error("invalid --initial-cluster-state {0:?}: expected new or existing")]
    BadClusterState(String),
    /// Auto-compaction flags that cannot work.
    #[error(transparent)]
    AutoCompaction(#[from] AutoCompactionError),
    /// An `https://` client URL without a certificate and key.
    #[error("TLS key/cert (--cert-file, --key-file) must be provided for client url {0} with HTTPS scheme")]
    ClientTlsWithoutCert(String),
    /// An `https://` peer URL without a certificate and key.
    #[error("TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url {0} with HTTPS scheme")]
    PeerTlsWithoutCert(String),
    /// Timing flags that cannot work.
    #[error("--election-timeout ({election}ms) must be at least 5 times --heartbeat-interval ({heartbeat}ms)")]
    BadTiming {
        /// Heartbeat interval.
        heartbeat: u64,
        /// Election timeout.
        election: u64,
    },
    /// An `--auth-token` provider etcd does not have.
    #[error("unknown token type {0:?}: --auth-token takes simple or jwt,...")]
    AuthToken(String),
    /// Bad `--auth-token jwt,...` options.
    #[error(transparent)]
    Jwt(#[from] crate::server::auth::jwt::JwtError),
    /// A `--bcrypt-cost` bcrypt refuses.
    #[error("invalid bcrypt-cost: {0} (must be between 4 and 31)")]
    BcryptCost(u32),
}

/// Splits a comma-separated flag value, dropping empty items.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses `http://host:port` into a socket address (`localhost` means 127.0.0.1).
pub fn url_to_addr(url: &str) -> Result<SocketAddr, ConfigError> {
    let bad = || ConfigError::BadUrl(url.to_string());
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .or_else(|| url.strip_prefix("unix://"))
        .ok_or_else(bad)?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host == "localhost" || host.is_empty() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse().map_err(|_| bad())?
    };
    Ok(SocketAddr::new(ip, port))
}

/// Parses a listen URL list; an `https://` URL needs `tls` to name a certificate and key,
/// or `without_cert` (which side's error) refuses it.
fn listen_addrs(
    urls: &str,
    tls: &TlsFiles,
    without_cert: fn(String) -> ConfigError,
) -> Result<Vec<ListenAddr>, ConfigError> {
    split_list(urls)
        .iter()
        .map(|url| {
            let addr = url_to_addr(url)?;
            let secure = url.starts_with("https://");
            if secure && !tls.has_certificate() {
                return Err(without_cert(url.clone()));
            }
            Ok(ListenAddr { addr, tls: secure })
        })
        .collect()
}

/// Parses `--initial-cluster` (`name=url,...`; `None`: this member alone at `advertised`)
/// and checks that member `name` is in it with exactly the `advertised` peer URLs (etcd's
/// bootstrap checks, shared by the server and `snapshot restore`).
pub fn initial_cluster(
    name: &str,
    initial: Option<&str>,
    advertised: &[String],
) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
    let initial = initial.map_or_else(
        || format!("{name}={}", advertised.join(",")),
        str::to_string,
    );
    let mut cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in split_list(&initial) {
        let (member, url) = entry
            .split_once('=')
            .ok_or_else(|| ConfigError::BadInitialCluster(entry.clone()))?;
        url_to_addr(url)?;
        cluster
            .entry(member.to_string())
            .or_default()
            .push(url.to_string());
    }
    let listed = cluster
        .get(name)
        .ok_or_else(|| ConfigError::NameNotInCluster(name.to_string()))?;
    let mut a = listed.clone();
    let mut b = advertised.to_vec();
    a.sort();
    b.sort();
    if a != b {
        return Err(ConfigError::PeerUrlMismatch {
            name: name.to_string(),
            listed: listed.clone(),
            advertised: advertised.to_vec(),
        });
    }
    Ok(cluster)
}

impl Flags {
    /// Checks the flags and builds the configuration.
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
        if self.election_timeout < 5 * self.heartbeat_interval || self.heartbeat_interval == 0 {
            return Err(ConfigError::BadTiming {
                heartbeat: self.heartbeat_interval,
                election: self.election_timeout,
            });
        }
        let jwt = match self.auth_token.split_once(',') {
            _ if self.auth_token == "simple" => None,
            Some(("jwt", options)) => Some(crate::server::auth::jwt::JwtOptions::parse(options)?),
            _ => return Err(ConfigError::AuthToken(self.auth_token.clone())),
        };
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(ConfigError::BcryptCost(self.bcrypt_cost));
        }
        let cluster_state = match self.initial_cluster_state.as_str() {
            "new" => ClusterState::New,
            "existing" => ClusterState::Existing,
            other => return Err(ConfigError::BadClusterState(other.to_string())),
        };
        let advertise_peer_urls = split_list(&self.initial_advertise_peer_urls);
        let initial_cluster = initial_cluster(
            &self.name,
            self.initial_cluster.as_deref(),
            &advertise_peer_urls,
        )?;
        let client_tls = TlsFiles {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            trusted_ca_file: self.trusted_ca_file.clone(),
            client_cert_auth: self.client_cert_auth,
            auto: self.auto_tls,
            cipher_suites: split_list(&self.cipher_suites),
        };
        let peer_tls = TlsFiles {
            cert_file: self.peer_cert_file.clone(),
            key_file: self.peer_key_file.clone(),
            trusted_ca_file: self.peer_trusted_ca_file.clone(),
            client_cert_auth: self.peer_client_cert_auth,
            auto: self.peer_auto_tls,
            cipher_suites: split_list(&self.cipher_suites),
        };
        Ok(ServerConfig {
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name))),
            listen_client: listen_addrs(
                &self.listen_client_urls,
                &client_tls,
                ConfigError::ClientTlsWithoutCert,
            )?,
            client_tls,
            advertise_client_urls: split_list(&self.advertise_client_urls),
            listen_peer: listen_addrs(
                &self.listen_peer_urls,
                &peer_tls,
                ConfigError::PeerTlsWithoutCert,
            )?,
            peer_tls,
            advertise_peer_urls,
            initial_cluster,
            cluster_state,
            token: self.initial_cluster_token,
            heartbeat: Duration::from_millis(self.heartbeat_interval),
            election_timeout: Duration::from_millis(self.election_timeout),
            snapshot_count: self.snapshot_count.max(1),
            snapshot_bytes: crate::raft::DEFAULT_SNAPSHOT_BYTES,
            strict_reconfig_check: self.strict_reconfig_check,
            catch_up_entries: self.experimental_snapshot_catchup_entries,
            max_request_bytes: self.max_request_bytes,
            max_txn_ops: self.max_txn_ops,
            quota_bytes: crate::server::alarm::quota_from_flag(self.quota_backend_bytes),
            auto_compaction: AutoCompaction::from_flags(
                &self.auto_compaction_mode,
                &self.auto_compaction_retention,
            )?,
            auth: AuthConfig {
                token_ttl: Duration::from_secs(self.auth_token_ttl),
                bcrypt_cost: self.bcrypt_cost,
                jwt,
            },
            name: self.name,
        })
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
