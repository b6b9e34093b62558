//! `detcd-bench`: a load generator for etcd-compatible servers (detcd or etcd itself), so the two
//! can be measured side by side with the same client. It opens `--conns` gRPC connections, runs
//! `--clients` concurrent request loops over them for `--total` requests, and prints throughput
//! and latency percentiles.

use clap::{Parser, ValueEnum};
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::{PutRequest, RangeRequest};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Workload {
    /// Put random keys.
    Put,
    /// Linearizable single-key gets.
    Range,
    /// Serializable single-key gets.
    RangeSerializable,
    /// Linearizable gets of `--scan-keys` consecutive keys from a random one (the keys a
    /// `put` load of the same `--key-size` wrote).
    Scan,
}

#[derive(Parser, Debug)]
#[command(name = "detcd-bench", about = "Benchmark an etcd-compatible server")]
struct Args {
    /// Workload to run.
    #[arg(value_enum)]
    workload: Workload,
    /// Comma-separated client endpoints.
    #[arg(long, default_value = "127.0.0.1:2379")]
    endpoints: String,
    /// gRPC connections.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Concurrent request loops.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Total requests.
    #[arg(long, default_value_t = 10_000)]
    total: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    val_size: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    key_space: u64,
    /// Keys one `scan` reads.
    #[arg(long, default_value_t = 1000)]
    scan_keys: u64,
    /// `name:password`: authenticate once, then send every request with the token.
    #[arg(long)]
    user: Option<String>,
    /// Write every request's start (ms since the load began) and latency (ms) to this file, one
    /// request a line, to see when slow requests happen.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
}

/// The token every request carries (`--user`).
type Token = Option<tonic::metadata::AsciiMetadataValue>;

/// `message` as a request with `token`.
fn with<T>(token: &Token, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(t) = token {
        request.metadata_mut().insert("token", t.clone());
    }
    request
}

/// A token for `user` (`name:password`) from the server behind `channel`.
async fn authenticate(
    channel: Channel,
    user: &str,
) -> Result<Token, Box<dyn std::error::Error + Send + Sync>> {
    use detcd::pb::etcdserverpb::{auth_client::AuthClient, AuthenticateRequest};
    let (name, password) = user.split_once(':').ok_or("--user wants name:password")?;
    let request = AuthenticateRequest {
        name: name.into(),
        password: password.into(),
    };
    let token = AuthClient::new(channel).authenticate(request).await?;
    Ok(Some(token.into_inner().token.parse()?))
}

fn key(i: u64, size: usize) -> Vec<u8> {
    let mut k = format!("{i:0size$}").into_bytes();
    k.truncate(size.max(1));
    k
}

/// `n` connections spread over `endpoints`; `https://` ones over TLS without verifying the
/// server's certificate (the benchmarks run servers with generated ones).
async fn connect(
    endpoints: &[String],
    n: usize,
) -> Result<Vec<Channel>, Box<dyn std::error::Error + Send + Sync>> {
    let settings = detcd::raft::dial::TlsClientSettings {
        skip_verify: true,
        ..Default::default()
    };
    let dialer = detcd::raft::dial::Dialer::with_tls(&settings)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let ep = &endpoints[i % endpoints.len()];
        let channel = dialer.endpoint(ep)?.connect().await?;
        out.push(channel);
    }
    Ok(out)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// Writes `timed` (start since the load began, latency), sorted by start, as `--trace` wants.
fn write_trace(path: &std::path::Path, timed: &mut [(Duration, Duration)]) -> std::io::Result<()> {
    use std::io::Write;
    timed.sort();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (at, lat) in timed.iter() {
        writeln!(
            out,
            "{:.3} {:.3}",
            at.as_secs_f64() * 1e3,
            lat.as_secs_f64() * 1e3
        )?;
    }
    out.flush()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let endpoints: Vec<String> = args.endpoints.split(',').map(str::to_string).collect();
    let channels = connect(&endpoints, args.conns.max(1)).await?;
    let token = match &args.user {
        Some(user) => authenticate(channels[0].clone(), user).await?,
        None => None,
    };
    let clients: Vec<KvClient<Channel>> = channels
        .into_iter()
        .map(|ch| KvClient::new(ch).max_decoding_message_size(usize::MAX))
        .collect();
    let value = vec![b'v'; args.val_size];
    if matches!(args.workload, Workload::Range | Workload::RangeSerializable) {
        let mut c = clients[0].clone();
        for i in 0..args.key_space.min(1000) {
            let put = PutRequest {
                key: key(i, args.key_size).into(),
                value: value.clone().into(),
                ..Default::default()
            };
            c.put(with(&token, put)).await?;
        }
    }
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients.max(1) {
        let mut client = clients[c % clients.len()].clone();
        let next = next.clone();
        let errors = errors.clone();
        let value = value.clone();
        let token = token.clone();
        let (total, key_size, key_space, workload, scan_keys) = (
            args.total,
            args.key_size,
            args.key_space,
            args.workload,
            args.scan_keys,
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let k = key(n.wrapping_mul(2_654_435_761) % key_space.max(1), key_size);
                let t = Instant::now();
                let ok = match workload {
                    Workload::Put => {
                        let put = PutRequest {
                            key: k.into(),
                            value: value.clone().into(),
                            ..Default::default()
                        };
                        client.put(with(&token, put)).await.is_ok()
                    }
                    Workload::Range | Workload::RangeSerializable => {
                        let get = RangeRequest {
                            key: key(n % key_space.clamp(1, 1000), key_size).into(),
                            serializable: matches!(workload, Workload::RangeSerializable),
                            ..Default::default()
                        };
                        client.range(with(&token, get)).await.is_ok()
                    }
                    Workload::Scan => {
                        let from = n.wrapping_mul(2_654_435_761) % key_space.max(1);
                        let scan = RangeRequest {
                            key: key(from, key_size).into(),
                            range_end: key(from + scan_keys, key_size).into(),
                            ..Default::default()
                        };
                        client.range(with(&token, scan)).await.is_ok()
                    }
                };
                lat.push((t - start, t.elapsed()));
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut timed = Vec::new();
    for t in tasks {
        timed.extend(t.await?);
    }
    let elapsed = start.elapsed();
    if let Some(path) = &args.trace {
        write_trace(path, &mut timed)?;
    }
    let mut all: Vec<Duration> = timed.into_iter().map(|(_, lat)| lat).collect();
    all.sort();
    println!(
        "workload={:?} total={} clients={} conns={} elapsed={:.2}s throughput={:.0} req/s errors={}",
        args.workload,
        all.len(),
        args.clients,
        args.conns,
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        errors.load(Ordering::Relaxed)
    );
    println!(
        "latency p50={:.2}ms p90={:.2}ms p99={:.2}ms p99.9={:.2}ms max={:.2}ms",
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.90).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        percentile(&all, 0.999).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    Ok(())
}
