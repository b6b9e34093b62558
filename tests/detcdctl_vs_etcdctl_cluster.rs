//! detcdctl against the real etcdctl 3.4, for the global flags, endpoint forms and cluster
//! commands (member, move-leader, `--cluster`): see `detcdctl_vs_etcdctl.rs` for the method.

#![cfg(not(madsim))]

mod common;
use common::side_by_side::*;
use common::Cluster;

#[test]
fn global_flags_and_endpoints_match_etcdctl() {
    let c = Cluster::start(1);
    let ep = c.endpoint(0);
    common::ok(&ep, &["put", "k", "v"]);
    let dead = format!("127.0.0.1:{}", common::free_port());
    let dead_first = format!("{dead},{ep}");
    let url = format!("http://{ep}");
    let cases: Vec<(Vec<&str>, Env)> = vec![
        (vec!["--endpoints", &dead_first, "get", "k"], vec![]),
        (vec!["--endpoints", &url, "get", "k", "-w", "json"], vec![]),
        (
            vec!["--endpoints", &dead, "--command-timeout", "1s", "get", "k"],
            vec![],
        ),
        (
            vec![
                "--endpoints",
                &dead,
                "--command-timeout=1s",
                "put",
                "k",
                "x",
            ],
            vec![],
        ),
        (vec!["get", "k"], vec![("ETCDCTL_ENDPOINTS", &ep)]),
        (
            vec!["get", "k"],
            vec![("ETCDCTL_ENDPOINTS", &ep), ("ETCDCTL_WRITE_OUT", "fields")],
        ),
        (
            vec!["get", "k"],
            vec![("ETCDCTL_ENDPOINTS", &ep), ("ETCDCTL_HEX", "true")],
        ),
        (
            vec![
                "--endpoints",
                &ep,
                "--hex=false",
                "get",
                "k",
                "--prefix=true",
                "-w=json",
            ],
            vec![],
        ),
        (
            vec!["--endpoints", &ep, "--command-timeout", "x", "get", "k"],
            vec![],
        ),
        (vec!["--endpoints", &ep, "get", "k", "--limit", "x"], vec![]),
        (
            vec!["--endpoints", &ep, "endpoint", "status", "-w", "table"],
            vec![],
        ),
        (
            vec!["--endpoints", &ep, "endpoint", "status", "-w", "json"],
            vec![],
        ),
        (vec!["--endpoints", &ep, "endpoint", "hashkv"], vec![]),
        (
            vec!["--endpoints", &ep, "endpoint", "hashkv", "-w", "json"],
            vec![],
        ),
        (
            vec!["--endpoints", &ep, "endpoint", "hashkv", "-w", "fields"],
            vec![],
        ),
        (
            vec![
                "--endpoints",
                &ep,
                "endpoint",
                "hashkv",
                "--rev",
                "2",
                "-w",
                "table",
            ],
            vec![],
        ),
        (
            vec!["--endpoints", &ep, "endpoint", "hashkv", "--rev", "99999"],
            vec![],
        ),
        (
            vec![
                "--endpoints",
                &dead_first,
                "--command-timeout",
                "1s",
                "endpoint",
                "status",
            ],
            vec![],
        ),
        (
            vec!["--endpoints", &ep, "endpoint", "status", "--cluster"],
            vec![],
        ),
        (
            vec![
                "--endpoints",
                &url,
                "endpoint",
                "hashkv",
                "--cluster",
                "-w",
                "json",
            ],
            vec![],
        ),
        (vec!["--endpoints", &ep, "member", "remove"], vec![]),
        (vec!["--endpoints", &ep, "member", "remove", "zz"], vec![]),
        (vec!["--endpoints", &ep, "member", "remove", "1234"], vec![]),
        (vec!["--endpoints", &ep, "member", "add"], vec![]),
        (vec!["--endpoints", &ep, "member", "add", "x"], vec![]),
        (
            vec!["--endpoints", &ep, "member", "add", "x", "--peer-urls=bad"],
            vec![],
        ),
        (
            vec![
                "--endpoints",
                &ep,
                "member",
                "update",
                "1234",
                "--peer-urls=http://a:1",
            ],
            vec![],
        ),
        (vec!["--endpoints", &ep, "member", "update", "1234"], vec![]),
        (
            vec!["--endpoints", &ep, "member", "promote", "1234"],
            vec![],
        ),
        (vec!["--endpoints", &ep, "move-leader"], vec![]),
        (vec!["--endpoints", &ep, "move-leader", "zz"], vec![]),
        (vec!["--endpoints", &ep, "move-leader", "1234"], vec![]),
    ];
    for (args, env) in cases {
        let mut want = raw(Tool::Etcdctl, &args, &env);
        let mut got = raw(Tool::Detcdctl, &args, &env);
        if want.stderr.starts_with("Error: invalid argument") {
            // cobra also prints the command's usage on stdout; detcdctl does not.
            want.stdout.clear();
            got.stdout.clear();
        }
        assert_eq!(
            got, want,
            "detcdctl differs from etcdctl for {args:?} with {env:?}"
        );
    }
    // endpoint health: same shape; the timing differs.
    let want = raw(
        Tool::Etcdctl,
        &["--endpoints", &ep, "endpoint", "health"],
        &[],
    );
    let got = raw(
        Tool::Detcdctl,
        &["--endpoints", &ep, "endpoint", "health"],
        &[],
    );
    assert_eq!(got.code, want.code);
    let prefix = format!("{ep} is healthy: successfully committed proposal: took = ");
    assert!(got.stderr.starts_with(&prefix), "{got:?}");
    let health = [
        "--endpoints",
        &dead_first,
        "--command-timeout",
        "1s",
        "endpoint",
        "health",
    ];
    let want = raw(Tool::Etcdctl, &health, &[]);
    let got = raw(Tool::Detcdctl, &health, &[]);
    assert_eq!(
        (got.code, got.stderr.lines().count()),
        (want.code, want.stderr.lines().count())
    );
    assert!(
        got.stderr.contains(&format!(
            "{dead} is unhealthy: failed to commit proposal: context deadline exceeded\n"
        )),
        "{got:?}"
    );
    assert!(
        got.stderr.ends_with("Error: unhealthy cluster\n"),
        "{got:?}"
    );
}
