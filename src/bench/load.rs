//! The application: an open-loop load at a fixed rate (each operation has an intended start time, and
//! its latency is measured from that time, so a stall is charged to every operation it delayed — no
//! coordinated omission), and a closed-loop run that finds the machine's maximum rate for the workload.
//!
//! The mix is 70% point reads, 20% updates of `balance` (the column the backfill expression reads) and
//! 10% inserts. Reads run on reader threads and writes on writer threads, each with its own connection,
//! so a write stalled on the write lock delays later writes but never a read (as in an application
//! whose request pool is larger than its write concurrency).

use super::sys::{mono_ns, tight_timer_slack};
use super::target::{AppConn, BenchTarget, tier_of};
use crate::url::DatabaseUrl;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub const READ: u8 = 0;
pub const UPDATE: u8 = 1;
pub const INSERT: u8 = 2;

/// One operation, as measured. Times in microseconds; `at` since the load's epoch.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Intended start.
    pub at_us: u32,
    /// From the intended start to the end.
    pub lat_us: u32,
    pub op: u8,
    pub ok: bool,
}

/// A small, fast, seedable generator (xorshift64*): the load needs no cryptographic randomness.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// What a writer does next: 2 updates for every insert (20% and 10% of all operations).
fn write_op(rng: &mut Rng) -> u8 {
    if rng.below(3) == 0 { INSERT } else { UPDATE }
}

/// Everything an operation needs to know besides its connection.
struct OpCtx {
    rows: i64,
    tag: String,
    seq: u64,
}

/// Runs one operation; `new_version` writes the new column too.
fn run_op(
    conn: &mut dyn AppConn,
    op: u8,
    rng: &mut Rng,
    ctx: &mut OpCtx,
    new_version: bool,
) -> Result<(), String> {
    match op {
        READ => conn.read(1 + rng.below(ctx.rows as u64) as i64),
        UPDATE => {
            let balance = rng.below(20_001) as i64;
            let tier = new_version.then(|| tier_of(balance));
            conn.update(1 + rng.below(ctx.rows as u64) as i64, balance, tier)
        }
        _ => {
            ctx.seq += 1;
            let balance = rng.below(20_001) as i64;
            let tier = new_version.then(|| tier_of(balance));
            let email = format!("{}-{}@example.com", ctx.tag, ctx.seq);
            let pad = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
            conn.insert(&email, balance, &pad, tier)
        }
    }
}

/// The open-loop load's shape.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Operations per second in total.
    pub rate: f64,
    pub readers: usize,
    pub writers: usize,
    /// Rows loaded (ids 1..=rows are read and updated).
    pub rows: i64,
    pub busy_timeout: Duration,
}

/// A running open-loop load.
pub struct Load {
    stop: Arc<AtomicBool>,
    /// Set: the application now runs the version that writes the new column itself.
    new_version: Arc<AtomicBool>,
    /// Per writer thread: its last finished operation ran the new version.
    writers_deployed: Vec<Arc<AtomicBool>>,
    threads: Vec<JoinHandle<(Vec<Sample>, u64)>>,
    background: Option<JoinHandle<()>>,
    errors: Arc<Mutex<BTreeMap<String, u64>>>,
    stopped_at: Arc<AtomicU64>,
}

/// What a load left behind.
pub struct LoadOutcome {
    pub samples: Vec<Sample>,
    pub errors: BTreeMap<String, u64>,
    /// Operations scheduled before the load stopped but never issued (threads still behind schedule).
    pub unissued: u64,
}

