//! The auth phase (the last of a run, once the watchers are checked): on the healed cluster an
//! operator sets up users and roles through the real Auth service and enables auth; a user
//! then works through every member with a token while faults are injected and the operator
//! revokes one of its permissions; once healed, the user works a little more, and auth is
//! disabled again.
//!
//! What it checks ([`AuthLog::violations`]):
//! * a read of a key the user may not read never succeeds;
//! * a txn whose *compare* reads such a key never succeeds, even when its ops are permitted
//!   (a compare reveals the value: etcd checks it as a read);
//! * a write to a key whose permission was revoked never succeeds when it was sent after the
//!   revocation was acknowledged (whichever member it goes to, with the old token);
//! * the permitted writes do succeed (the check is not vacuous).

use crate::cluster::member_channel;
use detcd::pb::authpb::{permission::Type as PermType, Permission};
use detcd::pb::etcdserverpb::auth_client::AuthClient;
use detcd::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::request_op::Request as Op;
use detcd::pb::etcdserverpb::{self as pb, Compare, PutRequest, RangeRequest, RequestOp};
use madsim::rand::prelude::*;
use std::time::Duration;

/// A key the user may never read.
const SECRET: &str = "auth/secret";
/// A key the user may write until the operator revokes it.
const REVOKED: &str = "auth/tmp";
/// The prefix the user may always read and write.
const APP: &str = "auth/app/";

/// What the phase saw.
#[derive(Debug, Default)]
pub struct AuthLog {
    /// Every property violation, described.
    pub violations: Vec<String>,
    /// Permitted writes that succeeded.
    pub permitted_ok: usize,
    /// Refused operations (all kinds).
    pub refused: usize,
    /// Why permitted writes were refused (timeouts, elections, old auth revisions).
    pub permitted_refusals: Vec<String>,
}

/// A retryable call: a fresh client and a copy of the request per attempt.
macro_rules! call {
    ($client:ident, $method:ident, $req:expr) => {
        |ch| {
            let req = $req.clone();
            async move { $client::new(ch).$method(req).await }
        }
    };
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = token.parse() {
        request.metadata_mut().insert("token", value);
    }
    request
}

/// Calls `call` on member after member until one answers, for at most `patience`.
async fn retry<T, F, Fut>(members: usize, patience: Duration, mut call: F) -> Result<T, String>
where
    F: FnMut(tonic::transport::Channel) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut i = 0;
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(2), call(member_channel(i)));
        match attempt.await {
            Ok(Ok(resp)) => return Ok(resp.into_inner()),
            Ok(Err(s)) if s.code() != tonic::Code::Unavailable => {
                return Err(s.message().to_string())
            }
            _ if tokio::time::Instant::now() >= deadline => return Err("no member answered".into()),
            _ => {}
        }
        i = (i + 1) % members;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn permission(kind: PermType, key: &str, range_end: &str) -> Option<Permission> {
    Some(Permission {
        perm_type: kind as i32,
        key: key.as_bytes().to_vec().into(),
        range_end: range_end.as_bytes().to_vec().into(),
    })
}

/// Sets up root, user `u` (role `app`: read-write on [`APP`] and on [`REVOKED`]) and the
/// secret, then enables auth.
async fn set_up(members: usize) -> Result<(), String> {
    let patience = Duration::from_secs(20);
    for name in ["root", "u"] {
        let add = pb::AuthUserAddRequest {
            name: name.into(),
            password: format!("{name}-pw"),
            ..Default::default()
        };
        retry(members, patience, call!(AuthClient, user_add, add)).await?;
    }
    for role in ["root", "app"] {
        let add = pb::AuthRoleAddRequest { name: role.into() };
        retry(members, patience, call!(AuthClient, role_add, add)).await?;
    }
    let end = format!("{}0", APP.trim_end_matches('/'));
    for perm in [
        permission(PermType::Readwrite, APP, &end),
        permission(PermType::Readwrite, REVOKED, ""),
    ] {
        let grant = pb::AuthRoleGrantPermissionRequest {
            name: "app".into(),
            perm,
        };
        retry(
            members,
            patience,
            call!(AuthClient, role_grant_permission, grant),
        )
        .await?;
    }
    for (user, role) in [("root", "root"), ("u", "app")] {
        let grant = pb::AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        };
        retry(members, patience, call!(AuthClient, user_grant_role, grant)).await?;
    }
    let secret = PutRequest {
        key: SECRET.as_bytes().to_vec().into(),
        value: b"v".to_vec().into(),
        ..Default::default()
    };
    retry(members, patience, call!(KvClient, put, secret)).await?;
    retry(
        members,
        patience,
        call!(AuthClient, auth_enable, pb::AuthEnableRequest {}),
    )
    .await?;
    Ok(())
}

async fn token(members: usize, user: &str) -> Result<String, String> {
    let request = pb::AuthenticateRequest {
        name: user.into(),
        password: format!("{user}-pw"),
    };
    let resp = retry(
        members,
        Duration::from_secs(20),
        call!(AuthClient, authenticate, request),
    )
    .await?;
    Ok(resp.token)
}

fn put(key: &str) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec().into(),
        value: b"x".to_vec().into(),
        ..Default::default()
    }
}

