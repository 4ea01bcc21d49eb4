//! SetNotNull on SQLite, PostgreSQL 13–18 and MariaDB: refused while rows hold NULL (naming the
//! count), start → completed with NOT NULL enforced, the lock each step takes observed on the
//! server, start → rollback in a migration that waits for `complete`, a kill -9 during the step
//! that checks the rows then a re-run that finishes, and no constraint of zerodown's left behind.

mod support;

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::two_tables::{self, Db, Lite, start_observing};
use zerodown::spec::Migration;
use zerodown::{DatabaseUrl, Error, Event, Settings, StartOutcome, Status};

fn migration(name: &str, text: &str) -> Migration {
    Migration::from_toml(name, text, &format!("{name}.toml")).unwrap()
}

fn not_null(column: &str) -> String {
    format!("[set_not_null]\ntable = \"orders\"\ncolumn = \"{column}\"\n")
}

/// A migration that waits for `complete`: a backfilled column on accounts, then the NOT NULL.
fn waiting(column: &str, new: &str) -> String {
    format!(
        "[[add_column]]\ntable = \"accounts\"\ncolumn = \"{new}\"\ntype = \"int\"\nbackfill = \"balance % 3\"\n\n[[set_not_null]]\ntable = \"orders\"\ncolumn = \"{column}\"\n"
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

/// The plan's text without the engine's version, for snapshots shared by versions.
fn plan_text(url: &DatabaseUrl, m: &Migration) -> String {
    let plan = zerodown::plan(url, m).unwrap();
    zerodown::plan::render_text(&plan).replace(&plan.engine, "<engine>")
}

/// Adds `orders.ref` (nullable, 7 NULL rows), then: refused naming the count; filled; start →
/// completed; a waiting migration rolled back and completed on a second column. Returns the
/// table's constraints before, for the caller's own checks.
fn lifecycle(db: &dyn Db) -> Vec<String> {
    let url = db.url();
    db.exec("ALTER TABLE orders ADD COLUMN ref bigint");
    db.exec("ALTER TABLE orders ADD COLUMN ref2 bigint");
    db.exec("UPDATE orders SET ref = id, ref2 = id WHERE id > 7");
    let before = besides_not_null(db.constraints("orders"));
    let m = migration("0300_ref_not_null", &not_null("ref"));
    let err = zerodown::plan(&url, &m).unwrap_err();
    assert!(
        matches!(&err, Error::Refused(msg) if msg.contains("7 row(s) of `orders` hold NULL in `ref`") && msg.contains("backfill them first")),
        "{err}"
    );
    assert!(matches!(start(&url, &m), Err(Error::Refused(_))));
    assert!(db.nullable("orders", "ref"));
    db.exec("UPDATE orders SET ref = 0, ref2 = 0 WHERE ref IS NULL");

    // In a migration that waits for `complete`: nothing at start; rollback leaves it nullable.
    let w = migration("0301_wait", &waiting("ref2", "w1"));
    let plan = zerodown::plan(&url, &w).unwrap();
    assert!(
        plan.steps
            .iter()
            .filter(|s| s.op == 1)
            .all(|s| s.phase == zerodown::plan::Phase::Contract),
        "{plan:?}"
    );
    start(&url, &w).unwrap();
    assert!(db.nullable("orders", "ref2"));
    rollback(&url, &w.name);
    assert!(db.nullable("orders", "ref2"));
    assert_eq!(besides_not_null(db.constraints("orders")), before);
    let w = migration("0302_wait", &waiting("ref2", "w2"));
    start(&url, &w).unwrap();
    complete(&url, &w.name).unwrap();
    assert!(!db.nullable("orders", "ref2"));
    assert!(
        db.try_exec("INSERT INTO orders (amount, ref, ref2) VALUES (1, 1, NULL)")
            .is_err()
    );
    // (PostgreSQL 18 keeps a column's NOT NULL as a constraint of its own.)
    assert_eq!(besides_not_null(db.constraints("orders")), before);
    assert_eq!(db.leftovers(), 0);
    before
}

/// Constraints other than PostgreSQL 18's NOT NULL ones.
fn besides_not_null(names: Vec<String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| !n.ends_with("_not_null"))
        .collect()
}

/// A migration file for the zerodown binary.
fn migration_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `zerodown start <file>` as a child, its output to `log`.
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

/// Runs `zerodown start <file>` to the end; a run refused because the killed one's sessions are
/// still going away is tried again.
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

    /// SQLite 3.53+ verifies every row under the write lock: a writer holding it makes the step
    /// retry (readers go on in WAL); a kill -9 while it waits changes nothing, and a re-run
    /// finishes.
    #[test]
    fn sqlite_set_not_null() {
        let db = Lite::new(300);
        let before = lifecycle(&db);
        let url = db.url();
        let m = migration("0303_ref", &not_null("ref"));
        insta::assert_snapshot!("sqlite_plan", plan_text(&url, &m));
        let holder = Arc::new(Mutex::new(db.conn()));
        let (h1, h2) = (holder.clone(), holder.clone());
        let mut held = false;
        let mut retried = false;
        let outcome = zerodown::start(
            &url,
            &m,
            &quick(),
            &mut |e| match e {
                Event::StepStarted { .. } if !retried => {
                    h1.lock().unwrap().execute_batch("BEGIN IMMEDIATE").unwrap();
                    held = true;
                }
                Event::LockRetry { .. } if held => {
                    h2.lock().unwrap().execute_batch("COMMIT").unwrap();
                    held = false;
                    retried = true;
                }
                _ => {}
            },
            &AtomicBool::new(false),
        );
        assert_eq!(outcome.unwrap(), StartOutcome::Completed);
        assert!(retried, "the held write lock never made the step wait");
        assert!(!db.nullable("orders", "ref"));

        // kill -9 while the step waits for the write lock; a re-run makes it NOT NULL.
        db.exec("ALTER TABLE orders ADD COLUMN ref3 bigint NOT NULL DEFAULT 0");
        db.exec("ALTER TABLE orders ADD COLUMN ref4 bigint");
        db.exec("UPDATE orders SET ref4 = id");
        let dir = tempfile::tempdir().unwrap();
        let file = migration_file(&dir, "0304_killed", &not_null("ref4"));
        let cli_url = format!("sqlite://{}", db.path.display());
        let holder = db.conn();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let log = dir.path().join("start.log");
        let mut child = spawn_start(&cli_url, &file, &log, "50ms");
        support::wait_for("zerodown to wait for the write lock", || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("lock busy")
        });
        child.kill().unwrap();
        child.wait().unwrap();
        holder.execute_batch("ROLLBACK").unwrap();
        assert!(db.nullable("orders", "ref4"));
        start_to_end(&cli_url, &file);
        assert!(!db.nullable("orders", "ref4"));
        assert_eq!(status(&url, "0304_killed"), Status::Completed);
        assert_eq!(besides_not_null(db.constraints("orders")), before);
        assert_eq!(db.leftovers(), 0);
        assert_eq!(
            db.count("SELECT count(*) FROM pragma_integrity_check WHERE integrity_check <> 'ok'"),
            0
        );
    }
}

