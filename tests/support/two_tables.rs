//! The fixture the operation tests share: `accounts(id, balance)` and `orders(id, amount)`, `rows`
//! rows each, on SQLite, PostgreSQL and MariaDB, and one interface to look at them.

use super::{MariaDbTestDb, PgTestDb};
use mysql::prelude::Queryable;
use std::sync::Mutex;
use zerodown::DatabaseUrl;

/// What the operation tests look at, on any engine.
pub trait Db {
    fn url(&self) -> DatabaseUrl;
    /// Runs a query returning one integer.
    fn count(&self, sql: &str) -> i64;
    fn exec(&self, sql: &str);
    /// Runs one statement, returning the engine's error as text.
    fn try_exec(&self, sql: &str) -> Result<(), String>;
    fn has_column(&self, table: &str, column: &str) -> bool;
    /// zerodown's objects (zd_*) left behind and, on PostgreSQL, INVALID indexes.
    fn leftovers(&self) -> i64;
    /// `column`'s default as the catalog shows it.
    fn default_of(&self, table: &str, column: &str) -> Option<String>;
    /// Holds, from another connection, a lock that a catalog change of `table` must wait for (a
    /// reader's transaction on the servers, the write lock on SQLite); the closure lets it go.
    fn hold_lock(&self, table: &str) -> Box<dyn FnOnce() + Send>;
    /// The names of the indexes on `orders` that are ready to use (PostgreSQL: valid).
    fn indexes(&self) -> Vec<String>;
    /// Whether the engine answers `SELECT id FROM orders WHERE amount = 42` through index `name`.
    fn uses_index(&self, name: &str) -> bool;
    /// Whether index names share one namespace with tables (PostgreSQL's schema, SQLite's
    /// database); MySQL's index names are per table.
    fn names_shared(&self) -> bool {
        true
    }
    /// The names of the constraints on `table` (checks and foreign keys; on PostgreSQL 18 NOT
    /// NULL constraints too), sorted.
    fn constraints(&self, table: &str) -> Vec<String>;
    /// Whether `column` of `table` accepts NULL.
    fn nullable(&self, table: &str, column: &str) -> bool;
}

/// Runs `start` while, at each step `hold(index)` chooses, another session holds a lock the step
/// must wait for; `waiting` polls the server until it shows zerodown waiting and returns what it
/// waits for; then `release` lets go. Returns the outcome and what each held step waited for.
pub fn start_observing(
    url: &DatabaseUrl,
    m: &zerodown::spec::Migration,
    s: &zerodown::Settings,
    hold: impl Fn(usize) -> bool + Send + 'static,
    release: impl Fn() + Send + 'static,
    mut waiting: impl FnMut() -> Option<String> + Send + 'static,
) -> (zerodown::Result<zerodown::StartOutcome>, Vec<String>) {
    let (steps, rx) = std::sync::mpsc::channel::<()>();
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let watcher = std::thread::spawn(move || {
        while rx.recv().is_ok() {
            super::wait_for("zerodown to wait for the held lock", || {
                waiting().map(|w| seen2.lock().unwrap().push(w)).is_some()
            });
            release();
        }
    });
    let outcome = zerodown::start(
        url,
        m,
        s,
        &mut |e| {
            if let zerodown::Event::StepStarted { index, .. } = e
                && hold(index)
            {
                steps.send(()).unwrap();
            }
        },
        &std::sync::atomic::AtomicBool::new(false),
    );
    drop(steps);
    watcher.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    (outcome, seen)
}

/// A SQLite file in WAL mode.
pub struct Lite {
    _dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
}

impl Lite {
    pub fn new(rows: u32) -> Lite {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two_tables.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
                 CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
                 INSERT INTO accounts (balance) SELECT (i * 7919) % 20000 FROM n;
                 INSERT INTO orders (amount) SELECT id FROM accounts;"
            ))
            .unwrap();
        Lite { _dir: dir, path }
    }

    pub fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).unwrap()
    }
}

