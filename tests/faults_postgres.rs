//! Fault injection on PostgreSQL 15 and 18: SIGKILL `zerodown` at random moments of start (mid-backfill),
//! complete (mid-VALIDATE, mid-CREATE INDEX CONCURRENTLY) and rollback while application writers run as a
//! non-superuser role; end zerodown's sessions from another connection and restart the server
//! mid-backfill; leave a dead run's sessions behind. Then the oracles: no acknowledged write lost, no row
//! breaking the window semantics, a clean catalog, and a resumed backfill redoing no committed batch.
//!
//! Quick by default; `ZERODOWN_SOAK=1` runs at least 100 faults per major and prints the figure lines.

mod support;

use postgres::{Client, NoTls};
use rand::RngExt;
use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::PgTestDb;

macro_rules! on_each_major {
    ($($f:ident),* $(,)?) => {$(
        mod $f {
            #[test]
            fn pg15() {
                super::$f(15)
            }
            #[test]
            fn pg18() {
                super::$f(18)
            }
        }
    )*};
}

on_each_major!(
    sigkill_anywhere_loses_nothing,
    ending_zerodowns_sessions_mid_backfill_reconnects,
    a_server_restart_mid_backfill_reconnects,
    a_dead_runs_sessions_are_ended_only_when_its_heartbeat_is_stale,
    sigkill_mid_create_index_concurrently,
);

const ROWS: i64 = 20_000;
const TIER_EXPR: &str = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END";
/// The CHECK costs some CPU per row (test data only: an md5 of 10 kB) so VALIDATE lasts long enough to be
/// killed in. (pg_sleep sleeps at least a millisecond per call: far too slow.)
const TIER_TOML: &str = "[add_column]\ntable = \"accounts\"\ncolumn = \"tier\"\ntype = \"text\"\nnot_null = true\nbackfill = \"CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END\"\ndefault = \"'standard'\"\ncheck = \"tier IN ('gold', 'standard') AND md5(repeat(tier, 1000)) <> ''\"\nindex = true\n";

fn setup(db: &PgTestDb, rows: i64) -> String {
    let app_url = db.create_app_role();
    let role = format!("{}_app", db.name);
    db.connect()
        .batch_execute(&format!(
            "CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, balance bigint NOT NULL);
             INSERT INTO accounts (email, balance) SELECT 'u' || g || '@x', (g * 7919) % 20000 FROM generate_series(1, {rows}) g;
             GRANT SELECT, INSERT, UPDATE, DELETE ON accounts TO \"{role}\";
             GRANT USAGE ON SEQUENCE accounts_id_seq TO \"{role}\";
             ANALYZE accounts;"
        ))
        .unwrap();
    app_url
}

/// What the application saw acknowledged: each row's last balance, every row it inserted, and the rows
/// whose last commit's outcome it could not know (the connection dropped during COMMIT).
#[derive(Default)]
struct Ledger {
    balance: HashMap<i64, i64>,
    inserted: Vec<String>,
    uncertain: HashSet<i64>,
}

fn tier_of(balance: i64) -> &'static str {
    if balance > 10_000 { "gold" } else { "standard" }
}

