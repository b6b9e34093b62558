//! The gap budget shared by the search's lookahead checks (`crate::absence`, `crate::presence`).
//!
//! Owns [`Need`] (some distinct writes that must land by a deadline, each one of a given set of
//! unknown writes) and [`shortfall`]. Soundness: needs whose writer sets are pairwise disjoint
//! can share no write, and every write fills exactly one gap; so, taking such needs by deadline,
//! the `j`-th write needed must find a gap at or before its deadline among those a writer of the
//! picked needs may fill (unpinned, or pinned to one of them). If some deadline has fewer, no
//! extension of the branch is a linearization.

use std::collections::BTreeSet;

use crate::kv_model::KeyId;
use crate::revision_plan::Plan;

/// `count` distinct writes from `writers` must land in gaps after now and by `deadline`, so
/// that key `key` can look as op `reader` (an index into `History::ops`) saw it.
pub(crate) struct Need {
    pub key: KeyId,
    pub deadline: i64,
    pub reader: usize,
    pub count: usize,
    pub writers: BTreeSet<usize>,
}

/// The first need (by deadline) the gaps after revision `s` cannot serve, with how many gaps
/// short they are.
pub(crate) fn shortfall(plan: &Plan, s: i64, mut needs: Vec<Need>) -> Option<(Need, usize)> {
    needs.sort_by_key(|n| (n.deadline, n.key));
    let mut taken: BTreeSet<usize> = BTreeSet::new();
    let mut picked: Vec<Need> = Vec::new();
    for n in needs {
        if n.writers.is_disjoint(&taken) {
            taken.extend(&n.writers);
            picked.push(n);
        }
    }
    let mut writes = 0;
    let mut short = None;
    for (i, n) in picked.iter().enumerate() {
        writes += n.count;
        let gaps = plan
            .gaps
            .range(s + 1..=n.deadline)
            .filter(|(_, g)| g.pinned.is_none_or(|p| taken.contains(&p)))
            .count();
        if gaps < writes {
            short = Some((i, writes - gaps));
            break;
        }
    }
    let (i, by) = short?;
    Some((picked.swap_remove(i), by))
}
