//! Users, roles and permissions as etcd 3.4 defines them: the replicated auth state and its
//! rules ([`store`]), permission checks over key ranges ([`perms`]) and etcd's errors
//! ([`error`]). Pure and deterministic: no I/O, no clock, no randomness (passwords are hashed
//! by the caller before a change is proposed). Not yet wired to the server: the Auth service,
//! tokens and enforcement on every call come next (issue 11).

pub mod error;
pub mod perms;
pub mod store;
pub mod tokens;

pub use error::AuthError;
pub use store::{AuthChange, AuthInfo, AuthStore, PermKind, Permission};
pub use tokens::TokenTable;
