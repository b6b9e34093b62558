//! The side-by-side harness of the `detcdctl_vs_etcdctl*` tests: the same etcdctl arguments
//! run with the real etcdctl and with detcdctl, each against its own fresh single-member detcd,
//! and outputs compared after replacing what legitimately differs (ids, ports, leases).

use super::Cluster;
use std::io::Write;
use std::process::{Child, Command, Output, Stdio};

#[derive(Clone, Copy, Debug)]
pub enum Tool {
    Etcdctl,
    Detcdctl,
}

impl Tool {
    pub fn command(self, ep: &str, args: &[String]) -> Command {
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
pub struct Side {
    pub tool: Tool,
    pub cluster: Cluster,
    pub subs: Vec<(String, String)>,
    pub lease: String,
}

#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

impl Side {
    pub fn new(tool: Tool) -> Side {
        let cluster = Cluster::start(1);
        let json = super::ok(&cluster.endpoint(0), &["member", "list", "-w", "json"]);
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

    pub fn ep(&self) -> String {
        self.cluster.endpoint(0)
    }

    pub fn args(&self, args: &[&str]) -> Vec<String> {
        args.iter()
            .map(|a| a.replace("{lease}", &self.lease))
            .collect()
    }

    pub fn normalize(&self, s: &str) -> String {
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

    pub fn outcome(&self, out: Output) -> Outcome {
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
    pub fn run(&mut self, args: &[&str], stdin: Option<&str>) -> Outcome {
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

    pub fn remember_lease(&mut self, hex: &str) {
        self.lease = hex.to_string();
        let n = i64::from_str_radix(hex, 16).expect("lease hex");
        let tag = format!("<LEASE{}>", self.subs.len());
        self.subs.push((hex.to_string(), tag.clone()));
        self.subs.push((n.to_string(), tag.clone()));
        self.subs.push((format!("{n:x}"), tag));
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.tool
            .command(&self.ep(), &self.args(args))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn tool")
    }
}

/// Collapses runs of spaces and of dashes (table padding).
pub fn squeeze(s: &str) -> String {
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
pub fn granted_id(text: &str) -> String {
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

pub fn both() -> (Side, Side) {
    (Side::new(Tool::Etcdctl), Side::new(Tool::Detcdctl))
}

pub fn same(e: &mut Side, d: &mut Side, args: &[&str], stdin: Option<&str>) {
    let want = e.run(args, stdin);
    let got = d.run(args, stdin);
    assert_eq!(
        got, want,
        "detcdctl differs from etcdctl for {args:?} (stdin {stdin:?})"
    );
}

/// Runs a step list; `<stdin>|args` feeds stdin.
pub fn script(e: &mut Side, d: &mut Side, steps: &[(&[&str], Option<&str>)]) {
    for (args, stdin) in steps {
        same(e, d, args, *stdin);
    }
}

/// Runs `tool` with explicit arguments and environment (no implicit `--endpoints`).
pub fn raw(tool: Tool, args: &[&str], env: &[(&str, &str)]) -> Outcome {
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
pub type Env<'a> = Vec<(&'a str, &'a str)>;
