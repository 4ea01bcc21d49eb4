//! Every SQLite behaviour zerodown's SQLite rules rely on, proven on the engine itself: what is
//! catalog-only, what scans, what SQLite refuses on ADD COLUMN, and that the trigger SQL also runs on an
//! older SQLite (Debian's sqlite3 CLI, 3.40) that applications may link.

mod sqlite_util;

use sqlite_util::*;
use zerodown::plan::{Action, Cost, Phase};

fn changed_pages(before: &[u64], after: &[u64]) -> usize {
    before.iter().zip(after).filter(|(a, b)| a != b).count()
}

#[test]
fn add_column_nullable_or_with_a_literal_default_is_catalog_only() {
    let db = TestDb::new(3_000);
    let before = db.row_pages();
    db.conn()
        .execute_batch("ALTER TABLE accounts ADD COLUMN a text; ALTER TABLE accounts ADD COLUMN b integer NOT NULL DEFAULT 7")
        .unwrap();
    assert_eq!(changed_pages(&before, &db.row_pages()), 0);
    assert_eq!(
        count(&db.conn(), "SELECT sum(b) FROM accounts"),
        21_000,
        "old rows read the default"
    );
}

#[test]
fn sqlite_refuses_non_constant_defaults_and_referencing_defaults_on_add_column() {
    let db = TestDb::new(10);
    let c = db.conn();
    c.execute_batch("CREATE TABLE plans(id INTEGER PRIMARY KEY)")
        .unwrap();
    for (sql, want) in [
        (
            "ALTER TABLE accounts ADD COLUMN t text DEFAULT CURRENT_TIMESTAMP",
            "non-constant default",
        ),
        (
            "ALTER TABLE accounts ADD COLUMN t real DEFAULT (random())",
            "non-constant default",
        ),
        (
            "ALTER TABLE accounts ADD COLUMN t int DEFAULT (1 + 1)",
            "non-constant default",
        ),
        (
            "ALTER TABLE accounts ADD COLUMN t int REFERENCES plans(id) DEFAULT 1",
            "non-NULL default",
        ),
        ("ALTER TABLE accounts ADD COLUMN t int UNIQUE", "UNIQUE"),
        ("ALTER TABLE accounts ADD COLUMN t int NOT NULL", "NOT NULL"),
    ] {
        let err = c.execute_batch(sql).unwrap_err().to_string();
        assert!(err.contains(want), "{sql}: {err}");
    }
    c.execute_batch("ALTER TABLE accounts ADD COLUMN t int REFERENCES plans(id)")
        .unwrap();
}

#[test]
fn set_not_null_and_add_check_verify_every_existing_row() {
    let db = TestDb::new(100);
    let c = db.conn();
    c.execute_batch(
        "ALTER TABLE accounts ADD COLUMN t int; UPDATE accounts SET t = 1 WHERE id > 1",
    )
    .unwrap();
    assert!(
        c.execute_batch("ALTER TABLE accounts ALTER COLUMN t SET NOT NULL")
            .is_err()
    );
    c.execute_batch("UPDATE accounts SET t = 1").unwrap();
    c.execute_batch("ALTER TABLE accounts ALTER COLUMN t SET NOT NULL")
        .unwrap();
    assert!(
        c.execute_batch("UPDATE accounts SET t = NULL WHERE id = 50")
            .is_err()
    );
    assert!(c.execute_batch("UPDATE accounts SET t = 0 WHERE id = 50; ALTER TABLE accounts ADD CONSTRAINT ck CHECK (t > 0)").is_err());
    c.execute_batch(
        "UPDATE accounts SET t = 1; ALTER TABLE accounts ADD CONSTRAINT ck CHECK (t > 0)",
    )
    .unwrap();
    assert!(
        c.execute_batch("UPDATE accounts SET t = 0 WHERE id = 50")
            .is_err()
    );
    // The undo paths rollback uses exist and are catalog edits.
    let before = db.row_pages();
    c.execute_batch("ALTER TABLE accounts DROP CONSTRAINT ck; ALTER TABLE accounts ALTER COLUMN t DROP NOT NULL")
        .unwrap();
    assert_eq!(changed_pages(&before, &db.row_pages()), 0);
}

#[test]
fn drop_column_rewrites_the_table() {
    let db = TestDb::new(3_000);
    db.conn()
        .execute_batch("ALTER TABLE accounts ADD COLUMN t int DEFAULT 1; UPDATE accounts SET t = 2")
        .unwrap();
    let before = db.row_pages();
    db.conn()
        .execute_batch("ALTER TABLE accounts DROP COLUMN t")
        .unwrap();
    assert!(
        changed_pages(&before, &db.row_pages()) > 10,
        "DROP COLUMN rewrites the rows: the plan marks it"
    );
    let plan = zerodown::plan(&db.url, &tier_migration()).unwrap();
    let expand = plan
        .steps
        .iter()
        .find(|s| s.phase == Phase::Expand)
        .unwrap();
    assert_eq!(expand.undo_cost, Some(Cost::Rewrite));
}

#[test]
fn data_version_moves_only_when_another_connection_commits() {
    let db = TestDb::new(10);
    let ours = db.conn();
    let v = |c: &rusqlite::Connection| -> i64 {
        c.query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap()
    };
    let v0 = v(&ours);
    ours.execute_batch("UPDATE accounts SET balance = 1 WHERE id = 1")
        .unwrap();
    assert_eq!(v(&ours), v0, "our own commits do not move it");
    db.conn()
        .execute_batch("UPDATE accounts SET balance = 2 WHERE id = 1")
        .unwrap();
    assert_ne!(v(&ours), v0, "another connection's commit does");
}

/// Applications may link an older SQLite than zerodown's bundled one: the dual-write triggers must be
/// accepted, and work, on Debian 12's 3.40.
#[test]
fn dual_write_triggers_run_on_sqlite_3_40() {
    let Ok(out) = std::process::Command::new("sqlite3")
        .arg("--version")
        .output()
    else {
        assert!(
            std::env::var("ZERODOWN_REQUIRE_ENGINES").is_err(),
            "the sqlite3 CLI is missing (run scripts/install-test-deps.sh)"
        );
        eprintln!("SKIP: the sqlite3 CLI (an older SQLite) is not installed");
        return;
    };
    let version = String::from_utf8_lossy(&out.stdout).to_string();
    let db = TestDb::new(20);
    let plan = zerodown::plan(&db.url, &tier_migration()).unwrap();
    let mut script = String::new();
    for step in plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Ddl && s.phase <= Phase::DualWrite)
    {
        for sql in &step.sql {
            script.push_str(&sql.sql);
            script.push_str(";\n");
        }
    }
    script = format!(
        "CREATE TABLE _zerodown_counters (key TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0);\n{script}\
         INSERT INTO accounts(email, balance) VALUES ('old@x', 50000);\n\
         UPDATE accounts SET balance = 20000 WHERE id = 1;\n\
         SELECT tier FROM accounts WHERE email = 'old@x';\n\
         SELECT tier FROM accounts WHERE id = 1;\n\
         SELECT n FROM _zerodown_counters;\n"
    );
    let out = std::process::Command::new("sqlite3")
        .arg(&db.path)
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sqlite3 {version}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["gold", "gold", "1"],
        "sqlite3 {version}"
    );
}
