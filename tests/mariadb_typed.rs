//! Typed statements on real MariaDB 10.11: how a step runs comes from the plan's kind for each
//! statement (in the step, an online build, INSTANT with a planned fallback, a copy), never from its
//! text. A user's default, backfill or CHECK that spells out `ALGORITHM=COPY`, ` MODIFY COLUMN ` or
//! `ALGORITHM=INSTANT` runs start → complete (or rollback) exactly as planned and keeps its text.

mod support;

use mysql::Conn;
use mysql::prelude::Queryable;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use support::MariaDbTestDb;
use zerodown::plan::Run;
use zerodown::spec::{AddColumn, Migration};
use zerodown::{DatabaseUrl, Error, Event, Settings, StartOutcome};

/// Every word an executor once looked for in a statement's text.
const WORDS: &str = "ALGORITHM=COPY MODIFY COLUMN ALGORITHM=INSTANT ALGORITHM=INPLACE";

/// A fresh database with `accounts(id, email)` of `rows` rows, created with `options`
/// (e.g. a charset or row format); returns it and an admin connection.
fn setup(name: &str, rows: i64, options: &str) -> Option<(MariaDbTestDb, Conn)> {
    let server = support::mariadb()?;
    let db = server.fresh_database(name);
    let mut c = db.connect();
    c.query_drop(format!(
        "CREATE TABLE accounts (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, email varchar(100) NOT NULL) ENGINE=InnoDB {options}"
    ))
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO accounts (email) SELECT concat('u', seq, '@x') FROM seq_1_to_{rows}"
    ))
    .unwrap();
    Some((db, c))
}

fn url(db: &MariaDbTestDb) -> DatabaseUrl {
    DatabaseUrl::parse(db.url()).unwrap()
}

fn quick(allow_copy: bool) -> Settings {
    Settings {
        quiet_period: Some(Duration::ZERO),
        batch_time: Some(Duration::from_millis(10)),
        lock_timeout: Some(Duration::from_millis(300)),
        allow_copy,
        ..Settings::default()
    }
}

/// Runs start and returns its outcome with the notes it emitted.
fn start(
    db: &MariaDbTestDb,
    m: &Migration,
    s: &Settings,
) -> (zerodown::Result<StartOutcome>, Vec<String>) {
    let mut notes = Vec::new();
    let out = zerodown::start(
        &url(db),
        m,
        s,
        &mut |e| {
            if let Event::Note(n) = e {
                notes.push(n)
            }
        },
        &AtomicBool::new(false),
    );
    (out, notes)
}

fn complete(db: &MariaDbTestDb, name: &str, s: &Settings) -> zerodown::Result<()> {
    zerodown::complete(&url(db), name, s, &mut |_| {}, &AtomicBool::new(false))
}

