//! Typed statements on real PostgreSQL 13–18: how a step runs comes from its plan's `Run`, never from
//! its text. SQL keywords inside a user's default, backfill or CHECK change nothing, and a stored plan
//! PostgreSQL cannot run is refused with a clear message before anything of its step runs.

#[macro_use]
mod support;

use postgres::Client;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::PgTestDb;
use zerodown::plan::{Plan, Run};
use zerodown::spec::{AddColumn, Migration};
use zerodown::{DatabaseUrl, Event, Settings};

on_each_major!(
    keywords_in_expressions_change_nothing,
    an_online_undo_runs_from_its_run_kind,
    a_stored_plan_postgres_cannot_run_is_refused,
);

fn setup(major: u32, name: &str) -> Option<(PgTestDb, Client)> {
    let db = support::pg(major)?.fresh_database(name);
    let mut c = db.connect();
    c.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, balance bigint NOT NULL);
         INSERT INTO accounts (email, balance) SELECT 'u' || g || '@x', g FROM generate_series(1, 300) g;",
    )
    .unwrap();
    Some((db, c))
}

fn url(db: &PgTestDb) -> DatabaseUrl {
    DatabaseUrl::parse(db.url()).unwrap()
}

fn quick() -> Settings {
    Settings {
        quiet_period: Some(Duration::ZERO),
        batch_time: Some(Duration::from_millis(10)),
        ..Settings::default()
    }
}

fn one<T: postgres::types::FromSqlOwned>(c: &mut Client, sql: &str) -> T {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// zerodown's scaffolding and anything left half-done: triggers, its schema's objects, NOT VALID
/// constraints, INVALID indexes.
fn leftovers(c: &mut Client) -> Vec<String> {
    c.query(
        "SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgname LIKE 'zd\\_%'
         UNION ALL SELECT 'object ' || relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'zerodown' AND relname NOT LIKE 'migrations%'
         UNION ALL SELECT 'constraint ' || conname FROM pg_constraint WHERE NOT convalidated
         UNION ALL SELECT 'index ' || indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The index of the plan's first online step.
fn online_step(plan: &Plan) -> usize {
    plan.steps
        .iter()
        .position(|s| matches!(s.sql.first().map(|s| &s.run), Some(Run::OnlineBuild { .. })))
        .expect("an online build step")
}

/// A default that reads like an index drop and a CHECK that reads like a build run start → complete
/// as planned: the default and CHECK hold exactly that text, and the one index is built online.
fn keywords_in_expressions_change_nothing(major: u32) {
    let Some((db, mut c)) = setup(major, "typed_keywords") else {
        return;
    };
    let mut add = AddColumn::new("accounts", "note", "text");
    add.not_null = true;
    add.default = Some("'DROP INDEX CONCURRENTLY x'".into());
    add.backfill = Some("'DROP INDEX CONCURRENTLY ' || email".into());
    add.check = Some("note <> 'CREATE INDEX CONCURRENTLY'".into());
    add.index = true;
    let m = Migration::adding("0070_note", add);
    let plan = zerodown::plan(&url(&db), &m).unwrap();
    // Only the index build runs online; every statement holding the user's text runs in its step.
    for s in plan.steps.iter().flat_map(|s| &s.sql) {
        let online = matches!(s.run, Run::OnlineBuild { .. });
        assert_eq!(online, s.sql.starts_with("CREATE INDEX"), "{s}");
    }
    zerodown::start(
        &url(&db),
        &m,
        &quick(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    zerodown::complete(
        &url(&db),
        "0070_note",
        &quick(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM accounts WHERE note = 'DROP INDEX CONCURRENTLY ' || email"
        ),
        300
    );
    c.batch_execute("INSERT INTO accounts (email, balance) VALUES ('new@x', 1)")
        .unwrap();
    assert_eq!(
        one::<String>(&mut c, "SELECT note FROM accounts WHERE email = 'new@x'"),
        "DROP INDEX CONCURRENTLY x"
    );
    let err = c
        .batch_execute("INSERT INTO accounts (email, balance, note) VALUES ('b@x', 1, 'CREATE INDEX CONCURRENTLY')")
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::CHECK_VIOLATION)
    );
    assert!(one::<bool>(
        &mut c,
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'note'"
    ));
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = 'accounts'::regclass AND a.attname = 'note' AND i.indisvalid"
        ),
        1
    );
    assert_eq!(leftovers(&mut c), Vec::<String>::new());
}

/// A complete stopped right after its unique build is rolled back: the undo (DROP INDEX
/// CONCURRENTLY) runs online because its plan says so, with the same words in the backfill.
fn an_online_undo_runs_from_its_run_kind(major: u32) {
    let Some((db, mut c)) = setup(major, "typed_undo") else {
        return;
    };
    let mut add = AddColumn::new("accounts", "tag", "text");
    add.backfill = Some("'DROP INDEX CONCURRENTLY ' || id".into());
    add.unique = true;
    let m = Migration::adding("0071_tag", add);
    let plan = zerodown::plan(&url(&db), &m).unwrap();
    let build = online_step(&plan);
    assert!(matches!(
        plan.steps[build].undo[0].run,
        Run::OnlineBuild {
            index: Some(_),
            strict: false
        }
    ));
    zerodown::start(
        &url(&db),
        &m,
        &quick(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    let cancel = AtomicBool::new(false);
    let r = zerodown::complete(
        &url(&db),
        "0071_tag",
        &quick(),
        &mut |e| {
            if let Event::StepDone { index, .. } = e
                && index == build
            {
                cancel.store(true, Ordering::SeqCst);
            }
        },
        &cancel,
    );
    assert!(r.is_err(), "complete did not stop after the build");
    let built: i64 = one(
        &mut c,
        "SELECT count(*) FROM pg_index WHERE indrelid = 'accounts'::regclass AND NOT indisprimary",
    );
    assert_eq!(built, 1, "the build step ran");
    zerodown::rollback(&url(&db), "0071_tag", &Settings::default(), &mut |_| {}).unwrap();
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM pg_index WHERE indrelid = 'accounts'::regclass AND NOT indisprimary"
        ),
        0
    );
    assert!(!one::<bool>(
        &mut c,
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'tag' AND NOT attisdropped)"
    ));
    assert_eq!(leftovers(&mut c), Vec::<String>::new());
}

