//! CreateIndex on SQLite, PostgreSQL 13–18, and MariaDB: start builds the index (and completes
//! the migration), in a migration that waits for `complete` rollback drops it, the lock the build
//! takes is observed on the server, a kill -9 during the build is finished by a re-run, and refusals
//! change nothing.

mod support;

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use support::two_tables::{self, Db, Lite};
use zerodown::plan::{Cost, Phase};
use zerodown::spec::Migration;
use zerodown::{DatabaseUrl, Error, Settings, StartOutcome, Status};

fn migration(name: &str, text: &str) -> Migration {
    Migration::from_toml(name, text, &format!("{name}.toml")).unwrap()
}

/// One `[[create_index]]` on `orders`.
fn index_toml(name: &str, columns: &str, unique: bool) -> String {
    format!(
        "[[create_index]]\ntable = \"orders\"\nname = \"{name}\"\ncolumns = [{columns}]\nunique = {unique}\n"
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

fn status(url: &DatabaseUrl, name: &str) -> Status {
    zerodown::status(url, Some(name)).unwrap()[0].status
}

fn has_index(db: &dyn Db, name: &str) -> bool {
    db.indexes().iter().any(|i| i == name)
}

/// Plan, start → completed, unique, refusals, and start → rollback and start → complete in a
/// migration that waits for `complete`.
fn lifecycle(db: &dyn Db) {
    let url = db.url();
    // The name is kept exactly as written, mixed case included.
    let m = migration(
        "0200_orders_by_amount",
        &index_toml("OrdersByAmount", "\"amount\", \"id\"", false),
    );
    let plan = zerodown::plan(&url, &m).unwrap();
    assert!(plan.single_step, "{plan:?}");
    assert_eq!(plan.steps.len(), 1);
    let step = &plan.steps[0];
    assert_eq!(step.phase, Phase::Expand);
    assert_eq!(step.cost, Cost::Scan);
    assert!(
        step.sql[0].sql.contains("OrdersByAmount") && step.undo[0].sql.contains("OrdersByAmount"),
        "{step:?}"
    );
    let text = zerodown::plan::render_text(&plan);
    assert!(!text.contains("catalog-only statement"), "{text}");
    assert_eq!(start(&url, &m).unwrap(), StartOutcome::Completed);
    assert_eq!(status(&url, &m.name), Status::Completed);
    assert!(has_index(db, "OrdersByAmount"), "{:?}", db.indexes());
    assert!(db.uses_index("OrdersByAmount"));

    let uq = migration(
        "0201_orders_amount_unique",
        &index_toml("orders_amount_uq", "\"amount\"", true),
    );
    assert_eq!(start(&url, &uq).unwrap(), StartOutcome::Completed);
    assert!(has_index(db, "orders_amount_uq"));
    let dup = db.try_exec("INSERT INTO orders (amount) VALUES (42)");
    assert!(dup.is_err(), "a duplicate amount went in");

    let before = db.indexes();
    let refused = |name: &str, text: &str, says: &str| {
        let err = start(&url, &migration(name, text)).unwrap_err();
        assert!(
            matches!(&err, Error::Refused(m) if m.contains(says) && m.contains("nothing was changed")),
            "{name}: {err}"
        );
    };
    refused(
        "0202_no_table",
        "[create_index]\ntable = \"nope\"\nname = \"nope_a\"\ncolumns = [\"a\"]\n",
        "table `nope` not found",
    );
    refused(
        "0203_no_column",
        &index_toml("orders_nope", "\"amount\", \"nope\"", false),
        "column `nope` not found in `orders`",
    );
    refused(
        "0204_same_name",
        &index_toml("OrdersByAmount", "\"id\"", false),
        "index `OrdersByAmount` already exists on `orders`",
    );
    if db.names_shared() {
        refused(
            "0205_table_name",
            &index_toml("accounts", "\"id\"", false),
            "`accounts` is already the name of another table or index",
        );
    }
    refused(
        "0206_twice",
        &index_toml("orders_twice", "\"amount\", \"amount\"", false),
        "lists column `amount` twice",
    );
    let err = Migration::from_toml(
        "0207_no_columns",
        "[create_index]\ntable = \"orders\"\nname = \"i\"\ncolumns = []\n",
        "0207_no_columns.toml",
    )
    .unwrap_err();
    assert!(err.to_string().contains("`columns` is empty"), "{err}");
    assert_eq!(db.indexes(), before);

    // With a backfilled column, the migration waits for `complete`: the index is built at start.
    let with_column = |name: &str, column: &str, index: &str| {
        migration(
            name,
            &format!(
                "[[add_column]]\ntable = \"accounts\"\ncolumn = \"{column}\"\ntype = \"int\"\nbackfill = \"balance % 7\"\n\n{}",
                index_toml(index, "\"amount\"", false)
            ),
        )
    };
    let back = with_column("0208_index_back", "mod7", "orders_amount_back");
    let plan = zerodown::plan(&url, &back).unwrap();
    assert!(!plan.single_step);
    let build = plan.steps.iter().find(|s| s.op == 1).unwrap();
    assert_eq!(build.phase, Phase::Expand);
    assert!(matches!(
        start(&url, &back).unwrap(),
        StartOutcome::Backfilled { .. }
    ));
    assert!(has_index(db, "orders_amount_back"));
    zerodown::rollback(&url, &back.name, &Settings::default(), &mut |_| {}).unwrap();
    assert!(!has_index(db, "orders_amount_back"), "{:?}", db.indexes());
    assert!(!db.has_column("accounts", "mod7"));

    let forward = with_column("0209_index_forward", "mod7b", "orders_amount_fwd");
    start(&url, &forward).unwrap();
    zerodown::complete(
        &url,
        &forward.name,
        &quick(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(status(&url, &forward.name), Status::Completed);
    assert!(has_index(db, "orders_amount_fwd"));
    assert_eq!(db.leftovers(), 0);
}

/// A migration file for the zerodown binary.
fn migration_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `zerodown start <file>` as a child, its output to `log`.
fn spawn_start(url: &str, file: &str, log: &std::path::Path) -> std::process::Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_zerodown"))
        .args(["start", file, "--lock-timeout", "50ms"])
        .env("DATABASE_URL", url)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

/// Runs `zerodown start <file>` to the end; a run refused because the killed one's sessions are
/// still going away is tried again. Returns its output.
fn start_to_end(url: &str, file: &str) -> String {
    let mut text = String::new();
    support::wait_for("a re-run that finishes", || {
        let o = Command::new(env!("CARGO_BIN_EXE_zerodown"))
            .args(["start", file])
            .env("DATABASE_URL", url)
            .output()
            .unwrap();
        text = format!(
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
    text
}

mod sqlite {
    use super::*;

    /// SQLite has no online build: the build takes the write lock, so a writer holding it makes
    /// the step wait (readers go on under WAL). A kill -9 while the step waits for that lock
    /// changes nothing, and a re-run builds the index.
    #[test]
    fn sqlite_create_index() {
        let db = Lite::new(500);
        lifecycle(&db);
        assert_eq!(
            db.count("SELECT count(*) FROM pragma_integrity_check WHERE integrity_check <> 'ok'"),
            0
        );

        // The build needs the write lock: a writer holding it when the step starts makes the
        // step wait (retrying, under the lock guard) until it lets go. Readers go on under WAL.
        let big = Lite::new(500);
        let holder = big.conn();
        let reader = big.conn();
        let mut held = false;
        let mut retried = false;
        let m = migration(
            "0210_sqlite_lock",
            &index_toml("orders_lock", "\"amount\"", false),
        );
        let outcome = zerodown::start(
            &big.url(),
            &m,
            &quick(),
            &mut |e| match e {
                zerodown::Event::StepStarted { .. } if !retried => {
                    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
                    held = true;
                }
                zerodown::Event::LockRetry { .. } if held => {
                    let n: i64 = reader
                        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
                        .unwrap();
                    assert_eq!(n, 500, "a reader waited");
                    holder.execute_batch("COMMIT").unwrap();
                    held = false;
                    retried = true;
                }
                _ => {}
            },
            &std::sync::atomic::AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(outcome, StartOutcome::Completed);
        assert!(retried, "the held write lock never made the build wait");
        assert!(has_index(&big, "orders_lock"));

        // kill -9 while the build step waits for the write lock another connection holds.
        let dir = tempfile::tempdir().unwrap();
        let file = migration_file(
            &dir,
            "0211_sqlite_killed",
            &index_toml("orders_killed", "\"amount\"", false),
        );
        let url = format!("sqlite://{}", db.path.display());
        let holder = db.conn();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let log = dir.path().join("start.log");
        let mut child = spawn_start(&url, &file, &log);
        support::wait_for("zerodown to wait for the write lock", || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("lock busy")
        });
        child.kill().unwrap();
        child.wait().unwrap();
        holder.execute_batch("ROLLBACK").unwrap();
        assert!(!has_index(&db, "orders_killed"));
        start_to_end(&url, &file);
        assert!(has_index(&db, "orders_killed"));
        assert_eq!(status(&db.url(), "0211_sqlite_killed"), Status::Completed);
        assert_eq!(db.leftovers(), 0);
        assert_eq!(
            db.count("SELECT count(*) FROM pragma_integrity_check WHERE integrity_check <> 'ok'"),
            0
        );
    }
}

mod postgres {
    use super::*;

    type Pg = two_tables::Pg;

    fn setup(major: u32) -> Option<Pg> {
        two_tables::pg(major, &format!("cidx{major}"), 500)
    }

    /// Sessions of zerodown running CREATE INDEX CONCURRENTLY on `orders` that hold SHARE UPDATE
    /// EXCLUSIVE on it.
    const BUILDING: &str =
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.relation = 'orders'::regclass AND l.mode = 'ShareUpdateExclusiveLock' AND l.granted
           AND a.query ILIKE 'CREATE INDEX CONCURRENTLY%'";

    /// Whether index `name` exists and is valid (`None`: no such index).
    fn validity(db: &Pg, name: &str) -> Option<bool> {
        db.conn
            .lock()
            .unwrap()
            .query_opt(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 WHERE c.relname = $1",
                &[&name],
            )
            .unwrap()
            .map(|r| r.get(0))
    }

    /// A transaction with a snapshot older than the build: CONCURRENTLY waits for it before the
    /// index turns valid, so the build is caught running, whatever the machine's speed.
    fn old_snapshot(db: &Pg) -> ::postgres::Client {
        let mut old = db.db.connect();
        old.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class")
            .unwrap();
        old
    }

    fn create_index(major: u32) {
        let Some(db) = setup(major) else { return };
        lifecycle(&db);

        // While the build runs (held by an old snapshot), writes go on: another session takes ROW
        // EXCLUSIVE without waiting and inserts; the index is not valid until the build ends.
        let mut old = old_snapshot(&db);
        let url = db.url();
        let m = migration(
            "0220_pg_online",
            &index_toml("orders_online", "\"amount\"", false),
        );
        let run = std::thread::spawn(move || start(&url, &m));
        support::wait_for("the build to hold SHARE UPDATE EXCLUSIVE", || {
            db.count(BUILDING) == 1
        });
        let mut writer = db.db.connect();
        writer
            .batch_execute(
                "BEGIN; LOCK orders IN ROW EXCLUSIVE MODE NOWAIT;
                 INSERT INTO orders (amount) VALUES (-1); COMMIT",
            )
            .unwrap();
        assert_eq!(validity(&db, "orders_online"), Some(false));
        old.batch_execute("COMMIT").unwrap();
        assert_eq!(run.join().unwrap().unwrap(), StartOutcome::Completed);
        assert_eq!(validity(&db, "orders_online"), Some(true));
        assert_eq!(db.count("SELECT count(*) FROM orders WHERE amount = -1"), 1);

        // kill -9 during the build: the server ends the orphaned build once it notices the client
        // is gone (here: at once), leaving an INVALID index; the re-run drops it and builds again.
        let dir = tempfile::tempdir().unwrap();
        let file = migration_file(
            &dir,
            "0221_pg_killed",
            &index_toml("orders_killed", "\"amount\"", false),
        );
        let url = db.db.url().to_string();
        let mut old = old_snapshot(&db);
        let mut child = spawn_start(&url, &file, &dir.path().join("start.log"));
        support::wait_for("the build to run", || db.count(BUILDING) == 1);
        child.kill().unwrap();
        child.wait().unwrap();
        db.exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE query ILIKE 'CREATE INDEX CONCURRENTLY%' AND pid <> pg_backend_pid()",
        );
        support::wait_for("the orphaned build to end", || db.count(BUILDING) == 0);
        old.batch_execute("COMMIT").unwrap();
        assert_eq!(validity(&db, "orders_killed"), Some(false));
        let out = start_to_end(&url, &file);
        assert!(out.contains("left INVALID"), "{out}");
        assert_eq!(validity(&db, "orders_killed"), Some(true));
        assert_eq!(status(&db.url(), "0221_pg_killed"), Status::Completed);
        assert_eq!(db.leftovers(), 0);
    }

    #[test]
    fn postgres_13_create_index() {
        create_index(13);
    }

    #[test]
    fn postgres_14_create_index() {
        create_index(14);
    }

    #[test]
    fn postgres_15_create_index() {
        create_index(15);
    }

    #[test]
    fn postgres_16_create_index() {
        create_index(16);
    }

    #[test]
    fn postgres_17_create_index() {
        create_index(17);
    }

    #[test]
    fn postgres_18_create_index() {
        create_index(18);
    }
}

mod mariadb {
    use super::*;
    use mysql::prelude::Queryable;

    type My = two_tables::My;

    fn setup(name: &str, rows: u32) -> Option<My> {
        two_tables::mariadb(name, rows)
    }

    /// The ALTER building index `name`, with its state, as the process list shows it.
    fn alter_of(my: &My, name: &str) -> Option<(u64, String)> {
        my.conn
            .lock()
            .unwrap()
            .exec_first(
                "SELECT ID, COALESCE(STATE, '') FROM information_schema.PROCESSLIST
                 WHERE ID <> CONNECTION_ID()
                   AND INFO LIKE CONCAT('%ALTER TABLE `orders` ADD INDEX %`', ?, '`%')",
                (name,),
            )
            .unwrap()
    }

    #[test]
    fn mariadb_create_index() {
        let Some(my) = setup("cidx", 500) else { return };
        lifecycle(&my);

        // kill -9 while the build waits for the metadata lock a reader's transaction holds; the
        // server ends the orphaned ALTER once it notices (here: at once), and a re-run builds it.
        let dir = tempfile::tempdir().unwrap();
        let file = migration_file(
            &dir,
            "0230_my_killed",
            &index_toml("orders_killed", "\"amount\"", false),
        );
        let url = my.db.url().to_string();
        let mut reader = my.db.connect();
        reader.query_drop("START TRANSACTION").unwrap();
        reader.query_drop("SELECT count(*) FROM orders").unwrap();
        let mut child = spawn_start(&url, &file, &dir.path().join("start.log"));
        support::wait_for("the build to wait for its metadata lock", || {
            alter_of(&my, "orders_killed").is_some_and(|(_, s)| s.contains("metadata lock"))
        });
        child.kill().unwrap();
        child.wait().unwrap();
        // (It may also have given up by itself: its metadata-lock wait is one lock timeout.)
        if let Some((id, _)) = alter_of(&my, "orders_killed") {
            let _ = my.try_exec(&format!("KILL {id}"));
        }
        support::wait_for("the orphaned ALTER to end", || {
            alter_of(&my, "orders_killed").is_none()
        });
        reader.query_drop("COMMIT").unwrap();
        assert!(!has_index(&my, "orders_killed"));
        start_to_end(&url, &file);
        assert!(has_index(&my, "orders_killed"));
        assert_eq!(status(&my.url(), "0230_my_killed"), Status::Completed);
        assert_eq!(my.leftovers(), 0);
    }
}
