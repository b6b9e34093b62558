//! detcdctl's TLS: etcdctl's `--cacert`, `--cert` and `--key` (or `ETCDCTL_CACERT`, ...), read
//! once, and clientv3's rule for which endpoints use them: an `https://` endpoint always uses
//! TLS (trusting the system's roots when no `--cacert` is given), an `http://` one never, and a
//! bare `host:port` one when a TLS flag is given. Errors are etcdctl's texts (ExitBadArgs).

use super::error::CtlError;
use tonic::transport::Endpoint;

/// The TLS settings of a run (None: no TLS flag given).
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    #[cfg(not(madsim))]
    flags: Option<tonic::transport::ClientTlsConfig>,
}

fn read(path: &str) -> Result<Vec<u8>, CtlError> {
    std::fs::read(path)
        .map_err(|e| CtlError::BadArgs(format!("open {path}: {}", crate::io::go_error_text(&e))))
}

impl ClientTls {
    /// The settings of `--cacert`, `--cert`, `--key` (empty: not given).
    pub fn from_flags(cacert: &str, cert: &str, key: &str) -> Result<ClientTls, CtlError> {
        if cert.is_empty() != key.is_empty() {
            return Err(CtlError::BadArgs(format!(
                "KeyFile and CertFile must both be present[key: {key}, cert: {cert}]"
            )));
        }
        if cacert.is_empty() && cert.is_empty() {
            return Ok(ClientTls::default());
        }
        #[cfg(not(madsim))]
        {
            use tonic::transport::{Certificate, ClientTlsConfig, Identity};
            let mut config = ClientTlsConfig::new();
            config = match cacert.is_empty() {
                true => config.with_native_roots(),
                false => config.ca_certificate(Certificate::from_pem(read(cacert)?)),
            };
            if !cert.is_empty() {
                config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            Ok(ClientTls {
                flags: Some(config),
            })
        }
        #[cfg(madsim)]
        {
            let _ = read;
            Err(CtlError::BadFeature("TLS is not simulated".into()))
        }
    }

    /// The endpoint to dial for `ep` (`host:port` or a URL).
    pub fn endpoint(&self, ep: &str) -> Result<Endpoint, String> {
        let invalid = |e: tonic::transport::Error| format!("invalid endpoint {ep}: {e}");
        let (host, secure) = match ep.split_once("://") {
            Some(("https" | "unixs", rest)) => (rest, Some(true)),
            Some((_, rest)) => (rest, Some(false)),
            None => (ep, None),
        };
        #[cfg(not(madsim))]
        {
            let tls = match (secure, &self.flags) {
                (Some(false), _) | (None, None) => None,
                (_, Some(flags)) => Some(flags.clone()),
                (Some(true), None) => {
                    Some(tonic::transport::ClientTlsConfig::new().with_native_roots())
                }
            };
            if let Some(tls) = tls {
                let endpoint = Endpoint::from_shared(format!("https://{host}")).map_err(invalid)?;
                return endpoint.tls_config(tls).map_err(invalid);
            }
        }
        let _ = secure;
        Endpoint::from_shared(format!("http://{host}")).map_err(invalid)
    }
}