fn one<T: mysql::prelude::FromValue>(c: &mut Conn, sql: &str) -> T {
    c.query_first::<T, _>(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap()
}

/// (COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, CHARACTER_SET_NAME) of `accounts.column`.
fn column(c: &mut Conn, column: &str) -> Option<(String, String, Option<String>, Option<String>)> {
    c.exec_first(
        "SELECT COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, CHARACTER_SET_NAME FROM information_schema.COLUMNS
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'accounts' AND COLUMN_NAME = ?",
        (column,),
    )
    .unwrap()
}

fn leftovers(c: &mut Conn) -> Vec<String> {
    c.query(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()
         UNION ALL SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'zd\\_%'",
    )
    .unwrap()
}

#[test]
fn user_text_that_names_an_algorithm_never_changes_how_a_step_runs() {
    let Some((db, mut c)) = setup("my_typed_words", 2000, "DEFAULT CHARSET=latin1") else {
        return;
    };
    let mut a = AddColumn::new("accounts", "label", "varchar(160)");
    a.not_null = true;
    a.backfill = Some(format!("concat(email, ' {WORDS}')"));
    a.default = Some(format!("' {WORDS}'"));
    a.index = true;
    let m = Migration::adding("typed_words", a);

    // The plan says how each statement runs; the words inside the user's expressions say nothing.
    let plan = zerodown::plan(&url(&db), &m).unwrap();
    let runs = |pred: &dyn Fn(&str) -> bool| -> Vec<Run> {
        plan.steps
            .iter()
            .flat_map(|s| &s.sql)
            .filter(|q| pred(&q.sql))
            .map(|q| q.run.clone())
            .collect()
    };
    assert_eq!(
        runs(&|q| q.starts_with("CREATE TRIGGER")),
        vec![Run::InStep, Run::InStep],
        "the triggers carry the words and run in the step"
    );
    let modify = runs(&|q| q.contains("MODIFY COLUMN `label`"));
    assert_eq!(
        modify,
        vec![Run::OnlineBuild {
            index: None,
            strict: true
        }]
    );
    let text = zerodown::plan::render_text(&plan);
    assert!(
        !text.contains("/*") && text.contains("MODIFY COLUMN `label` VARCHAR(160) NOT NULL"),
        "the MODIFY that runs is printed whole:\n{text}"
    );
    assert!(
        !plan
            .steps
            .iter()
            .flat_map(|s| &s.sql)
            .any(|q| q.run == Run::Copy),
        "no step copies the table"
    );

    // No --allow-copy: the words `ALGORITHM=COPY` in the triggers and the backfill ask for nothing.
    let (out, _) = start(&db, &m, &quick(false));
    assert!(matches!(out.unwrap(), StartOutcome::Backfilled { .. }));
    // The triggers were created under the session's sql_mode, not the strict one of a MODIFY.
    let global: String = one(&mut c, "SELECT @@GLOBAL.sql_mode");
    let modes: Vec<String> = c
        .query("SELECT SQL_MODE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()")
        .unwrap();
    assert_eq!(modes.len(), 2);
    for mode in &modes {
        assert_eq!(mode, &global, "trigger sql_mode");
        assert!(!mode.contains("STRICT_ALL_TABLES"), "{mode}");
    }
    // A writer that leaves the column out gets the expression, words and all.
    c.query_drop("INSERT INTO accounts (email) VALUES ('new@x')")
        .unwrap();

    complete(&db, "typed_words", &quick(false)).unwrap();
    let wrong: i64 = one(
        &mut c,
        &format!("SELECT count(*) FROM accounts WHERE label <> concat(email, ' {WORDS}')"),
    );
    assert_eq!(wrong, 0, "every row has the backfill's text intact");
    let (ty, nullable, default, charset) = column(&mut c, "label").unwrap();
    assert_eq!(ty, "varchar(160)");
    assert_eq!(nullable, "NO");
    assert_eq!(default.as_deref(), Some(format!("' {WORDS}'").as_str()));
    assert_eq!(
        charset.as_deref(),
        Some("latin1"),
        "the planned MODIFY keeps the table's charset, as the ADD had it"
    );
    c.query_drop("INSERT INTO accounts (email) VALUES ('later@x')")
        .unwrap();
    let later: String = one(&mut c, "SELECT label FROM accounts WHERE email = 'later@x'");
    assert_eq!(later, format!(" {WORDS}"));
    assert!(leftovers(&mut c).is_empty());
}

#[test]
fn a_refused_instant_runs_the_planned_fallback_and_keeps_the_users_text() {
    // InnoDB adds and drops columns of a ROW_FORMAT=COMPRESSED table only by a rebuild: INSTANT is
    // refused, and the plan's INPLACE, LOCK=NONE fallback runs instead.
    let Some((db, mut c)) = setup("my_typed_instant", 500, "ROW_FORMAT=COMPRESSED") else {
        return;
    };
    let mut a = AddColumn::new("accounts", "tag", "varchar(40)");
    a.not_null = true;
    a.default = Some("'ALGORITHM=INSTANT'".into());
    let m = Migration::adding("typed_instant", a);
    let plan = zerodown::plan(&url(&db), &m).unwrap();
    assert!(plan.single_step);
    let add = &plan.steps[0].sql[0];
    assert!(
        add.sql
            .ends_with("DEFAULT 'ALGORITHM=INSTANT', ALGORITHM=INSTANT")
    );
    let Run::InstantOr { fallback } = &add.run else {
        panic!("{add:?}")
    };
    assert!(fallback.ends_with("DEFAULT 'ALGORITHM=INSTANT', ALGORITHM=INPLACE, LOCK=NONE"));
    assert!(
        zerodown::plan::render_text(&plan)
            .contains(&format!("if the server refuses INSTANT: {fallback}"))
    );

    let (out, notes) = start(&db, &m, &quick(false));
    assert_eq!(out.unwrap(), StartOutcome::Completed);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("the server refused ALGORITHM=INSTANT")),
        "{notes:?}"
    );
    let (_, nullable, default, _) = column(&mut c, "tag").unwrap();
    assert_eq!(nullable, "NO");
    assert_eq!(default.as_deref(), Some("'ALGORITHM=INSTANT'"));
    let wrong: i64 = one(
        &mut c,
        "SELECT count(*) FROM accounts WHERE tag <> 'ALGORITHM=INSTANT'",
    );
    assert_eq!(wrong, 0, "the default's text is what the user wrote");

    // The rollback's DROP COLUMN … INSTANT is refused the same way and falls back as planned.
    let mut a = AddColumn::new("accounts", "tag2", "varchar(60)");
    a.backfill = Some("concat('ALGORITHM=INSTANT ', email)".into());
    let m = Migration::adding("typed_instant_undo", a);
    let (out, notes) = start(&db, &m, &quick(false));
    assert!(matches!(out.unwrap(), StartOutcome::Backfilled { .. }));
    assert!(
        notes
            .iter()
            .any(|n| n.contains("refused ALGORITHM=INSTANT"))
    );
    let wrong: i64 = one(
        &mut c,
        "SELECT count(*) FROM accounts WHERE tag2 <> concat('ALGORITHM=INSTANT ', email)",
    );
    assert_eq!(wrong, 0);
    zerodown::rollback(
        &url(&db),
        "typed_instant_undo",
        &Settings::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(column(&mut c, "tag2").is_none());
    assert!(leftovers(&mut c).is_empty());
}

