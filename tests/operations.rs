//! A migration is a list of operations, possibly on several tables, run as one lifecycle: every
//! expand at `start`, the backfill, every contract at `complete`, and `rollback` undoing every
//! operation in reverse. Proven on SQLite, PostgreSQL 15 and 18, and MariaDB.

mod support;

use std::sync::atomic::AtomicBool;
use std::time::Duration;
use zerodown::spec::Migration;
use zerodown::{DatabaseUrl, Error, Settings, StartOutcome};

/// Two tables, two new columns: `accounts.tier` filled from `balance`, `orders.note` left NULL.
const TWO_TABLES: &str = r#"
[[add_column]]
table    = "accounts"
column   = "tier"
type     = "varchar(20)"
not_null = true
backfill = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END"
default  = "'standard'"

[[add_column]]
table  = "orders"
column = "note"
type   = "varchar(200)"
"#;

fn migration(name: &str, text: &str) -> Migration {
    Migration::from_toml(name, text, &format!("{name}.toml")).unwrap()
}

fn quick() -> Settings {
    Settings {
        quiet_period: Some(Duration::ZERO),
        batch_time: Some(Duration::from_millis(20)),
        ..Settings::default()
    }
}

fn start(url: &DatabaseUrl, m: &Migration) -> zerodown::Result<StartOutcome> {
    zerodown::start(url, m, &quick(), &mut |_| {}, &AtomicBool::new(false))
}

fn complete(url: &DatabaseUrl, name: &str) -> zerodown::Result<()> {
    zerodown::complete(url, name, &quick(), &mut |_| {}, &AtomicBool::new(false))
}

fn rollback(url: &DatabaseUrl, name: &str) -> zerodown::Result<()> {
    zerodown::rollback(url, name, &Settings::default(), &mut |_| {})
}

/// What each engine's test needs to look at the database.
trait Db {
    fn url(&self) -> DatabaseUrl;
    /// Runs a query returning one integer.
    fn count(&self, sql: &str) -> i64;
    /// Whether `table` has `column`.
    fn has_column(&self, table: &str, column: &str) -> bool;
    /// zerodown's objects (zd_*) left on the tables.
    fn leftovers(&self) -> i64;
}

/// The plan holds both operations, in order; start fills `tier`, complete finishes both, and
/// rollback of a second run leaves neither column nor any of zerodown's objects.
fn runs_and_rolls_back_as_one(db: &dyn Db) {
    let url = db.url();
    let m = migration("0100_two_tables", TWO_TABLES);
    let plan = zerodown::plan(&url, &m).unwrap();
    let ops: Vec<(&str, &str)> = plan
        .ops
        .iter()
        .map(|o| (o.table.as_str(), o.column.as_str()))
        .collect();
    assert_eq!(ops, [("accounts", "tier"), ("orders", "note")]);
    let phases: Vec<_> = plan.steps.iter().map(|s| s.phase).collect();
    assert!(phases.is_sorted(), "{phases:?}");
    assert!(plan.steps.iter().any(|s| s.op == 1), "{plan:?}");
    let text = zerodown::plan::render_text(&plan);
    assert!(
        text.contains("1. add column `tier` on `accounts`"),
        "{text}"
    );
    assert!(text.contains("2. add column `note` on `orders`"), "{text}");

    assert!(matches!(
        start(&url, &m).unwrap(),
        StartOutcome::Backfilled { .. }
    ));
    assert!(db.has_column("accounts", "tier") && db.has_column("orders", "note"));
    complete(&url, &m.name).unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM accounts WHERE tier IS NULL OR tier <> CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END"),
        0
    );
    assert_eq!(db.leftovers(), 0);

    let back = migration(
        "0101_two_tables",
        &TWO_TABLES.replace("tier", "tier2").replace("note", "note2"),
    );
    start(&url, &back).unwrap();
    assert!(db.has_column("accounts", "tier2") && db.has_column("orders", "note2"));
    rollback(&url, &back.name).unwrap();
    assert!(!db.has_column("accounts", "tier2"), "tier2 left behind");
    assert!(!db.has_column("orders", "note2"), "note2 left behind");
    assert_eq!(db.leftovers(), 0);
}

