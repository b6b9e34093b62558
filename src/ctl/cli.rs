//! The command line: etcdctl 3.4's global flags (with their `ETCDCTL_*` environment
//! variables) and every subcommand's flags, as clap derive types. Boolean flags take Go's
//! optional `=true|false` form.

use crate::gofmt;
use clap::{ArgAction, Args, Parser, Subcommand};
use std::time::Duration;

fn duration(s: &str) -> Result<Duration, String> {
    gofmt::parse_duration(s)
}

fn int(s: &str) -> Result<i64, String> {
    gofmt::parse_int(s, 10)
}

/// Global flags plus the subcommand.
#[derive(Parser, Debug)]
#[command(
    name = "etcdctl",
    about = "A simple command line client for etcd3 (detcd's etcdctl).",
    disable_version_flag = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// gRPC endpoints
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// dial timeout for client connections
    #[arg(long, global = true, env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s",
          value_parser = duration)]
    pub dial_timeout: Duration,
    /// timeout for short running command (excluding dial timeout)
    #[arg(long, global = true, env = "ETCDCTL_COMMAND_TIMEOUT", default_value = "5s",
          value_parser = duration)]
    pub command_timeout: Duration,
    /// set the output format (fields, json, protobuf, simple, table)
    #[arg(
        short = 'w',
        long,
        global = true,
        env = "ETCDCTL_WRITE_OUT",
        default_value = "simple"
    )]
    pub write_out: String,
    /// print byte strings as hex encoded strings
    #[arg(long, global = true, env = "ETCDCTL_HEX", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub hex: bool,
    /// accepted for compatibility (no effect)
    #[arg(long, global = true, env = "ETCDCTL_DEBUG", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set,
          hide = true)]
    pub debug: bool,
    /// accepted for compatibility (no effect)
    #[arg(long, global = true, env = "ETCDCTL_KEEPALIVE_TIME", default_value = "2s",
          value_parser = duration, hide = true)]
    pub keepalive_time: Duration,
    /// accepted for compatibility (no effect)
    #[arg(long, global = true, env = "ETCDCTL_KEEPALIVE_TIMEOUT", default_value = "6s",
          value_parser = duration, hide = true)]
    pub keepalive_timeout: Duration,
    /// disable transport security for client connections
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_TRANSPORT", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "true",
          action = ArgAction::Set)]
    pub insecure_transport: bool,
    /// verify certificates of TLS-enabled secure servers using this CA bundle
    #[arg(long, global = true, env = "ETCDCTL_CACERT", default_value = "")]
    pub cacert: String,
    /// identify secure client using this TLS certificate file
    #[arg(long, global = true, env = "ETCDCTL_CERT", default_value = "")]
    pub cert: String,
    /// identify secure client using this TLS key file
    #[arg(long, global = true, env = "ETCDCTL_KEY", default_value = "")]
    pub key: String,
    /// username[:password] for authentication (prompt if password is not supplied)
    #[arg(long, global = true, env = "ETCDCTL_USER", default_value = "")]
    pub user: String,
    /// password for authentication (if this option is used, --user option shouldn't include
    /// password)
    #[arg(long, global = true, env = "ETCDCTL_PASSWORD", default_value = "")]
    pub password: String,
    /// skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "false",
          action = ArgAction::Set)]
    pub insecure_skip_tls_verify: bool,
    /// accepted for compatibility (no effect)
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_DISCOVERY", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "true",
          action = ArgAction::Set, hide = true)]
    pub insecure_discovery: bool,
    /// accepted for compatibility (DNS discovery is not supported)
    #[arg(
        short = 'd',
        long,
        global = true,
        env = "ETCDCTL_DISCOVERY_SRV",
        default_value = "",
        hide = true
    )]
    pub discovery_srv: String,
    /// accepted for compatibility (DNS discovery is not supported)
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_DISCOVERY_SRV_NAME",
        default_value = "",
        hide = true
    )]
    pub discovery_srv_name: String,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// etcdctl's subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Gets the key or a range of keys
    Get(GetArgs),
    /// Puts the given key into the store
    Put(PutArgs),
    /// Removes the specified key or range of keys [key, range_end)
    Del(DelArgs),
    /// Txn processes all the requests in one transaction
    Txn(TxnArgs),
    /// Compacts the event history in etcd
    Compaction(CompactionArgs),
    /// Watches events stream on keys or prefixes
    Watch(WatchArgs),
    /// Lease related commands
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Acquires a named lock
    Lock(LockArgs),
    /// Observes and participates in leader election
    Elect(ElectArgs),
    /// Membership related commands
    #[command(subcommand)]
    Member(MemberCommand),
    /// Enable or disable authentication
    #[command(subcommand)]
    Auth(super::cli_auth::AuthCommand),
    /// User related commands
    #[command(subcommand)]
    User(super::cli_auth::UserCommand),
    /// Role related commands
    #[command(subcommand)]
    Role(super::cli_auth::RoleCommand),
    /// Endpoint related commands
    Endpoint(EndpointArgs),
    /// Transfers leadership to another etcd cluster member.
    MoveLeader {
        /// <transferee-member-id>
        args: Vec<String>,
    },
    /// Alarm related commands
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Defragments the storage of the etcd members with given endpoints
    Defrag,
    /// Manages etcd node snapshots
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Prints the version of etcdctl
    Version,
}

