//! Who a client request comes from: the user its `token` metadata names (a token from
//! Authenticate, as clientv3 sends it), or else, with `--client-cert-auth`, the common name of
//! the verified client certificate, as etcd does; a request with neither has no user.
//!
//! While auth is disabled nobody is identified (tokens are ignored, one atomic load), so the
//! fast path costs nothing; a request then carries no user, and if auth is enabled before it
//! is applied, the apply refuses it with `user name is empty`, as etcd's does.

use crate::auth::{AuthError, AuthInfo, AuthStore};
use crate::server::core::ServerCore;

/// The metadata key clients put their token under.
pub const TOKEN_METADATA: &str = "token";

/// What a request presented to prove who sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// Nothing.
    None,
    /// A token from Authenticate.
    Token(String),
    /// A verified client certificate with this common name (`--client-cert-auth`).
    Certificate(String),
}

impl ServerCore {
    /// Identifies the sender of `request` (an unknown or expired token is refused).
    pub fn caller<T>(&self, request: &tonic::Request<T>) -> Result<AuthInfo, AuthError> {
        if !self.state.auth.enabled() {
            return Ok(AuthInfo::default());
        }
        self.identify(&self.credentials(request))
    }

    /// What `request` presented (a stream's requests are identified again from these).
    pub fn credentials<T>(&self, request: &tonic::Request<T>) -> Credentials {
        if let Some(token) = request.metadata().get(TOKEN_METADATA) {
            return Credentials::Token(token.to_str().unwrap_or_default().to_owned());
        }
        if self.client_cert_auth {
            if let Some(user) = certificate_user(request) {
                return Credentials::Certificate(user);
            }
        }
        Credentials::None
    }

    /// Who `credentials` name now (nobody while auth is disabled).
    pub fn identify(&self, credentials: &Credentials) -> Result<AuthInfo, AuthError> {
        let auth = &self.state.auth;
        if !auth.enabled() {
            return Ok(AuthInfo::default());
        }
        match credentials {
            Credentials::None => Ok(AuthInfo::default()),
            Credentials::Token(token) => auth.identify(token).ok_or(AuthError::InvalidAuthToken),
            Credentials::Certificate(user) => Ok(AuthInfo {
                user: user.clone(),
                revision: auth.store().revision,
            }),
        }
    }

    /// Identifies the sender of `request` and refuses it unless it may make admin calls
    /// (the `root` role, while auth is enabled).
    pub fn admin<T>(&self, request: &tonic::Request<T>) -> Result<AuthInfo, AuthError> {
        let who = self.caller(request)?;
        self.check_read(&who, AuthStore::check_admin)?;
        Ok(who)
    }

    /// Runs the read check `check` for `who` while auth is enabled (a read is checked on the
    /// member that serves it, after its ReadIndex).
    pub fn check_read(
        &self,
        who: &AuthInfo,
        check: impl FnOnce(&AuthStore, &AuthInfo) -> Result<(), AuthError>,
    ) -> Result<(), AuthError> {
        if !self.state.auth.enabled() {
            return Ok(());
        }
        check(&self.state.auth.store(), who)
    }

    /// Refuses the answer to a read checked at an auth revision that has since moved (the
    /// permission may have been revoked while it read), as etcd does.
    pub fn recheck_read(&self, who: &AuthInfo) -> Result<(), AuthError> {
        if who.revision != 0 && self.state.auth.store().revision != who.revision {
            return Err(AuthError::AuthOldRevision);
        }
        Ok(())
    }
}

/// The common name of the client certificate the TLS handshake verified, if any.
#[cfg(not(madsim))]
fn certificate_user<T>(request: &tonic::Request<T>) -> Option<String> {
    let chain = request.peer_certs()?;
    let leaf = chain.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// Simulated connections carry no certificates.
#[cfg(madsim)]
fn certificate_user<T>(_: &tonic::Request<T>) -> Option<String> {
    None
}
