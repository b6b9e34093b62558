//! Users, roles and permissions end to end with the real etcdctl: the same session against
//! etcd 3.4 and detcd prints the same and exits the same; detcdctl's auth commands print what
//! etcdctl's do; the auth state is replicated to every member and survives a kill -9.

#![cfg(not(madsim))]

mod common;
use common::side_by_side::{both, script};
use common::{etcd_binary, etcdctl_stdin, normalize_ids, Cluster, Single};
use std::time::Duration;

type Step = (&'static [&'static str], Option<&'static str>);

/// A session an operator runs: root and a reader, auth on, then what each may do.
const SESSION: &[Step] = &[
    (&["auth", "enable"], None),
    (&["user", "add", "root:rootpw"], None),
    (&["user", "add", "root:again"], None),
    (
        &["user", "add", "alice", "--interactive=false"],
        Some("alicepw\n"),
    ),
    (&["user", "add", "carol", "--no-password"], None),
    (&["role", "add", "reader"], None),
    (&["role", "add", "reader"], None),
    (&["role", "grant-permission", "reader", "read", "foo"], None),
    (
        &[
            "role",
            "grant-permission",
            "--prefix",
            "reader",
            "readwrite",
            "dir/",
        ],
        None,
    ),
    (
        &["role", "grant-permission", "reader", "write", "a", "z"],
        None,
    ),
    (
        &[
            "role",
            "grant-permission",
            "reader",
            "read",
            "--from-key",
            "zz",
        ],
        None,
    ),
    (&["role", "grant-permission", "reader", "bogus", "k"], None),
    (&["role", "grant-permission", "nobody", "read", "k"], None),
    (&["role", "get", "reader"], None),
    (&["role", "get", "nobody"], None),
    (&["user", "grant-role", "alice", "reader"], None),
    (&["user", "grant-role", "alice", "nobody"], None),
    (&["user", "get", "alice"], None),
    (&["user", "get", "nobody"], None),
    (&["user", "list"], None),
    (&["role", "list"], None),
    (&["put", "secret", "s"], None),
    // etcdctl creates the root role and grants it to root when enabling needs it.
    (&["auth", "enable"], None),
    (&["auth", "enable"], None),
    (&["--user=root:rootpw", "auth", "enable"], None),
    (&["--user=root:rootpw", "role", "list"], None),
    (&["get", "foo"], None),
    (&["--user=alice:alicepw", "get", "foo"], None),
    (&["--user=alice:alicepw", "put", "foo", "bar"], None),
    (&["--user=root:rootpw", "put", "foo", "bar"], None),
    (&["--user=alice:alicepw", "get", "foo"], None),
    (&["--user=alice:wrong", "get", "foo"], None),
    (&["--user=nobody:x", "get", "foo"], None),
    (&["--user=carol:x", "get", "foo"], None),
    (
        &["--user=alice", "--password=alicepw", "put", "dir/x", "1"],
        None,
    ),
    (&["--user=alice:alicepw", "get", "dir/", "--prefix"], None),
    (&["--user=alice:alicepw", "get", "", "--prefix"], None),
    (&["--user=alice:alicepw", "get", "secret"], None),
    (&["--user=alice:alicepw", "del", "dir/x", "--prev-kv"], None),
    (&["--user=alice:alicepw", "user", "list"], None),
    (&["--user=alice:alicepw", "user", "get", "alice"], None),
    (&["--user=alice:alicepw", "user", "get", "root"], None),
    (&["--user=alice:alicepw", "role", "get", "reader"], None),
    (&["--user=alice:alicepw", "role", "get", "root"], None),
    (
        &["--user=alice:alicepw", "txn"],
        Some("value(\"foo\") = \"bar\"\n\nput dir/y 2\n\n\n"),
    ),
    // A compare on a key alice may not read is refused like a read of it.
    (
        &["--user=alice:alicepw", "txn"],
        Some("value(\"secret\") = \"s\"\n\nput dir/y 2\n\n\n"),
    ),
    (&["--user=alice:alicepw", "user", "add", "mallory:x"], None),
    (&["--user=alice:alicepw", "defrag"], None),
    (&["--user=alice:alicepw", "endpoint", "hashkv"], None),
    (&["defrag"], None),
    (&["endpoint", "health"], None),
    (
        &[
            "--user=alice:alicepw",
            "member",
            "add",
            "x",
            "--peer-urls=http://127.0.0.1:1",
        ],
        None,
    ),
    (&["--user=alice:alicepw", "auth", "disable"], None),
    (
        &[
            "--user=root:rootpw",
            "role",
            "revoke-permission",
            "reader",
            "foo",
        ],
        None,
    ),
    (
        &[
            "--user=root:rootpw",
            "role",
            "revoke-permission",
            "reader",
            "foo",
        ],
        None,
    ),
    (
        &[
            "--user=root:rootpw",
            "role",
            "revoke-permission",
            "reader",
            "a",
            "z",
        ],
        None,
    ),
    (&["--user=alice:alicepw", "get", "foo"], None),
    (
        &["--user=root:rootpw", "user", "revoke-role", "alice", "root"],
        None,
    ),
    (&["--user=root:rootpw", "user", "delete", "root"], None),
    (&["--user=root:rootpw", "role", "delete", "root"], None),
    (
        &["--user=root:rootpw", "user", "revoke-role", "root", "root"],
        None,
    ),
    (
        &[
            "--user=root:rootpw",
            "user",
            "passwd",
            "alice",
            "--interactive=false",
        ],
        Some("new\n"),
    ),
    (&["--user=alice:alicepw", "get", "dir/y"], None),
    (&["--user=alice:new", "get", "dir/y"], None),
    (&["--user=root:rootpw", "role", "delete", "reader"], None),
    (&["--user=alice:new", "get", "dir/y"], None),
    (&["--user=root:rootpw", "user", "delete", "alice"], None),
    (&["--user=alice:new", "get", "dir/y"], None),
    (&["--user=root:rootpw", "auth", "disable"], None),
    (&["get", "foo"], None),
    (&["user", "list"], None),
];

