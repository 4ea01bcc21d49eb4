//! The migration tools' own history tables, so a folder the tool also applies is never applied
//! twice: a version the tool recorded is skipped, and a migration zerodown applies is recorded the
//! way the tool would record it.
//!
//! - sqlx: `_sqlx_migrations(version, description, installed_on, success, checksum, execution_time)`,
//!   one row per applied migration; `checksum` is the SHA-384 of the file, which sqlx compares with
//!   the file on its next run; `execution_time` in nanoseconds.
//! - golang-migrate: `schema_migrations(version bigint, dirty bool)`, one row: the newest version
//!   applied; every lower version counts as applied; `dirty` means it failed halfway.
//! - Diesel: `__diesel_schema_migrations(version varchar(50), run_on)`, one row per applied
//!   migration; the version is the folder name up to its first `_`, dashes taken out.
//! - goose: `goose_db_version(id, version_id, is_applied, tstamp)`, a row per up or down, the newest
//!   (highest id) per version saying whether it is applied; goose adds version 0 as it creates it.
//! - Flyway: `flyway_schema_history(installed_rank, version, …, success)`: read only. Its rows carry
//!   Flyway's own checksum of the script, which zerodown does not compute yet, so it writes none.
//!
//! The table shapes, names and values are the tools' own (their docs and DDL); only values are bound.

use super::layout::{Entry, Layout};
use crate::error::{Error, Result};
use crate::url::DatabaseUrl;
use std::time::Duration;

/// A tool whose history table zerodown reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Sqlx,
    GolangMigrate,
    Diesel,
    Goose,
    Flyway,
}

impl Tool {
    pub fn of(layout: Layout) -> Option<Tool> {
        match layout {
            Layout::Sqlx => Some(Tool::Sqlx),
            Layout::GolangMigrate => Some(Tool::GolangMigrate),
            Layout::Diesel => Some(Tool::Diesel),
            Layout::Goose => Some(Tool::Goose),
            Layout::Flyway => Some(Tool::Flyway),
            Layout::Plain => None,
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            Tool::Sqlx => "_sqlx_migrations",
            Tool::GolangMigrate => "schema_migrations",
            Tool::Diesel => "__diesel_schema_migrations",
            Tool::Goose => "goose_db_version",
            Tool::Flyway => "flyway_schema_history",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Tool::Sqlx => "sqlx",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Diesel => "Diesel",
            Tool::Goose => "goose",
            Tool::Flyway => "Flyway",
        }
    }
}

/// What the tool's table says about one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    No,
    Applied,
    /// sqlx `success = false`, golang-migrate `dirty = true`: the tool failed halfway through it.
    Failed,
}

/// The tool's history as read at the beginning of a run.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// (version, applied successfully), in the table's order (goose's: newest first).
    rows: Vec<(String, bool)>,
}

impl History {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn numbers(&self) -> impl Iterator<Item = (i64, bool)> + '_ {
        self.rows
            .iter()
            .filter_map(|(v, ok)| v.trim().parse().ok().map(|n| (n, *ok)))
    }

    /// A version the tool failed halfway through (sqlx `success = false`, golang-migrate `dirty`).
    pub fn failed(&self, tool: Tool) -> Option<String> {
        match tool {
            Tool::Sqlx | Tool::GolangMigrate | Tool::Flyway => self
                .rows
                .iter()
                .find(|(_, ok)| !*ok)
                .map(|(v, _)| v.clone()),
            // goose's `is_applied = false` is a migration taken down, not a failure.
            Tool::Diesel | Tool::Goose => None,
        }
    }

    pub fn recorded(&self, tool: Tool, entry: &Entry) -> Recorded {
        let number = entry.number();
        let hit = match tool {
            Tool::Sqlx => self
                .numbers()
                .find(|(v, _)| Some(*v) == number)
                .map(|(_, ok)| ok),
            // One row: the newest version; dirty applies to that version only.
            Tool::GolangMigrate => match (self.numbers().max(), number) {
                (Some((v, false)), Some(n)) if v == n => Some(false),
                (Some((v, _)), Some(n)) if v >= n => Some(true),
                _ => None,
            },
            Tool::Diesel => self
                .rows
                .iter()
                .find(|(v, _)| Some(v) == entry.version.as_ref())
                .map(|_| true),
            // The newest row of the version says; a version taken down is not applied.
            Tool::Goose => match self.numbers().find(|(v, _)| Some(*v) == number) {
                Some((_, true)) => Some(true),
                _ => None,
            },
            // Flyway compares versions part by part as numbers (`1.01` is `1.1`); the newest wins.
            Tool::Flyway => {
                let parts = |v: &str| -> Vec<u128> {
                    let mut p: Vec<u128> = v
                        .split('.')
                        .map(|x| x.parse().unwrap_or(u128::MAX))
                        .collect();
                    while p.len() > 1 && p.last() == Some(&0) {
                        p.pop();
                    }
                    p
                };
                let want = entry.version.as_deref().map(parts);
                self.rows
                    .iter()
                    .rev()
                    .find(|(v, _)| Some(parts(v)) == want)
                    .map(|(_, ok)| *ok)
            }
        };
        match hit {
            None => Recorded::No,
            Some(true) => Recorded::Applied,
            Some(false) => Recorded::Failed,
        }
    }
}

