//! Real replicas in the harness, and the replica-lag throttle (`--max-replica-lag`) on them: a
//! PostgreSQL 15 and 18 streaming standby with its replay paused, and a MariaDB replica with its SQL
//! thread stopped. The backfill rests while the replica is behind, goes on once it has caught up,
//! and fills every row right; the notes name the replica and its lag.
//!
//! No timing is asserted, and no fast machine can outrun the replica: it is behind before `start`,
//! and the first batch's progress callback (the backfill waits for it) holds the backfill for
//! longer than the throttle's look interval and the limit, so the look before the second batch
//! must find it over the limit. It catches up only when the test sees the backfill paused.

mod support;

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use support::mariadb_replica::MariaDbPair;
use support::pg_standby::{PgPair, STANDBY_NAME};
use zerodown::engine::MaxReplicaLag;
use zerodown::engine::replicas::LOOK_EVERY;
use zerodown::spec::AddColumn;
use zerodown::{DatabaseUrl, Event, Migration, Settings};

const ROWS: i64 = 2_000;
const LIMIT: Duration = Duration::from_millis(300);
const RIGHT: &str = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END";

fn migration() -> Migration {
    let mut a = AddColumn::new("accounts", "tier", "text");
    a.backfill = Some(RIGHT.into());
    Migration::adding("0001_tier", a)
}

fn settings(replicas: Vec<DatabaseUrl>) -> Settings {
    Settings {
        batch_time: Some(Duration::from_millis(5)),
        max_latency: Some(zerodown::engine::MaxLatency::Off),
        max_load: Some(zerodown::engine::MaxLoad::Off),
        max_replica_lag: Some(MaxReplicaLag::Limit(LIMIT)),
        replicas,
        ..Settings::default()
    }
}

/// `accounts` with [`ROWS`] rows on a PostgreSQL primary; the connection that made it.
fn pg_accounts(db: &support::PgTestDb) -> postgres::Client {
    let mut c = db.connect();
    c.batch_execute(&format!(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO accounts (balance) SELECT (g * 7919) % 20000 FROM generate_series(1, {ROWS}) g;"
    ))
    .unwrap();
    c
}

/// `accounts` with [`ROWS`] rows on a MariaDB primary; the connection that made it.
fn mariadb_accounts(db: &support::MariaDbTestDb) -> mysql::Conn {
    use mysql::prelude::Queryable;
    let mut c = db.connect();
    c.query_drop(
        "CREATE TABLE accounts (id bigint AUTO_INCREMENT PRIMARY KEY, balance bigint NOT NULL)",
    )
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO accounts (balance) SELECT (seq * 7919) % 20000 FROM seq_1_to_{ROWS}"
    ))
    .unwrap();
    c
}

fn is_pause(e: &Event) -> bool {
    matches!(e, Event::Note(n) if n.starts_with("backfill paused for replica lag"))
}

fn is_caught_up(e: &Event) -> bool {
    matches!(e, Event::Note(n) if n.starts_with("replicas caught up"))
}

/// Runs `start` on a replica that is behind already: holds the first batch's progress callback for
/// longer than the look interval and the limit, and calls `catch_up` when the backfill says it
/// paused. Returns every event.
fn start_behind(url: &str, settings: &Settings, catch_up: impl FnMut()) -> Vec<Event> {
    start_holding(url, settings, || {}, catch_up)
}

/// [`start_behind`], calling `first` in the first batch's progress callback before the hold.
fn start_holding(
    url: &str,
    settings: &Settings,
    mut first: impl FnMut(),
    mut catch_up: impl FnMut(),
) -> Vec<Event> {
    let mut events = Vec::new();
    let mut held = false;
    let mut caught_up = false;
    zerodown::start(
        &DatabaseUrl::parse(url).unwrap(),
        &migration(),
        settings,
        &mut |e| {
            if matches!(e, Event::Progress { .. }) && !held {
                held = true;
                first();
                // The throttle looks at most every LOOK_EVERY, and the standby's lag counts from
                // its look before the first batch: past both, its next look (before the next
                // batch) must find the replica over the limit.
                let hold = LOOK_EVERY.max(LIMIT);
                let t = Instant::now();
                support::wait_for("the hold to pass", || t.elapsed() > hold);
            }
            if is_pause(&e) && !caught_up {
                caught_up = true;
                catch_up();
            }
            events.push(e);
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    events
}

/// The backfill paused naming `replica`, ran no batch while paused, went on after the replica
/// caught up, and counted the rest in its closing note.
fn assert_rested_while_behind(events: &[Event], replica: &str) {
    for e in events {
        if let Event::Note(n) = e {
            eprintln!("note: {n}");
            assert!(!n.contains(":zerodown@"), "a password in a note: {n}");
        }
    }
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Note(n) if n.starts_with("replica lag: ") && n.contains(replica))
        ),
        "no note on the replicas watched: {events:?}"
    );
    let paused = events
        .iter()
        .position(is_pause)
        .unwrap_or_else(|| panic!("the backfill never paused: {events:?}"));
    let Event::Note(note) = &events[paused] else {
        unreachable!()
    };
    assert!(note.contains(replica), "{note}");
    let resumed = paused
        + events[paused..]
            .iter()
            .position(is_caught_up)
            .unwrap_or_else(|| panic!("the replica never caught up: {events:?}"));
    assert!(
        !events[paused..resumed]
            .iter()
            .any(|e| matches!(e, Event::Progress { .. })),
        "a batch ran while the replica was behind: {events:?}"
    );
    assert!(
        events[resumed..]
            .iter()
            .any(|e| matches!(e, Event::Progress { .. })),
        "no batch after the replica caught up: {events:?}"
    );
    let closing = support::closing_note(events);
    assert!(
        closing.contains("for replica lag (--max-replica-lag)"),
        "{closing}"
    );
}

