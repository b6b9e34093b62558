use super::*;

/// bcrypt's minimum cost: the tests check rules, not hashing strength.
const COST: u32 = 4;

fn add_user(store: &mut AuthStore, name: &str, password: &str) {
    let hash = hash_password(password, COST).unwrap();
    let change = AuthChange::UserAdd {
        name: name.into(),
        password_hash: Some(hash),
    };
    store.apply(&change).unwrap();
}

fn grant(store: &mut AuthStore, user: &str, role: &str) -> Result<(), AuthError> {
    store.apply(&AuthChange::UserGrantRole {
        user: user.into(),
        role: role.into(),
    })
}

fn grant_perm(store: &mut AuthStore, role: &str, kind: PermKind, key: &str, end: &str) {
    let permission = Permission {
        kind,
        key: key.into(),
        range_end: end.into(),
    };
    let change = AuthChange::RoleGrantPermission {
        role: role.into(),
        permission,
    };
    store.apply(&change).unwrap();
}

#[test]
fn enabling_needs_root_with_the_root_role() {
    let mut s = AuthStore::default();
    assert_eq!(
        s.apply(&AuthChange::Enable),
        Err(AuthError::RootUserNotExist)
    );
    add_user(&mut s, ROOT, "pw");
    assert_eq!(
        s.apply(&AuthChange::Enable),
        Err(AuthError::RootRoleNotExist)
    );
    // The root role may be granted before it exists, as in etcd.
    grant(&mut s, ROOT, ROOT).unwrap();
    let before = s.revision;
    s.apply(&AuthChange::Enable).unwrap();
    assert!(s.enabled);
    assert_eq!(s.revision, before + 1);
    // Enabling again is a no-op that succeeds.
    s.apply(&AuthChange::Enable).unwrap();
    assert_eq!(s.revision, before + 1);
}

#[test]
fn root_is_protected_while_auth_is_enabled() {
    let mut s = AuthStore::default();
    add_user(&mut s, ROOT, "pw");
    s.apply(&AuthChange::RoleAdd(ROOT.into())).unwrap();
    grant(&mut s, ROOT, ROOT).unwrap();
    s.apply(&AuthChange::Enable).unwrap();
    let snapshot = s.clone();
    let refused = [
        AuthChange::UserDelete(ROOT.into()),
        AuthChange::UserRevokeRole {
            user: ROOT.into(),
            role: ROOT.into(),
        },
        AuthChange::RoleDelete(ROOT.into()),
    ];
    for change in &refused {
        assert_eq!(
            s.apply(change),
            Err(AuthError::InvalidAuthMgmt),
            "{change:?}"
        );
    }
    assert_eq!(s, snapshot, "a refused change leaves the store as it was");
    s.apply(&AuthChange::Disable).unwrap();
    s.apply(&AuthChange::UserDelete(ROOT.into())).unwrap();
}

#[test]
fn user_and_role_errors_are_etcds() {
    let mut s = AuthStore::default();
    let empty = AuthChange::UserAdd {
        name: String::new(),
        password_hash: None,
    };
    assert_eq!(s.apply(&empty), Err(AuthError::UserEmpty));
    add_user(&mut s, "alice", "pw");
    let again = AuthChange::UserAdd {
        name: "alice".into(),
        password_hash: None,
    };
    assert_eq!(s.apply(&again), Err(AuthError::UserAlreadyExist));
    assert_eq!(
        grant(&mut s, "alice", "reader"),
        Err(AuthError::RoleNotFound)
    );
    assert_eq!(grant(&mut s, "bob", ROOT), Err(AuthError::UserNotFound));
    assert_eq!(
        s.apply(&AuthChange::RoleAdd(String::new())),
        Err(AuthError::RoleEmpty)
    );
    s.apply(&AuthChange::RoleAdd("reader".into())).unwrap();
    assert_eq!(
        s.apply(&AuthChange::RoleAdd("reader".into())),
        Err(AuthError::RoleAlreadyExist)
    );
    let revoke = AuthChange::UserRevokeRole {
        user: "alice".into(),
        role: "reader".into(),
    };
    assert_eq!(s.apply(&revoke), Err(AuthError::RoleNotGranted));
    let revoke_perm = AuthChange::RoleRevokePermission {
        role: "reader".into(),
        key: b"k".to_vec(),
        range_end: Vec::new(),
    };
    assert_eq!(s.apply(&revoke_perm), Err(AuthError::PermissionNotGranted));
    assert_eq!(
        s.apply(&AuthChange::UserDelete("nobody".into())),
        Err(AuthError::UserNotFound)
    );
    assert_eq!(
        s.apply(&AuthChange::RoleDelete("nobody".into())),
        Err(AuthError::RoleNotFound)
    );
}

#[test]
fn permissions_follow_roles_and_take_effect_at_once() {
    let mut s = AuthStore::default();
    add_user(&mut s, "alice", "pw");
    s.apply(&AuthChange::RoleAdd("app".into())).unwrap();
    grant(&mut s, "alice", "app").unwrap();
    assert!(!s.permitted("alice", PermKind::Read, b"app/x", b""));
    grant_perm(&mut s, "app", PermKind::Read, "app/", "app0");
    assert!(s.permitted("alice", PermKind::Read, b"app/x", b""));
    assert!(s.permitted("alice", PermKind::Read, b"app/", b"app0"));
    assert!(!s.permitted("alice", PermKind::Write, b"app/x", b""));
    // Granting the same range again replaces the kind.
    grant_perm(&mut s, "app", PermKind::ReadWrite, "app/", "app0");
    assert_eq!(s.roles["app"].permissions.len(), 1);
    assert!(s.permitted("alice", PermKind::Write, b"app/x", b""));
    let revoke = AuthChange::RoleRevokePermission {
        role: "app".into(),
        key: b"app/".to_vec(),
        range_end: b"app0".to_vec(),
    };
    let before = s.revision;
    s.apply(&revoke).unwrap();
    assert!(s.revision > before);
    assert!(!s.permitted("alice", PermKind::Read, b"app/x", b""));
    // Deleting a role takes it from its users.
    s.apply(&AuthChange::RoleDelete("app".into())).unwrap();
    assert!(s.users["alice"].roles.is_empty());
    assert!(!s.permitted("nobody", PermKind::Read, b"k", b""));
}

#[test]
fn root_passes_every_check_and_passwords_are_checked() {
    let mut s = AuthStore::default();
    add_user(&mut s, ROOT, "secret");
    grant(&mut s, ROOT, ROOT).unwrap();
    assert!(s.is_root(ROOT));
    assert!(s.permitted(ROOT, PermKind::Write, b"", b"\0"));
    assert_eq!(s.check_password(ROOT, "secret"), Ok(()));
    assert_eq!(s.check_password(ROOT, "wrong"), Err(AuthError::AuthFailed));
    assert_eq!(s.check_password("nobody", "x"), Err(AuthError::AuthFailed));
    let no_password = AuthChange::UserAdd {
        name: "svc".into(),
        password_hash: None,
    };
    s.apply(&no_password).unwrap();
    assert_eq!(s.check_password("svc", "x"), Err(AuthError::NoPasswordUser));
    let change = AuthChange::UserChangePassword {
        name: ROOT.into(),
        password_hash: hash_password("new", COST).unwrap(),
    };
    s.apply(&change).unwrap();
    assert_eq!(s.check_password(ROOT, "new"), Ok(()));
}