/// `get` flags.
#[derive(Args, Debug, Clone, Default)]
pub struct GetArgs {
    /// <key> [range_end]
    pub args: Vec<String>,
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "")]
    pub order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long, default_value = "")]
    pub sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value = "0", value_parser = int, allow_hyphen_values = true)]
    pub limit: i64,
    /// Get keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value = "0", value_parser = int, allow_hyphen_values = true)]
    pub rev: i64,
    /// Get only the keys
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub keys_only: bool,
    /// Get only the count
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub count_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub print_value_only: bool,
}

/// `put` flags.
#[derive(Args, Debug, Clone, Default)]
pub struct PutArgs {
    /// <key> <value>
    pub args: Vec<String>,
    /// lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0")]
    pub lease: String,
    /// return the previous key-value pair before modification
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub prev_kv: bool,
    /// updates the key using its current value
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub ignore_value: bool,
    /// updates the key using its current lease
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub ignore_lease: bool,
}

/// `del` flags.
#[derive(Args, Debug, Clone, Default)]
pub struct DelArgs {
    /// <key> [range_end]
    pub args: Vec<String>,
    /// delete keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub prefix: bool,
    /// return deleted key-value pairs
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub prev_kv: bool,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub from_key: bool,
}

/// One request line inside `txn` (parsed like the `put`/`get`/`del` commands).
#[derive(Parser, Debug)]
#[command(no_binary_name = true, disable_help_flag = true)]
pub enum TxnOp {
    /// put
    Put(PutArgs),
    /// get
    Get(GetArgs),
    /// del
    Del(DelArgs),
}

/// `txn` flags.
#[derive(Args, Debug)]
pub struct TxnArgs {
    /// (no arguments)
    pub args: Vec<String>,
    /// Input transaction in interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub interactive: bool,
}

/// `compaction` flags.
#[derive(Args, Debug)]
pub struct CompactionArgs {
    /// <revision>
    pub args: Vec<String>,
    /// 'true' to wait for compaction to physically remove all old revisions
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub physical: bool,
}

/// `watch` flags.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]
    pub args: Vec<String>,
    /// Interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub interactive: bool,
    /// Watch on a prefix if prefix is set
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value = "0", value_parser = int, allow_hyphen_values = true)]
    pub rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub prev_kv: bool,
    /// get periodic watch progress notification from server
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub progress_notify: bool,
}