fn pg_rests_while_the_standby_is_behind(major: u32) {
    let Some(pair) = PgPair::start(major) else {
        return;
    };
    let db = pair.primary.fresh_database("replica_lag");
    let mut c = pg_accounts(&db);
    pair.sync();
    pair.pause_replay();
    let events = start_behind(db.url(), &settings(Vec::new()), || pair.resume_replay());
    assert_rested_while_behind(&events, STANDBY_NAME);
    let wrong = format!("SELECT count(*) FROM accounts WHERE tier IS DISTINCT FROM {RIGHT}");
    assert_eq!(c.query_one(&wrong, &[]).unwrap().get::<_, i64>(0), 0);
    pair.sync();
    assert!(pair.standby_in_recovery());
    let mut s = pair.standby.connect(&db.name);
    assert_eq!(s.query_one(&wrong, &[]).unwrap().get::<_, i64>(0), 0);
}

#[test]
fn pg15_rests_while_the_standby_is_behind() {
    pg_rests_while_the_standby_is_behind(15)
}

/// A standby named by `--replica` (as a cascading one would be) is read there, and named by its
/// URL without the password.
#[test]
fn pg15_rests_while_a_standby_named_by_url_is_behind() {
    let Some(pair) = PgPair::start(15) else {
        return;
    };
    let db = pair.primary.fresh_database("standby_url");
    let mut c = pg_accounts(&db);
    pair.sync();
    pair.pause_replay();
    let standby = DatabaseUrl::parse(&pair.standby.url(&db.name)).unwrap();
    let label = format!("postgres@127.0.0.1:{}/{}", pair.standby.port(), db.name);
    let events = start_behind(db.url(), &settings(vec![standby]), || pair.resume_replay());
    assert_rested_while_behind(&events, &label);
    let paused = events.iter().find(|e| is_pause(e)).unwrap();
    assert!(
        matches!(paused, Event::Note(n) if n.contains("replay paused")),
        "{paused:?}"
    );
    let wrong = format!("SELECT count(*) FROM accounts WHERE tier IS DISTINCT FROM {RIGHT}");
    assert_eq!(c.query_one(&wrong, &[]).unwrap().get::<_, i64>(0), 0);
}

#[test]
fn pg18_rests_while_the_standby_is_behind() {
    pg_rests_while_the_standby_is_behind(18)
}

#[test]
fn mariadb_rests_while_the_replica_is_behind() {
    use mysql::prelude::Queryable;
    let Some(pair) = MariaDbPair::start() else {
        return;
    };
    let db = pair.primary.fresh_database("replica_lag");
    let mut c = mariadb_accounts(&db);
    pair.sync();
    pair.stop_sql_thread();
    let replica = DatabaseUrl::parse(&pair.replica_url(&db.name)).unwrap();
    let label = format!("zerodown@127.0.0.1:{}/{}", pair.replica.port(), db.name);
    let events = start_behind(db.url(), &settings(vec![replica]), || {
        pair.start_sql_thread()
    });
    assert_rested_while_behind(&events, &label);
    let wrong = format!("SELECT count(*) FROM accounts WHERE NOT (tier <=> {RIGHT})");
    assert_eq!(c.query_first::<i64, _>(&wrong).unwrap(), Some(0));
    pair.sync();
    let mut r = pair.replica.connect(&db.name);
    assert_eq!(r.query_first::<i64, _>(&wrong).unwrap(), Some(0));
}