/// Application writers as a non-superuser role, each on its own slice of ids: writer 0 an old version
/// (never names `tier`) until deployed, writer 1 a new version in short transactions that stay open a few
/// milliseconds (so CREATE INDEX CONCURRENTLY has older transactions to wait for), writer 2 inserts. They
/// reconnect when the server goes away.
fn spawn_writers(
    app_url: String,
    stop: Arc<AtomicBool>,
    deployed: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..3)
        .map(|w: i64| {
            let (url, stop, deployed, ledger) =
                (app_url.clone(), stop.clone(), deployed.clone(), ledger.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rng();
                let mut client: Option<Client> = None;
                let mut i = 0i64;
                while !stop.load(Ordering::SeqCst) {
                    let c = match client.as_mut().filter(|c| !c.is_closed()) {
                        Some(c) => c,
                        None => {
                            client = Client::connect(&url, NoTls).ok();
                            if client.is_none() {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            continue;
                        }
                    };
                    i += 1;
                    let id = 1 + 3 * rng.random_range(0..ROWS / 3) + w;
                    let balance = rng.random_range(0..20_000i64);
                    let tier = tier_of(balance);
                    let new_version = deployed.load(Ordering::SeqCst);
                    match w {
                        0 => {
                            let r = if new_version {
                                c.execute(
                                    "UPDATE accounts SET balance = $1, tier = $2 WHERE id = $3",
                                    &[&balance, &tier, &id],
                                )
                            } else {
                                c.execute(
                                    "UPDATE accounts SET balance = $1 WHERE id = $2",
                                    &[&balance, &id],
                                )
                            };
                            let mut l = ledger.lock().unwrap();
                            match r {
                                Ok(_) => {
                                    l.balance.insert(id, balance);
                                    l.uncertain.remove(&id);
                                }
                                Err(_) => {
                                    l.uncertain.insert(id);
                                }
                            }
                        }
                        1 => {
                            // Sets `tier` where the column exists, else writes only the balance.
                            let mut attempt = |with_tier: bool| -> Result<(), postgres::Error> {
                                let mut tx = c.transaction()?;
                                if with_tier {
                                    tx.execute(
                                        "UPDATE accounts SET balance = $1, tier = $2 WHERE id = $3",
                                        &[&balance, &tier, &id],
                                    )?;
                                } else {
                                    tx.execute(
                                        "UPDATE accounts SET balance = $1 WHERE id = $2",
                                        &[&balance, &id],
                                    )?;
                                }
                                std::thread::sleep(Duration::from_millis(5));
                                tx.commit()
                            };
                            let r = attempt(true).or_else(|e| {
                                if e.code() == Some(&postgres::error::SqlState::UNDEFINED_COLUMN) {
                                    attempt(false)
                                } else {
                                    Err(e)
                                }
                            });
                            let mut l = ledger.lock().unwrap();
                            match r {
                                Ok(()) => {
                                    l.balance.insert(id, balance);
                                    l.uncertain.remove(&id);
                                }
                                Err(_) => {
                                    l.uncertain.insert(id);
                                }
                            }
                        }
                        _ => {
                            let email = format!("ins{w}-{i}-{}@x", rng.random_range(0..u32::MAX));
                            let r = if new_version {
                                c.execute(
                                    "INSERT INTO accounts (email, balance, tier) VALUES ($1, $2, $3)",
                                    &[&email, &balance, &tier],
                                )
                            } else {
                                c.execute(
                                    "INSERT INTO accounts (email, balance) VALUES ($1, $2)",
                                    &[&email, &balance],
                                )
                            };
                            if r.is_ok() {
                                ledger.lock().unwrap().inserted.push(email);
                            }
                            std::thread::sleep(Duration::from_millis(2));
                            continue;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect()
}

fn zerodown(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zerodown"));
    cmd.args(args)
        .env("DATABASE_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs a command to the end; a run refused because the killed one's sessions are still going away is
/// tried again. Returns its output.
fn run_to_end(url: &str, args: &[&str]) -> String {
    let t0 = Instant::now();
    loop {
        let t1 = Instant::now();
        let o = zerodown(url, args).output().unwrap();
        if std::env::var("ZERODOWN_FAULT_TRACE").is_ok() {
            eprintln!("{} ran for {:?}", args[0], t1.elapsed());
        }
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if o.status.success() {
            return text;
        }
        assert!(
            text.contains("another zerodown") && t0.elapsed() < Duration::from_secs(30),
            "zerodown {args:?} failed without a fault: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs a command, SIGKILLing it after a random delay below `window` if still running, then runs it
/// again to the end. Returns 1 when a kill landed.
fn run_through(url: &str, args: &[&str], window: Duration, v: &mut Verdict) {
    let delay = Duration::from_micros(rand::rng().random_range(0..window.as_micros() as u64));
    let mut child = zerodown(url, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            if std::env::var("ZERODOWN_FAULT_TRACE").is_ok() {
                eprintln!(
                    "{} finished after {:?} (kill was due at {delay:?})",
                    args[0],
                    started.elapsed()
                );
            }
            if !status.success() {
                // Refused while the previous kill's sessions were still going away: try again.
                run_to_end(url, args);
            }
            return;
        }
        if started.elapsed() >= delay {
            // What zerodown's session was running when it died, to show the faults cover every step.
            let doing = v
                .probe
                .get_or_insert_with(|| Client::connect(url, NoTls).unwrap())
                .query_opt(
                    "SELECT CASE WHEN query ILIKE '%VALIDATE CONSTRAINT%' THEN 'VALIDATE'
                            WHEN query ILIKE '%INDEX CONCURRENTLY%' THEN 'CREATE INDEX CONCURRENTLY'
                            ELSE split_part(ltrim(query), ' ', 1) END
                     FROM pg_stat_activity
                     WHERE application_name LIKE 'zerodown zd-%' AND application_name NOT LIKE '% driver'
                       AND state = 'active' LIMIT 1",
                    &[],
                )
                .ok()
                .flatten()
                .map(|r| r.get::<_, String>(0).to_uppercase())
                .unwrap_or_else(|| "between statements".into());
            child.kill().unwrap();
            child.wait().unwrap();
            if std::env::var("ZERODOWN_FAULT_TRACE").is_ok() {
                eprintln!("killed {} after {:?}", args[0], started.elapsed());
            }
            run_to_end(url, args);
            v.faults += 1;
            *v.killed_in
                .entry(format!("{} {doing}", args[0]))
                .or_default() += 1;
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[derive(Default)]
struct Verdict {
    /// A connection to the scenario's database, to see what zerodown was doing when killed.
    probe: Option<Client>,
    /// Faults per command and statement being run at the kill.
    killed_in: std::collections::BTreeMap<String, u32>,
    faults: u32,
    lost_writes: usize,
    mismatched_rows: i64,
    dirty_catalogs: u32,
    max_batches_redone: i64,
}

impl Verdict {
    fn line(&self) -> String {
        format!(
            "faults: {}, lost writes: {}, mismatched rows: {}, dirty catalogs: {}, max batches redone: {}",
            self.faults,
            self.lost_writes,
            self.mismatched_rows,
            self.dirty_catalogs,
            self.max_batches_redone
        )
    }

    fn assert_clean(&self) {
        assert_eq!(
            (self.lost_writes, self.mismatched_rows, self.dirty_catalogs),
            (0, 0, 0),
            "{}",
            self.line()
        );
        assert!(self.max_batches_redone <= 1, "{}", self.line());
    }
}

fn one<T: postgres::types::FromSqlOwned>(c: &mut Client, sql: &str) -> T {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// zerodown's scaffolding left behind: triggers, functions, sequences, NOT VALID constraints, INVALID
/// indexes, and a state row stuck in a running phase.
fn dirt(c: &mut Client) -> Vec<String> {
    c.query(
        "SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgname LIKE 'zd\\_%'
         UNION ALL SELECT 'function ' || proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'zerodown' OR proname LIKE 'zd\\_%'
         UNION ALL SELECT 'sequence ' || relname FROM pg_class WHERE relkind = 'S' AND relname LIKE 'zd\\_%'
         UNION ALL SELECT 'constraint ' || conname || ' (NOT VALID)' FROM pg_constraint WHERE NOT convalidated
         UNION ALL SELECT 'index ' || indexrelid::regclass::text || ' (INVALID)' FROM pg_index WHERE NOT indisvalid
         UNION ALL SELECT 'state row ' || name || ' ' || status FROM zerodown.migrations WHERE status IN ('started', 'completing', 'rolling-back')",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Lost writes: acknowledged balances not there, acknowledged inserts missing.
fn lost_writes(c: &mut Client, ledger: &Ledger) -> usize {
    let rows = c.query("SELECT id, balance FROM accounts", &[]).unwrap();
    let now: HashMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut lost = ledger
        .balance
        .iter()
        .filter(|(id, b)| !ledger.uncertain.contains(id) && now.get(id) != Some(b))
        .count();
    let emails: HashSet<String> = c
        .query("SELECT email FROM accounts WHERE email LIKE 'ins%'", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    lost += ledger
        .inserted
        .iter()
        .filter(|e| !emails.contains(*e))
        .count();
    lost
}

/// Rows whose `tier` differs from the expression: every writer that set it set the expression's value.
fn mismatches(c: &mut Client) -> i64 {
    one(
        c,
        &format!("SELECT count(*) FROM accounts WHERE tier IS DISTINCT FROM ({TIER_EXPR})"),
    )
}

/// A committed batch counted twice shows as more keys done than the backfill covers.
fn batches_redone(c: &mut Client) -> i64 {
    let (done, total): (i64, i64) = c
        .query_one(
            "SELECT rows_done, rows_total FROM zerodown.migrations ORDER BY id DESC LIMIT 1",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    i64::from(done > total)
}

/// One scenario: start (faulted) → complete or rollback (faulted), under writers; then the oracles.
fn scenario(major: u32, roll_back: bool, v: &mut Verdict) {
    let Some(pg) = support::pg(major) else {
        return;
    };
    let db = pg.fresh_database("faults");
    let app_url = setup(&db, ROWS);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("0042_tier.toml");
    std::fs::write(&file, TIER_TOML).unwrap();
    let file = file.display().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let deployed = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let writers = spawn_writers(app_url, stop.clone(), deployed.clone(), ledger.clone());
    let url = db.url().to_string();

    let start = [
        "start",
        file.as_str(),
        "--batch-time",
        "10ms",
        "--pause",
        "2ms",
    ];
    v.probe = None;
    run_through(&url, &start, Duration::from_millis(500), v);
    let mut c = db.connect();
    v.max_batches_redone = v.max_batches_redone.max(batches_redone(&mut c));
    if roll_back {
        run_through(
            &url,
            &["rollback", "0042_tier"],
            Duration::from_millis(140),
            v,
        );
    } else {
        // Deployed once the inserting writer has inserted twice since: an insert already under
        // way may be the old version's, the one after it reads the flag.
        let inserted = || ledger.lock().unwrap().inserted.len();
        let before = inserted();
        deployed.store(true, Ordering::SeqCst);
        while inserted() < before + 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        run_through(
            &url,
            &["complete", "0042_tier", "--quiet-period", "100ms"],
            Duration::from_millis(800),
            v,
        );
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }

    v.probe = None;
    v.lost_writes += lost_writes(&mut c, &ledger.lock().unwrap());
    let mut dirty = dirt(&mut c);
    let status: String = one(
        &mut c,
        "SELECT status FROM zerodown.migrations ORDER BY id DESC LIMIT 1",
    );
    let tier_exists: bool = one(
        &mut c,
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'tier' AND NOT attisdropped)",
    );
    if roll_back {
        if status != "rolled-back" || tier_exists {
            dirty.push(format!("status {status}, tier exists: {tier_exists}"));
        }
        let zd_indexes: i64 = one(
            &mut c,
            "SELECT count(*) FROM pg_class WHERE relkind = 'i' AND relname LIKE 'zd\\_%'",
        );
        if zd_indexes > 0 {
            dirty.push(format!("{zd_indexes} zd_ index(es) after rollback"));
        }
    } else {
        let not_null: bool = one(
            &mut c,
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'tier'",
        );
        if status != "completed" || !not_null {
            dirty.push(format!("status {status}, NOT NULL: {not_null}"));
        }
        v.mismatched_rows += mismatches(&mut c);
    }
    if !dirty.is_empty() {
        eprintln!("dirty catalog on PostgreSQL {major}: {dirty:?}");
        v.dirty_catalogs += 1;
    }
}

fn sigkill_anywhere_loses_nothing(major: u32) {
    if support::pg(major).is_none() {
        return;
    }
    let soak = std::env::var("ZERODOWN_SOAK").is_ok_and(|x| x == "1");
    let mut v = Verdict::default();
    let mut i = 0;
    // Quick: one complete and one rollback per major; the soak keeps one rollback in three.
    while (soak && v.faults < 100) || (!soak && i < 2) {
        scenario(major, i % 3 == 1, &mut v);
        i += 1;
    }
    println!("PostgreSQL {major}: {}", v.line());
    println!("PostgreSQL {major}: killed during {:?}", v.killed_in);
    v.assert_clean();
}

/// Starts a slow backfill in the CLI and waits until some batches are saved.
// The caller waits for the child this returns.
#[allow(clippy::zombie_processes)]
fn slow_start(url: &str, file: &str) -> std::process::Child {
    let mut child = zerodown(
        url,
        &["start", file, "--batch-time", "10ms", "--pause", "2ms"],
    )
    .spawn()
    .unwrap();
    let mut c = Client::connect(url, NoTls).unwrap();
    let t0 = Instant::now();
    loop {
        let done: Option<i64> = c
            .query_opt(
                "SELECT rows_done FROM zerodown.migrations WHERE status = 'started'",
                &[],
            )
            .ok()
            .flatten()
            .map(|r| r.get(0));
        if done.is_some_and(|d| d > 200) {
            return child;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the backfill made no progress in 20s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finish_child(child: std::process::Child) -> String {
    let o = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "start failed after the fault: {text}");
    text
}

/// The backfill after a dropped connection: nothing NULL, no row off the expression, no committed
/// batch done twice, no acknowledged write lost.
fn check_after_reconnect(db: &PgTestDb, ledger: &Ledger) {
    let mut c = db.connect();
    let status: String = one(&mut c, "SELECT status FROM zerodown.migrations");
    assert_eq!(status, "backfilled");
    assert_eq!(mismatches(&mut c), 0);
    assert_eq!(batches_redone(&mut c), 0);
    assert_eq!(lost_writes(&mut c, ledger), 0);
}

fn ending_zerodowns_sessions_mid_backfill_reconnects(major: u32) {
    let Some(pg) = support::pg(major) else {
        return;
    };
    let db = pg.fresh_database("terminate");
    let app_url = setup(&db, ROWS);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("0042_tier.toml");
    std::fs::write(&file, TIER_TOML).unwrap();
    let (stop, ledger) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Ledger::default())),
    );
    let writers = spawn_writers(
        app_url,
        stop.clone(),
        Arc::new(AtomicBool::new(false)),
        ledger.clone(),
    );
    let child = slow_start(db.url(), &file.display().to_string());
    let mut c = db.connect();
    let ended: i64 = one(
        &mut c,
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name LIKE 'zerodown zd-%') t",
    );
    assert_eq!(ended, 2, "zerodown's session and its driver-lock session");
    let t0 = Instant::now();
    let text = finish_child(child);
    if std::env::var("ZERODOWN_FAULT_TRACE").is_ok() {
        eprintln!("finished {:?} after the fault: {text}", t0.elapsed());
    }
    assert!(text.contains("connected again"), "{text}");
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    check_after_reconnect(&db, &ledger.lock().unwrap());
}

fn a_server_restart_mid_backfill_reconnects(major: u32) {
    let Some(pg) = support::PgServer::start_dedicated(major) else {
        return;
    };
    let db = pg.fresh_database("restart");
    let app_url = setup(&db, ROWS);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("0042_tier.toml");
    std::fs::write(&file, TIER_TOML).unwrap();
    let (stop, ledger) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Ledger::default())),
    );
    let writers = spawn_writers(
        app_url,
        stop.clone(),
        Arc::new(AtomicBool::new(false)),
        ledger.clone(),
    );
    let child = slow_start(db.url(), &file.display().to_string());
    // Held still while the server restarts, so the backfill cannot finish first however fast the
    // machine: its next statement after SIGCONT meets the dead connection.
    unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
    let done: i64 = db
        .connect()
        .query_one("SELECT rows_done FROM zerodown.migrations", &[])
        .unwrap()
        .get(0);
    assert!(
        done < ROWS,
        "the backfill ended before it could be held ({done} rows)"
    );
    pg.restart();
    unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
    let text = finish_child(child);
    assert!(text.contains("connected again"), "{text}");
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    check_after_reconnect(&db, &ledger.lock().unwrap());
}

/// A session that looks like run `run`'s (its `application_name`), optionally holding the driver lock
/// and busy in a long statement, as a killed zerodown's sessions linger when the server has not noticed.
fn fake_session(db: &PgTestDb, app: &str, hold_lock: bool) -> Client {
    let mut c = Client::connect(
        &format!("{}?application_name={}", db.url(), app.replace(' ', "%20")),
        NoTls,
    )
    .unwrap();
    if hold_lock {
        c.batch_execute("SELECT pg_advisory_lock(31332, 1)")
            .unwrap();
    }
    c
}

fn a_dead_runs_sessions_are_ended_only_when_its_heartbeat_is_stale(major: u32) {
    let Some(pg) = support::pg(major) else {
        return;
    };
    let db = pg.fresh_database("leftovers");
    setup(&db, 2_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("0042_tier.toml");
    std::fs::write(&file, TIER_TOML).unwrap();
    let url = db.url().to_string();
    run_to_end(&url, &["start", &file.display().to_string()]);
    let mut c = db.connect();

    // A live run (fresh heartbeat) holds the lock: a second driver is refused, naming it; nothing ended.
    let live = "zd-1-live01";
    c.execute(
        "UPDATE zerodown.migrations SET run_id = $1, heartbeat = now()",
        &[&live],
    )
    .unwrap();
    let mut holder = fake_session(&db, &format!("zerodown {live} driver"), true);
    let o = zerodown(&url, &["complete", "0042_tier", "--quiet-period", "0s"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("another zerodown") && text.contains(live) && text.contains("heartbeat"),
        "{text}"
    );
    holder
        .batch_execute("SELECT 1")
        .expect("a live run's session is never ended");
    drop(holder);

    // A dead run (heartbeat an hour old) holds the lock and left a long statement running: both ended.
    let dead = "zd-2-dead02";
    c.execute(
        "UPDATE zerodown.migrations SET run_id = $1, heartbeat = now() - interval '1 hour'",
        &[&dead],
    )
    .unwrap();
    let _holder = fake_session(&db, &format!("zerodown {dead} driver"), true);
    let sleeper_url = format!("{}?application_name=zerodown%20{dead}", db.url());
    let sleeper = std::thread::spawn(move || {
        let mut s = Client::connect(&sleeper_url, NoTls).unwrap();
        s.batch_execute("SELECT pg_sleep(600)").is_err()
    });
    support::wait_for("the dead run's statement", || {
        let n: i64 = one(
            &mut c,
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'zerodown {dead}'
                 AND state = 'active' AND query LIKE 'SELECT pg\\_sleep%'"
            ),
        );
        n > 0
    });
    let text = run_to_end(&url, &["complete", "0042_tier", "--quiet-period", "0s"]);
    assert!(
        text.contains(&format!("ended 2 session(s) left by run {dead}"))
            || (text.contains(&format!("left by run {dead}")) && text.contains("pg_sleep")),
        "{text}"
    );
    assert!(
        sleeper.join().unwrap(),
        "the dead run's statement was ended"
    );
    assert_eq!(dirt(&mut c), Vec::<String>::new());
}

/// A kill aimed at CREATE INDEX CONCURRENTLY: an old snapshot keeps the build waiting, zerodown is killed
/// while it waits, and the re-run drops the INVALID index the build left and builds it again.
fn sigkill_mid_create_index_concurrently(major: u32) {
    let Some(pg) = support::pg(major) else {
        return;
    };
    let db = pg.fresh_database("cic");
    setup(&db, 2_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("0042_tier.toml");
    std::fs::write(&file, TIER_TOML).unwrap();
    let url = db.url().to_string();
    run_to_end(&url, &["start", &file.display().to_string()]);
    let mut old = db.connect();
    old.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class")
        .unwrap();
    let mut child = zerodown(&url, &["complete", "0042_tier", "--quiet-period", "0s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut c = db.connect();
    let t0 = Instant::now();
    let building = loop {
        let n: i64 = one(
            &mut c,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'zerodown zd-%'
             AND state = 'active' AND query ILIKE '%INDEX CONCURRENTLY%'",
        );
        if n > 0 || t0.elapsed() > Duration::from_secs(20) || child.try_wait().unwrap().is_some() {
            break n > 0;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = child.kill();
    child.wait().unwrap();
    old.batch_execute("COMMIT").unwrap();
    assert!(building, "complete never reached CREATE INDEX CONCURRENTLY");
    run_to_end(&url, &["complete", "0042_tier", "--quiet-period", "0s"]);
    assert_eq!(dirt(&mut c), Vec::<String>::new());
    let status: String = one(&mut c, "SELECT status FROM zerodown.migrations");
    assert_eq!(status, "completed");
    let valid: i64 = one(
        &mut c,
        "SELECT count(*) FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
         WHERE x.relname LIKE 'zd\\_%' AND i.indisvalid AND i.indrelid = 'accounts'::regclass",
    );
    assert_eq!(valid, 1, "the index was built again");
    assert_eq!(mismatches(&mut c), 0);
}
