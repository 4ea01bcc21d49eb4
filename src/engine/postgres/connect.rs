//! Connecting to PostgreSQL from a URL. `sslmode` and `sslrootcert` are read here and mean what they
//! mean to libpq (the `postgres` crate rejects `sslrootcert` and the verify modes); the rest of the URL
//! goes to the crate. TLS is rustls with the `ring` provider. No password ever reaches a message: the
//! target prints as `user@host:port/db`, and every error text is scrubbed of the password.

use crate::error::{Error, Result};
use postgres::Client;
use postgres::config::{Host, SslMode as WireSslMode};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// libpq's `sslmode` values that zerodown honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain connection only.
    Disable,
    /// TLS when the server offers it (unverified, as libpq does), else plain. libpq's default.
    Prefer,
    /// TLS or nothing; the certificate is verified only when `sslrootcert` is given (as libpq does).
    Require,
    /// TLS, the certificate chain verified, the host name not.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

/// Where to connect, parsed from a URL. Its `Debug` never shows the password.
#[derive(Clone)]
pub struct Target {
    pub config: postgres::Config,
    pub sslmode: SslMode,
    /// `sslrootcert`: a PEM file, or `system` for the operating system's roots.
    pub rootcert: Option<String>,
    /// `user@host:port/database`, for messages.
    pub label: String,
    /// `host:port`, for messages.
    pub host: String,
    password: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({}, sslmode {:?})", self.label, self.sslmode)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Target {
    /// Parses a `postgres://` or `postgresql://` URL.
    pub fn parse(url: &str) -> Result<Target> {
        let shown = crate::url::redact(url);
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let mut sslmode = SslMode::Prefer;
        let mut rootcert = None;
        let mut kept = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => {
                    sslmode = match percent_decode(v).as_str() {
                        "disable" => SslMode::Disable,
                        "allow" | "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(Error::Url(format!(
                                "{shown}: unknown sslmode `{other}`; use disable, prefer, require, verify-ca or verify-full"
                            )));
                        }
                    }
                }
                "sslrootcert" => rootcert = Some(percent_decode(v)),
                _ => kept.push(pair),
            }
        }
        // libpq: sslrootcert=system alone means verify-full.
        if rootcert.as_deref() == Some("system") && query.is_some_and(|q| !q.contains("sslmode=")) {
            sslmode = SslMode::VerifyFull;
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: postgres::Config = rest.parse().map_err(|e: postgres::Error| {
            Error::Url(format!("{shown}: {}", scrub(&e.to_string(), None)))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .filter(|p| !p.is_empty());
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let host = format!("{host}:{port}");
        let user = config.get_user().unwrap_or("(no user)").to_string();
        let db = config.get_dbname().unwrap_or(&user).to_string();
        Ok(Target {
            label: format!("{user}@{host}/{db}"),
            host,
            config,
            sslmode,
            rootcert,
            password,
        })
    }

    /// Removes the password from a text that might quote it.
    pub fn scrub(&self, text: &str) -> String {
        scrub(text, self.password.as_deref())
    }

    /// Opens a connection that carries `application_name`. Its statements use no parallel workers:
    /// a migration takes one backend's CPU and leaves the rest to the application (a parallel index
    /// build took every core of the 2-core benchmark machine, and the application's p99 with them).
    pub fn connect(&self, application_name: &str) -> Result<Client> {
        let mut config = self.config.clone();
        config.application_name(application_name);
        let options = format!(
            "{} -c max_parallel_workers_per_gather=0 -c max_parallel_maintenance_workers=0",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim_start());
        let result = match self.sslmode {
            SslMode::Disable => {
                config.ssl_mode(WireSslMode::Disable);
                config.connect(postgres::NoTls)
            }
            mode => {
                config.ssl_mode(if mode == SslMode::Prefer {
                    WireSslMode::Prefer
                } else {
                    WireSslMode::Require
                });
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
                config.connect(tls)
            }
        };
        result.map_err(|e| self.connect_error(&e))
    }

    fn connect_error(&self, e: &postgres::Error) -> Error {
        let user = self.config.get_user().unwrap_or("(no user)");
        let text = self.scrub(&e.to_string());
        let msg = match e.as_db_error().map(|d| d.code().code()) {
            Some("28P01") | Some("28000") => format!(
                "PostgreSQL at {} refused user `{user}`: {}; check the user and password in the URL (the password is not shown)",
                self.host,
                self.scrub(
                    e.as_db_error()
                        .map(|d| d.message())
                        .unwrap_or("authentication failed")
                )
            ),
            Some("3D000") => format!(
                "PostgreSQL at {}: database `{}` does not exist; check the database name in the URL",
                self.host,
                self.config.get_dbname().unwrap_or(user)
            ),
            _ => format!(
                "cannot connect to PostgreSQL at {} (as `{user}`, sslmode {}): {text}; check that the server runs and accepts connections there",
                self.host,
                match self.sslmode {
                    SslMode::Disable => "disable",
                    SslMode::Prefer => "prefer",
                    SslMode::Require => "require",
                    SslMode::VerifyCa => "verify-ca",
                    SslMode::VerifyFull => "verify-full",
                }
            ),
        };
        Error::Connect(msg)
    }

    /// The rustls configuration for this sslmode: what libpq would verify, and nothing more.
    fn tls_config(&self) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match (&self.rootcert, self.sslmode) {
            (Some(r), _) if r == "system" => Some(system_roots()?),
            (Some(path), _) => Some(file_roots(path)?),
            (None, SslMode::VerifyCa | SslMode::VerifyFull) => Some(system_roots()?),
            (None, _) => None,
        };
        // libpq: with a root certificate, `require` verifies the chain like `verify-ca`; `prefer`
        // never verifies.
        let verifier: Arc<dyn ServerCertVerifier> = match (roots, self.sslmode) {
            (_, SslMode::Prefer) | (None, _) => Arc::new(AcceptAny(provider.clone())),
            (Some(roots), mode) => {
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| Error::Connect(format!("TLS setup: {e}")))?;
                Arc::new(ChainVerifier {
                    inner: webpki,
                    check_name: mode == SslMode::VerifyFull,
                })
            }
        };
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Connect(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }
}