/// `lease` subcommands.
#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// Creates leases
    Grant {
        /// <ttl>
        args: Vec<String>,
    },
    /// Revokes leases
    Revoke {
        /// <leaseID>
        args: Vec<String>,
    },
    /// Get lease information
    Timetolive {
        /// <leaseID>
        args: Vec<String>,
        /// Get keys attached to this lease
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value = "false", action = ArgAction::Set)]
        keys: bool,
    },
    /// List all active leases
    List,
    /// Keeps leases alive (renew)
    KeepAlive {
        /// <leaseID>
        args: Vec<String>,
        /// Resets the keep-alive time to its original value and exits immediately
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value = "false", action = ArgAction::Set)]
        once: bool,
    },
}

/// `lock` flags.
#[derive(Args, Debug)]
pub struct LockArgs {
    /// <lockname> [exec-command arg1 arg2 ...]
    pub args: Vec<String>,
    /// timeout for session
    #[arg(long, default_value = "10", value_parser = int)]
    pub ttl: i64,
}

/// `elect` flags.
#[derive(Args, Debug)]
pub struct ElectArgs {
    /// <election-name> [proposal]
    pub args: Vec<String>,
    /// observation mode
    #[arg(short = 'l', long, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub listen: bool,
}

/// `member` subcommands.
#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Lists all members in the cluster
    List,
    /// Adds a member into the cluster
    Add {
        /// <memberName>
        args: Vec<String>,
        /// comma separated peer URLs for the new member.
        #[arg(long = "peer-urls", default_value = "")]
        peer_urls: String,
        /// indicates if the new member is raft learner
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value = "false", action = ArgAction::Set)]
        learner: bool,
    },
    /// Removes a member from the cluster
    Remove {
        /// <memberID>
        args: Vec<String>,
    },
    /// Updates a member in the cluster
    Update {
        /// <memberID>
        args: Vec<String>,
        /// comma separated peer URLs for the updated member.
        #[arg(long = "peer-urls", default_value = "")]
        peer_urls: String,
    },
    /// Promotes a non-voting member in the cluster
    Promote {
        /// <memberID>
        args: Vec<String>,
    },
}

/// `endpoint` flags and subcommand.
#[derive(Args, Debug)]
pub struct EndpointArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: EndpointCommand,
    /// use all endpoints from the cluster member list
    #[arg(long, global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub cluster: bool,
}

/// `endpoint` subcommands.
#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status,
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health,
    /// Prints the KV history hash for each endpoint in --endpoints
    Hashkv {
        /// maximum revision to hash (default: all revisions)
        #[arg(long, default_value = "0", value_parser = int)]
        rev: i64,
    },
}

/// `alarm` subcommands.
#[derive(Subcommand, Debug)]
pub enum AlarmCommand {
    /// Disarms all alarms
    Disarm {
        /// No arguments are accepted (etcdctl's check, with its message).
        #[arg(hide = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Lists all alarms
    List {
        /// No arguments are accepted (etcdctl's check, with its message).
        #[arg(hide = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `snapshot` subcommands (each takes its file name as the one argument, checked with
/// etcdctl's messages).
#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Stores an etcd node backend snapshot to a given file
    Save {
        /// The file to write.
        #[arg(hide = true)]
        args: Vec<String>,
    },
    /// Gets backend snapshot status of a given file
    Status {
        /// The snapshot file.
        #[arg(hide = true)]
        args: Vec<String>,
    },
    /// Restores an etcd member snapshot to an etcd directory
    Restore(RestoreArgs),
}

/// `snapshot restore` flags.
#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// The snapshot file.
    #[arg(hide = true)]
    pub args: Vec<String>,
    /// Path to the data directory
    #[arg(long, default_value = "")]
    pub data_dir: String,
    /// Path to the WAL directory (use --data-dir if none given)
    #[arg(long, default_value = "")]
    pub wal_dir: String,
    /// Human-readable name for this member
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Initial cluster configuration for restore bootstrap
    #[arg(long, default_value = "default=http://localhost:2380")]
    pub initial_cluster: String,
    /// Initial cluster token for the etcd cluster during restore bootstrap
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Ignore snapshot integrity hash value (required if copied from data directory)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub skip_hash_check: bool,
}