mod postgres {
    use super::*;

    /// The lock zerodown's session waits for on `orders`.
    const WAITING: &str = "SELECT l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE NOT l.granted AND l.relation = 'orders'::regclass
           AND a.application_name LIKE 'zerodown%'";

    fn set_not_null(major: u32) {
        let Some(db) = two_tables::pg(major, &format!("nn{major}"), 300) else {
            return;
        };
        let before = lifecycle(&db);
        let url = db.url();
        let m = migration("0303_ref", &not_null("ref"));
        let name = if major >= 18 { "pg_18_plan" } else { "pg_plan" };
        insta::assert_snapshot!(name, plan_text(&url, &m));

        // Each step waits for a session holding SHARE UPDATE EXCLUSIVE on orders (which blocks
        // both ACCESS EXCLUSIVE and SHARE UPDATE EXCLUSIVE): the modes it waited for are the
        // ones it takes.
        let holder = Arc::new(Mutex::new(db.db.connect()));
        let (h1, h2) = (holder.clone(), holder.clone());
        let mut watch = db.db.connect();
        let (outcome, seen) = start_observing(
            &url,
            &m,
            &quick(),
            move |_| {
                h1.lock()
                    .unwrap()
                    .batch_execute("BEGIN; LOCK TABLE orders IN SHARE UPDATE EXCLUSIVE MODE")
                    .unwrap();
                true
            },
            move || h2.lock().unwrap().batch_execute("COMMIT").unwrap(),
            move || watch.query_opt(WAITING, &[]).unwrap().map(|r| r.get(0)),
        );
        assert_eq!(outcome.unwrap(), StartOutcome::Completed);
        if major >= 18 {
            assert_eq!(seen, ["AccessExclusiveLock", "ShareUpdateExclusiveLock"]);
        } else {
            assert_eq!(
                seen,
                [
                    "AccessExclusiveLock",
                    "ShareUpdateExclusiveLock",
                    "AccessExclusiveLock"
                ]
            );
        }
        assert!(!db.nullable("orders", "ref"));
        assert!(
            db.try_exec("INSERT INTO orders (amount, ref, ref2) VALUES (1, NULL, 1)")
                .is_err()
        );
        let after: Vec<String> = db.constraints("orders");
        // On 18 the column's NOT NULL is a constraint of its own, under PostgreSQL's name.
        assert_eq!(
            after.contains(&"orders_ref_not_null".to_string()),
            major >= 18,
            "{after:?}"
        );
        assert_eq!(besides_not_null(after), before);

        // kill -9 while VALIDATE waits: a second session queued for SHARE UPDATE EXCLUSIVE
        // behind the first step gets it as soon as that step commits, so the scan waits for it,
        // whatever the machine's speed. The run's session is ended with it; a re-run validates.
        db.exec("ALTER TABLE orders ADD COLUMN ref4 bigint");
        db.exec("UPDATE orders SET ref4 = id");
        let dir = tempfile::tempdir().unwrap();
        let file = migration_file(&dir, "0304_killed", &not_null("ref4"));
        let cli_url = db.db.url().to_string();
        let mut reader = db.db.connect();
        reader
            .batch_execute("BEGIN; SELECT count(*) FROM orders")
            .unwrap();
        let mut child = spawn_start(&cli_url, &file, &dir.path().join("start.log"), "10min");
        support::wait_for("the first step to queue for its lock", || {
            db.count(&WAITING.replace("l.mode", "count(*)")) == 1
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
            db.count(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE NOT l.granted AND l.relation = 'orders'::regclass
                   AND a.application_name LIKE 'zerodown%' AND a.query ILIKE '%VALIDATE CONSTRAINT%'",
            ) == 1
        });
        child.kill().unwrap();
        child.wait().unwrap();
        db.exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name LIKE 'zerodown%' AND pid <> pg_backend_pid()",
        );
        tx.send(()).unwrap();
        queue.join().unwrap();
        assert!(db.nullable("orders", "ref4") || major >= 18);
        start_to_end(&cli_url, &file);
        assert!(!db.nullable("orders", "ref4"));
        assert_eq!(status(&url, "0304_killed"), Status::Completed);
        assert_eq!(db.leftovers(), 0);
        assert_eq!(besides_not_null(db.constraints("orders")), before);
    }

    #[test]
    fn postgres_13_set_not_null() {
        set_not_null(13);
    }

    #[test]
    fn postgres_14_set_not_null() {
        set_not_null(14);
    }

    #[test]
    fn postgres_15_set_not_null() {
        set_not_null(15);
    }

    #[test]
    fn postgres_16_set_not_null() {
        set_not_null(16);
    }

    #[test]
    fn postgres_17_set_not_null() {
        set_not_null(17);
    }

    #[test]
    fn postgres_18_set_not_null() {
        set_not_null(18);
    }
}

