//! Bugs the simulator can switch on to prove its checkers catch them. Compiled only into
//! `--cfg madsim` builds; production code cannot reach any of it.
//!
//! The switch is per thread: madsim runs a whole simulated cluster on one thread, so seeds run
//! in parallel threads never see each other's bugs.

use std::cell::Cell;

/// A deliberately injected bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// Linearizable reads are served from local state without ReadIndex.
    StaleRead,
    /// The WAL acknowledges (raft proceeds) without fsync, so a crash loses acknowledged data.
    AckBeforeFsync,
    /// A watcher catching up from history drops the last event of each multi-event batch.
    WatchDropsEvent,
    /// Revoking a lease forgets to delete the keys attached to it.
    RevokeKeepsKeys,
    /// Lock and Campaign grant the turn without waiting for earlier contenders.
    LockSkipsQueue,
    /// The commit index learned after the leader's own write is never persisted, and recovery
    /// does not re-derive it: a restarted sole member serves from before what it acknowledged.
    ForgetCommitIndex,
    /// A failed WAL fsync is ignored and raft goes on as if the entries were durable.
    IgnoreFsyncError,
    /// The leader looks for expired leases with a clock running 2 s ahead of the one it stamps
    /// keep-alives with, so leases expire before their TTL.
    LeaseEarlyExpiry,
    /// Compaction also removes the newest version of a key last changed below the compaction
    /// point, so the key vanishes.
    CompactDropsLatest,
    /// A limited range reports `more = false` although keys were cut off.
    RangeMoreFalse,
    /// A leader renews leases on keep-alives, and revokes the ones its clock says expired,
    /// without confirming it still leads: a deposed leader that has not noticed yet answers
    /// keep-alives while the new one expires the lease, or revokes a lease kept alive elsewhere.
    LeaseOnStaleLeader,
    /// The backend's consistent index is made durable in a transaction of its own, before the
    /// history it covers: a crash in between leaves a backend that claims entries it lacks, and
    /// the restart skips replaying them.
    BackendIndexAhead,
    /// While NOSPACE is raised, a write that needs space is applied anyway although its
    /// proposer is told it was refused (`database space exceeded`).
    NoSpaceKeepsWrite,
    /// A raft snapshot streamed to another member leaves out the oldest record of the key
    /// history, so the member that installs it diverges from the others.
    SnapshotDropsRecord,
    /// The apply task reports every backend flush as durable, so the raft task records snapshot
    /// points (and rewrites the WAL without the entries before them) past what the backend has
    /// on disk: a crash loses the entries in between.
    SnapshotPastDurable,
    /// A watcher catching up in pages resumes one revision past where its last page stopped,
    /// skipping the events of that revision.
    WatchPageSkipsRevision,
    /// An etcd-format snapshot (`Maintenance.Snapshot`) leaves out the tombstones of the key
    /// history, so a key deleted after its last put is alive in the snapshot.
    SnapshotDropsTombstones,
    /// Applying a member's removal drops it from raft's configuration but leaves it in the
    /// member table, so the table and the configuration disagree.
    MemberTableKeepsRemoved,
    /// The leader puts a membership change it proposes into force in raft at once, before a
    /// quorum has committed it: a leader removing itself stops before the change ever leaves.
    ConfChangeSkipQuorum,
    /// A member asked for its vote by a second candidate of the term it already voted in
    /// forgets the first vote, so two candidates can both win the term.
    VoteTwice,
    /// A txn is checked for its ops' permissions but not its compares', so a user learns the
    /// value of a key it may not read through a compare's outcome.
    AuthSkipsTxnCompare,
    /// A leader stopped cleanly asks raft to hand leadership over but does not wait for the
    /// move, so raft stops before the transferee is told to campaign, and the others wait out
    /// an election timeout with no leader.
    HandOffNoWait,
    /// Recovery ignores the snapshot a WAL base segment carries, so a member whose newest
    /// snapshot file is damaged finds its log starting after the snapshot it still has and
    /// refuses to start.
    IgnoreWalSnapshot,
}

impl Bug {
    /// Every bug, for listing and parsing.
    pub const ALL: [Bug; 23] = [
        Bug::StaleRead,
        Bug::AckBeforeFsync,
        Bug::WatchDropsEvent,
        Bug::RevokeKeepsKeys,
        Bug::LockSkipsQueue,
        Bug::ForgetCommitIndex,
        Bug::IgnoreFsyncError,
        Bug::LeaseEarlyExpiry,
        Bug::CompactDropsLatest,
        Bug::RangeMoreFalse,
        Bug::LeaseOnStaleLeader,
        Bug::BackendIndexAhead,
        Bug::NoSpaceKeepsWrite,
        Bug::SnapshotDropsRecord,
        Bug::SnapshotPastDurable,
        Bug::WatchPageSkipsRevision,
        Bug::SnapshotDropsTombstones,
        Bug::MemberTableKeepsRemoved,
        Bug::ConfChangeSkipQuorum,
        Bug::VoteTwice,
        Bug::AuthSkipsTxnCompare,
        Bug::HandOffNoWait,
        Bug::IgnoreWalSnapshot,
    ];

    /// The name `scripts/sim.sh --inject-bug` takes.
    pub fn name(self) -> &'static str {
        match self {
            Bug::StaleRead => "stale-read",
            Bug::AckBeforeFsync => "ack-before-fsync",
            Bug::WatchDropsEvent => "watch-drops-event",
            Bug::RevokeKeepsKeys => "revoke-keeps-keys",
            Bug::LockSkipsQueue => "lock-skips-queue",
            Bug::ForgetCommitIndex => "forget-commit-index",
            Bug::IgnoreFsyncError => "ignore-fsync-error",
            Bug::LeaseEarlyExpiry => "lease-early-expiry",
            Bug::CompactDropsLatest => "compact-drops-latest",
            Bug::RangeMoreFalse => "range-more-false",
            Bug::LeaseOnStaleLeader => "lease-on-stale-leader",
            Bug::BackendIndexAhead => "backend-index-ahead",
            Bug::NoSpaceKeepsWrite => "nospace-keeps-write",
            Bug::SnapshotDropsRecord => "snapshot-drops-record",
            Bug::SnapshotPastDurable => "snapshot-past-durable",
            Bug::WatchPageSkipsRevision => "watch-page-skips-revision",
            Bug::SnapshotDropsTombstones => "snapshot-drops-tombstones",
            Bug::MemberTableKeepsRemoved => "member-table-keeps-removed",
            Bug::ConfChangeSkipQuorum => "conf-change-skip-quorum",
            Bug::VoteTwice => "vote-twice",
            Bug::AuthSkipsTxnCompare => "auth-skips-txn-compare",
            Bug::HandOffNoWait => "hand-off-no-wait",
            Bug::IgnoreWalSnapshot => "ignore-wal-snapshot",
        }
    }

    /// Parses a name from [`Bug::name`].
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

thread_local! {
    static ACTIVE: Cell<Option<Bug>> = const { Cell::new(None) };
}

/// Switches `bug` on (or all bugs off) for simulations on this thread.
pub fn inject(bug: Option<Bug>) {
    ACTIVE.with(|a| a.set(bug));
}

/// Whether `bug` is switched on.
pub fn active(bug: Bug) -> bool {
    ACTIVE.with(|a| a.get() == Some(bug))
}
