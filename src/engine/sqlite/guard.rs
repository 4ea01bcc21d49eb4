//! The lock guard for every write zerodown makes on SQLite: `BEGIN IMMEDIATE` under a short busy
//! timeout, retried with jittered backoff within the lock budget, each retry reported as an event.

use super::{Sqlite, sqlite_err};
use crate::engine::{Event, LockGuardSettings};
use crate::error::{Error, Result};
use rusqlite::{Connection, ErrorCode};
use std::time::{Duration, Instant};

pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl Sqlite {
    /// Runs `f` inside `BEGIN IMMEDIATE … COMMIT` under the lock guard: each attempt waits at most
    /// `guard.timeout` for the write lock, failed attempts back off with jitter, all within `guard.budget`.
    pub(super) fn write_tx<T>(
        &mut self,
        what: &str,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
        mut f: impl FnMut(&Connection) -> Result<T>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            set_polling_busy_handler(&mut self.conn, guard.timeout)?;
            let attempt_started = Instant::now();
            let begun = self.conn.execute_batch("BEGIN IMMEDIATE");
            let begin_wait = attempt_started.elapsed();
            let e: rusqlite::Error = match begun {
                Ok(()) => match f(&self.conn) {
                    Ok(v) => match self.conn.execute_batch("COMMIT") {
                        Ok(()) => {
                            // The write lock was held from BEGIN IMMEDIATE's return to COMMIT's.
                            self.last_hold = attempt_started.elapsed().saturating_sub(begin_wait);
                            return Ok(v);
                        }
                        Err(e) => e,
                    },
                    Err(e) => {
                        let _ = self.conn.execute_batch("ROLLBACK");
                        return Err(e);
                    }
                },
                Err(e) => e,
            };
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            if !is_busy(&e) {
                return Err(sqlite_err(what, e));
            }
            let waited = attempt_started.elapsed();
            emit(Event::LockRetry {
                attempt,
                waited,
                blocker: "another connection holds SQLite's write lock (SQLite cannot say which)"
                    .into(),
            });
            let backoff = jittered_backoff(attempt);
            if started.elapsed() + backoff + guard.timeout > guard.budget {
                return Err(Error::LockBudget(format!(
                    "{what}: could not get SQLite's write lock in {attempt} attempts over {:.1?} (lock budget {}); another connection keeps it busy — nothing was changed by this step, run the command again later or raise --lock-budget",
                    started.elapsed(),
                    humantime::format_duration(guard.budget)
                )));
            }
            std::thread::sleep(backoff);
        }
    }
}

/// How long one lock attempt may wait, read by [`poll_busy`] (a plain `fn`, so it cannot capture it).
/// One value per process: zerodown drives one database connection at a time.
static BUSY_WAIT_MICROS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(200_000);
const BUSY_POLL: Duration = Duration::from_micros(250);

/// SQLite's default busy handler sleeps ever longer (up to 100 ms) between tries, so against busy
/// application writers a waiting batch almost never wins the lock. Polling at a short fixed interval gives
/// zerodown its turn as soon as the lock is free, and still gives up after the lock timeout.
fn poll_busy(count: i32) -> bool {
    let limit = BUSY_WAIT_MICROS.load(std::sync::atomic::Ordering::Relaxed);
    if (count as u64 + 1) * BUSY_POLL.as_micros() as u64 > limit {
        return false;
    }
    std::thread::sleep(BUSY_POLL);
    true
}

fn set_polling_busy_handler(conn: &mut Connection, timeout: Duration) -> Result<()> {
    BUSY_WAIT_MICROS.store(
        timeout.as_micros() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    conn.busy_handler(Some(poll_busy))
        .map_err(|e| sqlite_err("setting the busy handler", e))
}

/// Exponential backoff from 50 ms, capped at 5 s, with ±50% jitter so retrying writers do not align.
fn jittered_backoff(attempt: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << attempt.min(7)).min(5_000);
    let jitter = rand::random_range(0.5..1.5);
    Duration::from_millis((base as f64 * jitter) as u64)
}
