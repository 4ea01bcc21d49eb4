//! AddForeignKey on PostgreSQL 13–18 and MariaDB (SQLite refuses it plainly): start → completed
//! with the key enforced, the lock each step takes observed on the server (on both tables on
//! PostgreSQL), an orphan row refused and rolled back, start → rollback in a migration that waits
//! for `complete`, a kill -9 during the step that checks the rows then a re-run that finishes, a
//! clean catalog afterwards; and one migration of several operations on two tables, run and
//! rolled back as one.

mod support;

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::two_tables::{self, Db, Lite, start_observing};
use zerodown::spec::Migration;
use zerodown::{DatabaseUrl, Error, Settings, StartOutcome, Status};

fn migration(name: &str, text: &str) -> Migration {
    Migration::from_toml(name, text, &format!("{name}.toml")).unwrap()
}

fn foreign_key(name: &str, column: &str, on_delete: Option<&str>) -> String {
    format!(
        "[[add_foreign_key]]\ntable = \"orders\"\nname = \"{name}\"\ncolumns = [\"{column}\"]\nreferences_table = \"accounts\"\nreferences_columns = [\"id\"]\n{}",
        on_delete
            .map(|o| format!("on_delete = \"{o}\"\n"))
            .unwrap_or_default()
    )
}

/// A migration that waits for `complete`: a backfilled column on accounts, then the key.
fn waiting(name: &str, column: &str, new: &str) -> String {
    format!(
        "[[add_column]]\ntable = \"accounts\"\ncolumn = \"{new}\"\ntype = \"int\"\nbackfill = \"balance % 3\"\n\n{}",
        foreign_key(name, column, None)
    )
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

fn rollback(url: &DatabaseUrl, name: &str) {
    zerodown::rollback(url, name, &Settings::default(), &mut |_| {}).unwrap()
}

fn status(url: &DatabaseUrl, name: &str) -> Status {
    zerodown::status(url, Some(name)).unwrap()[0].status
}

fn plan_text(url: &DatabaseUrl, m: &Migration) -> String {
    let plan = zerodown::plan(url, m).unwrap();
    zerodown::plan::render_text(&plan).replace(&plan.engine, "<engine>")
}

/// `orders.account_id`, one per order, all pointing at an account.
fn add_account_id(db: &dyn Db, column: &str) {
    db.exec(&format!("ALTER TABLE orders ADD COLUMN {column} bigint"));
    db.exec(&format!("UPDATE orders SET {column} = id"));
}

/// An orphan row: refused (by VALIDATE or zerodown's count) naming it; rollback leaves nothing.
/// Then, in a migration that waits for `complete`, rollback leaves nothing either.
fn refusals_and_rollback(db: &dyn Db, before: &[String]) {
    let url = db.url();
    db.exec("UPDATE orders SET account_id = 999999 WHERE id = 1");
    let m = migration(
        "0400_orphan",
        &foreign_key("orders_orphan_fk", "account_id", None),
    );
    let err = start(&url, &m).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("orders_orphan_fk")
            || text.contains("1 row(s) of `orders` have a `account_id`"),
        "{text}"
    );
    rollback(&url, &m.name);
    assert_eq!(db.constraints("orders"), before);
    db.exec("UPDATE orders SET account_id = 1 WHERE id = 1");

    let w = migration("0401_wait", &waiting("orders_wait_fk", "account_id", "w1"));
    let plan = zerodown::plan(&url, &w).unwrap();
    assert!(
        plan.steps
            .iter()
            .filter(|s| s.op == 1)
            .all(|s| s.phase == zerodown::plan::Phase::Contract),
        "{plan:?}"
    );
    start(&url, &w).unwrap();
    assert_eq!(db.constraints("orders"), before);
    rollback(&url, &w.name);
    assert_eq!(db.constraints("orders"), before);
    assert!(!db.has_column("accounts", "w1"));
    assert_eq!(db.leftovers(), 0);
}

/// Several operations on two tables: a backfilled column on accounts, an index, a foreign key and
/// NOT NULL on orders. start fills, complete adds the key and the NOT NULL; a second run is rolled
/// back as one, leaving the catalog as it was.
const SEVERAL: &str = r#"
[[add_column]]
table    = "accounts"
column   = "tier"
type     = "varchar(20)"
backfill = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END"

