//! The lint configuration a repository keeps: `zerodown-lint.toml` (or a `[lint]` table in another
//! TOML file). Rules on or off and their severity, files to skip, the target engine and version,
//! and whether the migration tool wraps each file in a transaction.
//!
//! ```toml
//! engine = "postgres"          # postgres | mysql | mariadb | sqlite
//! version = "15"
//! assume_in_transaction = false
//! exclude = ["**/down.sql", "db/migrations/0001_initial.sql"]
//!
//! [rules]
//! drop-column = "warning"      # error | warning | note | off
//! missing-statement-timeout = "off"
//! ```
//!
//! Per statement: `-- zerodown-ignore rule-a, rule-b` on the lines just above it (`all` for every
//! rule); per file: `-- zerodown-ignore-file rule-a` anywhere in it (squawk's `squawk-ignore`
//! convention under zerodown's name).

use super::{RULES, Rule, Severity};
use crate::analysis::{Engine, Version};
use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
pub struct Config {
    pub engine: Option<Engine>,
    pub version: Option<Version>,
    pub assume_in_transaction: bool,
    /// Rule id → severity (None: off).
    pub rules: HashMap<String, Option<Severity>>,
    /// Path patterns (`*` within a path segment, `**` across segments) of files not to lint.
    pub exclude: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    engine: Option<String>,
    version: Option<toml::Value>,
    #[serde(default)]
    assume_in_transaction: bool,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    rules: HashMap<String, String>,
}

impl Config {
    /// Reads `zerodown-lint.toml`, or the `[lint]` table of a TOML file that has one.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let value: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let table = match value.get("lint") {
            Some(toml::Value::Table(t)) => t.clone(),
            _ => value,
        };
        let raw: Raw = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        let engine = raw
            .engine
            .map(|e| {
                Engine::parse(&e).ok_or(format!(
                    "engine {e:?}: use postgres, mysql, mariadb or sqlite"
                ))
            })
            .transpose()?;
        let version = raw
            .version
            .map(|v| {
                let s = match &v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Version::parse(&s).ok_or(format!("version {s:?}: write it as 15, 10.11 or 8.0.35"))
            })
            .transpose()?;
        let mut rules = HashMap::new();
        for (id, level) in raw.rules {
            if !RULES.iter().any(|r| r.id == id) {
                return Err(format!(
                    "unknown rule {id:?} (`zerodown lint --list-rules` lists them)"
                ));
            }
            let sev = match level.as_str() {
                "error" => Some(Severity::Error),
                "warning" | "warn" => Some(Severity::Warning),
                "note" => Some(Severity::Note),
                "off" => None,
                other => {
                    return Err(format!(
                        "rule {id}: {other:?} is not error, warning, note or off"
                    ));
                }
            };
            rules.insert(id, sev);
        }
        Ok(Config {
            engine,
            version,
            assume_in_transaction: raw.assume_in_transaction,
            rules,
            exclude: raw.exclude,
        })
    }

    /// The severity a rule reports at, None when it is off.
    pub fn severity(&self, rule: &Rule) -> Option<Severity> {
        match self.rules.get(rule.id) {
            Some(s) => *s,
            None => Some(rule.severity),
        }
    }

    pub fn ignores_file(&self, path: &str) -> bool {
        self.exclude.iter().any(|p| glob(p, path))
    }
}

/// `*` matches within one path segment, `**` any number of segments.
fn glob(pattern: &str, path: &str) -> bool {
    fn rec(p: &[u8], s: &[u8]) -> bool {
        match p {
            [] => s.is_empty(),
            [b'*', b'*', b'/', rest @ ..] => {
                rec(rest, s) || (0..s.len()).any(|i| s[i] == b'/' && rec(rest, &s[i + 1..]))
            }
            [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| rec(rest, &s[i..])),
            [b'*', rest @ ..] => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| rec(rest, &s[i..])),
            [c, rest @ ..] => s.first() == Some(c) && rec(rest, &s[1..]),
        }
    }
    let path = path.trim_start_matches("./");
    rec(pattern.as_bytes(), path.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("**/down.sql", "a/b/down.sql"));
        assert!(glob("**/down.sql", "down.sql"));
        assert!(glob("db/*.sql", "db/x.sql"));
        assert!(!glob("db/*.sql", "db/a/x.sql"));
        assert!(glob("**/*.down.sql", "m/0001_x.down.sql"));
    }
}
