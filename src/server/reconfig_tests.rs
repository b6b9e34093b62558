use super::*;
use crate::raft::LeaderProgress;
use crate::server::error::RequestError;

fn table(started: &[(u64, bool)]) -> Membership {
    let mut t = Membership::default();
    for (id, is_started) in started {
        t.members.insert(
            *id,
            Member {
                id: *id,
                name: if *is_started {
                    format!("m{id}")
                } else {
                    String::new()
                },
                peer_urls: vec![format!("http://10.0.0.{id}:2380")],
                ..Default::default()
            },
        );
    }
    t
}

fn urls(u: &str) -> Vec<String> {
    vec![u.to_string()]
}

fn all_active(_: u64) -> bool {
    true
}

#[test]
fn peer_urls_are_checked_as_etcd_checks_them() {
    assert!(valid_peer_url("http://10.0.0.9:2380"));
    assert!(valid_peer_url("https://host:2380/"));
    assert!(!valid_peer_url("10.0.0.9:2380"));
    assert!(!valid_peer_url("http://10.0.0.9"));
    assert!(!valid_peer_url("http://10.0.0.9:2380/x"));
    let t = table(&[(1, true), (2, true), (3, true)]);
    let add = |u: &str| add(&t, 9, &urls(u), false, true, &all_active);
    assert_eq!(add("nope").unwrap_err(), MembershipError::BadUrls);
    assert_eq!(
        add("http://10.0.0.2:2380").unwrap_err(),
        MembershipError::PeerUrlExists
    );
    assert!(add("http://10.0.0.9:2380").is_ok());
}

#[test]
fn strict_reconfig_check_protects_the_quorum() {
    // Two of four voters started: a fifth would leave 2 of 5 started.
    let t = table(&[(1, true), (2, true), (3, false), (4, false)]);
    let u = urls("http://10.0.0.9:2380");
    assert_eq!(
        add(&t, 9, &u, false, true, &all_active).unwrap_err(),
        MembershipError::NotEnoughStarted
    );
    assert!(
        add(&t, 9, &u, false, false, &all_active).is_ok(),
        "not strict"
    );
    assert!(
        add(&t, 9, &u, true, true, &all_active).is_ok(),
        "learners skip it"
    );
    // A voter that is not connected makes the cluster unhealthy for a voter add.
    let t = table(&[(1, true), (2, true), (3, true)]);
    let down = |id: u64| id != 3;
    assert_eq!(
        add(&t, 9, &u, false, true, &down).unwrap_err(),
        MembershipError::Unhealthy
    );
    // Removing the down member is fine; removing a live one would leave 1 of 2 active.
    assert!(remove(&t, 3, 1, true, &down).is_ok());
    assert_eq!(
        remove(&t, 2, 1, true, &down).unwrap_err(),
        RequestError::Membership(MembershipError::Unhealthy)
    );
    assert_eq!(
        remove(&t, 7, 1, true, &down).unwrap_err(),
        RequestError::MemberNotFound
    );
}

#[test]
fn one_learner_at_most_and_promote_only_in_sync_learners() {
    let mut t = table(&[(1, true), (2, true), (3, true)]);
    let cc = add(
        &t,
        9,
        &urls("http://10.0.0.9:2380"),
        true,
        true,
        &all_active,
    )
    .unwrap();
    let conf = ConfState::from((vec![1, 2, 3], vec![9]));
    apply_change(&mut t, &cc, &conf);
    assert!(t.members[&9].is_learner);
    assert_eq!(t.members[&9].peer_urls, urls("http://10.0.0.9:2380"));
    assert_eq!(
        add(
            &t,
            8,
            &urls("http://10.0.0.8:2380"),
            true,
            true,
            &all_active
        )
        .unwrap_err(),
        MembershipError::TooManyLearners
    );
    let mut progress = LeaderProgress {
        last_index: 100,
        ..Default::default()
    };
    progress.matched.insert(9, 50);
    assert_eq!(
        promote(&t, 9, &progress).unwrap_err(),
        RequestError::Membership(MembershipError::LearnerNotReady)
    );
    assert_eq!(
        promote(&t, 1, &progress).unwrap_err(),
        RequestError::Membership(MembershipError::NotLearner)
    );
    progress.matched.insert(9, 95);
    let cc = promote(&t, 9, &progress).unwrap();
    apply_change(&mut t, &cc, &ConfState::from((vec![1, 2, 3, 9], vec![])));
    assert!(!t.members[&9].is_learner);
}

#[test]
fn the_table_follows_the_configuration_raft_adopted() {
    let mut t = table(&[(1, true), (2, true), (3, true)]);
    let cc = update(&t, 2, &urls("http://10.0.0.22:2380")).unwrap();
    apply_change(&mut t, &cc, &ConfState::from((vec![1, 2, 3], vec![])));
    assert_eq!(t.members[&2].peer_urls, urls("http://10.0.0.22:2380"));
    assert_eq!(t.members[&2].name, "m2", "the name survives an update");
    let cc = remove(&t, 3, 1, true, &all_active).unwrap();
    apply_change(&mut t, &cc, &ConfState::from((vec![1, 2], vec![])));
    assert!(!t.members.contains_key(&3));
    assert!(t.removed.contains(&3));
    assert_eq!(
        add(
            &t,
            3,
            &urls("http://10.0.0.3:2380"),
            false,
            false,
            &all_active
        )
        .unwrap_err(),
        MembershipError::MemberExists,
        "a removed id never comes back"
    );
    // A change raft refused leaves its configuration, and so the table, as it was.
    let cc = add(
        &t,
        9,
        &urls("http://10.0.0.9:2380"),
        false,
        false,
        &all_active,
    )
    .unwrap();
    apply_change(&mut t, &cc, &ConfState::from((vec![1, 2], vec![])));
    assert!(!t.members.contains_key(&9));
}
