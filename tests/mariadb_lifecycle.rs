//! The add-column lifecycle on real MariaDB 10.11 (tests/support starts the server): INSTANT expand
//! proven by the server's own counter, writers old and new during the window (as the application
//! user), an open transaction in the way, rollback from each phase, COPY refused without --allow-copy,
//! the binary log on, and bad input.

mod support;

use mysql::Conn;
use mysql::prelude::Queryable;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::MariaDbTestDb;
use zerodown::spec::{AddColumn, Migration};
use zerodown::{DatabaseUrl, Event, Settings, StartOutcome, Status};

const TIER_EXPR: &str = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END";

/// A fresh database with `accounts(id bigint PK AUTO_INCREMENT, email, balance, touched ON UPDATE)` and
/// `rows` rows; returns it, an admin connection and the application user's URL.
fn setup(name: &str, rows: i64) -> Option<(MariaDbTestDb, Conn, String)> {
    let server = support::mariadb()?;
    let db = server.fresh_database(name);
    let app = db.create_app_user();
    let mut c = db.connect();
    c.query_drop(
        "CREATE TABLE accounts (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, email varchar(100) NOT NULL,
           balance bigint NOT NULL,
           touched timestamp(3) NOT NULL DEFAULT '2000-01-01 00:00:00' ON UPDATE current_timestamp(3)) ENGINE=InnoDB",
    )
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO accounts (email, balance) SELECT concat('u', seq, '@x'), (seq * 7919) % 20000 FROM seq_1_to_{rows}"
    ))
    .unwrap();
    Some((db, c, app))
}

fn url(db: &MariaDbTestDb) -> DatabaseUrl {
    DatabaseUrl::parse(db.url()).unwrap()
}

fn migration(name: &str, f: impl FnOnce(&mut AddColumn)) -> Migration {
    let mut a = AddColumn::new("accounts", "c", "varchar(20)");
    f(&mut a);
    Migration::adding(name, a)
}

fn tier_migration() -> Migration {
    migration("0042_tier", |a| {
        a.column = "tier".into();
        a.not_null = true;
        a.backfill = Some(TIER_EXPR.into());
        a.default = Some("'standard'".into());
        a.index = true;
    })
}

fn quick() -> Settings {
    Settings {
        quiet_period: Some(Duration::ZERO),
        batch_time: Some(Duration::from_millis(10)),
        lock_timeout: Some(Duration::from_millis(300)),
        ..Settings::default()
    }
}

fn start(db: &MariaDbTestDb, m: &Migration, s: &Settings) -> zerodown::Result<StartOutcome> {
    zerodown::start(&url(db), m, s, &mut |_| {}, &AtomicBool::new(false))
}

fn complete(db: &MariaDbTestDb, name: &str, s: &Settings) -> zerodown::Result<()> {
    zerodown::complete(&url(db), name, s, &mut |_| {}, &AtomicBool::new(false))
}

fn rollback(db: &MariaDbTestDb, name: &str) -> zerodown::Result<()> {
    zerodown::rollback(&url(db), name, &Settings::default(), &mut |_| {})
}

