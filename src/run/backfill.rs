//! The backfill loop: keyset batches sized to a target batch time, with a pause that lets application
//! writers in, progress events, and a clean stop after the current batch.

use super::Ctx;
use super::throttle::{self, MaxLoad};
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
    let mut state = engine.begin_backfill(state.id, &state.plan)?;
    let defaults = engine.defaults();
    let target = ctx.settings.batch_time.unwrap_or(defaults.batch_time);
    let total = state.rows_total.unwrap_or(0);
    let mut batch_size: i64 = 100;
    let started = Instant::now();
    let mut last_seen_writes: Option<Instant> = None;
    let done_at_start = state.rows_done;
    let nice = ctx.settings.nice.unwrap_or(defaults.nice);
    let limit = load_limit(
        engine,
        ctx.settings.max_load.unwrap_or(defaults.max_load),
        ctx,
    )?;
    let mut gauge = throttle::LoadGauge::default();
    loop {
        if ctx.cancel.load(Ordering::SeqCst) {
            return Err(stopped(&state.name, state.rows_done, total));
        }
        if let Some(limit) = limit {
            match wait_for_load(engine, &mut gauge, limit, state.id, ctx)? {
                Rested::Ok => {}
                Rested::Interrupted => return Err(stopped(&state.name, state.rows_done, total)),
                Rested::Cancelled => return Err(cancelled(&state.name)),
            }
        }
        let outcome = engine.backfill_batch(&state, batch_size, guard, ctx.emit)?;
        if outcome.rows_scanned == 0 {
            if let Some(limit) = limit
                && gauge.looks() > 0
            {
                (ctx.emit)(Event::Note(format!(
                    "other sessions running statements during the backfill: {:.2} on average over {} looks (limit {limit:.1})",
                    gauge.average(),
                    gauge.looks()
                )));
            }
            return Ok(());
        }
        state.cursor = outcome.new_cursor.clone();
        state.rows_done += outcome.rows_scanned;
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        let rate = (state.rows_done - done_at_start) as f64 / secs;
        let left = (total - state.rows_done).max(0);
        (ctx.emit)(Event::Progress {
            done: state.rows_done.min(total.max(state.rows_done)),
            total: total.max(state.rows_done),
            rows_per_sec: rate,
            eta: (rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / rate)),
            batch_size,
        });
        if outcome.cancel_requested {
            return Err(cancelled(&state.name));
        }
        batch_size = next_batch_size(batch_size, outcome.elapsed, target);
        if outcome.others_writing {
            last_seen_writes = Some(Instant::now());
        }
        let pause = match ctx.settings.pause.or(defaults.pause) {
            Some(fixed) => fixed,
            None => next_pause(
                outcome.elapsed,
                last_seen_writes.is_some_and(|t| t.elapsed() < WRITERS_RECENT),
            ),
        };
        let pause = throttle::rest(pause, nice, outcome.elapsed);
        if !pause.is_zero() {
            // Jitter, so the batch cycle never phase-locks with a waiting writer's fixed retry sleeps
            // (SQLite's busy handler sleeps 5, 10, 15, 20, 25 ms…): a locked-step writer would miss
            // every gap.
            std::thread::sleep(pause.mul_f64(rand::random_range(0.5..1.5)));
        }
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

/// How a rest for load ended.
enum Rested {
    Ok,
    /// Ctrl-C.
    Interrupted,
    /// A rollback's cancel request.
    Cancelled,
}

/// Mean of a few quick samples of the other sessions running statements; `None` without a view.
fn running(engine: &mut dyn Engine, samples: u32, gap: Duration) -> Result<Option<f64>> {
    let mut sum = 0u64;
    for i in 0..samples {
        if i > 0 {
            std::thread::sleep(gap);
        }
        match engine.running_sessions()? {
            Some(n) => sum += u64::from(n),
            None => return Ok(None),
        }
    }
    Ok(Some(sum as f64 / f64::from(samples.max(1))))
}

/// The number of running sessions above which the backfill rests, if any; says which and why.
fn load_limit(engine: &mut dyn Engine, max: MaxLoad, ctx: &mut Ctx) -> Result<Option<f64>> {
    let limit = match max {
        MaxLoad::Off => None,
        MaxLoad::Sessions(n) => match running(engine, 1, Duration::ZERO)? {
            Some(_) => Some(f64::from(n)),
            None => {
                (ctx.emit)(Event::Note(format!(
                    "--max-load {n} has no effect on {}: it has no view of other sessions' statements",
                    engine.label()
                )));
                None
            }
        },
        MaxLoad::Auto => {
            running(engine, throttle::BASELINE_SAMPLES, throttle::BASELINE_GAP)?.map(|base| {
                let limit = throttle::auto_limit(base);
                (ctx.emit)(Event::Note(format!(
                    "the backfill rests while more than {limit:.1} other sessions run statements \
                     ({base:.1} on average as it began; --max-load sets a number, or off)"
                )));
                limit
            })
        }
    };
    Ok(limit)
}

/// Takes a sample into the gauge when one is due.
fn look(engine: &mut dyn Engine, gauge: &mut throttle::LoadGauge) -> Result<()> {
    if gauge.due() {
        gauge.push(engine.running_sessions()?.unwrap_or(0));
    }
    Ok(())
}

/// Rests while the server is busier than `limit`, watching for Ctrl-C and a rollback's request.
fn wait_for_load(
    engine: &mut dyn Engine,
    gauge: &mut throttle::LoadGauge,
    limit: f64,
    id: i64,
    ctx: &mut Ctx,
) -> Result<Rested> {
    look(engine, gauge)?;
    if gauge.mean() <= limit {
        return Ok(Rested::Ok);
    }
    (ctx.emit)(Event::Throttle {
        running: gauge.mean(),
        limit,
        rested: None,
    });
    let began = Instant::now();
    let mut last_look = Instant::now();
    loop {
        if ctx.cancel.load(Ordering::SeqCst) {
            return Ok(Rested::Interrupted);
        }
        // A rollback asks through the state row; look about once a second.
        if last_look.elapsed() >= Duration::from_secs(1) {
            last_look = Instant::now();
            let asked = engine
                .states()?
                .iter()
                .any(|s| s.id == id && s.cancel_requested);
            if asked {
                return Ok(Rested::Cancelled);
            }
        }
        std::thread::sleep(throttle::LOAD_REST.mul_f64(rand::random_range(0.5..1.5)));
        look(engine, gauge)?;
        if gauge.mean() <= limit {
            (ctx.emit)(Event::Throttle {
                running: gauge.mean(),
                limit,
                rested: Some(began.elapsed()),
            });
            return Ok(Rested::Ok);
        }
    }
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
    fn pause_yields_to_writers_and_never_ratchets() {
        let b = Duration::from_millis(5);
        assert_eq!(next_pause(b, true), Duration::from_millis(10));
        assert_eq!(next_pause(b, false), Duration::from_micros(1250));
        assert_eq!(next_pause(Duration::from_secs(1), true), MAX_PAUSE);
        assert_eq!(next_pause(Duration::ZERO, true), Duration::from_millis(1));
    }
}