[[create_index]]
table   = "orders"
name    = "orders_by_ref"
columns = ["ref"]

[[add_foreign_key]]
table              = "orders"
name               = "orders_ref_fk"
columns            = ["ref"]
references_table   = "accounts"
references_columns = ["id"]
on_delete          = "restrict"

[[set_not_null]]
table  = "orders"
column = "ref"
"#;

fn several_operations(db: &dyn Db, with_key: bool) {
    let url = db.url();
    let text = if with_key {
        SEVERAL.to_string()
    } else {
        let start = SEVERAL.find("[[add_foreign_key]]").unwrap();
        let end = SEVERAL.find("[[set_not_null]]").unwrap();
        format!("{}{}", &SEVERAL[..start], &SEVERAL[end..])
    };
    for ref_col in ["ref", "ref_b"] {
        add_account_id(db, ref_col);
    }
    let before = db.constraints("orders");
    let m = migration("0410_several", &text);
    let plan = zerodown::plan(&url, &m).unwrap();
    let kinds: Vec<&str> = plan.ops.iter().map(|o| o.kind.as_str()).collect();
    let expected: &[&str] = if with_key {
        &[
            "add_column",
            "create_index",
            "add_foreign_key",
            "set_not_null",
        ]
    } else {
        &["add_column", "create_index", "set_not_null"]
    };
    assert_eq!(kinds, expected);
    assert!(matches!(
        start(&url, &m).unwrap(),
        StartOutcome::Backfilled { .. }
    ));
    assert!(db.nullable("orders", "ref"));
    assert_eq!(db.constraints("orders"), before);
    complete(&url, &m.name).unwrap();
    assert!(!db.nullable("orders", "ref"));
    assert_eq!(
        db.count("SELECT count(*) FROM accounts WHERE tier IS NULL"),
        0
    );
    if with_key {
        assert!(
            db.constraints("orders")
                .contains(&"orders_ref_fk".to_string())
        );
        assert!(
            db.try_exec("INSERT INTO orders (amount, ref) VALUES (1, 999999)")
                .is_err()
        );
    }
    assert_eq!(db.leftovers(), 0);

    let back = migration(
        "0411_several",
        &text
            .replace("\"tier\"", "\"tier2\"")
            .replace("orders_by_ref", "orders_by_ref_b")
            .replace("orders_ref_fk", "orders_ref_b_fk")
            .replace("[\"ref\"]", "[\"ref_b\"]")
            .replace("column = \"ref\"", "column = \"ref_b\""),
    );
    let constraints = db.constraints("orders");
    let indexes = db.indexes();
    start(&url, &back).unwrap();
    assert!(db.has_column("accounts", "tier2"));
    rollback(&url, &back.name);
    assert!(!db.has_column("accounts", "tier2"));
    assert!(db.nullable("orders", "ref_b"));
    assert_eq!(db.constraints("orders"), constraints);
    assert_eq!(db.indexes(), indexes);
    assert_eq!(db.leftovers(), 0);
}

fn migration_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn spawn_start(
    url: &str,
    file: &str,
    log: &std::path::Path,
    lock_timeout: &str,
) -> std::process::Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_zerodown"))
        .args(["start", file, "--lock-timeout", lock_timeout])
        .env("DATABASE_URL", url)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

fn start_to_end(url: &str, file: &str) {
    support::wait_for("a re-run that finishes", || {
        let o = Command::new(env!("CARGO_BIN_EXE_zerodown"))
            .args(["start", file])
            .env("DATABASE_URL", url)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success() || text.contains("another zerodown"),
            "the re-run failed: {text}"
        );
        o.status.success()
    });
}

mod sqlite {
    use super::*;

