//! Hostile identifiers through every engine: table and column names with quotes of every kind,
//! semicolons and comment markers, unicode, reserved words and the engine's maximum length go through
//! the whole lifecycle (start, complete; start, rollback) on SQLite, PostgreSQL 15 and 18 and MariaDB,
//! and nothing else in the database is touched: a `victims` table beside them keeps its rows.

mod support;

use std::sync::atomic::AtomicBool;
use std::time::Duration;
use zerodown::spec::{AddColumn, Migration};
use zerodown::{DatabaseUrl, Settings, StartOutcome};

/// One set of names for a run: the table, its key, the column the backfill reads and the new column.
struct Names {
    table: String,
    key: String,
    source: String,
    column: String,
}

/// Names with every kind of quote, statement separators, comment markers, unicode and reserved words.
fn hostile() -> Names {
    Names {
        table: "order\"; DROP TABLE victims; --".into(),
        key: "group".into(),
        source: "sel`ect \"x\" 'y' /* z".into(),
        column: "Ünï 表 'c'; --".into(),
    }
}

/// Names of the engine's maximum length (`max` in the engine's unit: bytes on PostgreSQL, characters
/// on MariaDB), multibyte where the unit allows, so a generated name cut at a byte is caught.
fn longest(max: usize, unit_is_bytes: bool) -> Names {
    let fill = |first: char| -> String {
        if unit_is_bytes {
            // 'é' is two bytes: an odd limit ends with one ASCII byte.
            let mut s = String::from(first);
            while s.len() + 2 <= max {
                s.push('é');
            }
            while s.len() < max {
                s.push('x');
            }
            s
        } else {
            std::iter::once(first)
                .chain(std::iter::repeat_n('é', max - 1))
                .collect()
        }
    };
    Names {
        table: fill('t'),
        key: fill('k'),
        source: fill('s'),
        column: fill('c'),
    }
}

/// What the test needs of an engine: run SQL, read one integer, quote a name.
trait Db {
    fn url(&self) -> DatabaseUrl;
    fn exec(&mut self, sql: &str);
    fn int(&mut self, sql: &str) -> i64;
    fn quote(&self, name: &str) -> String;
    /// The column type of the key, the source and the new column.
    fn int_type(&self) -> &'static str;
    /// How many of zerodown's triggers are on any table.
    fn zd_triggers(&mut self) -> i64;
    /// How many indexes cover the column `column` of `table`.
    fn indexes_on(&mut self, table: &str, column: &str) -> i64;
}

fn migration(name: &str, n: &Names, db: &dyn Db) -> Migration {
    Migration::adding(
        name,
        AddColumn {
            not_null: true,
            default: Some("0".into()),
            backfill: Some(format!("{} * 2", db.quote(&n.source))),
            check: Some(format!("{} >= 0", db.quote(&n.column))),
            index: true,
            ..AddColumn::new(&n.table, &n.column, db.int_type())
        },
    )
}

fn quiet() -> Settings {
    Settings {
        quiet_period: Some(Duration::from_millis(50)),
        // MariaDB 10.11 adds a CHECK only by copying the table (a few rows here).
        allow_copy: true,
        ..Settings::default()
    }
}

/// Creates `victims` and the hostile table with `rows` rows.
fn create(db: &mut dyn Db, n: &Names, rows: i64) {
    let (t, k, s, ty) = (
        db.quote(&n.table),
        db.quote(&n.key),
        db.quote(&n.source),
        db.int_type(),
    );
    db.exec("CREATE TABLE victims (id integer PRIMARY KEY)");
    db.exec("INSERT INTO victims (id) VALUES (1), (2), (3)");
    db.exec(&format!(
        "CREATE TABLE {t} ({k} {ty} NOT NULL PRIMARY KEY, {s} {ty} NOT NULL)"
    ));
    for i in 1..=rows {
        db.exec(&format!(
            "INSERT INTO {t} ({k}, {s}) VALUES ({i}, {})",
            i * 3
        ));
    }
}