/// One operation of the user's, by kind: 0 a permitted put, 1 a read of the secret, 2 a txn
/// comparing the secret, 3 a put to the key that gets revoked.
async fn user_op(kind: u32, member: usize, token: &str) -> Result<(), tonic::Status> {
    let mut kv = KvClient::new(member_channel(member));
    let call = async {
        match kind {
            0 => kv
                .put(with_token(put(&format!("{APP}k")), token))
                .await
                .map(|_| ()),
            1 => {
                let get = RangeRequest {
                    key: SECRET.as_bytes().to_vec().into(),
                    ..Default::default()
                };
                kv.range(with_token(get, token)).await.map(|_| ())
            }
            2 => {
                let txn = pb::TxnRequest {
                    compare: vec![Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Value as i32,
                        key: SECRET.as_bytes().to_vec().into(),
                        target_union: Some(TargetUnion::Value(b"v".to_vec().into())),
                        ..Default::default()
                    }],
                    success: vec![RequestOp {
                        request: Some(Op::RequestPut(put(&format!("{APP}t")))),
                    }],
                    failure: vec![],
                };
                kv.txn(with_token(txn, token)).await.map(|_| ())
            }
            _ => kv.put(with_token(put(REVOKED), token)).await.map(|_| ()),
        }
    };
    match tokio::time::timeout(Duration::from_secs(3), call).await {
        Ok(r) => r,
        Err(_) => Err(tonic::Status::deadline_exceeded("timed out")),
    }
}

/// The phase in progress: the user's and root's tokens, and what was seen so far.
pub struct AuthSession {
    members: usize,
    /// The members the user's operations go to (all, until `finish` names the serving ones).
    targets: Vec<usize>,
    user: String,
    root: String,
    revoked: bool,
    ops: usize,
    /// What the phase saw.
    pub log: AuthLog,
}

/// Sets auth up and enables it on a healthy cluster of `members`; `Err` is a violation (the
/// cluster could not do it).
pub async fn prepare(members: usize) -> Result<AuthSession, String> {
    set_up(members)
        .await
        .map_err(|e| format!("setting up auth failed: {e}"))?;
    let user = token(members, "u")
        .await
        .map_err(|e| format!("authenticating failed: {e}"))?;
    let root = token(members, "root")
        .await
        .map_err(|e| format!("authenticating failed: {e}"))?;
    Ok(AuthSession {
        members,
        targets: (0..members).collect(),
        user,
        root,
        revoked: false,
        ops: 0,
        log: AuthLog::default(),
    })
}

/// Whether a refusal means the member no longer knows the token (it restarted).
fn token_lost(status: &tonic::Status) -> bool {
    status.message() == "etcdserver: invalid auth token"
}

impl AuthSession {
    /// Revokes the user's permission on [`REVOKED`] as root; from its acknowledgement on, a
    /// write there must fail. A retry that finds it revoked already counts as acknowledged.
    async fn revoke(&mut self) {
        let revoke = pb::AuthRoleRevokePermissionRequest {
            role: "app".into(),
            key: REVOKED.as_bytes().to_vec().into(),
            range_end: Default::default(),
        };
        let root = self.root.clone();
        let call = |ch| {
            let req = with_token(revoke.clone(), &root);
            async move { AuthClient::new(ch).role_revoke_permission(req).await }
        };
        let acked = retry(self.members, Duration::from_secs(20), call).await;
        self.revoked = match acked {
            Ok(_) => true,
            Err(e) => e == "etcdserver: permission is not granted to the role",
        };
    }

    /// Runs `count` of the user's operations on random members (the 20th of the phase
    /// revokes first), authenticating again when a restarted member lost the token.
    pub async fn work(&mut self, count: usize) {
        let mut rng = madsim::rand::thread_rng();
        for _ in 0..count {
            self.ops += 1;
            if self.ops == 20 {
                self.revoke().await;
            }
            let kind = rng.gen_range(0..4u32);
            let member = self.targets[rng.gen_range(0..self.targets.len())];
            let result = user_op(kind, member, &self.user).await;
            let log = &mut self.log;
            match (kind, result) {
                (0, Ok(())) => log.permitted_ok += 1,
                (1, Ok(())) => log.violations.push(format!(
                    "member {member} served a read of {SECRET} without permission"
                )),
                (2, Ok(())) => log.violations.push(format!(
                    "member {member} ran a txn comparing {SECRET} without read permission"
                )),
                (3, Ok(())) if self.revoked => log.violations.push(format!(
                    "member {member} wrote {REVOKED} after its permission was revoked"
                )),
                (_, Ok(())) => {}
                (_, Err(e)) => {
                    log.refused += 1;
                    if kind == 0 {
                        log.permitted_refusals.push(e.message().to_string());
                    }
                    if token_lost(&e) {
                        if let Ok(t) = token(self.members, "u").await {
                            self.user = t;
                        }
                    }
                }
            }
        }
    }

    /// Ends the phase on a healed cluster whose `serving` members (those not refused at start,
    /// e.g. after a flipped bit) take the last operations: permitted writes must have
    /// succeeded, and auth is disabled again.
    pub async fn finish(mut self, serving: Vec<usize>) -> AuthLog {
        if !serving.is_empty() {
            self.targets = serving;
        }
        self.work(10).await;
        if self.log.permitted_ok == 0 {
            self.log
                .violations
                .push("no permitted write succeeded: the phase checked nothing".into());
        }
        let root = match token(self.members, "root").await {
            Ok(t) => t,
            Err(e) => {
                self.log
                    .violations
                    .push(format!("authenticating root failed: {e}"));
                return self.log;
            }
        };
        let disable = |ch| {
            let req = with_token(pb::AuthDisableRequest {}, &root);
            async move { AuthClient::new(ch).auth_disable(req).await }
        };
        if let Err(e) = retry(self.members, Duration::from_secs(20), disable).await {
            self.log
                .violations
                .push(format!("disabling auth failed: {e}"));
        }
        self.log
    }
}
