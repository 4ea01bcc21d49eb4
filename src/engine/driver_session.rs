//! The driving run's own session on a server, one mechanism for every server engine: a heartbeat
//! thread that shows the run is alive even during a long VALIDATE or index build, taking the lock
//! again when that session drops, and a guard that stops the heartbeat and lets go of the lock.
//! Each engine supplies how its lock is held and its heartbeat written ([`Driving`]).

use super::DriverLock;
use crate::error::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a driving run refreshes the heartbeat of the migrations it drives.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// A run whose heartbeat is older than this is taken for dead: max(30 s, 3 × the interval), so a
/// heartbeat delayed by a busy server or a reconnect never makes a live run look dead.
pub fn stale_after() -> Duration {
    (HEARTBEAT_INTERVAL * 3).max(Duration::from_secs(30))
}

/// An engine's driver session, as the heartbeat thread and the guard use it.
pub(crate) trait Driving: Send + Sync + 'static {
    /// Set when the guard is dropped: the heartbeat ends and the lock is not taken again.
    fn stopping(&self) -> &AtomicBool;
    /// Whether another run took the driver lock while this one was disconnected.
    fn lost(&self) -> bool;
    /// Writes this run's heartbeat from the lock's own session; `false` when that session is gone.
    fn write_heartbeat(&self) -> bool;
    /// Makes sure the session is alive and holds the lock, connecting and taking it again after a
    /// dropped connection; Busy when another run took it meanwhile.
    fn ensure_lock(&self) -> Result<()>;
    /// Lets go of the lock and closes the session.
    fn release(&self);
}

/// The error of a run that, reconnecting, found its driver lock held by `who`.
pub(crate) fn lost_error(run_id: &str, who: &str) -> Error {
    Error::Busy(format!(
        "run {run_id} lost its connection and, reconnecting, found the driver lock held by {who}; it stopped so that two runs never drive at once — run the command again once that run is done"
    ))
}

/// Held while a run drives; dropping it stops the heartbeat and releases the lock.
pub(crate) struct DriverGuard<S: Driving> {
    shared: Arc<S>,
    thread: Option<JoinHandle<()>>,
}

impl<S: Driving> DriverLock for DriverGuard<S> {}

impl<S: Driving> Drop for DriverGuard<S> {
    fn drop(&mut self) {
        self.shared.stopping().store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.release();
    }
}

/// Starts the heartbeat of `shared`, whose session already holds the driver lock.
pub(crate) fn start<S: Driving>(shared: Arc<S>) -> DriverGuard<S> {
    let beating = shared.clone();
    let thread = std::thread::spawn(move || beat(&*beating));
    DriverGuard {
        shared,
        thread: Some(thread),
    }
}

/// Refreshes the heartbeat every [`HEARTBEAT_INTERVAL`] until stopped; a session found gone is
/// taken again at once (or marked lost), so a long step never makes the run look dead.
fn beat(s: &dyn Driving) {
    let mut last = Instant::now();
    while !s.stopping().load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < HEARTBEAT_INTERVAL || s.lost() {
            continue;
        }
        last = Instant::now();
        if !s.write_heartbeat() {
            let _ = s.ensure_lock();
        }
    }
}
