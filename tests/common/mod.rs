//! Test harness shared by the integration tests: real `detcd` processes on real sockets, driven
//! by the real `etcdctl` 3.4 (Debian's `etcd-client`; `ETCDCTL` overrides the binary).
//!
//! Every cluster gets fresh ports and a temp data dir, and kills its processes on drop.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub mod side_by_side;

/// A free localhost port, handed out once per test process from below the OS's ephemeral range
/// (32768+), so that a killed member's port cannot be taken meanwhile by an outgoing connection
/// or by another test before the member restarts on it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 240) as u16 * 50,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_768, "ran out of test ports");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The `--initial-cluster-token` members start with.
pub const TOKEN: &str = "detcd-test";

/// One member's fixed identity.
pub struct MemberSpec {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
}

/// A local cluster of real detcd processes.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<MemberSpec>,
    procs: Vec<Option<Child>>,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Cluster {
    /// Starts `n` members and waits until the cluster answers writes.
    pub fn start(n: usize) -> Cluster {
        Self::start_with(n, &[])
    }

    /// Like [`Cluster::start`] with extra server flags for every member.
    pub fn start_with(n: usize, extra: &[&str]) -> Cluster {
        Self::start_with_env(n, extra, &[])
    }

    /// Like [`Cluster::start_with`], with extra environment variables for every member.
    pub fn start_with_env(n: usize, extra: &[&str], env: &[(&str, &str)]) -> Cluster {
        let mut c = Self::new(n, extra, env);
        for i in 0..n {
            c.start_member(i);
        }
        c.wait_writable();
        c.wait_all_published();
        c
    }

    /// `n` members with their ports and data dirs, none of them started yet.
    pub fn new(n: usize, extra: &[&str], env: &[(&str, &str)]) -> Cluster {
        let members = (0..n)
            .map(|i| MemberSpec {
                name: format!("m{}", i + 1),
                client_port: free_port(),
                peer_port: free_port(),
            })
            .collect();
        Cluster {
            dir: tempfile::tempdir().expect("tempdir"),
            members,
            procs: (0..n).map(|_| None).collect(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Waits until every member has published its client URLs (`member list` shows them).
    pub fn wait_all_published(&self) {
        let eps = self.live_endpoints();
        wait_until(Duration::from_secs(30), || {
            let out = etcdctl(&eps, &["member", "list"]);
            let text = stdout(&out);
            out.status.success()
                && (0..self.members.len())
                    .all(|i| text.contains(&format!("http://{}", self.endpoint(i))))
        });
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.etcd", self.members[i].name))
    }

    /// Starts (or restarts) member `i` from its data dir.
    pub fn start_member(&mut self, i: usize) {
        self.start_member_with(i, TOKEN, &[]);
    }

    /// Starts member `i` with `--initial-cluster-token token` and extra flags of its own.
    pub fn start_member_with(&mut self, i: usize, token: &str, extra: &[&str]) {
        let m = &self.members[i];
        let mut cmd = member_command(
            env!("CARGO_BIN_EXE_detcd"),
            &m.name,
            &self.data_dir(i),
            (m.client_port, m.peer_port),
            &self.initial_cluster(),
        );
        cmd.args(["--initial-cluster-state", "new"]).args(extra);
        self.spawn(i, cmd, token);
    }

    /// A new member spec (fresh ports, not started, not in the initial cluster); its index.
    pub fn add_spec(&mut self, name: &str) -> usize {
        self.members.push(MemberSpec {
            name: name.to_string(),
            client_port: free_port(),
            peer_port: free_port(),
        });
        self.procs.push(None);
        self.members.len() - 1
    }

    /// Peer URL of member `i`.
    pub fn peer_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].peer_port)
    }

    /// Starts member `i` the way etcd's docs say after `member add`: with the `ETCD_*` lines
    /// that command printed as its environment, and its own listen and client URLs as flags.
    pub fn start_joining(&mut self, i: usize, member_add_output: &str) {
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_detcd"));
        cmd.arg("--data-dir")
            .arg(self.data_dir(i))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &self.peer_url(i)]);
        for line in member_add_output.lines() {
            if let Some((k, v)) = line.split_once('=') {
                if k.starts_with("ETCD_") {
                    cmd.env(k, v.trim_matches('"'));
                }
            }
        }
        self.spawn(i, cmd, TOKEN);
    }

    fn spawn(&mut self, i: usize, mut cmd: Command, token: &str) {
        assert!(self.procs[i].is_none(), "member {i} already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(
                self.dir
                    .path()
                    .join(format!("{}.log", self.members[i].name)),
            )
            .expect("log file");
        let child = cmd
            .args(["--initial-cluster-token", token])
            .args(["--logger", "capnslog"])
            .args(&self.extra_args)
            // Plain text in the log files (tracing colours its output unless NO_COLOR is set).
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn detcd");
        self.procs[i] = Some(child);
    }

    /// Kills member `i` with SIGKILL (no chance to flush anything).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.procs[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops member `i` with SIGTERM and waits for it to exit; returns its exit status.
    pub fn terminate(&mut self, i: usize) -> std::process::ExitStatus {
        let mut child = self.procs[i].take().expect("member running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        child.wait().expect("wait for detcd")
    }

    /// Waits up to `limit` for member `i` to exit by itself; its status if it did.
    pub fn wait_exit(&mut self, i: usize, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let child = self.procs[i].as_mut().expect("member started");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.procs[i] = None;
                return Some(status);
            }
            sleep(Duration::from_millis(50));
        }
        None
    }

    /// Everything member `i` has logged so far.
    pub fn log(&self, i: usize) -> String {
        let path = self
            .dir
            .path()
            .join(format!("{}.log", self.members[i].name));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Client endpoint of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    /// All client endpoints, comma separated.
    pub fn endpoints(&self) -> String {
        (0..self.members.len())
            .map(|i| self.endpoint(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Endpoints of running members only.
    pub fn live_endpoints(&self) -> String {
        (0..self.members.len())
            .filter(|i| self.procs[*i].is_some())
            .map(|i| self.endpoint(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits (up to 30 s) until a write through the live members succeeds.
    pub fn wait_writable(&self) {
        let eps = self.live_endpoints();
        wait_until(Duration::from_secs(30), || {
            etcdctl(&eps, &["put", "__probe", "1"]).status.success()
        });
    }

    /// The id (hex) of the member `endpoint status` reports as leader.
    pub fn leader_index(&self) -> usize {
        let mut found = None;
        wait_until(Duration::from_secs(20), || {
            for i in 0..self.members.len() {
                if self.procs[i].is_none() {
                    continue;
                }
                let status = status_fields(&self.endpoint(i));
                let field = |name: &str| status.get(name).cloned();
                if let (Some(id), Some(leader)) = (field("MemberID"), field("Leader")) {
                    if id == leader && id != "0" {
                        found = Some(i);
                        return true;
                    }
                }
            }
            false
        });
        found.expect("a leader")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            for m in &self.members {
                let log = self.dir.path().join(format!("{}.log", m.name));
                if let Ok(text) = std::fs::read_to_string(&log) {
                    // Backtrace frames would push the panic message out of the tail.
                    let is_frame = |l: &&str| {
                        let t = l.trim_start();
                        t.starts_with("at ")
                            || t.split(':').next().is_some_and(|n| {
                                !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
                            })
                    };
                    let tail: Vec<&str> = text
                        .lines()
                        .rev()
                        .filter(|l| !is_frame(l))
                        .take(30)
                        .collect();
                    eprintln!("--- last lines of {} ---", m.name);
                    for l in tail.into_iter().rev() {
                        eprintln!("{l}");
                    }
                }
            }
        }
    }
}

/// `etcdctl endpoint status -w fields` of one endpoint, by field name (empty if it fails).
pub fn status_fields(endpoint: &str) -> std::collections::BTreeMap<String, String> {
    let out = etcdctl(endpoint, &["endpoint", "status", "-w", "fields"]);
    stdout(&out)
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((
                name.trim().trim_matches('"').to_string(),
                value.trim().to_string(),
            ))
        })
        .collect()
}

/// The etcd binary to compare with (`ETCD_BIN` overrides `etcd`).
pub fn etcd_binary() -> String {
    std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".to_string())
}

/// A single-member server (detcd, or etcd itself) on fresh ports, killed on drop.
pub struct Single {
    child: Child,
    /// Its client endpoint.
    pub endpoint: String,
    /// Its peer port.
    pub peer_port: u16,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Single {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Single {
    /// Stops the server with SIGTERM (a clean stop: etcd and detcd commit their backends) and
    /// waits for it to exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Starts `binary` as member `default` with a fresh data dir, and waits until it is healthy.
    pub fn start(binary: &str) -> Single {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Single::start_in(binary, &dir.path().join("data"), free_port());
        s._dir = Some(dir);
        s
    }

    /// Starts `binary` as member `default` on `data_dir` (kept by the caller), with its peer URL
    /// on `peer_port`.
    pub fn start_in(binary: &str, data_dir: &std::path::Path, peer_port: u16) -> Single {
        let client_port = free_port();
        let child = member_command(
            binary,
            "default",
            data_dir,
            (client_port, peer_port),
            &format!("default=http://127.0.0.1:{peer_port}"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary} ({e}); scripts/setup.sh installs etcd"));
        let endpoint = format!("127.0.0.1:{client_port}");
        wait_until(Duration::from_secs(30), || {
            etcdctl(&endpoint, &["endpoint", "health"]).status.success()
        });
        Single {
            child,
            endpoint,
            peer_port,
            _dir: None,
        }
    }
}

/// An etcd-style server command (detcd or etcd itself) for one member on localhost.
pub fn member_command(
    binary: &str,
    name: &str,
    data_dir: &std::path::Path,
    (client_port, peer_port): (u16, u16),
    initial_cluster: &str,
) -> Command {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut cmd = Command::new(binary);
    cmd.args(["--name", name])
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", initial_cluster]);
    cmd
}

/// Runs `check` until it returns true or `limit` passes (then panics).
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        sleep(Duration::from_millis(100));
    }
}

fn etcdctl_bin() -> String {
    std::env::var("ETCDCTL").unwrap_or_else(|_| "etcdctl".to_string())
}

/// Runs the real etcdctl against `endpoints`.
pub fn etcdctl(endpoints: &str, args: &[&str]) -> Output {
    etcdctl_stdin(endpoints, args, None)
}

/// Runs the real etcdctl with `input` on stdin.
pub fn etcdctl_stdin(endpoints: &str, args: &[&str], input: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run etcdctl ({e}); install it with scripts/setup.sh"));
    if let Some(mut stdin) = child.stdin.take() {
        if let Some(text) = input {
            stdin.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("etcdctl output")
}

/// Runs this tree's detcdctl against `endpoints`.
pub fn detcdctl(endpoints: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detcdctl"))
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .output()
        .expect("run detcdctl")
}

/// Starts the real etcdctl in the background (watch, lock, elect, keep-alive run until stopped).
pub fn spawn_etcdctl(endpoints: &str, args: &[&str]) -> Child {
    spawn_etcdctl_with(endpoints, args, Stdio::piped())
}

/// Like [`spawn_etcdctl`], with stdout going to `stdout` (e.g. a file to poll while it runs).
pub fn spawn_etcdctl_with(endpoints: &str, args: &[&str], stdout: Stdio) -> Child {
    Command::new(etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run etcdctl ({e}); install it with scripts/setup.sh"))
}

/// The cluster's current revision, from a response header.
pub fn revision(endpoints: &str) -> i64 {
    let out = ok(endpoints, &["get", "__probe", "-w", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("etcdctl json");
    json["header"]["revision"]
        .as_i64()
        .expect("header revision")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs etcdctl and asserts success, returning stdout.
pub fn ok(endpoints: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoints, args);
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs etcdctl, asserts failure, and returns stderr.
pub fn fails(endpoints: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoints, args);
    assert!(
        !out.status.success(),
        "etcdctl {args:?} unexpectedly succeeded: {}",
        stdout(&out)
    );
    stderr(&out)
}

/// Output with ids, terms and client-side retry noise blanked.
pub fn normalize_ids(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("{\"level\":\"warn\""))
        .map(|l| {
            let mut out = l.to_string();
            for pat in [
                "\"cluster_id\":",
                "\"member_id\":",
                "\"raft_term\":",
                "\"ClusterID\" : ",
                "\"MemberID\" : ",
                "\"RaftTerm\" : ",
            ] {
                if let Some(start) = out.find(pat) {
                    let from = start + pat.len();
                    let end = out[from..]
                        .find(|c: char| !c.is_ascii_digit())
                        .map_or(out.len(), |e| from + e);
                    out.replace_range(from..end, "N");
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}
