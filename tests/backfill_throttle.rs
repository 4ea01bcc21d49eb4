//! The backfill rests while the server is busy (`--max-load`) and goes on when it is not: on
//! PostgreSQL 15 and 18 and MariaDB, with other sessions kept running short statements for a while.

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use zerodown::engine::{MaxLoad, Nice};
use zerodown::spec::AddColumn;
use zerodown::{DatabaseUrl, Event, Migration, Settings};

const BUSY_FOR: Duration = Duration::from_millis(2500);

fn migration() -> Migration {
    let mut a = AddColumn::new("accounts", "tier", "text");
    a.backfill = Some("CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END".into());
    Migration::adding("0001_tier", a)
}

/// Keeps `n` other sessions running one short statement after another for [`BUSY_FOR`].
fn keep_busy(
    n: usize,
    mut statement: impl FnMut() -> Box<dyn FnMut() + Send>,
) -> Vec<thread::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let mut run = statement();
            thread::spawn(move || {
                let end = Instant::now() + BUSY_FOR;
                while Instant::now() < end {
                    run();
                }
            })
        })
        .collect()
}

/// Starts the migration with `max_load` while three other sessions are busy; returns the
/// Throttle events and how long `start` took.
fn start_while_busy(
    url: &str,
    max_load: MaxLoad,
    nice: Nice,
    busy: Vec<thread::JoinHandle<()>>,
) -> (Vec<Event>, Duration) {
    // Let the busy sessions get going.
    thread::sleep(Duration::from_millis(200));
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let settings = Settings {
        batch_time: Some(Duration::from_millis(10)),
        max_load: Some(max_load),
        nice: Some(nice),
        ..Settings::default()
    };
    let began = Instant::now();
    zerodown::start(
        &DatabaseUrl::parse(url).unwrap(),
        &migration(),
        &settings,
        &mut |e| {
            if matches!(e, Event::Throttle { .. } | Event::Note(_)) {
                seen.lock().unwrap().push(e);
            }
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    let took = began.elapsed();
    for b in busy {
        b.join().unwrap();
    }
    let events = events.lock().unwrap().clone();
    (events, took)
}

/// The run rested while the three sessions were busy, and only then.
fn assert_rested(events: &[Event], took: Duration) {
    let rested: Vec<Duration> = events
        .iter()
        .filter_map(|e| match e {
            Event::Throttle {
                running,
                limit,
                rested: None,
            } => {
                assert!(*running > *limit, "{events:?}");
                None
            }
            Event::Throttle {
                rested: Some(d), ..
            } => Some(*d),
            _ => None,
        })
        .collect();
    let total: Duration = rested.iter().sum();
    assert!(
        total >= Duration::from_millis(1500) && took >= total,
        "rested {total:?} of {took:?}: {events:?}"
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
    let busy = keep_busy(3, || {
        let mut c = db.connect();
        Box::new(move || {
            c.batch_execute("SELECT pg_sleep(0.2)").unwrap();
        })
    });
    let (events, took) = start_while_busy(db.url(), MaxLoad::Sessions(1), Nice::Auto, busy);
    assert_rested(&events, took);
    let nulls: i64 = c
        .query_one("SELECT count(*) FROM accounts WHERE tier IS NULL", &[])
        .unwrap()
        .get(0);
    assert_eq!(nulls, 0);
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
    let busy = keep_busy(3, || {
        let mut c = db.connect();
        Box::new(move || {
            c.query_drop("SELECT SLEEP(0.2)").unwrap();
        })
    });
    let (events, took) = start_while_busy(db.url(), MaxLoad::Sessions(1), Nice::Auto, busy);
    assert_rested(&events, took);
    let nulls: i64 = c
        .query_first("SELECT count(*) FROM accounts WHERE tier IS NULL")
        .unwrap()
        .unwrap();
    assert_eq!(nulls, 0);
}

#[test]
fn postgres_15_rests_while_busy() {
    postgres(15)
}

#[test]
fn postgres_18_rests_while_busy() {
    postgres(18)
}

#[test]
fn mariadb_rests_while_busy() {
    mariadb()
}

/// `auto` says what it measured and the limits it chose, and reports the run; `off` with a fixed
/// ratio never looks at the server.
#[test]
fn auto_names_its_limits_and_off_never_looks() {
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
        let (events, _) = start_while_busy(db.url(), max_load, nice, Vec::new());
        let notes: Vec<&String> = events
            .iter()
            .filter_map(|e| match e {
                Event::Note(n) if n.contains("other sessions running statements") => Some(n),
                _ => None,
            })
            .collect();
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
#[test]
fn nice_auto_rests_when_others_get_busy() {
    let Some(pg) = support::pg(15) else { return };
    let db = pg.fresh_database("pacer");
    db.connect()
        .batch_execute(
            "CREATE TABLE accounts (id bigserial PRIMARY KEY, balance bigint NOT NULL);
             INSERT INTO accounts (balance) SELECT (g * 7919) % 20000 FROM generate_series(1, 100000) g;",
        )
        .unwrap();
    // Three sessions get busy just after the level at rest was measured (a fifth of a second).
    let busy: Vec<thread::JoinHandle<()>> = (0..3)
        .map(|_| {
            let mut c = db.connect();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(400));
                let end = Instant::now() + Duration::from_secs(4);
                while Instant::now() < end {
                    c.batch_execute("SELECT pg_sleep(0.1)").unwrap();
                }
            })
        })
        .collect();
    let mut notes = Vec::new();
    zerodown::start(
        &DatabaseUrl::parse(db.url()).unwrap(),
        &migration(),
        &Settings {
            batch_time: Some(Duration::from_millis(5)),
            max_load: Some(MaxLoad::Off),
            nice: Some(Nice::Auto),
            ..Settings::default()
        },
        &mut |e| {
            if let Event::Note(n) = e {
                notes.push(n);
            }
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    for b in busy {
        b.join().unwrap();
    }
    let report = notes
        .iter()
        .find(|n| n.contains("rest ratio"))
        .unwrap_or_else(|| panic!("{notes:?}"));
    let most: f64 = report
        .rsplit("at most ")
        .next()
        .and_then(|t| t.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    assert!(most >= zerodown::run::throttle::MIN_NICE, "{report}");
}
