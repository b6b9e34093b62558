//! Auth at apply: the auth requests carried in raft entries (changes to users and roles, and
//! Authenticate, which hands a token out on every member), and the permission check every
//! client write gets at its point in the log.
//!
//! Invariants: passwords arrive hashed and tokens chosen (bcrypt salts and tokens are random,
//! so the proposer picks them and every member applies the same); every auth change needs the
//! `root` role while auth is enabled (etcd's rule, AuthEnable included); a change is persisted
//! in the batch of its entry; deleting a user or changing its password, and disabling auth,
//! forget the tokens it invalidates. A client write whose proposer identified its caller at an
//! older auth revision than the one at its point in the log fails with `revision of auth store
//! is old` (clients authenticate again and retry); server-side requests carry no header and
//! are not checked.

use super::check;
use crate::auth::{AuthChange, AuthError, AuthInfo};
use crate::pb::detcdpb::internal_request::Request;
use crate::pb::detcdpb::AuthHeader;
use crate::server::apply::ReplicatedState;
use crate::server::backend_state;
use crate::server::error::RequestError;
use crate::storage::Batch;
use serde::{Deserialize, Serialize};

/// An auth request as a raft entry carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthRequest {
    /// A change to users, roles or the switch.
    Change(AuthChange),
    /// Hands `token` to `user`, if the auth revision is still the one its password was
    /// checked at.
    Authenticate {
        /// The user.
        user: String,
        /// The simple token the proposer chose (empty with JWT tokens).
        token: String,
        /// The auth revision at which the proposer checked the password.
        checked_at: u64,
    },
}

impl AuthRequest {
    /// The entry's payload.
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard())
            .expect("an auth request always encodes")
    }

    fn decode(bytes: &[u8]) -> Result<AuthRequest, RequestError> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map(|(r, _)| r)
            .map_err(|e| RequestError::Internal(format!("undecodable auth request: {e}")))
    }
}

/// The caller a header names.
pub fn caller_of(header: &AuthHeader) -> AuthInfo {
    AuthInfo {
        user: header.username.clone(),
        revision: header.auth_revision,
    }
}

/// The header a client request by `who` carries.
pub fn header_of(who: &AuthInfo) -> AuthHeader {
    AuthHeader {
        username: who.user.clone(),
        auth_revision: who.revision,
    }
}

/// Applies the auth request `bytes` sent by `who` (None: the server's own), recording a
/// change in `batch`.
pub fn apply(
    state: &ReplicatedState,
    batch: &mut Batch,
    who: Option<&AuthInfo>,
    bytes: &[u8],
) -> Result<(), RequestError> {
    match AuthRequest::decode(bytes)? {
        AuthRequest::Change(change) => {
            state.auth.update(|auth| -> Result<(), AuthError> {
                if let Some(who) = who {
                    auth.check_admin(who)?;
                }
                auth.apply(&change)?;
                backend_state::put_auth(batch, auth);
                Ok(())
            })?;
            match &change {
                AuthChange::UserDelete(user)
                | AuthChange::UserChangePassword { name: user, .. } => {
                    state.auth.tokens().forget_user(user)
                }
                AuthChange::Disable => state.auth.tokens().clear(),
                _ => {}
            }
        }
        AuthRequest::Authenticate {
            user,
            token,
            checked_at,
        } => {
            {
                let auth = state.auth.store();
                if !auth.enabled {
                    return Err(AuthError::AuthNotEnabled.into());
                }
                if auth.revision != checked_at {
                    return Err(AuthError::AuthOldRevision.into());
                }
                if !auth.users.contains_key(&user) {
                    return Err(AuthError::AuthFailed.into());
                }
            }
            // A JWT is signed by the proposer once this applied: no token to hand out here.
            if !token.is_empty() {
                let now = tokio::time::Instant::now();
                state.auth.tokens().assign(token, user, now);
            }
        }
    }
    Ok(())
}

/// Checks a client's write `request` by `who` against the auth state (call only while auth
/// is enabled). Copies what it needs from the lease table before it takes the auth lock.
pub fn check_write(
    state: &ReplicatedState,
    who: &AuthInfo,
    request: &Request,
) -> Result<(), AuthError> {
    let mut leases = Vec::new();
    match request {
        Request::Put(p) if p.lease != 0 => leases.push(p.lease),
        Request::LeaseRevoke(r) => leases.push(r.id),
        Request::Txn(t) => check::txn_leases(t, &mut leases),
        _ => {}
    }
    let leased: Vec<Vec<u8>> = {
        let table = state.leases();
        leases
            .iter()
            .filter_map(|id| table.get(*id))
            .flat_map(|l| l.keys.iter().cloned())
            .collect()
    };
    let auth = state.auth.store();
    match request {
        Request::Put(p) => check::put(&auth, who, p)?,
        Request::DeleteRange(d) => check::delete_range(&auth, who, d)?,
        Request::Txn(t) => check::txn(&auth, who, t)?,
        _ => {}
    }
    check::lease_keys(&auth, who, leased.iter().map(Vec::as_slice))
}
