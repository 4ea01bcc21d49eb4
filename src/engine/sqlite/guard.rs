//! The lock guard for every write zerodown makes on SQLite: `BEGIN IMMEDIATE` under a short busy
//! timeout, retried with jittered backoff within the lock budget, each retry reported as an event.

use super::{Sqlite, sqlite_err};
use crate::engine::lock_guard::{Retries, Waited};
use crate::engine::{Event, LockGuardSettings};
use crate::error::Result;
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
        let mut retries = Retries::new(guard);
        loop {
            retries.begin();
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
            let waited = Waited {
                what,
                lock: "SQLite's write lock",
                unchanged: "nothing was changed by this step",
            };
            retries.blocked(
                "another connection that holds SQLite's write lock (SQLite cannot say which)",
                &waited,
                emit,
            )?;
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