fn one<T: mysql::prelude::FromValue>(c: &mut Conn, sql: &str) -> T {
    c.query_first::<T, _>(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap()
}

/// zerodown's objects left in the database: triggers, sequences, indexes named zd_*.
fn leftovers(c: &mut Conn) -> Vec<String> {
    c.query(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()
         UNION ALL SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'zd\\_%'
         UNION ALL SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME LIKE 'zd\\_%'
         UNION ALL SELECT CONSTRAINT_NAME FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME LIKE 'zd\\_%'",
    )
    .unwrap()
}

fn column_exists(c: &mut Conn, column: &str) -> bool {
    one::<i64>(
        c,
        &format!(
            "SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'accounts' AND COLUMN_NAME = '{column}'"
        ),
    ) > 0
}

fn instant_counter(c: &mut Conn) -> i64 {
    let row: Option<(String, i64)> = c
        .query_first("SHOW GLOBAL STATUS LIKE 'innodb_instant_alter_column'")
        .unwrap();
    row.unwrap().1
}

#[test]
fn derived_lifecycle_with_old_and_new_writers() {
    let Some((db, mut c, app)) = setup("my_lifecycle", 20_000) else {
        return;
    };
    let m = tier_migration();
    let before = instant_counter(&mut c);
    // Old application version: inserts without tier, updates balances of even ids.
    let stop = Arc::new(AtomicBool::new(false));
    let old_writer = {
        let stop = stop.clone();
        let app = app.clone();
        std::thread::spawn(move || {
            let mut w = Conn::new(mysql::Opts::from_url(&app).unwrap()).unwrap();
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                w.exec_drop(
                    "INSERT INTO accounts (email, balance) VALUES (?, ?)",
                    (format!("old{n}@x"), (n * 3331) % 20000),
                )
                .unwrap();
                w.exec_drop(
                    "UPDATE accounts SET balance = (balance + 10007) % 20000 WHERE id = ?",
                    ((n * 7) % 10_000 * 2 + 2,),
                )
                .unwrap();
            }
            n
        })
    };
    let outcome = start(&db, &m, &quick()).unwrap();
    assert!(matches!(outcome, StartOutcome::Backfilled { .. }));
    assert!(
        instant_counter(&mut c) > before,
        "ADD COLUMN ran INSTANT (innodb_instant_alter_column went up)"
    );
    // The ON UPDATE column kept its value through the backfill.
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM accounts WHERE id <= 20000 AND id % 2 = 1 AND touched <> '2000-01-01 00:00:00'"
        ),
        0
    );
    // New application version: sets tier itself on odd ids, against the expression.
    let mut set_by_writer: HashSet<i64> = HashSet::new();
    let mut w = Conn::new(mysql::Opts::from_url(&app).unwrap()).unwrap();
    for id in (1..2000).step_by(2) {
        w.exec_drop("UPDATE accounts SET tier = 'vip' WHERE id = ?", (id,))
            .unwrap();
        set_by_writer.insert(id);
    }
    w.exec_drop(
        "INSERT INTO accounts (email, balance, tier) VALUES ('new@x', 5, 'vip')",
        (),
    )
    .unwrap();
    let new_id: i64 = one(&mut w, "SELECT LAST_INSERT_ID()");
    set_by_writer.insert(new_id);
    // The old version goes on inserting after the backfill: the guard must count those.
    support::wait_for("an old-version insert the guard counted", || {
        zerodown::status(&url(&db), Some("0042_tier")).unwrap()[0]
            .old_writer_inserts
            .unwrap_or(0)
            > 0
    });
    stop.store(true, Ordering::Relaxed);
    let old_writes = old_writer.join().unwrap();
    assert!(old_writes > 0);
    // The deploy-order guard counted the old writer's INSERTs.
    let states = zerodown::status(&url(&db), Some("0042_tier")).unwrap();
    assert_eq!(states.len(), 1);
    // INSERTs before the triggers went on are not counted; every one after is.
    let counted = states[0].old_writer_inserts.unwrap_or(0);
    assert!(
        counted > 0 && counted <= old_writes,
        "the guard counted {:?} of {old_writes} old INSERTs",
        states[0].old_writer_inserts
    );
    complete(&db, "0042_tier", &quick()).unwrap();

    // Window semantics: every row is the expression of its balance, unless a writer set it.
    let rows: Vec<(i64, i64, Option<String>)> =
        c.query("SELECT id, balance, tier FROM accounts").unwrap();
    let mut wrong = Vec::new();
    for (id, balance, tier) in rows {
        let want = if set_by_writer.contains(&id) {
            "vip"
        } else if balance > 10000 {
            "gold"
        } else {
            "standard"
        };
        if tier.as_deref() != Some(want) {
            wrong.push((id, balance, tier));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} rows break the window semantics, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    // Contract: NOT NULL, the default on, the index built, zerodown's scaffolding gone.
    let (nullable, default): (String, Option<String>) = c
        .query_first("SELECT IS_NULLABLE, COLUMN_DEFAULT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'accounts' AND COLUMN_NAME = 'tier'")
        .unwrap()
        .unwrap();
    assert_eq!(nullable, "NO");
    assert_eq!(default.as_deref(), Some("'standard'"));
    let left = leftovers(&mut c);
    assert_eq!(left.len(), 1, "only the index stays: {left:?}");
    assert!(left[0].starts_with("zd_ix_"));
    assert!(
        c.query_drop("INSERT INTO accounts (email, balance, tier) VALUES ('x', 1, NULL)")
            .is_err()
    );
    c.query_drop("INSERT INTO accounts (email, balance) VALUES ('d@x', 1)")
        .unwrap();
    assert_eq!(
        one::<String>(&mut c, "SELECT tier FROM accounts WHERE email = 'd@x'"),
        "standard"
    );
    let st = zerodown::status(&url(&db), Some("0042_tier")).unwrap();
    assert_eq!(st[0].status, Status::Completed);
}