/// A bound value.
enum Param {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// A plain connection for the history table, apart from the engine's driver session.
enum Conn {
    Pg(postgres::Client),
    My(mysql::Conn),
    Lite(rusqlite::Connection),
}

fn db(what: &str, e: impl std::fmt::Display) -> Error {
    Error::db(what, e)
}

impl Conn {
    fn open(url: &DatabaseUrl) -> Result<Conn> {
        Ok(match url {
            DatabaseUrl::Postgres(u) => {
                Conn::Pg(crate::engine::postgres::Target::parse(u)?.connect("zerodown migrate")?)
            }
            DatabaseUrl::Mysql(u) => Conn::My(crate::engine::mysql::Target::parse(u)?.connect()?),
            DatabaseUrl::Sqlite(p) => {
                let c = rusqlite::Connection::open_with_flags(
                    p,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
                )
                .map_err(|e| Error::Connect(format!("cannot open `{}`: {e}", p.display())))?;
                c.busy_timeout(Duration::from_secs(10))
                    .map_err(|e| db("setting busy_timeout", e))?;
                Conn::Lite(c)
            }
        })
    }

    fn table_exists(&mut self, table: &str) -> Result<bool> {
        let what = "looking for the tool's history table";
        Ok(match self {
            Conn::Pg(c) => c
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
                .map_err(|e| db(what, e))?
                .get(0),
            Conn::My(c) => {
                use mysql::prelude::Queryable;
                let n: Option<i64> = c
                    .exec_first(
                        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?",
                        (table,),
                    )
                    .map_err(|e| db(what, e))?;
                n.unwrap_or(0) > 0
            }
            Conn::Lite(c) => {
                c.query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(|e| db(what, e))?
                    > 0
            }
        })
    }

    /// Rows of a text and an integer.
    fn pairs(&mut self, sql: &str) -> Result<Vec<(String, i64)>> {
        let what = "reading the tool's history table";
        Ok(match self {
            Conn::Pg(c) => c
                .query(sql, &[])
                .map_err(|e| db(what, e))?
                .iter()
                .map(|r| (r.get::<_, String>(0), i64::from(r.get::<_, i32>(1))))
                .collect(),
            Conn::My(c) => {
                use mysql::prelude::Queryable;
                c.query::<(String, i64), _>(sql).map_err(|e| db(what, e))?
            }
            Conn::Lite(c) => {
                let mut s = c.prepare(sql).map_err(|e| db(what, e))?;
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(|e| db(what, e))?
            }
        })
    }

