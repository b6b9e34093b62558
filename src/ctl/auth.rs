//! etcdctl 3.4's `auth enable|disable`, `user ...` and `role ...` commands: their argument
//! checks and errors (exit 128 for bad arguments), password input (`name:password`,
//! `--new-user-password`, or a line from stdin with `--interactive=false`), and what they
//! print (`-w simple` as etcdctl's simple printer, `-w json` the response).

use super::cli_auth::{AuthCommand, RoleCommand, UserCommand};
use super::display::{stdout, Format};
use super::error::{CtlError, CtlResult};
use super::json::Obj;
use super::Ctx;
use crate::pb::authpb::{permission::Type as PermType, Permission, UserAddOptions};
use crate::pb::etcdserverpb::auth_client::AuthClient;
use crate::pb::etcdserverpb::{self as pb, ResponseHeader};

/// The refusal of AuthEnable that etcdctl answers by creating the root role.
const ROOT_ROLE_MISSING: &str = "etcdserver: root user does not have root role";

fn bad_args(text: &str) -> CtlError {
    CtlError::BadArgs(text.into())
}

/// The one name argument of `command` (etcdctl's error when there is not exactly one).
fn one_name<'a>(args: &'a [String], command: &str, what: &str) -> CtlResult<&'a String> {
    match args {
        [name] => Ok(name),
        _ => Err(CtlError::BadArgs(format!(
            "{command} command requires {what} name as its argument"
        ))),
    }
}

/// Runs one auth RPC (`rpc!(AuthClient, method, request)`), answering `-w json` with the
/// header (and `extra` fields) and `-w simple` with `simple`'s text.
async fn call<T, F, Fut>(ctx: &mut Ctx, rpc: F) -> CtlResult<T>
where
    F: FnMut(tonic::transport::Channel) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    ctx.conn.call(rpc).await.map_err(CtlError::Failed)
}

/// Prints a response: `simple` text, or its JSON (header plus `fields`).
fn print(
    ctx: &Ctx,
    header: Option<&ResponseHeader>,
    fields: impl FnOnce(Obj) -> Obj,
    simple: String,
) -> CtlResult {
    let display = ctx.display()?;
    match display.format {
        Format::Simple => stdout(&simple),
        Format::Json => stdout(&(fields(Obj::new().header(header)).end() + "\n")),
        _ => return Err(display.unsupported()),
    }
    Ok(())
}

/// Prints a list of names: one per line, or as the JSON field `field`.
fn print_names(
    ctx: &Ctx,
    header: Option<&ResponseHeader>,
    field: &str,
    names: &[String],
) -> CtlResult {
    let simple: String = names.iter().map(|n| format!("{n}\n")).collect();
    let json = names.iter().map(|n| super::json::string(n)).collect();
    print(ctx, header, |o| o.list_omit(field, json), simple)
}

/// A password read as etcdctl reads one: a line from stdin (etcdctl asks the terminal when
/// `interactive`; detcdctl reads the line either way, after the prompt).
fn read_password(prompt: Option<&str>) -> CtlResult<String> {
    if let Some(prompt) = prompt {
        eprint!("{prompt}");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CtlError::Failed(e.to_string()))?;
    Ok(line
        .trim_end_matches(['\n', '\r'])
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned())
}

