//! Fault injection on MariaDB 10.11: SIGKILL `zerodown` at random moments of start (mid-backfill),
//! complete (mid INPLACE MODIFY / index build) and rollback, or KILL its server connections, while
//! application writers run as a non-root user (updates of the source column, inserts, deletes); KILL
//! zerodown's connections and restart the server mid-backfill; leave a dead run's connections behind.
//! Then the oracles: no acknowledged write lost, no row breaking the window semantics, a clean catalog,
//! and a resumed backfill redoing no committed batch.
//!
//! Quick by default; `ZERODOWN_SOAK=1` runs at least 100 faults and prints the figure line.

mod support;

use mysql::prelude::Queryable;
use mysql::{Conn, Opts};
use rand::RngExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{MariaDbOptions, MariaDbServer, MariaDbTestDb};

const ROWS: i64 = 20_000;

/// Rows of the scenarios' table: [`ROWS`], or `ZERODOWN_FAULT_ROWS` to try longer builds by hand.
fn rows() -> i64 {
    std::env::var("ZERODOWN_FAULT_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROWS)
}
const TIER_EXPR: &str = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END";
const TIER_TOML: &str = "[add_column]\ntable = \"accounts\"\ncolumn = \"tier\"\ntype = \"varchar(16)\"\nnot_null = true\nbackfill = \"CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END\"\ndefault = \"'standard'\"\nindex = true\n";
/// Small batches with a rest between them, so a backfill of [`ROWS`] lasts long enough to be hit.
const SLOW: &[&str] = &["--batch-time", "5ms", "--pause", "5ms"];

/// `accounts(id, email, balance)` with `rows` rows; returns the application user's URL.
fn setup(db: &MariaDbTestDb, rows: i64) -> String {
    let app = db.create_app_user();
    let mut c = db.connect();
    c.query_drop(
        "CREATE TABLE accounts (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
           email varchar(100) NOT NULL, balance bigint NOT NULL, UNIQUE KEY email (email)) ENGINE=InnoDB",
    )
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO accounts (email, balance) SELECT concat('u', seq, '@x'), (seq * 7919) % 20000 FROM seq_1_to_{rows}"
    ))
    .unwrap();
    app
}

fn write_spec(dir: &tempfile::TempDir) -> String {
    let file = dir.path().join("0042_tier.toml");
    std::fs::write(&file, TIER_TOML).unwrap();
    file.display().to_string()
}

/// What the application saw acknowledged: each row's last balance, the rows it inserted (and has not
/// deleted) and the ones it deleted, and the rows whose last write's outcome it could not know (an
/// error, a dropped connection).
#[derive(Default)]
struct Ledger {
    balance: HashMap<i64, i64>,
    inserted: Vec<String>,
    deleted: HashSet<String>,
    uncertain: HashSet<i64>,
}

fn tier_of(balance: i64) -> &'static str {
    if balance > 10_000 { "gold" } else { "standard" }
}

fn app_conn(url: &str) -> Option<Conn> {
    Conn::new(Opts::from_url(url).ok()?).ok()
}

fn is_unknown_column(e: &mysql::Error) -> bool {
    matches!(e, mysql::Error::MySqlError(m) if m.code == 1054)
}

