//! The latency guard (`--max-latency`, on by default) on PostgreSQL 15, MariaDB and SQLite: a lock
//! load starts after the backfill's first batch, the canary's latency rises, the backfill rests, and
//! it goes on once the load ends, filling every row right.
//!
//! No timing is asserted, and no fast machine can outrun the load: it is taken from inside the event
//! callback of the first batch's progress (the backfill waits for the callback), and let go only once
//! the server shows the canary (or, on SQLite, the backfill) waiting on it for over a second, longer
//! than the controller's decision interval: the first look after the load must find the latency over
//! its target.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;
use zerodown::spec::AddColumn;
use zerodown::{DatabaseUrl, Event, Migration, Settings};

const ROWS: i64 = 20_000;

fn migration() -> Migration {
    let mut a = AddColumn::new("accounts", "tier", "text");
    a.backfill = Some("CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END".into());
    Migration::adding("0001_tier", a)
}

/// What a test saw: every event, and where the load began.
struct Run {
    events: Vec<Event>,
    load_at: usize,
}

/// Runs `start` and, at the first batch's progress, `load`: it must hold its lock when it returns,
/// and hand back the thread that lets it go. `retries` counts the backfill's lock retries for it.
fn start_under_load(
    url: &str,
    retries: Arc<AtomicUsize>,
    load: impl FnOnce() -> thread::JoinHandle<()>,
) -> Run {
    let mut events = Vec::new();
    let mut load = Some(load);
    let mut load_at = None;
    let mut holder = None;
    zerodown::start(
        &DatabaseUrl::parse(url).unwrap(),
        &migration(),
        &Settings {
            batch_time: Some(Duration::from_millis(5)),
            ..Settings::default()
        },
        &mut |e| {
            if matches!(e, Event::LockRetry { .. }) {
                retries.fetch_add(1, Ordering::SeqCst);
            }
            let first_batch = matches!(e, Event::Progress { .. });
            events.push(e);
            if first_batch && let Some(load) = load.take() {
                holder = Some(load());
                load_at = Some(events.len());
            }
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    holder.expect("the backfill ran a batch").join().unwrap();
    Run {
        events,
        load_at: load_at.unwrap(),
    }
}

/// Takes the lock on a thread of its own (`take`), says so, waits for `release_when` to hold, then
/// lets go (`release`).
fn hold<C: Send + 'static>(
    connect: impl FnOnce() -> C + Send + 'static,
    take: impl FnOnce(&mut C) + Send + 'static,
    mut release_when: impl FnMut(&mut C) -> bool + Send + 'static,
    release: impl FnOnce(&mut C) + Send + 'static,
) -> thread::JoinHandle<()> {
    let (taken, is_taken) = mpsc::channel();
    let t = thread::spawn(move || {
        let mut c = connect();
        take(&mut c);
        taken.send(()).unwrap();
        let mut watcher_polls = 0u64;
        while !release_when(&mut c) {
            watcher_polls += 1;
            assert!(watcher_polls < 100_000, "the load was never felt");
            thread::sleep(Duration::from_millis(10));
        }
        release(&mut c);
    });
    is_taken.recv().unwrap();
    t
}

/// The backfill rested for latency after the load began, went on afterwards, and said how long it
/// rested in its closing note.
fn assert_rested_and_resumed(run: &Run) {
    let ev = &run.events;
    for e in ev {
        if matches!(e, Event::LatencyRest { .. } | Event::Note(_)) {
            eprintln!("{e:?}");
        }
    }
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Note(n) if n.contains("latency canary ("))),
        "no note on the canary's level at rest: {ev:?}"
    );
    let rest = ev[run.load_at..]
        .iter()
        .position(|e| matches!(e, Event::LatencyRest { ratio, latency, target, .. } if *ratio > 0.0 && latency > target))
        .map(|i| run.load_at + i)
        .unwrap_or_else(|| panic!("no rest for latency after the load: {ev:?}"));
    assert!(
        ev[rest..]
            .iter()
            .any(|e| matches!(e, Event::Progress { .. })),
        "no batch after the rest: {ev:?}"
    );
    let closing = support::closing_note(ev);
    assert!(
        closing.contains("for the application's latency (--max-latency)"),
        "{closing}"
    );
}