mod mariadb {
    use super::*;
    use mysql::prelude::Queryable;

    type My = two_tables::My;

    /// The ALTER on `orders`, with its state, as the process list shows it.
    fn alter_of(my: &My) -> Option<(u64, String)> {
        my.conn
            .lock()
            .unwrap()
            .query_first(
                "SELECT ID, COALESCE(STATE, '') FROM information_schema.PROCESSLIST
                 WHERE ID <> CONNECTION_ID() AND INFO LIKE '%ALTER TABLE `orders` MODIFY%'",
            )
            .unwrap()
    }

    /// What information_schema says of `orders.label`: type, charset, collation, default,
    /// comment, nullable.
    fn label(my: &My) -> (String, String, String, String, String, String) {
        my.conn
            .lock()
            .unwrap()
            .query_first(
                "SELECT COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_DEFAULT, COLUMN_COMMENT, IS_NULLABLE
                 FROM information_schema.COLUMNS
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'orders' AND COLUMN_NAME = 'label'",
            )
            .unwrap()
            .unwrap()
    }

    /// INPLACE, LOCK=NONE under strict sql_mode; the column's every attribute restated from the
    /// catalog; the MODIFY waits for the metadata lock a reader's transaction holds; a kill -9
    /// during that wait, then a re-run that finishes.
    #[test]
    fn mariadb_set_not_null() {
        let Some(my) = two_tables::mariadb("nn", 300) else {
            return;
        };
        let before = lifecycle(&my);
        let url = my.url();
        let m = migration("0303_ref", &not_null("ref"));
        insta::assert_snapshot!("mariadb_plan", plan_text(&url, &m));
        let holder = Arc::new(Mutex::new(my.db.connect()));
        let (h1, h2) = (holder.clone(), holder.clone());
        let mut watch = my.db.connect();
        let (outcome, seen) = start_observing(
            &url,
            &m,
            &quick(),
            move |_| {
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
                         WHERE STATE LIKE 'Waiting for table metadata lock%' AND INFO LIKE '%MODIFY COLUMN%NOT NULL%'",
                    )
                    .unwrap()
            },
        );
        assert_eq!(outcome.unwrap(), StartOutcome::Completed);
        assert_eq!(seen, ["Waiting for table metadata lock"]);
        assert!(!my.nullable("orders", "ref"));