/// A standby that goes away mid-run (killed): the backfill pauses and says so, and goes on once
/// the standby streams again and has caught up.
#[test]
fn pg15_pauses_while_the_standby_is_gone() {
    let Some(pair) = PgPair::start(15) else {
        return;
    };
    let db = pair.primary.fresh_database("standby_gone");
    let mut c = pg_accounts(&db);
    pair.sync();
    let streaming = || {
        pair.primary
            .admin(|c| {
                c.query_one(
                    "SELECT count(*) FROM pg_stat_replication WHERE application_name = $1",
                    &[&STANDBY_NAME],
                )
            })
            .unwrap()
            .get::<_, i64>(0)
            > 0
    };
    let events = start_holding(
        db.url(),
        &settings(Vec::new()),
        || {
            pair.standby.kill();
            support::wait_for("the primary to see the standby gone", || !streaming());
        },
        || pair.standby.start(),
    );
    assert_rested_while_behind(&events, STANDBY_NAME);
    let paused = events.iter().find(|e| is_pause(e)).unwrap();
    assert!(
        matches!(paused, Event::Note(n) if n.contains("unreachable (it no longer streams from the primary)")),
        "{paused:?}"
    );
    let wrong = format!("SELECT count(*) FROM accounts WHERE tier IS DISTINCT FROM {RIGHT}");
    assert_eq!(c.query_one(&wrong, &[]).unwrap().get::<_, i64>(0), 0);
    pair.sync();
    assert!(pair.standby_in_recovery());
}

/// A replica that goes away mid-run (killed): the backfill pauses and says it cannot reach it,
/// without its password, and goes on once it is back and has caught up.
#[test]
fn mariadb_pauses_while_the_replica_is_gone() {
    use mysql::prelude::Queryable;
    let Some(pair) = MariaDbPair::start() else {
        return;
    };
    let db = pair.primary.fresh_database("replica_gone");
    let mut c = mariadb_accounts(&db);
    pair.sync();
    let replica = DatabaseUrl::parse(&pair.replica_url(&db.name)).unwrap();
    let label = format!("zerodown@127.0.0.1:{}/{}", pair.replica.port(), db.name);
    let events = start_holding(
        db.url(),
        &settings(vec![replica]),
        || pair.replica.kill(),
        || pair.replica.start(),
    );
    assert_rested_while_behind(&events, &label);
    let paused = events.iter().find(|e| is_pause(e)).unwrap();
    assert!(
        matches!(paused, Event::Note(n) if n.contains(&format!("`{label}` unreachable ("))),
        "{paused:?}"
    );
    let wrong = format!("SELECT count(*) FROM accounts WHERE NOT (tier <=> {RIGHT})");
    assert_eq!(c.query_first::<i64, _>(&wrong).unwrap(), Some(0));
    pair.sync();
}

/// SQLite has no replicas: the flags are accepted, and a note says they have no effect.
#[test]
fn sqlite_says_the_flag_has_no_effect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {ROWS})
         INSERT INTO accounts (balance) SELECT (n * 7919) % 20000 FROM g;"
    ))
    .unwrap();
    let mut events = Vec::new();
    zerodown::start(
        &DatabaseUrl::Sqlite(path.clone()),
        &migration(),
        &settings(Vec::new()),
        &mut |e| events.push(e),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(
        events.iter().any(|e| matches!(e, Event::Note(n)
            if n.contains("--max-replica-lag and --replica have no effect on SQLite"))),
        "{events:?}"
    );
    assert!(!events.iter().any(is_pause));
}

/// The harness's standby follows its primary, and replay pauses and resumes on demand.
fn standby_follows(major: u32) {
    let Some(pair) = PgPair::start(major) else {
        return;
    };
    let db = pair.primary.fresh_database("standby_follows");
    db.connect()
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .unwrap();
    pair.sync();
    let mut s = pair.standby.connect(&db.name);
    let n: i64 = s.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
    assert_eq!(n, 1);
    assert!(pair.standby_in_recovery());
    pair.pause_replay();
    pair.resume_replay();
}

#[test]
fn pg15_standby_follows() {
    standby_follows(15)
}

#[test]
fn pg18_standby_follows() {
    standby_follows(18)
}

#[test]
fn mariadb_replica_follows() {
    use mysql::prelude::Queryable;
    let Some(pair) = MariaDbPair::start() else {
        return;
    };
    let db = pair.primary.fresh_database("replica_follows");
    db.connect()
        .query_drop("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .unwrap();
    pair.sync();
    let n: Option<i64> = pair
        .replica
        .connect(&db.name)
        .query_first("SELECT count(*) FROM t")
        .unwrap();
    assert_eq!(n, Some(1));
    pair.stop_sql_thread();
    pair.start_sql_thread();
}