/// `auth enable|disable`.
pub async fn auth(ctx: &mut Ctx, command: AuthCommand) -> CtlResult {
    match command {
        AuthCommand::Enable { args } => {
            if !args.is_empty() {
                return Err(bad_args(
                    "auth enable command does not accept any arguments",
                ));
            }
            // As etcdctl: a missing root role is created and granted to root, then again.
            let resp = loop {
                let enable = pb::AuthEnableRequest {};
                match call(ctx, rpc!(AuthClient, auth_enable, enable)).await {
                    Err(CtlError::Failed(e)) if e == ROOT_ROLE_MISSING => {
                        let add = pb::AuthRoleAddRequest {
                            name: "root".into(),
                        };
                        call(ctx, rpc!(AuthClient, role_add, add)).await?;
                        let grant = pb::AuthUserGrantRoleRequest {
                            user: "root".into(),
                            role: "root".into(),
                        };
                        call(ctx, rpc!(AuthClient, user_grant_role, grant)).await?;
                    }
                    other => break other?,
                }
            };
            print(
                ctx,
                resp.header.as_ref(),
                |o| o,
                "Authentication Enabled\n".into(),
            )
        }
        AuthCommand::Disable { args } => {
            if !args.is_empty() {
                return Err(bad_args(
                    "auth disable command does not accept any arguments",
                ));
            }
            let request = pb::AuthDisableRequest {};
            let resp = call(ctx, rpc!(AuthClient, auth_disable, request)).await?;
            print(
                ctx,
                resp.header.as_ref(),
                |o| o,
                "Authentication Disabled\n".into(),
            )
        }
    }
}

/// `user ...`.
pub async fn user(ctx: &mut Ctx, command: UserCommand) -> CtlResult {
    match command {
        UserCommand::Add {
            args,
            interactive,
            new_user_password,
            no_password,
        } => {
            let arg = one_name(&args, "user add", "user")?;
            let (name, password) = if no_password {
                (arg.clone(), String::new())
            } else if !new_user_password.is_empty() {
                (arg.clone(), new_user_password)
            } else {
                match arg.split_once(':') {
                    Some((name, password)) => (name.to_owned(), password.to_owned()),
                    None if !interactive => (arg.clone(), read_password(None)?),
                    None => (
                        arg.clone(),
                        read_password(Some(&format!("Password of {arg}: ")))?,
                    ),
                }
            };
            let request = pb::AuthUserAddRequest {
                name: name.clone(),
                password,
                options: Some(UserAddOptions { no_password }),
                hashed_password: String::new(),
            };
            let resp = call(ctx, rpc!(AuthClient, user_add, request)).await?;
            print(
                ctx,
                resp.header.as_ref(),
                |o| o,
                format!("User {name} created\n"),
            )
        }
        UserCommand::Delete { args } => {
            let name = one_name(&args, "user delete", "user")?;
            let request = pb::AuthUserDeleteRequest { name: name.clone() };
            let resp = call(ctx, rpc!(AuthClient, user_delete, request)).await?;
            print(
                ctx,
                resp.header.as_ref(),
                |o| o,
                format!("User {name} deleted\n"),
            )
        }
        UserCommand::Get { args, detail } => {
            let name = one_name(&args, "user get", "user")?;
            let request = pb::AuthUserGetRequest { name: name.clone() };
            let resp = call(ctx, rpc!(AuthClient, user_get, request)).await?;
            let mut simple = format!("User: {name}\n");
            if detail {
                for role in &resp.roles {
                    let request = pb::AuthRoleGetRequest { role: role.clone() };
                    let r = call(ctx, rpc!(AuthClient, role_get, request)).await?;
                    simple += &role_text(role, &r.perm);
                }
            } else {
                simple += "Roles:";
                for role in &resp.roles {
                    simple += &format!(" {role}");
                }
                simple += "\n";
            }
            let roles = resp.roles.iter().map(|r| super::json::string(r)).collect();
            print(
                ctx,
                resp.header.as_ref(),
                |o| o.list_omit("roles", roles),
                simple,
            )
        }
        UserCommand::List { args } => {
            if !args.is_empty() {
                return Err(bad_args("user list command requires no arguments"));
            }
            let resp = call(ctx, rpc!(AuthClient, user_list, pb::AuthUserListRequest {})).await?;
            print_names(ctx, resp.header.as_ref(), "users", &resp.users)
        }
        UserCommand::Passwd { args, interactive } => {
            let name = one_name(&args, "user passwd", "user")?;
            let password = match interactive {
                true => read_password(Some("Password of new user: "))?,
                false => read_password(None)?,
            };
            let request = pb::AuthUserChangePasswordRequest {
                name: name.clone(),
                password,
                hashed_password: String::new(),
            };
            let resp = call(ctx, rpc!(AuthClient, user_change_password, request)).await?;
            print(
                ctx,
                resp.header.as_ref(),
                |o| o,
                "Password updated\n".into(),
            )
        }
        UserCommand::GrantRole { args } => {
            let [user, role] = args.as_slice() else {
                return Err(bad_args(
                    "user grant command requires user name and role name as its argument",
                ));
            };
            let request = pb::AuthUserGrantRoleRequest {
                user: user.clone(),
                role: role.clone(),
            };
            let resp = call(ctx, rpc!(AuthClient, user_grant_role, request)).await?;
            let text = format!("Role {role} is granted to user {user}\n");
            print(ctx, resp.header.as_ref(), |o| o, text)
        }
        UserCommand::RevokeRole { args } => {
            let [user, role] = args.as_slice() else {
                return Err(bad_args(
                    "user revoke-role requires user name and role name as its argument",
                ));
            };
            let request = pb::AuthUserRevokeRoleRequest {
                name: user.clone(),
                role: role.clone(),
            };
            let resp = call(ctx, rpc!(AuthClient, user_revoke_role, request)).await?;
            let text = format!("Role {role} is revoked from user {user}\n");
            print(ctx, resp.header.as_ref(), |o| o, text)
        }
    }
}

