//! TLS on the client port with the real etcdctl 3.4, as Kubernetes operators connect:
//! `etcdctl --endpoints=https://127.0.0.1:2379 --cacert=ca.crt --cert=client.crt
//! --key=client.key endpoint status -w table`. The PKI is generated here (rcgen): a CA, a
//! server certificate for 127.0.0.1, a client certificate from the same CA and one from another
//! CA. With `--client-cert-auth` a client without a certificate, or with one from another CA,
//! is refused; a client that does not trust the server's CA refuses the server; a rotated
//! server certificate is served without a restart. Peers: three
//! members on `https://` peer URLs with `--peer-client-cert-auth` replicate, and a peer
//! connection with a certificate from another CA is refused and logged.

#![cfg(not(madsim))]

mod common;

use common::{free_port, stderr, stdout, wait_until};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A certificate authority that signs leaf certificates into a directory.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
    name: String,
}

impl Authority {
    /// A self-signed CA whose certificate is written to `dir/<name>.crt`.
    fn new(dir: &Path, name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca cert");
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).expect("write ca");
        Authority {
            issuer: Issuer::new(params, key),
            dir: dir.to_path_buf(),
            name: name.to_string(),
        }
    }

    fn ca_file(&self) -> String {
        self.path(&format!("{}.crt", self.name))
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// Signs a certificate for `common_name` (valid for 127.0.0.1 and localhost); writes
    /// `<file>.crt` and `<file>.key` and returns their paths.
    fn sign(&self, file: &str, common_name: &str) -> (String, String) {
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let (crt, pem) = (
            self.path(&format!("{file}.crt")),
            self.path(&format!("{file}.key")),
        );
        std::fs::write(&crt, cert.pem()).expect("write cert");
        std::fs::write(&pem, key.serialize_pem()).expect("write key");
        (crt, pem)
    }
}

/// A single detcd member serving clients on `https://` only, killed on drop.
struct TlsMember {
    child: Child,
    endpoint: String,
}

impl Drop for TlsMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsMember {
    fn start(dir: &Path, cert: &str, key: &str, ca: &str) -> TlsMember {
        let (client_port, peer_port) = (free_port(), free_port());
        let endpoint = format!("https://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new(env!("CARGO_BIN_EXE_detcd"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("default={peer}")])
            .args(["--cert-file", cert, "--key-file", key])
            .args(["--trusted-ca-file", ca, "--client-cert-auth"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("detcd.log")).expect("log"))
            .spawn()
            .expect("start detcd");
        TlsMember { child, endpoint }
    }
}

/// The real etcdctl against `endpoint` with `tls` flags.
fn etcdctl(endpoint: &str, tls: &[String], args: &[&str]) -> Output {
    tool(
        &std::env::var("ETCDCTL").unwrap_or_else(|_| "etcdctl".into()),
        endpoint,
        tls,
        args,
    )
}

/// detcdctl against `endpoint` with `tls` flags.
fn detcdctl(endpoint: &str, tls: &[String], args: &[&str]) -> Output {
    tool(env!("CARGO_BIN_EXE_detcdctl"), endpoint, tls, args)
}

fn tool(bin: &str, endpoint: &str, tls: &[String], args: &[&str]) -> Output {
    Command::new(bin)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(tls)
        .args(["--dial-timeout=2s", "--command-timeout=3s"])
        .args(args)
        .output()
        .expect("run etcdctl")
}

#[test]
fn etcdctl_over_tls_with_client_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Authority::new(dir.path(), "ca");
    let other = Authority::new(dir.path(), "other-ca");
    let (server_crt, server_key) = ca.sign("server", "detcd");
    let (client_crt, client_key) = ca.sign("client", "root");
    let (stranger_crt, stranger_key) = other.sign("stranger", "root");
    let member = TlsMember::start(dir.path(), &server_crt, &server_key, &ca.ca_file());
    let ep = member.endpoint.clone();
    let trusted = vec![
        format!("--cacert={}", ca.ca_file()),
        format!("--cert={client_crt}"),
        format!("--key={client_key}"),
    ];
    wait_until(Duration::from_secs(30), || {
        etcdctl(&ep, &trusted, &["endpoint", "health"])
            .status
            .success()
    });

