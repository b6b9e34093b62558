//! The auth state as etcd's snapshot buckets, both ways: `auth` (`authEnabled` → 1 byte,
//! `authRevision` → 8 bytes big endian), `authUsers` (name → `authpb.User`, the bcrypt hash
//! as the password, roles sorted) and `authRoles` (name → `authpb.Role`). So users, roles and
//! the switch move between etcd and detcd with `snapshot save` and `snapshot restore`.
//!
//! Invariant: [`from_buckets`] of [`pairs`] is the state it started from (bcrypt hashes
//! are carried as they are: etcd's and detcd's are the same format).

use crate::auth::store::{Role, User};
use crate::auth::AuthStore;
use crate::pb::authpb;
use crate::server::auth::permission_to_pb;
use crate::storage::backend::Pair;
use prost::Message as _;

const ENABLED: &[u8] = b"authEnabled";
const REVISION: &[u8] = b"authRevision";

/// The pairs of etcd's bucket `bucket` (`auth`, `authUsers` or `authRoles`; ascending) for
/// `auth`; none for another bucket.
pub fn pairs(auth: &AuthStore, bucket: &str) -> Vec<Pair> {
    match bucket {
        "auth" => {
            let mut switch = Vec::new();
            if auth.enabled || auth.revision > 1 {
                switch.push((ENABLED.to_vec(), vec![u8::from(auth.enabled)]));
            }
            switch.push((REVISION.to_vec(), auth.revision.to_be_bytes().to_vec()));
            switch
        }
        "authUsers" => auth
            .users
            .iter()
            .map(|(name, u)| {
                let user = authpb::User {
                    name: name.as_bytes().to_vec().into(),
                    password: u
                        .password_hash
                        .clone()
                        .unwrap_or_default()
                        .into_bytes()
                        .into(),
                    roles: u.roles.iter().cloned().collect(),
                    options: Some(authpb::UserAddOptions {
                        no_password: u.password_hash.is_none(),
                    }),
                };
                (name.as_bytes().to_vec(), user.encode_to_vec())
            })
            .collect(),
        "authRoles" => auth
            .roles
            .iter()
            .map(|(name, r)| {
                let role = authpb::Role {
                    name: name.as_bytes().to_vec().into(),
                    key_permission: r.permissions.iter().map(permission_to_pb).collect(),
                };
                (name.as_bytes().to_vec(), role.encode_to_vec())
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Adds one pair of bucket `bucket` (`auth`, `authUsers` or `authRoles`) to `auth`; other
/// buckets are ignored.
pub fn from_buckets(auth: &mut AuthStore, bucket: &[u8], k: &[u8], v: &[u8]) -> Result<(), String> {
    match bucket {
        b"auth" if k == ENABLED => auth.enabled = v.first() == Some(&1),
        b"auth" if k == REVISION => {
            let bytes: [u8; 8] = v.try_into().map_err(|_| "auth revision: not 8 bytes")?;
            auth.revision = u64::from_be_bytes(bytes);
        }
        b"authUsers" => {
            let user = authpb::User::decode(v).map_err(|e| format!("auth user: {e}"))?;
            let no_password =
                user.options.is_some_and(|o| o.no_password) || user.password.is_empty();
            let entry = User {
                password_hash: (!no_password)
                    .then(|| String::from_utf8_lossy(&user.password).into_owned()),
                roles: user.roles.into_iter().collect(),
            };
            auth.users
                .insert(String::from_utf8_lossy(k).into_owned(), entry);
        }
        b"authRoles" => {
            let role = authpb::Role::decode(v).map_err(|e| format!("auth role: {e}"))?;
            let permissions = role
                .key_permission
                .iter()
                .map(crate::server::auth::permission_of)
                .collect();
            auth.roles.insert(
                String::from_utf8_lossy(k).into_owned(),
                Role { permissions },
            );
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthChange, PermKind, Permission};

    #[test]
    fn the_auth_state_survives_etcds_buckets() {
        let mut auth = AuthStore::default();
        for change in [
            AuthChange::UserAdd {
                name: "root".into(),
                password_hash: Some("$2a$04$abcdefghijklmnopqrstuv".into()),
            },
            AuthChange::UserAdd {
                name: "cn".into(),
                password_hash: None,
            },
            AuthChange::RoleAdd("root".into()),
            AuthChange::RoleAdd("r".into()),
            AuthChange::RoleGrantPermission {
                role: "r".into(),
                permission: Permission {
                    kind: PermKind::ReadWrite,
                    key: b"a".to_vec(),
                    range_end: b"b".to_vec(),
                },
            },
            AuthChange::UserGrantRole {
                user: "root".into(),
                role: "root".into(),
            },
            AuthChange::UserGrantRole {
                user: "cn".into(),
                role: "r".into(),
            },
            AuthChange::Enable,
        ] {
            auth.apply(&change).unwrap();
        }
        let mut back = AuthStore::default();
        for bucket in ["auth", "authUsers", "authRoles"] {
            for (k, v) in pairs(&auth, bucket) {
                from_buckets(&mut back, bucket.as_bytes(), &k, &v).unwrap();
            }
        }
        assert_eq!(back, auth);
    }
}
