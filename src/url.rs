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
        let Some((scheme, rest)) = split_scheme(url) else {
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

/// Replaces every password in a connection string with `***`: the one in `scheme://user:password@host…`
/// (even typed unencoded, with `/`, `?`, `#` or `@` in it: that is where users paste secrets), a
/// `password=` query parameter (libpq accepts one), and `password=…` in a `key=value` connection string
/// (given by mistake). When in doubt it hides more, never less.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = split_scheme(url) else {
        return redact_params(url, &[' ', '\t', '\n']);
    };
    // Parameters first (a `password=` value may hold an `@`), then the user info, which ends at the last
    // `@`: a password typed unencoded may hold `/`, `?`, `#` or `@`.
    let rest = redact_params(rest, &['&', '#']);
    match rest.rfind('@') {
        Some(at) if rest[..at].contains(':') => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        _ => format!("{scheme}://{rest}"),
    }
}

/// `scheme://rest`, where the scheme is a URL scheme (a letter, then letters, digits, `+`, `-`, `.`); a
/// `://` inside, say, a password of a `key=value` string does not make it a URL.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// Masks the value of every `password`-like `key=value` pair; a value ends at one of `ends`.
fn redact_params(text: &str, ends: &[char]) -> String {
    const KEYS: [&str; 4] = ["password", "passwd", "pass", "pwd"];
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(eq) = lower[from..].find('=').map(|i| from + i) {
        let key_start = lower[..eq]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let key = lower[key_start..eq].trim();
        from = eq + 1;
        if !KEYS.contains(&key) {
            continue;
        }
        let value = &text[eq + 1..];
        let len = match value.strip_prefix('\'') {
            // libpq's quoted value: up to the closing quote (or everything, if unclosed).
            Some(v) => v.find('\'').map_or(value.len(), |i| i + 2),
            None => value.find(ends).unwrap_or(value.len()),
        };
        out.push_str(&text[copied..eq + 1]);
        out.push_str("***");
        copied = eq + 1 + len;
        from = copied;
    }
    out.push_str(&text[copied..]);
    out
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
        assert_eq!(redact("mysql://u:pa/ss?x#y@h/db"), "mysql://u:***@h/db");
        assert_eq!(
            redact("postgres://u@h/db?sslmode=require&password=s3cret&x=1"),
            "postgres://u@h/db?sslmode=require&password=***&x=1"
        );
        assert_eq!(
            redact("host=h password='a b' dbname=d"),
            "host=h password=*** dbname=d"
        );
        assert_eq!(redact("postgres://h:5432/db"), "postgres://h:5432/db");
        // Found by the fuzzer (fuzz/): a multibyte character before `=` (a byte-order mark here).
        assert_eq!(redact("\u{feff}=x"), "\u{feff}=x");
        assert_eq!(redact("é password=s3cret"), "é password=***");
        // Found by the property test: a `://` inside a key=value password does not make it a URL.
        assert_eq!(
            redact("host=a password=x://y dbname=d"),
            "host=a password=*** dbname=d"
        );
        assert!(
            !DatabaseUrl::parse("host=a password=x://y")
                .unwrap_err()
                .to_string()
                .contains("x:")
        );
        assert_eq!(
            redact("postgres://root@h:5432/db"),
            "postgres://root@h:5432/db"
        );
    }

    proptest::proptest! {
        /// No text makes parsing or redaction panic (the fuzzer found a multibyte character before `=`).
        #[test]
        fn never_panics_on_arbitrary_text(text in proptest::prelude::any::<String>()) {
            let _ = DatabaseUrl::parse(&text);
            let _ = redact(&text);
        }

        /// Whatever the password holds and wherever it is written, the redacted text never shows it. The
        /// password is bracketed by `Ж…Ю`, letters no URL part or message uses, so a hit is a leak.
        #[test]
        fn redaction_never_shows_the_password(
            secret in r"[a-z0-9/?#:@%!$;., ]{0,12}",
            user in r"[a-y]{1,6}",
            host in r"[a-y][a-y.]{0,8}",
            db in r"[a-y_]{0,8}",
            params in r"(\?[a-y-]{1,6}=[a-y/.@]{0,6}(&[a-y-]{1,6}=[a-y/@]{0,6})?)?",
            shape in 0..3usize,
            scheme in proptest::sample::select(vec!["postgres", "postgresql", "mysql", "mariadb"]),
        ) {
            let password = format!("Ж{secret}Ю");
            let url = match shape {
                0 => format!("{scheme}://{user}:{password}@{host}:5432/{db}{params}"),
                1 => {
                    let p = password.replace(['&', '#', ' '], "");
                    let sep = if params.is_empty() { "?" } else { "&" };
                    format!("{scheme}://{user}@{host}/{db}{params}{sep}password={p}")
                }
                _ => {
                    let p = password.replace([' ', '\''], "");
                    format!("host={host} user={user} password={p} dbname={db}")
                }
            };
            let shown = redact(&url);
            proptest::prop_assert!(!shown.contains('Ж') && !shown.contains('Ю'), "{url} -> {shown}");
            let parsed = match DatabaseUrl::parse(&url) {
                Ok(parsed) => format!("{parsed:?}"),
                Err(e) => e.to_string(),
            };
            proptest::prop_assert!(!parsed.contains('Ж') && !parsed.contains('Ю'), "{url} -> {parsed}");
        }
    }
}
