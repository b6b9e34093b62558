//! Auth: the `etcdserverpb.Auth` service, who a request comes from ([`identity`]), which
//! permissions a request needs ([`check`]), auth at apply ([`apply`]), and the auth part of
//! the replicated state ([`state`]).
//!
//! Changes go through raft (passwords hashed here, on the member the client called, before
//! the proposal, once the caller passed the admin check, which apply makes again; see
//! [`apply`]); reads of users and roles are linearizable and need the `root`
//! role, except a user reading itself or a role it has (etcd 3.4's rules). Authenticate checks
//! the password here, then replicates the token it chose, so every member accepts it.

pub mod apply;
pub mod check;
pub mod identity;
pub mod jwt;
pub mod state;

use self::apply::AuthRequest;
use super::core::ServerCore;
use super::error::RequestError;
use crate::auth::{AuthChange, AuthError, AuthInfo, PermKind, Permission};
use crate::pb::authpb;
use crate::pb::detcdpb::internal_request::Request as Internal;
use crate::pb::etcdserverpb::{self as pb, auth_server::Auth, ResponseHeader};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Auth service.
pub struct AuthService {
    core: Arc<ServerCore>,
}

impl AuthService {
    /// Serves Auth on `core`.
    pub fn new(core: Arc<ServerCore>) -> Self {
        AuthService { core }
    }

    /// Replicates `change` sent by `who`; the header of the answer.
    async fn change(&self, who: &AuthInfo, change: AuthChange) -> Result<ResponseHeader, Status> {
        let request = Internal::Auth(AuthRequest::Change(change).encode().into());
        self.core.propose(who, request).await?;
        Ok(self.header())
    }

    fn header(&self) -> ResponseHeader {
        let revision = self.core.state.store().current_revision();
        self.core.header(revision)
    }

    /// bcrypt of `password` at the member's cost, off the async threads.
    async fn hash(&self, password: String) -> Result<String, Status> {
        let cost = self.core.bcrypt_cost;
        let hashed = blocking(move || crate::auth::store::hash_password(&password, cost)).await;
        hashed.map_err(|e| RequestError::Internal(format!("hashing the password: {e}")).into())
    }
}

/// Runs `work` where it may block: a blocking thread in production, inline in simulation
/// (madsim runs one thread, and inline work stays deterministic).
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    #[cfg(not(madsim))]
    {
        tokio::task::spawn_blocking(work)
            .await
            .expect("a password hash does not panic")
    }
    #[cfg(madsim)]
    {
        work()
    }
}

/// A token nobody can guess: 16 random letters, then `.` and a counter (etcd's shape).
fn new_token(counter: u64) -> String {
    use madsim::rand::Rng;
    let mut rng = madsim::rand::thread_rng();
    let letters: String = (0..16)
        .map(|_| rng.gen_range(b'a'..=b'z') as char)
        .collect();
    format!("{letters}.{counter}")
}

/// A permission from the wire.
pub fn permission_of(p: &authpb::Permission) -> Permission {
    let kind = match authpb::permission::Type::try_from(p.perm_type) {
        Ok(authpb::permission::Type::Write) => PermKind::Write,
        Ok(authpb::permission::Type::Readwrite) => PermKind::ReadWrite,
        _ => PermKind::Read,
    };
    Permission {
        kind,
        key: p.key.to_vec(),
        range_end: p.range_end.to_vec(),
    }
}

