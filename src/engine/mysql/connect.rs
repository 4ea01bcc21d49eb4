//! `mysql://` and `mariadb://` URLs: parsed here by hand, because the `mysql` crate accepts only
//! `mysql://` and its `Opts` carry the password (never Debug-print them).

use crate::error::{Error, Result};
use mysql::{Conn, OptsBuilder};
use std::time::Duration;

/// `ssl-mode`, with MySQL's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    /// TLS if the server offers it. This build has no TLS, so it connects in plain text (and says so).
    Preferred,
    Required,
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
    /// `user@host:port/database`, for messages.
    pub label: String,
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
        let mut ssl_mode = SslMode::Preferred;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k.to_ascii_lowercase().replace('_', "-").as_str() {
                "ssl-mode" | "sslmode" => {
                    ssl_mode = match v.to_ascii_uppercase().replace('-', "_").as_str() {
                        "DISABLED" => SslMode::Disabled,
                        "PREFERRED" => SslMode::Preferred,
                        "REQUIRED" => SslMode::Required,
                        "VERIFY_IDENTITY" | "VERIFY_CA" => SslMode::VerifyIdentity,
                        other => {
                            return Err(Error::Url(format!(
                                "`{redacted}`: ssl-mode `{other}` is unknown; use DISABLED, PREFERRED, REQUIRED or VERIFY_IDENTITY"
                            )));
                        }
                    }
                }
                "ssl-ca" => {}
                other => {
                    return Err(Error::Url(format!(
                        "`{redacted}`: parameter `{other}` is unknown; zerodown reads ssl-mode and ssl-ca"
                    )));
                }
            }
        }
        if matches!(ssl_mode, SslMode::Required | SslMode::VerifyIdentity) {
            return Err(Error::Url(format!(
                "`{redacted}`: this zerodown build has no TLS for MySQL/MariaDB yet, so ssl-mode=REQUIRED/VERIFY_IDENTITY cannot be honoured; connect over a trusted network or a tunnel with ssl-mode=DISABLED"
            )));
        }
        let user = percent_decode(user);
        let password = percent_decode(password);
        let label = format!("{user}@{host}:{port}/{database}");
        Ok(Target {
            host: host.to_string(),
            port,
            user,
            password,
            database,
            ssl_mode,
            label,
        })
    }

    /// Removes the password from a message (drivers sometimes echo what they were given).
    pub fn scrub(&self, message: &str) -> String {
        if self.password.len() >= 3 {
            message.replace(&self.password, "***")
        } else {
            message.to_string()
        }
    }

    /// Opens a connection (TCP, with a 10 s connect timeout).
    pub fn connect(&self) -> Result<Conn> {
        let opts = OptsBuilder::new()
            .ip_or_hostname(Some(self.host.clone()))
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .db_name(Some(self.database.clone()))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(10)));
        Conn::new(opts).map_err(|e| {
            let why = match &e {
                mysql::Error::MySqlError(m) if m.code == 1045 => {
                    "access denied: check the user name and password".to_string()
                }
                mysql::Error::MySqlError(m) if m.code == 1049 => {
                    format!("database `{}` does not exist; create it first", self.database)
                }
                mysql::Error::IoError(_) | mysql::Error::DriverError(_) => format!(
                    "the server is unreachable ({e}); check the host and port, and that MySQL/MariaDB is running"
                ),
                _ => e.to_string(),
            };
            Error::Connect(self.scrub(&format!(
                "cannot connect to MySQL/MariaDB at {}: {why}",
                self.label
            )))
        })
    }
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
        let t = Target::parse("mysql://root@127.0.0.1/x").unwrap();
        assert_eq!((t.port, t.ssl_mode), (3306, SslMode::Preferred));
        assert!(Target::parse("mysql://u:pw@h/x?ssl-mode=REQUIRED").is_err());
        assert!(Target::parse("mysql://u:pw@h/").is_err());
        let e = Target::parse("mysql://u:hunter2@h/x?bogus=1")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
