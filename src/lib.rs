//! detcd: an etcd v3 compatible, Raft-replicated MVCC key-value store whose clocks, sockets,
//! tasks and files all go through madsim's shims, so a whole cluster runs deterministically in
//! a simulator and unchanged on real tokio.
//!
//! Layers (arrows point down, never up):
//! ```text
//! server   gRPC services, validation, etcd error texts, the replicated state machine,
//!          auth on every call (callers from tokens or certificates, reads checked where
//!          served, writes at apply),
//!          etcd-format snapshots (the backend as etcd's buckets, restore into a data dir),
//!          membership (etcd's rules for conf changes, bootstrap / join / restart identity,
//!          the member id record),
//!          leadership moves (MoveLeader, the hand-off of a leader stopped cleanly),
//!          the client connections' HTTP/2 `:authority` normalisation, TLS on the listeners
//!          (rustls; certificates from the flags, generated, or reloaded when rotated)
//!   ↓
//! raft     the RawNode task, the apply task that owns the state machine (committed
//!          entries, proposal results, confirmed reads), WAL/snapshot persistence, peer
//!          transport (raft snapshots streamed as chunked backend images), dialing (every
//!          outgoing connection, TLS for `https://` URLs), ReadIndex,
//!          membership changes applied to raft (one at a time; a removed member's node ends)
//!   ↓
//! auth     users, roles, key permissions and etcd's rules for them, simple tokens (pure
//!          state: no I/O, no clock of its own)
//!   ↓
//! mvcc     revisions, key index (in RAM), range/put/delete/txn/compact over history kept
//!          in the storage backend
//!   ↓
//! storage  WAL segments and snapshot files (records, CRCs, torn-tail recovery), the paged
//!          backend (redb) holding history, leases, members and the consistent index, and
//!          backend dumps (a whole backend as one checksummed chunk stream), bbolt's
//!          file format (etcd's), written and read page by page, and sealed words (one
//!          checksummed u64: the commit mark's slots, the member id record)
//!   ↓
//! io       the only module that touches files (std in production, a crash-modelling
//!          in-memory disk in simulation), and the worker that takes disk work off a task
//! ```
//! `pb` holds the generated protobuf code; `config` parses etcd's flags; `gofmt` holds Go's
//! formatting conventions (durations, quoting, integers) that flags and outputs follow; `ctl`
//! is detcdctl (a client of the server's API; its `snapshot status | restore` call the server
//! layer's reader).
//! Simulation builds only: `fault` (injectable bugs) and `observe` (facts for the checkers).

pub mod auth;
pub mod config;
pub mod ctl;
#[cfg(madsim)]
pub mod fault;
pub mod gofmt;
pub mod io;
pub mod lease;
pub mod mvcc;
#[cfg(madsim)]
pub mod observe;
pub mod pb;
pub mod raft;
pub mod server;
pub mod storage;

/// detcd's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `detcd --version` prints (etcd's layout).
pub fn version_text() -> String {
    format!(
        "detcd Version: {VERSION}\netcd API Version: {}\nGit SHA: not recorded\nRust OS/Arch: {}/{}",
        server::core::ETCD_API_VERSION,
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}
