//! Unit tests of `crate::linearizability` on hand-written histories:
//! valid ones must pass, and each kind of violation must be reported as such.

use crate::history::{History, KeyState, Outcome, Request, Response};
use crate::linearizability::{
    check_linearizable, check_linearizable_with, check_revisions, CheckOptions,
    LinearizabilityError,
};
use crate::testgen::{config, generate};

fn put(k: &str, v: &str) -> Request {
    Request::Put {
        key: k.into(),
        value: v.into(),
    }
}
fn get(k: &str) -> Request {
    Request::Get {
        key: k.into(),
        serializable: false,
    }
}
fn sget(k: &str) -> Request {
    Request::Get {
        key: k.into(),
        serializable: true,
    }
}
fn del(k: &str) -> Request {
    Request::Delete { key: k.into() }
}
fn cas(k: &str, expected_mod: i64, v: &str) -> Request {
    Request::Cas {
        key: k.into(),
        expected_mod,
        value: v.into(),
    }
}
fn kv(v: &str, create: i64, modr: i64, version: i64) -> Option<KeyState> {
    Some(KeyState {
        value: v.into(),
        create_revision: create,
        mod_revision: modr,
        version,
    })
}
fn put_ok(revision: i64) -> Response {
    Response::Put { revision }
}
fn get_ok(revision: i64, kv: Option<KeyState>) -> Response {
    Response::Get { revision, kv }
}

/// Appends an op; `outcome` None = Unknown.
fn op(h: &mut History, client: u64, span: (u64, u64), req: Request, outcome: Option<Outcome>) {
    let id = h.record_invoke(client, span.0, req);
    h.record_complete(id, span.1, outcome.unwrap_or(Outcome::Unknown));
}
fn ok(h: &mut History, client: u64, span: (u64, u64), req: Request, resp: Response) {
    op(h, client, span, req, Some(Outcome::Ok(resp)));
}

fn assert_violation(r: Result<(), LinearizabilityError>) -> LinearizabilityError {
    let e = r.expect_err("history must be rejected");
    assert!(e.is_violation(), "expected a violation, got {e}");
    e
}

#[test]
fn sequential_valid() {
    let mut h = History::new();
    ok(&mut h, 1, (0, 1), get("a"), get_ok(1, None));
    ok(&mut h, 1, (2, 3), put("a", "1"), put_ok(2));
    ok(&mut h, 1, (4, 5), get("a"), get_ok(2, kv("1", 2, 2, 1)));
    ok(&mut h, 1, (6, 7), put("a", "2"), put_ok(3));
    ok(&mut h, 1, (8, 9), get("a"), get_ok(3, kv("2", 2, 3, 2)));
    let d = Response::Delete {
        revision: 4,
        deleted: 1,
    };
    ok(&mut h, 1, (10, 11), del("a"), d);
    ok(&mut h, 1, (12, 13), get("a"), get_ok(4, None));
    ok(&mut h, 1, (14, 15), put("a", "3"), put_ok(5));
    ok(&mut h, 1, (16, 17), get("a"), get_ok(5, kv("3", 5, 5, 1)));
    let lin = check_linearizable_with(&h, &CheckOptions::new(1)).unwrap();
    assert_eq!(lin.order, (0..9).collect::<Vec<_>>());
    assert_eq!(lin.final_revision, 5);
    check_revisions(&h).unwrap();
}

#[test]
fn concurrent_valid_overlapping() {
    let mut h = History::new();
    // Two overlapping puts linearized against invoke order, reads overlapping both.
    ok(&mut h, 1, (0, 100), put("a", "x"), put_ok(3));
    ok(&mut h, 2, (10, 50), put("a", "y"), put_ok(2));
    ok(&mut h, 3, (5, 60), get("a"), get_ok(2, kv("y", 2, 2, 1)));
    ok(&mut h, 4, (20, 120), get("a"), get_ok(3, kv("x", 2, 3, 2)));
    ok(&mut h, 5, (1, 2), get("a"), get_ok(1, None));
    ok(&mut h, 3, (70, 80), get("a"), get_ok(2, kv("y", 2, 2, 1)));
    ok(&mut h, 5, (101, 130), get("a"), get_ok(3, kv("x", 2, 3, 2)));
    check_linearizable(&h, 1).unwrap();
}