    /// SQLite's ALTER TABLE cannot add a foreign key to an existing table: refused, naming the
    /// table and what to do, changing nothing.
    #[test]
    fn sqlite_add_foreign_key() {
        let db = Lite::new(100);
        add_account_id(&db, "account_id");
        let schema = || -> String {
            db.conn()
                .query_row("SELECT group_concat(sql) FROM sqlite_schema", [], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        let before = schema();
        let m = migration(
            "0400_fk",
            &foreign_key("orders_account_fk", "account_id", None),
        );
        let err = start(&db.url(), &m).unwrap_err();
        assert!(
            matches!(&err, Error::Refused(msg) if msg.contains("SQLite cannot add foreign key `orders_account_fk` to the existing table `orders`") && msg.contains("references") && msg.contains("nothing was changed")),
            "{err}"
        );
        assert_eq!(schema(), before);
        assert_eq!(db.leftovers(), 0);
    }

    #[test]
    fn sqlite_several_operations_run_and_roll_back_as_one() {
        several_operations(&Lite::new(300), false);
    }
}

mod postgres {
    use super::*;

    /// What zerodown's session waits for on `table`.
    fn waiting_on(table: &str) -> String {
        format!(
            "SELECT l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE NOT l.granted AND l.relation = '{table}'::regclass
               AND a.application_name LIKE 'zerodown%'"
        )
    }

    /// Runs `m` while each step waits for `lock` held on `table`; returns the modes waited for.
    fn observed(db: &two_tables::Pg, m: &Migration, table: &str, lock: &str) -> Vec<String> {
        let holder = Arc::new(Mutex::new(db.db.connect()));
        let (h1, h2) = (holder.clone(), holder.clone());
        let mut watch = db.db.connect();
        let (sql, query) = (
            format!("BEGIN; LOCK TABLE {table} IN {lock} MODE"),
            waiting_on(table),
        );
        let (outcome, seen) = start_observing(
            &db.url(),
            m,
            &quick(),
            move |_| {
                h1.lock().unwrap().batch_execute(&sql).unwrap();
                true
            },
            move || h2.lock().unwrap().batch_execute("COMMIT").unwrap(),
            move || watch.query_opt(&query, &[]).unwrap().map(|r| r.get(0)),
        );
        assert_eq!(outcome.unwrap(), StartOutcome::Completed);
        seen
    }

    fn add_foreign_key(major: u32) {
        let Some(db) = two_tables::pg(major, &format!("fk{major}"), 300) else {
            return;
        };
        let url = db.url();
        add_account_id(&db, "account_id");
        let before = db.constraints("orders");
        let m = migration(
            "0402_fk",
            &foreign_key("orders_account_fk", "account_id", Some("cascade")),
        );
        insta::assert_snapshot!("pg_plan", plan_text(&url, &m));
        refusals_and_rollback(&db, &before);

        // The key's steps lock both tables: SHARE ROW EXCLUSIVE on orders, then SHARE UPDATE
        // EXCLUSIVE for VALIDATE; on accounts SHARE ROW EXCLUSIVE, then ROW SHARE.
        let seen = observed(&db, &m, "orders", "SHARE UPDATE EXCLUSIVE");
        assert_eq!(seen, ["ShareRowExclusiveLock", "ShareUpdateExclusiveLock"]);
        db.exec("ALTER TABLE orders DROP CONSTRAINT orders_account_fk");
        let m = migration(
            "0403_fk",
            &foreign_key("orders_account_fk", "account_id", Some("cascade")),
        );
        let seen = observed(&db, &m, "accounts", "EXCLUSIVE");
        assert_eq!(seen, ["ShareRowExclusiveLock", "RowShareLock"]);
        assert_eq!(
            db.count("SELECT count(*) FROM pg_constraint WHERE conname = 'orders_account_fk' AND convalidated AND confdeltype = 'c'"),
            1
        );
        assert!(
            db.try_exec("INSERT INTO orders (amount, account_id) VALUES (1, 999999)")
                .is_err()
        );
        db.exec("DELETE FROM accounts WHERE id = 2");
        assert_eq!(
            db.count("SELECT count(*) FROM orders WHERE account_id = 2"),
            0
        );

        // kill -9 while VALIDATE waits: a session queued for SHARE UPDATE EXCLUSIVE behind the
        // first step gets it as soon as that step commits, so VALIDATE waits for it whatever the
        // machine's speed; the run's session is ended with it, and a re-run validates.
        add_account_id(&db, "account2");
        db.exec("DELETE FROM orders WHERE account2 = 2");
        let dir = tempfile::tempdir().unwrap();
        let file = migration_file(
            &dir,
            "0404_killed",
            &foreign_key("orders_account2_fk", "account2", None),
        );
        let cli_url = db.db.url().to_string();
        let mut reader = db.db.connect();
        reader
            .batch_execute("BEGIN; LOCK TABLE orders IN ACCESS SHARE MODE")
            .unwrap();
        reader
            .batch_execute("LOCK TABLE orders IN ROW EXCLUSIVE MODE")
            .unwrap();
        let mut child = spawn_start(&cli_url, &file, &dir.path().join("start.log"), "10min");
        let waits = waiting_on("orders").replace("l.mode", "count(*)");
        support::wait_for("the first step to queue for its lock", || {
            db.count(&waits) == 1
        });
        let mut queued = db.db.connect();
        let (tx, rx) = std::sync::mpsc::channel();
        let queue = std::thread::spawn(move || {
            queued
                .batch_execute("BEGIN; LOCK TABLE orders IN SHARE UPDATE EXCLUSIVE MODE")
                .unwrap();
            rx.recv().unwrap();
            queued.batch_execute("COMMIT").unwrap();
        });
        support::wait_for("the second session to queue", || {
            db.count(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'orders'::regclass AND mode = 'ShareUpdateExclusiveLock'",
            ) >= 1
        });
        reader.batch_execute("COMMIT").unwrap();
        support::wait_for("VALIDATE to wait for its lock", || {
            db.count(&format!(
                "{waits} AND a.query ILIKE '%VALIDATE CONSTRAINT%'"
            )) == 1
        });
        child.kill().unwrap();
        child.wait().unwrap();
        db.exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name LIKE 'zerodown%' AND pid <> pg_backend_pid()",
        );
        tx.send(()).unwrap();
        queue.join().unwrap();
        assert_eq!(
            db.count("SELECT count(*) FROM pg_constraint WHERE conname = 'orders_account2_fk' AND NOT convalidated"),
            1
        );
        start_to_end(&cli_url, &file);
        assert_eq!(
            db.count("SELECT count(*) FROM pg_constraint WHERE conname = 'orders_account2_fk' AND convalidated"),
            1
        );
        assert_eq!(status(&url, "0404_killed"), Status::Completed);
        assert_eq!(db.leftovers(), 0);
    }

    #[test]
    fn postgres_13_add_foreign_key() {
        add_foreign_key(13);
    }

    #[test]
    fn postgres_14_add_foreign_key() {
        add_foreign_key(14);
    }

    #[test]
    fn postgres_15_add_foreign_key() {
        add_foreign_key(15);
    }

    #[test]
    fn postgres_16_add_foreign_key() {
        add_foreign_key(16);
    }

    #[test]
    fn postgres_17_add_foreign_key() {
        add_foreign_key(17);
    }

    #[test]
    fn postgres_18_add_foreign_key() {
        add_foreign_key(18);
    }

    #[test]
    fn postgres_15_several_operations_run_and_roll_back_as_one() {
        let Some(db) = two_tables::pg(15, "several15", 300) else {
            return;
        };
        several_operations(&db, true);
    }

    #[test]
    fn postgres_18_several_operations_run_and_roll_back_as_one() {
        let Some(db) = two_tables::pg(18, "several18", 300) else {
            return;
        };
        several_operations(&db, true);
    }
}

mod mariadb {
    use super::*;
    use mysql::prelude::Queryable;