fn scrub(text: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if !p.is_empty() => text.replace(p, "***"),
        _ => text.to_string(),
    }
}

fn system_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(Error::Connect(
            "sslmode verify-ca/verify-full: no system root certificates found; give sslrootcert=/path/to/ca.pem in the URL".into(),
        ));
    }
    Ok(store)
}

fn file_roots(path: &str) -> Result<RootCertStore> {
    let shown = PathBuf::from(path);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&shown)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::Connect(format!(
                "sslrootcert `{}`: cannot read PEM certificates: {e}",
                shown.display()
            ))
        })?;
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(Error::Connect(format!(
            "sslrootcert `{}` holds no usable certificate",
            shown.display()
        )));
    }
    Ok(store)
}

/// `sslmode=prefer`/`require` without a root certificate: encrypt, verify nothing about the peer
/// (libpq's documented behaviour), but still check the handshake's signatures.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Verifies the chain against the roots; the host name only for `verify-full`.
#[derive(Debug)]
struct ChainVerifier {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ssl_options_and_hides_the_password() {
        let t = Target::parse(
            "postgres://app:s3cret@db.example:6543/prod?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(t.sslmode, SslMode::VerifyFull);
        assert_eq!(t.rootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(t.label, "app@db.example:6543/prod");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(t.scrub("x s3cret y"), "x *** y");
        assert_eq!(
            Target::parse("postgresql://u@h/d").unwrap().sslmode,
            SslMode::Prefer
        );
        assert_eq!(
            Target::parse("postgres://u@h/d?sslrootcert=system")
                .unwrap()
                .sslmode,
            SslMode::VerifyFull
        );
        let e = Target::parse("postgres://u:s3cret@h/d?sslmode=sometimes")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sometimes") && !e.contains("s3cret"), "{e}");
        let e = Target::parse("postgres://u:s3cret@h/d?bogus=1")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
