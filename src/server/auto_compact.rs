//! Auto-compaction, as etcd's `--auto-compaction-mode` / `--auto-compaction-retention` do it.
//!
//! Owns [`AutoCompaction`] (the checked flags) and [`run`], a task every member runs; only the
//! leader proposes (through raft, like a client's Compact), so the members compact together.
//! * `periodic` with retention `P`: the revision is sampled every `min(P, 1 h) / 10`; every
//!   `min(P, 1 h)` the history is compacted at the revision sampled `P` ago (the first time
//!   once `P` has passed since the member started).
//! * `revision` with retention `R`: every 5 minutes the history is compacted at the current
//!   revision minus `R`.
//!
//! A compaction that would not move the compaction point is not proposed.

use super::core::ServerCore;
use crate::pb::detcdpb::internal_request::Request as Internal;
use crate::pb::etcdserverpb::CompactionRequest;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// etcd's interval between revision-mode compactions.
const REVISION_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Longest interval between periodic compactions.
const MAX_PERIODIC_INTERVAL: Duration = Duration::from_secs(3600);
/// Samples per periodic interval.
const SAMPLES_PER_INTERVAL: u32 = 10;

/// The auto-compaction a member runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Retention 0: no auto-compaction.
    Off,
    /// Keep this much time of history.
    Periodic(Duration),
    /// Keep this many revisions of history.
    Revision(i64),
}

/// Why the auto-compaction flags were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AutoCompactionError {
    /// A mode other than `periodic` or `revision`.
    #[error("unknown auto-compaction-mode {0:?}")]
    UnknownMode(String),
    /// A retention that is not a number (of hours, for periodic) or a duration.
    #[error("invalid auto-compaction-retention {0:?}")]
    BadRetention(String),
}

impl AutoCompaction {
    /// Checks `--auto-compaction-mode` and `--auto-compaction-retention`: for `periodic` the
    /// retention is a Go duration (`30m`, `1h30m`) or a whole number of hours; for `revision` a
    /// number of revisions. A zero retention switches auto-compaction off.
    pub fn from_flags(mode: &str, retention: &str) -> Result<Self, AutoCompactionError> {
        let bad = || AutoCompactionError::BadRetention(retention.to_string());
        let parsed = match mode {
            "periodic" => match retention.parse::<u64>() {
                Ok(hours) => AutoCompaction::Periodic(Duration::from_secs(hours * 3600)),
                Err(_) => AutoCompaction::Periodic(
                    crate::gofmt::parse_duration(retention).map_err(|_| bad())?,
                ),
            },
            "revision" => AutoCompaction::Revision(retention.parse().map_err(|_| bad())?),
            other => return Err(AutoCompactionError::UnknownMode(other.to_string())),
        };
        Ok(match parsed {
            AutoCompaction::Periodic(d) if d.is_zero() => AutoCompaction::Off,
            AutoCompaction::Revision(r) if r <= 0 => AutoCompaction::Off,
            other => other,
        })
    }
}

/// Runs auto-compaction for the life of the member.
pub async fn run(core: Arc<ServerCore>, mode: AutoCompaction) {
    match mode {
        AutoCompaction::Off => {}
        AutoCompaction::Periodic(retention) => periodic(core, retention).await,
        AutoCompaction::Revision(keep) => loop {
            tokio::time::sleep(REVISION_INTERVAL).await;
            let revision = core.state.store().current_revision() - keep;
            compact(&core, revision, &format!("{keep} revisions")).await;
        },
    }
}

async fn periodic(core: Arc<ServerCore>, retention: Duration) {
    let interval = retention.min(MAX_PERIODIC_INTERVAL);
    let sample_every = interval / SAMPLES_PER_INTERVAL;
    // Samples covering one retention: the oldest is the revision `retention` ago.
    let kept = (retention.as_nanos() / sample_every.as_nanos().max(1)) as usize + 1;
    let mut samples: VecDeque<i64> = VecDeque::with_capacity(kept);
    let mut since_compaction = Duration::ZERO;
    let label = crate::gofmt::duration_string(retention);
    loop {
        samples.push_back(core.state.store().current_revision());
        if samples.len() > kept {
            samples.pop_front();
        }
        tokio::time::sleep(sample_every).await;
        since_compaction += sample_every;
        if samples.len() == kept && since_compaction >= interval {
            since_compaction = Duration::ZERO;
            compact(&core, samples[0], &label).await;
        }
    }
}

/// Proposes a compaction at `revision` if this member leads and it moves the compaction point.
async fn compact(core: &ServerCore, revision: i64, retention: &str) {
    if core.status().leader != core.member_id
        || revision <= core.state.store().compacted_revision().max(0)
    {
        return;
    }
    tracing::info!(revision, retention, "starting auto-compaction");
    let request = Internal::Compaction(CompactionRequest {
        revision,
        physical: false,
    });
    match core.propose_own(request).await {
        Ok(_) => tracing::info!(revision, "finished auto-compaction"),
        Err(e) => tracing::warn!(revision, error = %e, "auto-compaction failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_as_etcd_reads_them() {
        let p = |m, r| AutoCompaction::from_flags(m, r);
        assert_eq!(p("periodic", "0"), Ok(AutoCompaction::Off));
        assert_eq!(
            p("periodic", "1"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(3600)))
        );
        assert_eq!(
            p("periodic", "30m"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(1800)))
        );
        assert_eq!(p("revision", "1000"), Ok(AutoCompaction::Revision(1000)));
        assert_eq!(p("revision", "0"), Ok(AutoCompaction::Off));
        assert_eq!(
            p("revision", "1h"),
            Err(AutoCompactionError::BadRetention("1h".into()))
        );
        assert_eq!(
            p("daily", "1"),
            Err(AutoCompactionError::UnknownMode("daily".into()))
        );
    }
}
