//! detcdctl: an etcdctl 3.4–compatible command-line client for detcd (and etcd).
//!
//! Same commands, flags, `ETCDCTL_*` environment variables, output formats, error texts and
//! exit codes as etcdctl 3.4. Layout (one concern per file):
//! ```text
//! cli        clap definitions of the global flags and every subcommand
//! env        the ETCDCTL_* environment check (unrecognized / conflicting variables)
//! conn       endpoints, dial/command timeouts, fail-over, unary calls
//! error      CtlError with etcdctl's exit codes; gRPC status and cobra parse-error texts
//! display    -w dispatcher; simple / fields / json / table printers in their own files
//! kv txn watch lease concurrency cluster maintenance snapshot   the commands
//! ```
//! [`main`] parses `std::env::args`, runs the command and returns the process exit code.

/// A retryable unary call: `rpc!(KvClient, range, req)` builds the closure
/// [`conn::Conn::call`] wants (a fresh client and a clone of the request per attempt).
macro_rules! rpc {
    ($client:ident, $method:ident, $req:expr) => {
        |ch| {
            let req = $req.clone();
            async move {
                $client::new(ch)
                    .$method($crate::ctl::conn::authorized(req))
                    .await
            }
        }
    };
}

pub mod auth;
pub mod cli;
pub mod cli_auth;
pub mod cluster;
pub mod concurrency;
pub mod conn;
pub mod display;
pub mod env;
pub mod error;
pub mod fields;
pub mod json;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod member;
pub mod simple;
pub mod snapshot;
pub mod table;
pub mod tls;
pub mod txn;
pub mod watch;

use clap::{CommandFactory, FromArgMatches};
use cli::{AlarmCommand, Cli, Command, EndpointCommand, LeaseCommand, SnapshotCommand};
use conn::Conn;
use display::Display;
use error::CtlResult;

/// What every command gets: the connection and the output settings.
pub struct Ctx {
    /// The cluster connection.
    pub conn: Conn,
    write_out: String,
    hex: bool,
    env: std::cell::RefCell<Option<env::EnvCheck>>,
}

impl Ctx {
    /// The printer, created when etcdctl would create its client (so a bad `-w` fails then).
    /// Also reports the `ETCDCTL_*` environment check at that point, as etcdctl does.
    pub fn display(&self) -> CtlResult<Display> {
        if let Some(check) = self.env.borrow_mut().take() {
            for line in &check.lines {
                eprintln!("{line}");
            }
            if check.fatal {
                return Err(error::CtlError::Quiet(1));
            }
        }
        Display::new(&self.write_out, self.hex)
    }
}

/// Runs detcdctl with the process arguments; returns the exit code.
pub async fn main() -> u8 {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (m, cli)));
    let (matches, cli) = match parsed {
        Ok(both) => both,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::MissingSubcommand
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    0
                }
                ErrorKind::InvalidSubcommand => {
                    let msg = error::cobra_error(&e);
                    eprintln!("Error: {msg}\nRun 'etcdctl --help' for usage.\nError: {msg}");
                    1
                }
                _ => {
                    // cobra prints the command's usage on stdout, then the error twice.
                    let msg = error::cobra_error(&e);
                    eprintln!("Error: {msg}\n\nError: {msg}");
                    1
                }
            };
        }
    };
    let watch = matches!(cli.command, Command::Watch(_));
    let tls = match tls::ClientTls::from_flags(
        &cli.cacert,
        &cli.cert,
        &cli.key,
        cli.insecure_transport,
        cli.insecure_skip_tls_verify,
    ) {
        Ok(tls) => tls,
        Err(e) => {
            e.report();
            return e.exit_code();
        }
    };
    let credentials = match credentials(&cli.user, &cli.password) {
        Ok(c) => c,
        Err(e) => {
            e.report();
            return e.exit_code();
        }
    };
    let mut ctx = Ctx {
        env: std::cell::RefCell::new(Some(env::check(&matches, watch))),
        conn: Conn::new(cli.endpoints, cli.dial_timeout, cli.command_timeout)
            .with_tls(tls)
            .with_credentials(credentials),
        write_out: cli.write_out,
        hex: cli.hex,
    };
    match run(&mut ctx, cli.command).await {
        Ok(()) => 0,
        Err(e) => {
            let e = match conn::authentication_failed() {
                true => e.with_code(error::CtlError::BadConnection),
                false => e,
            };
            e.report();
            e.exit_code()
        }
    }
}

