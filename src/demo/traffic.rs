//! The simulated application: app instances that write (the old version, then the new one after the
//! deploy) and readers, each thread on its own connection with a busy_timeout, issuing operations on a
//! fixed schedule (open loop) and measuring each one's latency from its intended start.

use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The application's busy_timeout: longer than any write-lock hold of the migration (the plan says so).
pub const APP_BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// The part of the story an operation was scheduled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Before,
    Start,
    Deploy,
    Complete,
    After,
}

/// One application operation, as measured.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub window: Window,
    pub write: bool,
    pub ok: bool,
    /// From the operation's scheduled start to its end.
    pub latency: Duration,
    /// When it ended, since the traffic began.
    pub done_at: Duration,
}

/// State shared by the traffic threads and the demo's driver.
pub struct Shared {
    pub epoch: Instant,
    /// When each window began, since the epoch (the first is Before, at zero).
    windows: Mutex<Vec<(Duration, Window)>>,
    pub stop: AtomicBool,
    pub samples: Mutex<Vec<Sample>>,
    /// Distinct error messages with their counts.
    pub errors: Mutex<Vec<(String, u64)>>,
}

impl Shared {
    pub fn set_window(&self, w: Window) {
        self.windows.lock().unwrap().push((self.epoch.elapsed(), w));
    }

    /// The window an operation scheduled at `t` (since the epoch) belongs to: a late operation is
    /// charged to the window whose events delayed it, not to the one it finally ran in.
    fn window_at(&self, t: Duration) -> Window {
        let windows = self.windows.lock().unwrap();
        windows
            .iter()
            .rev()
            .find(|(start, _)| *start <= t)
            .map_or(Window::Before, |(_, w)| *w)
    }

    fn record(&self, s: Sample) {
        self.samples.lock().unwrap().push(s);
    }

    fn record_error(&self, message: String) {
        let mut errors = self.errors.lock().unwrap();
        match errors.iter_mut().find(|(m, _)| *m == message) {
            Some((_, n)) => *n += 1,
            None => errors.push((message, 1)),
        }
    }
}

/// The last acknowledged value of each column an application instance wrote to a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub email: Option<String>,
    pub balance: i64,
    /// Set only by the new application version, which writes the new column itself.
    pub tier: Option<String>,
}

/// Every write an application instance had acknowledged, per row.
#[derive(Debug, Default)]
pub struct Ledger {
    pub rows: HashMap<i64, Written>,
    pub writes: u64,
}

/// The tier the new application version computes itself: the migration's backfill expression, in Rust.
pub fn tier_of(balance: i64) -> &'static str {
    if balance > 10000 { "gold" } else { "standard" }
}

/// A small, fast, seedable generator (xorshift64*); the demo needs no cryptographic randomness.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

pub fn open_app_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(APP_BUSY_TIMEOUT)?;
    // The usual settings for a busy application on a WAL database: no fsync per commit, and WAL
    // checkpoints in a background thread rather than in whichever request happens to cross the
    // threshold (which would add the copy and its fsync, often hundreds of milliseconds, to that request).
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0")?;
    Ok(conn)
}

/// How often the application's background thread checkpoints the WAL.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// The application's background WAL checkpointer (PASSIVE: it never waits for, nor blocks, writers).
fn spawn_checkpointer(path: PathBuf, shared: Arc<Shared>) -> JoinHandle<Result<Ledger, String>> {
    std::thread::Builder::new()
        .name("checkpointer".into())
        .spawn(move || {
            let conn = open_app_connection(&path).map_err(|e| e.to_string())?;
            while !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    shared.record_error(format!("checkpoint: {e}"));
                }
            }
            Ok(Ledger::default())
        })
        .expect("spawning the checkpointer thread")
}

/// Runs `op` on an open-loop schedule of `rate` operations per second until `stop`.
fn open_loop(shared: &Shared, rate: f64, mut op: impl FnMut() -> (bool, Result<(), String>)) {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut next = Instant::now();
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
            if shared.stop.load(Ordering::SeqCst) {
                break;
            }
        }
        let scheduled = next;
        next += interval;
        let (write, result) = op();
        let end = Instant::now();
        let ok = result.is_ok();
        if let Err(e) = result {
            shared.record_error(e);
        }
        shared.record(Sample {
            window: shared.window_at(scheduled.saturating_duration_since(shared.epoch)),
            write,
            ok,
            latency: end.saturating_duration_since(scheduled),
            done_at: end.saturating_duration_since(shared.epoch),
        });
    }
}

