//! Database URLs: which engine, and where. Parsed by hand because generic URL parsers read the first
//! path segment of `sqlite://relative/path.db` as a host.

use crate::error::{Error, Result};
use std::path::PathBuf;

/// A parsed `--database-url`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://relative/path.db` or `sqlite:///absolute/path.db`.
    Sqlite(PathBuf),
    /// `postgres://` or `postgresql://`.
    Postgres(String),
    /// `mysql://` or `mariadb://` (the MySQL/MariaDB engine translates the scheme for its driver).
    Mysql(String),
}

impl std::fmt::Debug for DatabaseUrl {
    // Never prints a password, even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<DatabaseUrl> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(Error::Url(format!(
                "`{}` has no scheme; write sqlite://path/to/app.db (or postgres://…, mysql://…)",
                redact(url)
            )));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" | "sqlite3" => {
                let path = rest.split(['?', '#']).next().unwrap_or_default();
                if path.is_empty() || path == "/" {
                    return Err(Error::Url(
                        "sqlite URL without a path; write sqlite://relative/app.db or sqlite:///absolute/app.db"
                            .into(),
                    ));
                }
                if path == ":memory:" {
                    return Err(Error::Url(
                        "an in-memory SQLite database cannot be migrated from another process; give a file path"
                            .into(),
                    ));
                }
                Ok(DatabaseUrl::Sqlite(PathBuf::from(percent_decode(path))))
            }
            "postgres" | "postgresql" => Ok(DatabaseUrl::Postgres(url.to_string())),
            "mysql" | "mariadb" => Ok(DatabaseUrl::Mysql(url.to_string())),
            other => Err(Error::Url(format!(
                "unknown scheme `{other}://`; zerodown speaks sqlite://, postgres://, postgresql://, mysql:// and mariadb://"
            ))),
        }
    }

    /// The URL with any password replaced by `***`, safe for messages and logs.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) | DatabaseUrl::Mysql(u) => redact(u),
        }
    }
}

/// Replaces the password of `scheme://user:password@host…` with `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***{}{tail}", &authority[at..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/app.db").unwrap(),
            DatabaseUrl::Sqlite("data/app.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/app.db").unwrap(),
            DatabaseUrl::Sqlite("/tmp/app.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://my%20app.db?mode=rw").unwrap(),
            DatabaseUrl::Sqlite("my app.db".into())
        );
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("app.db").is_err());
        assert!(DatabaseUrl::parse("oracle://x").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        let u = DatabaseUrl::parse("postgres://app:s3cret@db:5432/app").unwrap();
        assert_eq!(u.redacted(), "postgres://app:***@db:5432/app");
        assert!(!format!("{u:?}").contains("s3cret"));
        assert_eq!(redact("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(redact("mysql://u:p@ss@h/db"), "mysql://u:***@h/db");
    }
}