#[test]
fn only_the_planned_copy_asks_for_allow_copy() {
    let Some((db, mut c)) = setup("my_typed_copy", 300, "") else {
        return;
    };
    let mut a = AddColumn::new("accounts", "note", "varchar(160)");
    a.backfill = Some(format!("concat(email, ' {WORDS}')"));
    a.check = Some("note <> ' MODIFY COLUMN ALGORITHM=INSTANT'".into());
    let m = Migration::adding("typed_copy", a);
    let plan = zerodown::plan(&url(&db), &m).unwrap();
    let copies: Vec<&str> = plan
        .steps
        .iter()
        .flat_map(|s| &s.sql)
        .filter(|q| q.run == Run::Copy)
        .map(|q| q.sql.as_str())
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(copies[0].contains("CHECK ("));

    // Without --allow-copy start refuses before changing anything.
    let (out, _) = start(&db, &m, &quick(false));
    match out {
        Err(Error::Refused(m)) => assert!(m.contains("--allow-copy"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(column(&mut c, "note").is_none());

    let (out, _) = start(&db, &m, &quick(true));
    assert!(matches!(out.unwrap(), StartOutcome::Backfilled { .. }));
    complete(&db, "typed_copy", &quick(true)).unwrap();
    let wrong: i64 = one(
        &mut c,
        &format!("SELECT count(*) FROM accounts WHERE note <> concat(email, ' {WORDS}')"),
    );
    assert_eq!(wrong, 0);
    let refused = c.query_drop(
        "INSERT INTO accounts (email, note) VALUES ('x@x', ' MODIFY COLUMN ALGORITHM=INSTANT')",
    );
    assert!(refused.is_err(), "the CHECK holds, its text intact");
    assert!(leftovers(&mut c).is_empty());
}