#[test]
fn constant_time_and_volatile_defaults() {
    let Some((db, mut c, _)) = setup("my_defaults", 3000) else {
        return;
    };
    // A constant and a time default: one INSTANT statement, one value for every old row.
    let before = instant_counter(&mut c);
    for (name, ty, def) in [
        ("d1", "int", "0"),
        ("d2", "datetime(3)", "now(3)"),
        ("d3", "int", "(1+1)"),
    ] {
        let m = migration(&format!("def_{name}"), |a| {
            a.column = name.into();
            a.data_type = ty.into();
            a.not_null = true;
            a.default = Some(def.into());
        });
        let plan = zerodown::plan(&url(&db), &m).unwrap();
        assert!(plan.single_step, "{name}: {plan:#?}");
        assert!(plan.steps[0].sql[0].sql.ends_with("ALGORITHM=INSTANT"));
        assert_eq!(start(&db, &m, &quick()).unwrap(), StartOutcome::Completed);
        let distinct: i64 = one(
            &mut c,
            &format!("SELECT count(DISTINCT {name}) FROM accounts"),
        );
        assert_eq!(distinct, 1, "{name}");
    }
    assert!(instant_counter(&mut c) >= before + 3);
    // Volatile defaults (uuid(): INSTANT refuses it; rand(): INSTANT would give every row one value)
    // are classified by the function table: added without, backfilled per row, set at complete.
    for (name, ty, def) in [("v1", "char(36)", "uuid()"), ("v2", "double", "rand()")] {
        let m = migration(&format!("def_{name}"), |a| {
            a.column = name.into();
            a.data_type = ty.into();
            a.default = Some(def.into());
        });
        let plan = zerodown::plan(&url(&db), &m).unwrap();
        assert!(!plan.single_step && plan.ops[0].fill.is_some(), "{name}");
        start(&db, &m, &quick()).unwrap();
        complete(&db, &format!("def_{name}"), &quick()).unwrap();
        let distinct: i64 = one(
            &mut c,
            &format!("SELECT count(DISTINCT {name}) FROM accounts"),
        );
        // MariaDB's rand() has about 2^30 values: a rare birthday collision is not a shared value.
        assert!(
            distinct >= 2990,
            "{name}: every row its own value ({distinct} distinct)"
        );
        let default: Option<String> = c
            .query_first(format!("SELECT COLUMN_DEFAULT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'accounts' AND COLUMN_NAME = '{name}'"))
            .unwrap()
            .unwrap();
        assert_eq!(default.as_deref(), Some(def), "{name}");
    }
    assert!(leftovers(&mut c).is_empty());
}

#[test]
fn an_open_transaction_never_queues_application_queries_behind_zerodown() {
    let Some((db, mut c, app)) = setup("my_blocked", 1000) else {
        return;
    };
    // A: an idle transaction that read the table (holds its metadata lock).
    let mut a = db.connect();
    a.query_drop("START TRANSACTION").unwrap();
    let _: Vec<i64> = a.query("SELECT id FROM accounts LIMIT 1").unwrap();
    let a_id: u32 = a.connection_id();
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let driver = {
        let db = db.clone();
        let events = events.clone();
        std::thread::spawn(move || {
            let m = migration("blocked", |a| {
                a.backfill = Some("concat('x', id)".into());
            });
            let s = Settings {
                lock_timeout: Some(Duration::from_millis(200)),
                ..quick()
            };
            zerodown::start(
                &url(&db),
                &m,
                &s,
                &mut |e| {
                    if let Event::LockRetry {
                        blocker, waited, ..
                    } = e
                    {
                        events
                            .lock()
                            .unwrap()
                            .push(format!("{:.0?} {blocker}", waited));
                    }
                },
                &AtomicBool::new(false),
            )
        })
    };
    // Application queries keep completing across several of zerodown's retries while A still holds
    // the table: zerodown's ALTER gives its place in the metadata-lock queue up after each attempt
    // (had it stayed queued, every query would wait for A). Counted, never timed.
    let mut w = Conn::new(mysql::Opts::from_url(&app).unwrap()).unwrap();
    let retries = || events.lock().unwrap().len();
    support::wait_for("zerodown's first lock retry", || retries() >= 1);
    let retries_then = retries();
    let mut queries = 0;
    while queries < 10 || retries() < retries_then + 3 {
        let _: Option<i64> = w.query_first("SELECT count(*) FROM accounts").unwrap();
        queries += 1;
    }
    assert!(!driver.is_finished(), "start got through a held table");
    {
        let ev = events.lock().unwrap();
        assert!(!ev.is_empty(), "zerodown retried while A held the table");
        assert!(
            ev.iter().any(|e| e.contains(&format!("connection {a_id}"))),
            "the blocker is named: {ev:?}"
        );
    }
    assert!(!column_exists(&mut c, "c") || leftovers(&mut c).is_empty());
    a.query_drop("COMMIT").unwrap();
    let outcome = driver.join().unwrap().unwrap();
    assert!(matches!(outcome, StartOutcome::Backfilled { .. }));
    assert_eq!(
        one::<i64>(&mut c, "SELECT count(*) FROM accounts WHERE c IS NULL"),
        0
    );
    rollback(&db, "blocked").unwrap();
}

