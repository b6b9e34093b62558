//! Users, roles and permissions as etcd 3.4 defines them: the replicated auth state and its
//! rules ([`store`]), permission checks over key ranges ([`perms`]), simple tokens
//! ([`tokens`]) and etcd's errors ([`error`]). Pure and deterministic: no I/O, no clock of its
//! own (callers pass the time), no randomness (passwords are hashed and tokens chosen by the
//! caller before a request is proposed). The server wires it in (`server::auth`).

pub mod error;
pub mod perms;
pub mod store;
pub mod tokens;

pub use error::AuthError;
pub use store::{AuthChange, AuthInfo, AuthStore, PermKind, Permission};
pub use tokens::TokenTable;