    type My = two_tables::My;

    /// The ALTER adding a foreign key to `orders`, with its state, as the process list shows it.
    fn alter_of(my: &My) -> Option<(u64, String)> {
        my.conn
            .lock()
            .unwrap()
            .query_first(
                "SELECT ID, COALESCE(STATE, '') FROM information_schema.PROCESSLIST
                 WHERE ID <> CONNECTION_ID() AND INFO LIKE '%ALTER TABLE `orders` ADD CONSTRAINT%FOREIGN KEY%'",
            )
            .unwrap()
    }

    /// foreign_key_checks=0 INPLACE, the orphan count, the index MariaDB builds for the key (and
    /// drops with it on rollback), the metadata lock observed, a kill -9 during the ALTER's wait.
    #[test]
    fn mariadb_add_foreign_key() {
        let Some(my) = two_tables::mariadb("fk", 300) else {
            return;
        };
        let url = my.url();
        add_account_id(&my, "account_id");
        let before = my.constraints("orders");
        let indexes = my.indexes();
        let m = migration(
            "0402_fk",
            &foreign_key("orders_account_fk", "account_id", Some("set null")),
        );
        insta::assert_snapshot!("mariadb_plan", plan_text(&url, &m));
        refusals_and_rollback(&my, &before);
        assert_eq!(my.indexes(), indexes, "the key's index was left behind");

        // The ALTER waits for the metadata lock a reader's transaction holds; the count locks
        // nothing.
        let holder = Arc::new(Mutex::new(my.db.connect()));
        let (h1, h2) = (holder.clone(), holder.clone());
        let mut watch = my.db.connect();
        let (outcome, seen) = start_observing(
            &url,
            &m,
            &quick(),
            move |index| {
                if index > 0 {
                    return false;
                }
                let mut h = h1.lock().unwrap();
                h.query_drop("START TRANSACTION").unwrap();
                h.query_drop("SELECT count(*) FROM orders").unwrap();
                true
            },
            move || h2.lock().unwrap().query_drop("COMMIT").unwrap(),
            move || {
                watch
                    .query_first::<String, _>(
                        "SELECT STATE FROM information_schema.PROCESSLIST
                         WHERE STATE LIKE 'Waiting for table metadata lock%' AND INFO LIKE '%FOREIGN KEY%'",
                    )
                    .unwrap()
            },
        );
        assert_eq!(outcome.unwrap(), StartOutcome::Completed);
        assert_eq!(seen, ["Waiting for table metadata lock"]);
        assert!(
            my.constraints("orders")
                .contains(&"orders_account_fk".to_string())
        );
        assert!(
            my.try_exec("INSERT INTO orders (amount, account_id) VALUES (1, 999999)")
                .is_err()
        );
        my.exec("DELETE FROM accounts WHERE id = 2");
        assert_eq!(
            my.count("SELECT count(*) FROM orders WHERE id = 2 AND account_id IS NULL"),
            1
        );

        // kill -9 while the ALTER waits for its metadata lock; a re-run finishes.
        add_account_id(&my, "account2");
        my.exec("UPDATE orders SET account2 = 1 WHERE account2 = 2");
        let dir = tempfile::tempdir().unwrap();
        let file = migration_file(
            &dir,
            "0404_killed",
            &foreign_key("orders_account2_fk", "account2", None),
        );
        let cli_url = my.db.url().to_string();
        let mut reader = my.db.connect();
        reader.query_drop("START TRANSACTION").unwrap();
        reader.query_drop("SELECT count(*) FROM orders").unwrap();
        let mut child = spawn_start(&cli_url, &file, &dir.path().join("start.log"), "50ms");
        support::wait_for("the ALTER to wait for its metadata lock", || {
            alter_of(&my).is_some_and(|(_, s)| s.contains("metadata lock"))
        });
        child.kill().unwrap();
        child.wait().unwrap();
        if let Some((id, _)) = alter_of(&my) {
            let _ = my.try_exec(&format!("KILL {id}"));
        }
        support::wait_for("the orphaned ALTER to end", || alter_of(&my).is_none());
        reader.query_drop("COMMIT").unwrap();
        start_to_end(&cli_url, &file);
        assert!(
            my.constraints("orders")
                .contains(&"orders_account2_fk".to_string())
        );
        assert_eq!(status(&url, "0404_killed"), Status::Completed);
        assert_eq!(my.leftovers(), 0);
    }

    #[test]
    fn mariadb_several_operations_run_and_roll_back_as_one() {
        let Some(my) = two_tables::mariadb("several", 300) else {
            return;
        };
        several_operations(&my, true);
    }
}