/// A stored plan whose build says it runs as MySQL's INSTANT, or whose backfill has no fill, is
/// refused with a message naming the step; nothing of that step runs and nothing panics.
fn a_stored_plan_postgres_cannot_run_is_refused(major: u32) {
    let Some((db, mut c)) = setup(major, "typed_refused") else {
        return;
    };
    let mut add = AddColumn::new("accounts", "ix", "text");
    add.backfill = Some("email".into());
    add.index = true;
    let m = Migration::adding("0072_ix", add);
    zerodown::start(
        &url(&db),
        &m,
        &quick(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    let stored: String = one(&mut c, "SELECT plan FROM zerodown.migrations");
    let mut plan: Plan = serde_json::from_str(&stored).unwrap();
    let build = online_step(&plan);
    let fallback = plan.steps[build].sql[0].sql.clone();
    plan.steps[build].sql[0].run = Run::InstantOr { fallback };
    c.execute(
        "UPDATE zerodown.migrations SET plan = $1",
        &[&serde_json::to_string(&plan).unwrap()],
    )
    .unwrap();
    let err = zerodown::complete(
        &url(&db),
        "0072_ix",
        &quick(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&format!(
            "step {} of the stored plan cannot run on PostgreSQL",
            build + 1
        )),
        "{err}"
    );
    assert_eq!(
        one::<i64>(
            &mut c,
            "SELECT count(*) FROM pg_index WHERE indrelid = 'accounts'::regclass AND NOT indisprimary"
        ),
        0,
        "the refused build ran"
    );

    // A plan with a backfill step but no fill: refused, not a panic.
    let mut add = AddColumn::new("accounts", "other", "text");
    add.backfill = Some("email".into());
    let m = Migration::adding("0073_other", add);
    let cancel = AtomicBool::new(false);
    let _ = zerodown::start(
        &url(&db),
        &m,
        &quick(),
        &mut |e| {
            if let Event::StepDone { .. } = e {
                cancel.store(true, Ordering::SeqCst);
            }
        },
        &cancel,
    );
    let stored: String = one(
        &mut c,
        "SELECT plan FROM zerodown.migrations WHERE name = '0073_other'",
    );
    let mut plan: Plan = serde_json::from_str(&stored).unwrap();
    plan.ops[0].fill = None;
    c.execute(
        "UPDATE zerodown.migrations SET plan = $1 WHERE name = '0073_other'",
        &[&serde_json::to_string(&plan).unwrap()],
    )
    .unwrap();
    let err = zerodown::start(
        &url(&db),
        &m,
        &quick(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("has backfill steps but no column to fill"),
        "{err}"
    );
}
