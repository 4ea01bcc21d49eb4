//! A DDL step never queues the application behind an autovacuum: PostgreSQL cancels an autovacuum
//! for a lock waiter only after `deadlock_timeout` (1 s), longer than zerodown's lock timeout, so
//! zerodown cancels it first (seen in the benchmark: two 200 ms lock retries on ADD CHECK NOT VALID,
//! blocked by `autovacuum: VACUUM ANALYZE public.accounts`, with the application queued behind each).
//! Each major gets a dedicated server, whose autovacuum wakes every second.

mod support;

use postgres::Client;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use support::PgServer;
use zerodown::spec::AddColumn;
use zerodown::{DatabaseUrl, Event, Migration, Settings};

/// Waits until an autovacuum worker holds a lock on `accounts`.
fn autovacuum_running(c: &mut Client) -> bool {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE a.backend_type = 'autovacuum worker' AND l.relation = 'accounts'::regclass",
                &[],
            )
            .unwrap()
            .get(0);
        if n > 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn ddl_cancels_autovacuum(major: u32) {
    let Some(pg) = PgServer::start_dedicated(major) else {
        return;
    };
    let db = pg.fresh_database("autovacuum");
    let mut c = db.connect();
    c.batch_execute("ALTER SYSTEM SET autovacuum_naptime = '1s'")
        .unwrap();
    c.batch_execute(
        "SELECT pg_reload_conf();
         CREATE TABLE accounts (id bigserial PRIMARY KEY, balance bigint NOT NULL)
           WITH (autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0,
                 autovacuum_analyze_threshold = 0, autovacuum_analyze_scale_factor = 0,
                 autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1);
         INSERT INTO accounts (balance) SELECT g FROM generate_series(1, 20000) g;
         UPDATE accounts SET balance = balance + 1;",
    )
    .unwrap();
    // A crawling autovacuum (cost limit 1, delay 100 ms): it would hold its lock for many seconds.
    assert!(autovacuum_running(&mut c), "no autovacuum started");
    let mut a = AddColumn::new("accounts", "tier", "text");
    a.backfill = Some("CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END".into());
    let mut notes = Vec::new();
    let mut retries = Vec::new();
    zerodown::start(
        &DatabaseUrl::parse(db.url()).unwrap(),
        &Migration::adding("0001_tier", a),
        &Settings::default(),
        &mut |e| match e {
            Event::Note(n) => notes.push(n),
            Event::LockRetry { blocker, .. } => retries.push(blocker),
            _ => {}
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(
        notes.iter().any(|n| n.contains("cancelled an autovacuum")),
        "{notes:?}"
    );
    assert!(
        retries.iter().all(|b| !b.contains("autovacuum")),
        "a lock attempt still queued behind autovacuum: {retries:?}"
    );
    let nulls: i64 = c
        .query_one("SELECT count(*) FROM accounts WHERE tier IS NULL", &[])
        .unwrap()
        .get(0);
    assert_eq!(nulls, 0);
}

#[test]
fn pg15_ddl_cancels_autovacuum() {
    ddl_cancels_autovacuum(15)
}

#[test]
fn pg18_ddl_cancels_autovacuum() {
    ddl_cancels_autovacuum(18)
}
