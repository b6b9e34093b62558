//! The auth part of the replicated state: the auth store (users, roles, the switch) and this
//! member's live simple tokens (or its JWT keys), each behind its own ranked lock ([`Rank::Auth`], then
//! [`Rank::Tokens`]), plus a copy of the switch that the fast path reads without a lock.
//!
//! Invariant: `enabled` equals `store.enabled` whenever neither lock is held for writing (it
//! is stored under the store's write lock), so a request that finds auth disabled costs one
//! atomic load.

use super::jwt::JwtKeys;
use crate::auth::{AuthInfo, AuthStore, TokenTable};
use crate::server::lock_rank::{Rank, Ranked};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// Users, roles and tokens of one member.
pub struct AuthState {
    store: RwLock<AuthStore>,
    tokens: Mutex<TokenTable>,
    enabled: AtomicBool,
    /// Set with `--auth-token jwt,...`: tokens are JWTs, not entries of `tokens`.
    jwt: OnceLock<JwtKeys>,
}

impl AuthState {
    /// The state `store` describes, with no tokens.
    pub fn new(store: AuthStore) -> AuthState {
        AuthState {
            enabled: AtomicBool::new(store.enabled),
            store: RwLock::new(store),
            tokens: Mutex::new(TokenTable::default()),
            jwt: OnceLock::new(),
        }
    }

    /// Makes tokens JWTs signed and verified with `keys` (once, at start).
    pub fn use_jwt(&self, keys: JwtKeys) {
        let _ = self.jwt.set(keys);
    }

    /// The JWT keys, with `--auth-token jwt,...`.
    pub fn jwt(&self) -> Option<&JwtKeys> {
        self.jwt.get()
    }

    /// Sets how long a token lives past its last use (`--auth-token-ttl`); forgets tokens.
    pub fn set_token_ttl(&self, ttl: Duration) {
        *self.tokens() = TokenTable::new(ttl);
    }

    /// Whether requests are checked (no lock taken).
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Read access to the auth store.
    pub fn store(&self) -> Ranked<RwLockReadGuard<'_, AuthStore>> {
        Ranked::acquire(Rank::Auth, || {
            self.store.read().unwrap_or_else(|e| e.into_inner())
        })
    }

    /// Changes the auth store with `change` (apply path), keeping the lock-free switch true.
    pub fn update<T>(&self, change: impl FnOnce(&mut AuthStore) -> T) -> T {
        let mut store: Ranked<RwLockWriteGuard<'_, AuthStore>> =
            Ranked::acquire(Rank::Auth, || {
                self.store.write().unwrap_or_else(|e| e.into_inner())
            });
        let out = change(&mut store);
        self.enabled.store(store.enabled, Ordering::Release);
        out
    }

    /// The member's live tokens.
    pub fn tokens(&self) -> Ranked<MutexGuard<'_, TokenTable>> {
        Ranked::acquire(Rank::Tokens, || {
            self.tokens.lock().unwrap_or_else(|e| e.into_inner())
        })
    }

    /// Who `token` identifies now: a simple token's user at the current auth revision, or
    /// the user and revision a JWT names.
    pub fn identify(&self, token: &str) -> Option<AuthInfo> {
        if let Some(keys) = self.jwt() {
            return keys.verify(token);
        }
        let user = self.tokens().user_of(token, tokio::time::Instant::now())?;
        let revision = self.store().revision;
        Some(AuthInfo { user, revision })
    }
}
