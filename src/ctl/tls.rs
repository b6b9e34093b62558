//! detcdctl's TLS: etcdctl's `--cacert`, `--cert`, `--key` and `--insecure-skip-tls-verify`
//! (or `ETCDCTL_*`), read once, and clientv3's rule for which endpoints use them: an
//! `https://` endpoint always uses TLS (trusting the system's roots when no `--cacert` is
//! given), an `http://` one never, and a bare `host:port` one when a TLS flag is given. The
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
    std::fs::read(path)
        .map_err(|e| CtlError::BadArgs(format!("open {path}: {}", crate::io::go_error_text(&e))))
}

impl ClientTls {
    /// The settings of `--cacert`, `--cert`, `--key` (empty: not given) and
    /// `--insecure-skip-tls-verify`.
    pub fn from_flags(
        cacert: &str,
        cert: &str,
        key: &str,
        skip_verify: bool,
    ) -> Result<ClientTls, CtlError> {
        if cert.is_empty() != key.is_empty() {
            return Err(CtlError::BadArgs(format!(
                "KeyFile and CertFile must both be present[key: {key}, cert: {cert}]"
            )));
        }
        let flagged = !cacert.is_empty() || !cert.is_empty() || skip_verify;
        if !flagged {
            return Ok(ClientTls::default());
        }
        #[cfg(not(madsim))]
        {
            let settings = crate::raft::dial::TlsClientSettings {
                ca_pem: (!cacert.is_empty()).then(|| read(cacert)).transpose()?,
                identity_pem: match cert.is_empty() {
                    true => None,
                    false => Some((read(cert)?, read(key)?)),
                },
                skip_verify,
            };
            let dialer =
                Dialer::with_tls(&settings).map_err(|e| CtlError::BadArgs(e.to_string()))?;
            Ok(ClientTls { dialer, flagged })
        }
        #[cfg(madsim)]
        {
            let _ = read;
            Err(CtlError::BadFeature("TLS is not simulated".into()))
        }
    }

    /// The endpoint to dial for `ep` (`host:port` or a URL).
    pub fn endpoint(&self, ep: &str) -> Result<DialEndpoint, String> {
        self.dialer
            .endpoint_for(ep, self.flagged)
            .map_err(|e| format!("invalid endpoint {ep}: {e}"))
    }
}
