//! The backup operator: what an etcd user's cron job does, `snapshot save` from one member,
//! and the checks that each snapshot is a state the cluster really had.
//!
//! Every couple of seconds it asks a random member for its current revision (a serializable
//! read), then for a snapshot (`Maintenance.Snapshot`), and reads the file with detcd's own
//! restore path (the trailer's hash, then the bbolt file's `key` history). Each snapshot is
//! recorded in the history as a serializable read of every key at the snapshot's revision, so
//! the linearizability checker judges its content like any read's. Each is also restored into a
//! fresh data dir and loaded as a member would load it, which must give the same keys and
//! revision as the file and the member table given to the restore. A snapshot older than
//! the revision its member served just before is reported here (`backup: ...`). It stops
//! issuing requests once `stop` is set (before the history is checked).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use detcd::io::Disk;
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd::pb::etcdserverpb::{RangeRequest, SnapshotRequest};
use detcd::pb::mvccpb;
use detcd::server::backend_state;
use detcd::server::membership::Membership;
use detcd::server::snapshot::restore;
use detcd::storage::bolt::read::BoltFile;
use futures::StreamExt as _;
use prost::Message as _;

use crate::cluster::member_channel;
use crate::history::{KeyState, Operation, Outcome, Request, Response};
use crate::requests::{RangeResult, RangeSpec};
use crate::workload::{now_ns, SharedHistory};

/// How long one snapshot may take.
const DEADLINE: Duration = Duration::from_secs(5);
/// The history's client id of the operator.
const CLIENT: u64 = 300;

/// What a snapshot holds: its revision and every live key's state.
struct Contents {
    revision: i64,
    kvs: BTreeMap<String, KeyState>,
}

/// Reads the snapshot file `name` on `disk` as a restore would.
fn read(disk: &Disk, name: &str) -> Result<Contents, String> {
    let path = disk.path(name);
    restore::verify_hash(&path).map_err(|e| format!("hash: {e}"))?;
    let file = disk.open_random(name).map_err(|e| e.to_string())?;
    let bolt = BoltFile::open(file).map_err(|e| e.to_string())?;
    // A store starts at revision 1 (as etcd's), with no record of it.
    let mut contents = Contents {
        revision: 1,
        kvs: BTreeMap::new(),
    };
    for (bucket, root) in bolt.buckets().map_err(|e| e.to_string())? {
        for pair in bolt.pairs(root) {
            let (k, v) = pair.map_err(|e| e.to_string())?;
            if bucket == b"meta" {
                if let Some(compacted) = detcd::mvcc::compaction_from_etcd(&k, &v) {
                    contents.revision = contents.revision.max(compacted);
                }
                continue;
            }
            if bucket != b"key" {
                continue;
            }
            let main = i64::from_be_bytes(k[..8].try_into().map_err(|_| "short key")?);
            contents.revision = contents.revision.max(main);
            let kv = mvccpb::KeyValue::decode(v.as_slice()).map_err(|e| e.to_string())?;
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            if k.len() > 17 {
                contents.kvs.remove(&key);
            } else {
                let state = KeyState {
                    value: String::from_utf8_lossy(&kv.value).into_owned(),
                    create_revision: kv.create_revision,
                    mod_revision: kv.mod_revision,
                    version: kv.version,
                };
                contents.kvs.insert(key, state);
            }
        }
    }
    Ok(contents)
}

/// Restores the snapshot at `path` into a fresh data dir as `snapshot restore` does, loads it
/// as a member starting from it would, and checks it holds what the file holds.
fn check_restore(path: &std::path::Path, round: usize, contents: &Contents) -> Result<(), String> {
    let data_dir = std::path::PathBuf::from(format!("/backups/restored-{round}"));
    let initial = BTreeMap::from([("r".to_string(), vec!["http://10.0.9.9:2380".to_string()])]);
    let membership = Membership::bootstrap(&initial, "restore");
    restore::restore(path, &data_dir, &membership, false).map_err(|e| format!("restore: {e}"))?;
    let backend = restore::open_restored(&data_dir).map_err(|e| format!("open: {e}"))?;
    let loaded = backend_state::load(backend).map_err(|e| format!("load: {e}"))?;
    let _ = Disk::new(data_dir.join("member")).remove("snap/db");
    let store = loaded.store;
    let all = store.range(b"\0", b"\0", 0, 0).map_err(|e| e.to_string())?;
    let restored: BTreeMap<String, KeyState> = all
        .kvs
        .into_iter()
        .map(|kv| {
            let state = KeyState {
                value: String::from_utf8_lossy(&kv.value).into_owned(),
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
            };
            (String::from_utf8_lossy(&kv.key).into_owned(), state)
        })
        .collect();
    if store.current_revision() != contents.revision || restored != contents.kvs {
        return Err(format!(
            "restored at revision {} with {} keys, the file holds revision {} with {} keys",
            store.current_revision(),
            restored.len(),
            contents.revision,
            contents.kvs.len()
        ));
    }
    if loaded.membership != Some(membership) {
        return Err("restored member table is not the one given".into());
    }
    Ok(())
}

