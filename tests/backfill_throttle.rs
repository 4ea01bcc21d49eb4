//! The backfill rests while the server is busy (`--max-load`) and goes on when it is not: on
//! PostgreSQL 15 and 18 and MariaDB, with other sessions kept running short statements.
//!
//! No step here waits for a time: the busy sessions are seen running on the server before the
//! backfill starts, they stop only once the backfill has been seen resting for a number of their
//! statements, and a backfill is never shorter than a known number of batches (its batch size at
//! most doubles per batch), so the outcome is the same on a fast machine and a loaded one.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;
use zerodown::engine::{MaxLoad, Nice};
use zerodown::spec::AddColumn;
use zerodown::{DatabaseUrl, Event, Migration, Settings};

/// Busy sessions.
const BUSY: usize = 3;
/// Statements the busy sessions run, all of them together, while the backfill is seen resting,
/// before they stop.
const STATEMENTS_WHILE_RESTING: usize = 2 * BUSY;

/// The count of sessions running statements is server-wide, and the tests of this file share one
/// server per engine: one test's busy sessions would read as another's load at rest. So the tests
/// take turns.
static SERVER_LOAD: Mutex<()> = Mutex::new(());

fn taking_turns() -> std::sync::MutexGuard<'static, ()> {
    SERVER_LOAD.lock().unwrap_or_else(|e| e.into_inner())
}

fn migration() -> Migration {
    let mut a = AddColumn::new("accounts", "tier", "text");
    a.backfill = Some("CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END".into());
    Migration::adding("0001_tier", a)
}

