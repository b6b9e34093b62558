//! `etcdctl member list|add|remove|update|promote`: argument checks with etcdctl's texts and
//! exit codes, and its output. `member add` in the simple format also prints the `ETCD_*`
//! block to start the new member with, built from a member list taken from the member that
//! answered the add (etcdctl re-reads until the list comes from it, so it includes the new
//! member).

use super::error::{CtlError, CtlResult};
use super::json::{self, Obj};
use super::{fields, Ctx};
use crate::ctl::cli::MemberCommand;
use crate::pb::etcdserverpb::cluster_client::ClusterClient;
use crate::pb::etcdserverpb::kv_client::KvClient;
use crate::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::pb::etcdserverpb::{
    Member, MemberAddRequest, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberRemoveRequest, MemberUpdateRequest, MoveLeaderRequest, RangeRequest, ResponseHeader,
    StatusRequest,
};
use prost::Message as _;

/// Runs a `member` subcommand.
pub async fn run(ctx: &mut Ctx, command: MemberCommand) -> CtlResult {
    match command {
        MemberCommand::List => list(ctx).await,
        MemberCommand::Add {
            args,
            peer_urls,
            learner,
        } => add(ctx, args, &peer_urls, learner).await,
        MemberCommand::Remove { args } => {
            let id = id_arg(&args)?;
            let req = MemberRemoveRequest { id };
            let r = call(ctx, rpc!(ClusterClient, member_remove, req)).await?;
            changed(
                ctx,
                "removed from",
                id,
                r.header,
                &r.members,
                r.encode_to_vec(),
            )
        }
        MemberCommand::Update { args, peer_urls } => {
            let id = id_arg(&args)?;
            let peer_ur_ls = urls_arg(&peer_urls)?;
            let req = MemberUpdateRequest { id, peer_ur_ls };
            let r = call(ctx, rpc!(ClusterClient, member_update, req)).await?;
            changed(
                ctx,
                "updated in",
                id,
                r.header,
                &r.members,
                r.encode_to_vec(),
            )
        }
        MemberCommand::Promote { args } => {
            let id = id_arg(&args)?;
            let req = MemberPromoteRequest { id };
            let r = call(ctx, rpc!(ClusterClient, member_promote, req)).await?;
            changed(
                ctx,
                "promoted in",
                id,
                r.header,
                &r.members,
                r.encode_to_vec(),
            )
        }
    }
}

async fn call<T, F, Fut>(ctx: &mut Ctx, rpc: F) -> CtlResult<T>
where
    F: Fn(tonic::transport::Channel) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    ctx.conn.call(rpc).await.map_err(CtlError::Failed)
}

