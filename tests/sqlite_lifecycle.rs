//! The add-column lifecycle on real SQLite files: start, complete, rollback, resume, concurrent writers.

mod sqlite_util;

use rusqlite::Connection;
use sqlite_util::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use zerodown::{StartOutcome, Status};

#[test]
fn derived_not_null_column_with_check_and_index() {
    let db = TestDb::new(2_000);
    let m = tier_migration();
    let outcome = db.start(&m).unwrap();
    assert_eq!(outcome, StartOutcome::Backfilled { rows: 2_000 });
    // Triggers are in place, the column is nullable and filled.
    let c = db.conn();
    assert_eq!(
        count(&c, "SELECT count(*) FROM accounts WHERE tier IS NULL"),
        0
    );
    assert_eq!(mismatches(&c), 0);
    assert_eq!(zd_triggers(&c).len(), 2);
    // An old writer inserts without the column: the trigger fills it.
    c.execute(
        "INSERT INTO accounts(email, balance) VALUES ('new@x', 50000)",
        [],
    )
    .unwrap();
    assert_eq!(
        c.query_row("SELECT tier FROM accounts WHERE email = 'new@x'", [], |r| r
            .get::<_, String>(0))
            .unwrap(),
        "gold"
    );
    // An old writer updates a source column: recomputed.
    c.execute("UPDATE accounts SET balance = 1 WHERE email = 'new@x'", [])
        .unwrap();
    assert_eq!(
        c.query_row("SELECT tier FROM accounts WHERE email = 'new@x'", [], |r| r
            .get::<_, String>(0))
            .unwrap(),
        "standard"
    );
    // A new writer that sets the column keeps its value, on INSERT and on UPDATE.
    c.execute(
        "INSERT INTO accounts(email, balance, tier) VALUES ('set@x', 1, 'gold')",
        [],
    )
    .unwrap();
    c.execute(
        "UPDATE accounts SET balance = 2, tier = 'gold' WHERE email = 'new@x'",
        [],
    )
    .unwrap();
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM accounts WHERE email IN ('set@x', 'new@x') AND tier = 'gold'"
        ),
        2
    );
    // complete: refused while an old writer was seen inserting within the quiet period…
    let err = db.complete_with("0042_tier", quiet(Duration::from_millis(300)), |returned| {
        // An old application version keeps inserting without the column for as long as complete
        // runs, however long that is on this machine.
        let c = db.conn();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        let mut i = 0;
        while !returned.load(Ordering::SeqCst) {
            i += 1;
            c.execute(
                "INSERT INTO accounts(email, balance) VALUES (?1, 5)",
                [format!("old{i}@x")],
            )
            .unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    assert!(
        err.unwrap_err().to_string().contains("still running"),
        "guard must refuse"
    );
    // …and accepted once no old writer inserts; the final sweep fills rows a writer set back to NULL.
    db.conn()
        .execute("UPDATE accounts SET tier = NULL WHERE id <= 5", [])
        .unwrap();
    db.complete("0042_tier").unwrap();
    let c = db.conn();
    assert!(zd_triggers(&c).is_empty());
    let (notnull, dflt): (bool, Option<String>) = c
        .query_row("SELECT \"notnull\", dflt_value FROM pragma_table_xinfo('accounts') WHERE name = 'tier'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(notnull);
    assert_eq!(dflt.as_deref(), Some("'standard'"));
    assert!(
        c.execute(
            "INSERT INTO accounts(email, balance, tier) VALUES ('bad@x', 1, 'platinum')",
            []
        )
        .is_err()
    );
    assert!(
        c.execute(
            "INSERT INTO accounts(email, balance, tier) VALUES ('bad@x', 1, NULL)",
            []
        )
        .is_err()
    );
    c.execute(
        "INSERT INTO accounts(email, balance) VALUES ('def@x', 99999)",
        [],
    )
    .unwrap();
    assert_eq!(
        c.query_row("SELECT tier FROM accounts WHERE email = 'def@x'", [], |r| r
            .get::<_, String>(0))
            .unwrap(),
        "standard",
        "after complete, the default serves writers that omit the column"
    );
    let plan: String = c
        .query_row("SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'accounts' AND name LIKE 'zd_ix_%'", [], |r| r.get(0))
        .unwrap();
    assert!(plan.contains("\"tier\""));
    assert_eq!(db.status("0042_tier").status, Status::Completed);
    assert_eq!(integrity(&c), "ok");
}

#[test]
fn single_step_literal_default_leaves_row_pages_untouched() {
    let db = TestDb::new(5_000);
    let before = db.row_pages();
    let m = migration("0001_active", |a| {
        a.column = "active".into();
        a.data_type = "integer".into();
        a.not_null = true;
        a.default = Some("1".into());
    });
    let plan = zerodown::plan(&db.url, &m).unwrap();
    assert!(plan.single_step);
    assert_eq!(db.start(&m).unwrap(), StartOutcome::Completed);
    let after = db.row_pages();
    let changed: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .map(|i| i + 2)
        .collect();
    assert!(
        changed.is_empty(),
        "ADD COLUMN touched pages {changed:?}; only page 1 (the schema) may change"
    );
    let c = db.conn();
    assert_eq!(
        count(&c, "SELECT count(*) FROM accounts WHERE active = 1"),
        5_000
    );
    assert_eq!(db.status("0001_active").status, Status::Completed);
}

#[test]
fn time_default_gives_old_rows_one_value_and_new_rows_their_own() {
    let db = TestDb::new(500);
    let m = migration("0002_seen", |a| {
        a.column = "seen_at".into();
        a.data_type = "text".into();
        a.not_null = true;
        a.default = Some("CURRENT_TIMESTAMP".into());
    });
    let plan = zerodown::plan(&db.url, &m).unwrap();
    assert!(
        !plan.single_step,
        "SQLite refuses a time default on ADD COLUMN: backfill path"
    );
    db.start(&m).unwrap();
    let c = db.conn();
    assert_eq!(count(&c, "SELECT count(DISTINCT seen_at) FROM accounts"), 1);
    assert_eq!(
        count(&c, "SELECT count(*) FROM accounts WHERE seen_at IS NULL"),
        0
    );
    db.complete("0002_seen").unwrap();
    let dflt: String = c
        .query_row(
            "SELECT dflt_value FROM pragma_table_xinfo('accounts') WHERE name = 'seen_at'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dflt, "CURRENT_TIMESTAMP");
    c.execute("INSERT INTO accounts(email, balance) VALUES ('t@x', 1)", [])
        .unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM accounts WHERE seen_at IS NULL"),
        0
    );
}

#[test]
fn volatile_default_gives_every_row_its_own_value() {
    let db = TestDb::new(1_000);
    let m = migration("0003_token", |a| {
        a.column = "token".into();
        a.data_type = "blob".into();
        a.not_null = true;
        a.default = Some("randomblob(16)".into());
        a.unique = true;
    });
    db.start(&m).unwrap();
    db.complete("0003_token").unwrap();
    let c = db.conn();
    assert_eq!(
        count(&c, "SELECT count(DISTINCT token) FROM accounts"),
        1_000
    );
    c.execute("INSERT INTO accounts(email, balance) VALUES ('v@x', 1)", [])
        .unwrap();
    assert_eq!(
        count(&c, "SELECT count(DISTINCT token) FROM accounts"),
        1_001
    );
}

#[test]
fn references_are_checked_at_complete() {
    let db = TestDb::new(200);
    let c = db.conn();
    c.execute_batch("CREATE TABLE plans(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO plans VALUES (1, 'free'), (2, 'pro');")
        .unwrap();
    let m = migration("0004_plan", |a| {
        a.column = "plan_id".into();
        a.data_type = "integer".into();
        a.backfill = Some("CASE WHEN balance > 10000 THEN 2 ELSE 1 END".into());
        a.references = Some(zerodown::spec::Reference {
            table: "plans".into(),
            column: Some("id".into()),
        });
    });
    db.start(&m).unwrap();
    // An application that does not enforce foreign keys (SQLite's own default) writes an orphan.
    c.execute_batch("PRAGMA foreign_keys = OFF; UPDATE accounts SET plan_id = 7 WHERE id = 3")
        .unwrap();
    let err = db.complete("0004_plan").unwrap_err().to_string();
    assert!(
        err.contains("1 row(s)") && err.contains("points at no row"),
        "{err}"
    );
    c.execute("UPDATE accounts SET plan_id = 1 WHERE id = 3", [])
        .unwrap();
    db.complete("0004_plan").unwrap();
    let fk: String = c
        .query_row(
            "SELECT \"table\" FROM pragma_foreign_key_list('accounts') WHERE \"from\" = 'plan_id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(fk, "plans");
}

#[test]
fn without_rowid_table_batches_over_its_primary_key() {
    let db = TestDb::empty();
    let c = db.conn();
    c.execute_batch(
        "CREATE TABLE kv(region TEXT, k INTEGER, v INTEGER, PRIMARY KEY (region, k)) WITHOUT ROWID;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO kv SELECT CASE i % 3 WHEN 0 THEN 'eu' WHEN 1 THEN 'us' ELSE 'ap' END, i, i FROM n;",
    )
    .unwrap();
    let m = migration("0005_kv", |a| {
        a.table = "kv".into();
        a.column = "v2".into();
        a.data_type = "integer".into();
        a.not_null = true;
        a.backfill = Some("v * 2".into());
    });
    let plan = zerodown::plan(&db.url, &m).unwrap();
    assert_eq!(plan.ops[0].fill.as_ref().unwrap().key, vec!["region", "k"]);
    db.start_with(&m, |s| s.batch_time = Some(Duration::from_micros(200)))
        .unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM kv WHERE v2 IS NOT v * 2"),
        0
    );
    db.complete("0005_kv").unwrap();
}

#[test]
fn rollback_from_every_phase_restores_the_table() {
    // Stop after each number of steps, then roll back: the table must be as it was.
    let steps = {
        let db = TestDb::new(10);
        zerodown::plan(&db.url, &tier_migration())
            .unwrap()
            .steps
            .len()
    };
    for stop_after in 1..steps {
        let db = TestDb::new(300);
        let before = db.schema_sql();
        let checksum = db.data_checksum();
        db.drive_steps(&tier_migration(), stop_after);
        db.rollback("0042_tier").unwrap();
        assert_eq!(
            db.schema_sql(),
            before,
            "schema after rollback from step {stop_after}"
        );
        assert_eq!(
            db.data_checksum(),
            checksum,
            "old columns' data after rollback from step {stop_after}"
        );
        assert_eq!(db.status("0042_tier").status, Status::RolledBack);
        // The name is free again.
        db.start(&tier_migration()).unwrap();
        db.complete("0042_tier").unwrap();
    }
}

#[test]
fn concurrent_writers_during_backfill_leave_no_wrong_row() {
    let db = TestDb::new(20_000);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3 {
        let path = db.path.clone();
        let stop = stop.clone();
        writers.push(std::thread::spawn(move || {
            let c = Connection::open(&path).unwrap();
            c.busy_timeout(Duration::from_secs(10)).unwrap();
            let mut i: i64 = 0;
            let mut acked = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let id = 1 + ((i * 7919) % 6_666) * 3 + w; // each writer owns its own rows
                let balance = (i * 104_729) % 20_000;
                match w {
                    0 => {
                        c.execute(
                            "UPDATE accounts SET balance = ?1 WHERE id = ?2",
                            [balance, id],
                        )
                        .unwrap();
                        acked.push((id, balance));
                    }
                    1 => {
                        c.execute(
                            "INSERT INTO accounts(email, balance) VALUES (?1, ?2)",
                            rusqlite::params![format!("w{w}-{i}@x"), balance],
                        )
                        .unwrap();
                    }
                    _ => {
                        let tier = if balance > 10000 { "gold" } else { "standard" };
                        // A new-version writer: sets the column itself once it exists.
                        let r = c.execute(
                            "UPDATE accounts SET balance = ?1, tier = ?2 WHERE id = ?3",
                            rusqlite::params![balance, tier, id],
                        );
                        if r.is_err() {
                            c.execute(
                                "UPDATE accounts SET balance = ?1 WHERE id = ?2",
                                [balance, id],
                            )
                            .unwrap();
                        }
                        acked.push((id, balance));
                    }
                }
                std::thread::sleep(Duration::from_micros(300));
            }
            acked
        }));
    }
    db.start_with(&tier_migration(), |s| {
        s.batch_time = Some(Duration::from_millis(2))
    })
    .unwrap();
    // The writers go on after the backfill (the triggers alone keep the column right then), for a
    // number of writes, not a time.
    let c = db.conn();
    let rows_then = count(&c, "SELECT count(*) FROM accounts");
    while count(&c, "SELECT count(*) FROM accounts") < rows_then + 30 {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    let mut last = std::collections::HashMap::new();
    for w in writers {
        for (id, bal) in w.join().unwrap() {
            last.insert(id, bal);
        }
    }
    let c = db.conn();
    assert_eq!(mismatches(&c), 0, "every row's tier matches its balance");
    assert_eq!(
        count(&c, "SELECT count(*) FROM accounts WHERE tier IS NULL"),
        0
    );
    for (id, bal) in last {
        let got: i64 = c
            .query_row("SELECT balance FROM accounts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(got, bal, "lost write on row {id}");
    }
    db.complete("0042_tier").unwrap();
}

#[test]
fn a_changed_spec_under_a_running_name_is_refused_with_the_difference() {
    let db = TestDb::new(100);
    db.start(&tier_migration()).unwrap();
    let mut changed = tier_migration();
    let Some(zerodown::spec::Operation::AddColumn(a)) = changed.operations.first_mut() else {
        unreachable!()
    };
    a.check = Some("tier IN ('gold', 'standard', 'silver')".into());
    let err = db.start(&changed).unwrap_err().to_string();
    assert!(
        err.contains("different spec") && err.contains("silver"),
        "{err}"
    );
    // The same spec again is a no-op that says where things stand.
    assert_eq!(
        db.start(&tier_migration()).unwrap(),
        StartOutcome::Backfilled { rows: 100 }
    );
}

#[test]
fn complete_refuses_before_the_backfill_is_done() {
    let db = TestDb::new(500);
    db.drive_steps(&tier_migration(), 2);
    let err = db.complete("0042_tier").unwrap_err().to_string();
    assert!(err.contains("has not finished its backfill"), "{err}");
}

#[test]
fn not_null_with_null_values_is_refused_before_any_change() {
    let db = TestDb::new(100);
    db.conn()
        .execute("UPDATE accounts SET email = NULL WHERE id <= 3", [])
        .ok();
    let before = db.schema_sql();
    let m = migration("0006_upper", |a| {
        a.column = "domain".into();
        a.data_type = "text".into();
        a.not_null = true;
        a.backfill = Some("nullif(balance % 10, 0)".into());
    });
    let err = db.start(&m).unwrap_err().to_string();
    assert!(err.contains("NULL for 10 existing row(s)"), "{err}");
    assert_eq!(
        db.schema_sql(),
        before,
        "nothing changed, not even a state table"
    );
}

#[test]
fn rollback_journal_is_refused_unless_asked() {
    let db = TestDb::new(100);
    db.conn()
        .query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .unwrap();
    let err = db.start(&tier_migration()).unwrap_err().to_string();
    assert!(
        err.contains("--wal") && err.contains("--allow-rollback-journal"),
        "{err}"
    );
    db.start_with(&tier_migration(), |s| s.wal = true).unwrap();
    let mode: String = db
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn hostile_identifiers_are_harmless() {
    let db = TestDb::empty();
    let c = db.conn();
    c.execute_batch(
        r#"CREATE TABLE "we""ird; DROP TABLE x" ("select" INTEGER PRIMARY KEY, "a'b" INTEGER);
           INSERT INTO "we""ird; DROP TABLE x" ("a'b") VALUES (1), (2), (3);"#,
    )
    .unwrap();
    let m = migration("0007_hostile", |a| {
        a.table = "we\"ird; DROP TABLE x".into();
        a.column = "new\"col'); --".into();
        a.data_type = "integer".into();
        a.not_null = true;
        a.backfill = Some("\"a'b\" * 10".into());
        a.check = Some("\"new\"\"col'); --\" > 0".into());
        a.index = true;
    });
    db.start(&m).unwrap();
    db.complete("0007_hostile").unwrap();
    assert_eq!(
        count(
            &c,
            r#"SELECT sum("new""col'); --") FROM "we""ird; DROP TABLE x""#
        ),
        60
    );
}

#[test]
fn lock_guard_retries_while_a_writer_holds_the_lock_then_gets_through() {
    let db = TestDb::new(200);
    let blocker = db.conn();
    blocker
        .execute_batch("BEGIN IMMEDIATE; UPDATE accounts SET balance = balance WHERE id = 1;")
        .unwrap();
    // The writer lets go once zerodown has retried twice: counted, not timed.
    let mut blocker = Some(blocker);
    let mut retries = 0;
    let r = zerodown::start(
        &db.url,
        &tier_migration(),
        &zerodown::Settings {
            lock_timeout: Some(Duration::from_millis(50)),
            ..Default::default()
        },
        &mut |e| {
            if let zerodown::Event::LockRetry { blocker: b, .. } = e {
                assert!(b.contains("write lock"));
                retries += 1;
                if retries == 2 {
                    blocker.take().unwrap().execute_batch("COMMIT").unwrap();
                }
            }
        },
        &AtomicBool::new(false),
    );
    assert_eq!(r.unwrap(), StartOutcome::Backfilled { rows: 200 });
    assert!(retries >= 2, "expected lock retries, saw {retries}");
}

#[test]
fn lock_budget_exhausted_leaves_nothing_half_done() {
    let db = TestDb::new(50);
    let before = db.schema_sql();
    let blocker = db.conn();
    blocker
        .execute_batch("BEGIN IMMEDIATE; UPDATE accounts SET balance = balance WHERE id = 1;")
        .unwrap();
    let r = db.start_with(&tier_migration(), |s| {
        s.lock_timeout = Some(Duration::from_millis(30));
        s.lock_budget = Some(Duration::from_millis(400));
    });
    let err = r.unwrap_err();
    assert!(matches!(err, zerodown::Error::LockBudget(_)), "{err}");
    assert!(err.to_string().contains("--lock-budget"), "{err}");
    blocker.execute_batch("COMMIT").unwrap();
    assert_eq!(db.schema_sql(), before);
    // The recorded migration resumes (or rolls back) cleanly.
    db.start(&tier_migration()).unwrap();
    assert_eq!(mismatches(&db.conn()), 0);
}

#[test]
fn two_drivers_never_run_the_same_database_at_once() {
    let db = TestDb::new(20_000);
    let url = db.url.clone();
    let cancel = Arc::new(AtomicBool::new(false));
    // The first run holds still after its first batch until the second has been tried: it is
    // backfilling then, whatever the machine's speed.
    let (backfilling, told_backfilling) = std::sync::mpsc::channel::<()>();
    let (go_on, told_go_on) = std::sync::mpsc::channel::<()>();
    let first = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            let mut waited = false;
            zerodown::start(
                &url,
                &tier_migration(),
                &zerodown::Settings::default(),
                &mut |e| {
                    if matches!(e, zerodown::Event::Progress { .. }) && !waited {
                        waited = true;
                        backfilling.send(()).unwrap();
                        told_go_on.recv().unwrap();
                    }
                },
                &cancel,
            )
        })
    };
    told_backfilling.recv().unwrap();
    let err = db.start(&tier_migration()).unwrap_err();
    assert!(matches!(err, zerodown::Error::Busy(_)), "{err}");
    assert!(err.to_string().contains("another zerodown"), "{err}");
    cancel.store(true, Ordering::SeqCst);
    go_on.send(()).unwrap();
    let first = first.join().unwrap();
    assert!(
        matches!(first, Err(zerodown::Error::Interrupted(_))),
        "{first:?}"
    );
    db.start(&tier_migration()).unwrap();
}

#[test]
fn plan_of_a_migration_in_progress_is_the_recorded_one() {
    let db = TestDb::new(100);
    db.start(&tier_migration()).unwrap();
    let plan = zerodown::plan(&db.url, &tier_migration()).unwrap();
    assert!(
        plan.notes[0].contains("in progress: backfilled"),
        "{:?}",
        plan.notes
    );
    let mut changed = tier_migration();
    let Some(zerodown::spec::Operation::AddColumn(a)) = changed.operations.first_mut() else {
        unreachable!()
    };
    a.index = false;
    let err = zerodown::plan(&db.url, &changed).unwrap_err().to_string();
    assert!(err.contains("- index = true"), "{err}");
}

#[test]
fn zerodowns_own_connection_does_not_enforce_foreign_keys() {
    let db = TestDb::new(1);
    let s = zerodown::engine::sqlite::Sqlite::open(&db.path).unwrap();
    let fk: i64 = s
        .connection()
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        fk, 0,
        "a batch must never abort halfway on an old orphan row"
    );
}

#[test]
fn rollback_again_after_it_finished_is_a_no_op() {
    let db = TestDb::new(50);
    db.start(&tier_migration()).unwrap();
    db.rollback("0042_tier").unwrap();
    db.rollback("0042_tier").unwrap();
    assert!(db.rollback("never_started").is_err());
}
