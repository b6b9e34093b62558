//! `detcd`: the server binary. Parses etcd's flags, sets up logging, starts a member and serves
//! until interrupted.

use clap::Parser;
use detcd::config::Flags;
use std::process::ExitCode;

/// mimalloc rather than glibc's allocator: entries are allocated on the raft task and freed on
/// the apply task, and glibc's arena locks made that cross-thread traffic a leading cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(flags: &Flags) {
    let level = match flags.log_level.as_str() {
        "panic" | "fatal" => "error",
        other => other,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if flags.logger == "zap" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    if flags.version {
        println!("{}", detcd::version_text());
        return ExitCode::SUCCESS;
    }
    init_logging(&flags);
    let config = match flags.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("detcd: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A removed member lingers this long before it exits, as etcd does (ten ticks), so the
    // answers to what it applied last reach their clients: above all the MemberRemove that
    // removed it, when it was the leader that applied it.
    let linger = config.heartbeat * 10;
    // A leader stopped cleanly first hands leadership to a voter heard from within an
    // election timeout (a live one).
    let recently_heard = config.election_timeout;
    let member = match detcd::server::start(config).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "failed to start");
            eprintln!("detcd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let raft = member.core.raft.clone();
    tokio::select! {
        biased;
        reason = raft.stopped() => {
            // etcd exits when it can no longer persist; serving on from frozen state would
            // hide the failure from clients and operators.
            tracing::error!(%reason, "raft node stopped; exiting");
            eprintln!("detcd: raft node stopped: {reason}");
            if reason == detcd::raft::RaftError::Removed.to_string() {
                tokio::time::sleep(linger).await;
            }
            ExitCode::FAILURE
        }
        _ = detcd::io::signal::interrupted() => {
            tracing::info!("received a stop signal; shutting down");
            member.core.stop_cleanly(recently_heard).await;
            ExitCode::SUCCESS
        }
        (done, _, _) = futures::future::select_all(member.tasks) => match done {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("detcd: serving failed: {e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("detcd: server task failed: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
