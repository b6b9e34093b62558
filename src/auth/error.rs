//! The auth layer's errors, with etcd's texts (`etcdserver: ...`) and the gRPC codes etcd
//! answers them with (`rpctypes` in etcd's API).

/// A refused auth operation or an unauthorised request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Auth cannot be enabled without a `root` user.
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    /// Auth cannot be enabled while `root` lacks the `root` role.
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    /// UserAdd of an existing name.
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    /// An empty user name.
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    /// No such user.
    #[error("etcdserver: user name not found")]
    UserNotFound,
    /// RoleAdd of an existing name.
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    /// No such role.
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    /// An empty role name.
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// Wrong user name or password.
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// The user may not do what the request asks.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    /// UserRevokeRole of a role the user does not have.
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    /// RoleRevokePermission of a permission the role does not have.
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    /// Authenticate (or a token) while auth is disabled.
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// A token that is unknown or expired.
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    /// A change that would lock everyone out (deleting `root`, or its `root` role, while auth
    /// is enabled).
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// A request checked against an auth revision older than the store's.
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// RoleGrantPermission without a permission.
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    /// A password given for a user added with `--no-password` (etcd has no gRPC error for
    /// it: it reaches clients as `Unknown` with the auth package's text).
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
}

impl AuthError {
    /// The gRPC code etcd answers this error with.
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            AuthError::UserEmpty
            | AuthError::RoleEmpty
            | AuthError::AuthFailed
            | AuthError::AuthOldRevision
            | AuthError::PermissionNotGiven
            | AuthError::InvalidAuthMgmt => Code::InvalidArgument,
            AuthError::PermissionDenied => Code::PermissionDenied,
            AuthError::InvalidAuthToken => Code::Unauthenticated,
            AuthError::NoPasswordUser => Code::Unknown,
            _ => Code::FailedPrecondition,
        }
    }
}

impl AuthError {
    /// The status etcd's Maintenance service answers a refused admin call with: the auth
    /// package's own error, which no gRPC error stands for there (`Unknown`, `auth: ...`).
    pub fn unconverted(&self) -> tonic::Status {
        let text = self.to_string();
        let text = match text.strip_prefix("etcdserver: ") {
            Some(rest) => format!("auth: {rest}"),
            None => text,
        };
        tonic::Status::unknown(text)
    }
}

impl From<AuthError> for tonic::Status {
    fn from(e: AuthError) -> tonic::Status {
        tonic::Status::new(e.code(), e.to_string())
    }
}
