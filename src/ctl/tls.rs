//! detcdctl's TLS: etcdctl's `--cacert`, `--cert`, `--key`, `--insecure-transport` and
//! `--insecure-skip-tls-verify` (or `ETCDCTL_*`), read once, and clientv3's rule for which
//! endpoints use them: an `https://` endpoint always uses TLS (trusting the system's roots when
//! no `--cacert` is given), an `http://` one never, and a bare `host:port` one when a TLS
//! configuration exists. The
//! connections themselves are dialled by [`crate::raft::dial`]. Errors are etcdctl's texts.

use super::error::CtlError;
use crate::raft::dial::{DialEndpoint, Dialer};

/// The TLS settings of a run.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    dialer: Dialer,
    /// A TLS flag was given: bare `host:port` endpoints use TLS too.
    flagged: bool,
}

fn read(path: &str) -> Result<Vec<u8>, CtlError> {
    crate::io::read_flag_file(path.as_ref())
        .map_err(|e| CtlError::BadArgs(format!("open {path}: {}", crate::io::go_error_text(&e))))
}

impl ClientTls {
    /// The settings of `--cacert`, `--cert`, `--key` (empty: not given),
    /// `--insecure-transport` and `--insecure-skip-tls-verify`. As in etcdctl, a TLS
    /// configuration exists when a file flag is given or `--insecure-transport=false`, and
    /// `--insecure-skip-tls-verify` only takes effect with one (alone, an `https://` endpoint
    /// is still verified against the system's roots).
    pub fn from_flags(
        cacert: &str,
        cert: &str,
        key: &str,
        insecure_transport: bool,
        skip_verify: bool,
    ) -> Result<ClientTls, CtlError> {
        if cert.is_empty() != key.is_empty() {
            return Err(CtlError::BadArgs(format!(
                "KeyFile and CertFile must both be present[key: {key}, cert: {cert}]"
            )));
        }
        let flagged = !cacert.is_empty() || !cert.is_empty() || !insecure_transport;
        if !flagged {
            return Ok(ClientTls::default());
        }
        let settings = crate::raft::dial::TlsClientSettings {
            ca_pem: (!cacert.is_empty()).then(|| read(cacert)).transpose()?,
            identity_pem: match cert.is_empty() {
                true => None,
                false => Some((read(cert)?, read(key)?)),
            },
            skip_verify,
        };
        let dialer = Dialer::with_tls(&settings).map_err(|e| CtlError::BadArgs(e.to_string()))?;
        Ok(ClientTls { dialer, flagged })
    }

    /// The endpoint to dial for `ep` (`host:port` or a URL).
    pub fn endpoint(&self, ep: &str) -> Result<DialEndpoint, String> {
        self.dialer
            .endpoint_for(ep, self.flagged)
            .map_err(|e| format!("invalid endpoint {ep}: {e}"))
    }
}
