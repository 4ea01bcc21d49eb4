//! zerodown's writes to its own state on MariaDB run under the same lock guard as its DDL: each
//! attempt waits no longer than the lock timeout, a LockRetry event names the session in the way, and
//! a spent `--lock-budget` ends in the lock-budget error (and so the CLI's lock-budget exit code),
//! whether a row lock or a metadata lock holds the write up.

mod support;

use mysql::Conn;
use mysql::prelude::Queryable;
use std::time::Duration;
use zerodown::engine::mysql::MySql;
use zerodown::engine::{Engine, LockGuardSettings};
use zerodown::spec::{AddColumn, Migration};
use zerodown::{Error, Event, Settings, Status};

const GUARD: LockGuardSettings = LockGuardSettings {
    timeout: Duration::from_secs(1),
    budget: Duration::from_secs(3),
};

/// Marks step 0 done (a state write, through `run_ddl` with no SQL) and returns how that ended with
/// the blockers its LockRetry events named.
fn mark_step(engine: &mut MySql, id: i64) -> (zerodown::error::Result<()>, Vec<String>) {
    let mut blockers = Vec::new();
    let outcome = engine.run_ddl(id, 0, &[], &GUARD, &mut |e| {
        if let Event::LockRetry { blocker, .. } = e {
            blockers.push(blocker);
        }
    });
    (outcome, blockers)
}

/// The blockers named by LockRetry events gathered where no callback was at hand, handed over at
/// the next callback (the preflight's).
fn pending_blockers(engine: &mut MySql) -> Vec<String> {
    let mut blockers = Vec::new();
    engine
        .preflight(&Settings::default(), &mut |e| {
            if let Event::LockRetry { blocker, .. } = e {
                blockers.push(blocker);
            }
        })
        .unwrap();
    blockers
}

fn assert_budget_spent(outcome: zerodown::error::Result<()>, blockers: &[String], holder: &Conn) {
    let err = outcome.expect_err("the state write waited behind another session");
    assert!(matches!(err, Error::LockBudget(_)), "{err}");
    let who = format!("connection {}", holder.connection_id());
    assert!(
        blockers.iter().any(|b| b.contains(&who)),
        "a LockRetry names {who}: {blockers:?}"
    );
    assert!(err.to_string().contains(&who), "{err}");
}

#[test]
fn a_blocked_state_write_names_its_blocker_and_ends_on_the_lock_budget() {
    let Some(server) = support::mariadb() else {
        return;
    };
    let db = server.fresh_database("my_state_guard");
    db.connect()
        .query_drop("CREATE TABLE accounts (id bigint NOT NULL PRIMARY KEY, email varchar(100))")
        .unwrap();
    let mut engine = MySql::open(db.url()).unwrap();
    engine.configure(GUARD);
    let m = Migration::adding(
        "0001_tier",
        AddColumn::new("accounts", "tier", "varchar(20)"),
    );
    let plan = zerodown::ops::plan(&mut engine, &m).unwrap();
    engine.ensure_state_table(&mut |_| {}).unwrap();
    let id = engine
        .insert_state("0001_tier", "{}", &plan, &mut |_| {})
        .unwrap();

    // A row lock: another session holds the migration's row in an open transaction.
    let mut holder = db.connect();
    holder.query_drop("START TRANSACTION").unwrap();
    let _: Vec<i64> = holder
        .exec(
            "SELECT id FROM zerodown_migrations WHERE id = ? FOR UPDATE",
            (id,),
        )
        .unwrap();
    let (outcome, blockers) = mark_step(&mut engine, id);
    assert_budget_spent(outcome, &blockers, &holder);
    // A write made where no event callback is at hand ends the same way; its retries reach the next
    // callback.
    let outcome = engine.set_status(id, Status::Backfilled);
    assert_budget_spent(outcome, &pending_blockers(&mut engine), &holder);
    holder.query_drop("ROLLBACK").unwrap();

    // A metadata lock: another session holds the whole state table. (`run_ddl` reads the plan
    // first, and that read would wait behind the lock; `set_status` only writes.)
    holder
        .query_drop("LOCK TABLES zerodown_migrations WRITE")
        .unwrap();
    let outcome = engine.set_status(id, Status::Backfilled);
    assert_budget_spent(outcome, &pending_blockers(&mut engine), &holder);
    holder.query_drop("UNLOCK TABLES").unwrap();

    // Nothing was written while blocked; with the way clear the same writes go through.
    let row = engine.states().unwrap().pop().unwrap();
    assert_eq!((row.next_step, row.status), (0, Status::Started));
    let (outcome, blockers) = mark_step(&mut engine, id);
    outcome.unwrap();
    assert!(blockers.is_empty(), "{blockers:?}");
    engine.set_status(id, Status::Backfilled).unwrap();
    let row = engine.states().unwrap().pop().unwrap();
    assert_eq!((row.next_step, row.status), (1, Status::Backfilled));
}
