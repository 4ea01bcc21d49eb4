//! `mysql://` and `mariadb://` URLs: parsed here by hand, because the `mysql` crate accepts only
//! `mysql://` and its `Opts` carry the password (never Debug-print them).
//!
//! TLS is the crate's rustls (ring provider), with `ssl-mode` and `ssl-ca` meaning what they mean to
//! the MySQL client. One difference the crate imposes: its root store always holds the Mozilla roots
//! (webpki-roots) besides `ssl-ca`, and it cannot read the operating system's store, so "system roots"
//! means those. With a private CA, VERIFY_IDENTITY is the mode that pins the server: VERIFY_CA would
//! also accept any publicly issued certificate.

use crate::error::{Error, Result};
use mysql::{Conn, OptsBuilder, SslOpts};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// `--build-timeout`'s default: how long an online build may run before it is stopped.
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(3600);

/// `ssl-mode`, with MySQL's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text only.
    Disabled,
    /// TLS when the server offers it (certificate not verified), else plain text. The default.
    Preferred,
    /// TLS or no connection; the certificate is not verified.
    Required,
    /// TLS; the chain must lead to `ssl-ca` (or a Mozilla root); the host name is not checked.
    VerifyCa,
    /// TLS; the chain and the host name are verified.
    VerifyIdentity,
}