/// Sessions running one short statement after another until `stop`; each statement counted.
struct Busy {
    stop: Arc<AtomicBool>,
    statements: Arc<AtomicUsize>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Busy {
    /// `BUSY` sessions made by `statement`, each waiting at `go` (if any) before its first statement.
    fn start(
        mut statement: impl FnMut() -> Box<dyn FnMut() + Send>,
        go: Option<Arc<Barrier>>,
    ) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let statements = Arc::new(AtomicUsize::new(0));
        let threads = (0..BUSY)
            .map(|_| {
                let mut run = statement();
                let (stop, statements, go) = (stop.clone(), statements.clone(), go.clone());
                thread::spawn(move || {
                    if let Some(go) = go {
                        go.wait();
                    }
                    while !stop.load(Ordering::SeqCst) {
                        run();
                        statements.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        Busy {
            stop,
            statements,
            threads,
        }
    }

    fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

/// Polls `count` (the busy sessions the server shows running) until it reaches [`BUSY`].
fn until_running(mut count: impl FnMut() -> usize) {
    while count() < BUSY {
        thread::yield_now();
    }
}

/// Starts the migration with `--max-load 1` while `busy` runs. The busy sessions stop once the
/// backfill has rested through [`STATEMENTS_WHILE_RESTING`] of their statements. Returns every
/// event, and the number of progress events seen between the first rest and that stop.
fn start_while_busy(url: &str, busy: Busy) -> (Vec<Event>, usize) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let resting = Arc::new(AtomicBool::new(false));
    let released = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let progress_while_resting = Arc::new(AtomicUsize::new(0));
    // Stops the busy sessions once the backfill has rested through some of their statements.
    let supervisor = {
        let (resting, released, done) = (resting.clone(), released.clone(), done.clone());
        let (stop, statements) = (busy.stop.clone(), busy.statements.clone());
        thread::spawn(move || {
            while !resting.load(Ordering::SeqCst) && !done.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(5));
            }
            let at_rest = statements.load(Ordering::SeqCst);
            while statements.load(Ordering::SeqCst) < at_rest + STATEMENTS_WHILE_RESTING
                && !done.load(Ordering::SeqCst)
            {
                thread::sleep(Duration::from_millis(5));
            }
            released.store(true, Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
        })
    };
    let settings = Settings {
        batch_time: Some(Duration::from_millis(10)),
        max_load: Some(MaxLoad::Sessions(1)),
        nice: Some(Nice::Auto),
        ..Settings::default()
    };
    let seen = events.clone();
    let counter = progress_while_resting.clone();
    let (r, rel) = (resting.clone(), released.clone());
    let result = zerodown::start(
        &DatabaseUrl::parse(url).unwrap(),
        &migration(),
        &settings,
        &mut |e| {
            match &e {
                Event::Throttle { rested: None, .. } => r.store(true, Ordering::SeqCst),
                Event::Progress { .. }
                    if r.load(Ordering::SeqCst) && !rel.load(Ordering::SeqCst) =>
                {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
            seen.lock().unwrap().push(e);
        },
        &AtomicBool::new(false),
    );
    done.store(true, Ordering::SeqCst);
    supervisor.join().unwrap();
    busy.finish();
    result.unwrap();
    let events = events.lock().unwrap().clone();
    (events, progress_while_resting.load(Ordering::SeqCst))
}

/// The run rested while the sessions were busy, made no progress until they stopped, and then went on.
fn assert_rested(events: &[Event], progress_while_resting: usize) {
    let first_rest = events
        .iter()
        .position(|e| matches!(e, Event::Throttle { rested: None, .. }))
        .unwrap_or_else(|| panic!("never rested: {events:?}"));
    for e in events {
        if let Event::Throttle {
            running,
            limit,
            rested: None,
        } = e
        {
            assert!(*running > *limit, "{events:?}");
        }
    }
    assert!(
        events[first_rest..].iter().any(|e| matches!(
            e,
            Event::Throttle {
                rested: Some(_),
                ..
            }
        )),
        "never went on: {events:?}"
    );
    assert_eq!(
        progress_while_resting, 0,
        "batches ran while the other sessions were busy: {events:?}"
    );
    assert!(
        events[first_rest..]
            .iter()
            .any(|e| matches!(e, Event::Progress { .. })),
        "{events:?}"
    );
}

fn postgres(major: u32) {
    let Some(pg) = support::pg(major) else { return };
    let db = pg.fresh_database("throttle");
    let mut c = db.connect();
    c.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO accounts (balance) SELECT (g * 7919) % 20000 FROM generate_series(1, 3000) g;",
    )
    .unwrap();
    let busy = Busy::start(
        || {
            let mut c = db.connect();
            Box::new(move || {
                c.batch_execute("SELECT pg_sleep(0.2)").unwrap();
            })
        },
        None,
    );
    until_running(|| pg_sleeping(&mut c));
    let (events, progress_while_resting) = start_while_busy(db.url(), busy);
    assert_rested(&events, progress_while_resting);
    let nulls: i64 = c
        .query_one("SELECT count(*) FROM accounts WHERE tier IS NULL", &[])
        .unwrap()
        .get(0);
    assert_eq!(nulls, 0);
}

/// Sessions the server shows in `pg_sleep`.
fn pg_sleeping(c: &mut postgres::Client) -> usize {
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg\\_sleep%'",
            &[],
        )
        .unwrap()
        .get(0);
    n as usize
}

fn mariadb() {
    use mysql::prelude::Queryable;
    let Some(server) = support::mariadb() else {
        return;
    };
    let db = server.fresh_database("throttle");
    let mut c = db.connect();
    c.query_drop(
        "CREATE TABLE accounts (id bigint AUTO_INCREMENT PRIMARY KEY, balance bigint NOT NULL)",
    )
    .unwrap();
    c.query_drop("INSERT INTO accounts (balance) SELECT (seq * 7919) % 20000 FROM seq_1_to_3000")
        .unwrap();
    let busy = Busy::start(
        || {
            let mut c = db.connect();
            Box::new(move || {
                c.query_drop("SELECT SLEEP(0.2)").unwrap();
            })
        },
        None,
    );
    until_running(|| {
        c.query_first::<i64, _>(
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND INFO LIKE 'SELECT SLEEP%'",
        )
        .unwrap()
        .unwrap() as usize
    });
    let (events, progress_while_resting) = start_while_busy(db.url(), busy);
    assert_rested(&events, progress_while_resting);
    let nulls: i64 = c
        .query_first("SELECT count(*) FROM accounts WHERE tier IS NULL")
        .unwrap()
        .unwrap();
    assert_eq!(nulls, 0);
}

#[test]
fn postgres_15_rests_while_busy() {
    let _turn = taking_turns();
    postgres(15)
}

#[test]
fn postgres_18_rests_while_busy() {
    let _turn = taking_turns();
    postgres(18)
}

#[test]
fn mariadb_rests_while_busy() {
    let _turn = taking_turns();
    mariadb()
}

/// Runs `start` with `settings` and returns its events.
fn start_collecting(url: &str, settings: &Settings, mut also: impl FnMut(&Event)) -> Vec<Event> {
    let mut events = Vec::new();
    zerodown::start(
        &DatabaseUrl::parse(url).unwrap(),
        &migration(),
        settings,
        &mut |e| {
            also(&e);
            events.push(e);
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    events
}

fn notes(events: &[Event]) -> Vec<&String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Note(n) if n.contains("other sessions running statements") => Some(n),
            _ => None,
        })
        .collect()
}

/// `auto` says what it measured and the limits it chose, and reports the run; `off` with a fixed
/// ratio never looks at the server.
#[test]
fn auto_names_its_limits_and_off_never_looks() {
    let _turn = taking_turns();
    let Some(pg) = support::pg(15) else { return };
    for (name, max_load, nice) in [
        ("auto", MaxLoad::Auto, Nice::Auto),
        ("off", MaxLoad::Off, Nice::Ratio(0.0)),
    ] {
        let db = pg.fresh_database(name);
        db.connect()
            .batch_execute(
                "CREATE TABLE accounts (id bigserial PRIMARY KEY, balance bigint NOT NULL);
                 INSERT INTO accounts (balance) SELECT g FROM generate_series(1, 500) g;",
            )
            .unwrap();
        let settings = Settings {
            batch_time: Some(Duration::from_millis(10)),
            max_load: Some(max_load),
            nice: Some(nice),
            ..Settings::default()
        };
        let events = start_collecting(db.url(), &settings, |_| {});
        let notes = notes(&events);
        if max_load == MaxLoad::Auto {
            assert!(
                notes.len() == 2
                    && notes[0].contains("as the backfill began")
                    && notes[0].contains("(--nice auto)")
                    && notes[0].contains("(--max-load)")
                    && notes[1].contains("rest ratio"),
                "{events:?}"
            );
        } else {
            assert!(notes.is_empty(), "{events:?}");
            assert!(
                events.iter().all(|e| !matches!(e, Event::Throttle { .. })),
                "{events:?}"
            );
        }
    }
}

/// `--nice auto` rests more once other sessions get busier than they were as the backfill began,
/// and says so in its closing note.
///
/// The busy sessions start as the level at rest has been measured (on the note that says it), and
/// the backfill's first batch waits until the server shows them running. The backfill cannot end
/// before the pacer decides: its batch size starts at 100 rows and at most doubles per batch, so
/// the table below takes at least `ADJUST_LOOKS + 2` batches (a 1 s target keeps it doubling, so
/// not many more), and the fixed pause (at least 60 ms with its jitter) is longer than the gap
/// between two looks, so every batch is looked before.
#[test]
fn nice_auto_rests_when_others_get_busy() {
    let _turn = taking_turns();
    use zerodown::run::throttle::{ADJUST_LOOKS, MIN_NICE};
    let Some(pg) = support::pg(15) else { return };
    let db = pg.fresh_database("pacer");
    let rows = 100 * ((1i64 << (ADJUST_LOOKS + 2)) - 1);
    db.connect()
        .batch_execute(&format!(
            "CREATE TABLE accounts (id bigserial PRIMARY KEY, balance bigint NOT NULL);
             INSERT INTO accounts (balance) SELECT (g::bigint * 7919) % 20000 FROM generate_series(1, {rows}) g;"
        ))
        .unwrap();
    let go = Arc::new(Barrier::new(BUSY + 1));
    let busy = Busy::start(
        || {
            let mut c = db.connect();
            Box::new(move || {
                c.batch_execute("SELECT pg_sleep(0.1)").unwrap();
            })
        },
        Some(go.clone()),
    );
    let mut watcher = db.connect();
    let settings = Settings {
        batch_time: Some(Duration::from_secs(1)),
        pause: Some(Duration::from_millis(120)),
        max_load: Some(MaxLoad::Off),
        nice: Some(Nice::Auto),
        ..Settings::default()
    };
    let events = start_collecting(db.url(), &settings, |e| {
        if let Event::Note(n) = e
            && n.contains("as the backfill began")
        {
            go.wait();
            until_running(|| pg_sleeping(&mut watcher));
        }
    });
    busy.finish();
    let notes = notes(&events);
    let report = notes
        .iter()
        .find(|n| n.contains("rest ratio"))
        .unwrap_or_else(|| panic!("{events:?}"));
    let most: f64 = report
        .rsplit("at most ")
        .next()
        .and_then(|t| t.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    assert!(most >= MIN_NICE, "{report}");
}
