//! The etcd services detcd declares but does not serve yet (Auth):
//! every RPC answers `Unimplemented` with the RPC's name, so clients get a clear error instead
//! of a connection failure. Each service moves out of here when it is built.

use super::error::RequestError;
use crate::pb::etcdserverpb as pb;
use tonic::{Request, Response, Status};

/// Placeholder for services that are not built yet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unserved;

/// Implements `$service` for [`Unserved`], with unary RPCs `$rpc(Req) -> Resp` answering
/// Unimplemented.
macro_rules! unserved {
    ($service:path { $($rpc:ident($req:ty) -> $resp:ty;)* }) => {
        #[tonic::async_trait]
        impl $service for Unserved {
            $(
                async fn $rpc(&self, _: Request<$req>) -> Result<Response<$resp>, Status> {
                    Err(RequestError::Unimplemented(stringify!($rpc)).into())
                }
            )*
        }
    };
}

unserved!(pb::auth_server::Auth {
    auth_enable(pb::AuthEnableRequest) -> pb::AuthEnableResponse;
    auth_disable(pb::AuthDisableRequest) -> pb::AuthDisableResponse;
    auth_status(pb::AuthStatusRequest) -> pb::AuthStatusResponse;
    authenticate(pb::AuthenticateRequest) -> pb::AuthenticateResponse;
    user_add(pb::AuthUserAddRequest) -> pb::AuthUserAddResponse;
    user_get(pb::AuthUserGetRequest) -> pb::AuthUserGetResponse;
    user_list(pb::AuthUserListRequest) -> pb::AuthUserListResponse;
    user_delete(pb::AuthUserDeleteRequest) -> pb::AuthUserDeleteResponse;
    user_change_password(pb::AuthUserChangePasswordRequest) -> pb::AuthUserChangePasswordResponse;
    user_grant_role(pb::AuthUserGrantRoleRequest) -> pb::AuthUserGrantRoleResponse;
    user_revoke_role(pb::AuthUserRevokeRoleRequest) -> pb::AuthUserRevokeRoleResponse;
    role_add(pb::AuthRoleAddRequest) -> pb::AuthRoleAddResponse;
    role_get(pb::AuthRoleGetRequest) -> pb::AuthRoleGetResponse;
    role_list(pb::AuthRoleListRequest) -> pb::AuthRoleListResponse;
    role_delete(pb::AuthRoleDeleteRequest) -> pb::AuthRoleDeleteResponse;
    role_grant_permission(pb::AuthRoleGrantPermissionRequest) -> pb::AuthRoleGrantPermissionResponse;
    role_revoke_permission(pb::AuthRoleRevokePermissionRequest) -> pb::AuthRoleRevokePermissionResponse;
});