#[test]
fn rollback_from_each_phase_leaves_nothing() {
    let Some((db, mut c, _)) = setup("my_rollback", 2000) else {
        return;
    };
    // From backfilled.
    let m = tier_migration();
    start(&db, &m, &quick()).unwrap();
    rollback(&db, "0042_tier").unwrap();
    assert!(!column_exists(&mut c, "tier"));
    assert!(leftovers(&mut c).is_empty(), "{:?}", leftovers(&mut c));
    // From an interrupted start (cancelled before the first batch): the name is free again.
    let cancelled = AtomicBool::new(true);
    let r = zerodown::start(&url(&db), &m, &quick(), &mut |_| {}, &cancelled);
    assert!(r.is_err(), "{r:?}");
    rollback(&db, "0042_tier").unwrap();
    assert!(!column_exists(&mut c, "tier"));
    assert!(leftovers(&mut c).is_empty());
    // Halfway through complete: NOT NULL and the index are on, then the CHECK (COPY) is refused.
    let m = migration("0043_tier", |a| {
        a.column = "tier".into();
        a.not_null = true;
        a.backfill = Some(TIER_EXPR.into());
        a.index = true;
        a.check = Some("tier IN ('gold', 'standard')".into());
    });
    let err = start(&db, &m, &quick()).unwrap_err().to_string();
    assert!(err.contains("--allow-copy"), "{err}");
    assert!(!column_exists(&mut c, "tier"), "refused before any change");
    let copy = Settings {
        allow_copy: true,
        ..quick()
    };
    start(&db, &m, &copy).unwrap();
    let err = complete(&db, "0043_tier", &quick())
        .unwrap_err()
        .to_string();
    assert!(err.contains("--allow-copy"), "{err}");
    let nullable: String = one(
        &mut c,
        "SELECT IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'accounts' AND COLUMN_NAME = 'tier'",
    );
    assert_eq!(nullable, "NO", "NOT NULL went on before the refused step");
    rollback(&db, "0043_tier").unwrap();
    assert!(!column_exists(&mut c, "tier"));
    assert!(leftovers(&mut c).is_empty(), "{:?}", leftovers(&mut c));
    // With --allow-copy the CHECK goes on, and is enforced.
    start(&db, &m, &copy).unwrap();
    complete(&db, "0043_tier", &copy).unwrap();
    assert!(
        c.query_drop("INSERT INTO accounts (email, balance, tier) VALUES ('x', 1, 'bronze')")
            .is_err()
    );
}

#[test]
fn a_foreign_key_is_added_instantly_and_orphans_are_counted() {
    let Some((db, mut c, _)) = setup("my_fk", 25_000) else {
        return;
    };
    c.query_drop(
        "CREATE TABLE plans (id int PRIMARY KEY) ENGINE=InnoDB; INSERT INTO plans VALUES (1), (2)",
    )
    .unwrap();
    let m = migration("fk", |a| {
        a.column = "plan_id".into();
        a.data_type = "int".into();
        a.backfill = Some("1 + id % 2".into());
        a.references = Some(zerodown::spec::Reference::parse("plans(id)").unwrap());
        a.index = true;
    });
    start(&db, &m, &quick()).unwrap();
    complete(&db, "fk", &quick()).unwrap();
    assert!(
        c.query_drop("INSERT INTO accounts (email, balance, plan_id) VALUES ('x', 1, 9)")
            .is_err()
    );
    // An orphan present before complete: the FK goes on (checks off), zerodown's own count refuses.
    let m = migration("fk2", |a| {
        a.column = "plan2".into();
        a.data_type = "int".into();
        a.backfill = Some("id".into());
        a.references = Some(zerodown::spec::Reference::parse("plans").unwrap());
    });
    start(&db, &m, &quick()).unwrap();
    let err = complete(&db, "fk2", &quick()).unwrap_err().to_string();
    // Counted in keyset batches of 10,000: ids 3..=25000 point at no plan.
    assert!(err.starts_with("24998 row(s) of `accounts`"), "{err}");
    rollback(&db, "fk2").unwrap();
    assert!(!column_exists(&mut c, "plan2"));
}