/// Fetches member `member`'s snapshot into `disk`'s file `name`.
async fn fetch(member: usize, disk: &Disk, name: &str) -> Result<(), String> {
    let mut client = MaintenanceClient::new(member_channel(member));
    let mut stream = client
        .snapshot(SnapshotRequest {})
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let mut file = disk.open_append(name).map_err(|e| e.to_string())?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        file.append(&chunk.blob).map_err(|e| e.to_string())?;
    }
    file.sync().map_err(|e| e.to_string())
}

/// The revision member `member` serves now (serializable read), if it answers.
async fn served_revision(member: usize) -> Option<i64> {
    let probe = RangeRequest {
        key: b"\0".to_vec().into(),
        serializable: true,
        ..Default::default()
    };
    let mut kv = KvClient::new(member_channel(member));
    let resp = tokio::time::timeout(DEADLINE, kv.range(probe))
        .await
        .ok()?
        .ok()?;
    resp.into_inner().header.map(|h| h.revision)
}

/// Takes snapshots until `stop`; failures found go to `failures`.
pub async fn take_backups(
    members: usize,
    history: SharedHistory,
    start: tokio::time::Instant,
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
) {
    let disk = Disk::new("/backups");
    if let Err(e) = disk.create_dir_all("") {
        failures
            .lock()
            .expect("failures")
            .push(format!("backup: {e}"));
        return;
    }
    let mut round = 0usize;
    while !stop.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        round += 1;
        let member = madsim::rand::random::<usize>() % members;
        let Some(before) = served_revision(member).await else {
            continue;
        };
        let name = format!("snapshot-{round}.db");
        let spec = RangeSpec {
            serializable: true,
            ..RangeSpec::new("", "\0")
        };
        let id = {
            let mut h = history.lock().expect("history lock");
            let id = h.ops.len();
            h.ops.push(Operation {
                id,
                client: CLIENT,
                invoke: now_ns(start),
                complete: None,
                request: Request::Range(spec),
                outcome: Outcome::Unknown,
            });
            id
        };
        let fetched = tokio::time::timeout(DEADLINE, fetch(member, &disk, &name)).await;
        let outcome = match fetched.map_err(|_| "deadline".to_string()).and_then(|r| r) {
            Ok(()) => match read(&disk, &name) {
                Ok(contents) => {
                    if let Err(e) = check_restore(&disk.path(&name), round, &contents) {
                        failures
                            .lock()
                            .expect("failures")
                            .push(format!("backup: member {member}'s snapshot: {e}"));
                    }
                    if contents.revision < before {
                        failures.lock().expect("failures").push(format!(
                            "backup: member {member}'s snapshot is at revision {} but it \
                             served revision {before} before",
                            contents.revision
                        ));
                    }
                    let kvs: Vec<(String, KeyState)> = contents.kvs.into_iter().collect();
                    let count = kvs.len() as i64;
                    Outcome::Ok(Response::Range {
                        revision: contents.revision,
                        result: RangeResult {
                            kvs,
                            more: false,
                            count,
                        },
                    })
                }
                Err(e) => {
                    let msg = format!("backup: member {member}'s snapshot is unreadable: {e}");
                    failures.lock().expect("failures").push(msg);
                    Outcome::Failed
                }
            },
            // A member may die or be cut off under the call.
            Err(_) => Outcome::Failed,
        };
        let _ = disk.remove(&name);
        let mut h = history.lock().expect("history lock");
        h.ops[id].complete = Some(now_ns(start));
        h.ops[id].outcome = outcome;
    }
}