/// One instance of the application: updates the balance of the rows it owns and inserts new ones; runs
/// the old version (unaware of the new column) until `deploy` is set, then reconnects as the new version,
/// which writes the new column itself.
pub struct Instance {
    pub index: usize,
    pub instances: usize,
    /// Rows loaded before the traffic (ids 1..=rows).
    pub rows: i64,
    pub rate: f64,
    pub path: PathBuf,
    /// Set by the driver: replace this instance with the new version.
    pub deploy: Arc<AtomicBool>,
    /// Set by the instance once it runs the new version.
    pub deployed: Arc<AtomicBool>,
}

impl Instance {
    pub fn spawn(self, shared: Arc<Shared>) -> JoinHandle<Result<Ledger, String>> {
        std::thread::Builder::new()
            .name(format!("app-{}", self.index))
            .spawn(move || self.run(&shared))
            .expect("spawning an application thread")
    }

    /// A row this instance owns (each row has one owning instance, so its ledger's last write is the
    /// row's last write), or one it inserted itself.
    fn pick_row(&self, rng: &mut Rng, inserted: &[i64]) -> i64 {
        let k = self.instances as i64;
        let i = self.index as i64;
        if !inserted.is_empty() && (rng.below(5) == 0 || self.rows <= i) {
            return inserted[rng.below(inserted.len() as u64) as usize];
        }
        if self.rows <= i {
            return 0; // no such row: the update changes nothing, harmlessly
        }
        let owned = (self.rows - 1 - i) / k + 1;
        1 + i + rng.below(owned as u64) as i64 * k
    }

    fn run(self, shared: &Shared) -> Result<Ledger, String> {
        let mut conn = open_app_connection(&self.path).map_err(|e| e.to_string())?;
        let mut new_version = false;
        let mut ledger = Ledger::default();
        let mut inserted: Vec<i64> = Vec::new();
        let mut rng = Rng::new(0xA11CE + self.index as u64);
        let mut seq = 0u64;
        open_loop(shared, self.rate, || {
            if !new_version && self.deploy.load(Ordering::SeqCst) {
                // The rolling deploy replaces this instance: a new process, a new connection.
                match open_app_connection(&self.path) {
                    Ok(c) => conn = c,
                    Err(e) => return (true, Err(format!("reconnecting as the new version: {e}"))),
                }
                new_version = true;
                self.deployed.store(true, Ordering::SeqCst);
            }
            let balance = rng.below(20_001) as i64;
            let tier = tier_of(balance);
            if rng.below(10) < 3 {
                seq += 1;
                let email = format!("app{}-{seq}@example.com", self.index);
                let pad = format!("{:016x}{:016x}", rng.next(), rng.next());
                let result = if new_version {
                    conn.prepare_cached(
                        "INSERT INTO accounts(email, balance, pad, tier) VALUES (?1, ?2, ?3, ?4) RETURNING id",
                    )
                    .and_then(|mut s| s.query_row(params![email, balance, pad, tier], |r| r.get::<_, i64>(0)))
                } else {
                    conn.prepare_cached("INSERT INTO accounts(email, balance, pad) VALUES (?1, ?2, ?3) RETURNING id")
                        .and_then(|mut s| s.query_row(params![email, balance, pad], |r| r.get::<_, i64>(0)))
                };
                match result {
                    Ok(id) => {
                        inserted.push(id);
                        ledger.writes += 1;
                        ledger.rows.insert(
                            id,
                            Written {
                                email: Some(email),
                                balance,
                                tier: new_version.then(|| tier.to_string()),
                            },
                        );
                        (true, Ok(()))
                    }
                    Err(e) => (true, Err(format!("insert: {e}"))),
                }
            } else {
                let id = self.pick_row(&mut rng, &inserted);
                let result = if new_version {
                    conn.prepare_cached("UPDATE accounts SET balance = ?1, tier = ?2 WHERE id = ?3")
                        .and_then(|mut s| s.execute(params![balance, tier, id]))
                } else {
                    conn.prepare_cached("UPDATE accounts SET balance = ?1 WHERE id = ?2")
                        .and_then(|mut s| s.execute(params![balance, id]))
                };
                match result {
                    Ok(n) => {
                        if n == 1 {
                            ledger.writes += 1;
                            let entry = ledger.rows.entry(id).or_insert(Written {
                                email: None,
                                balance,
                                tier: None,
                            });
                            entry.balance = balance;
                            if new_version {
                                entry.tier = Some(tier.to_string());
                            }
                        }
                        (true, Ok(()))
                    }
                    Err(e) => (true, Err(format!("update: {e}"))),
                }
            }
        });
        Ok(ledger)
    }
}

