//! The latency canary: one engine [`Probe`] run from its own thread and connection at a steady low
//! rate, timed. Its statements wait in the same CPU, lock and I/O queues as the application's, so
//! their latency is a sample of what the application feels, whatever the application is.

use crate::engine::Probe;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The canary's steady pace: twenty point reads a second, a negligible cost to any server, and
/// enough probes for a high percentile over a two-second window.
pub const PERIOD: Duration = Duration::from_millis(50);
/// The steady pace of a probe that takes the one write lock (SQLite's): five a second, since each
/// probe is a writer the backfill makes room for.
pub const WRITER_PERIOD: Duration = Duration::from_millis(200);
/// The pace while the server is measured at rest (the backfill waits meanwhile): enough probes for
/// a percentile in half a second.
pub const MEASURE_PERIOD: Duration = Duration::from_millis(10);
/// Quick failures in a row after which the canary gives up (a lost connection, a dropped table).
/// A probe that failed only after waiting this long timed out on a lock: a slow probe, not a
/// broken canary.
const MAX_FAILURES: u32 = 3;
const TIMED_OUT: Duration = Duration::from_secs(1);

/// One timed probe.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub finished: Instant,
    pub latency: Duration,
    /// The pace the probe was taken at (for coordinated-omission correction).
    pub period: Duration,
}

#[derive(Default)]
struct Shared {
    fresh: VecDeque<Sample>,
    /// When the probe now running began.
    in_flight: Option<Instant>,
    period: Option<Duration>,
    failed: Option<String>,
}

/// A running canary; dropping it stops the thread (after its probe now running, whose waits the
/// engine bounds).
pub struct Canary {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    what: String,
    waits_for_batches: bool,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl Canary {
    /// Starts probing at `period`.
    pub fn spawn(mut probe: Box<dyn Probe>, period: Duration) -> Canary {
        let what = probe.describe();
        let waits_for_batches = probe.waits_for_batches();
        let shared = Arc::new(Mutex::new(Shared {
            period: Some(period),
            ..Shared::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, halt) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("zerodown-canary".into())
            .spawn(move || {
                let mut failures = 0;
                while !halt.load(Ordering::SeqCst) {
                    let began = Instant::now();
                    let period = {
                        let mut g = lock(&s);
                        g.in_flight = Some(began);
                        g.period.unwrap_or(PERIOD)
                    };
                    let outcome = probe.probe();
                    let latency = began.elapsed();
                    let mut g = lock(&s);
                    g.in_flight = None;
                    // A failed probe (a lock or statement timeout) still took this long.
                    g.fresh.push_back(Sample {
                        finished: Instant::now(),
                        latency,
                        period,
                    });
                    match outcome {
                        Ok(()) => failures = 0,
                        Err(_) if latency >= TIMED_OUT => failures = 0,
                        Err(e) => {
                            failures += 1;
                            if failures >= MAX_FAILURES {
                                g.failed = Some(e.to_string());
                                return;
                            }
                        }
                    }
                    let period = g.period.unwrap_or(PERIOD);
                    drop(g);
                    // Jittered, so the probes never phase-lock with the batches.
                    let next = began + period.mul_f64(rand::random_range(0.8..1.2));
                    let now = Instant::now();
                    if next > now {
                        std::thread::park_timeout(next - now);
                    }
                }
            })
            .ok();
        Canary {
            shared,
            stop,
            thread,
            what,
            waits_for_batches,
        }
    }

    /// What the canary runs, for the user.
    pub fn describe(&self) -> &str {
        &self.what
    }

    /// Whether its probe waits for each batch by design (see [`Probe::waits_for_batches`]).
    pub fn waits_for_batches(&self) -> bool {
        self.waits_for_batches
    }

    /// Its steady pace: [`PERIOD`], or [`WRITER_PERIOD`] for a probe that waits for each batch.
    pub fn period(&self) -> Duration {
        if self.waits_for_batches {
            WRITER_PERIOD
        } else {
            PERIOD
        }
    }

    /// Changes the pace from the next probe on.
    pub fn set_period(&self, period: Duration) {
        lock(&self.shared).period = Some(period);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }

    /// The probes finished since the last call.
    pub fn take(&self) -> Vec<Sample> {
        lock(&self.shared).fresh.drain(..).collect()
    }

    /// How long the probe now running has run, if one is.
    pub fn in_flight(&self) -> Option<Duration> {
        lock(&self.shared).in_flight.map(|t| t.elapsed())
    }

    /// Why the canary stopped, once it has given up.
    pub fn failed(&self) -> Option<String> {
        if self.thread.is_none() {
            return Some("its thread could not start".into());
        }
        lock(&self.shared).failed.clone()
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, Result};
    use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

    /// A probe that runs only when the test lets it: each probe waits for one message, and fails
    /// when the message says so.
    struct Gate(Receiver<bool>);

    impl Probe for Gate {
        fn describe(&self) -> String {
            "a gate".into()
        }

        fn probe(&mut self) -> Result<()> {
            match self.0.recv() {
                Ok(true) => Ok(()),
                _ => Err(Error::db("probing", "refused".to_string())),
            }
        }
    }

    fn gate() -> (SyncSender<bool>, Canary) {
        let (tx, rx) = sync_channel(0);
        (
            tx,
            Canary::spawn(Box::new(Gate(rx)), Duration::from_millis(1)),
        )
    }

    /// Waits until the canary's thread is inside a probe (a real state, polled).
    fn wait_in_flight(c: &Canary) {
        while c.in_flight().is_none() {
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_probe_still_running_is_seen_and_each_finished_one_is_taken_once() {
        let (tx, c) = gate();
        wait_in_flight(&c);
        assert!(c.take().is_empty());
        // The channel is a rendezvous: once the third probe has its answer, the first two are
        // recorded (a probe is recorded before the next one starts).
        for _ in 0..3 {
            tx.send(true).unwrap();
        }
        let samples = c.take();
        assert!((2..=3).contains(&samples.len()), "{samples:?}");
        assert!(samples.iter().all(|s| s.period == Duration::from_millis(1)));
        assert_eq!(c.failed(), None);
        drop(tx); // the probe now running fails, and the canary stops after three
    }

    #[test]
    fn quick_failures_in_a_row_stop_the_canary_and_say_why() {
        let (tx, c) = gate();
        for _ in 0..MAX_FAILURES {
            tx.send(false).unwrap();
        }
        while c.failed().is_none() {
            std::thread::yield_now();
        }
        assert!(c.failed().unwrap().contains("refused"));
        // Failed probes still took their time: they are samples.
        assert_eq!(c.take().len(), MAX_FAILURES as usize);
    }
}
