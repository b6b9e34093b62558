//! etcd's simple tokens: opaque strings an Authenticate hands out, each naming a user and
//! valid for `--auth-token-ttl` after its last use.
//!
//! Every member holds the same tokens: the proposer of an Authenticate chooses the token and
//! every member assigns it when it applies the request, so a client may use it on any member.
//! Expiry is each member's own clock (the caller passes the time in; this module reads no
//! clock), as in etcd, so a token may outlive its TTL by clock skew on another member.
//! Invariant: a token is forgotten when it expires, when its user is deleted or changes
//! password, and when auth is disabled.

use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// etcd's default `--auth-token-ttl` (seconds).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// How often [`TokenTable::assign`] drops expired tokens.
const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// The live tokens of one member.
#[derive(Debug)]
pub struct TokenTable {
    ttl: Duration,
    tokens: HashMap<String, Live>,
    /// When expired tokens were last dropped (at most once a second, so handing out many
    /// tokens stays linear).
    purged: Option<Instant>,
}

#[derive(Debug)]
struct Live {
    user: String,
    expires: Instant,
}

impl TokenTable {
    /// An empty table whose tokens live `ttl` past their last use.
    pub fn new(ttl: Duration) -> TokenTable {
        TokenTable {
            ttl,
            tokens: HashMap::new(),
            purged: None,
        }
    }

    /// Makes `token` name `user` from `now` on.
    pub fn assign(&mut self, token: String, user: String, now: Instant) {
        if self.purged.is_none_or(|at| now >= at + PURGE_INTERVAL) {
            self.tokens.retain(|_, t| t.expires > now);
            self.purged = Some(now);
        }
        let expires = now + self.ttl;
        self.tokens.insert(token, Live { user, expires });
    }

    /// The user `token` names, if it is live at `now`; its lifetime starts over.
    pub fn user_of(&mut self, token: &str, now: Instant) -> Option<String> {
        let live = self.tokens.get_mut(token)?;
        if live.expires <= now {
            self.tokens.remove(token);
            return None;
        }
        live.expires = now + self.ttl;
        Some(live.user.clone())
    }

    /// Forgets every token of `user`.
    pub fn forget_user(&mut self, user: &str) {
        self.tokens.retain(|_, t| t.user != user);
    }

    /// Forgets every token.
    pub fn clear(&mut self) {
        self.tokens.clear();
    }
}

impl Default for TokenTable {
    fn default() -> TokenTable {
        TokenTable::new(DEFAULT_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_live_ttl_past_their_last_use_and_die_with_their_user() {
        let start = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut t = TokenTable::new(ttl);
        t.assign("a".into(), "alice".into(), start);
        t.assign("b".into(), "bob".into(), start);
        let later = start + Duration::from_secs(8);
        assert_eq!(t.user_of("a", later).as_deref(), Some("alice"));
        // a was used at 8 s: alive at 16 s; b was not: dead at 10 s.
        let after = start + Duration::from_secs(16);
        assert_eq!(t.user_of("a", after).as_deref(), Some("alice"));
        assert_eq!(t.user_of("b", after), None);
        assert_eq!(t.user_of("nope", start), None);
        t.assign("c".into(), "alice".into(), after);
        t.forget_user("alice");
        assert_eq!(t.user_of("a", after), None);
        assert_eq!(t.user_of("c", after), None);
        t.assign("d".into(), "bob".into(), after);
        t.clear();
        assert_eq!(t.user_of("d", after), None);
    }
}
