//! The replicated auth state and etcd 3.4's rules for changing it: users (with a bcrypt hash
//! of their password, or none for `--no-password` users) and their roles, roles and their key
//! permissions, whether auth is enabled, and the auth revision, bumped by every change so that a
//! changed permission takes effect at once.
//!
//! Invariants: every change is a pure function of the state and the request (passwords arrive
//! already hashed: bcrypt salts at random, so hashing happens before a change is proposed, and
//! every member applies the same hash); a refused change leaves the state and its revision as
//! they were. The `root` user and role are special as in etcd: auth cannot be enabled unless
//! user `root` exists with role `root`; while it is enabled `root` cannot be deleted nor lose
//! that role, and role `root` cannot be deleted; the `root` role may be granted before it
//! exists; a user with it passes every permission check.

use super::error::AuthError;
use super::perms::KeyRanges;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The name of the all-powerful user and role.
pub const ROOT: &str = "root";

/// What a key permission allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PermKind {
    /// Range, Watch, and reading compares.
    Read,
    /// Put, DeleteRange, lease revocation of attached keys.
    Write,
    /// Both.
    ReadWrite,
}

impl PermKind {
    /// Whether a permission of this kind allows `wanted` (Read or Write).
    fn allows(self, wanted: PermKind) -> bool {
        self == PermKind::ReadWrite || self == wanted
    }
}

/// A key permission: `kind` on `[key, range_end)` (empty range end: the key alone).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Permission {
    /// What it allows.
    pub kind: PermKind,
    /// First key.
    pub key: Vec<u8>,
    /// End of the range (exclusive), empty for one key, `"\0"` for every key from `key` on.
    pub range_end: Vec<u8>,
}

/// A user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// bcrypt hash of the password; None for a user added with `--no-password`.
    pub password_hash: Option<String>,
    /// Granted roles.
    pub roles: BTreeSet<String>,
}

/// A role.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Key permissions, one per `(key, range_end)`.
    pub permissions: Vec<Permission>,
}

/// The whole auth state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthStore {
    /// Whether requests are checked.
    pub enabled: bool,
    /// Bumped by every change (etcd starts it at 1).
    pub revision: u64,
    /// Users by name.
    pub users: BTreeMap<String, User>,
    /// Roles by name.
    pub roles: BTreeMap<String, Role>,
}

impl Default for AuthStore {
    fn default() -> AuthStore {
        AuthStore {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }
}

/// Who a request comes from, as auth checks see it: the user a token or certificate named and
/// the auth revision at which it was identified. `Default` is a caller without credentials (no
/// user, revision 0), which every check refuses while auth is enabled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthInfo {
    /// The user name (empty: none given).
    pub user: String,
    /// The auth revision the caller was identified at (0: not identified).
    pub revision: u64,
}

/// A change to the auth state (passwords already hashed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthChange {
    /// AuthEnable.
    Enable,
    /// AuthDisable.
    Disable,
    /// UserAdd; `password_hash` None for `--no-password`.
    UserAdd {
        /// Name.
        name: String,
        /// bcrypt hash.
        password_hash: Option<String>,
    },
    /// UserDelete.
    UserDelete(String),
    /// UserChangePassword.
    UserChangePassword {
        /// Name.
        name: String,
        /// bcrypt hash of the new password.
        password_hash: String,
    },
    /// UserGrantRole.
    UserGrantRole {
        /// User.
        user: String,
        /// Role.
        role: String,
    },
    /// UserRevokeRole.
    UserRevokeRole {
        /// User.
        user: String,
        /// Role.
        role: String,
    },
    /// RoleAdd.
    RoleAdd(String),
    /// RoleDelete.
    RoleDelete(String),
    /// RoleGrantPermission (replaces a permission on the same key and range end).
    RoleGrantPermission {
        /// Role.
        role: String,
        /// The permission.
        permission: Permission,
    },
    /// RoleRevokePermission.
    RoleRevokePermission {
        /// Role.
        role: String,
        /// First key.
        key: Vec<u8>,
        /// Range end.
        range_end: Vec<u8>,
    },
}