/// start + a write during the window + complete, then start + rollback of a second column; the data and
/// every other table are as they should be.
fn lifecycle(db: &mut dyn Db, n: &Names) {
    create(db, n, 50);
    let url = db.url();
    let cancel = AtomicBool::new(false);
    let m = migration("hostile", n, db);
    let outcome = zerodown::start(&url, &m, &quiet(), &mut |_| {}, &cancel)
        .unwrap_or_else(|e| panic!("start with hostile names: {e}"));
    assert!(
        matches!(outcome, StartOutcome::Backfilled { .. }),
        "{outcome:?}"
    );
    let (t, k, s, c) = (
        db.quote(&n.table),
        db.quote(&n.key),
        db.quote(&n.source),
        db.quote(&n.column),
    );
    // An old writer during the window: the trigger fills the new column.
    db.exec(&format!("INSERT INTO {t} ({k}, {s}) VALUES (1000, 7)"));
    db.exec(&format!("UPDATE {t} SET {s} = 11 WHERE {k} = 1"));
    zerodown::complete(&url, "hostile", &quiet(), &mut |_| {}, &cancel)
        .unwrap_or_else(|e| panic!("complete with hostile names: {e}"));
    assert_eq!(db.int(&format!("SELECT count(*) FROM {t}")), 51);
    assert_eq!(
        db.int(&format!(
            "SELECT count(*) FROM {t} WHERE {c} IS NULL OR {c} <> {s} * 2"
        )),
        0,
        "every row holds the backfill expression's value"
    );
    assert_eq!(db.int("SELECT count(*) FROM victims"), 3);
    assert_eq!(db.zd_triggers(), 0, "no trigger left");
    assert_eq!(db.indexes_on(&n.table, &n.column), 1, "the index is there");
    // The default went on at complete: a new writer that leaves the column out gets it.
    db.exec(&format!("INSERT INTO {t} ({k}, {s}) VALUES (2000, 5)"));
    assert_eq!(db.int(&format!("SELECT {c} FROM {t} WHERE {k} = 2000")), 0);

    // A second column, started and rolled back: the table is as it was.
    // Same length as the first (it may be at the limit): its last character becomes '2'.
    let mut column = n.column.clone();
    column.pop();
    column.push('2');
    let second = Names {
        table: n.table.clone(),
        key: n.key.clone(),
        source: n.source.clone(),
        column,
    };
    let m2 = migration("hostile-two", &second, db);
    zerodown::start(&url, &m2, &quiet(), &mut |_| {}, &cancel)
        .unwrap_or_else(|e| panic!("start of a second column: {e}"));
    zerodown::rollback(&url, "hostile-two", &quiet(), &mut |_| {})
        .unwrap_or_else(|e| panic!("rollback with hostile names: {e}"));
    assert_eq!(db.zd_triggers(), 0);
    assert_eq!(db.int(&format!("SELECT count(*) FROM {t}")), 52);
    assert_eq!(db.int("SELECT count(*) FROM victims"), 3);
}

// ---- SQLite ----------------------------------------------------------------------------------------

struct Sqlite {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    conn: rusqlite::Connection,
}

impl Sqlite {
    fn new() -> Sqlite {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        Sqlite {
            _dir: dir,
            path,
            conn,
        }
    }
}

