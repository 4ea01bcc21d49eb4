//! AddCheck on an existing table, on every engine: the lock each step takes, observed on the
//! server while another session makes the step wait; start → completed with the constraint
//! enforced; a violating row refused with a state that rollback undoes; in a migration that waits
//! for `complete`, the constraint goes on there, and rollback leaves none.

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zerodown::spec::Migration;
use zerodown::{DatabaseUrl, Error, Event, Settings, StartOutcome};

fn migration(name: &str, text: &str) -> Migration {
    Migration::from_toml(name, text, &format!("{name}.toml")).unwrap()
}

fn check(name: &str, body: &str) -> String {
    format!("[add_check]\ntable = \"orders\"\nname = \"{name}\"\ncheck = \"{body}\"\n")
}

fn settings(allow_copy: bool) -> Settings {
    Settings {
        quiet_period: Some(Duration::ZERO),
        allow_copy,
        ..Settings::default()
    }
}

fn start(url: &DatabaseUrl, m: &Migration, s: &Settings) -> zerodown::Result<StartOutcome> {
    zerodown::start(url, m, s, &mut |_| {}, &AtomicBool::new(false))
}

/// A migration that waits for `complete`: a backfilled column, then the check.
fn waiting(name: &str, column: &str, constraint: &str) -> Migration {
    migration(
        name,
        &format!(
            "[[add_column]]\ntable = \"orders\"\ncolumn = \"{column}\"\ntype = \"int\"\nbackfill = \"amount % 3\"\n\n[[add_check]]\ntable = \"orders\"\nname = \"{constraint}\"\ncheck = \"{column} < 3\"\n"
        ),
    )
}

