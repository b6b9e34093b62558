//! The watch checker: every watch client's events must equal the committed history (as the
//! converged members applied it), in order, with nothing missing and nothing repeated, from
//! revision 1 up to the last revision the client saw; and once the cluster has settled, every
//! client must have caught up with all of it.
//!
//! Compaction: members keep only the events after their compaction revision `C`, so only those
//! can be compared; the client's events at or below `C` must still come in revision order with no
//! `(revision, key)` twice. A client skips to a compaction point only when the server canceled
//! its watch for it (then that point is `<= C`).

use crate::checkers::convergence::MemberState;
use crate::watchers::WatchLog;

/// Compares each client's log with the reference history of a converged member.
pub fn check(logs: &[WatchLog], reference: &MemberState) -> Result<(), String> {
    let history: Vec<(i64, &[u8], bool)> = reference
        .events
        .iter()
        .map(|(rev, key, delete)| (*rev, key.as_slice(), *delete))
        .collect();
    let floor = reference.compacted;
    for (c, log) in logs.iter().enumerate() {
        let all: Vec<(i64, &[u8], bool)> = log
            .events
            .iter()
            .map(|(rev, key, delete, _)| (*rev, key.as_slice(), *delete))
            .collect();
        if let Some(w) = all.windows(2).find(|w| w[1].0 < w[0].0) {
            return Err(format!(
                "watcher {c}: event {:?} came after {:?} (after {} resumes)",
                w[1], w[0], log.resumes
            ));
        }
        let mut distinct = std::collections::BTreeSet::new();
        if let Some(e) = all.iter().find(|e| !distinct.insert((e.0, e.1))) {
            return Err(format!(
                "watcher {c}: saw {e:?} twice (after {} resumes)",
                log.resumes
            ));
        }
        // `skipped_to` 0 means never skipped; `floor` is -1 when nothing was ever compacted.
        if log.skipped_to > 0 && log.skipped_to > floor {
            return Err(format!(
                "watcher {c}: told revision {} was compacted, but the members compacted only to {floor}",
                log.skipped_to
            ));
        }
        let seen: Vec<(i64, &[u8], bool)> = all.into_iter().filter(|e| e.0 > floor).collect();
        if let Some(i) = seen.iter().zip(&history).position(|(a, b)| a != b) {
            return Err(format!(
                "watcher {c}: event #{i} is {:?} but the history has {:?} (after {} resumes)",
                seen[i], history[i], log.resumes
            ));
        }
        if seen.len() > history.len() {
            return Err(format!(
                "watcher {c}: {} events beyond the committed history: {:?}",
                seen.len() - history.len(),
                &seen[history.len()..]
            ));
        }
        if seen.len() < history.len() {
            return Err(format!(
                "watcher {c}: saw {} of {} events; first missing {:?}",
                seen.len(),
                history.len(),
                history[seen.len()]
            ));
        }
    }
    Ok(())
}