impl Db for Sqlite {
    fn url(&self) -> DatabaseUrl {
        DatabaseUrl::Sqlite(self.path.clone())
    }
    fn exec(&mut self, sql: &str) {
        self.conn
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    fn int(&mut self, sql: &str) -> i64 {
        self.conn
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    fn quote(&self, name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
    fn int_type(&self) -> &'static str {
        "INTEGER"
    }
    fn zd_triggers(&mut self) -> i64 {
        self.int("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'zd%'")
    }
    fn indexes_on(&mut self, table: &str, column: &str) -> i64 {
        let mut stmt = self
            .conn
            .prepare("SELECT count(*) FROM pragma_index_list(?1) l, pragma_index_info(l.name) i WHERE i.name = ?2")
            .unwrap();
        stmt.query_row((table, column), |r| r.get(0)).unwrap()
    }
}

#[test]
fn sqlite_hostile_names() {
    lifecycle(&mut Sqlite::new(), &hostile());
}

#[test]
fn sqlite_long_names() {
    // SQLite has no identifier limit; 200 characters stand for "long".
    lifecycle(&mut Sqlite::new(), &longest(200, false));
}

// ---- PostgreSQL ------------------------------------------------------------------------------------

struct Pg {
    db: support::PgTestDb,
    client: postgres::Client,
}

impl Db for Pg {
    fn url(&self) -> DatabaseUrl {
        DatabaseUrl::parse(self.db.url()).unwrap()
    }
    fn exec(&mut self, sql: &str) {
        self.client
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    fn int(&mut self, sql: &str) -> i64 {
        let row = self
            .client
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        row.try_get::<_, i64>(0)
            .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
            .unwrap()
    }
    fn quote(&self, name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
    fn int_type(&self) -> &'static str {
        "bigint"
    }
    fn zd_triggers(&mut self) -> i64 {
        self.int("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zd\\_%'")
            + self.int("SELECT count(*) FROM pg_proc WHERE proname LIKE 'zd\\_%'")
    }
    fn indexes_on(&mut self, table: &str, column: &str) -> i64 {
        let row = self
            .client
            .query_one(
                "SELECT count(*) FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(i.indkey)
                 WHERE t.relname = $1 AND a.attname = $2 AND i.indisvalid",
                &[&table, &column],
            )
            .unwrap();
        row.get(0)
    }
}

fn pg(major: u32, test: &str, names: impl FnOnce() -> Names) {
    let Some(server) = support::pg(major) else {
        return;
    };
    let db = server.fresh_database(test);
    let client = db.connect();
    lifecycle(&mut Pg { db, client }, &names());
}

#[test]
fn pg15_hostile_names() {
    pg(15, "hostile_names", hostile);
}

#[test]
fn pg18_hostile_names() {
    pg(18, "hostile_names", hostile);
}

#[test]
fn pg15_longest_names() {
    pg(15, "longest_names", || longest(63, true));
}

#[test]
fn pg18_longest_names() {
    pg(18, "longest_names", || longest(63, true));
}

// ---- MariaDB ---------------------------------------------------------------------------------------

struct Maria {
    db: support::MariaDbTestDb,
    conn: mysql::Conn,
}

impl Db for Maria {
    fn url(&self) -> DatabaseUrl {
        DatabaseUrl::parse(self.db.url()).unwrap()
    }
    fn exec(&mut self, sql: &str) {
        use mysql::prelude::Queryable;
        self.conn
            .query_drop(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    fn int(&mut self, sql: &str) -> i64 {
        use mysql::prelude::Queryable;
        self.conn
            .query_first::<i64, _>(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap()
    }
    fn quote(&self, name: &str) -> String {
        format!("`{}`", name.replace('`', "``"))
    }
    fn int_type(&self) -> &'static str {
        "bigint"
    }
    fn zd_triggers(&mut self) -> i64 {
        self.int("SELECT count(*) FROM information_schema.triggers WHERE trigger_schema = DATABASE() AND trigger_name LIKE 'zd\\_%'")
    }
    fn indexes_on(&mut self, table: &str, column: &str) -> i64 {
        use mysql::prelude::Queryable;
        self.conn
            .exec_first::<i64, _, _>(
                "SELECT count(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?",
                (table, column),
            )
            .unwrap()
            .unwrap()
    }
}

fn maria(test: &str, names: impl FnOnce() -> Names) {
    let Some(server) = support::mariadb() else {
        return;
    };
    let db = server.fresh_database(test);
    let conn = db.connect();
    lifecycle(&mut Maria { db, conn }, &names());
}

#[test]
fn mariadb_hostile_names() {
    maria("hostile_names", || {
        let mut n = hostile();
        // MariaDB names cannot end in a space; the rest stays as hostile as on the other engines.
        n.column = n.column.trim_end().to_string();
        n
    });
}

#[test]
fn mariadb_longest_names() {
    maria("longest_names", || longest(64, false));
}
