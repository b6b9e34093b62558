//! `detcdctl`: the etcdctl-compatible command-line client (being built; see src/ctl).

fn main() -> std::process::ExitCode {
    eprintln!("detcdctl: not built yet");
    std::process::ExitCode::FAILURE
}