/// etcdctl's reading of `--user` and `--password`: `name:password`, or `name` with
/// `--password`, or `name` alone and the password asked for.
fn credentials(user: &str, password: &str) -> CtlResult<Option<conn::Credentials>> {
    if user.is_empty() {
        return Ok(None);
    }
    let (user, password) = match (password.is_empty(), user.split_once(':')) {
        (true, Some((name, password))) => (name.to_owned(), password.to_owned()),
        (true, None) => {
            eprint!("Password: ");
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| error::CtlError::Failed(e.to_string()))?;
            (
                user.to_owned(),
                line.trim_end_matches(['\n', '\r']).to_owned(),
            )
        }
        (false, Some(_)) => {
            return Err(error::CtlError::BadArgs(format!(
                "username contains ':' while --password is given: {user}"
            )))
        }
        (false, None) => (user.to_owned(), password.to_owned()),
    };
    Ok(Some(conn::Credentials { user, password }))
}

async fn run(ctx: &mut Ctx, command: Command) -> CtlResult {
    match command {
        Command::Get(a) => kv::get(ctx, a).await,
        Command::Put(a) => kv::put(ctx, a).await,
        Command::Del(a) => kv::del(ctx, a).await,
        Command::Txn(a) => txn::run(ctx, a).await,
        Command::Compaction(a) => kv::compaction(ctx, a).await,
        Command::Watch(a) => watch::run(ctx, a).await,
        Command::Lease(LeaseCommand::Grant { args }) => lease::grant(ctx, args).await,
        Command::Lease(LeaseCommand::Revoke { args }) => lease::revoke(ctx, args).await,
        Command::Lease(LeaseCommand::Timetolive { args, keys }) => {
            lease::time_to_live(ctx, args, keys).await
        }
        Command::Lease(LeaseCommand::List) => lease::list(ctx).await,
        Command::Lease(LeaseCommand::KeepAlive { args, once }) => {
            lease::keep_alive(ctx, args, once).await
        }
        Command::Lock(a) => concurrency::lock(ctx, a).await,
        Command::Elect(a) => concurrency::elect(ctx, a).await,
        Command::Member(command) => member::run(ctx, command).await,
        Command::Auth(command) => auth::auth(ctx, command).await,
        Command::User(command) => auth::user(ctx, command).await,
        Command::Role(command) => auth::role(ctx, command).await,
        Command::Endpoint(a) => {
            if a.cluster {
                member::use_cluster_endpoints(ctx).await?;
            }
            match a.command {
                EndpointCommand::Status => cluster::endpoint_status(ctx).await,
                EndpointCommand::Health => cluster::endpoint_health(ctx).await,
                EndpointCommand::Hashkv { rev } => cluster::endpoint_hashkv(ctx, rev).await,
            }
        }
        Command::MoveLeader { args } => member::move_leader(ctx, &args).await,
        Command::Defrag => maintenance::defrag(ctx).await,
        Command::Alarm(AlarmCommand::List { args }) => maintenance::alarm_list(ctx, &args).await,
        Command::Alarm(AlarmCommand::Disarm { args }) => {
            maintenance::alarm_disarm(ctx, &args).await
        }
        Command::Snapshot(SnapshotCommand::Save { args }) => snapshot::save(ctx, &args).await,
        Command::Snapshot(SnapshotCommand::Status { args }) => snapshot::status(ctx, &args),
        Command::Snapshot(SnapshotCommand::Restore(args)) => snapshot::restore(ctx, &args),
        Command::Version => {
            // Same shape as etcdctl's, but it names itself: scripts that parse the API
            // version keep working, and nobody mistakes this for the real etcdctl.
            display::stdout(&format!(
                "detcdctl version: {} (etcdctl 3.4 compatible)\nAPI version: 3.4\n",
                crate::VERSION
            ));
            Ok(())
        }
    }
}
