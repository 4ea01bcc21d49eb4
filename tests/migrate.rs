//! `zerodown migrate DIR` on real engines: a folder of ten migrations over two tables through both
//! pipeline points with old- and new-version writers, kill -9 mid-folder and a re-run, a migration
//! held behind one not completed, and the command's exit status and JSON report. The tools' history
//! tables: tests/migrate_history.rs.

#[macro_use]
mod support;
mod migrate_fixtures;
mod sqlite_util;

use migrate_fixtures::{Db, actions, folder, migrate};
use sqlite_util::TestDb;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use zerodown::migrate::{Action, Point, Stop};

fn ten() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/migrate_fixtures/ten")
}

/// A writer thread: runs `statement(i)` over and over on its own session until stopped, counting
/// its writes. `statement` is what one application version writes.
struct Writer {
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicI64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(db: &Db, statement: fn(i64) -> String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicI64::new(0));
        let mut session = db.session();
        let (s, w) = (stop.clone(), writes.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 0;
            while !s.load(Ordering::SeqCst) {
                i += 1;
                session.exec(&statement(i)).unwrap();
                w.fetch_add(1, Ordering::SeqCst);
                // Pacing, not synchronisation: an application writes now and then, not flat out.
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let writer = Writer {
            stop,
            writes,
            thread: Some(thread),
        };
        support::wait_for("the writer's first writes", || {
            writer.writes.load(Ordering::SeqCst) > 1
        });
        writer
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
    }
}

/// The application version before the folder: it writes none of the new columns.
fn old_version(i: i64) -> String {
    format!(
        "INSERT INTO accounts (email, balance) VALUES ('old{i}@x', {}); INSERT INTO orders (account_id, amount) VALUES ({i}, {})",
        i * 500,
        i % 300
    )
}

/// The application version after the folder: it writes the derived columns itself.
fn new_version(i: i64) -> String {
    format!(
        "INSERT INTO accounts (email, balance, tier) VALUES ('new{i}@x', 5, 'gold'); INSERT INTO orders (account_id, amount, big, cents) VALUES ({i}, 7, 1, 700)"
    )
}

fn ten_migrations(db: Db) {
    db.two_tables(200);
    let dir = ten();
    // Nothing recorded yet: all ten are pending.
    let shown = migrate(&db, &dir, Point::Show, Duration::ZERO).unwrap();
    assert_eq!(shown.migrations.len(), 10);
    assert!(shown.migrations.iter().all(|m| m.action == Action::Pending));

    // Before the deploy, with the old application version writing.
    let old = Writer::start(&db, old_version);
    let before = migrate(&db, &dir, Point::BeforeDeploy, Duration::ZERO).unwrap();
    for (name, action) in actions(&before) {
        let derived = ["0003_accounts_tier", "0004_orders_big", "0008_orders_cents"];
        if derived.contains(&name) {
            assert!(
                matches!(action, Action::Backfilled { .. }),
                "{name}: {action:?}"
            );
        } else {
            assert!(
                matches!(action, Action::Completed | Action::Backfilled { .. }),
                "{name}: {action:?}"
            );
        }
    }
    // The old version's rows got the derived values from the dual-write triggers.
    let mut s = db.session();
    let wrong_tier = "SELECT count(*) FROM accounts WHERE tier IS NULL OR tier <> (CASE WHEN balance > 1000 THEN 'gold' ELSE 'standard' END)";
    let wrong_orders = "SELECT count(*) FROM orders WHERE big IS NULL OR cents IS NULL OR big <> (CASE WHEN amount > 100 THEN 1 ELSE 0 END) OR cents <> amount * 100";
    assert_eq!(s.int(wrong_tier), Some(0));
    assert_eq!(s.int(wrong_orders), Some(0));
    // Idempotent: a second run before the deploy changes nothing.
    let again = migrate(&db, &dir, Point::BeforeDeploy, Duration::ZERO).unwrap();
    for (name, action) in actions(&again) {
        assert!(
            matches!(action, Action::AlreadyCompleted | Action::AlreadyBackfilled),
            "{name}: {action:?}"
        );
    }

    // After the deploy, but the old version still writes: refused at the first derived column.
    let refused = migrate(&db, &dir, Point::AfterDeploy, Duration::from_millis(300)).unwrap_err();
    assert_eq!(refused.stop, Stop::OldWriters, "{}", refused.error);
    assert_eq!(
        refused.report.migrations.last().unwrap().name,
        "0003_accounts_tier"
    );
    let status = |name: &str| zerodown::status(&db.url(), Some(name)).unwrap()[0].status;
    // Not completed: `complete` stopped at its quiet period, before any contract step.
    assert!(matches!(
        status("0003_accounts_tier"),
        zerodown::Status::Backfilled | zerodown::Status::Completing
    ));
    old.stop();

    // The new version runs everywhere: after the deploy every migration completes.
    let new = Writer::start(&db, new_version);
    let after = migrate(&db, &dir, Point::AfterDeploy, Duration::from_millis(300)).unwrap();
    for (name, action) in actions(&after) {
        assert!(
            matches!(action, Action::Completed | Action::AlreadyCompleted),
            "{name}: {action:?}"
        );
    }
    new.stop();
    for m in &after.migrations {
        assert_eq!(status(&m.name), zerodown::Status::Completed, "{}", m.name);
    }
    assert_eq!(db.zd_triggers(), 0);
    assert_eq!(
        s.int(
            wrong_tier
                .replace("tier <>", "email NOT LIKE 'new%' AND tier <>")
                .as_str()
        ),
        Some(0)
    );
    assert_eq!(
        s.int("SELECT count(*) FROM orders WHERE big IS NULL OR cents IS NULL"),
        Some(0)
    );
    // An old-version INSERT now fails: `cents` is NOT NULL without a default. That is why the
    // guard waits for the old version to be gone.
    assert!(
        s.exec("INSERT INTO orders (account_id, amount) VALUES (1, 5)")
            .is_err()
    );
    for (table, column) in [
        ("accounts", "nickname"),
        ("orders", "flagged"),
        ("accounts", "region"),
    ] {
        assert!(db.has_column(table, column), "{table}.{column}");
    }
    // And again: nothing to do.
    let idle = migrate(&db, &dir, Point::AfterDeploy, Duration::ZERO).unwrap();
    assert!(
        idle.migrations
            .iter()
            .all(|m| m.action == Action::AlreadyCompleted)
    );
}

#[test]
fn ten_migrations_sqlite() {
    ten_migrations(Db::Lite(TestDb::empty()));
}

#[test]
fn ten_migrations_postgres() {
    let Some(pg) = support::pg_debian() else {
        return;
    };
    ten_migrations(Db::Pg(pg.fresh_database("migrate_ten")));
}

#[test]
fn ten_migrations_mariadb() {
    let Some(my) = support::mariadb() else { return };
    ten_migrations(Db::My(my.fresh_database("migrate_ten")));
}

/// `zerodown migrate` as CI runs it: the built binary, with DATABASE_URL.
fn binary(db: &Db, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_zerodown"));
    cmd.arg("migrate")
        .args(args)
        .env("DATABASE_URL", db.url_text());
    cmd
}

#[test]
fn kill_9_mid_folder_then_a_rerun_finishes() {
    let Some(pg) = support::pg_debian() else {
        return;
    };
    let db = Db::Pg(pg.fresh_database("migrate_kill"));
    db.two_tables(50);
    let dir = folder(&[
        (
            "0001_accounts_active.sql",
            "ALTER TABLE accounts ADD COLUMN active boolean NOT NULL DEFAULT true;\n",
        ),
        (
            "0002_accounts_nickname.sql",
            "ALTER TABLE accounts ADD COLUMN nickname varchar(40);\n",
        ),
        (
            "0003_orders_note.sql",
            "ALTER TABLE orders ADD COLUMN note varchar(40);\n",
        ),
        (
            "0004_orders_status.sql",
            "ALTER TABLE orders ADD COLUMN status varchar(20) NOT NULL DEFAULT 'new';\n",
        ),
    ]);
    // A long transaction holds `orders`: the run gets through the accounts migrations and waits,
    // retrying under its lock guard, at the first migration on `orders`.
    let mut holder = db.session();
    holder
        .exec("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let mut child = binary(&db, &[dir_arg, "--before-deploy", "--lock-budget", "10m"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut s = db.session();
    support::wait_for(
        "the run to wait for `orders` after the accounts migrations",
        || {
            s.int("SELECT count(*) FROM pg_class WHERE relname = '_sqlx_migrations'") == Some(1)
            && s.int("SELECT count(*) FROM _sqlx_migrations") == Some(2)
            && s.int(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'orders' AND NOT l.granted",
            ) > Some(0)
        },
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before the kill"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    support::wait_for("the killed run's sessions to end", || {
        s.int("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'zerodown %'")
            == Some(0)
    });
    holder.exec("COMMIT").unwrap();
    // The same command again finishes the folder.
    let out = binary(&db, &[dir_arg, "--before-deploy"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("0001_accounts_active: already completed"),
        "{stdout}"
    );
    assert!(stdout.contains("0004_orders_status: completed"), "{stdout}");
    for (table, column) in [
        ("accounts", "active"),
        ("accounts", "nickname"),
        ("orders", "note"),
        ("orders", "status"),
    ] {
        assert!(db.has_column(table, column), "{table}.{column}");
    }
    // Each version recorded once, each migration completed once.
    assert_eq!(
        s.int("SELECT count(DISTINCT version) FROM _sqlx_migrations"),
        Some(4)
    );
    assert_eq!(s.int("SELECT count(*) FROM _sqlx_migrations"), Some(4));
    let states = zerodown::status(&db.url(), None).unwrap();
    assert_eq!(states.len(), 4, "{states:?}");
    assert!(
        states
            .iter()
            .all(|r| r.status == zerodown::Status::Completed)
    );
}

const TIER: &str = r#"[add_column]
table = "accounts"
column = "tier"
type = "varchar(20)"
not_null = true
backfill = "CASE WHEN balance > 1000 THEN 'gold' ELSE 'standard' END"
"#;

const TIER_INDEX: &str = r#"[create_index]
table = "accounts"
name = "accounts_tier"
columns = ["tier"]
"#;

/// A migration that touches a column an earlier one adds and has not completed waits for the next
/// deploy: before-deploy stops there (exit 3), after-deploy completes the earlier one, and the
/// next before-deploy goes on.
#[test]
fn a_migration_on_an_uncompleted_column_waits_for_the_next_deploy() {
    let db = Db::Lite(TestDb::empty());
    db.two_tables(30);
    let dir = folder(&[
        ("0001_tier.toml", TIER),
        ("0002_tier_index.toml", TIER_INDEX),
        (
            "0003_note.sql",
            "ALTER TABLE orders ADD COLUMN note varchar(40);\n",
        ),
    ]);
    let dir_arg = dir.path().to_str().unwrap();
    let out = binary(&db, &[dir_arg, "--before-deploy", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["stopped"]["reason"], "refused");
    let results: Vec<&str> = json["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["backfilled", "held", "held"]);
    assert!(
        json["migrations"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("`0001_tier` adds and has not completed")
    );
    assert!(!db.has_column("orders", "note"));

    let after = migrate(&db, dir.path(), Point::AfterDeploy, Duration::ZERO).unwrap();
    assert_eq!(
        actions(&after),
        [
            ("0001_tier", &Action::Completed),
            ("0002_tier_index", &Action::Pending),
            ("0003_note", &Action::Pending)
        ]
    );
    let next = migrate(&db, dir.path(), Point::BeforeDeploy, Duration::ZERO).unwrap();
    assert_eq!(next.migrations[0].action, Action::AlreadyCompleted);
    assert!(
        next.migrations[1..]
            .iter()
            .all(|m| matches!(m.action, Action::Completed | Action::Backfilled { .. }))
    );
    migrate(&db, dir.path(), Point::AfterDeploy, Duration::ZERO).unwrap();
    assert!(db.has_column("orders", "note"));
    let mut s = db.session();
    assert_eq!(
        s.int("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'accounts_tier'"),
        Some(1)
    );
}

/// A file that cannot be read stops the run before anything changes: exit 2, and the JSON report
/// says why.
#[test]
fn an_unreadable_file_changes_nothing() {
    let db = Db::Lite(TestDb::empty());
    db.two_tables(5);
    let dir = folder(&[(
        "0001_ok.sql",
        "ALTER TABLE accounts ADD COLUMN ok integer;\n",
    )]);
    std::fs::write(dir.path().join("0002_bad.sql"), [0xff, 0xfe, 0x00]).unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let out = binary(&db, &[dir_arg, "--before-deploy", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["stopped"]["reason"], "input");
    assert!(
        json["stopped"]["message"]
            .as_str()
            .unwrap()
            .contains("0002_bad.sql")
    );
    assert!(!db.has_column("accounts", "ok"));
}
