//! The watch checker: every watch client's events must equal the committed history (as the
//! converged members applied it), in order, with nothing missing and nothing repeated, from
//! revision 1 up to the last revision the client saw; and once the cluster has settled, every
//! client must have caught up with all of it.

use crate::checkers::convergence::MemberState;
use crate::watchers::WatchLog;

/// Compares each client's log with the reference history of a converged member.
pub fn check(logs: &[WatchLog], reference: &MemberState) -> Result<(), String> {
    let history: Vec<(i64, &[u8], bool)> = reference
        .events
        .iter()
        .map(|(rev, key, delete)| (*rev, key.as_slice(), *delete))
        .collect();
    for (c, log) in logs.iter().enumerate() {
        let seen: Vec<(i64, &[u8], bool)> = log
            .events
            .iter()
            .map(|(rev, key, delete, _)| (*rev, key.as_slice(), *delete))
            .collect();
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
