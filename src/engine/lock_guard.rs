//! The lock guard's retry policy, shared by every engine: a short lock wait per attempt, then a
//! jittered backoff, each blocked attempt reported as a [`Event::LockRetry`] naming what blocked it,
//! until the lock budget is spent ([`Error::LockBudget`]). Each engine only runs its attempt and
//! names its blockers; how long to wait, what to report and when to give up is decided here once.

use super::{Event, LockGuardSettings};
use crate::error::{Error, Result};
use std::time::{Duration, Instant};

/// Exponential backoff from 50 ms, capped at 5 s, with ±50% jitter so retrying sessions do not align.
pub(crate) fn jittered_backoff(attempt: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << attempt.min(7)).min(5_000);
    Duration::from_millis((base as f64 * rand::random_range(0.5..1.5)) as u64)
}

/// What a spent budget message says about the action that waited.
pub(crate) struct Waited<'a> {
    /// What zerodown was doing: "`ALTER TABLE …`", "a backfill batch".
    pub what: &'a str,
    /// The lock it could not get: "its metadata lock", "SQLite's write lock".
    pub lock: &'a str,
    /// What is left as it was: "nothing was changed by this step".
    pub unchanged: &'a str,
}

/// The attempts of one guarded action.
pub(crate) struct Retries<'a> {
    settings: &'a LockGuardSettings,
    started: Instant,
    attempt_started: Instant,
    attempts: u32,
}

impl<'a> Retries<'a> {
    pub fn new(settings: &'a LockGuardSettings) -> Self {
        let now = Instant::now();
        Retries {
            settings,
            started: now,
            attempt_started: now,
            attempts: 0,
        }
    }

    /// Starts the next attempt and returns its number (from 1).
    pub fn begin(&mut self) -> u32 {
        self.attempts += 1;
        self.attempt_started = Instant::now();
        self.attempts
    }

    /// The attempt just begun does not count (its statement was replaced before it could wait).
    pub fn forget(&mut self) {
        self.attempts = self.attempts.saturating_sub(1);
    }

    /// A fresh budget, after a lost connection was opened again.
    pub fn restart(&mut self) {
        self.started = Instant::now();
        self.attempts = 0;
    }

    /// The current attempt was blocked by `blocker`: reports it, then backs off.
    pub fn blocked(
        &mut self,
        blocker: &str,
        waited: &Waited<'_>,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        self.report(blocker, emit);
        self.back_off(blocker, waited)
    }

    /// Reports the current attempt as blocked by `blocker`.
    pub fn report(&mut self, blocker: &str, emit: &mut dyn FnMut(Event)) {
        emit(Event::LockRetry {
            attempt: self.attempts,
            waited: self.attempt_started.elapsed(),
            blocker: blocker.to_string(),
        });
    }

    /// Sleeps a jittered backoff before the next attempt, or gives up with [`Error::LockBudget`]
    /// when another attempt would overrun the budget.
    pub fn back_off(&mut self, blocker: &str, waited: &Waited<'_>) -> Result<()> {
        let backoff = jittered_backoff(self.attempts);
        if self.started.elapsed() + backoff + self.settings.timeout > self.settings.budget {
            return Err(Error::LockBudget(format!(
                "{}: could not get {} in {} attempts over {:.1?} (lock budget {}); last blocked by {blocker} — {}; end that session or run the command again later, or raise --lock-budget",
                waited.what,
                waited.lock,
                self.attempts,
                self.started.elapsed(),
                humantime::format_duration(self.settings.budget),
                waited.unchanged,
            )));
        }
        std::thread::sleep(backoff);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_from_50ms_and_stops_at_5s_with_jitter() {
        for _ in 0..100 {
            let first = jittered_backoff(1);
            assert!(first >= Duration::from_millis(50) && first < Duration::from_millis(150));
            let late = jittered_backoff(30);
            assert!(late >= Duration::from_millis(2_500) && late < Duration::from_millis(7_500));
        }
    }

    #[test]
    fn a_spent_budget_names_the_action_the_lock_and_the_blocker() {
        let settings = LockGuardSettings {
            timeout: Duration::from_millis(200),
            budget: Duration::ZERO,
        };
        let mut retries = Retries::new(&settings);
        assert_eq!(retries.begin(), 1);
        let mut events = Vec::new();
        let err = retries
            .blocked(
                "pid 42 (alice, idle in transaction 3s)",
                &Waited {
                    what: "`ALTER TABLE \"t\" …`",
                    lock: "its lock",
                    unchanged: "nothing was changed by this step",
                },
                &mut |e| events.push(e),
            )
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::LockBudget(_)), "{text}");
        for part in [
            "ALTER TABLE",
            "its lock",
            "1 attempts",
            "pid 42",
            "nothing was changed",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        assert!(matches!(
            events.as_slice(),
            [Event::LockRetry { attempt: 1, .. }]
        ));
    }
}