/// Runs `start` while, at each step, `hold` takes a lock from another session that the step must
/// wait for; `waiting` polls the server until it shows zerodown waiting and returns what it waits
/// for; then the lock is let go. Returns the outcome and what each step waited for.
fn start_observing(
    url: &DatabaseUrl,
    m: &Migration,
    s: &Settings,
    hold: impl Fn() + Send + 'static,
    release: impl Fn() + Send + 'static,
    mut waiting: impl FnMut() -> Option<String> + Send + 'static,
) -> (zerodown::Result<StartOutcome>, Vec<String>) {
    let (steps, rx) = mpsc::channel::<()>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let watcher = std::thread::spawn(move || {
        while rx.recv().is_ok() {
            // Bounded only so a broken run cannot hang the suite; a busy machine just polls longer.
            for _ in 0..12_000 {
                if let Some(what) = waiting() {
                    seen2.lock().unwrap().push(what);
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            release();
        }
    });
    let outcome = zerodown::start(
        url,
        m,
        s,
        &mut |e| {
            if let Event::StepStarted { .. } = e {
                hold();
                steps.send(()).unwrap();
            }
        },
        &AtomicBool::new(false),
    );
    drop(steps);
    watcher.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    (outcome, seen)
}

mod postgres {
    use super::*;

    fn setup(major: u32) -> Option<(support::PgTestDb, DatabaseUrl)> {
        let db = support::pg(major)?.fresh_database("check");
        db.connect()
            .batch_execute(
                "CREATE TABLE orders (id bigserial PRIMARY KEY, amount bigint NOT NULL);
                 INSERT INTO orders (amount) SELECT g FROM generate_series(1, 300) g;",
            )
            .unwrap();
        let url = DatabaseUrl::parse(db.url()).unwrap();
        Some((db, url))
    }

    fn constraint(db: &support::PgTestDb, name: &str) -> Option<bool> {
        db.connect()
            .query_opt(
                "SELECT convalidated FROM pg_constraint WHERE conname = $1",
                &[&name],
            )
            .unwrap()
            .map(|r| r.get(0))
    }

    fn add_check(major: u32) {
        let Some((db, url)) = setup(major) else {
            return;
        };
        let m = migration(
            "0200_check",
            &check("orders_amount_positive", "amount >= 0"),
        );
        let holder = Arc::new(Mutex::new(db.connect()));
        let (h1, h2) = (holder.clone(), holder.clone());
        let mut watch = db.connect();
        let (outcome, seen) = start_observing(
            &url,
            &m,
            &settings(false),
            move || {
                h1.lock()
                    .unwrap()
                    .batch_execute("BEGIN; LOCK TABLE orders IN SHARE UPDATE EXCLUSIVE MODE")
                    .unwrap()
            },
            move || h2.lock().unwrap().batch_execute("COMMIT").unwrap(),
            move || {
                watch
                    .query_opt(
                        "SELECT l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                         WHERE NOT l.granted AND l.relation = 'orders'::regclass
                           AND a.application_name LIKE 'zerodown%'",
                        &[],
                    )
                    .unwrap()
                    .map(|r| r.get(0))
            },
        );
        assert_eq!(outcome.unwrap(), StartOutcome::Completed);
        assert_eq!(seen, ["AccessExclusiveLock", "ShareUpdateExclusiveLock"]);
        assert_eq!(constraint(&db, "orders_amount_positive"), Some(true));
        let err = db
            .connect()
            .batch_execute("INSERT INTO orders (amount) VALUES (-1)")
            .unwrap_err();
        let message = err.as_db_error().unwrap().message();
        assert!(message.contains("orders_amount_positive"), "{message}");

        // A row that violates it: VALIDATE fails, naming the constraint; rollback leaves none.
        let bad = migration("0201_bad", &check("orders_amount_big", "amount > 100"));
        let err = start(&url, &bad, &settings(false)).unwrap_err();
        assert!(err.to_string().contains("orders_amount_big"), "{err}");
        zerodown::rollback(&url, "0201_bad", &Settings::default(), &mut |_| {}).unwrap();
        assert_eq!(constraint(&db, "orders_amount_big"), None);

        // Waiting for complete: nothing until complete; rollback leaves nothing.
        let w = waiting("0202_wait", "r1", "orders_r1_small");
        let plan = zerodown::plan(&url, &w).unwrap();
        assert!(
            plan.steps
                .iter()
                .filter(|s| s.op == 1)
                .all(|s| s.phase == zerodown::plan::Phase::Contract)
        );
        start(&url, &w, &settings(false)).unwrap();
        assert_eq!(constraint(&db, "orders_r1_small"), None);
        zerodown::rollback(&url, &w.name, &Settings::default(), &mut |_| {}).unwrap();
        assert_eq!(constraint(&db, "orders_r1_small"), None);
        let w = waiting("0203_wait", "r2", "orders_r2_small");
        start(&url, &w, &settings(false)).unwrap();
        zerodown::complete(
            &url,
            &w.name,
            &settings(false),
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(constraint(&db, "orders_r2_small"), Some(true));
    }

    #[test]
    fn postgres_15_add_check() {
        add_check(15);
    }

    #[test]
    fn postgres_18_add_check() {
        add_check(18);
    }
}

mod mariadb {
    use super::*;
    use mysql::prelude::Queryable;

    fn constraint(c: &mut mysql::Conn, name: &str) -> bool {
        c.exec_first::<i64, _, _>(
            "SELECT count(*) FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND CONSTRAINT_NAME = ?",
            (name,),
        )
        .unwrap()
        .unwrap()
            > 0
    }

    #[test]
    fn mariadb_add_check() {
        let Some(server) = support::mariadb() else {
            return;
        };
        let db = server.fresh_database("check");
        let mut c = db.connect();
        c.query_drop(
            "CREATE TABLE orders (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, amount bigint NOT NULL) ENGINE=InnoDB",
        )
        .unwrap();
        c.query_drop("INSERT INTO orders (amount) SELECT seq FROM seq_1_to_300")
            .unwrap();
        let url = DatabaseUrl::parse(db.url()).unwrap();
        let m = migration(
            "0200_check",
            &check("orders_amount_positive", "amount >= 0"),
        );

        // Without --allow-copy: refused, nothing changed.
        let err = start(&url, &m, &settings(false)).unwrap_err();
        assert!(
            matches!(&err, Error::Refused(msg) if msg.contains("--allow-copy")),
            "{err}"
        );
        assert!(!constraint(&mut c, "orders_amount_positive"));

        let holder = Arc::new(Mutex::new(db.connect()));
        let (h1, h2) = (holder.clone(), holder.clone());
        let mut watch = db.connect();
        let m = migration(
            "0201_check",
            &check("orders_amount_positive", "amount >= 0"),
        );
        let (outcome, seen) = start_observing(
            &url,
            &m,
            &settings(true),
            move || {
                let mut h = h1.lock().unwrap();
                h.query_drop("START TRANSACTION").unwrap();
                h.query_drop("SELECT count(*) FROM orders").unwrap();
            },
            move || h2.lock().unwrap().query_drop("COMMIT").unwrap(),
            move || {
                watch
                    .query_first::<String, _>(
                        "SELECT STATE FROM information_schema.PROCESSLIST
                         WHERE STATE LIKE 'Waiting for table metadata lock%' AND INFO LIKE '%ALTER TABLE%CHECK%'",
                    )
                    .unwrap()
            },
        );
        assert_eq!(outcome.unwrap(), StartOutcome::Completed);
        assert_eq!(seen, ["Waiting for table metadata lock"]);
        assert!(constraint(&mut c, "orders_amount_positive"));
        assert!(
            c.query_drop("INSERT INTO orders (amount) VALUES (-1)")
                .is_err()
        );

        let w = waiting("0202_wait", "r1", "orders_r1_small");
        start(&url, &w, &settings(true)).unwrap();
        assert!(!constraint(&mut c, "orders_r1_small"));
        zerodown::rollback(&url, &w.name, &Settings::default(), &mut |_| {}).unwrap();
        assert!(!constraint(&mut c, "orders_r1_small"));
    }
}

mod sqlite {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn sqlite_add_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("check.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
             INSERT INTO orders (amount) SELECT i FROM n;",
        )
        .unwrap();
        let url = DatabaseUrl::Sqlite(path.clone());
        let definition = |c: &Connection| -> String {
            c.query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'orders'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };

        // The write lock: a writer holding it makes the step retry, naming the wait.
        let holder = Arc::new(Mutex::new(Connection::open(&path).unwrap()));
        let (h1, h2) = (holder.clone(), holder.clone());
        let retried = Arc::new(Mutex::new(false));
        let m = migration(
            "0200_check",
            &check("orders_amount_positive", "amount >= 0"),
        );
        let mut held = false;
        let outcome = zerodown::start(
            &url,
            &m,
            &settings(false),
            &mut |e| match e {
                Event::StepStarted { .. } if !held => {
                    h1.lock().unwrap().execute_batch("BEGIN IMMEDIATE").unwrap();
                    held = true;
                }
                Event::LockRetry { .. } if held => {
                    *retried.lock().unwrap() = true;
                    h2.lock().unwrap().execute_batch("COMMIT").unwrap();
                    held = false;
                }
                _ => {}
            },
            &AtomicBool::new(false),
        );
        assert_eq!(outcome.unwrap(), StartOutcome::Completed);
        assert!(
            *retried.lock().unwrap(),
            "the held write lock never made it wait"
        );
        assert!(definition(&c).contains("orders_amount_positive"));
        assert!(
            c.execute("INSERT INTO orders (amount) VALUES (-1)", [])
                .is_err()
        );

        // A violating row: refused by SQLite's check of every row; rollback leaves the table as it was.
        let before = definition(&c);
        let bad = migration("0201_bad", &check("orders_amount_big", "amount > 100"));
        let err = start(&url, &bad, &settings(false)).unwrap_err();
        assert!(
            err.to_string().to_lowercase().contains("constraint"),
            "{err}"
        );
        zerodown::rollback(&url, "0201_bad", &Settings::default(), &mut |_| {}).unwrap();
        assert_eq!(definition(&c), before);

        let w = waiting("0202_wait", "r1", "orders_r1_small");
        start(&url, &w, &settings(false)).unwrap();
        assert!(!definition(&c).contains("orders_r1_small"));
        zerodown::rollback(&url, &w.name, &Settings::default(), &mut |_| {}).unwrap();
        assert_eq!(definition(&c), before);
    }
}
