//! The `zerodown` binary end to end: crash and resume, Ctrl-C, bad input, and output formats.

mod sqlite_util;

use sqlite_util::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn zerodown(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zerodown"))
        .args(args)
        .env("DATABASE_URL", format!("sqlite://{}", db.path.display()))
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

fn rows_done(db: &TestDb) -> (i64, Option<i64>) {
    let c = db.conn();
    c.query_row(
        "SELECT rows_done, rows_total FROM _zerodown_migrations WHERE status <> 'rolled-back'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap_or((0, None))
}

/// Starts `zerodown start` as a child and waits until its backfill is under way; the caller waits on it.
///
/// The backfill cannot end before the caller acts, whatever the machine's speed: a batch size starts at
/// 100 rows and at most doubles per batch (a 1 s target keeps it doubling), so 60,000 rows take ten
/// batches, and the fixed pause (at least 100 ms with its jitter) puts half a second of rests between
/// the batch that passes 2,000 rows and the last.
#[allow(clippy::zombie_processes)]
fn start_child_mid_backfill(db: &TestDb, file: &str) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_zerodown"))
        .args(["start", file, "--batch-time", "1s", "--pause", "200ms"])
        .env("DATABASE_URL", format!("sqlite://{}", db.path.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (done, total) = rows_done(db);
        if done > 2_000 {
            assert!(
                done < total.unwrap(),
                "the backfill finished before the fault"
            );
            return child;
        }
        assert!(Instant::now() < deadline, "the backfill never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn kill_9_mid_backfill_then_start_resumes_where_it_stopped() {
    let db = TestDb::new(60_000);
    let dir = db.path.parent().unwrap().to_path_buf();
    let file = write(&dir, "0042_tier.toml", TIER_TOML);
    let mut child = start_child_mid_backfill(&db, &file);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (at_kill, total) = rows_done(&db);
    let total = total.unwrap();
    assert!(at_kill > 0 && at_kill < total);
    let out = zerodown(&db, &["start", &file]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("resuming"), "{}", text(&out));
    let (done, _) = rows_done(&db);
    // Every key was passed over exactly once across both runs: nothing redone from row one.
    assert_eq!(
        done, total,
        "the second run must continue from the saved cursor"
    );
    assert_eq!(mismatches(&db.conn()), 0);
    let out = zerodown(&db, &["complete", "0042_tier", "--quiet-period", "0s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(integrity(&db.conn()), "ok");
}

#[test]
fn ctrl_c_stops_after_a_clean_batch_and_start_resumes() {
    let db = TestDb::new(60_000);
    let dir = db.path.parent().unwrap().to_path_buf();
    let file = write(&dir, "0042_tier.toml", TIER_TOML);
    let child = start_child_mid_backfill(&db, &file);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let out = zerodown(&db, &["status", "0042_tier"]);
    assert!(
        text(&out).contains("started (phase backfill"),
        "{}",
        text(&out)
    );
    let out = zerodown(&db, &["start", &file]);
    assert!(out.status.success(), "{}", text(&out));
    let (done, total) = rows_done(&db);
    assert_eq!(Some(done), total);
}

#[test]
fn rollback_stops_a_running_start() {
    let db = TestDb::new(60_000);
    let before = db.schema_sql();
    let dir = db.path.parent().unwrap().to_path_buf();
    let file = write(&dir, "0042_tier.toml", TIER_TOML);
    let child = start_child_mid_backfill(&db, &file);
    let out = zerodown(&db, &["rollback", "0042_tier"]);
    assert!(out.status.success(), "{}", text(&out));
    let started = child.wait_with_output().unwrap();
    assert!(!started.status.success(), "start must stop when asked");
    assert_eq!(db.schema_sql(), before);
}

#[test]
fn plan_status_and_json_formats() {
    let db = TestDb::new(100);
    let dir = db.path.parent().unwrap().to_path_buf();
    let file = write(&dir, "0042_tier.toml", TIER_TOML);
    let out = zerodown(&db, &["plan", &file]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    for want in [
        "[expand]",
        "[dual-write]",
        "[backfill]",
        "[contract]",
        "journal mode: wal",
        "Rollback",
        "lock:",
        "why:",
    ] {
        assert!(t.contains(want), "plan lacks {want}:\n{t}");
    }
    let out = zerodown(&db, &["plan", &file, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ops"][0]["column"], "tier");
    let out = zerodown(&db, &["status"]);
    assert!(
        text(&out).contains("no migrations recorded"),
        "{}",
        text(&out)
    );
    assert!(zerodown(&db, &["start", &file]).status.success());
    let out = zerodown(&db, &["status", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["status"], "backfilled");
    assert_eq!(v[0]["rows_done"], 100);
    let out = zerodown(&db, &["status"]);
    assert!(
        text(&out).contains("0042_tier: backfilled"),
        "{}",
        text(&out)
    );
}

#[test]
fn sql_form_needs_a_name_and_works() {
    let db = TestDb::new(100);
    let sql = "ALTER TABLE accounts ADD COLUMN active integer NOT NULL DEFAULT 1";
    let out = zerodown(&db, &["plan", "--sql", sql]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--name"), "{}", text(&out));
    let out = zerodown(&db, &["start", "--sql", sql, "--name", "0001_active"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("completed"), "{}", text(&out));
}

/// Each bad input: a clear message naming the thing, a failure status, and the database as it was.
#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let db = TestDb::new(50);
    db.conn()
        .execute_batch("CREATE TABLE strict_t(id INTEGER PRIMARY KEY, a INT) STRICT;")
        .unwrap();
    let dir = db.path.parent().unwrap().to_path_buf();
    let before = db.schema_sql();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            write(
                &dir,
                "m1.toml",
                "[add_column]\ntable = \"nope\"\ncolumn = \"c\"\ntype = \"text\"\n",
            ),
            vec!["table `nope` not found", "accounts"],
        ),
        (
            write(
                &dir,
                "m2.toml",
                "[add_column]\ntable = \"accounts\"\ncolumn = \"c\"\ntype = \"text\"\nbackfill = \"upper(nickname)\"\n",
            ),
            vec!["nickname", "does not have"],
        ),
        (
            write(
                &dir,
                "m3.toml",
                "[add_column]\ntable = \"strict_t\"\ncolumn = \"c\"\ntype = \"varchar(10)\"\n",
            ),
            vec!["STRICT", "VARCHAR(10)"],
        ),
        (
            write(
                &dir,
                "m3b.toml",
                "[add_column]\ntable = \"accounts\"\ncolumn = \"c\"\ntype = \"int); DROP TABLE accounts; --\"\n",
            ),
            vec!["type:1:4", "unexpected `)`", "one SQL type only"],
        ),
        (
            write(
                &dir,
                "m4.toml",
                "[add_column]\ntable = \"accounts\"\ncolumn = \"c\"\ntype = \"text\"\nbackfill = \"no_such_fn(balance)\"\n",
            ),
            vec!["does not compile", "no_such_fn"],
        ),
        (
            write(
                &dir,
                "m5.toml",
                "[add_column]\ntable = \"accounts\"\ncolumn = \"c\"\ntype = \"text\"\nnot_null = yes\n",
            ),
            vec!["m5.toml:5:12", "must be quoted"],
        ),
        (
            write(
                &dir,
                "m6.toml",
                "[add_column]\ntable = \"accounts\"\ncolumn = \"email\"\ntype = \"text\"\n",
            ),
            vec!["already exists"],
        ),
        (
            write(
                &dir,
                "m7.toml",
                "[add_column]\ntable = \"accounts\"\ncolumn = \"c\"\ntype = \"text\"\nbackfill = \"(SELECT 1)\"\n",
            ),
            vec!["subqueries"],
        ),
        (write(&dir, "m8.yaml", "x: 1\n"), vec![".toml or .sql"]),
        (
            dir.join("missing.toml").display().to_string(),
            vec!["missing.toml"],
        ),
        (
            write(
                &dir,
                "m9.toml",
                "[add_column]\ntable = \"accounts\"\ncolumn = \"c\"\ntype = \"int\"\nnot_null = true\n",
            ),
            vec!["no default and no backfill"],
        ),
    ];
    for (file, wants) in &cases {
        for cmd in ["plan", "start"] {
            let out = zerodown(&db, &[cmd, file]);
            let t = text(&out);
            assert!(!out.status.success(), "{cmd} {file} succeeded:\n{t}");
            for w in wants {
                assert!(t.contains(w), "{cmd} {file}: message lacks `{w}`:\n{t}");
            }
            assert!(!t.contains("panicked"), "{t}");
        }
    }
    assert_eq!(db.schema_sql(), before, "bad input changed the database");
    for (args, want) in [
        (vec!["status", "nope"], "no migration named `nope`"),
        (vec!["complete", "nope"], "no migration named `nope`"),
        (vec!["rollback", "nope"], "no migration named `nope`"),
    ] {
        let out = zerodown(&db, &args);
        assert!(
            !out.status.success() && text(&out).contains(want),
            "{args:?}: {}",
            text(&out)
        );
    }
}

#[test]
fn bad_urls_and_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let not_sqlite = dir.path().join("notes.txt");
    std::fs::write(
        &not_sqlite,
        "hello, this is not a database at all, just some text padding it out",
    )
    .unwrap();
    let missing = dir.path().join("typo.db");
    let run = |url: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_zerodown"))
            .args(["status"])
            .env("DATABASE_URL", url)
            .output()
            .unwrap();
        assert!(!o.status.success());
        text(&o)
    };
    let t = run(&format!("sqlite://{}", missing.display()));
    assert!(
        t.contains("no SQLite database at") && t.contains("typo.db"),
        "{t}"
    );
    assert!(
        !missing.exists(),
        "a typo in a path must not create a database"
    );
    let t = run(&format!("sqlite://{}", not_sqlite.display()));
    assert!(t.contains("is not a SQLite database"), "{t}");
    // PostgreSQL is driven: an unreachable server is named, its password never shown.
    let t = run("postgres://app:hunter2@127.0.0.1:1/app?connect_timeout=2");
    assert!(
        t.contains("cannot connect to PostgreSQL at 127.0.0.1:1") && !t.contains("hunter2"),
        "{t}"
    );
    // MySQL/MariaDB likewise.
    let t = run("mariadb://app:hunter2@127.0.0.1:1/app");
    assert!(
        t.contains("cannot connect to MySQL/MariaDB at app@127.0.0.1:1/app")
            && !t.contains("hunter2"),
        "{t}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_zerodown"))
        .args(["status"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(text(&o).contains("DATABASE_URL"), "{}", text(&o));
}

/// A database in rollback-journal mode (SQLite's default) is refused with nothing changed, and the
/// message is the exact command that goes on; that command switches it to WAL and runs.
#[test]
fn start_on_a_rollback_journal_database_says_the_command_that_goes_on() {
    let db = TestDb::new(100);
    db.conn()
        .query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .unwrap();
    let before = db.schema_sql();
    let dir = db.path.parent().unwrap().to_path_buf();
    let file = write(&dir, "0042_tier.toml", TIER_TOML);
    let out = zerodown(&db, &["start", &file]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    let wanted = format!("zerodown start --wal {file}");
    assert!(
        t.contains("journal mode delete")
            && t.contains("Nothing was changed")
            && t.contains(&wanted),
        "{t}"
    );
    assert_eq!(db.schema_sql(), before);
    let out = zerodown(&db, &["start", "--wal", &file]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("to WAL"), "{}", text(&out));
    let mode: String = db
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// After complete, status shows the backfill's own rate (its rows over its step's time, not the
/// whole life with the quiet period); after a rollback, no progress at all.
#[test]
fn status_shows_the_backfills_own_rate_and_no_progress_once_rolled_back() {
    let db = TestDb::new(2_000);
    let dir = db.path.parent().unwrap().to_path_buf();
    let file = write(&dir, "0042_tier.toml", TIER_TOML);
    assert!(zerodown(&db, &["start", &file]).status.success());
    let out = zerodown(&db, &["complete", "0042_tier", "--quiet-period", "1s"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = zerodown(&db, &["status", "0042_tier", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let backfill = v[0]["timings"]["backfill"].as_f64().unwrap();
    let rate = v[0]["rate"].as_f64().unwrap();
    assert!(
        (rate - 2_000.0 / backfill).abs() < 1e-6 * rate,
        "rate {rate}, backfill {backfill} s: {v}"
    );

    let db = TestDb::new(2_000);
    let dir = db.path.parent().unwrap().to_path_buf();
    let file = write(&dir, "0042_tier.toml", TIER_TOML);
    assert!(zerodown(&db, &["start", &file]).status.success());
    assert!(zerodown(&db, &["rollback", "0042_tier"]).status.success());
    let out = zerodown(&db, &["status", "0042_tier"]);
    let t = text(&out);
    assert!(t.contains("rolled-back") && !t.contains("rows"), "{t}");
    let out = zerodown(&db, &["status", "0042_tier", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v[0]["percent"].is_null() && v[0]["rate"].is_null(), "{v}");
}

/// `--help` names every engine zerodown supports, none as coming "soon".
#[test]
fn help_names_every_engine() {
    let out = Command::new(env!("CARGO_BIN_EXE_zerodown"))
        .arg("--help")
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("postgres://") && t.contains("mysql://") && !t.contains("soon"),
        "{t}"
    );
}