    // The seed's command shape.
    let status = etcdctl(&ep, &trusted, &["endpoint", "status", "-w", "table"]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(stdout(&status).contains(&ep), "{}", stdout(&status));
    let put = etcdctl(&ep, &trusted, &["put", "k", "over tls"]);
    assert_eq!(stdout(&put), "OK\n", "{}", stderr(&put));
    let get = etcdctl(&ep, &trusted, &["get", "k", "--print-value-only"]);
    assert_eq!(stdout(&get), "over tls\n");

    // detcdctl takes the same flags, with the same results.
    let got = detcdctl(&ep, &trusted, &["get", "k", "--print-value-only"]);
    assert_eq!(stdout(&got), "over tls\n", "{}", stderr(&got));
    let bare = ep.trim_start_matches("https://");
    let got = detcdctl(bare, &trusted, &["put", "k2", "v"]);
    assert_eq!(stdout(&got), "OK\n", "{}", stderr(&got));
    let half = vec![format!("--cert={client_crt}")];
    let (want, got) = (
        etcdctl(&ep, &half, &["get", "k"]),
        detcdctl(&ep, &half, &["get", "k"]),
    );
    assert_eq!(
        (stderr(&got), got.status.code()),
        (stderr(&want), want.status.code())
    );

    // --insecure-skip-tls-verify: no CA given, the server's certificate is not checked.
    let unverified = vec![
        "--insecure-skip-tls-verify".to_string(),
        format!("--cert={client_crt}"),
        format!("--key={client_key}"),
    ];
    for out in [
        etcdctl(&ep, &unverified, &["get", "k", "--print-value-only"]),
        detcdctl(&ep, &unverified, &["get", "k", "--print-value-only"]),
    ] {
        assert_eq!(stdout(&out), "over tls\n", "{}", stderr(&out));
    }

    // Refused: no client certificate, a certificate from another CA.
    let no_cert = vec![format!("--cacert={}", ca.ca_file())];
    let stranger = vec![
        format!("--cacert={}", ca.ca_file()),
        format!("--cert={stranger_crt}"),
        format!("--key={stranger_key}"),
    ];
    for (what, flags) in [("no certificate", no_cert), ("another CA", stranger)] {
        for out in [
            etcdctl(&ep, &flags, &["get", "k"]),
            detcdctl(&ep, &flags, &["get", "k"]),
        ] {
            assert!(!out.status.success(), "{what}: accepted: {}", stdout(&out));
            assert!(!stdout(&out).contains("over tls"), "{what}");
        }
    }
    // A client that does not trust the server's CA refuses the server.
    let distrust = vec![
        format!("--cacert={}", other.ca_file()),
        format!("--cert={client_crt}"),
        format!("--key={client_key}"),
    ];
    let out = etcdctl(&ep, &distrust, &["get", "k"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let log = std::fs::read_to_string(dir.path().join("detcd.log")).unwrap_or_default();
    assert!(log.contains("TLS handshake failed"), "{log}");

    // A rotated server certificate (now from the other CA) is served without a restart.
    other.sign("server", "detcd");
    let rotated = vec![
        format!("--cacert={}", other.ca_file()),
        format!("--cert={client_crt}"),
        format!("--key={client_key}"),
    ];
    wait_until(Duration::from_secs(10), || {
        etcdctl(&ep, &rotated, &["get", "k"]).status.success()
    });
    assert!(!etcdctl(&ep, &trusted, &["get", "k"]).status.success());
}

/// Member `i` of a three-member cluster with TLS (and client certificates) on its peer port and
/// plain client URLs, killed on drop.
fn tls_peer(dir: &Path, i: usize, ports: &[(u16, u16)], ca: &Authority) -> TlsMember {
    let name = format!("m{}", i + 1);
    let (crt, key) = ca.sign(&name, &name);
    let ca_file = ca.ca_file();
    let tls = [
        "--peer-cert-file",
        crt.as_str(),
        "--peer-key-file",
        key.as_str(),
        "--peer-trusted-ca-file",
        ca_file.as_str(),
        "--peer-client-cert-auth",
    ];
    https_peer(dir, i, ports, "http", &tls)
}

/// Member `i` of a three-member cluster on `https://` peer URLs and `client_scheme` client
/// URLs, with the TLS flags `tls`, killed on drop.
fn https_peer(
    dir: &Path,
    i: usize,
    ports: &[(u16, u16)],
    client_scheme: &str,
    tls: &[&str],
) -> TlsMember {
    let name = format!("m{}", i + 1);
    let initial: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(j, (_, peer))| format!("m{}=https://127.0.0.1:{peer}", j + 1))
        .collect();
    let (client, peer) = ports[i];
    let (client, peer) = (
        format!("{client_scheme}://127.0.0.1:{client}"),
        format!("https://127.0.0.1:{peer}"),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_detcd"))
        .args(["--name", &name])
        .arg("--data-dir")
        .arg(dir.join(&name))
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &initial.join(",")])
        .args(tls)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).expect("log"))
        .spawn()
        .expect("start detcd");
    let endpoint = match client_scheme {
        "http" => client.trim_start_matches("http://").to_string(),
        _ => client,
    };
    TlsMember { child, endpoint }
}

