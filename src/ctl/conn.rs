//! Connections to the cluster: `--endpoints` tried in order (moving on when one cannot be
//! dialled within `--dial-timeout` or answers `Unavailable`), unary calls bounded by
//! `--command-timeout` (failing as `context deadline exceeded`, like clientv3), and
//! unbounded waits for the long-running commands (watch, keep-alive, lock, elect).
//!
//! With `--user`, the first connection authenticates and every request then carries the token
//! (as clientv3 does, under the `token` metadata key; see [`authorized`]); a request refused for
//! an invalid token or an old auth revision authenticates again and is retried once. The token
//! is process-wide: detcdctl runs one command, as one user, per process.

use super::error::{is_connection_failure, status_text};
use super::tls::ClientTls;
use crate::pb::etcdserverpb::{auth_client::AuthClient, AuthenticateRequest};
use std::future::Future;
use std::sync::RwLock;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Channel;

/// The text clientv3 reports when the command timeout expires.
pub const DEADLINE: &str = "context deadline exceeded";

/// The token every request carries once `--user` authenticated.
static TOKEN: RwLock<Option<String>> = RwLock::new(None);

/// `message` as a request carrying the token, if there is one.
pub fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let token = TOKEN.read().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(value) = token.and_then(|t| t.parse().ok()) {
        request.metadata_mut().insert("token", value);
    }
    request
}

/// Set when `--user` could not authenticate: etcdctl then fails creating its client, with
/// ExitBadConnection.
static AUTHENTICATION_FAILED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Whether `--user` failed to authenticate.
pub fn authentication_failed() -> bool {
    AUTHENTICATION_FAILED.load(std::sync::atomic::Ordering::Relaxed)
}

fn set_token(token: Option<String>) {
    *TOKEN.write().unwrap_or_else(|e| e.into_inner()) = token;
}

fn has_token() -> bool {
    TOKEN.read().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// Whether a refusal is cured by authenticating again (clientv3's rule).
fn needs_new_token(s: &tonic::Status) -> bool {
    matches!(
        s.message(),
        "etcdserver: invalid auth token" | "etcdserver: revision of auth store is old"
    )
}

/// A user name and password (`--user`, `--password`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub user: String,
    /// The password.
    pub password: String,
}

/// A client over the configured endpoints.
#[derive(Clone)]
pub struct Conn {
    endpoints: Vec<String>,
    dial_timeout: Duration,
    command_timeout: Duration,
    next: usize,
    channel: Option<Channel>,
    tls: ClientTls,
    credentials: Option<Credentials>,
}

impl Conn {
    /// A client over `endpoints` (none dialled yet).
    pub fn new(endpoints: Vec<String>, dial_timeout: Duration, command_timeout: Duration) -> Conn {
        Conn {
            endpoints,
            dial_timeout,
            command_timeout,
            next: 0,
            channel: None,
            tls: ClientTls::default(),
            credentials: None,
        }
    }

    /// The same client, authenticating as `credentials`.
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Conn {
        self.credentials = credentials;
        self
    }

    /// The same client, dialling with `tls`.
    pub fn with_tls(mut self, tls: ClientTls) -> Conn {
        self.tls = tls;
        self
    }

    /// The configured endpoints, as given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// A client over other endpoints, with the same timeouts.
    pub fn with_endpoints(&self, endpoints: Vec<String>) -> Conn {
        Conn::new(endpoints, self.dial_timeout, self.command_timeout)
            .with_tls(self.tls.clone())
            .with_credentials(self.credentials.clone())
    }

    /// A client for one endpoint only, with the same timeouts.
    pub fn single(&self, ep: &str) -> Conn {
        self.with_endpoints(vec![ep.to_string()])
    }