/// Where to connect, without ever printing the password.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    password: String,
    pub database: String,
    pub ssl_mode: SslMode,
    /// `ssl-ca`: a PEM file of CA certificates for the VERIFY modes.
    pub ssl_ca: Option<PathBuf>,
    /// `user@host:port/database`, for messages.
    pub label: String,
    /// The password as written in the URL (percent-encoded), scrubbed from messages too.
    raw_password: String,
    /// Set when a PREFERRED connection fell back to plain text (the server offers no TLS).
    plain_fallback: Arc<AtomicBool>,
    /// `--build-timeout`, for the KILL QUERY watchdog of MySQL 8 builds.
    pub build_timeout: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Target {
    /// Parses `mysql://user:password@host:port/database?ssl-mode=…`; `mariadb://` is the same.
    pub fn parse(url: &str) -> Result<Target> {
        let redacted = crate::url::redact(url);
        let Some((scheme, rest)) = url.trim().split_once("://") else {
            return Err(Error::Url(format!("`{redacted}` has no scheme")));
        };
        if !matches!(scheme.to_ascii_lowercase().as_str(), "mysql" | "mariadb") {
            return Err(Error::Url(format!(
                "`{redacted}` is not a mysql:// or mariadb:// URL"
            )));
        }
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = main.split_once('/').unwrap_or((main, ""));
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (&authority[..at], &authority[at + 1..]),
            None => ("", authority),
        };
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| Error::Url(format!("`{redacted}`: port `{p}` is not a number")))?;
                (h, port)
            }
            _ => (hostport, 3306),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.is_empty() { "localhost" } else { host };
        let database = percent_decode(path.trim_end_matches('/'));
        if database.is_empty() {
            return Err(Error::Url(format!(
                "`{redacted}` names no database; write mysql://user:password@host:3306/database"
            )));
        }
        let mut ssl_mode = None;
        let mut ssl_ca = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k.to_ascii_lowercase().replace('_', "-").as_str() {
                "ssl-mode" | "sslmode" => {
                    ssl_mode = Some(match v.to_ascii_uppercase().replace('-', "_").as_str() {
                        "DISABLED" => SslMode::Disabled,
                        "PREFERRED" => SslMode::Preferred,
                        "REQUIRED" => SslMode::Required,
                        "VERIFY_CA" => SslMode::VerifyCa,
                        "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
                        other => {
                            return Err(Error::Url(format!(
                                "`{redacted}`: ssl-mode `{other}` is unknown; use DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"
                            )));
                        }
                    })
                }
                "ssl-ca" => ssl_ca = Some(PathBuf::from(percent_decode(v))),
                other => {
                    return Err(Error::Url(format!(
                        "`{redacted}`: parameter `{other}` is unknown; zerodown reads ssl-mode and ssl-ca"
                    )));
                }
            }
        }
        // As the MySQL client: ssl-ca without ssl-mode means VERIFY_CA. A CA named next to a mode that
        // never reads it is refused rather than silently ignored.
        let ssl_mode = match (ssl_mode, &ssl_ca) {
            (None, Some(_)) => SslMode::VerifyCa,
            (None, None) => SslMode::Preferred,
            (Some(m @ (SslMode::Disabled | SslMode::Preferred | SslMode::Required)), Some(_)) => {
                return Err(Error::Url(format!(
                    "`{redacted}`: ssl-ca is only read by ssl-mode=VERIFY_CA and VERIFY_IDENTITY; with ssl-mode={} the certificate would not be checked",
                    m.name()
                )));
            }
            (Some(m), _) => m,
        };
        let user = percent_decode(user);
        let raw_password = password.to_string();
        let password = percent_decode(password);
        let label = format!("{user}@{host}:{port}/{database}");
        Ok(Target {
            host: host.to_string(),
            port,
            user,
            password,
            database,
            ssl_mode,
            ssl_ca,
            label,
            raw_password,
            plain_fallback: Arc::new(AtomicBool::new(false)),
            build_timeout: DEFAULT_BUILD_TIMEOUT,
        })
    }

    /// Takes `--build-timeout` from the command's settings (default 1h).
    pub fn set_build_timeout(&mut self, timeout: Option<Duration>) {
        self.build_timeout = timeout.unwrap_or(DEFAULT_BUILD_TIMEOUT);
    }

    /// Arms a watchdog that runs `KILL QUERY <connection>` from a connection of its own if the
    /// statement running on `connection` outlives `timeout`. MySQL 8 has no timeout for DDL statements
    /// (max_execution_time covers only SELECT, and there is no SET STATEMENT max_statement_time as on
    /// MariaDB), so this is how an online build is held to --build-timeout. Its connection is opened
    /// before the statement starts, so a build never runs unguarded; a user may kill its own sessions
    /// without extra privileges.
    pub fn kill_query_after(&self, connection: u32, timeout: Duration) -> Result<Watchdog> {
        use mysql::prelude::Queryable;
        let mut conn = self.connect()?;
        let (disarm, armed) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || match armed.recv_timeout(timeout) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                conn.query_drop(format!("KILL QUERY {connection}")).is_ok()
            }
            _ => false,
        });
        Ok(Watchdog {
            disarm: Some(disarm),
            thread: Some(thread),
        })
    }

    /// For the plan: a PREFERRED connection that ended up in plain text, or a VERIFY_CA that is weaker
    /// than it reads.
    pub fn tls_note(&self) -> Option<String> {
        if self.plain_fallback.load(Ordering::Relaxed) {
            return Some(format!(
                "ssl-mode=PREFERRED: the server at {}:{} offers no TLS, so zerodown connects in plain text; say ssl-mode=DISABLED to make that explicit, or REQUIRED to refuse it",
                self.host, self.port
            ));
        }
        (self.ssl_mode == SslMode::VerifyCa).then(|| {
            "ssl-mode=VERIFY_CA: the MySQL driver trusts the Mozilla roots besides ssl-ca and VERIFY_CA does not check the host name, so any publicly issued certificate would pass; ssl-mode=VERIFY_IDENTITY pins the server".to_string()
        })
    }

    /// Removes the password from a message (drivers sometimes echo what they were given).
    pub fn scrub(&self, message: &str) -> String {
        let mut out = message.to_string();
        for secret in [&self.password, &self.raw_password] {
            if secret.len() >= 3 {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    /// The crate's TLS settings for a mode (`None`: plain text).
    fn ssl_opts(&self, mode: SslMode) -> Option<SslOpts> {
        let opts = SslOpts::default().with_root_cert_path(self.ssl_ca.clone());
        match mode {
            SslMode::Disabled => None,
            SslMode::Preferred | SslMode::Required => {
                Some(opts.with_danger_accept_invalid_certs(true))
            }
            SslMode::VerifyCa => Some(opts.with_danger_skip_domain_validation(true)),
            SslMode::VerifyIdentity => Some(opts),
        }
    }

    /// Opens a connection (TCP, with a 10 s connect timeout), encrypted as `ssl-mode` says.
    pub fn connect(&self) -> Result<Conn> {
        if let Some(ca) = &self.ssl_ca
            && let Err(e) = std::fs::metadata(ca)
        {
            return Err(Error::Connect(self.scrub(&format!(
                "cannot connect to MySQL/MariaDB at {}: ssl-ca `{}` cannot be read: {e}",
                self.label,
                ca.display()
            ))));
        }
        match self.connect_with(self.ssl_mode) {
            Err(mysql::Error::DriverError(mysql::DriverError::TlsNotSupported))
                if self.ssl_mode == SslMode::Preferred =>
            {
                self.plain_fallback.store(true, Ordering::Relaxed);
                tracing::debug!(target = %self.label, "the server offers no TLS; ssl-mode=PREFERRED falls back to plain text");
                self.connect_with(SslMode::Disabled)
            }
            other => other,
        }
        .map_err(|e| {
            Error::Connect(self.scrub(&format!(
                "cannot connect to MySQL/MariaDB at {}: {}",
                self.label,
                self.why(&e)
            )))
        })
    }

    fn connect_with(&self, mode: SslMode) -> std::result::Result<Conn, mysql::Error> {
        let opts = OptsBuilder::new()
            .ip_or_hostname(Some(self.host.clone()))
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .db_name(Some(self.database.clone()))
            .prefer_socket(false)
            .ssl_opts(self.ssl_opts(mode))
            .tcp_connect_timeout(Some(Duration::from_secs(10)));
        Conn::new(opts)
    }

    /// A connection failure in words that name the problem.
    fn why(&self, e: &mysql::Error) -> String {
        let mode = self.ssl_mode.name();
        if let Some(tls) = rustls_error(e) {
            use rustls::CertificateError as C;
            return match tls {
                rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => format!(
                    "ssl-mode={mode}: the server's certificate is signed neither by {} ({tls})",
                    match &self.ssl_ca {
                        Some(ca) =>
                            format!("the CA in ssl-ca `{}` nor a Mozilla root", ca.display()),
                        None =>
                            "a Mozilla root; name the server's CA with ssl-ca=<file.pem>".into(),
                    }
                ),
                rustls::Error::InvalidCertificate(
                    C::NotValidForName | C::NotValidForNameContext { .. },
                ) => format!(
                    "ssl-mode={mode}: the server's certificate is not valid for the host name `{}` ({tls}); connect with the name the certificate was issued for",
                    self.host
                ),
                rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
                    format!("ssl-mode={mode}: the server's certificate has expired ({tls})")
                }
                _ => format!("ssl-mode={mode}: the TLS handshake failed: {tls}"),
            };
        }
        match e {
            mysql::Error::DriverError(mysql::DriverError::TlsNotSupported) => format!(
                "ssl-mode={mode} needs TLS, but the server offers none (start it with --ssl-cert/--ssl-key, or use ssl-mode=PREFERRED or DISABLED on a trusted network)"
            ),
            mysql::Error::MySqlError(m) if m.code == 1045 => {
                if self.ssl_mode == SslMode::Disabled {
                    "access denied: check the user name and password (a user created REQUIRE SSL is refused in plain text: ssl-mode=DISABLED)".to_string()
                } else {
                    "access denied: check the user name and password".to_string()
                }
            }
            mysql::Error::MySqlError(m) if m.code == 1049 => {
                format!(
                    "database `{}` does not exist; create it first",
                    self.database
                )
            }
            mysql::Error::TlsError(t) => format!("ssl-mode={mode}: TLS setup failed: {t}"),
            mysql::Error::IoError(_)
            | mysql::Error::CodecError(_)
            | mysql::Error::DriverError(_) => format!(
                "the server is unreachable ({e}); check the host and port, and that MySQL/MariaDB is running"
            ),
            _ => e.to_string(),
        }
    }
}

/// See [`Target::kill_query_after`]. Dropping it disarms it and waits for its thread, so a late KILL
/// can never reach the next statement on the watched connection.
pub struct Watchdog {
    disarm: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<bool>>,
}

impl Watchdog {
    /// Disarms it; true when it had already killed the statement.
    pub fn disarm(mut self) -> bool {
        self.stop()
    }

    fn stop(&mut self) -> bool {
        if let Some(tx) = self.disarm.take() {
            let _ = tx.send(());
        }
        self.thread
            .take()
            .is_some_and(|t| t.join().unwrap_or(false))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop();
    }
}

impl SslMode {
    /// The URL spelling.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disabled => "DISABLED",
            SslMode::Preferred => "PREFERRED",
            SslMode::Required => "REQUIRED",
            SslMode::VerifyCa => "VERIFY_CA",
            SslMode::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }
}

