//! How a member dials its peers. Every peer connection (raft messages and snapshots, the
//! joiner's member-table fetch, requests forwarded to the leader) gets its endpoint here, so
//! an `https://` peer URL always gets TLS: the trusted CA and this member's client certificate
//! from the `--peer-*` flags. Plain `http://` URLs stay plain. (In simulation every peer link
//! is plain: the transport is madsim's.)

use tonic::transport::Endpoint;

/// Builds peer endpoints.
#[derive(Clone, Debug, Default)]
pub struct PeerDialer {
    /// TLS for `https://` peer URLs (None: they are dialed without TLS settings of ours).
    #[cfg(not(madsim))]
    tls: Option<tonic::transport::ClientTlsConfig>,
}

impl PeerDialer {
    /// A dialer for `https://` peers with `tls` (the peer CA and this member's certificate).
    #[cfg(not(madsim))]
    pub fn with_tls(tls: tonic::transport::ClientTlsConfig) -> PeerDialer {
        PeerDialer { tls: Some(tls) }
    }

    /// The endpoint of peer URL `url` (`http://host:port` or `https://host:port`).
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(url.to_string())?;
        #[cfg(not(madsim))]
        if let (Some(tls), true) = (&self.tls, url.starts_with("https://")) {
            return endpoint.tls_config(tls.clone());
        }
        Ok(endpoint)
    }
}