    /// The deadline of a short command starting now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.command_timeout
    }

    /// Dials endpoints in order until one answers or `deadline` passes (`None`: forever).
    pub async fn channel(&mut self, deadline: Option<Instant>) -> Result<Channel, String> {
        if let Some(ch) = &self.channel {
            return Ok(ch.clone());
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            for _ in 0..self.endpoints.len().max(1) {
                let i = self.next % self.endpoints.len().max(1);
                let Some(ep) = self.endpoints.get(i).cloned() else {
                    return Err("no available endpoints".into());
                };
                let mut limit = self.dial_timeout;
                if let Some(d) = deadline {
                    limit = limit.min(d.saturating_duration_since(Instant::now()));
                }
                if limit.is_zero() {
                    return Err(DEADLINE.into());
                }
                let endpoint = self
                    .tls
                    .endpoint(&ep)?
                    .configure(|e| e.connect_timeout(limit));
                if let Ok(Ok(ch)) = tokio::time::timeout(limit, endpoint.connect()).await {
                    self.authenticate(&ch).await?;
                    self.channel = Some(ch.clone());
                    return Ok(ch);
                }
                self.next = i + 1;
            }
            let mut pause = backoff;
            if let Some(d) = deadline {
                pause = pause.min(d.saturating_duration_since(Instant::now()));
                if pause.is_zero() {
                    return Err(DEADLINE.into());
                }
            }
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// With `--user`, connects and authenticates now (etcdctl does so when it creates its
    /// client, before a command reads its input); a failure is ExitBadConnection.
    pub async fn authenticate_now(&mut self) -> Result<(), super::error::CtlError> {
        if self.credentials.is_some() {
            let deadline = self.deadline();
            self.channel(Some(deadline))
                .await
                .map_err(super::error::CtlError::BadConnection)?;
        }
        Ok(())
    }

    /// Gets a token over `ch` if `--user` was given and there is none yet.
    async fn authenticate(&self, ch: &Channel) -> Result<(), String> {
        let (Some(c), false) = (&self.credentials, has_token()) else {
            return Ok(());
        };
        let request = AuthenticateRequest {
            name: c.user.clone(),
            password: c.password.clone(),
        };
        let mut client = AuthClient::new(ch.clone());
        let call = client.authenticate(request);
        match tokio::time::timeout(self.command_timeout, call).await {
            Ok(Ok(resp)) => {
                set_token(Some(resp.into_inner().token));
                Ok(())
            }
            Ok(Err(s)) => {
                AUTHENTICATION_FAILED.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(status_text(&s))
            }
            Err(_) => Err(DEADLINE.into()),
        }
    }

    /// Forgets the current connection and moves to the next endpoint.
    pub fn fail_over(&mut self) {
        self.channel = None;
        self.next += 1;
    }

    /// One unary RPC within `--command-timeout`; the error is etcdctl's text for it.
    pub async fn call<T, F, Fut>(&mut self, f: F) -> Result<T, String>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = self.deadline();
        self.call_until(Some(deadline), f).await
    }

    /// One unary RPC, retried on other endpoints while they are unreachable, until
    /// `deadline` (`None`: no deadline).
    pub async fn call_until<T, F, Fut>(
        &mut self,
        deadline: Option<Instant>,
        mut f: F,
    ) -> Result<T, String>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut fresh_token = false;
        loop {
            let ch = self.channel(deadline).await?;
            let result = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, f(ch)).await {
                        Ok(r) => r,
                        Err(_) => return Err(DEADLINE.into()),
                    }
                }
                None => f(ch).await,
            };
            match result {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(s) if is_connection_failure(&s) => {
                    self.fail_over();
                    if let Some(d) = deadline {
                        if Instant::now() >= d {
                            return Err(DEADLINE.into());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(s) if needs_new_token(&s) && self.credentials.is_some() && !fresh_token => {
                    fresh_token = true;
                    set_token(None);
                    let ch = self.channel(deadline).await?;
                    self.authenticate(&ch).await?;
                }
                Err(s) => return Err(status_text(&s)),
            }
        }
    }
}
