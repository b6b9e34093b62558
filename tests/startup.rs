//! Start-up failures a member reports the way etcd does: a peer or client port that is already
//! taken stops it with exit code 1 and `listen tcp ADDR: bind: address already in use`.

#![cfg(not(madsim))]

mod common;
use common::{free_port, member_command, wait_until};
use std::io::Read as _;
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::Duration;

/// Starts a single-member detcd whose port `taken` (its client or peer port) is already bound by
/// someone else; returns its exit code and stderr.
fn start_on_taken_port(ports: (u16, u16), taken: u16) -> (Option<i32>, String) {
    let _holder = TcpListener::bind(("127.0.0.1", taken)).expect("occupy the port");
    let dir = tempfile::tempdir().expect("tempdir");
    let child = member_command(
        env!("CARGO_BIN_EXE_detcd"),
        "m1",
        &dir.path().join("m1.etcd"),
        ports,
        &format!("m1=http://127.0.0.1:{}", ports.1),
    )
    .env("NO_COLOR", "1")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn detcd");
    let mut child = KillOnDrop(child);
    let mut status = None;
    wait_until(Duration::from_secs(20), || {
        status = child.0.try_wait().expect("try_wait");
        status.is_some()
    });
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status.and_then(|s| s.code()), stderr)
}

/// Kills the member if a test gives up on it before it exits.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_taken_port_fails_start_up_with_the_address_and_exit_code_1() {
    let ports = (free_port(), free_port());
    for taken in [ports.1, ports.0] {
        let (code, stderr) = start_on_taken_port(ports, taken);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "listen tcp 127.0.0.1:{taken}: bind: address already in use"
            )),
            "{stderr}"
        );
    }
}
