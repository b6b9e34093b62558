//! The election checker: at most one member leads in any raft term, over the whole run
//! (crashes, restarts, replacements and removals included). The servers record each term they
//! led in ([`detcd::observe`]); two members in one term means two leaders could both have
//! committed entries at the same log positions.

/// Fails with the first term that had more than one leader.
pub fn check_one_leader_per_term() -> Result<(), String> {
    let leaders = detcd::observe::leaders_by_term();
    match leaders.iter().find(|(_, ids)| ids.len() > 1) {
        Some((term, ids)) => {
            let ids: Vec<String> = ids.iter().map(|id| format!("{id:x}")).collect();
            Err(format!(
                "term {term} had {} leaders: {}",
                ids.len(),
                ids.join(", ")
            ))
        }
        None => Ok(()),
    }
}