/// A migration filling two columns is refused before anything changes, naming why and what to do;
/// so is an operation kind this version does not run yet.
fn refusals_change_nothing(db: &dyn Db) {
    let url = db.url();
    let two_fills = TWO_TABLES
        .replace("tier", "tier3")
        .replace("note", "note3")
        .replace(
            "type   = \"varchar(200)\"",
            "type   = \"varchar(200)\"\nbackfill = \"'x'\"",
        );
    let err = start(&url, &migration("0102_two_fills", &two_fills)).unwrap_err();
    assert!(
        matches!(&err, Error::Refused(m) if m.contains("2 operations that fill existing rows") && m.contains("nothing was changed")),
        "{err}"
    );
    let index =
        "[create_index]\ntable = \"orders\"\nname = \"orders_amount\"\ncolumns = [\"amount\"]\n";
    let err = start(&url, &migration("0103_index", index)).unwrap_err();
    assert!(
        matches!(&err, Error::Refused(m) if m.contains("create_index (orders_amount) is not yet run")),
        "{err}"
    );
    assert!(!db.has_column("accounts", "tier3") && !db.has_column("orders", "note3"));
    assert_eq!(db.leftovers(), 0);
}

mod sqlite {
    use super::*;
    use rusqlite::Connection;

    struct Lite {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    }

    impl Lite {
        fn new() -> Lite {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ops.db");
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
                 CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
                 INSERT INTO accounts (balance) SELECT (i * 7919) % 20000 FROM n;
                 INSERT INTO orders (amount) SELECT id FROM accounts;",
            )
            .unwrap();
            Lite { _dir: dir, path }
        }
        fn conn(&self) -> Connection {
            Connection::open(&self.path).unwrap()
        }
    }

    impl Db for Lite {
        fn url(&self) -> DatabaseUrl {
            DatabaseUrl::Sqlite(self.path.clone())
        }
        fn count(&self, sql: &str) -> i64 {
            self.conn().query_row(sql, [], |r| r.get(0)).unwrap()
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
    }

    #[test]
    fn sqlite_runs_and_rolls_back_as_one() {
        runs_and_rolls_back_as_one(&Lite::new());
    }

    #[test]
    fn sqlite_refusals_change_nothing() {
        refusals_change_nothing(&Lite::new());
    }
}

mod postgres {
    use super::*;
    use std::sync::Mutex;

    struct Pg {
        db: support::pg::PgTestDb,
        conn: Mutex<::postgres::Client>,
    }

    fn setup(major: u32, name: &str) -> Option<Pg> {
        let server = support::pg(major)?;
        let db = server.fresh_database(name);
        let mut c = db.connect();
        c.batch_execute(
            "CREATE TABLE accounts (id bigserial PRIMARY KEY, balance bigint NOT NULL);
             CREATE TABLE orders (id bigserial PRIMARY KEY, amount bigint NOT NULL);
             INSERT INTO accounts (balance) SELECT (g * 7919) % 20000 FROM generate_series(1, 500) g;
             INSERT INTO orders (amount) SELECT id FROM accounts;",
        )
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
                      + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'zd\\_%')",
            )
        }
    }

    #[test]
    fn postgres_15_runs_and_rolls_back_as_one() {
        let Some(db) = setup(15, "ops15") else { return };
        runs_and_rolls_back_as_one(&db);
        refusals_change_nothing(&db);
    }

    #[test]
    fn postgres_18_runs_and_rolls_back_as_one() {
        let Some(db) = setup(18, "ops18") else { return };
        runs_and_rolls_back_as_one(&db);
        refusals_change_nothing(&db);
    }
}

mod mariadb {
    use super::*;
    use mysql::prelude::Queryable;
    use std::sync::Mutex;

    struct My {
        db: support::mariadb::MariaDbTestDb,
        conn: Mutex<mysql::Conn>,
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
        fn has_column(&self, table: &str, column: &str) -> bool {
            self.count(&format!(
                "SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' AND COLUMN_NAME = '{column}'"
            )) > 0
        }
        fn leftovers(&self) -> i64 {
            self.count(
                "SELECT (SELECT count(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE 'zd\\_%')
                      + (SELECT count(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME LIKE 'zd\\_%')
                      + (SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'zd\\_%')",
            )
        }
    }

    #[test]
    fn mariadb_runs_and_rolls_back_as_one() {
        let Some(server) = support::mariadb() else {
            return;
        };
        let db = server.fresh_database("ops");
        let mut c = db.connect();
        c.query_drop(
            "CREATE TABLE accounts (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, balance bigint NOT NULL) ENGINE=InnoDB",
        )
        .unwrap();
        c.query_drop(
            "CREATE TABLE orders (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, amount bigint NOT NULL) ENGINE=InnoDB",
        )
        .unwrap();
        c.query_drop(
            "INSERT INTO accounts (balance) SELECT (seq * 7919) % 20000 FROM seq_1_to_500",
        )
        .unwrap();
        c.query_drop("INSERT INTO orders (amount) SELECT id FROM accounts")
            .unwrap();
        let my = My {
            db,
            conn: Mutex::new(c),
        };
        runs_and_rolls_back_as_one(&my);
        refusals_change_nothing(&my);
    }
}
