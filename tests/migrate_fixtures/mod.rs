//! The three engines behind one small interface for `tests/migrate.rs`: a database, sessions on it
//! (a writer thread has its own), and the engine-specific SQL the tests need.
#![allow(dead_code)]

use crate::sqlite_util::TestDb;
use crate::support::{MariaDbTestDb, PgTestDb};
use mysql::prelude::Queryable;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use zerodown::migrate::{Action, Options, Point, Report, Stopped};
use zerodown::{DatabaseUrl, Settings};

/// `zerodown migrate` through the library, at `point`, with this quiet period for the guard.
pub fn migrate(db: &Db, dir: &Path, point: Point, quiet: Duration) -> Result<Report, Box<Stopped>> {
    let options = Options {
        layout: None,
        point,
        settings: Settings {
            quiet_period: Some(quiet),
            ..Settings::default()
        },
    };
    zerodown::migrate::run(
        &db.url(),
        dir,
        &options,
        &mut |_| {},
        &AtomicBool::new(false),
    )
}

/// Each migration's name and what became of it.
pub fn actions(r: &Report) -> Vec<(&str, &Action)> {
    r.migrations
        .iter()
        .map(|m| (m.name.as_str(), &m.action))
        .collect()
}

/// A folder in a temporary directory.
pub fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

pub enum Db {
    Pg(PgTestDb),
    My(MariaDbTestDb),
    Lite(TestDb),
}

/// One connection: statements and single values.
pub trait Session: Send {
    fn exec(&mut self, sql: &str) -> Result<(), String>;
    /// The first column of the first row, as an integer (`None` for no row or NULL).
    fn int(&mut self, sql: &str) -> Option<i64>;
    fn text(&mut self, sql: &str) -> Option<String>;
}

impl Session for postgres::Client {
    fn exec(&mut self, sql: &str) -> Result<(), String> {
        self.batch_execute(sql).map_err(|e| format!("{e:?}"))
    }
    fn int(&mut self, sql: &str) -> Option<i64> {
        self.query_opt(
            &format!("SELECT CAST(x AS bigint) FROM ({sql}) AS q(x)"),
            &[],
        )
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .and_then(|r| r.get(0))
    }
    fn text(&mut self, sql: &str) -> Option<String> {
        self.query_opt(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .and_then(|r| r.get(0))
    }
}

impl Session for mysql::Conn {
    fn exec(&mut self, sql: &str) -> Result<(), String> {
        self.query_drop(sql).map_err(|e| e.to_string())
    }
    fn int(&mut self, sql: &str) -> Option<i64> {
        self.query_first::<Option<i64>, _>(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .flatten()
    }
    fn text(&mut self, sql: &str) -> Option<String> {
        self.query_first::<Option<String>, _>(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .flatten()
    }
}

/// rusqlite's connection is Send but not Sync; a session is used from one thread at a time.
pub struct Lite(pub rusqlite::Connection);

impl Session for Lite {
    fn exec(&mut self, sql: &str) -> Result<(), String> {
        self.0.execute_batch(sql).map_err(|e| e.to_string())
    }
    fn int(&mut self, sql: &str) -> Option<i64> {
        use rusqlite::OptionalExtension;
        self.0
            .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
            .optional()
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .flatten()
    }
    fn text(&mut self, sql: &str) -> Option<String> {
        use rusqlite::OptionalExtension;
        self.0
            .query_row(sql, [], |r| r.get::<_, Option<String>>(0))
            .optional()
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .flatten()
    }
}

impl Db {
    pub fn url(&self) -> DatabaseUrl {
        match self {
            Db::Pg(d) => DatabaseUrl::parse(d.url()).unwrap(),
            Db::My(d) => DatabaseUrl::parse(d.url()).unwrap(),
            Db::Lite(d) => d.url.clone(),
        }
    }

    pub fn url_text(&self) -> String {
        match self {
            Db::Pg(d) => d.url().to_string(),
            Db::My(d) => d.url().to_string(),
            Db::Lite(d) => format!("sqlite://{}", d.path.display()),
        }
    }

    pub fn session(&self) -> Box<dyn Session> {
        match self {
            Db::Pg(d) => Box::new(d.connect()),
            Db::My(d) => Box::new(d.connect()),
            Db::Lite(d) => Box::new(Lite(d.conn())),
        }
    }

    /// An auto-numbered primary key column's type.
    fn serial_pk(&self) -> &'static str {
        match self {
            Db::Pg(_) => "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            Db::My(_) => "bigint AUTO_INCREMENT PRIMARY KEY",
            Db::Lite(_) => "INTEGER PRIMARY KEY",
        }
    }

    /// `accounts(id, email, balance)` and `orders(id, account_id, amount)`, `rows` rows each.
    pub fn two_tables(&self, rows: usize) {
        let mut s = self.session();
        let pk = self.serial_pk();
        s.exec(&format!(
            "CREATE TABLE accounts (id {pk}, email varchar(60) NOT NULL, balance integer NOT NULL)"
        ))
        .unwrap();
        s.exec(&format!(
            "CREATE TABLE orders (id {pk}, account_id integer NOT NULL, amount integer NOT NULL)"
        ))
        .unwrap();
        let accounts: Vec<String> = (1..=rows)
            .map(|i| format!("('u{i}@example.com', {})", (i * 37) % 2000))
            .collect();
        let orders: Vec<String> = (1..=rows)
            .map(|i| format!("({i}, {})", (i * 13) % 200))
            .collect();
        s.exec(&format!(
            "INSERT INTO accounts (email, balance) VALUES {}",
            accounts.join(", ")
        ))
        .unwrap();
        s.exec(&format!(
            "INSERT INTO orders (account_id, amount) VALUES {}",
            orders.join(", ")
        ))
        .unwrap();
    }

    /// Whether `table` has `column`.
    pub fn has_column(&self, table: &str, column: &str) -> bool {
        let sql = match self {
            Db::Pg(_) => format!(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{table}' AND column_name = '{column}'"
            ),
            Db::My(_) => format!(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{table}' AND column_name = '{column}'"
            ),
            Db::Lite(_) => {
                format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = '{column}'")
            }
        };
        self.session().int(&sql) == Some(1)
    }

    /// zerodown's triggers left on the database.
    pub fn zd_triggers(&self) -> i64 {
        let sql = match self {
            Db::Pg(_) => "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zd\\_%'",
            Db::My(_) => {
                "SELECT count(*) FROM information_schema.triggers WHERE trigger_schema = DATABASE() AND trigger_name LIKE 'zd\\_%'"
            }
            Db::Lite(_) => {
                "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'zd\\_%' ESCAPE '\\'"
            }
        };
        self.session().int(sql).unwrap()
    }

    /// A blob column as lower-case hex.
    pub fn hex(&self, column: &str) -> String {
        match self {
            Db::Pg(_) => format!("encode({column}, 'hex')"),
            _ => format!("lower(hex({column}))"),
        }
    }

    /// sqlx's own table, as sqlx creates it on this engine.
    pub fn sqlx_table(&self) -> &'static str {
        match self {
            Db::Pg(_) => {
                "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)"
            }
            _ => {
                "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)"
            }
        }
    }

    /// A byte-string literal from hex.
    pub fn bytes_literal(&self, hex: &str) -> String {
        match self {
            Db::Pg(_) => format!("decode('{hex}', 'hex')"),
            _ => format!("X'{hex}'"),
        }
    }
}