impl Db for Lite {
    fn url(&self) -> DatabaseUrl {
        DatabaseUrl::Sqlite(self.path.clone())
    }
    fn count(&self, sql: &str) -> i64 {
        self.conn().query_row(sql, [], |r| r.get(0)).unwrap()
    }
    fn exec(&self, sql: &str) {
        self.conn().execute_batch(sql).unwrap();
    }
    fn try_exec(&self, sql: &str) -> Result<(), String> {
        self.conn().execute_batch(sql).map_err(|e| e.to_string())
    }
    fn has_column(&self, table: &str, column: &str) -> bool {
        self.conn()
            .query_row(
                "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
                [table, column],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            > 0
    }
    fn leftovers(&self) -> i64 {
        self.count("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'zd\\_%' ESCAPE '\\'")
    }
    fn default_of(&self, table: &str, column: &str) -> Option<String> {
        self.conn()
            .query_row(
                "SELECT dflt_value FROM pragma_table_info(?1) WHERE name = ?2",
                [table, column],
                |r| r.get(0),
            )
            .unwrap()
    }
    fn hold_lock(&self, _table: &str) -> Box<dyn FnOnce() + Send> {
        let c = self.conn();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        Box::new(move || c.execute_batch("COMMIT").unwrap())
    }
    fn indexes(&self) -> Vec<String> {
        let c = self.conn();
        let mut s = c
            .prepare("SELECT name FROM pragma_index_list('orders') ORDER BY name")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
    fn uses_index(&self, name: &str) -> bool {
        let c = self.conn();
        let mut s = c
            .prepare("EXPLAIN QUERY PLAN SELECT id FROM orders WHERE amount = 42")
            .unwrap();
        let detail: Vec<String> = s
            .query_map([], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        detail.iter().any(|d| d.contains(&format!("INDEX {name} ")))
    }
    fn constraints(&self, table: &str) -> Vec<String> {
        // SQLite keeps named constraints only in the table's CREATE statement.
        let sql: String = self
            .conn()
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        let mut names: Vec<String> = sql
            .split("CONSTRAINT ")
            .skip(1)
            .map(|rest| {
                rest.split_whitespace()
                    .next()
                    .unwrap()
                    .trim_matches('"')
                    .to_string()
            })
            .collect();
        names.sort();
        names
    }
    fn nullable(&self, table: &str, column: &str) -> bool {
        self.conn()
            .query_row(
                "SELECT \"notnull\" = 0 FROM pragma_table_info(?1) WHERE name = ?2",
                [table, column],
                |r| r.get(0),
            )
            .unwrap()
    }
}

/// A fresh database on a PostgreSQL major's throwaway server.
pub struct Pg {
    pub db: PgTestDb,
    pub conn: Mutex<postgres::Client>,
}

/// The fixture on PostgreSQL `major`; `None` (a SKIP line) where that major is not installed.
pub fn pg(major: u32, name: &str, rows: u32) -> Option<Pg> {
    let db = super::pg(major)?.fresh_database(name);
    let mut c = db.connect();
    c.batch_execute(&format!(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, balance bigint NOT NULL);
         CREATE TABLE orders (id bigserial PRIMARY KEY, amount bigint NOT NULL);
         INSERT INTO accounts (balance) SELECT (g * 7919) % 20000 FROM generate_series(1, {rows}) g;
         INSERT INTO orders (amount) SELECT id FROM accounts;
         ANALYZE orders;"
    ))
    .unwrap();
    Some(Pg {
        db,
        conn: Mutex::new(c),
    })
}

impl Db for Pg {
    fn url(&self) -> DatabaseUrl {
        DatabaseUrl::parse(self.db.url()).unwrap()
    }
    fn count(&self, sql: &str) -> i64 {
        self.conn
            .lock()
            .unwrap()
            .query_one(sql, &[])
            .unwrap()
            .get(0)
    }
    fn exec(&self, sql: &str) {
        self.conn.lock().unwrap().batch_execute(sql).unwrap();
    }
    fn try_exec(&self, sql: &str) -> Result<(), String> {
        self.conn
            .lock()
            .unwrap()
            .batch_execute(sql)
            .map_err(|e| e.to_string())
    }
    fn has_column(&self, table: &str, column: &str) -> bool {
        self.conn
            .lock()
            .unwrap()
            .query_one(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = $1 AND column_name = $2",
                &[&table, &column],
            )
            .unwrap()
            .get::<_, i64>(0)
            > 0
    }
    fn leftovers(&self) -> i64 {
        self.count(
            "SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zd\\_%')
                  + (SELECT count(*) FROM pg_constraint WHERE conname LIKE 'zd\\_%')
                  + (SELECT count(*) FROM pg_class WHERE relname LIKE 'zd\\_%')
                  + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'zd\\_%')
                  + (SELECT count(*) FROM pg_index WHERE NOT indisvalid)",
        )
    }
    fn default_of(&self, table: &str, column: &str) -> Option<String> {
        self.conn
            .lock()
            .unwrap()
            .query_one(
                "SELECT column_default::text FROM information_schema.columns WHERE table_name = $1 AND column_name = $2",
                &[&table, &column],
            )
            .unwrap()
            .get(0)
    }
    fn hold_lock(&self, table: &str) -> Box<dyn FnOnce() + Send> {
        let mut c = self.db.connect();
        c.batch_execute(&format!("BEGIN; SELECT count(*) FROM \"{table}\""))
            .unwrap();
        Box::new(move || c.batch_execute("COMMIT").unwrap())
    }
    fn indexes(&self) -> Vec<String> {
        self.conn
            .lock()
            .unwrap()
            .query(
                "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 WHERE i.indrelid = 'orders'::regclass AND i.indisvalid ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
    fn uses_index(&self, name: &str) -> bool {
        let mut c = self.conn.lock().unwrap();
        let mut t = c.transaction().unwrap();
        t.batch_execute("SET LOCAL enable_seqscan = off").unwrap();
        let rows = t
            .query("EXPLAIN SELECT id FROM orders WHERE amount = 42", &[])
            .unwrap();
        rows.iter().any(|r| {
            let line = r.get::<_, String>(0);
            line.contains(&format!("\"{name}\"")) || line.contains(&format!(" {name} "))
        })
    }
    fn constraints(&self, table: &str) -> Vec<String> {
        self.conn
            .lock()
            .unwrap()
            .query(
                "SELECT conname::text FROM pg_constraint WHERE conrelid = $1::text::regclass
                   AND contype <> 'p' ORDER BY 1",
                &[&table],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
    fn nullable(&self, table: &str, column: &str) -> bool {
        self.conn
            .lock()
            .unwrap()
            .query_one(
                "SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = $1::text::regclass AND attname = $2",
                &[&table, &column],
            )
            .unwrap()
            .get(0)
    }
}

/// A fresh database on the shared MariaDB server.
pub struct My {
    pub db: MariaDbTestDb,
    pub conn: Mutex<mysql::Conn>,
}

/// The fixture on MariaDB; `None` (a SKIP line) where it is not installed.
pub fn mariadb(name: &str, rows: u32) -> Option<My> {
    let db = super::mariadb()?.fresh_database(name);
    let mut c = db.connect();
    for table in [
        "accounts (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, balance bigint NOT NULL)",
        "orders (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, amount bigint NOT NULL)",
    ] {
        c.query_drop(format!("CREATE TABLE {table} ENGINE=InnoDB"))
            .unwrap();
    }
    c.query_drop(format!(
        "INSERT INTO accounts (balance) SELECT (seq * 7919) % 20000 FROM seq_1_to_{rows}"
    ))
    .unwrap();
    c.query_drop("INSERT INTO orders (amount) SELECT id FROM accounts")
        .unwrap();
    Some(My {
        db,
        conn: Mutex::new(c),
    })
}

impl Db for My {
    fn url(&self) -> DatabaseUrl {
        DatabaseUrl::parse(self.db.url()).unwrap()
    }
    fn count(&self, sql: &str) -> i64 {
        self.conn
            .lock()
            .unwrap()
            .query_first::<i64, _>(sql)
            .unwrap()
            .unwrap()
    }
    fn exec(&self, sql: &str) {
        self.conn.lock().unwrap().query_drop(sql).unwrap();
    }
    fn try_exec(&self, sql: &str) -> Result<(), String> {
        self.conn
            .lock()
            .unwrap()
            .query_drop(sql)
            .map_err(|e| e.to_string())
    }
    fn has_column(&self, table: &str, column: &str) -> bool {
        self.conn
            .lock()
            .unwrap()
            .exec_first::<i64, _, _>(
                "SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                (table, column),
            )
            .unwrap()
            .unwrap()
            > 0
    }
    fn leftovers(&self) -> i64 {
        self.count(
            "SELECT (SELECT count(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE 'zd\\_%')
                  + (SELECT count(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME LIKE 'zd\\_%')
                  + (SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'zd\\_%')",
        )
    }
    fn default_of(&self, table: &str, column: &str) -> Option<String> {
        self.conn
            .lock()
            .unwrap()
            .exec_first::<Option<String>, _, _>(
                "SELECT COLUMN_DEFAULT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                (table, column),
            )
            .unwrap()
            .flatten()
            .filter(|d| d != "NULL")
    }
    fn hold_lock(&self, table: &str) -> Box<dyn FnOnce() + Send> {
        let mut c = self.db.connect();
        c.query_drop("START TRANSACTION").unwrap();
        c.query_drop(format!("SELECT count(*) FROM `{table}`"))
            .unwrap();
        Box::new(move || c.query_drop("COMMIT").unwrap())
    }
    fn indexes(&self) -> Vec<String> {
        self.conn
            .lock()
            .unwrap()
            .query(
                "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'orders' ORDER BY 1",
            )
            .unwrap()
    }
    fn uses_index(&self, name: &str) -> bool {
        let row: mysql::Row = self
            .conn
            .lock()
            .unwrap()
            .query_first("EXPLAIN SELECT id FROM orders WHERE amount = 42")
            .unwrap()
            .unwrap();
        row.get::<Option<String>, _>("key").flatten().as_deref() == Some(name)
    }
    fn names_shared(&self) -> bool {
        false
    }
    fn constraints(&self, table: &str) -> Vec<String> {
        self.conn
            .lock()
            .unwrap()
            .exec(
                "SELECT CONSTRAINT_NAME FROM information_schema.TABLE_CONSTRAINTS
                 WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ?
                   AND CONSTRAINT_TYPE IN ('FOREIGN KEY', 'CHECK') ORDER BY 1",
                (table,),
            )
            .unwrap()
    }
    fn nullable(&self, table: &str, column: &str) -> bool {
        self.conn
            .lock()
            .unwrap()
            .exec_first::<String, _, _>(
                "SELECT IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                (table, column),
            )
            .unwrap()
            .unwrap()
            == "YES"
    }
}
