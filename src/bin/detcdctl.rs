//! `detcdctl`: the etcdctl 3.4–compatible command-line client (see `detcd::ctl`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(detcd::ctl::main().await)
}
