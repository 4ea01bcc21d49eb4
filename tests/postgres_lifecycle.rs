//! The add-column lifecycle on real PostgreSQL 13, 14, 15, 16, 17 and 18 (tests/support starts the servers): every rule
//! the PostgreSQL planner relies on, proven on the server — relfilenode unchanged where a step claims
//! catalog-only, the lock mode of each step seen in pg_locks — plus writers during the window, a long
//! transaction in the way, rollback from each phase, and bad input.

#[macro_use]
mod support;

use postgres::{Client, NoTls};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::PgTestDb;
use zerodown::plan::{Action, Run};
use zerodown::spec::{AddColumn, Dialect, Migration};
use zerodown::{DatabaseUrl, Event, Settings, StartOutcome, Status};

const TIER_EXPR: &str = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END";

/// A fresh database with `accounts(id bigserial PK, email text, balance bigint)` and `rows` rows; the
/// application role may read and write it.
fn setup(major: u32, name: &str, rows: i64) -> Option<(PgTestDb, Client, String)> {
    let pg = support::pg(major)?;
    let db = pg.fresh_database(name);
    let app_url = db.create_app_role();
    let role = format!("{}_app", db.name);
    let mut c = db.connect();
    c.batch_execute(&format!(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, balance bigint NOT NULL);
         INSERT INTO accounts (email, balance) SELECT 'u' || g || '@x', (g * 7919) % 20000 FROM generate_series(1, {rows}) g;
         GRANT SELECT, INSERT, UPDATE, DELETE ON accounts TO \"{role}\";
         GRANT USAGE ON SEQUENCE accounts_id_seq TO \"{role}\";
         ANALYZE accounts;"
    ))
    .unwrap();
    Some((db, c, app_url))
}

fn url(db: &PgTestDb) -> DatabaseUrl {
    DatabaseUrl::parse(db.url()).unwrap()
}

fn migration(name: &str, f: impl FnOnce(&mut AddColumn)) -> Migration {
    let mut a = AddColumn::new("accounts", "c", "text");
    f(&mut a);
    Migration::adding(name, a)
}

fn tier_migration() -> Migration {
    migration("0042_tier", |a| {
        a.column = "tier".into();
        a.not_null = true;
        a.backfill = Some(TIER_EXPR.into());
        a.default = Some("'standard'".into());
        a.check = Some("tier IN ('gold', 'standard')".into());
        a.index = true;
    })
}

fn quick() -> Settings {
    Settings {
        quiet_period: Some(Duration::ZERO),
        batch_time: Some(Duration::from_millis(10)),
        ..Settings::default()
    }
}

fn start(db: &PgTestDb, m: &Migration, s: &Settings) -> zerodown::Result<StartOutcome> {
    zerodown::start(&url(db), m, s, &mut |_| {}, &AtomicBool::new(false))
}

fn complete(db: &PgTestDb, name: &str, s: &Settings) -> zerodown::Result<()> {
    zerodown::complete(&url(db), name, s, &mut |_| {}, &AtomicBool::new(false))
}

fn rollback(db: &PgTestDb, name: &str) -> zerodown::Result<()> {
    zerodown::rollback(&url(db), name, &Settings::default(), &mut |_| {})
}

fn one<T: postgres::types::FromSqlOwned>(c: &mut Client, sql: &str) -> T {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

fn relfilenode(c: &mut Client) -> u32 {
    one(
        c,
        "SELECT relfilenode FROM pg_class WHERE oid = 'accounts'::regclass",
    )
}

/// zerodown's scaffolding left on the database: triggers and functions, its sequences, NOT VALID
/// constraints and invalid indexes; with `everything`, also its validated constraints and indexes
/// (which a completed migration keeps and a rollback must remove).
fn leftovers(c: &mut Client, everything: bool) -> Vec<String> {
    let rows = c
        .query(
            "SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgname LIKE 'zd\\_%'
             UNION ALL SELECT 'function ' || proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'zerodown'
             UNION ALL SELECT 'relation ' || relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'zerodown' AND relname NOT LIKE 'migrations%'
             UNION ALL SELECT 'constraint ' || conname || CASE WHEN convalidated THEN '' ELSE ' (NOT VALID)' END FROM pg_constraint WHERE (conname LIKE 'zd\\_%' AND $1) OR NOT convalidated
             UNION ALL SELECT 'index ' || indexrelid::regclass::text || CASE WHEN indisvalid THEN '' ELSE ' (INVALID)' END FROM pg_index WHERE (indexrelid::regclass::text LIKE '%zd\\_%' AND $1) OR NOT indisvalid",
            &[&everything],
        )
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

fn column_exists(c: &mut Client, column: &str) -> bool {
    c.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = $1 AND NOT attisdropped)",
        &[&column],
    )
    .unwrap()
    .get(0)
}