#[test]
fn an_auth_session_with_etcdctl_matches_etcd() {
    let etcd = Single::start(&etcd_binary());
    let detcd = Single::start(env!("CARGO_BIN_EXE_detcd"));
    let mut mismatches = Vec::new();
    for (args, input) in SESSION {
        let a = etcdctl_stdin(&etcd.endpoint, args, *input);
        let b = etcdctl_stdin(&detcd.endpoint, args, *input);
        // Both outputs with ids, terms and each server's own endpoint blanked.
        let etcd_text = |t: String| normalize_ids(&t.replace(&etcd.endpoint, "<EP>"));
        let detcd_text = |t: String| normalize_ids(&t.replace(&detcd.endpoint, "<EP>"));
        let (ao, bo) = (
            etcd_text(common::stdout(&a)),
            detcd_text(common::stdout(&b)),
        );
        let (ae, be) = (
            etcd_text(common::stderr(&a)),
            detcd_text(common::stderr(&b)),
        );
        if ao != bo || ae != be || a.status.code() != b.status.code() {
            mismatches.push(format!(
                "etcdctl {args:?}\n  etcd : {:?} {ao:?} {ae:?}\n  detcd: {:?} {bo:?} {be:?}",
                a.status.code(),
                b.status.code()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} differences:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn detcdctl_auth_commands_match_etcdctl() {
    let (mut e, mut d) = both();
    script(&mut e, &mut d, SESSION);
    let json: &[Step] = &[
        (&["user", "add", "bob:pw", "-w", "json"], None),
        (&["user", "list", "-w", "json"], None),
        (&["role", "add", "r", "-w", "json"], None),
        (
            &["role", "grant-permission", "r", "read", "k", "-w", "json"],
            None,
        ),
        (&["role", "get", "r", "-w", "json"], None),
        (&["user", "get", "bob", "--detail"], None),
        (&["user", "add"], None),
        (&["role", "grant-permission", "r", "read"], None),
        (&["auth", "enable", "extra"], None),
    ];
    script(&mut e, &mut d, json);
}

#[test]
fn every_member_enforces_the_same_rules_and_a_killed_member_keeps_them() {
    let mut c = Cluster::start(3);
    let ep0 = c.endpoint(0);
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["role", "add", "root"],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "alice:alicepw"],
        &["role", "add", "app"],
        &[
            "role",
            "grant-permission",
            "--prefix",
            "app",
            "readwrite",
            "app/",
        ],
        &["user", "grant-role", "alice", "app"],
        &["auth", "enable"],
    ] {
        common::ok(&ep0, args);
    }
    fn as_alice<'a>(rest: &[&'a str]) -> Vec<&'a str> {
        [&["--user=alice:alicepw"][..], rest].concat()
    }
    // Written through one member, read through another with a token that member issued.
    common::ok(&c.endpoint(1), &as_alice(&["put", "app/k", "v1"]));
    let got = common::ok(&c.endpoint(2), &as_alice(&["get", "app/k"]));
    assert_eq!(got, "app/k\nv1\n");
    let denied = common::fails(&c.endpoint(2), &as_alice(&["put", "other", "x"]));
    assert!(denied.contains("etcdserver: permission denied"), "{denied}");
    // The auth state is in the backend and the WAL: a killed member enforces it at once.
    c.kill(1);
    c.start_member(1);
    let ep1 = c.endpoint(1);
    common::wait_until(Duration::from_secs(20), || {
        common::etcdctl(&ep1, &["--user=root:rootpw", "endpoint", "health"])
            .status
            .success()
    });
    let anonymous = common::fails(&ep1, &["get", "app/k"]);
    assert!(
        anonymous.contains("etcdserver: user name is empty"),
        "{anonymous}"
    );
    let got = common::ok(&ep1, &as_alice(&["get", "app/k"]));
    assert_eq!(got, "app/k\nv1\n");
    let denied = common::fails(&ep1, &as_alice(&["get", "other"]));
    assert!(denied.contains("etcdserver: permission denied"), "{denied}");
}