/// clientv3's `GetPrefixRangeEnd`.
fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// etcdctl's simple printing of a role's permissions.
fn role_text(role: &str, perms: &[Permission]) -> String {
    let mut out = format!("Role {role}\n");
    let kinds = [("KV Read:", PermType::Read), ("KV Write:", PermType::Write)];
    for (title, kind) in kinds {
        out += title;
        out += "\n";
        for p in perms {
            let t = PermType::try_from(p.perm_type).unwrap_or(PermType::Read);
            if t != kind && t != PermType::Readwrite {
                continue;
            }
            let key = String::from_utf8_lossy(&p.key);
            if p.range_end.is_empty() {
                out += &format!("\t{key}\n");
                continue;
            }
            let end = String::from_utf8_lossy(&p.range_end);
            if p.range_end.as_ref() == b"\0" {
                out += &format!("\t[{key}, <open ended>");
            } else {
                out += &format!("\t[{key}, {end})");
            }
            if prefix_end(&p.key) == p.range_end.as_ref() {
                out += &format!(" (prefix {key})");
            }
            out += "\n";
        }
    }
    out
}

/// The range a `grant-permission` / `revoke-permission` names (etcdctl's `permRange`).
fn perm_range(key: &str, end: Option<&String>, prefix: bool, from_key: bool) -> CtlResult<Vec<u8>> {
    match (end, prefix, from_key) {
        (Some(_), true, _) | (Some(_), _, true) => Err(bad_args(
            "unexpected endkey argument with --prefix or --from-key",
        )),
        (_, true, true) => Err(bad_args(
            "--from-key and --prefix flags are mutually exclusive",
        )),
        (Some(end), false, false) => Ok(end.as_bytes().to_vec()),
        (None, true, false) if key.is_empty() => Ok(vec![0]),
        (None, true, false) => Ok(prefix_end(key.as_bytes())),
        (None, false, true) => Ok(vec![0]),
        (None, false, false) => Ok(Vec::new()),
    }
}