/// The design's example end to end, with an old application version (never writes `tier`) and a new
/// one (writes it) working as a non-superuser role through the whole window; no row may break the
/// window semantics, and every step is catalog-only or online (the table is never rewritten).
fn derived_lifecycle_with_old_and_new_writers(major: u32) {
    let Some((db, mut c, app_url)) = setup(major, "lifecycle", 30_000) else {
        return;
    };
    let file_before = relfilenode(&mut c);
    let stop = Arc::new(AtomicBool::new(false));
    // Rows whose tier the new application set: id -> value it set.
    let set_by_new: Arc<Mutex<HashMap<i64, String>>> = Arc::default();
    let old_ids: Arc<Mutex<Vec<i64>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let started = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    {
        // Old version: inserts without tier, updates balances of even rows.
        let (stop, started, app_url, old_ids, errors) = (
            stop.clone(),
            started.clone(),
            app_url.clone(),
            old_ids.clone(),
            errors.clone(),
        );
        writers.push(std::thread::spawn(move || {
            let mut app = Client::connect(&app_url, NoTls).unwrap();
            let mut i = 0i64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let r = if i % 2 == 0 {
                    app.query_one(
                        "INSERT INTO accounts (email, balance) VALUES ('old' || $1::int8 || '@x', $1::int8 * 37 % 20000) RETURNING id",
                        &[&i],
                    )
                    .map(|r| old_ids.lock().unwrap().push(r.get(0)))
                } else {
                    app.execute(
                        "UPDATE accounts SET balance = balance + 9000 WHERE id = $1::int8 * 2 % 30000",
                        &[&i],
                    )
                    .map(|_| ())
                };
                if let Err(e) = r {
                    errors.lock().unwrap().push(format!("old writer: {e}"));
                }
                if started.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_micros(300));
                } else {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }));
    }
    {
        // New version: writes tier itself, on odd rows and on its own inserts.
        let (stop, app_url, set_by_new, errors) = (
            stop.clone(),
            app_url.clone(),
            set_by_new.clone(),
            errors.clone(),
        );
        writers.push(std::thread::spawn(move || {
            let mut app = Client::connect(&app_url, NoTls).unwrap();
            let mut i = 0i64;
            let has_tier = |app: &mut Client| -> bool {
                app.query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'tier' AND NOT attisdropped)",
                    &[],
                )
                .unwrap()
                .get(0)
            };
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                if !has_tier(&mut app) {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
                let r = match i % 3 {
                    // An INSERT that sets the column, against what the expression would say.
                    0 => app
                        .query_one(
                            "INSERT INTO accounts (email, balance, tier) VALUES ('new@x', 1, 'gold') RETURNING id, tier",
                            &[],
                        )
                        .map(|r| {
                            set_by_new.lock().unwrap().insert(r.get(0), r.get(1));
                        }),
                    // An UPDATE of a source column that also changes the column.
                    1 => app
                        .query_opt(
                            "UPDATE accounts SET balance = balance + 1, tier = CASE WHEN tier = 'gold' THEN 'standard' ELSE 'gold' END WHERE id = $1::int8 * 2 % 30000 + 1 RETURNING id, tier",
                            &[&i],
                        )
                        .map(|r| {
                            if let Some(r) = r {
                                set_by_new.lock().unwrap().insert(r.get(0), r.get(1));
                            }
                        }),
                    // An UPDATE of the column alone.
                    _ => app
                        .query_opt(
                            "UPDATE accounts SET tier = CASE WHEN balance > 10000 THEN 'standard' ELSE 'gold' END WHERE id = $1::int8 * 2 % 30000 + 1 RETURNING id, tier",
                            &[&(i + 7)],
                        )
                        .map(|r| {
                            if let Some(r) = r {
                                set_by_new.lock().unwrap().insert(r.get(0), r.get(1));
                            }
                        }),
                };
                if let Err(e) = r {
                    errors.lock().unwrap().push(format!("new writer: {e}"));
                }
                std::thread::sleep(Duration::from_micros(300));
            }
        }));
    }
    // The old version is writing before the migration begins.
    support::wait_for("the old writer's first inserts", || {
        old_ids.lock().unwrap().len() >= 5
    });
    started.store(true, Ordering::SeqCst);
    let m = tier_migration();
    let outcome = start(&db, &m, &quick()).unwrap();
    assert!(
        matches!(outcome, StartOutcome::Backfilled { rows } if rows >= 30_000),
        "{outcome:?}"
    );
    // Both versions go on writing in the window (after the backfill, only the triggers keep the
    // column right), however many writes they managed while it ran.
    let (old_then, new_then) = (
        old_ids.lock().unwrap().len(),
        set_by_new.lock().unwrap().len(),
    );
    support::wait_for("writes of both versions after the backfill", || {
        old_ids.lock().unwrap().len() >= old_then.max(20) + 10
            && set_by_new.lock().unwrap().len() >= new_then.max(20) + 10
            || !errors.lock().unwrap().is_empty()
    });
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "{} application writes failed: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let set_by_new = set_by_new.lock().unwrap().clone();
    assert!(set_by_new.len() > 20, "the new writer barely ran");
    assert!(
        old_ids.lock().unwrap().len() > 20,
        "the old writer barely ran"
    );
    // The window semantics, row by row.
    let rows = c
        .query(
            &format!("SELECT id, tier, {TIER_EXPR} FROM accounts ORDER BY id"),
            &[],
        )
        .unwrap();
    let mut broken = Vec::new();
    for r in &rows {
        let id: i64 = r.get(0);
        let tier: Option<String> = r.get(1);
        let derived: String = r.get(2);
        let want = set_by_new.get(&id).cloned().unwrap_or(derived);
        if tier.as_deref() != Some(want.as_str()) {
            broken.push(format!("id {id}: {tier:?}, want {want}"));
        }
    }
    assert!(
        broken.is_empty(),
        "{} rows break the window semantics: {:?}",
        broken.len(),
        &broken[..broken.len().min(10)]
    );
    // The guard counted the old version's inserts.
    let plan = zerodown::plan(&url(&db), &m).unwrap();
    // (inserts before the triggers went on are not counted.)
    let counted = zerodown::status(&url(&db), Some("0042_tier")).unwrap()[0]
        .old_writer_inserts
        .unwrap();
    assert!(
        counted > 0 && counted <= old_ids.lock().unwrap().len() as i64,
        "{counted}"
    );
    // complete: NOT NULL, CHECK, index, default; scaffolding off.
    complete(&db, "0042_tier", &quick()).unwrap();
    assert_eq!(
        zerodown::status(&url(&db), Some("0042_tier")).unwrap()[0].status,
        Status::Completed
    );
    assert_eq!(leftovers(&mut c, false), Vec::<String>::new());
    let (notnull, default): (bool, Option<String>) = {
        let r = c
            .query_one(
                "SELECT a.attnotnull, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 WHERE a.attrelid = 'accounts'::regclass AND a.attname = 'tier'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(notnull);
    assert_eq!(default.as_deref(), Some("'standard'::text"));
    let checks: i64 = one(
        &mut c,
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'accounts'::regclass AND contype = 'c' AND convalidated",
    );
    assert_eq!(checks, 1, "the tier CHECK (and only it) remains, validated");
    let ix_valid: bool = one(
        &mut c,
        "SELECT bool_and(indisvalid) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = 'accounts'::regclass AND a.attname = 'tier'",
    );
    assert!(ix_valid);
    let mut app = Client::connect(&app_url, NoTls).unwrap();
    assert!(
        app.execute(
            "INSERT INTO accounts (email, balance, tier) VALUES ('bad@x', 1, 'platinum')",
            &[]
        )
        .is_err()
    );
    let t: String = app
        .query_one(
            "INSERT INTO accounts (email, balance) VALUES ('late@x', 99999) RETURNING tier",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        t, "standard",
        "after complete the default serves writers that omit the column"
    );
    assert_eq!(
        relfilenode(&mut c),
        file_before,
        "no step rewrote the table"
    );
    assert!(
        plan.steps
            .iter()
            .all(|s| s.cost != zerodown::plan::Cost::Rewrite)
    );
}

/// A literal default and a time default are one catalog-only statement: the table's file is the same.
fn constant_and_time_defaults_are_catalog_only(major: u32) {
    let Some((db, mut c, _)) = setup(major, "catalog_only", 2_000) else {
        return;
    };
    for (name, sql) in [
        (
            "0001_active",
            "ALTER TABLE accounts ADD COLUMN active boolean NOT NULL DEFAULT true",
        ),
        (
            "0002_seen",
            "ALTER TABLE accounts ADD COLUMN seen_at timestamptz NOT NULL DEFAULT now()",
        ),
        (
            "0003_later",
            "ALTER TABLE accounts ADD COLUMN later timestamptz DEFAULT now() + interval '1 day'",
        ),
        (
            "0004_label",
            "ALTER TABLE accounts ADD COLUMN label text DEFAULT lower('X') || 'y'",
        ),
    ] {
        let m = Migration::from_sql(name, sql, Dialect::Postgres, "--sql").unwrap();
        let plan = zerodown::plan(&url(&db), &m).unwrap();
        assert!(plan.single_step, "{sql}: {:#?}", plan.steps);
        let before = relfilenode(&mut c);
        assert_eq!(
            start(&db, &m, &Settings::default()).unwrap(),
            StartOutcome::Completed
        );
        assert_eq!(relfilenode(&mut c), before, "{sql} rewrote the table");
    }
    let n: i64 = one(
        &mut c,
        "SELECT count(DISTINCT seen_at) FROM accounts WHERE active",
    );
    assert_eq!(n, 1, "a time default gives old rows one value");
    let n: i64 = one(&mut c, "SELECT count(*) FROM accounts WHERE label = 'xy'");
    assert_eq!(n, 2_000);
}

/// Volatility comes from the catalog: built-in and user functions alike, by pg_proc.provolatile.
fn default_volatility_is_read_from_the_catalog(major: u32) {
    let Some((db, mut c, _)) = setup(major, "volatility", 10) else {
        return;
    };
    c.batch_execute(
        "CREATE FUNCTION public.stable_label() RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'x' $$;
         CREATE FUNCTION public.fresh_label() RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT 'x' $$;
         CREATE SEQUENCE public.numbers;",
    )
    .unwrap();
    for (ty, default, catalog_only) in [
        ("double precision", "random()", false),
        ("uuid", "gen_random_uuid()", false),
        ("timestamptz", "clock_timestamp()", false),
        ("bigint", "nextval('public.numbers')", false),
        ("text", "public.fresh_label()", false),
        ("text", "public.stable_label()", true),
        ("timestamptz", "CURRENT_TIMESTAMP", true),
        ("int", "1 + 1", true),
        ("int", "(random() * 0)::int + 1", false),
    ] {
        let m = migration("0009_v", |a| {
            a.column = "v".into();
            a.data_type = ty.into();
            a.default = Some(default.into());
        });
        let plan = zerodown::plan(&url(&db), &m).unwrap_or_else(|e| panic!("{default}: {e}"));
        assert_eq!(
            plan.single_step, catalog_only,
            "{default}: {:#?}",
            plan.steps
        );
        if !catalog_only {
            assert!(
                !plan.steps[0].sql[0].sql.contains("DEFAULT"),
                "{default}: a volatile default must not go on at expand: {}",
                plan.steps[0].sql[0]
            );
        }
    }
}

/// `ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid()` from plain SQL: every row its own value,
/// no rewrite, the default in place afterwards.
fn volatile_default_from_plain_sql(major: u32) {
    let Some((db, mut c, app_url)) = setup(major, "token", 5_000) else {
        return;
    };
    let m = Migration::from_sql(
        "0003_token",
        "ALTER TABLE accounts ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();",
        Dialect::Postgres,
        "--sql",
    )
    .unwrap();
    let before = relfilenode(&mut c);
    start(&db, &m, &quick()).unwrap();
    let mut app = Client::connect(&app_url, NoTls).unwrap();
    app.execute(
        "INSERT INTO accounts (email, balance) VALUES ('w@x', 1)",
        &[],
    )
    .unwrap();
    complete(&db, "0003_token", &quick()).unwrap();
    app.execute(
        "INSERT INTO accounts (email, balance) VALUES ('v@x', 1)",
        &[],
    )
    .unwrap();
    let distinct: i64 = one(&mut c, "SELECT count(DISTINCT token) FROM accounts");
    assert_eq!(distinct, 5_002);
    let notnull: bool = one(
        &mut c,
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'token'",
    );
    assert!(notnull);
    assert_eq!(relfilenode(&mut c), before);
    assert_eq!(leftovers(&mut c, false), Vec::<String>::new());
}

on_each_major!(
    derived_lifecycle_with_old_and_new_writers,
    every_step_takes_the_lock_it_claims,
    a_long_transaction_never_queues_readers_behind_zerodown,
    rollback_from_each_phase_leaves_nothing,
    a_failed_or_invalid_index_build_is_dropped_and_rebuilt,
    bad_input_is_refused_before_any_change,
    the_cli_drives_the_whole_lifecycle,
    constant_and_time_defaults_are_catalog_only,
    default_volatility_is_read_from_the_catalog,
    volatile_default_from_plain_sql,
);

/// `ShareRowExclusiveLock` -> `SHARE ROW EXCLUSIVE`.
fn mode_words(mode: &str) -> String {
    let mut out = String::new();
    for ch in mode.trim_end_matches("Lock").chars() {
        if ch.is_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

fn rank(mode: &str) -> usize {
    [
        "AccessShareLock",
        "RowShareLock",
        "RowExclusiveLock",
        "ShareUpdateExclusiveLock",
        "ShareLock",
        "ShareRowExclusiveLock",
        "ExclusiveLock",
        "AccessExclusiveLock",
    ]
    .iter()
    .position(|m| *m == mode)
    .unwrap_or(0)
}

/// The strongest lock this session holds on `table`.
fn strongest_lock(tx: &mut postgres::Transaction, table: &str) -> String {
    let rows = tx
        .query(
            "SELECT mode FROM pg_locks WHERE locktype = 'relation' AND relation = to_regclass($1) AND pid = pg_backend_pid() AND granted",
            &[&table],
        )
        .unwrap();
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .max_by_key(|m| rank(m))
        .unwrap_or_default()
}

/// Runs each step's exact SQL by hand, as the engine would, and checks in pg_locks that it takes the
/// lock the plan claims, that catalog-only and online steps never rewrite the table, that SET NOT NULL
/// on 13–17 skips its scan thanks to the validated CHECK (DEBUG1), and that an online index build
/// holds only SHARE UPDATE EXCLUSIVE while it waits (writers go on).
fn every_step_takes_the_lock_it_claims(major: u32) {
    let Some((db, mut c, _)) = setup(major, "locks", 3_000) else {
        return;
    };
    c.batch_execute(
        "CREATE TABLE plans (id bigint PRIMARY KEY); INSERT INTO plans VALUES (1), (2);
         CREATE SCHEMA zerodown;",
    )
    .unwrap();
    let notices: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut watched = {
        let notices = notices.clone();
        let mut config: postgres::Config = db.url().parse().unwrap();
        config.notice_callback(move |n| notices.lock().unwrap().push(n.message().to_string()));
        config.connect(NoTls).unwrap()
    };
    let tier = tier_migration();
    let plan_ref = migration("0043_plan", |a| {
        a.column = "plan_id".into();
        a.data_type = "bigint".into();
        a.backfill = Some("CASE WHEN balance > 10000 THEN 2 ELSE 1 END".into());
        a.references = Some(zerodown::spec::Reference {
            table: "plans".into(),
            column: None,
        });
        a.unique = false;
    });
    let token = migration("0044_token", |a| {
        a.column = "token".into();
        a.data_type = "uuid".into();
        a.not_null = true;
        a.default = Some("gen_random_uuid()".into());
        a.unique = true;
    });
    let file = relfilenode(&mut c);
    let mut checked = 0;
    for m in [tier, plan_ref, token] {
        let plan = zerodown::plan(&url(&db), &m).unwrap();
        let fill = plan.ops[0].fill.clone().unwrap();
        let column = plan.ops[0].column.clone();
        for step in &plan.steps {
            match step.action {
                Action::Ddl | Action::Finish => {}
                Action::Backfill => {
                    c.batch_execute(&format!(
                        "UPDATE accounts SET {} = ({}) WHERE {} IS NULL",
                        column, fill.expr, column
                    ))
                    .unwrap();
                    continue;
                }
                _ => continue,
            }
            if matches!(step.sql[0].run, Run::OnlineBuild { .. }) {
                // A writer's open transaction makes the build wait: meanwhile it holds SHARE UPDATE
                // EXCLUSIVE only, and another writer still gets through.
                let mut writer = db.connect();
                let mut wtx = writer.transaction().unwrap();
                wtx.execute("UPDATE accounts SET balance = balance WHERE id = 1", &[])
                    .unwrap();
                let url_s = db.url().to_string();
                let sql = step.sql[0].sql.clone();
                let build = std::thread::spawn(move || {
                    let mut b =
                        Client::connect(&format!("{url_s}?application_name=zd-build"), NoTls)
                            .unwrap();
                    b.batch_execute(&sql)
                });
                let mut mode = String::new();
                support::wait_for("the build's lock", || {
                    let r = c
                        .query_opt(
                            "SELECT l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                             WHERE a.application_name = 'zd-build' AND l.relation = 'accounts'::regclass AND l.granted",
                            &[],
                        )
                        .unwrap();
                    r.map(|r| mode = r.get(0)).is_some()
                });
                // NOWAIT: the writer's lock is refused at once if the build's conflicts with it,
                // whatever the machine's speed.
                let mut other = db.connect();
                other
                    .batch_execute(
                        "BEGIN; LOCK TABLE accounts IN ROW EXCLUSIVE MODE NOWAIT;
                         UPDATE accounts SET balance = balance WHERE id = 2; COMMIT",
                    )
                    .unwrap_or_else(|e| panic!("a writer waited on the build: {e}"));
                wtx.commit().unwrap();
                build.join().unwrap().unwrap();
                assert_eq!(
                    mode_words(&mode),
                    "SHARE UPDATE EXCLUSIVE",
                    "{}",
                    step.sql[0]
                );
                assert!(step.lock.mode.starts_with("SHARE UPDATE EXCLUSIVE"));
                checked += 1;
                continue;
            }
            notices.lock().unwrap().clear();
            let mut tx = watched.transaction().unwrap();
            tx.batch_execute("SET LOCAL client_min_messages = debug1")
                .unwrap();
            for s in &step.sql {
                tx.batch_execute(&s.sql)
                    .unwrap_or_else(|e| panic!("{s}: {e}"));
            }
            let mode = mode_words(&strongest_lock(&mut tx, "accounts"));
            if step.sql[0].sql.contains("FOREIGN KEY") {
                assert_eq!(
                    mode_words(&strongest_lock(&mut tx, "plans")),
                    "SHARE ROW EXCLUSIVE"
                );
            }
            if step.sql[0].sql.contains("VALIDATE CONSTRAINT \"zd_fk") {
                assert_eq!(mode_words(&strongest_lock(&mut tx, "plans")), "ROW SHARE");
            }
            tx.commit().unwrap();
            assert!(
                step.lock.mode.starts_with(&mode),
                "{:?}: pg_locks shows {mode}, the plan says {}",
                step.sql,
                step.lock.mode
            );
            let seen = notices.lock().unwrap().clone();
            if step.sql[0].sql.contains("SET NOT NULL") {
                assert!(
                    seen.iter()
                        .any(|n| n.contains("sufficient to prove that it does not contain nulls")),
                    "SET NOT NULL scanned: {seen:?}"
                );
                assert!(
                    !seen.iter().any(|n| n.contains("verifying table")),
                    "{seen:?}"
                );
            }
            if step.cost == zerodown::plan::Cost::CatalogOnly {
                assert!(
                    !seen
                        .iter()
                        .any(|n| n.contains("verifying table") || n.contains("rewriting table")),
                    "{:?} claims catalog-only: {seen:?}",
                    step.sql
                );
            }
            assert_eq!(
                relfilenode(&mut c),
                file,
                "{:?} rewrote the table",
                step.sql
            );
            checked += 1;
        }
    }
    assert!(checked >= 14, "only {checked} steps checked");
    if major >= 18 {
        let n: String = one(
            &mut c,
            "SELECT conname FROM pg_constraint WHERE conrelid = 'accounts'::regclass AND contype = 'n' AND conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'tier')]::int2[]",
        );
        assert_eq!(n, "accounts_tier_not_null");
    }
    assert_eq!(leftovers(&mut c, false), Vec::<String>::new());
}

/// An application transaction holds the table: zerodown's ALTER waits at most the lock timeout per
/// attempt, so readers queued behind it go on between attempts while the blocker still holds the
/// table; it names the blocker, and gets through once the blocker ends.
///
/// Proven by what happens, whatever the machine's speed: while the blocker holds the table, the
/// reader keeps completing queries across several of zerodown's lock retries (had zerodown's ALTER
/// stayed queued, every reader would wait for the blocker), and `start` does not finish.
fn a_long_transaction_never_queues_readers_behind_zerodown(major: u32) {
    let Some((db, _c, app_url)) = setup(major, "long_tx", 1_000) else {
        return;
    };
    let mut blocker = Client::connect(&app_url, NoTls).unwrap();
    let blocker_pid: i32 = one(&mut blocker, "SELECT pg_backend_pid()");
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM accounts WHERE email <> 'a-secret-literal'")
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = {
        let (stop, app_url, reads) = (stop.clone(), app_url.clone(), reads.clone());
        std::thread::spawn(move || {
            let mut r = Client::connect(&app_url, NoTls).unwrap();
            while !stop.load(Ordering::SeqCst) {
                r.query_one("SELECT count(*) FROM accounts WHERE id < 50", &[])
                    .unwrap();
                reads.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let runner = {
        let (db, events) = (db.clone(), events.clone());
        std::thread::spawn(move || {
            let m = migration("0050_c", |a| a.backfill = Some("upper(email)".into()));
            let s = Settings {
                lock_timeout: Some(Duration::from_millis(100)),
                ..quick()
            };
            zerodown::start(
                &url(&db),
                &m,
                &s,
                &mut |e| {
                    if let Event::LockRetry { blocker, .. } = e {
                        events.lock().unwrap().push(blocker);
                    }
                },
                &AtomicBool::new(false),
            )
        })
    };
    let retries = || events.lock().unwrap().len();
    support::wait_for("zerodown's first lock retry", || retries() >= 1);
    // From here on the blocker holds the table through several more attempts of zerodown's.
    let (retries_then, reads_then) = (retries(), reads.load(Ordering::SeqCst));
    support::wait_for(
        "reads and lock retries while the blocker holds the table",
        || retries() >= retries_then + 3 && reads.load(Ordering::SeqCst) >= reads_then + 10,
    );
    assert!(!runner.is_finished(), "start got through a held table");
    blocker.batch_execute("COMMIT").unwrap();
    let outcome = runner.join().unwrap().unwrap();
    assert!(matches!(outcome, StartOutcome::Backfilled { .. }));
    stop.store(true, Ordering::SeqCst);
    reader.join().unwrap();
    let events = events.lock().unwrap().clone();
    assert!(!events.is_empty(), "no lock retry was reported");
    assert!(
        events[0].contains(&format!("pid {blocker_pid}"))
            && events[0].contains("idle in transaction")
            && events[0].contains("email <> ?"),
        "{events:?}"
    );
    // The blocker's statement is shown by its shape: its literals never reach a message.
    assert!(
        events.iter().all(|e| !e.contains("a-secret-literal")),
        "{events:?}"
    );
}

/// Rollback after each step of start, and from a complete that failed halfway (a VALIDATE that found
/// a bad row), leaves no trigger, function, sequence, constraint, index or column.
fn rollback_from_each_phase_leaves_nothing(major: u32) {
    let Some((db, mut c, _)) = setup(major, "rollback", 2_000) else {
        return;
    };
    let m = tier_migration();
    let steps = zerodown::plan(&url(&db), &m).unwrap().steps.len();
    let first_complete = zerodown::plan(&url(&db), &m).unwrap().first_complete_step();
    for stop_after in 0..first_complete {
        let cancel = AtomicBool::new(false);
        let r = zerodown::start(
            &url(&db),
            &m,
            &quick(),
            &mut |e| {
                if let Event::StepDone { index, .. } = e
                    && index == stop_after
                {
                    cancel.store(true, Ordering::SeqCst);
                }
            },
            &cancel,
        );
        if stop_after + 1 < first_complete {
            assert!(r.is_err(), "start did not stop after step {stop_after}");
        }
        rollback(&db, "0042_tier").unwrap();
        assert_eq!(
            leftovers(&mut c, true),
            Vec::<String>::new(),
            "after step {stop_after}"
        );
        assert!(!column_exists(&mut c, "tier"));
    }
    // complete fails at VALIDATE of the CHECK: a NOT VALID constraint is in place; rollback removes it.
    start(&db, &m, &quick()).unwrap();
    c.batch_execute("UPDATE accounts SET tier = 'platinum' WHERE id = 7")
        .unwrap();
    let err = complete(&db, "0042_tier", &quick())
        .unwrap_err()
        .to_string();
    assert!(err.contains("violated"), "{err}");
    assert!(
        leftovers(&mut c, false)
            .iter()
            .any(|l| l.contains("NOT VALID")),
        "{:?}",
        leftovers(&mut c, false)
    );
    rollback(&db, "0042_tier").unwrap();
    assert_eq!(leftovers(&mut c, true), Vec::<String>::new());
    assert!(!column_exists(&mut c, "tier"));
    let statuses: Vec<String> = c
        .query("SELECT status FROM zerodown.migrations", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(statuses.iter().all(|s| s == "rolled-back"), "{statuses:?}");
    assert!(steps > first_complete);
}

/// A unique build that fails (duplicates) drops its INVALID index at once; an INVALID index left under
/// zerodown's name (a build killed earlier) is found, dropped and built again.
fn a_failed_or_invalid_index_build_is_dropped_and_rebuilt(major: u32) {
    let Some((db, mut c, _)) = setup(major, "invalid_index", 500) else {
        return;
    };
    let unique = migration("0060_u", |a| {
        a.column = "u".into();
        a.backfill = Some("CASE WHEN id < 10 THEN 'dup' ELSE email END".into());
        a.unique = true;
    });
    start(&db, &unique, &quick()).unwrap();
    let err = complete(&db, "0060_u", &quick()).unwrap_err().to_string();
    assert!(err.contains("duplicate"), "{err}");
    let left = leftovers(&mut c, false);
    assert!(
        !left.iter().any(|l| l.contains("INVALID")),
        "the failed build left {left:?}"
    );
    c.batch_execute("UPDATE accounts SET u = email").unwrap();
    complete(&db, "0060_u", &quick()).unwrap();
    let ix = migration("0061_ix", |a| {
        a.column = "ix".into();
        a.backfill = Some("lower(email)".into());
        a.index = true;
    });
    let name = zerodown::plan(&url(&db), &ix).unwrap().ops[0]
        .objects
        .index
        .clone()
        .unwrap();
    start(&db, &ix, &quick()).unwrap();
    // A unique build under zerodown's index name fails on duplicates and stays INVALID.
    c.batch_execute("UPDATE accounts SET ix = 'same' WHERE id < 5")
        .unwrap();
    assert!(
        c.batch_execute(&format!(
            "CREATE UNIQUE INDEX CONCURRENTLY \"{name}\" ON accounts (ix)"
        ))
        .is_err()
    );
    assert!(
        leftovers(&mut c, false)
            .iter()
            .any(|l| l.contains("INVALID"))
    );
    let mut notes = Vec::new();
    zerodown::complete(
        &url(&db),
        "0061_ix",
        &quick(),
        &mut |e| {
            if let Event::Note(n) = e {
                notes.push(n)
            }
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(notes.iter().any(|n| n.contains("INVALID")), "{notes:?}");
    assert_eq!(leftovers(&mut c, false), Vec::<String>::new());
}

/// Bad input: a clear message naming the thing, never the password, and the database as it was.
fn bad_input_is_refused_before_any_change(major: u32) {
    let Some((db, mut c, app_url)) = setup(major, "bad_input", 50) else {
        return;
    };
    c.batch_execute("CREATE TABLE nokey (a int, b text)")
        .unwrap();
    let cases: Vec<(Migration, &str)> = vec![
        (
            migration("m1", |a| a.table = "nope".into()),
            "table `nope` not found",
        ),
        (
            migration("m2", |a| a.backfill = Some("no_such_fn(balance)".into())),
            "does not compile",
        ),
        (
            migration("m3", |a| a.backfill = Some("upper(nickname)".into())),
            "nickname",
        ),
        (
            migration("m4", |a| a.default = Some("'x' +".into())),
            "default",
        ),
        (
            migration("m5", |a| {
                a.table = "nokey".into();
                a.backfill = Some("b".into());
            }),
            "neither a primary key nor a unique index",
        ),
        (
            migration("m6", |a| a.data_type = "no_such_type".into()),
            "no_such_type",
        ),
        (
            migration("m7", |a| a.check = Some("c ~~~ 1".into())),
            "check",
        ),
        (
            migration("m8", |a| {
                a.data_type = "bigint".into();
                a.references = Some(zerodown::spec::Reference {
                    table: "accounts".into(),
                    column: Some("email".into()),
                });
            }),
            "neither the primary key nor UNIQUE",
        ),
    ];
    for (m, want) in &cases {
        for r in [
            zerodown::plan(&url(&db), m).map(|_| ()),
            start(&db, m, &quick()).map(|_| ()),
        ] {
            let e = r
                .expect_err(&format!("{} was accepted", m.name))
                .to_string();
            assert!(e.contains(want), "{}: {e}", m.name);
        }
    }
    let exists: bool = one(&mut c, "SELECT to_regnamespace('zerodown') IS NOT NULL");
    assert!(!exists, "bad input created zerodown's schema");
    assert!(!column_exists(&mut c, "c"));
    // Wrong password: named user and host, never the password.
    let wrong = app_url.replace(":app@", ":s3cr3t-wrong@");
    let e = zerodown::status(&DatabaseUrl::parse(&wrong).unwrap(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("password authentication failed") && e.contains("127.0.0.1"),
        "{e}"
    );
    assert!(!e.contains("s3cr3t-wrong"), "{e}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zerodown"))
        .args(["status"])
        .env("DATABASE_URL", &wrong)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && !text.contains("s3cr3t-wrong"),
        "{text}"
    );
    assert!(text.contains("password authentication failed"), "{text}");
    // A database that does not exist, and a port where nothing listens.
    let missing = db.url().replace(&db.name, "no_such_db");
    let e = zerodown::status(&DatabaseUrl::parse(&missing).unwrap(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("database `no_such_db` does not exist"), "{e}");
    let e = zerodown::status(
        &DatabaseUrl::parse("postgres://u:s3cr3t@127.0.0.1:1/x?connect_timeout=2").unwrap(),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("127.0.0.1:1") && !e.contains("s3cr3t"), "{e}");
}

/// The binary end to end on PostgreSQL: plan, start, status, complete; a second driver is refused
/// while one holds the advisory lock.
fn the_cli_drives_the_whole_lifecycle(major: u32) {
    let Some((db, mut c, _)) = setup(major, "cli", 3_000) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("0042_tier.toml");
    std::fs::write(
        &file,
        format!(
            "[add_column]\ntable = \"accounts\"\ncolumn = \"tier\"\ntype = \"text\"\nnot_null = true\nbackfill = \"{TIER_EXPR}\"\ndefault = \"'standard'\"\ncheck = \"tier IN ('gold', 'standard')\"\nindex = true\n"
        ),
    )
    .unwrap();
    let file = file.display().to_string();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_zerodown"))
            .args(args)
            .env("DATABASE_URL", db.url())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            !text.contains(&format!(":{}@", support::pg::PASSWORD)),
            "{text}"
        );
        (o.status.success(), text)
    };
    let (ok, t) = run(&["plan", &file]);
    assert!(
        ok && t.contains("SHARE UPDATE EXCLUSIVE") && t.contains(&format!("PostgreSQL {major}.")),
        "{t}"
    );
    // Another driver holds the database: start is refused at once, naming it.
    let mut held = zerodown::engine::postgres::Postgres::open(db.url()).unwrap();
    let lock = zerodown::engine::Engine::lock_driver(&mut held, "any", Duration::ZERO).unwrap();
    let (ok, t) = run(&["start", &file]);
    assert!(
        !ok && t.contains("another zerodown") && t.contains(held.run_id()),
        "{t}"
    );
    drop(lock);
    let (ok, t) = run(&["start", &file]);
    assert!(ok, "{t}");
    let (ok, t) = run(&["status", "0042_tier"]);
    assert!(ok && t.contains("backfilled"), "{t}");
    let (ok, t) = run(&["complete", "0042_tier", "--quiet-period", "0s"]);
    assert!(ok, "{t}");
    let (ok, t) = run(&["status", "0042_tier", "--format", "json"]);
    assert!(ok && t.contains("\"completed\""), "{t}");
    let nulls: i64 = one(&mut c, "SELECT count(*) FROM accounts WHERE tier IS NULL");
    assert_eq!(nulls, 0);
    assert_eq!(leftovers(&mut c, false), Vec::<String>::new());
}