#[test]
fn postgres_rests_for_a_lock_and_goes_on() {
    let Some(pg) = support::pg(15) else { return };
    let db = pg.fresh_database("latency");
    let mut c = db.connect();
    c.batch_execute(&format!(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO accounts (balance) SELECT (g * 7919) % 20000 FROM generate_series(1, {ROWS}) g;"
    ))
    .unwrap();
    let url = db.url().to_string();
    let run = start_under_load(db.url(), Arc::default(), || {
        hold(
            move || postgres::Client::connect(&url, postgres::NoTls).unwrap(),
            |c| {
                c.batch_execute("BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
                    .unwrap()
            },
            |c| {
                // The canary has waited on the lock for over a second.
                c.query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE application_name LIKE 'zerodown canary%' AND wait_event_type = 'Lock'
                       AND clock_timestamp() - query_start > interval '1200 ms'",
                    &[],
                )
                .unwrap()
                .get::<_, i64>(0)
                    > 0
            },
            |c| c.batch_execute("COMMIT").unwrap(),
        )
    });
    assert_rested_and_resumed(&run);
    let wrong: i64 = c
        .query_one(
            "SELECT count(*) FROM accounts
             WHERE tier IS DISTINCT FROM CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(wrong, 0);
}

#[test]
fn mariadb_rests_for_a_lock_and_goes_on() {
    use mysql::prelude::Queryable;
    let Some(server) = support::mariadb() else {
        return;
    };
    let db = server.fresh_database("latency");
    let mut c = db.connect();
    c.query_drop(
        "CREATE TABLE accounts (id bigint AUTO_INCREMENT PRIMARY KEY, balance bigint NOT NULL)",
    )
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO accounts (balance) SELECT (seq * 7919) % 20000 FROM seq_1_to_{ROWS}"
    ))
    .unwrap();
    let url = db.url().to_string();
    let run = start_under_load(db.url(), Arc::default(), || {
        hold(
            move || mysql::Conn::new(mysql::Opts::from_url(&url).unwrap()).unwrap(),
            |c| c.query_drop("LOCK TABLES accounts WRITE").unwrap(),
            |c| {
                // The canary's point read has waited on the table's metadata lock for over a second.
                // The process list shows it by the mark that --max-load's count leaves out.
                let n: Option<i64> = c
                    .query_first(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST
                         WHERE STATE LIKE '%metadata lock%'
                           AND INFO LIKE 'SELECT /* zerodown canary */%' AND TIME_MS > 1200",
                    )
                    .unwrap();
                n.unwrap_or(0) > 0
            },
            |c| c.query_drop("UNLOCK TABLES").unwrap(),
        )
    });
    assert_rested_and_resumed(&run);
    let wrong: Option<i64> = c
        .query_first(
            "SELECT COUNT(*) FROM accounts
             WHERE NOT (tier <=> CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END)",
        )
        .unwrap();
    assert_eq!(wrong, Some(0));
}

#[test]
fn sqlite_rests_for_a_writer_and_goes_on() {
    use rusqlite::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let c = Connection::open(&path).unwrap();
    c.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {ROWS})
         INSERT INTO accounts (balance) SELECT (n * 7919) % 20000 FROM g;"
    ))
    .unwrap();
    let url = format!("sqlite://{}", path.display());
    let retries = Arc::new(AtomicUsize::new(0));
    let seen = retries.clone();
    let run = start_under_load(&url, retries, || {
        let at_start = seen.load(Ordering::SeqCst);
        hold(
            move || Connection::open(&path).unwrap(),
            |c| c.execute_batch("BEGIN IMMEDIATE").unwrap(),
            // SQLite shows no other connection's wait: the backfill's retries do. Four of them
            // (each after a 200 ms lock timeout, with backoff between) outlast the controller's
            // decision interval, and the canary, probing twenty times a second, waits on the same
            // lock meanwhile.
            move |_| seen.load(Ordering::SeqCst) >= at_start + 4,
            |c| c.execute_batch("ROLLBACK").unwrap(),
        )
    });
    assert_rested_and_resumed(&run);
    let wrong: i64 = c
        .query_row(
            "SELECT count(*) FROM accounts
             WHERE tier IS NOT CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(wrong, 0);
}