    /// Runs statements written with `?` placeholders in one transaction.
    fn exec(&mut self, what: &str, statements: &[(&str, Vec<Param>)]) -> Result<()> {
        match self {
            Conn::Pg(c) => {
                let mut tx = c.transaction().map_err(|e| db(what, e))?;
                for (sql, params) in statements {
                    let sql = numbered_placeholders(sql);
                    let boxed: Vec<Box<dyn postgres::types::ToSql + Sync>> = params
                        .iter()
                        .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                            match p {
                                Param::Int(i) => Box::new(*i),
                                Param::Text(t) => Box::new(t.clone()),
                                Param::Bytes(b) => Box::new(b.clone()),
                            }
                        })
                        .collect();
                    let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                        boxed.iter().map(|b| b.as_ref()).collect();
                    tx.execute(sql.as_str(), &refs).map_err(|e| db(what, e))?;
                }
                tx.commit().map_err(|e| db(what, e))
            }
            Conn::My(c) => {
                use mysql::prelude::Queryable;
                let mut tx = c
                    .start_transaction(mysql::TxOpts::default())
                    .map_err(|e| db(what, e))?;
                for (sql, params) in statements {
                    let values: Vec<mysql::Value> = params
                        .iter()
                        .map(|p| match p {
                            Param::Int(i) => mysql::Value::from(*i),
                            Param::Text(t) => mysql::Value::from(t.as_str()),
                            Param::Bytes(b) => mysql::Value::from(b.clone()),
                        })
                        .collect();
                    if values.is_empty() {
                        tx.query_drop(*sql).map_err(|e| db(what, e))?;
                    } else {
                        tx.exec_drop(*sql, mysql::Params::Positional(values))
                            .map_err(|e| db(what, e))?;
                    }
                }
                tx.commit().map_err(|e| db(what, e))
            }
            Conn::Lite(c) => {
                let tx = c
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| db(what, e))?;
                for (sql, params) in statements {
                    let values: Vec<rusqlite::types::Value> = params
                        .iter()
                        .map(|p| match p {
                            Param::Int(i) => rusqlite::types::Value::Integer(*i),
                            Param::Text(t) => rusqlite::types::Value::Text(t.clone()),
                            Param::Bytes(b) => rusqlite::types::Value::Blob(b.clone()),
                        })
                        .collect();
                    tx.execute(sql, rusqlite::params_from_iter(values))
                        .map_err(|e| db(what, e))?;
                }
                tx.commit().map_err(|e| db(what, e))
            }
        }
    }
}

