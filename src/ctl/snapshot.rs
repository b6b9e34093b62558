//! `snapshot save | status | restore`, as etcdctl 3.4 runs them: save streams one member's
//! snapshot (exactly one endpoint, within `--command-timeout`) into `FILE.part`, syncs it and
//! renames it to `FILE`; status reads a file through ([`crate::server::snapshot::restore`]);
//! restore writes a new data dir. Progress goes to stderr as JSON log lines, as etcdctl's
//! logger writes them; stdout carries only what etcdctl prints there.

use std::path::{Path, PathBuf};

use futures::StreamExt as _;

use super::cli::RestoreArgs;
use super::error::{CtlError, CtlResult};
use super::json::{self, Obj};
use super::{display, Ctx};
use crate::config::{initial_cluster, split_list};
use crate::gofmt::human_bytes;
use crate::io::Disk;
use crate::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::pb::etcdserverpb::SnapshotRequest;
use crate::server::membership::Membership;
use crate::server::snapshot::restore::{self, SnapshotError, SnapshotStatus};

/// A log line at level info, as etcdctl's logger starts one; add fields, then [`log`] it.
fn info(msg: &str) -> Obj {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    Obj::new()
        .str("level", "info")
        .num("ts", ts)
        .str("msg", msg)
}

/// Prints a log line to stderr.
fn log(line: Obj) {
    eprintln!("{}", line.end());
}

fn one_file<'a>(args: &'a [String], message: &str) -> CtlResult<&'a str> {
    match args {
        [one] => Ok(one),
        _ => Err(CtlError::BadArgs(message.into())),
    }
}

fn failed(e: SnapshotError) -> CtlError {
    CtlError::Failed(e.to_string())
}

/// The directory and name of `path` (a [`Disk`] is rooted at a directory).
fn split(path: &str) -> (Disk, String) {
    let path = Path::new(path);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into());
    (Disk::new(dir.unwrap_or(Path::new("."))), name)
}

/// `snapshot save FILE`.
pub async fn save(ctx: &mut Ctx, args: &[String]) -> CtlResult {
    let path = one_file(args, "snapshot save expects one argument")?;
    let endpoints = ctx.conn.endpoints().to_vec();
    if endpoints.len() != 1 {
        return Err(CtlError::Interrupted(format!(
            "snapshot must be requested to one selected node, not multiple [{}]",
            endpoints.join(" ")
        )));
    }
    let (disk, name) = split(path);
    let part = format!("{name}.part");
    let open = || -> Result<_, crate::io::DiskError> {
        if disk.exists(&part) {
            disk.remove(&part)?;
        }
        disk.open_append(&part)
    };
    let mut file = open()
        .map_err(|e| CtlError::Interrupted(format!("could not open {path}.part ({})", e.source)))?;
    log(info("created temporary db file").str("path", &format!("{path}.part")));
    let started = std::time::Instant::now();
    let deadline = ctx.conn.deadline();
    log(info("fetching snapshot").str("endpoint", &endpoints[0]));
    let fetch = async {
        let channel = ctx.conn.channel(Some(deadline)).await?;
        let mut stream = MaintenanceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .snapshot(super::conn::authorized(SnapshotRequest {}))
            .await
            .map_err(|s| super::error::status_text(&s))?
            .into_inner();
        let mut size = 0u64;
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|s| super::error::status_text(&s))?;
            file.append(&chunk.blob).map_err(|e| e.to_string())?;
            size += chunk.blob.len() as u64;
        }
        file.sync().map_err(|e| e.to_string())?;
        Ok::<u64, String>(size)
    };
    let size = match tokio::time::timeout(
        deadline.saturating_duration_since(tokio::time::Instant::now()),
        fetch,
    )
    .await
    {
        Ok(Ok(size)) => size,
        Ok(Err(e)) => return Err(CtlError::Interrupted(e)),
        Err(_) => return Err(CtlError::Interrupted("context deadline exceeded".into())),
    };
    log(info("fetched snapshot")
        .str("endpoint", &endpoints[0])
        .str("size", &human_bytes(size))
        .num("took", started.elapsed().as_secs_f64()));
    disk.rename(&part, &name)
        .map_err(|e| CtlError::Interrupted(e.to_string()))?;
    log(info("saved").str("path", path));
    display::stdout(&format!("Snapshot saved at {path}\n"));
    Ok(())
}

/// `snapshot status FILE`.
pub fn status(ctx: &mut Ctx, args: &[String]) -> CtlResult {
    let path = one_file(args, "snapshot status requires exactly one argument")?;
    let display = ctx.display()?;
    if display.format == display::Format::Protobuf {
        return Err(display.unsupported());
    }
    let s: SnapshotStatus = restore::status(Path::new(path)).map_err(failed)?;
    let row = vec![
        format!("{:x}", s.hash),
        s.revision.to_string(),
        s.total_key.to_string(),
        human_bytes(s.total_size),
    ];
    display.records(
        &["hash", "revision", "total keys", "total size"],
        &[row],
        || {
            Obj::new()
                .num("hash", s.hash)
                .num("revision", s.revision)
                .num("totalKey", s.total_key)
                .num("totalSize", s.total_size)
                .end()
        },
        |o| {
            o.push_str(&format!(
                "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
                s.hash, s.revision, s.total_key, s.total_size
            ))
        },
    )
}

/// `snapshot restore FILE`.
pub fn restore(_ctx: &mut Ctx, a: &RestoreArgs) -> CtlResult {
    let path = one_file(&a.args, "snapshot restore requires exactly one argument")?;
    let advertised = split_list(&a.initial_advertise_peer_urls);
    let cluster = initial_cluster(&a.name, Some(&a.initial_cluster), &advertised)
        .map_err(|e| CtlError::Failed(e.to_string()))?;
    let membership = Membership::bootstrap(&cluster, &a.initial_cluster_token);
    let data_dir = if a.data_dir.is_empty() {
        PathBuf::from(format!("{}.etcd", a.name))
    } else {
        PathBuf::from(&a.data_dir)
    };
    let member = data_dir.join("member");
    // detcd writes no WAL at restore (the member starts a fresh log), and its server keeps the
    // WAL inside the data dir: `--wal-dir` only shows in the log, as etcdctl's does.
    let wal_dir = if a.wal_dir.is_empty() {
        member.join("wal")
    } else {
        PathBuf::from(&a.wal_dir)
    };
    let dirs = |o: Obj| {
        o.str("path", path)
            .str("wal-dir", &wal_dir.display().to_string())
            .str("data-dir", &data_dir.display().to_string())
            .str("snap-dir", &member.join("snap").display().to_string())
    };
    log(dirs(info("restoring snapshot")));
    let revision = restore::restore(Path::new(path), &data_dir, &membership, a.skip_hash_check)
        .map_err(failed)?;
    for m in membership.members.values() {
        let urls = m.peer_urls.iter().map(|u| json::string(u)).collect();
        log(info("added member")
            .str("added-peer-id", &format!("{:x}", m.id))
            .raw("added-peer-peer-urls", &json::array(urls)));
    }
    log(dirs(info("restored snapshot")).num("revision", revision));
    Ok(())
}