/// A permission as the wire carries it.
pub fn permission_to_pb(p: &Permission) -> authpb::Permission {
    let kind = match p.kind {
        PermKind::Read => authpb::permission::Type::Read,
        PermKind::Write => authpb::permission::Type::Write,
        PermKind::ReadWrite => authpb::permission::Type::Readwrite,
    };
    authpb::Permission {
        perm_type: kind as i32,
        key: p.key.clone().into(),
        range_end: p.range_end.clone().into(),
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        request: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        let who = self.core.admin(&request)?;
        let header = Some(self.change(&who, AuthChange::Enable).await?);
        Ok(Response::new(pb::AuthEnableResponse { header }))
    }

    async fn auth_disable(
        &self,
        request: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        let who = self.core.admin(&request)?;
        let header = Some(self.change(&who, AuthChange::Disable).await?);
        Ok(Response::new(pb::AuthDisableResponse { header }))
    }

    async fn auth_status(
        &self,
        _: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        self.core.linearizable_read().await?;
        let (enabled, auth_revision) = {
            let auth = self.core.state.auth.store();
            (auth.enabled, auth.revision)
        };
        Ok(Response::new(pb::AuthStatusResponse {
            header: Some(self.header()),
            enabled,
            auth_revision,
        }))
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let r = request.into_inner();
        self.core.linearizable_read().await?;
        // A password change applied between the check and the token's apply makes the
        // apply refuse the token (the revision moved): check again then.
        loop {
            let (hash, checked_at) = {
                let auth = self.core.state.auth.store();
                if !auth.enabled {
                    return Err(AuthError::AuthNotEnabled.into());
                }
                let user = auth.users.get(&r.name).ok_or(AuthError::AuthFailed)?;
                let hash = user
                    .password_hash
                    .clone()
                    .ok_or(AuthError::NoPasswordUser)?;
                (hash, auth.revision)
            };
            let password = r.password.clone();
            let matches = blocking(move || bcrypt::verify(password, &hash)).await;
            if !matches!(matches, Ok(true)) {
                return Err(AuthError::AuthFailed.into());
            }
            let jwt = self.core.state.auth.jwt();
            let token = match jwt {
                Some(_) => String::new(),
                None => new_token(self.core.state.applied_index()),
            };
            let authenticate = AuthRequest::Authenticate {
                user: r.name.clone(),
                token: token.clone(),
                checked_at,
            };
            let request = Internal::Auth(authenticate.encode().into());
            match self.core.propose(&AuthInfo::default(), request).await {
                Ok(_) => {
                    let token = match jwt {
                        Some(keys) => keys
                            .issue(&r.name, checked_at)
                            .map_err(|e| RequestError::Internal(e.to_string()))?,
                        None => token,
                    };
                    return Ok(Response::new(pb::AuthenticateResponse {
                        header: Some(self.header()),
                        token,
                    }));
                }
                Err(RequestError::Auth(AuthError::AuthOldRevision)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn user_add(
        &self,
        request: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        let who = self.core.admin(&request)?;
        let r = request.into_inner();
        if r.name.is_empty() {
            return Err(AuthError::UserEmpty.into());
        }
        let no_password = r.options.is_some_and(|o| o.no_password);
        let password_hash = match (no_password, r.hashed_password.is_empty()) {
            (true, _) => None,
            (false, false) => Some(r.hashed_password),
            (false, true) => Some(self.hash(r.password).await?),
        };
        let change = AuthChange::UserAdd {
            name: r.name,
            password_hash,
        };
        let header = Some(self.change(&who, change).await?);
        Ok(Response::new(pb::AuthUserAddResponse { header }))
    }

    async fn user_get(
        &self,
        request: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        self.core.linearizable_read().await?;
        let roles = {
            let auth = self.core.state.auth.store();
            if let Err(e) = auth.check_admin(&who) {
                if who.user != r.name {
                    return Err(e.into());
                }
            }
            let user = auth.users.get(&r.name).ok_or(AuthError::UserNotFound)?;
            user.roles.iter().cloned().collect()
        };
        Ok(Response::new(pb::AuthUserGetResponse {
            header: Some(self.header()),
            roles,
        }))
    }

    async fn user_list(
        &self,
        request: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        let who = self.core.caller(&request)?;
        self.core.linearizable_read().await?;
        let users = {
            let auth = self.core.state.auth.store();
            auth.check_admin(&who)?;
            auth.users.keys().cloned().collect()
        };
        Ok(Response::new(pb::AuthUserListResponse {
            header: Some(self.header()),
            users,
        }))
    }

    async fn user_delete(
        &self,
        request: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        let who = self.core.caller(&request)?;
        let change = AuthChange::UserDelete(request.into_inner().name);
        let header = Some(self.change(&who, change).await?);
        Ok(Response::new(pb::AuthUserDeleteResponse { header }))
    }

    async fn user_change_password(
        &self,
        request: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        let who = self.core.admin(&request)?;
        let r = request.into_inner();
        let password_hash = match r.hashed_password.is_empty() {
            false => r.hashed_password,
            true => self.hash(r.password).await?,
        };
        let change = AuthChange::UserChangePassword {
            name: r.name,
            password_hash,
        };
        let header = Some(self.change(&who, change).await?);
        Ok(Response::new(pb::AuthUserChangePasswordResponse { header }))
    }

    async fn user_grant_role(
        &self,
        request: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        let change = AuthChange::UserGrantRole {
            user: r.user,
            role: r.role,
        };
        let header = Some(self.change(&who, change).await?);
        Ok(Response::new(pb::AuthUserGrantRoleResponse { header }))
    }

    async fn user_revoke_role(
        &self,
        request: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        let change = AuthChange::UserRevokeRole {
            user: r.name,
            role: r.role,
        };
        let header = Some(self.change(&who, change).await?);
        Ok(Response::new(pb::AuthUserRevokeRoleResponse { header }))
    }

    async fn role_add(
        &self,
        request: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        let who = self.core.caller(&request)?;
        let change = AuthChange::RoleAdd(request.into_inner().name);
        let header = Some(self.change(&who, change).await?);
        Ok(Response::new(pb::AuthRoleAddResponse { header }))
    }

    async fn role_get(
        &self,
        request: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        self.core.linearizable_read().await?;
        let perm = {
            let auth = self.core.state.auth.store();
            if let Err(e) = auth.check_admin(&who) {
                let has_role = auth
                    .users
                    .get(&who.user)
                    .is_some_and(|u| u.roles.contains(&r.role));
                if !has_role {
                    return Err(e.into());
                }
            }
            let role = auth.roles.get(&r.role).ok_or(AuthError::RoleNotFound)?;
            role.permissions.iter().map(permission_to_pb).collect()
        };
        Ok(Response::new(pb::AuthRoleGetResponse {
            header: Some(self.header()),
            perm,
        }))
    }

    async fn role_list(
        &self,
        request: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        let who = self.core.caller(&request)?;
        self.core.linearizable_read().await?;
        let roles = {
            let auth = self.core.state.auth.store();
            auth.check_admin(&who)?;
            auth.roles.keys().cloned().collect()
        };
        Ok(Response::new(pb::AuthRoleListResponse {
            header: Some(self.header()),
            roles,
        }))
    }

    async fn role_delete(
        &self,
        request: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        let who = self.core.caller(&request)?;
        let change = AuthChange::RoleDelete(request.into_inner().role);
        let header = Some(self.change(&who, change).await?);
        Ok(Response::new(pb::AuthRoleDeleteResponse { header }))
    }

    async fn role_grant_permission(
        &self,
        request: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        let permission = r.perm.as_ref().ok_or(AuthError::PermissionNotGiven)?;
        let change = AuthChange::RoleGrantPermission {
            role: r.name,
            permission: permission_of(permission),
        };
        let header = Some(self.change(&who, change).await?);
        Ok(Response::new(pb::AuthRoleGrantPermissionResponse {
            header,
        }))
    }

    async fn role_revoke_permission(
        &self,
        request: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        let who = self.core.caller(&request)?;
        let r = request.into_inner();
        let change = AuthChange::RoleRevokePermission {
            role: r.role,
            key: r.key.to_vec(),
            range_end: r.range_end.to_vec(),
        };
        let header = Some(self.change(&who, change).await?);
        Ok(Response::new(pb::AuthRoleRevokePermissionResponse {
            header,
        }))
    }
}