#[test]
fn stale_read_is_rejected() {
    // A read invoked after a put completed reports the revision before it.
    let mut h = History::new();
    ok(&mut h, 1, (0, 10), put("a", "1"), put_ok(2));
    ok(&mut h, 2, (20, 30), get("a"), get_ok(1, None));
    let e = assert_violation(check_linearizable(&h, 1));
    assert!(
        matches!(
            e,
            LinearizabilityError::RealTimeViolation {
                earlier: 0,
                later: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(check_revisions(&h).is_err());
    // The same stale value under the current revision: the model disagrees.
    let mut h = History::new();
    ok(&mut h, 1, (0, 10), put("a", "1"), put_ok(2));
    ok(&mut h, 2, (20, 30), get("a"), get_ok(2, None));
    let e = assert_violation(check_linearizable(&h, 1));
    let LinearizabilityError::NotLinearizable(f) = &e else {
        panic!("{e}")
    };
    assert_eq!(f.revision, Some(2));
    assert_eq!(f.linearized, vec![0]);
    assert_eq!(f.remaining, 1);
    let text = e.to_string();
    assert!(
        text.contains("#1 client 2") && text.contains("could not place"),
        "{text}"
    );
}

#[test]
fn lost_write_is_rejected() {
    let mut h = History::new();
    ok(&mut h, 1, (0, 10), put("a", "1"), put_ok(2));
    ok(&mut h, 1, (20, 30), put("a", "2"), put_ok(3));
    ok(&mut h, 2, (40, 50), get("a"), get_ok(3, kv("1", 2, 2, 1)));
    assert_violation(check_linearizable(&h, 1));
    // A later read still at revision 2 breaks real-time order instead.
    let mut h = History::new();
    ok(&mut h, 1, (0, 10), put("a", "1"), put_ok(2));
    ok(&mut h, 1, (20, 30), put("a", "2"), put_ok(3));
    ok(&mut h, 2, (40, 50), get("a"), get_ok(2, kv("1", 2, 2, 1)));
    assert_violation(check_linearizable(&h, 1));
}

#[test]
fn duplicate_revisions_are_rejected() {
    let mut h = History::new();
    ok(&mut h, 1, (0, 10), put("a", "1"), put_ok(2));
    ok(&mut h, 2, (0, 10), put("b", "1"), put_ok(2));
    let e = assert_violation(check_linearizable(&h, 1));
    assert!(
        matches!(
            e,
            LinearizabilityError::DuplicateRevision { revision: 2, .. }
        ),
        "{e}"
    );
    assert!(check_revisions(&h).is_err());
}

#[test]
fn write_revisions_must_follow_real_time() {
    let mut h = History::new();
    ok(&mut h, 1, (0, 10), put("a", "1"), put_ok(3));
    ok(&mut h, 2, (20, 30), put("b", "1"), put_ok(2));
    assert!(matches!(
        check_revisions(&h),
        Err(LinearizabilityError::RealTimeViolation { .. })
    ));
}

#[test]
fn unknown_write_that_took_effect_is_accepted() {
    let mut h = History::new();
    op(&mut h, 1, (0, 5), put("a", "1"), None);
    ok(&mut h, 2, (10, 20), get("a"), get_ok(2, kv("1", 2, 2, 1)));
    let lin = check_linearizable_with(&h, &CheckOptions::new(1)).unwrap();
    assert_eq!(lin.fillers, vec![(2, 0)]);
    // ... even long after it timed out, behind later Ok writes.
    let mut h = History::new();
    op(&mut h, 1, (0, 5), put("a", "1"), None);
    ok(&mut h, 1, (6, 9), put("b", "x"), put_ok(2));
    ok(&mut h, 2, (10, 20), get("a"), get_ok(2, None));
    ok(&mut h, 2, (30, 40), get("a"), get_ok(3, kv("1", 3, 3, 1)));
    check_linearizable(&h, 1).unwrap();
    // ... but never before its invoke.
    let mut h = History::new();
    ok(&mut h, 1, (0, 5), put("b", "x"), put_ok(3));
    op(&mut h, 2, (6, 7), put("a", "1"), None);
    ok(&mut h, 3, (10, 20), get("a"), get_ok(3, kv("1", 2, 2, 1)));
    let e = assert_violation(check_linearizable(&h, 1));
    assert!(e.to_string().contains("revision 2"), "{e}");
}

#[test]
fn unknown_write_that_did_not_take_effect_is_accepted() {
    let mut h = History::new();
    op(&mut h, 1, (0, 5), put("a", "1"), None);
    op(&mut h, 1, (6, 7), del("b"), None);
    op(&mut h, 1, (6, 7), get("b"), None);
    ok(&mut h, 2, (10, 20), get("a"), get_ok(1, None));
    let lin = check_linearizable_with(&h, &CheckOptions::new(1)).unwrap();
    assert!(lin.fillers.is_empty());
    assert_eq!(lin.order, vec![3]);
}

#[test]
fn unknown_delete_and_cas_fill_gaps() {
    let mut h = History::new();
    ok(&mut h, 1, (0, 1), put("a", "1"), put_ok(2));
    op(&mut h, 2, (2, 3), del("a"), None);
    op(&mut h, 3, (2, 3), cas("b", 0, "z"), None);
    op(&mut h, 4, (2, 3), put("a", "decoy"), None);
    ok(&mut h, 1, (10, 11), get("b"), get_ok(4, kv("z", 4, 4, 1)));
    ok(&mut h, 1, (12, 13), get("a"), get_ok(4, None));
    let lin = check_linearizable_with(&h, &CheckOptions::new(1)).unwrap();
    let mut fillers = lin.fillers.clone();
    fillers.sort();
    assert_eq!(fillers.iter().map(|f| f.1).collect::<Vec<_>>().len(), 2);
    assert!(fillers.contains(&(4, 2)), "{fillers:?}");
    assert!(fillers.contains(&(3, 1)), "{fillers:?}");
}

#[test]
fn cas_semantics() {
    let cas_resp = |revision, succeeded, kv| Response::Cas {
        revision,
        succeeded,
        kv,
    };
    let mut h = History::new();
    ok(&mut h, 1, (0, 1), cas("a", 0, "1"), cas_resp(2, true, None));
    ok(
        &mut h,
        1,
        (2, 3),
        cas("a", 0, "2"),
        cas_resp(2, false, kv("1", 2, 2, 1)),
    );
    ok(&mut h, 1, (4, 5), cas("a", 2, "3"), cas_resp(3, true, None));
    ok(
        &mut h,
        1,
        (6, 7),
        cas("a", 2, "4"),
        cas_resp(3, false, kv("3", 2, 3, 2)),
    );
    ok(&mut h, 1, (8, 9), get("a"), get_ok(3, kv("3", 2, 3, 2)));
    check_linearizable(&h, 1).unwrap();
    // A Cas reported succeeding although its compare cannot hold.
    let mut bad = h.clone();
    ok(
        &mut bad,
        1,
        (10, 11),
        cas("a", 2, "5"),
        cas_resp(4, true, None),
    );
    let e = assert_violation(check_linearizable(&bad, 1));
    assert!(e.to_string().contains("compare"), "{e}");
    // A Cas reported failing although its compare holds.
    let mut bad = h.clone();
    ok(
        &mut bad,
        1,
        (10, 11),
        cas("a", 3, "5"),
        cas_resp(3, false, kv("3", 2, 3, 2)),
    );
    assert_violation(check_linearizable(&bad, 1));
    // A failed Cas whose failure branch saw the wrong value.
    let mut bad = h.clone();
    ok(
        &mut bad,
        1,
        (10, 11),
        cas("a", 7, "5"),
        cas_resp(3, false, kv("1", 2, 2, 1)),
    );
    assert_violation(check_linearizable(&bad, 1));
}

#[test]
fn delete_of_absent_key() {
    let d = |revision, deleted| Response::Delete { revision, deleted };
    let mut h = History::new();
    ok(&mut h, 1, (0, 1), del("a"), d(1, 0));
    ok(&mut h, 1, (2, 3), put("a", "1"), put_ok(2));
    ok(&mut h, 1, (4, 5), del("a"), d(3, 1));
    ok(&mut h, 1, (6, 7), del("a"), d(3, 0));
    check_linearizable(&h, 1).unwrap();
    let mut bad = History::new();
    ok(&mut bad, 1, (0, 1), del("a"), d(2, 1));
    assert_violation(check_linearizable(&bad, 1));
    let mut bad = History::new();
    ok(&mut bad, 1, (0, 1), put("a", "1"), put_ok(2));
    ok(&mut bad, 1, (2, 3), del("a"), d(2, 0));
    assert_violation(check_linearizable(&bad, 1));
}

#[test]
fn failed_ops_are_ignored() {
    let mut h = History::new();
    op(&mut h, 1, (0, 5), put("a", "1"), Some(Outcome::Failed));
    ok(&mut h, 2, (10, 20), get("a"), get_ok(1, None));
    check_linearizable(&h, 1).unwrap();
    let mut bad = History::new();
    op(&mut bad, 1, (0, 5), put("a", "1"), Some(Outcome::Failed));
    ok(&mut bad, 2, (10, 20), get("a"), get_ok(2, kv("1", 2, 2, 1)));
    assert_violation(check_linearizable(&bad, 1));
}

#[test]
fn serializable_reads() {
    let mut h = History::new();
    ok(&mut h, 1, (0, 1), put("a", "1"), put_ok(2));
    ok(&mut h, 1, (2, 3), put("a", "2"), put_ok(3));
    ok(&mut h, 2, (10, 11), sget("a"), get_ok(2, kv("1", 2, 2, 1)));
    ok(&mut h, 2, (12, 13), sget("a"), get_ok(1, None));
    ok(&mut h, 2, (14, 15), sget("a"), get_ok(3, kv("2", 2, 3, 2)));
    check_linearizable(&h, 1).unwrap();
    let bad_read = |h: &History, revision, kv| {
        let mut bad = h.clone();
        ok(&mut bad, 3, (20, 21), sget("a"), get_ok(revision, kv));
        assert_violation(check_linearizable(&bad, 1));
    };
    bad_read(&h, 3, kv("never", 3, 3, 1)); // never written
    bad_read(&h, 3, kv("1", 2, 2, 1)); // overwritten by revision 3
    bad_read(&h, 3, None); // never deleted
    bad_read(&h, 2, kv("1", 2, 2, 2)); // wrong version
    bad_read(&h, 4, kv("2", 2, 3, 2)); // ok data, but no revision 4 can exist
                                       // A value written by an Unknown put is fine; by a Failed put it is not.
    let mut u = h.clone();
    op(&mut u, 3, (16, 17), put("a", "3"), None);
    ok(&mut u, 3, (20, 21), sget("a"), get_ok(4, kv("3", 2, 4, 3)));
    check_linearizable(&u, 1).unwrap();
    let mut f = h.clone();
    op(&mut f, 3, (16, 17), put("a", "3"), Some(Outcome::Failed));
    ok(&mut f, 3, (20, 21), sget("a"), get_ok(4, kv("3", 2, 4, 3)));
    assert_violation(check_linearizable(&f, 1));
}

#[test]
fn initial_revision_other_than_one() {
    let mut h = History::new();
    ok(&mut h, 1, (0, 1), get("a"), get_ok(100, None));
    ok(&mut h, 1, (2, 3), put("a", "1"), put_ok(101));
    ok(
        &mut h,
        2,
        (4, 5),
        get("a"),
        get_ok(101, kv("1", 101, 101, 1)),
    );
    ok(
        &mut h,
        2,
        (6, 7),
        sget("a"),
        get_ok(101, kv("1", 101, 101, 1)),
    );
    check_linearizable(&h, 100).unwrap();
    // Assuming the wrong initial revision leaves revisions 2..=100 unexplained.
    let e = assert_violation(check_linearizable(&h, 1));
    assert!(e.to_string().contains("no Unknown write can have"), "{e}");
    // A read before the initial revision.
    assert_violation(check_linearizable(&h, 101));
}

#[test]
fn malformed_histories() {
    let mut h = History::new();
    ok(&mut h, 1, (0, 1), put("a", "1"), get_ok(2, None));
    let e = check_linearizable(&h, 1).unwrap_err();
    assert!(matches!(e, LinearizabilityError::Malformed { op: 0, .. }) && !e.is_violation());
    let mut h = History::new();
    ok(&mut h, 1, (5, 1), put("a", "1"), put_ok(2));
    assert!(matches!(
        check_linearizable(&h, 1),
        Err(LinearizabilityError::Malformed { .. })
    ));
}

#[test]
fn budget_exhaustion_is_inconclusive() {
    let h = generate(7, &config(4, 2, 0, 0, 1, 200));
    let opts = CheckOptions {
        initial_revision: 1,
        max_steps: 50,
    };
    let e = check_linearizable_with(&h, &opts).unwrap_err();
    assert!(
        matches!(e, LinearizabilityError::Inconclusive { .. }),
        "{e}"
    );
    assert!(!e.is_violation());
    check_linearizable(&h, 1).unwrap();
}

#[test]
fn unobserved_unknown_writes_do_not_blow_up() {
    // Twelve unknown puts to keys nobody reads: any of them may fill revisions 2..=7, in any
    // order; the search must treat them as interchangeable instead of enumerating orders.
    let mut h = History::new();
    for i in 0..12 {
        op(&mut h, i, (0, 1), put(&format!("k{i}"), "x"), None);
    }
    for i in 0..6 {
        let rev = 2 + i as i64;
        ok(&mut h, 20, (10 + i, 10 + i), get("zz"), get_ok(rev, None));
    }
    op(&mut h, 21, (0, 1), put("zz", "late"), None);
    ok(
        &mut h,
        20,
        (100, 101),
        get("zz"),
        get_ok(8, kv("late", 8, 8, 1)),
    );
    let lin = check_linearizable_with(&h, &CheckOptions::new(1)).unwrap();
    assert!(lin.steps < 200, "{lin:?}");
    assert_eq!(lin.fillers.len(), 7);
    // Now k0 is seen holding "x" at revision 4, then absent at 8: nothing can delete it, which
    // the search sees as soon as k0 is present (the lookahead of `crate::absence`).
    ok(&mut h, 22, (12, 12), get("k0"), get_ok(4, kv("x", 2, 2, 1)));
    ok(&mut h, 22, (102, 103), get("k0"), get_ok(8, None));
    let e = assert_violation(check_linearizable(&h, 1));
    let LinearizabilityError::NotLinearizable(f) = &e else {
        panic!("{e}")
    };
    assert!(f.revision < Some(8), "{e}");
    assert!(e.to_string().contains("Get(\"k0\")"), "{e}");
    assert!(
        e.to_string()
            .contains("no write still to come can delete it"),
        "{e}"
    );
}

#[test]
fn keys_competing_for_one_revision() {
    // Each key alone could be deleted at revision 4, but only one write can create it.
    let d = |revision, deleted| Response::Delete { revision, deleted };
    let mut h = History::new();
    ok(&mut h, 1, (0, 1), put("a", "1"), put_ok(2));
    ok(&mut h, 1, (2, 3), put("b", "1"), put_ok(3));
    op(&mut h, 2, (4, 5), del("a"), None);
    op(&mut h, 3, (4, 5), del("b"), None);
    ok(&mut h, 1, (10, 11), put("c", "1"), put_ok(5));
    ok(&mut h, 1, (12, 13), get("a"), get_ok(5, None));
    let valid = h.clone();
    ok(&mut h, 1, (14, 15), get("b"), get_ok(5, None));
    let e = assert_violation(check_linearizable(&h, 1));
    let LinearizabilityError::NotLinearizable(f) = &e else {
        panic!("{e}")
    };
    // Either choice at revision 4 leaves a key that the reads at 5 saw absent.
    assert_eq!(f.revision, Some(4), "{e}");
    assert!(
        e.to_string()
            .contains("no write still to come can delete it"),
        "{e}"
    );
    check_linearizable(&valid, 1).unwrap();
    let mut valid = valid;
    ok(
        &mut valid,
        1,
        (14, 15),
        get("b"),
        get_ok(5, kv("1", 3, 3, 1)),
    );
    ok(&mut valid, 1, (16, 17), del("b"), d(6, 1));
    check_linearizable(&valid, 1).unwrap();
}