/// etcdctl's member-id argument: exactly one, in hex.
fn id_arg(args: &[String]) -> CtlResult<u64> {
    let [arg] = args else {
        return Err(CtlError::BadArgs("member ID is not provided".into()));
    };
    crate::gofmt::parse_uint(arg, 16)
        .map_err(|e| CtlError::BadArgs(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

/// The `--peer-urls` of add / update, checked as clientv3 checks them before sending
/// (`types.NewURLs`: scheme, `host:port`, no path).
fn urls_arg(peer_urls: &str) -> CtlResult<Vec<String>> {
    if peer_urls.is_empty() {
        return Err(CtlError::BadArgs("member peer urls not provided".into()));
    }
    let urls: Vec<String> = peer_urls.split(',').map(str::to_string).collect();
    for url in &urls {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        if !matches!(scheme, "http" | "https" | "unix" | "unixs") {
            let why = format!("URL scheme must be http, https, unix, or unixs: {url}");
            return Err(CtlError::Failed(why));
        }
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !host
            .rsplit_once(':')
            .is_some_and(|(h, _)| !h.contains(':') || h.starts_with('['))
        {
            let why = format!("URL address does not have the form \"host:port\": {url}");
            return Err(CtlError::Failed(why));
        }
        if !path.is_empty() {
            return Err(CtlError::Failed(format!(
                "URL must not contain a path: {url}"
            )));
        }
    }
    Ok(urls)
}

/// `member list`.
async fn list(ctx: &mut Ctx) -> CtlResult {
    let display = ctx.display()?;
    let req = MemberListRequest {
        linearizable: false,
    };
    let resp = call(ctx, rpc!(ClusterClient, member_list, req)).await?;
    let rows: Vec<Vec<String>> = resp
        .members
        .iter()
        .map(|m| {
            let status = if m.name.is_empty() {
                "unstarted"
            } else {
                "started"
            };
            vec![
                format!("{:x}", m.id),
                status.to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect();
    let to_json = || {
        Obj::new()
            .header(resp.header.as_ref())
            .list_omit("members", members_json(&resp.members))
            .end()
    };
    display.records(
        &[
            "ID",
            "Status",
            "Name",
            "Peer Addrs",
            "Client Addrs",
            "Is Learner",
        ],
        &rows,
        to_json,
        |o| fields::members(o, &resp),
    )
}

fn member_json(m: &Member) -> String {
    let urls = |v: &[String]| v.iter().map(|u| json::string(u)).collect();
    Obj::new()
        .num_omit("ID", m.id)
        .str_omit("name", &m.name)
        .list_omit("peerURLs", urls(&m.peer_ur_ls))
        .list_omit("clientURLs", urls(&m.client_ur_ls))
        .num_omit("isLearner", m.is_learner)
        .end()
}

fn members_json(members: &[Member]) -> Vec<String> {
    members.iter().map(member_json).collect()
}

/// Prints the answer to remove / update / promote: `Member <id> <what> cluster <cluster id>`.
fn changed(
    ctx: &mut Ctx,
    what: &str,
    id: u64,
    header: Option<ResponseHeader>,
    members: &[Member],
    protobuf: Vec<u8>,
) -> CtlResult {
    let cluster = header.unwrap_or_default().cluster_id;
    let line = format!("Member {id:16x} {what} cluster {cluster:16x}\n");
    print_change(ctx, &line, header, members, None, protobuf)
}

/// Prints a membership change's answer in the chosen format (the table format prints the
/// simple line, as etcdctl's does).
fn print_change(
    ctx: &mut Ctx,
    line: &str,
    header: Option<ResponseHeader>,
    members: &[Member],
    member: Option<&Member>,
    protobuf: Vec<u8>,
) -> CtlResult {
    use super::display::Format;
    let display = ctx.display()?;
    let text = match display.format {
        Format::Simple | Format::Table => line.to_string(),
        Format::Json => {
            let mut obj = Obj::new().header(header.as_ref());
            if let Some(m) = member {
                obj = obj.raw("member", &member_json(m));
            }
            obj.list_omit("members", members_json(members)).end() + "\n"
        }
        Format::Fields => {
            let mut out = String::new();
            let list = MemberListResponse {
                header,
                members: members.to_vec(),
            };
            fields::members(&mut out, &list);
            out
        }
        Format::Protobuf => {
            super::display::stdout_bytes(&protobuf);
            return Ok(());
        }
    };
    super::display::stdout(&text);
    Ok(())
}

/// `member add <name> --peer-urls=... [--learner]`.
async fn add(ctx: &mut Ctx, args: Vec<String>, peer_urls: &str, learner: bool) -> CtlResult {
    let [name] = &args[..] else {
        return Err(CtlError::BadArgs("member name not provided".into()));
    };
    let peer_ur_ls = urls_arg(peer_urls)?;
    let req = MemberAddRequest {
        peer_ur_ls: peer_ur_ls.clone(),
        is_learner: learner,
    };
    let r = call(ctx, rpc!(ClusterClient, member_add, req)).await?;
    let member = r.member.clone().unwrap_or_default();
    let header = r.header.unwrap_or_default();
    let mut text = format!(
        "Member {:16x} added to cluster {:16x}\n",
        member.id, header.cluster_id
    );
    let simple = ctx.display()?.format == super::display::Format::Simple;
    if !simple {
        return print_change(
            ctx,
            &text,
            r.header,
            &r.members,
            Some(&member),
            r.encode_to_vec(),
        );
    }
    let members = members_from(ctx, header.member_id).await?;
    let mut conf = Vec::new();
    for m in &members {
        let n = if m.id == member.id { name } else { &m.name };
        conf.extend(m.peer_ur_ls.iter().map(|u| format!("{n}={u}")));
    }
    text.push('\n');
    text.push_str(&format!(
        "ETCD_NAME={}\n",
        crate::gofmt::quote(name.as_bytes())
    ));
    let cluster = conf.join(",");
    text.push_str(&format!(
        "ETCD_INITIAL_CLUSTER={}\n",
        crate::gofmt::quote(cluster.as_bytes())
    ));
    let advertise = member.peer_ur_ls.join(",");
    text.push_str(&format!(
        "ETCD_INITIAL_ADVERTISE_PEER_URLS={}\n",
        crate::gofmt::quote(advertise.as_bytes())
    ));
    text.push_str("ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n");
    super::display::stdout(&text);
    Ok(())
}

/// The member list as the member `answered_by` sees it: etcdctl asks again (after a quorum read
/// that tells which member answers) until the list comes from that member.
async fn members_from(ctx: &mut Ctx, mut answered_by: u64) -> CtlResult<Vec<Member>> {
    loop {
        let req = MemberListRequest {
            linearizable: false,
        };
        let list = call(ctx, rpc!(ClusterClient, member_list, req)).await?;
        if list.header.unwrap_or_default().member_id == answered_by {
            return Ok(list.members);
        }
        let get = RangeRequest {
            key: bytes::Bytes::from_static(b"_"),
            ..Default::default()
        };
        let r = call(ctx, rpc!(KvClient, range, get)).await?;
        answered_by = r.header.unwrap_or_default().member_id;
    }
}

/// `endpoint ... --cluster`: the endpoints become every member's client URLs.
pub async fn use_cluster_endpoints(ctx: &mut Ctx) -> CtlResult {
    let req = MemberListRequest {
        linearizable: false,
    };
    let list = ctx
        .conn
        .call(rpc!(ClusterClient, member_list, req))
        .await
        .map_err(|e| {
            CtlError::Failed(format!(
                "failed to fetch endpoints from etcd cluster member list: {e}"
            ))
        })?;
    let endpoints = list
        .members
        .into_iter()
        .flat_map(|m| m.client_ur_ls)
        .collect();
    ctx.conn = ctx.conn.with_endpoints(endpoints);
    Ok(())
}

/// `move-leader <transferee-member-id>`: finds the leader among the endpoints and asks it.
pub async fn move_leader(ctx: &mut Ctx, args: &[String]) -> CtlResult {
    let [arg] = args else {
        return Err(CtlError::BadArgs(
            "move-leader command needs 1 argument".into(),
        ));
    };
    let target = crate::gofmt::parse_uint(arg, 16).map_err(CtlError::BadArgs)?;
    let display = ctx.display()?;
    let mut leader = None;
    for ep in ctx.conn.endpoints().to_vec() {
        let mut conn = ctx.conn.single(&ep);
        let status = conn
            .call(rpc!(MaintenanceClient, status, StatusRequest {}))
            .await
            .map_err(CtlError::Failed)?;
        if status.header.unwrap_or_default().member_id == status.leader {
            leader = Some((conn, status.leader));
            break;
        }
    }
    let Some((mut conn, leader_id)) = leader else {
        let eps = ctx.conn.endpoints().join(" ");
        return Err(CtlError::BadArgs(format!(
            "no leader endpoint given at [{eps}]"
        )));
    };
    let req = MoveLeaderRequest { target_id: target };
    let r = conn
        .call(rpc!(MaintenanceClient, move_leader, req))
        .await
        .map_err(CtlError::Failed)?;
    let text = match display.format {
        super::display::Format::Json => Obj::new().header(r.header.as_ref()).end() + "\n",
        super::display::Format::Fields => {
            let mut out = String::new();
            fields::header(&mut out, r.header.as_ref());
            out
        }
        super::display::Format::Protobuf => {
            super::display::stdout_bytes(&r.encode_to_vec());
            return Ok(());
        }
        _ => format!("Leadership transferred from {leader_id:x} to {target:x}\n"),
    };
    super::display::stdout(&text);
    Ok(())
}