/// `--auth-token jwt,...`: a token one member signs is accepted by every member; an auth change
/// makes it stale (`revision of auth store is old`) until the client authenticates again, which
/// the real etcdctl does by itself; a forged token is refused.
#[test]
fn jwt_tokens_work_on_every_member_and_go_stale_on_auth_changes() {
    use detcd::pb::etcdserverpb::{auth_client::AuthClient, kv_client::KvClient};
    use detcd::pb::etcdserverpb::{AuthenticateRequest, PutRequest};
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let (pub_key, priv_key) = (dir.path().join("jwt.pub"), dir.path().join("jwt.key"));
    std::fs::write(&pub_key, key.public_key_pem()).unwrap();
    std::fs::write(&priv_key, key.serialize_pem()).unwrap();
    let flag = format!(
        "--auth-token=jwt,pub-key={},priv-key={},sign-method=ES256,ttl=5m",
        pub_key.display(),
        priv_key.display()
    );
    let c = Cluster::start_with(3, &[&flag]);
    let ep0 = c.endpoint(0);
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "add", "alice:alicepw"],
        &["role", "add", "app"],
        &[
            "role",
            "grant-permission",
            "--prefix",
            "app",
            "readwrite",
            "app/",
        ],
        &["user", "grant-role", "alice", "app"],
        &["auth", "enable"],
        &["--user=alice:alicepw", "put", "app/etcdctl", "1"],
    ] {
        common::ok(&ep0, args);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = |i: usize| {
            tonic::transport::Channel::from_shared(format!("http://{}", c.endpoint(i)))
                .unwrap()
                .connect_lazy()
        };
        let login = AuthenticateRequest {
            name: "alice".into(),
            password: "alicepw".into(),
        };
        let token = AuthClient::new(channel(0))
            .authenticate(login)
            .await
            .unwrap()
            .into_inner()
            .token;
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        let put = |i: usize, token: String| {
            let mut request = tonic::Request::new(PutRequest {
                key: b"app/k".to_vec().into(),
                value: b"v".to_vec().into(),
                ..Default::default()
            });
            request
                .metadata_mut()
                .insert("token", token.parse().unwrap());
            let mut kv = KvClient::new(channel(i));
            async move { kv.put(request).await }
        };
        for i in 0..3 {
            put(i, token.clone()).await.unwrap();
        }
        let forged = format!("{}x", token);
        let refused = put(1, forged).await.unwrap_err();
        assert_eq!(refused.message(), "etcdserver: invalid auth token");
        // Any auth change makes the token stale.
        common::ok(&ep0, &["--user=root:rootpw", "role", "add", "other"]);
        common::wait_until(Duration::from_secs(10), || {
            common::etcdctl(
                &c.endpoint(2),
                &["--user=root:rootpw", "role", "get", "other"],
            )
            .status
            .success()
        });
        let stale = put(2, token.clone()).await.unwrap_err();
        assert_eq!(stale.message(), "etcdserver: revision of auth store is old");
    });
    // etcdctl authenticates per run: it works on every member.
    for i in 0..3 {
        let got = common::ok(
            &c.endpoint(i),
            &[
                "--user=alice:alicepw",
                "get",
                "app/etcdctl",
                "--print-value-only",
            ],
        );
        assert_eq!(got, "1\n");
    }
}

/// `--auth-token-ttl`: a simple token unused for longer than the TTL is refused as
/// `invalid auth token`, while one in use lives on.
#[test]
fn simple_tokens_expire_after_the_ttl_unless_used() {
    use detcd::pb::etcdserverpb::{auth_client::AuthClient, kv_client::KvClient};
    use detcd::pb::etcdserverpb::{AuthenticateRequest, RangeRequest};
    let c = Cluster::start_with(1, &["--auth-token-ttl=2"]);
    let ep = c.endpoint(0);
    for args in [&["user", "add", "root:rootpw"][..], &["auth", "enable"]] {
        common::ok(&ep, args);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{ep}"))
            .unwrap()
            .connect_lazy();
        let login = || AuthenticateRequest {
            name: "root".into(),
            password: "rootpw".into(),
        };
        let mut auth = AuthClient::new(channel.clone());
        let idle = auth.authenticate(login()).await.unwrap().into_inner().token;
        let busy = auth.authenticate(login()).await.unwrap().into_inner().token;
        let get = |token: &str| {
            let mut request = tonic::Request::new(RangeRequest {
                key: b"k".to_vec().into(),
                ..Default::default()
            });
            request
                .metadata_mut()
                .insert("token", token.parse().unwrap());
            let mut kv = KvClient::new(channel.clone());
            async move { kv.range(request).await }
        };
        get(&idle).await.unwrap();
        let start = std::time::Instant::now();
        // Use `busy` every 0.5 s, and `idle` not at all, for longer than the TTL.
        while start.elapsed() < Duration::from_millis(2500) {
            get(&busy).await.expect("a token in use stays valid");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let expired = get(&idle).await.expect_err("an idle token expires");
        assert_eq!(expired.message(), "etcdserver: invalid auth token");
        get(&busy).await.expect("a token in use stays valid");
    });
}