/// Application writers as a non-root user, each on its own slice of ids: writer 0 an old version
/// (never names `tier`) until deployed, writer 1 a new version in short transactions, writer 2 inserts,
/// writer 3 deletes rows writer 2 inserted (never rows the backfill covers, so its count of keys done
/// must match the count of keys it had to do). They reconnect when the server goes away.
fn spawn_writers(
    app_url: String,
    stop: Arc<AtomicBool>,
    deployed: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..4)
        .map(|w: i64| {
            let (url, stop, deployed, ledger) = (
                app_url.clone(),
                stop.clone(),
                deployed.clone(),
                ledger.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = rand::rng();
                let mut conn: Option<Conn> = None;
                let mut i = 0i64;
                while !stop.load(Ordering::SeqCst) {
                    let Some(c) = conn.as_mut() else {
                        conn = app_conn(&url);
                        if conn.is_none() {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        continue;
                    };
                    i += 1;
                    let id = 1 + 4 * rng.random_range(0..rows() / 4) + w;
                    let balance = rng.random_range(0..20_000i64);
                    let tier = tier_of(balance);
                    let new_version = deployed.load(Ordering::SeqCst);
                    let r: Result<(), mysql::Error> = match w {
                        0 if new_version => c.exec_drop(
                            "UPDATE accounts SET balance = ?, tier = ? WHERE id = ?",
                            (balance, tier, id),
                        ),
                        0 => c.exec_drop(
                            "UPDATE accounts SET balance = ? WHERE id = ?",
                            (balance, id),
                        ),
                        1 => {
                            // Sets `tier` where the column exists, else writes only the balance.
                            let mut attempt = |with_tier: bool| -> Result<(), mysql::Error> {
                                let mut tx = c.start_transaction(mysql::TxOpts::default())?;
                                if with_tier {
                                    tx.exec_drop(
                                        "UPDATE accounts SET balance = ?, tier = ? WHERE id = ?",
                                        (balance, tier, id),
                                    )?;
                                } else {
                                    tx.exec_drop(
                                        "UPDATE accounts SET balance = ? WHERE id = ?",
                                        (balance, id),
                                    )?;
                                }
                                std::thread::sleep(Duration::from_millis(3));
                                tx.commit()
                            };
                            attempt(true).or_else(|e| {
                                if is_unknown_column(&e) {
                                    attempt(false)
                                } else {
                                    Err(e)
                                }
                            })
                        }
                        2 => {
                            let email = format!("ins{w}-{i}-{}@x", rng.random_range(0..u32::MAX));
                            let r = if new_version {
                                c.exec_drop(
                                    "INSERT INTO accounts (email, balance, tier) VALUES (?, ?, ?)",
                                    (&email, balance, tier),
                                )
                            } else {
                                c.exec_drop(
                                    "INSERT INTO accounts (email, balance) VALUES (?, ?)",
                                    (&email, balance),
                                )
                            };
                            if r.is_ok() {
                                ledger.lock().unwrap().inserted.push(email);
                            } else {
                                conn = None;
                            }
                            std::thread::sleep(Duration::from_millis(2));
                            continue;
                        }
                        _ => {
                            std::thread::sleep(Duration::from_millis(10));
                            let email = {
                                let mut l = ledger.lock().unwrap();
                                let n = l.inserted.len();
                                (n > 0).then(|| l.inserted.swap_remove(rng.random_range(0..n)))
                            };
                            let Some(email) = email else {
                                continue;
                            };
                            // An unacknowledged delete is in neither list: its row may or may not be there.
                            match c.exec_drop("DELETE FROM accounts WHERE email = ?", (&email,)) {
                                Ok(()) => {
                                    ledger.lock().unwrap().deleted.insert(email);
                                }
                                Err(_) => conn = None,
                            }
                            continue;
                        }
                    };
                    let mut l = ledger.lock().unwrap();
                    match r {
                        Ok(()) => {
                            l.balance.insert(id, balance);
                            l.uncertain.remove(&id);
                        }
                        Err(_) => {
                            l.uncertain.insert(id);
                            drop(l);
                            conn = None;
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

fn trace() -> bool {
    std::env::var("ZERODOWN_FAULT_TRACE").is_ok()
}

/// Runs a command to the end; a run refused because the killed one's connections are still going
/// away is tried again. Returns its output.
fn run_to_end(url: &str, args: &[&str]) -> String {
    let t0 = Instant::now();
    loop {
        let o = zerodown(url, args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if trace() {
            eprintln!("{} → {}: {text}", args[0], o.status);
        }
        assert!(
            !text.contains("zerodown:zerodown@"),
            "password printed: {text}"
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

/// Whether connection `id` is running its `SLEEP`, by the process list.
fn is_sleeping(c: &mut Conn, id: u32) -> bool {
    c.exec_first::<i64, _, _>(
        "SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND COMMAND = 'Query' AND INFO LIKE 'SELECT SLEEP%'",
        (id,),
    )
    .unwrap()
    .unwrap_or(0)
        > 0
}

/// Waits until connection `id` is running its `SLEEP`.
fn wait_sleeping(c: &mut Conn, id: u32) {
    support::wait_for("the sleeper's statement", || is_sleeping(c, id));
}

fn one<T: mysql::prelude::FromValue>(c: &mut Conn, sql: &str) -> T {
    c.query_first::<T, _>(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// The connection ids zerodown recorded for its run in the newest state row.
fn recorded_connections(c: &mut Conn) -> Vec<u64> {
    let rec: Option<Option<String>> = c
        .query_first("SELECT connections FROM zerodown_migrations ORDER BY id DESC LIMIT 1")
        .unwrap_or(None);
    rec.flatten()
        .and_then(|r| r.split_once(':').map(|(_, ids)| ids.to_string()))
        .map(|ids| ids.split(',').filter_map(|i| i.parse().ok()).collect())
        .unwrap_or_default()
}

/// KILLs zerodown's recorded connections that are still there; returns how many.
fn kill_recorded(c: &mut Conn) -> usize {
    let mut n = 0;
    for id in recorded_connections(c) {
        if c.query_drop(format!("KILL CONNECTION {id}")).is_ok() {
            n += 1;
        }
    }
    n
}

/// What zerodown's connections are running now, in a word.
fn doing(c: &mut Conn) -> String {
    let ids = recorded_connections(c);
    let infos: Vec<String> = c
        .query(
            "SELECT concat(ID, ' ', coalesce(INFO, '')) FROM information_schema.PROCESSLIST
             WHERE COMMAND IN ('Query', 'Execute') AND ID <> CONNECTION_ID() AND DB = DATABASE()",
        )
        .unwrap_or_default();
    infos
        .iter()
        .filter_map(|i| {
            let (id, q) = i.split_once(' ')?;
            ids.contains(&id.parse().ok()?).then(|| q.to_string())
        })
        .map(|q| {
            if q.contains(" MODIFY COLUMN ") {
                "MODIFY (INPLACE)".to_string()
            } else if q.contains(" ADD INDEX ") {
                "ADD INDEX (INPLACE)".to_string()
            } else if q.contains("DROP COLUMN") {
                "DROP COLUMN".to_string()
            } else {
                q.split_whitespace()
                    .find(|w| {
                        !matches!(w.to_ascii_uppercase().as_str(), "SET" | "STATEMENT" | "FOR")
                            && !w.contains('=')
                    })
                    .unwrap_or("?")
                    .to_uppercase()
            }
        })
        .next()
        .unwrap_or_else(|| "between statements".into())
}

#[derive(Default)]
struct Verdict {
    /// Faults per command, kind and statement being run at the fault.
    killed_in: BTreeMap<String, u32>,
    faults: u32,
    lost_writes: usize,
    mismatched_rows: i64,
    dirty_catalogs: u32,
    max_batches_redone: i64,
    /// Runs that did not survive a KILL of their connections by reconnecting (with nobody else
    /// driving, they must).
    failed_after_kill: u32,
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
        assert_eq!(
            self.failed_after_kill, 0,
            "runs that did not reconnect after KILL CONNECTION: {:?}",
            self.killed_in
        );
    }
}

/// Runs a command and injects a fault while it runs: SIGKILL of the binary (two times in three), or
/// KILL of its recorded server connections, after which it must finish by itself. Half the time the
/// fault waits until zerodown runs a statement named in `aim` (an INPLACE build is over in tens of
/// milliseconds on this table, so a random moment rarely hits it); otherwise it lands after a random
/// delay below `window`. Then runs the command again to the end.
fn run_through(db: &MariaDbTestDb, args: &[&str], window: Duration, aim: &[&str], v: &mut Verdict) {
    let url = db.url();
    let mut rng = rand::rng();
    let delay = Duration::from_micros(rng.random_range(0..window.as_micros() as u64));
    let kill_connections = rng.random_range(0..3) == 0;
    // One target per run, so a later statement (the index build after the MODIFY) gets hit too.
    let aim: Vec<&str> = match aim.len() {
        0 => vec![],
        n => vec![aim[rng.random_range(0..n)]],
    };
    let aimed = !aim.is_empty() && rng.random_range(0..2) == 0;
    let mut child = zerodown(url, args).spawn().unwrap();
    let started = Instant::now();
    let mut probe = db.connect();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            if !status.success() {
                let o = child.wait_with_output().unwrap();
                panic!(
                    "zerodown {args:?} failed without a fault: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            return;
        }
        let what = if aimed {
            doing(&mut probe)
        } else {
            String::new()
        };
        let due = if aimed {
            aim.iter().any(|a| what.starts_with(a)) || started.elapsed() >= window * 4
        } else {
            started.elapsed() >= delay
        };
        if due {
            let what = if aimed { what } else { doing(&mut probe) };
            let kind = if kill_connections && kill_recorded(&mut probe) > 0 {
                "KILL CONNECTION"
            } else {
                child.kill().unwrap();
                "SIGKILL"
            };
            let o = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            if trace() {
                eprintln!(
                    "{kind} {} during {what} after {:?}: {}",
                    args[0],
                    started.elapsed(),
                    text
                );
            }
            let mut key = format!("{} {kind} {what}", args[0]);
            if kind == "KILL CONNECTION" && !o.status.success() {
                // Allowed only when the kill hit the driver lock's session and another run took
                // over; with nobody else running, zerodown must reconnect and finish.
                key.push_str(" (FAILED IN-PROCESS)");
                v.failed_after_kill += 1;
                eprintln!("zerodown {args:?} did not survive KILL CONNECTION: {text}");
            }
            run_to_end(url, args);
            v.faults += 1;
            *v.killed_in.entry(key).or_default() += 1;
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// zerodown's scaffolding left behind: triggers, sequences or counter tables, and a state row stuck
/// in a running phase.
fn dirt(c: &mut Conn) -> Vec<String> {
    c.query(
        "SELECT concat('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE 'zd\\_%'
         UNION ALL SELECT concat(lower(TABLE_TYPE), ' ', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'zd\\_%'
         UNION ALL SELECT concat('state row ', name, ' ', status) FROM zerodown_migrations WHERE status IN ('started', 'completing', 'rolling-back')",
    )
    .unwrap()
}

/// Lost writes: acknowledged balances not there, acknowledged inserts missing, acknowledged deletes
/// undone.
fn lost_writes(c: &mut Conn, ledger: &Ledger) -> usize {
    let now: HashMap<i64, i64> = c
        .query::<(i64, i64), _>("SELECT id, balance FROM accounts")
        .unwrap()
        .into_iter()
        .collect();
    let mut lost = ledger
        .balance
        .iter()
        .filter(|(id, b)| !ledger.uncertain.contains(id) && now.get(id) != Some(b))
        .count();
    let emails: HashSet<String> = c
        .query("SELECT email FROM accounts WHERE email LIKE 'ins%'")
        .unwrap()
        .into_iter()
        .collect();
    lost += ledger
        .inserted
        .iter()
        .filter(|e| !emails.contains(*e))
        .count();
    lost += ledger
        .deleted
        .iter()
        .filter(|e| emails.contains(*e))
        .count();
    lost
}

/// Rows whose `tier` differs from the expression: every writer that set it set the expression's value.
fn mismatches(c: &mut Conn) -> i64 {
    one(
        c,
        &format!("SELECT count(*) FROM accounts WHERE NOT (tier <=> ({TIER_EXPR}))"),
    )
}

/// A committed batch counted twice shows as more keys done than the backfill covers.
fn batches_redone(c: &mut Conn) -> i64 {
    let row: Option<(i64, Option<i64>)> = c
        .query_first(
            "SELECT rows_done, rows_total FROM zerodown_migrations ORDER BY id DESC LIMIT 1",
        )
        .unwrap();
    row.map_or(0, |(done, total)| i64::from(done > total.unwrap_or(0)))
}

/// One scenario: start (faulted) → complete or rollback (faulted), under writers; then the oracles.
fn scenario(roll_back: bool, v: &mut Verdict) {
    let Some(server) = support::mariadb() else {
        return;
    };
    let db = server.fresh_database("faults");
    let app_url = setup(&db, rows());
    let dir = tempfile::tempdir().unwrap();
    let file = write_spec(&dir);
    let stop = Arc::new(AtomicBool::new(false));
    let deployed = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let writers = spawn_writers(app_url, stop.clone(), deployed.clone(), ledger.clone());

    let mut start = vec!["start", file.as_str()];
    start.extend_from_slice(SLOW);
    run_through(
        &db,
        &start,
        Duration::from_millis(1500),
        &["UPDATE", "UPDATE", "CREATE", "ALTER"],
        v,
    );
    let mut c = db.connect();
    v.max_batches_redone = v.max_batches_redone.max(batches_redone(&mut c));
    if roll_back {
        run_through(
            &db,
            &["rollback", "0042_tier"],
            Duration::from_millis(150),
            &["DROP COLUMN", "ALTER", "DROP"],
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
            &db,
            &["complete", "0042_tier", "--quiet-period", "100ms"],
            Duration::from_millis(600),
            &["MODIFY", "ADD INDEX", "UPDATE", "ALTER", "DROP"],
            v,
        );
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }

    v.lost_writes += lost_writes(&mut c, &ledger.lock().unwrap());
    let mut dirty = dirt(&mut c);
    let status: String = one(
        &mut c,
        "SELECT status FROM zerodown_migrations ORDER BY id DESC LIMIT 1",
    );
    let tier: Option<String> = c
        .query_first(
            "SELECT IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'accounts' AND COLUMN_NAME = 'tier'",
        )
        .unwrap();
    let zd_indexes: i64 = one(
        &mut c,
        "SELECT count(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME LIKE 'zd\\_%'",
    );
    if roll_back {
        if status != "rolled-back" || tier.is_some() || zd_indexes > 0 {
            dirty.push(format!(
                "status {status}, tier: {tier:?}, zd_ indexes: {zd_indexes}"
            ));
        }
    } else {
        if status != "completed" || tier.as_deref() != Some("NO") || zd_indexes != 1 {
            dirty.push(format!(
                "status {status}, tier nullable: {tier:?}, zd_ indexes: {zd_indexes}"
            ));
        }
        v.mismatched_rows += mismatches(&mut c);
    }
    if !dirty.is_empty() {
        eprintln!("dirty catalog on MariaDB: {dirty:?}");
        v.dirty_catalogs += 1;
    }
}

#[test]
fn faults_anywhere_lose_nothing() {
    if support::mariadb().is_none() {
        return;
    }
    let soak = std::env::var("ZERODOWN_SOAK").is_ok_and(|x| x == "1");
    let mut v = Verdict::default();
    let mut i = 0;
    // Quick: one complete and one rollback; the soak keeps one rollback in three.
    while (soak && v.faults < 100) || (!soak && i < 2) {
        scenario(i % 3 == 1, &mut v);
        i += 1;
    }
    println!("{}", v.line());
    eprintln!("faulted during: {:?}", v.killed_in);
    v.assert_clean();
}

/// Starts a slow backfill in the CLI and waits until some batches are saved.
// The caller waits for the child this returns.
#[allow(clippy::zombie_processes)]
fn slow_start(db: &MariaDbTestDb, file: &str) -> std::process::Child {
    let mut child = zerodown(
        db.url(),
        &["start", file, "--batch-time", "2ms", "--pause", "50ms"],
    )
    .spawn()
    .unwrap();
    let mut c = db.connect();
    let t0 = Instant::now();
    loop {
        let done: Option<i64> = c
            .query_first("SELECT rows_done FROM zerodown_migrations WHERE status = 'started'")
            .ok()
            .flatten();
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
fn check_after_reconnect(db: &MariaDbTestDb, ledger: &Ledger) {
    let mut c = db.connect();
    let status: String = one(&mut c, "SELECT status FROM zerodown_migrations");
    assert_eq!(status, "backfilled");
    assert_eq!(mismatches(&mut c), 0);
    assert_eq!(batches_redone(&mut c), 0);
    assert_eq!(lost_writes(&mut c, ledger), 0);
}

/// A slow `start` under the application's writers, hit by `fault` mid-backfill: zerodown must say it
/// reconnected, finish in-process, and pass the oracles. Returns the spec's directory and file.
fn reconnects_through(db: &MariaDbTestDb, fault: impl FnOnce()) -> (tempfile::TempDir, String) {
    let app_url = setup(db, ROWS);
    let dir = tempfile::tempdir().unwrap();
    let file = write_spec(&dir);
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
    let child = slow_start(db, &file);
    fault();
    let text = finish_child(child);
    assert!(text.contains("connected again"), "{text}");
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    check_after_reconnect(db, &ledger.lock().unwrap());
    (dir, file)
}

#[test]
fn killing_zerodowns_connections_mid_backfill_reconnects() {
    let Some(server) = support::mariadb() else {
        return;
    };
    let db = server.fresh_database("kill_conn");
    reconnects_through(&db, || {
        assert_eq!(
            kill_recorded(&mut db.connect()),
            2,
            "zerodown's connection and its driver-lock session"
        );
    });
}

/// A fresh database whose migration `0042_tier` has been started (backfilled) from the CLI.
struct Started {
    db: MariaDbTestDb,
    _dir: tempfile::TempDir,
    url: String,
    /// The migration file.
    file: String,
    c: Conn,
    /// The server's boot time (connection ids are only unique within one boot).
    boot: i64,
}

fn started(name: &str) -> Option<Started> {
    let db = support::mariadb()?.fresh_database(name);
    setup(&db, 2_000);
    let dir = tempfile::tempdir().unwrap();
    let file = write_spec(&dir);
    let url = db.url().to_string();
    run_to_end(&url, &["start", &file]);
    let mut c = db.connect();
    let boot: i64 = one(
        &mut c,
        "SELECT CAST(UNIX_TIMESTAMP() AS SIGNED) - CAST(VARIABLE_VALUE AS SIGNED) FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'",
    );
    Some(Started {
        db,
        _dir: dir,
        url,
        file,
        c,
        boot,
    })
}

#[test]
fn a_server_restart_mid_backfill_reconnects() {
    let Some(server) = MariaDbServer::start_dedicated(MariaDbOptions::default()) else {
        return;
    };
    let db = server.fresh_database("restart");
    let (_dir, file) = reconnects_through(&db, || server.restart());
    // And a re-run after the restart finds nothing left to do.
    let text = run_to_end(db.url(), &["start", &file]);
    assert!(text.contains("already backfilled"), "{text}");
}

#[test]
fn a_dead_runs_connections_are_ended_only_when_its_heartbeat_is_stale() {
    let Some(Started {
        db,
        _dir,
        url,
        mut c,
        boot,
        ..
    }) = started("leftovers")
    else {
        return;
    };
    let lock = zerodown::engine::mysql::driver_lock_name(&db.name, "0042_tier");

    // A live run (fresh heartbeat) holds the lock as a killed `complete` would: a second driver is
    // refused, naming it; nothing is ended.
    let mut holder = db.connect();
    let got: i64 = holder
        .exec_first("SELECT GET_LOCK(?, 0)", (&lock,))
        .unwrap()
        .unwrap();
    assert_eq!(got, 1);
    let live = "zd-1-live01";
    c.exec_drop(
        "UPDATE zerodown_migrations SET status = 'completing', run_id = ?, heartbeat = UTC_TIMESTAMP(3), connections = ?",
        (live, format!("{boot}:{}", holder.connection_id())),
    )
    .unwrap();
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
        .query_drop("SELECT 1")
        .expect("a live run's session is never ended");

    // A dead run (heartbeat an hour old) holds the lock and left a long statement running: both ended.
    let dead = "zd-2-dead02";
    let mut sleeper = db.connect();
    let sleeper_id = sleeper.connection_id();
    c.exec_drop(
        "UPDATE zerodown_migrations SET run_id = ?, heartbeat = UTC_TIMESTAMP(3) - INTERVAL 1 HOUR, connections = ?",
        (dead, format!("{boot}:{},{sleeper_id}", holder.connection_id())),
    )
    .unwrap();
    let sleeping = std::thread::spawn(move || sleeper.query_drop("SELECT SLEEP(600)"));
    wait_sleeping(&mut c, sleeper_id);
    let text = run_to_end(&url, &["complete", "0042_tier", "--quiet-period", "0s"]);
    assert!(
        text.contains(&format!("ended 2 connection(s) left by run {dead}"))
            && text.contains("SLEEP(600)"),
        "{text}"
    );
    let slept = sleeping.join().unwrap();
    assert!(slept.is_err(), "the dead run's statement was ended");
    assert!(
        holder.query_drop("SELECT 1").is_err(),
        "the dead run's lock session was ended"
    );
    assert_eq!(dirt(&mut c), Vec::<String>::new());
    let status: String = one(&mut c, "SELECT status FROM zerodown_migrations");
    assert_eq!(status, "completed");
    assert_eq!(mismatches(&mut c), 0);
}

#[test]
fn two_migrations_on_one_database_each_have_their_own_driver_lock() {
    let a = zerodown::engine::mysql::driver_lock_name("shop", "0042_tier");
    let b = zerodown::engine::mysql::driver_lock_name("shop", "0043_other");
    assert_ne!(a, b);
    assert!(a.len() <= 64);
}

/// zerodown loses its connections and, meanwhile, another session takes the migration's driver lock:
/// it must stop with a clear error instead of driving alongside; the re-run finishes.
#[test]
fn a_run_that_finds_its_lock_taken_after_a_reconnect_stops() {
    let Some(server) = support::mariadb() else {
        return;
    };
    let db = server.fresh_database("lock_lost");
    setup(&db, ROWS);
    let dir = tempfile::tempdir().unwrap();
    let file = write_spec(&dir);
    let child = slow_start(&db, &file);
    let mut c = db.connect();
    let lock = zerodown::engine::mysql::driver_lock_name(&db.name, "0042_tier");
    let ids = recorded_connections(&mut c);
    assert_eq!(ids.len(), 2, "{ids:?}");
    // The driver session first, so the lock is free to take before zerodown notices.
    for id in ids.iter().rev() {
        c.query_drop(format!("KILL CONNECTION {id}")).unwrap();
    }
    let got: i64 = c
        .exec_first("SELECT GET_LOCK(?, 10)", (&lock,))
        .unwrap()
        .unwrap();
    assert_eq!(got, 1);
    let o = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("found the driver lock held by")
            && text.contains(&format!("connection {}", c.connection_id())),
        "{text}"
    );
    c.exec_drop("DO RELEASE_LOCK(?)", (&lock,)).unwrap();
    let text = run_to_end(db.url(), &["start", &file]);
    assert!(text.contains("backfilled"), "{text}");
    assert_eq!(mismatches(&mut c), 0);
    assert_eq!(batches_redone(&mut c), 0);
}

/// A server restart while `complete` watches for old writers: it reconnects, takes its lock again and
/// completes.
#[test]
fn a_server_restart_mid_complete_reconnects() {
    let Some(server) = MariaDbServer::start_dedicated(MariaDbOptions::default()) else {
        return;
    };
    let db = server.fresh_database("restart_complete");
    setup(&db, 2_000);
    let dir = tempfile::tempdir().unwrap();
    let file = write_spec(&dir);
    run_to_end(db.url(), &["start", &file]);
    let child = zerodown(db.url(), &["complete", "0042_tier", "--quiet-period", "3s"])
        .spawn()
        .unwrap();
    let mut c = db.connect();
    let t0 = Instant::now();
    while one::<String>(&mut c, "SELECT status FROM zerodown_migrations") != "completing" {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "complete never began"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(c);
    server.restart();
    let o = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "complete failed after the restart: {text}"
    );
    assert!(text.contains("connected again"), "{text}");
    let mut c = db.connect();
    assert_eq!(dirt(&mut c), Vec::<String>::new());
    let status: String = one(&mut c, "SELECT status FROM zerodown_migrations");
    assert_eq!(status, "completed");
}

/// A run killed a moment ago (fresh heartbeat) left a statement running: the next run does not end it
/// (the run may not be dead), but records it with its own connections, so that it is ended if this run
/// dies too and goes stale.
#[test]
fn a_fresh_runs_busy_connection_is_kept_and_recorded() {
    let Some(Started {
        db,
        _dir,
        url,
        mut c,
        boot,
        ..
    }) = started("inherit")
    else {
        return;
    };
    let mut sleeper = db.connect();
    let sleeper_id = sleeper.connection_id();
    let sleeping = std::thread::spawn(move || sleeper.query_drop("SELECT SLEEP(600)"));
    wait_sleeping(&mut c, sleeper_id);
    c.exec_drop(
        "UPDATE zerodown_migrations SET status = 'completing', run_id = 'zd-3-fresh03', heartbeat = UTC_TIMESTAMP(3), connections = ?",
        (format!("{boot}:{sleeper_id}"),),
    )
    .unwrap();
    run_to_end(&url, &["complete", "0042_tier", "--quiet-period", "0s"]);
    // Still running its statement after complete: never ended. (Then ended here, by the test.)
    assert!(
        is_sleeping(&mut c, sleeper_id),
        "a run with a fresh heartbeat is never ended"
    );
    c.query_drop(format!("KILL QUERY {sleeper_id}")).unwrap();
    let _ = sleeping.join().unwrap();
    let ids = recorded_connections(&mut c);
    assert!(ids.contains(&u64::from(sleeper_id)), "{ids:?}");
    assert_eq!(ids.len(), 3, "main, driver and the inherited one: {ids:?}");
}

/// A server restart in the middle of the INPLACE MODIFY that makes the column NOT NULL: the server
/// abandons the build, zerodown reconnects, runs it again and completes.
#[test]
fn a_server_restart_mid_inplace_build_reconnects() {
    let Some(server) = MariaDbServer::start_dedicated(MariaDbOptions::default()) else {
        return;
    };
    let db = server.fresh_database("restart_build");
    setup(&db, 200_000);
    let dir = tempfile::tempdir().unwrap();
    let file = write_spec(&dir);
    run_to_end(db.url(), &["start", &file]);
    let child = zerodown(db.url(), &["complete", "0042_tier", "--quiet-period", "0s"])
        .spawn()
        .unwrap();
    let mut c = db.connect();
    let t0 = Instant::now();
    let hit = loop {
        let what = doing(&mut c);
        if what.starts_with("MODIFY") {
            break true;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(hit, "complete never ran the MODIFY");
    drop(c);
    server.restart();
    let o = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if trace() {
        eprintln!("complete after a restart mid-MODIFY: {text}");
    }
    assert!(
        o.status.success(),
        "complete failed after the restart: {text}"
    );
    assert!(text.contains("connected again"), "{text}");
    let mut c = db.connect();
    assert_eq!(dirt(&mut c), Vec::<String>::new());
    let nullable: String = one(
        &mut c,
        "SELECT IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'accounts' AND COLUMN_NAME = 'tier'",
    );
    assert_eq!(nullable, "NO");
    assert_eq!(mismatches(&mut c), 0);
}

/// A hung run (stopped, not dead: its connections stay open) holds the driver lock and the state row
/// in an open batch, and its heartbeat is stale: `rollback` ends it instead of waiting behind it.
#[test]
fn rollback_ends_a_hung_run_holding_the_state_row() {
    let Some(Started {
        db,
        _dir,
        url,
        mut c,
        boot,
        ..
    }) = started("hung")
    else {
        return;
    };
    let lock = zerodown::engine::mysql::driver_lock_name(&db.name, "0042_tier");
    let mut driver = db.connect();
    driver.exec_drop("DO GET_LOCK(?, 0)", (&lock,)).unwrap();
    let mut batch = db.connect();
    c.exec_drop(
        "UPDATE zerodown_migrations SET status = 'started', run_id = 'zd-4-hung04', heartbeat = UTC_TIMESTAMP(3) - INTERVAL 10 MINUTE, connections = ?",
        (format!("{boot}:{},{}", batch.connection_id(), driver.connection_id()),),
    )
    .unwrap();
    batch
        .query_drop("START TRANSACTION; SELECT id FROM zerodown_migrations FOR UPDATE")
        .unwrap();
    // Ending the hung run (its connections killed, asserted below) is what lets this through:
    // behind it, the state row would stay locked for good.
    let text = run_to_end(&url, &["rollback", "0042_tier"]);
    assert!(text.contains("left by run zd-4-hung04"), "{text}");
    assert!(batch.query_drop("SELECT 1").is_err());
    assert!(driver.query_drop("SELECT 1").is_err());
    assert_eq!(dirt(&mut c), Vec::<String>::new());
    let status: String = one(&mut c, "SELECT status FROM zerodown_migrations");
    assert_eq!(status, "rolled-back");
}

/// A hung run whose driver session is gone (the lock is free) but whose batch transaction still holds
/// the state row: `start` ends it before claiming the row, and resumes.
#[test]
fn start_ends_a_hung_run_before_claiming_the_state_row() {
    let Some(Started {
        db,
        _dir,
        url,
        mut c,
        file,
        boot,
    }) = started("hung_start")
    else {
        return;
    };
    let mut batch = db.connect();
    c.exec_drop(
        "UPDATE zerodown_migrations SET status = 'started', next_step = 3, `cursor` = NULL, rows_done = 0, run_id = 'zd-5-hung05', heartbeat = UTC_TIMESTAMP(3) - INTERVAL 10 MINUTE, connections = ?",
        (format!("{boot}:{}", batch.connection_id()),),
    )
    .unwrap();
    batch
        .query_drop("START TRANSACTION; SELECT id FROM zerodown_migrations FOR UPDATE")
        .unwrap();
    // Ending the hung run (its connections killed, asserted below) is what lets this through:
    // behind it, the state row would stay locked for good.
    let text = run_to_end(&url, &["start", &file]);
    assert!(text.contains("left by run zd-5-hung05"), "{text}");
    assert!(batch.query_drop("SELECT 1").is_err());
    let status: String = one(&mut c, "SELECT status FROM zerodown_migrations");
    assert_eq!(status, "backfilled");
    assert_eq!(mismatches(&mut c), 0);
}