impl AuthStore {
    /// Applies `change` with etcd's rules; a refused change leaves the store as it was. The
    /// revision moves on every accepted change except enabling an enabled store or disabling
    /// a disabled one (no-ops that etcd answers with success).
    pub fn apply(&mut self, change: &AuthChange) -> Result<(), AuthError> {
        match change {
            AuthChange::Enable => {
                if self.enabled {
                    return Ok(());
                }
                let root = self.users.get(ROOT).ok_or(AuthError::RootUserNotExist)?;
                if !root.roles.contains(ROOT) {
                    return Err(AuthError::RootRoleNotExist);
                }
                self.enabled = true;
            }
            AuthChange::Disable => {
                if !self.enabled {
                    return Ok(());
                }
                self.enabled = false;
            }
            AuthChange::UserAdd {
                name,
                password_hash,
            } => {
                if name.is_empty() {
                    return Err(AuthError::UserEmpty);
                }
                if self.users.contains_key(name) {
                    return Err(AuthError::UserAlreadyExist);
                }
                let user = User {
                    password_hash: password_hash.clone(),
                    roles: BTreeSet::new(),
                };
                self.users.insert(name.clone(), user);
            }
            AuthChange::UserDelete(name) => {
                if self.enabled && name == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.users.remove(name).ok_or(AuthError::UserNotFound)?;
            }
            AuthChange::UserChangePassword {
                name,
                password_hash,
            } => {
                let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
                user.password_hash = Some(password_hash.clone());
            }
            AuthChange::UserGrantRole { user, role } => {
                if role != ROOT && !self.roles.contains_key(role) {
                    return Err(AuthError::RoleNotFound);
                }
                let user = self.users.get_mut(user).ok_or(AuthError::UserNotFound)?;
                user.roles.insert(role.clone());
            }
            AuthChange::UserRevokeRole { user, role } => {
                if self.enabled && user == ROOT && role == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                let entry = self.users.get_mut(user).ok_or(AuthError::UserNotFound)?;
                if !entry.roles.remove(role) {
                    return Err(AuthError::RoleNotGranted);
                }
            }
            AuthChange::RoleAdd(name) => {
                if name.is_empty() {
                    return Err(AuthError::RoleEmpty);
                }
                if self.roles.contains_key(name) {
                    return Err(AuthError::RoleAlreadyExist);
                }
                self.roles.insert(name.clone(), Role::default());
            }
            AuthChange::RoleDelete(name) => {
                if self.enabled && name == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.roles.remove(name).ok_or(AuthError::RoleNotFound)?;
                for user in self.users.values_mut() {
                    user.roles.remove(name);
                }
            }
            AuthChange::RoleGrantPermission { role, permission } => {
                let entry = self.roles.get_mut(role).ok_or(AuthError::RoleNotFound)?;
                let same = |p: &&mut Permission| {
                    p.key == permission.key && p.range_end == permission.range_end
                };
                match entry.permissions.iter_mut().find(same) {
                    Some(existing) => existing.kind = permission.kind,
                    None => entry.permissions.push(permission.clone()),
                }
                // etcd keeps a role's permissions ordered by key, then range end.
                entry
                    .permissions
                    .sort_by(|a, b| (&a.key, &a.range_end).cmp(&(&b.key, &b.range_end)));
            }
            AuthChange::RoleRevokePermission {
                role,
                key,
                range_end,
            } => {
                let entry = self.roles.get_mut(role).ok_or(AuthError::RoleNotFound)?;
                let before = entry.permissions.len();
                entry
                    .permissions
                    .retain(|p| !(p.key == *key && p.range_end == *range_end));
                if entry.permissions.len() == before {
                    return Err(AuthError::PermissionNotGranted);
                }
            }
        }
        self.revision += 1;
        Ok(())
    }

    /// Whether `user` may do `wanted` (Read or Write) on `[key, range_end)`: always for the
    /// `root` role, otherwise when the union of its roles' permissions of that kind covers the
    /// range whole.
    pub fn permitted(&self, user: &str, wanted: PermKind, key: &[u8], range_end: &[u8]) -> bool {
        let Some(entry) = self.users.get(user) else {
            return false;
        };
        if entry.roles.contains(ROOT) {
            return true;
        }
        let grants: Vec<&Permission> = entry
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| r.permissions.iter())
            .filter(|p| p.kind.allows(wanted))
            .collect();
        KeyRanges::union(
            grants
                .iter()
                .map(|p| (p.key.as_slice(), p.range_end.as_slice())),
        )
        .covers(key, range_end)
    }

    /// Whether `user` has the `root` role (admin calls need it).
    pub fn is_root(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.roles.contains(ROOT))
    }

    /// etcd's check of one key operation by `who`: nothing while auth is disabled; otherwise
    /// a caller without credentials is refused (`user name is empty`), a check made against an
    /// older auth revision must be made again (`revision of auth store is old`), and the user
    /// needs `wanted` on the whole range.
    pub fn check_op(
        &self,
        who: &AuthInfo,
        wanted: PermKind,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        self.check_current(who)?;
        match self.permitted(&who.user, wanted, key, range_end) {
            true => Ok(()),
            false => Err(AuthError::PermissionDenied),
        }
    }

    /// etcd's check of an admin call (auth and member management, defragment, hashes,
    /// snapshots): the caller needs the `root` role while auth is enabled.
    pub fn check_admin(&self, who: &AuthInfo) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if who.user.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        if !self.users.contains_key(&who.user) {
            return Err(AuthError::UserNotFound);
        }
        match self.is_root(&who.user) {
            true => Ok(()),
            false => Err(AuthError::PermissionDenied),
        }
    }

    /// Refuses a caller without credentials, or one identified at an older auth revision.
    pub fn check_current(&self, who: &AuthInfo) -> Result<(), AuthError> {
        if who.revision == 0 {
            return Err(AuthError::UserEmpty);
        }
        if who.revision < self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        Ok(())
    }

    /// Checks a password against `user`'s hash (Authenticate).
    pub fn check_password(&self, user: &str, password: &str) -> Result<(), AuthError> {
        let entry = self.users.get(user).ok_or(AuthError::AuthFailed)?;
        let hash = entry
            .password_hash
            .as_deref()
            .ok_or(AuthError::NoPasswordUser)?;
        match bcrypt::verify(password, hash) {
            Ok(true) => Ok(()),
            _ => Err(AuthError::AuthFailed),
        }
    }
}

/// The bcrypt hash of `password` at `cost` (etcd's `--bcrypt-cost`, default 10), computed
/// before a change is proposed.
pub fn hash_password(password: &str, cost: u32) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash(password, cost)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