#[test]
fn auto_tls_generates_certificates_for_clients_and_peers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let auto = ["--auto-tls", "--peer-auto-tls"];
    let members: Vec<TlsMember> = (0..3)
        .map(|i| https_peer(dir.path(), i, &ports, "https", &auto))
        .collect();
    // As with etcd, etcdctl needs a TLS configuration for the skip to take effect.
    let skip = vec![
        "--insecure-transport=false".to_string(),
        "--insecure-skip-tls-verify".to_string(),
    ];
    let ep = members[0].endpoint.clone();
    wait_until(Duration::from_secs(30), || {
        etcdctl(&ep, &skip, &["put", "k", "auto"]).status.success()
    });
    let last = members[2].endpoint.clone();
    wait_until(Duration::from_secs(10), || {
        let got = etcdctl(
            &last,
            &skip,
            &["get", "k", "--consistency=s", "--print-value-only"],
        );
        stdout(&got) == "auto\n"
    });
    for side in ["client", "peer"] {
        let cert = dir.path().join(format!("m1/fixtures/{side}/cert.pem"));
        assert!(cert.exists(), "{}", cert.display());
    }
    // Without a TLS configuration the self-signed certificate is not trusted, by either tool.
    let alone = vec!["--insecure-skip-tls-verify".to_string()];
    for out in [
        etcdctl(&ep, &alone, &["get", "k"]),
        detcdctl(&ep, &alone, &["get", "k"]),
    ] {
        assert!(!out.status.success(), "{}", stdout(&out));
    }
    let got = detcdctl(&last, &skip, &["get", "k", "--print-value-only"]);
    assert_eq!(stdout(&got), "auto\n", "{}", stderr(&got));
}

#[test]
fn peers_replicate_over_tls_and_refuse_a_foreign_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Authority::new(dir.path(), "peer-ca");
    let other = Authority::new(dir.path(), "other-ca");
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let members: Vec<TlsMember> = (0..3)
        .map(|i| tls_peer(dir.path(), i, &ports, &ca))
        .collect();
    let all: Vec<String> = members.iter().map(|m| m.endpoint.clone()).collect();
    wait_until(Duration::from_secs(30), || {
        common::etcdctl(&all[0], &["put", "k", "replicated"])
            .status
            .success()
    });
    for ep in &all {
        wait_until(Duration::from_secs(10), || {
            let got = common::etcdctl(ep, &["get", "k", "--consistency=s", "--print-value-only"]);
            stdout(&got) == "replicated\n"
        });
    }
    // A peer connection with a certificate from another CA is refused, and logged.
    let (crt, key) = other.sign("intruder", "m1");
    let intruder = vec![
        format!("--cacert={}", ca.ca_file()),
        format!("--cert={crt}"),
        format!("--key={key}"),
    ];
    let peer_port = format!("https://127.0.0.1:{}", ports[1].1);
    let out = etcdctl(&peer_port, &intruder, &["member", "list"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let log = std::fs::read_to_string(dir.path().join("m2.log")).unwrap_or_default();
    assert!(log.contains("TLS handshake failed"), "{log}");
}

/// With `--client-cert-auth` and auth enabled, the certificate's common name is the user when
/// no token is given (etcd's rule), for the real etcdctl and for detcdctl.
#[test]
fn a_client_certificate_names_the_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Authority::new(dir.path(), "ca");
    let (server_crt, server_key) = ca.sign("server", "detcd");
    let (root_crt, root_key) = ca.sign("root", "root");
    let (alice_crt, alice_key) = ca.sign("alice", "alice");
    let member = TlsMember::start(dir.path(), &server_crt, &server_key, &ca.ca_file());
    let ep = member.endpoint.clone();
    let flags = |crt: &str, key: &str| {
        vec![
            format!("--cacert={}", ca.ca_file()),
            format!("--cert={crt}"),
            format!("--key={key}"),
        ]
    };
    let (root, alice) = (flags(&root_crt, &root_key), flags(&alice_crt, &alice_key));
    wait_until(Duration::from_secs(30), || {
        etcdctl(&ep, &root, &["endpoint", "health"])
            .status
            .success()
    });
    for args in [
        &["user", "add", "root:pw"][..],
        &["user", "add", "alice", "--no-password"],
        &["role", "add", "reader"],
        &["role", "grant-permission", "reader", "read", "k"],
        &["user", "grant-role", "alice", "reader"],
        &["put", "k", "v"],
        &["auth", "enable"],
    ] {
        let out = etcdctl(&ep, &root, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    for tool in [etcdctl, detcdctl] {
        let got = tool(&ep, &alice, &["get", "k", "--print-value-only"]);
        assert_eq!(stdout(&got), "v\n", "{}", stderr(&got));
        let denied = tool(&ep, &alice, &["put", "k", "w"]);
        assert!(!denied.status.success());
        assert!(
            stderr(&denied).contains("etcdserver: permission denied"),
            "{}",
            stderr(&denied)
        );
        let put = tool(&ep, &root, &["put", "k", "v"]);
        assert_eq!(stdout(&put), "OK\n", "{}", stderr(&put));
        // A token overrides the certificate: alice with root's password is refused.
        let wrong = tool(&ep, &alice, &["--user=root:nope", "get", "k"]);
        assert!(!wrong.status.success());
    }
}