/// The rustls error behind a failed connection: the handshake runs on the crate's first read or
/// write, so it surfaces as an I/O error (sometimes inside a codec error) wrapping it.
fn rustls_error(e: &mysql::Error) -> Option<&rustls::Error> {
    // The crate implements only the deprecated `cause()`: start below it by hand.
    let mut source: Option<&(dyn std::error::Error + 'static)> = match e {
        mysql::Error::IoError(io) => Some(io),
        mysql::Error::CodecError(c) => Some(c),
        mysql::Error::TlsError(t) => Some(t),
        _ => None,
    };
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // io::Error::source() skips the error it wraps: look inside it first.
        source = match s.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|r| r as _),
            None => s.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_schemes_and_keeps_the_password_out_of_debug() {
        let t = Target::parse("mariadb://app:s%40cret@db.internal:3307/shop?ssl-mode=DISABLED")
            .unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.user.as_str(),
                t.database.as_str()
            ),
            ("db.internal", 3307, "app", "shop")
        );
        assert_eq!(t.password, "s@cret");
        assert_eq!(t.ssl_mode, SslMode::Disabled);
        assert!(!format!("{t:?}").contains("s@cret"));
        assert_eq!(t.scrub("x s%40cret y s@cret"), "x *** y ***");
        let t = Target::parse("mysql://root@127.0.0.1/x").unwrap();
        assert_eq!((t.port, t.ssl_mode), (3306, SslMode::Preferred));
        let t = Target::parse("mysql://u:pw@h/x?ssl-mode=REQUIRED").unwrap();
        assert_eq!((t.ssl_mode, t.ssl_ca.clone()), (SslMode::Required, None));
        // ssl-ca alone means VERIFY_CA, as for the MySQL client; beside a mode that ignores it, refused.
        let t = Target::parse("mysql://u:pw@h/x?ssl-ca=/etc/my%20ca.pem").unwrap();
        assert_eq!(t.ssl_mode, SslMode::VerifyCa);
        assert_eq!(t.ssl_ca, Some(PathBuf::from("/etc/my ca.pem")));
        assert!(t.tls_note().unwrap().contains("VERIFY_IDENTITY pins"));
        let t = Target::parse("mysql://u:pw@h/x?ssl-mode=verify_identity&ssl-ca=/ca.pem").unwrap();
        assert_eq!(t.ssl_mode, SslMode::VerifyIdentity);
        assert_eq!(t.tls_note(), None);
        let e = Target::parse("mysql://u:pw@h/x?ssl-mode=REQUIRED&ssl-ca=/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(e.contains("VERIFY_CA") && !e.contains(":pw@"), "{e}");
        assert!(Target::parse("mysql://u:pw@h/x?ssl-mode=VERIFY").is_err());
        assert!(Target::parse("mysql://u:pw@h/").is_err());
        let e = Target::parse("mysql://u:hunter2@h/x?bogus=1")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
