//! Typed statements on SQLite: each statement runs as its plan says, and no text — in a user's
//! expression, in a table's CREATE TABLE, or in the stored statement itself — changes how.

mod sqlite_util;

use rusqlite::Connection;
use sqlite_util::*;
use zerodown::plan::{Action, Run};
use zerodown::{Error, Status};

fn default_of(c: &Connection, table: &str, column: &str) -> Option<String> {
    c.query_row(
        "SELECT dflt_value FROM pragma_table_xinfo(?1) WHERE name = ?2",
        [table, column],
        |r| r.get(0),
    )
    .unwrap()
}

fn table_sql(c: &Connection, table: &str) -> String {
    c.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )
    .unwrap()
}

/// Every column but `except` as SQLite reports it: name, type, NOT NULL, default, key position.
fn other_columns(c: &Connection, table: &str, except: &str) -> Vec<String> {
    let mut s = c
        .prepare("SELECT name || '|' || type || '|' || \"notnull\" || '|' || coalesce(dflt_value, '-') || '|' || pk FROM pragma_table_xinfo(?1) WHERE name <> ?2 ORDER BY cid")
        .unwrap();
    s.query_map([table, except], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Sets a JSON value inside the stored plan of the one migration, as a damaged or foreign row would.
fn set_in_plan(db: &TestDb, path: &str, json: &str) {
    let n = db
        .conn()
        .execute(
            "UPDATE _zerodown_migrations SET plan = json_set(plan, ?1, json(?2))",
            [path, json],
        )
        .unwrap();
    assert_eq!(n, 1);
}

fn schema_edit_migration() -> zerodown::Migration {
    migration("0050_note", |a| {
        a.column = "note".into();
        a.not_null = true;
        a.backfill = Some("lower(email)".into());
        a.default = Some("'PRAGMA writable_schema = ON'".into());
        a.check = Some("note <> 'UPDATE sqlite_schema SET sql = ''x'''".into());
    })
}

#[test]
fn user_text_that_reads_like_the_schema_edit_runs_exactly_as_planned() {
    let db = TestDb::new(200);
    let m = schema_edit_migration();
    let plan = zerodown::plan(&db.url, &m).unwrap();
    // The finish step sets the default through one typed statement carrying the user's literal as
    // data; every other statement, the CHECK with its look-alike text included, runs in its step.
    let finish = plan.steps.last().unwrap();
    assert_eq!(finish.action, Action::Finish);
    let edits: Vec<&Run> = plan
        .steps
        .iter()
        .flat_map(|s| s.sql.iter().chain(&s.undo))
        .map(|s| &s.run)
        .filter(|r| **r != Run::InStep)
        .collect();
    assert_eq!(
        edits,
        [&Run::SqliteSetDefault {
            table: "accounts".into(),
            column: "note".into(),
            default: "'PRAGMA writable_schema = ON'".into(),
            literal: true,
        }]
    );
    assert_eq!(finish.sql[0].run, *edits[0]);

    db.start(&m).unwrap();
    db.complete("0050_note").unwrap();
    let c = db.conn();
    assert_eq!(db.status("0050_note").status, Status::Completed);
    assert_eq!(
        default_of(&c, "accounts", "note").as_deref(),
        Some("'PRAGMA writable_schema = ON'")
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM accounts WHERE note IS NOT lower(email)"
        ),
        0
    );
    // A writer that leaves the column out gets the literal, exactly.
    c.execute("INSERT INTO accounts(email, balance) VALUES ('n@x', 1)", [])
        .unwrap();
    let v: String = c
        .query_row("SELECT note FROM accounts WHERE email = 'n@x'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(v, "PRAGMA writable_schema = ON");
    // The CHECK is in force with its text intact.
    let refused = c.execute(
        "INSERT INTO accounts(email, balance, note) VALUES ('k@x', 1, 'UPDATE sqlite_schema SET sql = ''x''')",
        [],
    );
    assert!(refused.is_err(), "the CHECK let its forbidden value in");
    assert!(zd_triggers(&c).is_empty());
    assert_eq!(integrity(&c), "ok");
    let writable: i64 = c
        .query_row("PRAGMA writable_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(writable, 0);
}

#[test]
fn the_schema_edit_applies_its_fields_and_never_runs_its_text() {
    let db = TestDb::new(50);
    let m = schema_edit_migration();
    db.start(&m).unwrap();
    // The stored statement's text is only a description: even text that would destroy the table is
    // not what runs.
    set_in_plan(&db, "$.steps[#-1].sql[0].sql", "\"DROP TABLE accounts\"");
    db.complete("0050_note").unwrap();
    let c = db.conn();
    assert_eq!(count(&c, "SELECT count(*) FROM accounts"), 50);
    assert_eq!(
        default_of(&c, "accounts", "note").as_deref(),
        Some("'PRAGMA writable_schema = ON'")
    );
}

#[test]
fn a_statement_marked_to_run_in_a_way_sqlite_has_not_is_an_internal_error_and_nothing_runs() {
    let db = TestDb::new(50);
    let m = migration("0051_lower", |a| {
        a.backfill = Some("lower(email)".into());
    });
    // Expand only, as an interrupted start leaves it.
    db.drive_steps(&m, 1);
    let before = (db.schema_sql(), db.data_checksum());
    let trigger = zerodown::plan(&db.url, &m).unwrap().steps[1].sql[0]
        .sql
        .clone();
    let online = serde_json::json!({"sql": trigger, "run": {"kind": "online-build"}});
    set_in_plan(&db, "$.steps[1].sql[0]", &online.to_string());
    let internal = |r: zerodown::Result<()>, what: &str| {
        let err = r.expect_err(what);
        assert!(
            matches!(&err, Error::Refused(msg) if msg.starts_with("internal error") && msg.contains("nothing of this step was run")),
            "{what}: {err}"
        );
    };
    internal(db.start(&m).map(|_| ()), "start");
    assert_eq!((db.schema_sql(), db.data_checksum()), before);
    assert_eq!(db.status("0051_lower").step, 1);
    // Rolling back the expand step runs its undo: marked INSTANT-or-fallback, it is refused alike.
    let instant = serde_json::json!({
        "sql": "ALTER TABLE \"accounts\" DROP COLUMN \"c\"",
        "run": {"kind": "instant-or", "fallback": "DROP TABLE accounts"}
    });
    set_in_plan(&db, "$.steps[0].undo[0]", &instant.to_string());
    internal(db.rollback("0051_lower"), "rollback");
    assert_eq!((db.schema_sql(), db.data_checksum()), before);
}

/// A table whose CREATE TABLE text is full of look-alikes of the new column: quoted names that
/// differ by a character, the name inside strings and comments, commas and parentheses in strings.
const TRICKY: &str = r#"CREATE TABLE "odd ""t"", (x" /* ( "ti""er" int, */ (
  id INTEGER PRIMARY KEY,
  "ti""er x" text DEFAULT 'ti"er, ) -- not a comment',
  [ti"er2] text, -- "ti""er" int,
  `ti""er3` text CHECK (`ti""er3` <> ')'),
  amount numeric(10, 2) NOT NULL DEFAULT 0,
  CONSTRAINT "c,k" CHECK (amount >= 0 AND "ti""er x" <> '"ti""er" text')
)"#;
const ODD: &str = "odd \"t\", (x";

#[test]
fn schema_edit_defaults_land_on_the_right_column_of_a_tricky_create_table() {
    let db = TestDb::empty();
    let c = db.conn();
    c.execute_batch(&format!(
        "{TRICKY}; INSERT INTO \"odd \"\"t\"\", (x\"(amount) VALUES (1), (2), (3);"
    ))
    .unwrap();
    let cases = [
        // A literal with a comma, a parenthesis, a doubled quote and dashes.
        (
            "0060_lit",
            "ti\"er",
            Some("'b' || id"),
            "'d,)''--'",
            "d,)'--",
        ),
        // An expression (parenthesised in the definition) with the same characters in strings.
        (
            "0061_expr",
            "ti\"er4",
            None,
            "upper('e,)') || '--'",
            "E,)--",
        ),
    ];
    for (name, column, backfill, default, lands) in cases {
        let m = migration(name, |a| {
            a.table = ODD.into();
            a.column = column.into();
            a.backfill = backfill.map(str::to_string);
            a.default = Some(default.into());
        });
        db.start(&m).unwrap();
        let expanded = table_sql(&c, ODD);
        let others = other_columns(&c, ODD, column);
        db.complete(name).unwrap();
        assert_eq!(db.status(name).status, Status::Completed);
        // Exactly one change to the text: the DEFAULT right after the new column's definition.
        let declared: String = c
            .query_row(
                "SELECT type FROM pragma_table_xinfo(?1) WHERE name = ?2",
                [ODD, column],
                |r| r.get(0),
            )
            .unwrap();
        let def = format!("\"{}\" {declared}", column.replace('"', "\"\""));
        assert_eq!(expanded.matches(&def).count(), 1, "{expanded}");
        let at = expanded.find(&def).unwrap() + def.len();
        let clause = if backfill.is_some() {
            default.to_string()
        } else {
            format!("({default})")
        };
        assert_eq!(
            table_sql(&c, ODD),
            format!("{} DEFAULT {clause}{}", &expanded[..at], &expanded[at..])
        );
        assert_eq!(other_columns(&c, ODD, column), others);
        c.execute("INSERT INTO \"odd \"\"t\"\", (x\"(amount) VALUES (9)", [])
            .unwrap();
        let v: String = c
            .query_row(
                &format!(
                    "SELECT \"{}\" FROM \"odd \"\"t\"\", (x\" ORDER BY id DESC LIMIT 1",
                    column.replace('"', "\"\"")
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, lands, "{name}");
        assert_eq!(integrity(&c), "ok");
    }
}
