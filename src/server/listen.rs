//! Listening sockets. A member binds every client and peer address before it recovers or
//! serves anything, as etcd does, so a taken port stops start-up with the address and the OS
//! error — `listen tcp 127.0.0.1:2380: bind: address already in use` — instead of a serving task
//! failing later with a bare `transport error`.
//!
//! Under madsim, madsim-tonic binds inside `serve(addr)` and has no incoming-stream API, so
//! [`bind`] only records the address there and [`Listener::serve`] binds when it starts.
//!
//! Every listener serves a router built from [`server`], which (in real builds) answers a
//! message over the gRPC limit the way etcd does ([`super::grpc_limit`]), and reads every
//! connection through [`super::authority::AuthorityFix`], so that any `:authority` a client
//! sends is accepted.

use std::net::SocketAddr;
use tonic::transport::server::Router;
use tonic::transport::Server;

/// The gRPC server builder of every listener.
#[cfg(not(madsim))]
pub type Builder =
    Server<tower_layer::Stack<super::grpc_limit::LimitErrors, tower_layer::Identity>>;
/// The gRPC server builder of every listener (madsim encodes nothing: no limit to translate).
#[cfg(madsim)]
pub type Builder = Server;

/// A router from [`server`], ready for [`Listener::serve`].
#[cfg(not(madsim))]
pub type Routed = Router<tower_layer::Stack<super::grpc_limit::LimitErrors, tower_layer::Identity>>;
/// A router from [`server`], ready for [`Listener::serve`].
#[cfg(madsim)]
pub type Routed = Router;

/// A gRPC server builder with etcd's answer to over-limit messages.
pub fn server() -> Builder {
    #[cfg(not(madsim))]
    {
        Server::builder().layer(super::grpc_limit::LimitErrors)
    }
    #[cfg(madsim)]
    {
        Server::builder()
    }
}

/// A bound listening address, ready to serve.
pub struct Listener {
    addr: SocketAddr,
    #[cfg(not(madsim))]
    incoming: tonic::transport::server::TcpIncoming,
    /// Set for an `https://` listener: each connection's TLS handshake comes first.
    #[cfg(not(madsim))]
    tls: Option<super::tls::TlsAcceptor>,
}

/// A listening address that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("listen tcp {addr}: bind: {}", crate::io::go_error_text(.source))]
pub struct ListenError {
    /// The address.
    pub addr: SocketAddr,
    /// What the OS said.
    pub source: std::io::Error,
}

/// Binds `addr` (in simulation: records it).
pub fn bind(addr: SocketAddr) -> Result<Listener, ListenError> {
    #[cfg(not(madsim))]
    {
        let incoming = tonic::transport::server::TcpIncoming::bind(addr)
            .map_err(|source| ListenError { addr, source })?
            .with_nodelay(Some(true));
        Ok(Listener {
            addr,
            incoming,
            tls: None,
        })
    }
    #[cfg(madsim)]
    Ok(Listener { addr })
}

impl Listener {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes this an `https://` listener.
    #[cfg(not(madsim))]
    pub fn with_tls(mut self, acceptor: super::tls::TlsAcceptor) -> Listener {
        self.tls = Some(acceptor);
        self
    }

    /// Serves `router` on this listener until it fails.
    pub async fn serve(self, router: Routed) -> Result<(), tonic::transport::Error> {
        #[cfg(not(madsim))]
        {
            use super::authority::AuthorityFix;
            use tokio_stream::StreamExt;
            match self.tls {
                None => {
                    let incoming = self.incoming.map(|conn| conn.map(AuthorityFix::new));
                    router.serve_with_incoming(incoming).await
                }
                Some(acceptor) => {
                    let incoming = handshakes(self.incoming, acceptor);
                    router.serve_with_incoming(incoming).await
                }
            }
        }
        #[cfg(madsim)]
        {
            router.serve(self.addr).await
        }
    }
}

/// The connections of `incoming` whose TLS handshake completed, each read through
/// [`super::authority::AuthorityFix`] above TLS (it must see the HTTP/2 frames in the clear).
/// Handshakes run in tasks of their own; one that fails or times out is logged and dropped.
#[cfg(not(madsim))]
fn handshakes(
    mut incoming: tonic::transport::server::TcpIncoming,
    acceptor: super::tls::TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<
    std::io::Result<
        super::authority::AuthorityFix<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
    >,
> {
    use tokio_stream::StreamExt;
    let (ready, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(conn) = incoming.next().await {
            if ready.is_closed() {
                // The server stopped serving this listener.
                return;
            }
            let stream = match conn {
                Ok(stream) => stream,
                Err(e) => {
                    if ready.send(Err(e)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let (acceptor, ready) = (acceptor.clone(), ready.clone());
            tokio::spawn(async move {
                let peer = stream.peer_addr().ok();
                let handshake = acceptor.accept(stream);
                match tokio::time::timeout(super::tls::HANDSHAKE_TIMEOUT, handshake).await {
                    Ok(Ok(tls)) => {
                        let _ = ready
                            .send(Ok(super::authority::AuthorityFix::new(tls)))
                            .await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(remote = ?peer, error = %e, "rejected connection: TLS handshake failed")
                    }
                    Err(_) => {
                        tracing::warn!(remote = ?peer, "rejected connection: TLS handshake timed out")
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_like_go() {
        let e = ListenError {
            addr: "127.0.0.1:2380".parse().unwrap(),
            source: std::io::Error::from_raw_os_error(98),
        };
        assert_eq!(
            e.to_string(),
            "listen tcp 127.0.0.1:2380: bind: address already in use"
        );
        assert_eq!(crate::io::go_error_text(&std::io::Error::other("")), "");
    }
}