        // Every attribute of the column survives the MODIFY.
        my.exec(
            "ALTER TABLE orders ADD COLUMN label varchar(20) CHARACTER SET latin1 COLLATE latin1_bin DEFAULT 'it''s' COMMENT 'a \\\\ label''s note'",
        );
        let was = label(&my);
        let m = migration("0305_label", &not_null("label"));
        assert_eq!(start(&url, &m).unwrap(), StartOutcome::Completed);
        let now = label(&my);
        assert_eq!(now.5, "NO");
        assert_eq!(
            (&now.0, &now.1, &now.2, &now.3, &now.4),
            (&was.0, &was.1, &was.2, &was.3, &was.4)
        );

        // kill -9 while the MODIFY waits for its metadata lock; the server ends the orphaned
        // ALTER once it notices, and a re-run finishes.
        my.exec("ALTER TABLE orders ADD COLUMN ref4 bigint");
        my.exec("UPDATE orders SET ref4 = id");
        let dir = tempfile::tempdir().unwrap();
        let file = migration_file(&dir, "0304_killed", &not_null("ref4"));
        let cli_url = my.db.url().to_string();
        let mut reader = my.db.connect();
        reader.query_drop("START TRANSACTION").unwrap();
        reader.query_drop("SELECT count(*) FROM orders").unwrap();
        let mut child = spawn_start(&cli_url, &file, &dir.path().join("start.log"), "50ms");
        support::wait_for("the MODIFY to wait for its metadata lock", || {
            alter_of(&my).is_some_and(|(_, s)| s.contains("metadata lock"))
        });
        child.kill().unwrap();
        child.wait().unwrap();
        if let Some((id, _)) = alter_of(&my) {
            let _ = my.try_exec(&format!("KILL {id}"));
        }
        support::wait_for("the orphaned ALTER to end", || alter_of(&my).is_none());
        reader.query_drop("COMMIT").unwrap();
        assert!(my.nullable("orders", "ref4"));
        start_to_end(&cli_url, &file);
        assert!(!my.nullable("orders", "ref4"));
        assert_eq!(status(&url, "0304_killed"), Status::Completed);
        assert_eq!(besides_not_null(my.constraints("orders")), before);
        assert_eq!(my.leftovers(), 0);
    }
}
