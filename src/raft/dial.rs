//! How a member dials its peers, and detcdctl its endpoints. Every such connection gets its
//! channel here, so an `https://` URL always gets TLS from one place: rustls over the TCP
//! connection (ALPN `h2`), with the trusted CAs (or the system's roots), a client certificate
//! when one is configured, and — only when asked for, as etcd's `--insecure-skip-tls-verify`
//! and `--peer-auto-tls` do — no verification of the server's certificate. Plain `http://`
//! URLs stay plain. (In simulation every link is plain: the network is madsim's.)

#[cfg(not(madsim))]
use std::sync::Arc;
use tonic::transport::{Channel, Endpoint};

/// What a TLS client presents and trusts.
#[derive(Clone, Debug, Default)]
pub struct TlsClientSettings {
    /// Trusted CA certificates (PEM); None: the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// This side's certificate chain and key (PEM), presented when the server asks.
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// Accept any server certificate (etcd's `--insecure-skip-tls-verify`).
    pub skip_verify: bool,
}

/// TLS client settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// A PEM block that does not parse.
    #[error("tls: failed to parse {what}: {reason}")]
    Pem {
        /// Which PEM input.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificates or key.
    #[cfg(not(madsim))]
    #[error("tls: {0}")]
    Rustls(#[from] tokio_rustls::rustls::Error),
    /// A URL tonic cannot dial.
    #[error("invalid URL: {0}")]
    Url(#[from] tonic::transport::Error),
}

/// Dials URLs, with TLS for `https://` ones when it has TLS settings.
#[derive(Clone, Default)]
pub struct Dialer {
    #[cfg(not(madsim))]
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dialer")
    }
}

/// An endpoint to dial, with the TLS it needs.
pub struct DialEndpoint {
    endpoint: Endpoint,
    #[cfg(not(madsim))]
    tls: Option<(Arc<tokio_rustls::rustls::ClientConfig>, String)>,
}

impl Dialer {
    /// A dialer that speaks TLS with `settings` to `https://` URLs.
    #[cfg(not(madsim))]
    pub fn with_tls(settings: &TlsClientSettings) -> Result<Dialer, DialError> {
        Ok(Dialer {
            tls: Some(tls_client::config(settings)?),
        })
    }

    /// In simulation links are plain: the settings are not used.
    #[cfg(madsim)]
    pub fn with_tls(_settings: &TlsClientSettings) -> Result<Dialer, DialError> {
        Ok(Dialer::default())
    }

    /// The endpoint of `url` (`http://host:port`, `https://host:port` or bare `host:port`,
    /// which is dialled with TLS when `bare_tls`).
    pub fn endpoint_for(&self, url: &str, bare_tls: bool) -> Result<DialEndpoint, DialError> {
        let (rest, secure) = match url.split_once("://") {
            Some(("https" | "unixs", rest)) => (rest, true),
            Some((_, rest)) => (rest, false),
            None => (url, bare_tls),
        };
        let endpoint = Endpoint::from_shared(format!("http://{rest}"))?;
        #[cfg(not(madsim))]
        {
            let host = rest.split('/').next().unwrap_or(rest);
            let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
            let name = name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let tls = match (secure, &self.tls) {
                (false, _) => None,
                (true, Some(config)) => Some((config.clone(), name)),
                (true, None) => {
                    let config = tls_client::config(&TlsClientSettings::default())?;
                    Some((config, name))
                }
            };
            Ok(DialEndpoint { endpoint, tls })
        }
        #[cfg(madsim)]
        {
            let _ = secure;
            Ok(DialEndpoint { endpoint })
        }
    }

    /// The endpoint of peer URL `url`.
    pub fn endpoint(&self, url: &str) -> Result<DialEndpoint, DialError> {
        self.endpoint_for(url, false)
    }
}

impl DialEndpoint {
    /// Adjusts the endpoint's settings (timeouts, keep-alives).
    pub fn configure(mut self, f: impl FnOnce(Endpoint) -> Endpoint) -> DialEndpoint {
        self.endpoint = f(self.endpoint);
        self
    }

    /// A channel that connects on first use.
    pub fn connect_lazy(self) -> Channel {
        #[cfg(not(madsim))]
        if let Some((config, name)) = self.tls {
            return self
                .endpoint
                .connect_with_connector_lazy(tls_client::connector(config, name));
        }
        self.endpoint.connect_lazy()
    }

    /// A channel, connected now.
    pub async fn connect(self) -> Result<Channel, tonic::transport::Error> {
        #[cfg(not(madsim))]
        if let Some((config, name)) = self.tls {
            return self
                .endpoint
                .connect_with_connector(tls_client::connector(config, name))
                .await;
        }
        self.endpoint.connect().await
    }
}

#[cfg(not(madsim))]
pub(crate) mod tls_client {
    use super::{DialError, TlsClientSettings};
    use hyper_util::rt::TokioIo;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use std::sync::Arc;
    use tokio_rustls::rustls::{self, client::danger, DigitallySignedStruct, SignatureScheme};

    fn pem_error(what: &'static str) -> impl Fn(rustls_pki_types::pem::Error) -> DialError {
        move |e| DialError::Pem {
            what,
            reason: e.to_string(),
        }
    }

    /// The crypto of every TLS connection, client and server side: ring rather than
    /// aws-lc-rs (no C toolchain beyond the machine's); rustls 0.23.48 deprecates ring's
    /// provider only for lacking post-quantum key exchange, which no etcd client asks for.
    pub fn ring_provider() -> rustls::crypto::CryptoProvider {
        #[allow(deprecated)]
        rustls::crypto::ring::default_provider()
    }

    /// The rustls client configuration for `settings`.
    pub fn config(settings: &TlsClientSettings) -> Result<Arc<rustls::ClientConfig>, DialError> {
        let provider = Arc::new(ring_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if settings.skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match &settings.ca_pem {
                Some(pem) => {
                    for cert in CertificateDer::pem_slice_iter(pem) {
                        roots.add(cert.map_err(pem_error("CA certificate"))?)?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(cert);
                    }
                }
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match &settings.identity_pem {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(pem_error("certificate"))?;
                let key = PrivateKeyDer::from_pem_slice(key).map_err(pem_error("key"))?;
                builder.with_client_auth_cert(chain, key)?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// A connector for tonic: TCP to the URI's host and port, then a TLS handshake that checks
    /// the server's certificate for `name`.
    pub fn connector(
        config: Arc<rustls::ClientConfig>,
        name: String,
    ) -> impl tower::Service<
        http::Uri,
        Response = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        Error = std::io::Error,
        Future = impl Send,
    > + Send
           + Clone {
        tower::service_fn(move |uri: http::Uri| {
            let (config, name) = (config.clone(), name.clone());
            async move {
                let host = uri
                    .host()
                    .unwrap_or_default()
                    .trim_matches(['[', ']'])
                    .to_string();
                let port = uri.port_u16().unwrap_or(443);
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let server = ServerName::try_from(name)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(server, tcp)
                    .await?;
                Ok(TokioIo::new(tls))
            }
        })
    }

    /// Accepts any server certificate; signatures are still checked.
    #[derive(Debug)]
    struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

    impl danger::ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<danger::ServerCertVerified, rustls::Error> {
            Ok(danger::ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<danger::HandshakeSignatureValid, rustls::Error> {
            let algs = &self.0.signature_verification_algorithms;
            rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<danger::HandshakeSignatureValid, rustls::Error> {
            let algs = &self.0.signature_verification_algorithms;
            rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
