//! detcdctl against the real etcdctl 3.4: the same scripts run with each tool on its own fresh
//! single-member detcd (so revisions line up), and every step must give identical stdout,
//! stderr (minus etcdctl's `{"level":"warn"...}` retry lines) and exit status. Cluster/member
//! IDs, ports and lease IDs — the only things that differ between the two servers — are
//! replaced by placeholders before comparing. Covers put/get/del/txn/compaction in every
//! output format, error cases (compacted and future revisions, empty key, bad and unknown
//! leases, bad arguments), lease commands including a keep-alive ended by a revoke, watch,
//! lock, elect, member list, endpoint status and endpoint hashkv (also `--cluster`), and the
//! errors of member add/remove/update/promote and move-leader.

#![cfg(not(madsim))]

mod common;
use common::Cluster;
use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
enum Tool {
    Etcdctl,
    Detcdctl,
}

impl Tool {
    fn command(self, ep: &str, args: &[String]) -> Command {
        let bin = match self {
            Tool::Etcdctl => std::env::var("ETCDCTL").unwrap_or_else(|_| "etcdctl".into()),
            Tool::Detcdctl => env!("CARGO_BIN_EXE_detcdctl").to_string(),
        };
        let mut cmd = Command::new(bin);
        cmd.env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(ep)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// One server under one tool, with the substitutions that make its output comparable.
struct Side {
    tool: Tool,
    cluster: Cluster,
    subs: Vec<(String, String)>,
    lease: String,
}

#[derive(Debug, PartialEq)]
struct Outcome {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

impl Side {
    fn new(tool: Tool) -> Side {
        let cluster = Cluster::start(1);
        let json = common::ok(&cluster.endpoint(0), &["member", "list", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&json).expect("member list json");
        let cid = v["header"]["cluster_id"].as_u64().expect("cluster id");
        let mid = v["members"][0]["ID"].as_u64().expect("member id");
        let peer = v["members"][0]["peerURLs"][0]
            .as_str()
            .unwrap_or("")
            .to_string();
        let subs = vec![
            (cid.to_string(), "<CLUSTER>".into()),
            (mid.to_string(), "<MEMBER>".into()),
            (format!("{mid:x}"), "<MEMBER>".into()),
            (cluster.endpoint(0), "<ENDPOINT>".into()),
            (peer, "<PEER>".into()),
        ];
        Side {
            tool,
            cluster,
            subs,
            lease: String::new(),
        }
    }

    fn ep(&self) -> String {
        self.cluster.endpoint(0)
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        args.iter()
            .map(|a| a.replace("{lease}", &self.lease))
            .collect()
    }

    fn normalize(&self, s: &str) -> String {
        let mut s = s
            .lines()
            .filter(|l| !l.starts_with("{\"level\":\"warn\""))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        for (from, to) in &self.subs {
            if !from.is_empty() {
                s = s.replace(from, to);
            }
        }
        s
    }

    fn outcome(&self, out: Output) -> Outcome {
        let mut stdout = self.normalize(&String::from_utf8_lossy(&out.stdout));
        if stdout.starts_with("+-") {
            // IDs of different lengths on the two servers change column widths.
            stdout = squeeze(&stdout);
        }
        Outcome {
            stdout,
            stderr: self.normalize(&String::from_utf8_lossy(&out.stderr)),
            code: out.status.code(),
        }
    }

    /// Runs one command to completion.
    fn run(&mut self, args: &[&str], stdin: Option<&str>) -> Outcome {
        let mut child = self
            .tool
            .command(&self.ep(), &self.args(args))
            .spawn()
            .expect("spawn tool");
        if let Some(mut pipe) = child.stdin.take() {
            if let Some(text) = stdin {
                pipe.write_all(text.as_bytes()).expect("stdin");
            }
        }
        let out = child.wait_with_output().expect("tool output");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if args.starts_with(&["lease", "grant"]) && out.status.success() {
            self.remember_lease(&granted_id(&text));
        }
        self.outcome(out)
    }

    fn remember_lease(&mut self, hex: &str) {
        self.lease = hex.to_string();
        let n = i64::from_str_radix(hex, 16).expect("lease hex");
        let tag = format!("<LEASE{}>", self.subs.len());
        self.subs.push((hex.to_string(), tag.clone()));
        self.subs.push((n.to_string(), tag.clone()));
        self.subs.push((format!("{n:x}"), tag));
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.tool
            .command(&self.ep(), &self.args(args))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn tool")
    }
}

/// Collapses runs of spaces and of dashes (table padding).
fn squeeze(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if (c == ' ' || c == '-') && out.ends_with(c) {
            continue;
        }
        out.push(c);
    }
    out
}

/// The lease ID (hex) a successful `lease grant` printed, in any output format.
fn granted_id(text: &str) -> String {
    if let Some(rest) = text.strip_prefix("lease ") {
        return rest.split(' ').next().unwrap_or("").to_string();
    }
    let after = text
        .split_once("\"ID\":")
        .or_else(|| text.split_once("\"ID\" : "))
        .map(|(_, r)| r)
        .unwrap_or("");
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    format!("{:016x}", digits.parse::<i64>().expect("lease id"))
}

fn both() -> (Side, Side) {
    (Side::new(Tool::Etcdctl), Side::new(Tool::Detcdctl))
}

fn same(e: &mut Side, d: &mut Side, args: &[&str], stdin: Option<&str>) {
    let want = e.run(args, stdin);
    let got = d.run(args, stdin);
    assert_eq!(
        got, want,
        "detcdctl differs from etcdctl for {args:?} (stdin {stdin:?})"
    );
}

/// Runs a step list; `<stdin>|args` feeds stdin.
fn script(e: &mut Side, d: &mut Side, steps: &[(&[&str], Option<&str>)]) {
    for (args, stdin) in steps {
        same(e, d, args, *stdin);
    }
}

#[test]
fn kv_commands_match_etcdctl() {
    let (mut e, mut d) = both();
    let steps: &[(&[&str], Option<&str>)] = &[
        (&["put", "foo", "bar"], None),
        (&["put", "foo", "bar2", "--prev-kv"], None),
        (&["put", "foo", "bar3", "--prev-kv", "-w", "json"], None),
        (
            &["put", "foo", "--prev-kv", "-w", "fields"],
            Some("from stdin\n"),
        ),
        (&["put", "a", "1"], None),
        (&["put", "b", "2", "--hex"], None),
        (&["put", "c", "quote\"d\ttab é"], None),
        (&["get", "foo"], None),
        (&["get", "foo", "-w", "json"], None),
        (&["get", "foo", "-w", "fields"], None),
        (&["get", "foo", "--hex"], None),
        (&["get", "a", "c"], None),
        (&["get", "", "--prefix"], None),
        (&["get", "", "--from-key", "-w", "json"], None),
        (&["get", "c", "-w", "fields"], None),
        (
            &[
                "get",
                "",
                "--prefix",
                "--sort-by=create",
                "--order=descend",
                "--limit",
                "2",
            ],
            None,
        ),
        (
            &[
                "get",
                "",
                "--prefix",
                "--sort-by=VALUE",
                "-w",
                "fields",
                "--limit=2",
            ],
            None,
        ),
        (&["get", "a", "--keys-only"], None),
        (&["get", "a", "--print-value-only"], None),
        (
            &["get", "a", "--consistency=s", "-w", "json", "--keys-only"],
            None,
        ),
        (&["get", "foo", "--rev", "2"], None),
        (&["get", "missing"], None),
        (&["del", "a", "--prev-kv"], None),
        (&["del", "missing", "-w", "json"], None),
        (&["del", "b", "--prev-kv", "-w", "fields"], None),
        (&["del", "", "--from-key", "-w", "json"], None),
        (&["put", "k1", "v1"], None),
        (&["put", "k2", "v2"], None),
        (&["compaction", "3"], None),
        (&["compaction", "5", "--physical"], None),
        (&["member", "list"], None),
        (&["member", "list", "-w", "json"], None),
        (&["member", "list", "-w", "fields"], None),
        (&["member", "list", "-w", "table"], None),
    ];
    script(&mut e, &mut d, steps);
}

#[test]
fn errors_match_etcdctl() {
    let (mut e, mut d) = both();
    let steps: &[(&[&str], Option<&str>)] = &[
        (&["put", "x", "1"], None),
        (&["put", "x", "2"], None),
        (&["put", "x", "3"], None),
        (&["compaction", "3"], None),
        (&["compaction", "3"], None),
        (&["compaction", "1000"], None),
        (&["compaction", "abc"], None),
        (&["compaction"], None),
        (&["get", "x", "--rev", "2"], None),
        (&["get", "x", "--rev", "1000"], None),
        (&["put", "", "v"], None),
        (&["put", "k", "v", "--lease", "1234"], None),
        (&["put", "k", "v", "--lease", "zz"], None),
        (&["put", "k", "--ignore-value", "v"], None),
        (&["put", "nokey", "--ignore-value"], None),
        (&["put", "nokey", "v", "--ignore-lease"], None),
        (&["put"], None),
        (&["put", "k"], None),
        (&["get"], None),
        (&["get", "a", "b", "--prefix"], None),
        (&["get", "a", "--prefix", "--from-key"], None),
        (&["get", "a", "--consistency=x"], None),
        (&["get", "a", "--order=up"], None),
        (&["get", "a", "--sort-by=size"], None),
        (&["get", "x", "--print-value-only", "-w", "json"], None),
        (&["get", "x", "-w", "table"], None),
        (&["get", "x", "-w", "yaml"], None),
        (&["del"], None),
        (&["del", "a", "b", "c"], None),
        (&["del", "a", "b", "--from-key"], None),
        (&["watch"], None),
        (&["watch", "a", "b", "--prefix"], None),
        (&["watch", "x", "--rev", "1"], None),
        (&["lock"], None),
        (&["elect"], None),
        (&["elect", "name"], None),
        (&["nosuchcommand"], None),
    ];
    script(&mut e, &mut d, steps);
}

#[test]
fn txn_matches_etcdctl() {
    let (mut e, mut d) = both();
    let txn = |s: &'static str| -> (&'static [&'static str], Option<&'static str>) {
        (&["txn"], Some(s))
    };
    let steps: Vec<(&[&str], Option<&str>)> = vec![
        (&["put", "k", "v"], None),
        txn("mod(\"k\") > \"0\"\n\nput t1 v1\nget k\ndel nothing\n\nput t2 v2\n\n"),
        (
            &["txn", "-w", "json"],
            Some("value(\"k\") = \"v\"\n\nget t --prefix\n\n\n"),
        ),
        (
            &["txn", "-w", "fields"],
            Some("value(\"k\") = \"no\"\n\n\nput t2 x --prev-kv\nget t --prefix\n\n"),
        ),
        (
            &["txn", "-i"],
            Some("ver(\"k\") = \"1\"\nc(\"k\") < \"100\"\n\ndel t --prefix --prev-kv\n\n\n"),
        ),
        txn("\nput \"a b\" \"c\\td\"\nget \"a b\"\n\n\n"),
        txn("\n\n\n"),
        txn("value(\"k\") = \"v\"\n\nput x y\n\nput z w"),
        txn("bad\n\n"),
        txn("value(\"k\") = v\n\n"),
        txn("value(\"k\")= \"v\"\n\n"),
        txn("value (\"k\") = \"v\"\n\n"),
        txn("ver(\"k\") = \"x\"\n\n"),
        txn(""),
        txn("\nfoo bar\n\n\n"),
        txn("\nput\n\n\n"),
        txn("\nput \"\" x\n\n\n"),
        (&["txn", "extra"], None),
        (&["txn", "-w", "table"], Some("\nput q r\n\n\n")),
    ];
    script(&mut e, &mut d, &steps);
}

#[test]
fn lease_commands_match_etcdctl() {
    let (mut e, mut d) = both();
    let steps: &[(&[&str], Option<&str>)] = &[
        (&["lease", "grant", "300"], None),
        (&["put", "lk1", "v", "--lease", "{lease}"], None),
        (&["put", "lk2", "v", "--lease={lease}"], None),
        (&["get", "lk1", "-w", "json"], None),
        (&["lease", "timetolive", "{lease}"], None),
        (&["lease", "timetolive", "{lease}", "--keys"], None),
        (
            &["lease", "timetolive", "{lease}", "--keys", "-w", "json"],
            None,
        ),
        (
            &["lease", "timetolive", "{lease}", "--keys", "-w", "fields"],
            None,
        ),
        (&["lease", "keep-alive", "--once", "{lease}"], None),
        (
            &["lease", "keep-alive", "--once", "{lease}", "-w", "json"],
            None,
        ),
        (&["lease", "list"], None),
        (&["lease", "list", "-w", "fields"], None),
        (&["lease", "revoke", "{lease}"], None),
        (&["get", "lk", "--prefix"], None),
        (&["lease", "revoke", "{lease}"], None),
        (&["lease", "timetolive", "{lease}"], None),
        (&["lease", "keep-alive", "--once", "{lease}"], None),
        (&["lease", "grant", "100", "-w", "json"], None),
        (&["lease", "revoke", "{lease}", "-w", "json"], None),
        (&["lease", "grant", "100", "-w", "fields"], None),
        (&["lease", "revoke", "{lease}", "-w", "fields"], None),
        (&["lease", "list", "-w", "json"], None),
        (&["lease", "grant"], None),
        (&["lease", "grant", "x"], None),
        (&["lease", "grant", "99999999999"], None),
        (&["lease", "revoke"], None),
        (&["lease", "revoke", "zz"], None),
        (&["lease", "timetolive"], None),
        (&["lease", "keep-alive"], None),
    ];
    script(&mut e, &mut d, steps);

    // keep-alive until the lease is revoked under it (TTL 6: renewals every 2s).
    let mut outs = Vec::new();
    for side in [&mut e, &mut d] {
        side.run(&["lease", "grant", "6"], None);
        let child = side.spawn(&["lease", "keep-alive", "{lease}"]);
        std::thread::sleep(Duration::from_millis(800));
        common::ok(&side.ep(), &["lease", "revoke", &side.lease.clone()]);
        let out = wait_timeout(child, Duration::from_secs(10));
        outs.push(side.outcome(out));
    }
    assert_eq!(outs[1], outs[0], "keep-alive ended by revoke");
}

fn wait_timeout(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status();
}

#[test]
fn watch_matches_etcdctl() {
    let (mut e, mut d) = both();
    let mut outs = Vec::new();
    for side in [&mut e, &mut d] {
        let watchers = [
            side.spawn(&["watch", "w", "--prefix", "--prev-kv"]),
            side.spawn(&["watch", "w", "-w", "json"]),
            side.spawn(&["watch", "w", "wz", "-w", "fields"]),
        ];
        std::thread::sleep(Duration::from_millis(1000));
        for args in [
            &["put", "w", "v1"][..],
            &["put", "w", "v2"],
            &["put", "wa", "x"],
            &["del", "w"],
            &["put", "other", "o"],
        ] {
            common::ok(&side.ep(), args);
        }
        std::thread::sleep(Duration::from_millis(800));
        for w in watchers {
            signal(&w, "-TERM");
            outs.push(side.outcome(wait_timeout(w, Duration::from_secs(5))));
        }
        // a watch replaying history from a revision
        let replay = side.spawn(&["watch", "w", "--rev", "2"]);
        std::thread::sleep(Duration::from_millis(800));
        signal(&replay, "-TERM");
        outs.push(side.outcome(wait_timeout(replay, Duration::from_secs(5))));
    }
    let (want, got) = outs.split_at(outs.len() / 2);
    assert_eq!(got, want);
    assert!(want[0].stdout.contains("PUT\nw\nv1\n"), "{:?}", want[0]);
}

#[test]
fn lock_and_elect_match_etcdctl() {
    let (mut e, mut d) = both();
    let mut outs = Vec::new();
    for side in [&mut e, &mut d] {
        let run = side.run(
            &[
                "lock",
                "L",
                "--",
                "sh",
                "-c",
                "echo key=${ETCD_LOCK_KEY%/*} rev=$ETCD_LOCK_REV; exit 3",
            ],
            None,
        );
        outs.push(run);
        outs.push(side.run(&["lock", "L", "--", "/nonexistent/cmd"], None));
        let holder = side.spawn(&["lock", "L"]);
        std::thread::sleep(Duration::from_millis(1000));
        signal(&holder, "-INT");
        let mut held = side.outcome(wait_timeout(holder, Duration::from_secs(5)));
        held.stdout = held.stdout.split('/').next().unwrap_or("").to_string();
        outs.push(held);
        let leader = side.spawn(&["elect", "E", "proposal"]);
        std::thread::sleep(Duration::from_millis(1000));
        let observer = side.spawn(&["elect", "-l", "E"]);
        std::thread::sleep(Duration::from_millis(1000));
        signal(&observer, "-INT");
        signal(&leader, "-INT");
        for child in [leader, observer] {
            let mut o = side.outcome(wait_timeout(child, Duration::from_secs(5)));
            o.stdout = o
                .stdout
                .lines()
                .map(|l| l.split('/').next().unwrap_or("").to_string() + "\n")
                .collect();
            outs.push(o);
        }
        outs.push(side.run(&["get", "", "--prefix", "--keys-only"], None));
    }
    let (want, got) = outs.split_at(outs.len() / 2);
    assert_eq!(got, want);
}

/// Runs `tool` with explicit arguments and environment (no implicit `--endpoints`).
fn raw(tool: Tool, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let bin = match tool {
        Tool::Etcdctl => std::env::var("ETCDCTL").unwrap_or_else(|_| "etcdctl".into()),
        Tool::Detcdctl => env!("CARGO_BIN_EXE_detcdctl").to_string(),
    };
    let out = Command::new(bin)
        .env("ETCDCTL_API", "3")
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tool");
    let clean = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| !l.starts_with("{\"level\":\"warn\""))
            // capnslog's timestamp ("2006-01-02 15:04:05.000000 ") differs run to run
            .map(|l| match l.find(" | pkg/flags: ") {
                Some(i) if i > 2 => format!("{}\n", &l[i - 2..]),
                _ => format!("{l}\n"),
            })
            .collect::<String>()
    };
    Outcome {
        stdout: clean(&out.stdout),
        stderr: clean(&out.stderr),
        code: out.status.code(),
    }
}

/// Extra environment variables for one case.
type Env<'a> = Vec<(&'a str, &'a str)>;

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
    let want = raw(
        Tool::Etcdctl,
        &[
            "--endpoints",
            &dead_first,
            "--command-timeout",
            "1s",
            "endpoint",
            "health",
        ],
        &[],
    );
    let got = raw(
        Tool::Detcdctl,
        &[
            "--endpoints",
            &dead_first,
            "--command-timeout",
            "1s",
            "endpoint",
            "health",
        ],
        &[],
    );
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