/// A reader: point selects by primary key over the loaded rows.
pub struct Reader {
    pub index: usize,
    pub rows: i64,
    pub rate: f64,
    pub path: PathBuf,
}

impl Reader {
    pub fn spawn(self, shared: Arc<Shared>) -> JoinHandle<Result<Ledger, String>> {
        std::thread::Builder::new()
            .name(format!("reader-{}", self.index))
            .spawn(move || {
                let conn = open_app_connection(&self.path).map_err(|e| e.to_string())?;
                let mut rng = Rng::new(0xBEEF + self.index as u64);
                open_loop(&shared, self.rate, || {
                    let id = 1 + rng.below(self.rows.max(1) as u64) as i64;
                    let result = conn
                        .prepare_cached("SELECT email, balance FROM accounts WHERE id = ?1")
                        .and_then(|mut s| {
                            s.query_row([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                                .optional()
                        });
                    match result {
                        Ok(Some(_)) => (false, Ok(())),
                        Ok(None) => (false, Err(format!("read: row {id} is missing"))),
                        Err(e) => (false, Err(format!("read: {e}"))),
                    }
                });
                Ok(Ledger::default())
            })
            .expect("spawning a reader thread")
    }
}

/// The running application; stopping it (or dropping it) ends every thread.
pub struct Traffic {
    pub shared: Arc<Shared>,
    pub deploy: Vec<(Arc<AtomicBool>, Arc<AtomicBool>)>,
    threads: Vec<JoinHandle<Result<Ledger, String>>>,
}

/// What the traffic left behind.
pub struct Outcome {
    pub ledgers: Vec<Ledger>,
    pub samples: Vec<Sample>,
    pub errors: Vec<(String, u64)>,
}

impl Traffic {
    pub fn start(path: &Path, rows: i64, rate: f64, instances: usize, readers: usize) -> Traffic {
        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            windows: Mutex::new(vec![(Duration::ZERO, Window::Before)]),
            stop: AtomicBool::new(false),
            samples: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
        });
        // Half the operations write (spread over the instances), half read.
        let write_rate = rate / 2.0 / instances.max(1) as f64;
        let read_rate = rate / 2.0 / readers.max(1) as f64;
        let mut threads = Vec::new();
        let mut deploy = Vec::new();
        for index in 0..instances {
            let flags = (
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
            );
            threads.push(
                Instance {
                    index,
                    instances,
                    rows,
                    rate: write_rate,
                    path: path.to_path_buf(),
                    deploy: flags.0.clone(),
                    deployed: flags.1.clone(),
                }
                .spawn(shared.clone()),
            );
            deploy.push(flags);
        }
        for index in 0..readers {
            threads.push(
                Reader {
                    index,
                    rows,
                    rate: read_rate,
                    path: path.to_path_buf(),
                }
                .spawn(shared.clone()),
            );
        }
        threads.push(spawn_checkpointer(path.to_path_buf(), shared.clone()));
        Traffic {
            shared,
            deploy,
            threads,
        }
    }

    /// Stops every thread and collects what they recorded.
    pub fn stop(mut self) -> Result<Outcome, String> {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut ledgers = Vec::new();
        let mut failure = None;
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(l)) => ledgers.push(l),
                Ok(Err(e)) => failure = Some(e),
                Err(_) => failure = Some("an application thread panicked".to_string()),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(Outcome {
            ledgers,
            samples: std::mem::take(&mut *self.shared.samples.lock().unwrap()),
            errors: std::mem::take(&mut *self.shared.errors.lock().unwrap()),
        })
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_rows_partition_the_table() {
        let mut seen = std::collections::HashSet::new();
        for index in 0..3 {
            let inst = Instance {
                index,
                instances: 3,
                rows: 10,
                rate: 1.0,
                path: PathBuf::new(),
                deploy: Arc::default(),
                deployed: Arc::default(),
            };
            let mut rng = Rng::new(index as u64);
            for _ in 0..200 {
                let id = inst.pick_row(&mut rng, &[]);
                assert!((1..=10).contains(&id));
                assert_eq!((id - 1) % 3, index as i64);
                seen.insert(id);
            }
        }
        assert_eq!(seen.len(), 10);
    }
}
