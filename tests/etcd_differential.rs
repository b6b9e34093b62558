//! Side by side with the real etcd 3.4: the same etcdctl commands against a single-member etcd
//! and a single-member detcd must print the same output, the same errors and exit the same way
//! (after blanking what legitimately differs: cluster/member ids and raft terms).

#![cfg(not(madsim))]

mod common;
use common::{etcd_binary, etcdctl_stdin, normalize_ids as normalize, Single};
use std::time::Duration;

type Step = (&'static [&'static str], Option<&'static str>);

const SCRIPT: &[Step] = &[
    // A fresh store (revision 1, never compacted): 0 and 1 may be compacted, 0 only once.
    (&["compaction", "0"], None),
    (&["compaction", "0"], None),
    (&["compaction", "1"], None),
    (&["compaction", "1"], None),
    (&["compaction", "2"], None),
    (&["put", "a", "1"], None),
    (&["put", "b", "2"], None),
    (&["put", "a", "3"], None),
    (&["get", "a"], None),
    (&["get", "a", "-w", "json"], None),
    (&["get", "a", "--rev", "2"], None),
    (&["get", "a", "--rev", "2", "-w", "json"], None),
    (&["get", "a", "c"], None),
    (&["get", "", "--from-key", "--keys-only"], None),
    (
        &["get", "", "--prefix", "--sort-by=VALUE", "--order=DESCEND"],
        None,
    ),
    (
        &[
            "get",
            "",
            "--prefix",
            "--sort-by=MODIFY",
            "--limit",
            "1",
            "-w",
            "json",
        ],
        None,
    ),
    (
        &["get", "", "--prefix", "--sort-by=CREATE", "-w", "fields"],
        None,
    ),
    (&["get", "missing"], None),
    (&["get", "missing", "-w", "json"], None),
    (&["put", "c", "4", "--prev-kv"], None),
    (&["put", "c", "5", "--prev-kv", "-w", "json"], None),
    (&["put", "c", "--ignore-value"], None),
    (&["put", "nokey", "--ignore-value"], None),
    (&["put", "c", "x", "--lease", "1234"], None),
    (&["del", "b", "--prev-kv"], None),
    (&["del", "zzz"], None),
    (&["del", "", "--from-key", "-w", "json"], None),
    (&["put", "k1", "v1"], None),
    (&["put", "k2", "v2"], None),
    (
        &["txn", "-w", "json"],
        Some("mod(\"k1\") > \"0\"\n\nput k1 t1\nget k2\n\nput k1 f1\n\n"),
    ),
    (
        &["txn"],
        Some("value(\"k1\") = \"nope\"\nversion(\"k2\") = \"1\"\n\nput k1 s\n\nget k1\ndel k2\n\n"),
    ),
    (&["txn"], Some("\nput d 1\nput d 2\n\n\n")),
    (&["get", "", "--prefix", "-w", "json"], None),
    (&["compaction", "5"], None),
    (&["compaction", "3"], None),
    (&["get", "a", "--rev", "4"], None),
    (&["get", "a", "--rev", "5"], None),
    (&["get", "a", "--rev", "9999"], None),
    (&["compaction", "9999"], None),
    (&["put", "", "empty"], None),
    (&["get", ""], None),
    (&["lease", "list"], None),
    (&["lease", "timetolive", "1234"], None),
    (
        &["lease", "timetolive", "1234", "--keys", "-w", "json"],
        None,
    ),
    (&["lease", "keep-alive", "--once", "1234"], None),
    (&["lease", "revoke", "1234"], None),
    (&["put", "leased", "v", "--lease", "1234"], None),
    (&["lease", "grant", "99999999999"], None),
];

#[test]
fn etcdctl_sees_the_same_thing_from_etcd_and_detcd() {
    let etcd = Single::start(&etcd_binary());
    let detcd = Single::start(env!("CARGO_BIN_EXE_detcd"));
    let mut mismatches = Vec::new();
    for (args, input) in SCRIPT {
        let a = etcdctl_stdin(&etcd.endpoint, args, *input);
        let b = etcdctl_stdin(&detcd.endpoint, args, *input);
        let (ao, bo) = (
            normalize(&common::stdout(&a)),
            normalize(&common::stdout(&b)),
        );
        let (ae, be) = (
            normalize(&common::stderr(&a)),
            normalize(&common::stderr(&b)),
        );
        if ao != bo || ae != be || a.status.code() != b.status.code() {
            mismatches.push(format!(
                "etcdctl {args:?}\n  etcd : {:?} {ao:?} {ae:?}\n  detcd: {:?} {bo:?} {be:?}",
                a.status.code(),
                b.status.code()
            ));
        }
    }
    for args in WATCHES {
        let (a, b) = (
            watch_output(&etcd.endpoint, args),
            watch_output(&detcd.endpoint, args),
        );
        if a != b {
            mismatches.push(format!("etcdctl {args:?}\n  etcd : {a:?}\n  detcd: {b:?}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} differences:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Watches replaying history (they never end by themselves: each runs for a moment).
const WATCHES: &[&[&str]] = &[
    &["watch", "", "--prefix", "--rev", "5"],
    &["watch", "k1", "--rev", "6", "--prev-kv"],
    &["watch", "a", "--rev", "2"],
    &["watch", "", "--from-key", "--rev", "5", "-w", "json"],
];

fn watch_output(endpoint: &str, args: &[&str]) -> String {
    let mut child = common::spawn_etcdctl(endpoint, args);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = child.kill();
    let out = child.wait_with_output().expect("watch output");
    normalize(&format!("{}{}", common::stdout(&out), common::stderr(&out)))
}

/// What a Put of `value_len` bytes gets from the server at `endpoint`: the gRPC code and message.
async fn oversized_put(endpoint: &str, value_len: usize) -> (tonic::Code, String) {
    use detcd::pb::etcdserverpb::{kv_client::KvClient, PutRequest};
    let channel = tonic::transport::Channel::from_shared(format!("http://{endpoint}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let put = PutRequest {
        key: b"big".to_vec().into(),
        value: vec![b'v'; value_len].into(),
        ..Default::default()
    };
    // No client-side limit: the server's answer is what is compared.
    let status = KvClient::new(channel)
        .max_encoding_message_size(usize::MAX)
        .put(put)
        .await
        .expect_err("an oversized put is refused");
    (status.code(), status.message().to_string())
}

#[tokio::test]
async fn oversized_requests_get_etcds_codes_and_messages() {
    let etcd = Single::start(&etcd_binary());
    let detcd = Single::start(env!("CARGO_BIN_EXE_detcd"));
    // Over --max-request-bytes (1.5 MiB) but under the gRPC limit (+ 512 KiB); then over both.
    for len in [1_700_000, 2_090_000, 3_000_000] {
        let (want, got) = (
            oversized_put(&etcd.endpoint, len).await,
            oversized_put(&detcd.endpoint, len).await,
        );
        assert_eq!(got, want, "a put of {len} bytes: detcd vs etcd");
    }
}