/// `role ...`.
pub async fn role(ctx: &mut Ctx, command: RoleCommand) -> CtlResult {
    match command {
        RoleCommand::Add { args } => {
            let name = one_name(&args, "role add", "role")?;
            let request = pb::AuthRoleAddRequest { name: name.clone() };
            let resp = call(ctx, rpc!(AuthClient, role_add, request)).await?;
            print(
                ctx,
                resp.header.as_ref(),
                |o| o,
                format!("Role {name} created\n"),
            )
        }
        RoleCommand::Delete { args } => {
            let name = one_name(&args, "role delete", "role")?;
            let request = pb::AuthRoleDeleteRequest { role: name.clone() };
            let resp = call(ctx, rpc!(AuthClient, role_delete, request)).await?;
            print(
                ctx,
                resp.header.as_ref(),
                |o| o,
                format!("Role {name} deleted\n"),
            )
        }
        RoleCommand::Get { args } => {
            let name = one_name(&args, "role get", "role")?;
            let request = pb::AuthRoleGetRequest { role: name.clone() };
            let resp = call(ctx, rpc!(AuthClient, role_get, request)).await?;
            let perms = resp.perm.iter().map(perm_json).collect();
            let text = role_text(name, &resp.perm);
            print(
                ctx,
                resp.header.as_ref(),
                |o| o.list_omit("perm", perms),
                text,
            )
        }
        RoleCommand::List { args } => {
            if !args.is_empty() {
                return Err(bad_args("role list command requires no arguments"));
            }
            let resp = call(ctx, rpc!(AuthClient, role_list, pb::AuthRoleListRequest {})).await?;
            print_names(ctx, resp.header.as_ref(), "roles", &resp.roles)
        }
        RoleCommand::GrantPermission {
            args,
            prefix,
            from_key,
        } => {
            let (role, kind, key, end) = match args.as_slice() {
                [r, t, k] => (r, t, k, None),
                [r, t, k, e] => (r, t, k, Some(e)),
                _ => {
                    return Err(bad_args(
                        "role grant command requires role name, permission type, and key \
                         [endkey] as its argument",
                    ))
                }
            };
            let perm_type = match kind.to_ascii_lowercase().as_str() {
                "read" => PermType::Read,
                "write" => PermType::Write,
                "readwrite" => PermType::Readwrite,
                _ => return Err(bad_args(&format!("invalid permission type: {kind}"))),
            };
            let range_end = perm_range(key, end, prefix, from_key)?;
            let request = pb::AuthRoleGrantPermissionRequest {
                name: role.clone(),
                perm: Some(Permission {
                    perm_type: perm_type as i32,
                    key: key.as_bytes().to_vec().into(),
                    range_end: range_end.into(),
                }),
            };
            let resp = call(ctx, rpc!(AuthClient, role_grant_permission, request)).await?;
            print(
                ctx,
                resp.header.as_ref(),
                |o| o,
                format!("Role {role} updated\n"),
            )
        }
        RoleCommand::RevokePermission {
            args,
            prefix,
            from_key,
        } => {
            let (role, key, end) =
                match args.as_slice() {
                    [r, k] => (r, k, None),
                    [r, k, e] => (r, k, Some(e)),
                    _ => return Err(bad_args(
                        "role revoke-permission command requires role name and key [endkey] as \
                         its argument",
                    )),
                };
            let range_end = perm_range(key, end, prefix, from_key)?;
            let text = match range_end.is_empty() {
                true => format!("Permission of key {key} is revoked from role {role}\n"),
                false => format!(
                    "Permission of range [{key}, {}) is revoked from role {role}\n",
                    String::from_utf8_lossy(&range_end)
                ),
            };
            let request = pb::AuthRoleRevokePermissionRequest {
                role: role.clone(),
                key: key.as_bytes().to_vec().into(),
                range_end: range_end.into(),
            };
            let resp = call(ctx, rpc!(AuthClient, role_revoke_permission, request)).await?;
            print(ctx, resp.header.as_ref(), |o| o, text)
        }
    }
}

/// An `authpb.Permission` as Go's JSON encoder writes it.
fn perm_json(p: &Permission) -> String {
    Obj::new()
        .num_omit("permType", p.perm_type)
        .bytes_omit("key", &p.key)
        .bytes_omit("range_end", &p.range_end)
        .end()
}