impl Load {
    /// Opens every connection first (so a setup error surfaces here), then starts the threads.
    pub fn start(
        target: &dyn BenchTarget,
        url: &DatabaseUrl,
        spec: &LoadSpec,
        epoch_ns: u64,
        tag: &str,
    ) -> Result<Load, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let new_version = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(Mutex::new(BTreeMap::new()));
        let stopped_at = Arc::new(AtomicU64::new(u64::MAX));
        let read_rate = spec.rate * 0.7 / spec.readers.max(1) as f64;
        let write_rate = spec.rate * 0.3 / spec.writers.max(1) as f64;
        let mut plan = Vec::new();
        for i in 0..spec.readers {
            plan.push((format!("reader-{i}"), true, read_rate, 0x5EED + i as u64));
        }
        for i in 0..spec.writers {
            plan.push((format!("writer-{i}"), false, write_rate, 0xF00D + i as u64));
        }
        let mut conns = Vec::new();
        for _ in &plan {
            conns.push(target.app(url, spec.busy_timeout)?);
        }
        let mut threads = Vec::new();
        let mut writers_deployed = Vec::new();
        for ((name, reader, rate, seed), mut conn) in plan.into_iter().zip(conns) {
            let stop = stop.clone();
            let errors = errors.clone();
            let stopped_at = stopped_at.clone();
            let new_version = new_version.clone();
            let deployed = Arc::new(AtomicBool::new(false));
            if !reader {
                writers_deployed.push(deployed.clone());
            }
            let mut ctx = OpCtx {
                rows: spec.rows,
                tag: format!("{tag}-{name}"),
                seq: 0,
            };
            let expected = (rate * 120.0) as usize;
            threads.push(
                std::thread::Builder::new()
                    .name(name)
                    .spawn(move || {
                        tight_timer_slack();
                        let mut rng = Rng::new(seed);
                        let mut samples = Vec::with_capacity(expected.min(4_000_000));
                        let interval = (1e9 / rate.max(0.001)) as u64;
                        let mut next = mono_ns();
                        loop {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            let now = mono_ns();
                            if next > now {
                                std::thread::sleep(Duration::from_nanos(next - now));
                                if stop.load(Ordering::Relaxed) {
                                    break;
                                }
                            }
                            let scheduled = next;
                            next += interval;
                            let op = if reader { READ } else { write_op(&mut rng) };
                            let v = new_version.load(Ordering::SeqCst);
                            let result = run_op(conn.as_mut(), op, &mut rng, &mut ctx, v);
                            deployed.store(v, Ordering::SeqCst);
                            let end = mono_ns();
                            if let Err(e) = &result {
                                *errors.lock().unwrap().entry(e.clone()).or_insert(0) += 1;
                            }
                            samples.push(Sample {
                                at_us: (scheduled.saturating_sub(epoch_ns) / 1000)
                                    .min(u32::MAX as u64)
                                    as u32,
                                lat_us: (end.saturating_sub(scheduled) / 1000).min(u32::MAX as u64)
                                    as u32,
                                op,
                                ok: result.is_ok(),
                            });
                        }
                        let stop_ns = stopped_at.load(Ordering::SeqCst);
                        let unissued = if stop_ns != u64::MAX && stop_ns > next {
                            (stop_ns - next) / interval.max(1)
                        } else {
                            0
                        };
                        (samples, unissued)
                    })
                    .map_err(|e| e.to_string())?,
            );
        }
        let background = target.background(url, stop.clone());
        Ok(Load {
            stop,
            new_version,
            writers_deployed,
            threads,
            background,
            errors,
            stopped_at,
        })
    }

    /// The rolling deploy: from now on every write runs the version that writes the new column itself.
    /// Returns once no write of the old version is still in flight (or after `timeout`).
    pub fn deploy(&self, timeout: Duration) -> bool {
        self.new_version.store(true, Ordering::SeqCst);
        let until = mono_ns() + timeout.as_nanos() as u64;
        loop {
            if self
                .writers_deployed
                .iter()
                .all(|d| d.load(Ordering::SeqCst))
            {
                return true;
            }
            if mono_ns() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn stop(mut self) -> LoadOutcome {
        self.stopped_at.store(mono_ns(), Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        let mut samples = Vec::new();
        let mut unissued = 0;
        for t in self.threads.drain(..) {
            if let Ok((s, u)) = t.join() {
                samples.extend(s);
                unissued += u;
            }
        }
        if let Some(b) = self.background.take() {
            let _ = b.join();
        }
        samples.sort_unstable_by_key(|s| s.at_us);
        LoadOutcome {
            samples,
            errors: std::mem::take(&mut *self.errors.lock().unwrap()),
            unissued,
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(b) = self.background.take() {
            let _ = b.join();
        }
    }
}

/// The machine's maximum rate for the workload: `threads` threads each running the mix (70/20/10) as
/// fast as they can for `duration`, on their own connections. Returns operations per second.
pub fn max_rate(
    target: &dyn BenchTarget,
    url: &DatabaseUrl,
    rows: i64,
    threads: usize,
    duration: Duration,
    busy_timeout: Duration,
) -> Result<(f64, u64), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::new();
    for _ in 0..threads.max(1) {
        conns.push(target.app(url, busy_timeout)?);
    }
    let background = target.background(url, stop.clone());
    let started = mono_ns();
    let handles: Vec<JoinHandle<u64>> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            let stop = stop.clone();
            let errors = errors.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::new(0xCA1 + i as u64);
                let mut ctx = OpCtx {
                    rows,
                    tag: format!("max-{i}"),
                    seq: 0,
                };
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = rng.below(10);
                    let op = match r {
                        0..=6 => READ,
                        7 | 8 => UPDATE,
                        _ => INSERT,
                    };
                    if run_op(conn.as_mut(), op, &mut rng, &mut ctx, false).is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::SeqCst);
    let total: u64 = handles.into_iter().filter_map(|h| h.join().ok()).sum();
    let secs = (mono_ns() - started) as f64 / 1e9;
    if let Some(b) = background {
        let _ = b.join();
    }
    Ok((
        total as f64 / secs.max(1e-9),
        errors.load(Ordering::Relaxed),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_update_twice_as_often_as_they_insert() {
        let mut rng = Rng::new(7);
        let inserts = (0..30_000).filter(|_| write_op(&mut rng) == INSERT).count();
        assert!((9_000..11_000).contains(&inserts), "{inserts}");
    }
}