/// `?` → `$1`, `$2`, … for PostgreSQL (the statements here are constants without `?` in literals).
fn numbered_placeholders(sql: &str) -> String {
    let mut n = 0;
    sql.chars()
        .map(|c| {
            if c == '?' {
                n += 1;
                format!("${n}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The tool's history; empty when it has no table yet.
pub fn read(url: &DatabaseUrl, tool: Tool) -> Result<History> {
    let mut conn = Conn::open(url)?;
    if !conn.table_exists(tool.table())? {
        return Ok(History::default());
    }
    let (column, ok, order) = match tool {
        Tool::Sqlx => ("version", "success", ""),
        Tool::GolangMigrate => ("version", "NOT dirty", ""),
        Tool::Diesel => ("version", "TRUE", ""),
        Tool::Goose => ("version_id", "is_applied", " ORDER BY id DESC"),
        Tool::Flyway => (
            "version",
            "success",
            " WHERE version IS NOT NULL ORDER BY installed_rank",
        ),
    };
    let text = ["text", "CHAR", "TEXT"][engine(url)];
    let sql = format!(
        "SELECT CAST({column} AS {text}), CASE WHEN {ok} THEN 1 ELSE 0 END FROM {}{order}",
        tool.table()
    );
    let rows = conn
        .pairs(&sql)?
        .into_iter()
        .map(|(v, ok)| (v, ok == 1))
        .collect();
    Ok(History { rows })
}

/// 0 PostgreSQL, 1 MySQL/MariaDB, 2 SQLite: the index into each statement's three spellings.
fn engine(url: &DatabaseUrl) -> usize {
    match url {
        DatabaseUrl::Postgres(_) => 0,
        DatabaseUrl::Mysql(_) => 1,
        DatabaseUrl::Sqlite(_) => 2,
    }
}

/// Whether zerodown writes the tool's row (Flyway's is read only).
pub fn writes(tool: Tool) -> bool {
    tool != Tool::Flyway
}

/// Records `entry` as applied, the way the tool would; a no-op when it already is.
pub fn record(url: &DatabaseUrl, tool: Tool, entry: &Entry, elapsed: Duration) -> Result<()> {
    if !writes(tool) {
        return Ok(());
    }
    let version = entry.number().ok_or_else(|| {
        Error::Refused(format!(
            "`{}` has no numeric version for {}",
            entry.name,
            tool.label()
        ))
    })?;
    let mut conn = Conn::open(url)?;
    let what = format!("recording `{}` in {}", entry.name, tool.table());
    let engine = engine(url);
    match tool {
        Tool::Sqlx => {
            let create = [
                "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
                "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
                "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
            ][engine];
            let insert = [
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?, ?, TRUE, ?, ?) ON CONFLICT (version) DO NOTHING",
                "INSERT IGNORE INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?, ?, TRUE, ?, ?)",
                "INSERT OR IGNORE INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?, ?, TRUE, ?, ?)",
            ][engine];
            let text = std::fs::read(&entry.path)
                .map_err(|e| Error::Io(format!("{}: {e}", entry.path.display())))?;
            let checksum = {
                use sha2::Digest;
                sha2::Sha384::digest(&text).to_vec()
            };
            let nanos = i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX);
            conn.exec(
                &what,
                &[
                    (create, vec![]),
                    (
                        insert,
                        vec![
                            Param::Int(version),
                            Param::Text(entry.description.clone()),
                            Param::Bytes(checksum),
                            Param::Int(nanos),
                        ],
                    ),
                ],
            )
        }
        Tool::GolangMigrate => {
            let create: &[&str] = match engine {
                2 => &[
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version uint64, dirty bool)",
                    "CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version)",
                ],
                _ => &[
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)",
                ],
            };
            // DDL first (MySQL commits it implicitly), then the one row, moved only forward.
            for sql in create {
                conn.exec(&what, &[(sql, vec![])])?;
            }
            conn.exec(
                &what,
                &[
                    ("DELETE FROM schema_migrations WHERE version < ?", vec![Param::Int(version)]),
                    (
                        [
                            "INSERT INTO schema_migrations (version, dirty) SELECT CAST(? AS BIGINT), FALSE WHERE NOT EXISTS (SELECT 1 FROM schema_migrations)",
                            "INSERT INTO schema_migrations (version, dirty) SELECT ?, FALSE FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM schema_migrations)",
                            "INSERT INTO schema_migrations (version, dirty) SELECT ?, 0 WHERE NOT EXISTS (SELECT 1 FROM schema_migrations)",
                        ][engine],
                        vec![Param::Int(version)],
                    ),
                ],
            )
        }
        Tool::Diesel => {
            let insert = [
                "INSERT INTO __diesel_schema_migrations (version) VALUES (?) ON CONFLICT (version) DO NOTHING",
                "INSERT IGNORE INTO __diesel_schema_migrations (version) VALUES (?)",
                "INSERT OR IGNORE INTO __diesel_schema_migrations (version) VALUES (?)",
            ][engine];
            let text = entry.version.clone().unwrap_or_default();
            conn.exec(
                &what,
                &[(
                    "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
                    vec![],
                )],
            )?;
            conn.exec(&what, &[(insert, vec![Param::Text(text)])])
        }
        Tool::Flyway => Ok(()),
        Tool::Goose => {
            if !conn.table_exists(tool.table())? {
                let create = [
                    "CREATE TABLE goose_db_version (id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NOT NULL DEFAULT now())",
                    "CREATE TABLE goose_db_version (id bigint(20) unsigned NOT NULL AUTO_INCREMENT, version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NULL default now(), PRIMARY KEY(id))",
                    "CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY AUTOINCREMENT, version_id INTEGER NOT NULL, is_applied INTEGER NOT NULL, tstamp TIMESTAMP DEFAULT (datetime('now')))",
                ][engine];
                conn.exec(&what, &[(create, vec![])])?;
                // goose's own first row, as goose writes it when it creates the table.
                conn.exec(
                    &what,
                    &[(
                        "INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, TRUE)",
                        vec![Param::Int(0)],
                    )],
                )?;
            }
            conn.exec(
                &what,
                &[(
                    "INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, TRUE)",
                    vec![Param::Int(version)],
                )],
            )
        }
    }
}
