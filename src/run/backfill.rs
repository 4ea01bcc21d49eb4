//! The backfill loop: keyset batches sized to a target batch time, with a pause that lets application
//! writers in, progress events, and a clean stop after the current batch.

use super::Ctx;
use super::pacing::{Rested, Throttle};
use crate::engine::{Engine, Event, LockGuardSettings, StateRow};
use crate::error::{Error, Result};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const MIN_BATCH: i64 = 10;
const MAX_BATCH: i64 = 100_000;
/// The longest a waiting SQLite writer's busy handler sleeps between tries.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Next batch size: scaled towards the target time, at most doubling or halving per batch.
pub fn next_batch_size(current: i64, elapsed: Duration, target: Duration) -> i64 {
    let ratio = target.as_secs_f64() / elapsed.as_secs_f64().max(1e-6);
    let factor = ratio.clamp(0.5, 2.0);
    ((current as f64 * factor) as i64).clamp(MIN_BATCH, MAX_BATCH)
}

/// How long after another connection's last commit the backfill still yields to writers.
const WRITERS_RECENT: Duration = Duration::from_secs(2);

/// Adaptive pause. While other connections have committed recently, rest twice the batch's lock hold
/// (the lock is held a third of the time), so a waiting writer's next retry finds it free. When none
/// has committed for a while, rest a quarter of the hold: fast, yet a writer that starts waiting still
/// gets in within a few retries — its commit then switches the backfill back to yielding. Never a
/// ratchet: each pause follows from the last batch alone.
pub fn next_pause(hold: Duration, writers_recent: bool) -> Duration {
    if writers_recent {
        (hold * 2).clamp(Duration::from_millis(1), MAX_PAUSE)
    } else {
        (hold / 4).min(MAX_PAUSE)
    }
}

pub fn run(
    engine: &mut dyn Engine,
    state: &StateRow,
    guard: &LockGuardSettings,
    ctx: &mut Ctx,
) -> Result<()> {
    let mut state = engine.begin_backfill(state.id, crate::engine::backfilled(&state.plan)?)?;
    let defaults = engine.defaults();
    let target = ctx.settings.batch_time.unwrap_or(defaults.batch_time);
    let total = state.rows_total.unwrap_or(0);
    let mut batch_size: i64 = 100;
    let mut last_seen_writes: Option<Instant> = None;
    let done_at_start = state.rows_done;
    let mut throttle = Throttle::begin(engine, &defaults, &state.plan, ctx)?;
    // After the throttle's look at the server at rest, which is no backfilling.
    let started = Instant::now();
    // When the batch size stopped doubling, and the rows done then: the rate since is the one an
    // ETA can go by. During the ramp a batch is a fraction of what is to come.
    let mut steady: Option<(Instant, i64)> = None;
    loop {
        if ctx.cancel.load(Ordering::SeqCst) {
            return Err(stopped(&state.name, state.rows_done, total));
        }
        match throttle.before_batch(engine, state.id, ctx)? {
            Rested::Ok => {}
            Rested::Interrupted => return Err(stopped(&state.name, state.rows_done, total)),
            Rested::Cancelled => return Err(cancelled(&state.name)),
        }
        let outcome = engine.backfill_batch(&state, batch_size, guard, ctx.emit)?;
        if outcome.rows_scanned == 0 {
            throttle.finish(ctx);
            return Ok(());
        }
        state.cursor = outcome.new_cursor.clone();
        state.rows_done += outcome.rows_scanned;
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        let left = (total - state.rows_done).max(0);
        let steady_rate = steady.and_then(|(t, rows)| {
            let secs = t.elapsed().as_secs_f64();
            (secs > 0.0 && state.rows_done > rows).then(|| (state.rows_done - rows) as f64 / secs)
        });
        let rate = steady_rate.unwrap_or((state.rows_done - done_at_start) as f64 / secs);
        (ctx.emit)(Event::Progress {
            done: state.rows_done.min(total.max(state.rows_done)),
            total: total.max(state.rows_done),
            rows_per_sec: rate,
            eta: eta(left, steady_rate),
            batch_size,
        });
        if outcome.cancel_requested {
            return Err(cancelled(&state.name));
        }
        let next = next_batch_size(batch_size, outcome.elapsed, target);
        if steady.is_none() && (next < batch_size * 2 || next == MAX_BATCH) {
            steady = Some((Instant::now(), state.rows_done));
        }
        batch_size = next;
        if outcome.others_writing {
            last_seen_writes = Some(Instant::now());
        }
        let pause = match ctx.settings.pause.or(defaults.pause) {
            Some(fixed) => fixed,
            None => next_pause(
                outcome.elapsed,
                last_seen_writes.is_some_and(|t| t.elapsed() < WRITERS_RECENT)
                    || throttle.canary_waiting(),
            ),
        };
        let pause = throttle.rest(pause, outcome.elapsed);
        if !pause.is_zero() {
            // Jitter, so the batch cycle never phase-locks with a waiting writer's fixed retry sleeps
            // (SQLite's busy handler sleeps 5, 10, 15, 20, 25 ms…): a locked-step writer would miss
            // every gap.
            std::thread::sleep(pause.mul_f64(rand::random_range(0.5..1.5)));
        }
    }
}

/// Time left at `rate`: none while the rate is not yet known (the batch size still ramping up),
/// zero once nothing is left.
fn eta(left: i64, rate: Option<f64>) -> Option<Duration> {
    match rate {
        _ if left == 0 => Some(Duration::ZERO),
        Some(r) if r > 0.0 => Some(Duration::from_secs_f64(left as f64 / r)),
        _ => None,
    }
}

fn stopped(name: &str, done: i64, total: i64) -> Error {
    Error::Interrupted(format!(
        "`{name}` stopped after a clean batch ({done} of {total} rows); run `zerodown start` again to resume"
    ))
}

fn cancelled(name: &str) -> Error {
    Error::Interrupted(format!(
        "`{name}` stopped after a clean batch: a rollback asked it to"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_moves_towards_target_within_bounds() {
        let t = Duration::from_millis(5);
        assert_eq!(next_batch_size(100, Duration::from_millis(1), t), 200);
        assert_eq!(next_batch_size(100, Duration::from_millis(20), t), 50);
        assert_eq!(next_batch_size(100, Duration::from_millis(5), t), 100);
        assert_eq!(next_batch_size(10, Duration::from_secs(1), t), MIN_BATCH);
        assert_eq!(next_batch_size(MAX_BATCH, Duration::ZERO, t), MAX_BATCH);
    }

    #[test]
    fn no_eta_until_the_rate_is_known() {
        assert_eq!(eta(1_000, None), None);
        assert_eq!(eta(0, None), Some(Duration::ZERO));
        assert_eq!(eta(1_000, Some(500.0)), Some(Duration::from_secs(2)));
        assert_eq!(eta(1_000, Some(0.0)), None);
    }

    #[test]
    fn pause_yields_to_writers_and_never_ratchets() {
        let b = Duration::from_millis(5);
        assert_eq!(next_pause(b, true), Duration::from_millis(10));
        assert_eq!(next_pause(b, false), Duration::from_micros(1250));
        assert_eq!(next_pause(Duration::from_secs(1), true), MAX_PAUSE);
        assert_eq!(next_pause(Duration::ZERO, true), Duration::from_millis(1));
    }
}