#[test]
fn bad_input_is_refused_before_any_change() {
    let Some((db, mut c, _)) = setup("my_bad", 10) else {
        return;
    };
    let m = migration("bad", |a| a.table = "nope".into());
    let err = start(&db, &m, &quick()).unwrap_err().to_string();
    assert!(
        err.contains("`nope` not found") && err.contains("accounts"),
        "{err}"
    );
    let m = migration("bad", |a| a.backfill = Some("no_such_column + 1".into()));
    let err = start(&db, &m, &quick()).unwrap_err().to_string();
    assert!(err.contains("no_such_column"), "{err}");
    let m = migration("bad", |a| a.data_type = "notatype".into());
    let err = start(&db, &m, &quick()).unwrap_err().to_string();
    assert!(err.contains("notatype"), "{err}");
    assert!(!column_exists(&mut c, "c"));
    // Wrong password: named, never printed.
    let wrong = db.url_as("zerodown", "hunter2-wrong");
    let err = zerodown::plan(&DatabaseUrl::parse(&wrong).unwrap(), &tier_migration())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("access denied") && !err.contains("hunter2"),
        "{err}"
    );
    // Unreachable server.
    let err = zerodown::plan(
        &DatabaseUrl::parse("mariadb://u:hunter2@127.0.0.1:1/x").unwrap(),
        &tier_migration(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("unreachable") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn triggers_work_with_the_binary_log_on() {
    let Some(server) = support::MariaDbServer::start_dedicated(support::MariaDbOptions {
        binlog: true,
        ..Default::default()
    }) else {
        return;
    };
    let db = server.fresh_database("my_binlog");
    let mut c = db.connect();
    let on: i64 = one(&mut c, "SELECT @@log_bin");
    assert_eq!(on, 1);
    c.query_drop("CREATE TABLE accounts (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, email varchar(100) NOT NULL, balance bigint NOT NULL) ENGINE=InnoDB; INSERT INTO accounts (email, balance) SELECT concat('u', seq), seq * 100 FROM seq_1_to_500")
        .unwrap();
    let m = tier_migration();
    // The application user has no SUPER: with the binary log on, CREATE TRIGGER needs
    // log_bin_trust_function_creators=1, and zerodown says so.
    let app = DatabaseUrl::parse(&db.create_app_user()).unwrap();
    let run = |s: &Settings| zerodown::start(&app, &m, s, &mut |_| {}, &AtomicBool::new(false));
    let err = run(&quick()).unwrap_err().to_string();
    assert!(err.contains("log_bin_trust_function_creators"), "{err}");
    zerodown::rollback(&app, "0042_tier", &Settings::default(), &mut |_| {}).unwrap();
    c.query_drop("SET GLOBAL log_bin_trust_function_creators = 1")
        .unwrap();
    run(&quick()).unwrap();
    c.query_drop("INSERT INTO accounts (email, balance) VALUES ('b', 20000)")
        .unwrap();
    assert_eq!(
        one::<String>(&mut c, "SELECT tier FROM accounts WHERE email = 'b'"),
        "gold"
    );
    zerodown::complete(
        &app,
        "0042_tier",
        &quick(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(
        one::<i64>(&mut c, "SELECT count(*) FROM accounts WHERE tier IS NULL"),
        0
    );
}

#[test]
fn the_cli_drives_the_whole_lifecycle_and_resumes_after_kill_9() {
    use std::process::{Command, Stdio};
    let Some((db, mut c, _)) = setup("my_cli", 200_000) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("0042_tier.toml");
    std::fs::write(
        &file,
        format!("[add_column]\ntable = \"accounts\"\ncolumn = \"tier\"\ntype = \"varchar(20)\"\nnot_null = true\nbackfill = \"{TIER_EXPR}\"\ndefault = \"'standard'\"\n"),
    )
    .unwrap();
    let file = file.to_str().unwrap().to_string();
    let bin = env!("CARGO_BIN_EXE_zerodown");
    let cli = |args: &[&str]| {
        let o = Command::new(bin)
            .args(args)
            .env("DATABASE_URL", db.url())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "zerodown {args:?}: {text}");
        assert!(
            !text.contains("zerodown:zerodown@"),
            "password printed: {text}"
        );
        text
    };
    let plan = cli(&["plan", &file]);
    assert!(plan.contains("ALGORITHM=INSTANT"), "{plan}");
    // start, killed with SIGKILL in the middle of the backfill. It cannot end first, whatever the
    // machine's speed: a batch size starts at 100 rows and at most doubles (a 1 s target keeps it
    // doubling), so 200,000 rows take eleven batches, with a fixed pause of at least 100 ms
    // (jittered) after each.
    let mut child = Command::new(bin)
        .args(["start", &file, "--batch-time", "1s", "--pause", "200ms"])
        .env("DATABASE_URL", db.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    support::wait_for("the first saved batch", || {
        let done: Option<Option<i64>> = c
            .query_first("SELECT max(rows_done) FROM zerodown_migrations")
            .unwrap_or(None);
        done.flatten().unwrap_or(0) > 0
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let done: i64 = one(&mut c, "SELECT rows_done FROM zerodown_migrations");
    assert!(
        done > 0 && done < 200_000,
        "killed mid-backfill at {done} rows"
    );
    // …resumes where it stopped.
    cli(&["start", &file]);
    let status = cli(&["status", "0042_tier"]);
    assert!(status.contains("backfilled"), "{status}");
    cli(&["complete", "0042_tier", "--quiet-period", "0s"]);
    assert_eq!(
        one::<i64>(
            &mut c,
            &format!("SELECT count(*) FROM accounts WHERE tier IS NULL OR tier <> ({TIER_EXPR})")
        ),
        0
    );
    assert!(leftovers(&mut c).is_empty());
}

#[test]
fn a_step_done_but_not_recorded_is_run_again_harmlessly() {
    let Some((db, mut c, _)) = setup("my_half_done", 1000) else {
        return;
    };
    let m = tier_migration();
    start(&db, &m, &quick()).unwrap();
    // DDL commits at once: a crash right after the column and triggers went on, before the state
    // recorded them, looks like this. The re-run meets the objects already there (IF NOT EXISTS).
    c.query_drop(
        "UPDATE zerodown_migrations SET status = 'started', next_step = 1, `cursor` = NULL, hi = NULL",
    )
    .unwrap();
    c.query_drop("UPDATE accounts SET tier = NULL WHERE id > 500")
        .unwrap();
    start(&db, &m, &quick()).unwrap();
    assert_eq!(
        one::<i64>(&mut c, "SELECT count(*) FROM accounts WHERE tier IS NULL"),
        0
    );
    complete(&db, "0042_tier", &quick()).unwrap();
    let left = leftovers(&mut c);
    assert_eq!(left.len(), 1, "{left:?}");
}

/// Times each step on a 1,000,000-row table (for the engine notes): `cargo test --test
/// mariadb_lifecycle -- --ignored --nocapture contract_steps_on_a_million_rows`.
#[test]
#[ignore]
fn contract_steps_on_a_million_rows() {
    let Some((db, _c, _)) = setup("my_million", 1_000_000) else {
        return;
    };
    let m2 = migration("0042_tier", |a| {
        a.column = "tier".into();
        a.not_null = true;
        a.backfill = Some(TIER_EXPR.into());
        a.default = Some("'standard'".into());
        a.index = true;
        a.check = Some("tier IN ('gold', 'standard')".into());
    });
    let s = Settings {
        allow_copy: true,
        ..quick()
    };
    let mut report = |e: Event| match e {
        Event::StepStarted { index, step, .. } => {
            eprintln!("step {}: {}", index + 1, step.summary)
        }
        Event::StepDone { index, elapsed } => eprintln!("step {} took {elapsed:.3?}", index + 1),
        _ => {}
    };
    zerodown::start(&url(&db), &m2, &s, &mut report, &AtomicBool::new(false)).unwrap();
    zerodown::complete(
        &url(&db),
        "0042_tier",
        &s,
        &mut report,
        &AtomicBool::new(false),
    )
    .unwrap();
}
