//! A member never answers from an older revision than it already answered from: if one of its
//! answers was received before another read was sent to it, the later read's revision is at
//! least the earlier one's. This holds across restarts (a restarted member must first apply all
//! it had committed) and is what a client reading one member relies on. A member replaced by a
//! new one (same slot, new member id) is a different member: the new one starts from nothing.

use crate::served_probe::ServedRead;
use std::collections::BTreeMap;

/// Checks every member's answers; the first violation found, if any.
pub fn check(reads: &[ServedRead]) -> Result<(), String> {
    let mut by_member: BTreeMap<(usize, u64), Vec<&ServedRead>> = BTreeMap::new();
    for r in reads {
        by_member
            .entry((r.member, r.member_id))
            .or_default()
            .push(r);
    }
    for ((member, _), reads) in by_member {
        let mut by_invoke = reads.clone();
        by_invoke.sort_by_key(|r| r.invoke);
        let mut by_complete = reads;
        by_complete.sort_by_key(|r| r.complete);
        let mut done = by_complete.iter().peekable();
        let mut highest: Option<&ServedRead> = None;
        for read in by_invoke {
            while let Some(earlier) = done.next_if(|e| e.complete < read.invoke) {
                if highest.is_none_or(|h| earlier.revision > h.revision) {
                    highest = Some(earlier);
                }
            }
            if let Some(h) = highest.filter(|h| read.revision < h.revision) {
                return Err(format!(
                    "m{} answered from revision {} at {} ns after it had answered from revision {} \
                     at {} ns",
                    member + 1,
                    read.revision,
                    read.complete,
                    h.revision,
                    h.complete
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(member: usize, invoke: u64, complete: u64, revision: i64) -> ServedRead {
        ServedRead {
            member,
            member_id: member as u64,
            invoke,
            complete,
            revision,
        }
    }

    #[test]
    fn a_revision_going_back_on_one_member_is_caught() {
        let reads = [read(0, 0, 10, 5), read(0, 20, 30, 4)];
        assert!(check(&reads).is_err());
    }

    #[test]
    fn overlapping_reads_and_other_members_may_differ() {
        let reads = [
            read(0, 0, 10, 5),
            read(0, 5, 30, 4),
            read(1, 20, 30, 2),
            read(0, 40, 50, 5),
        ];
        assert!(check(&reads).is_ok());
    }
}
