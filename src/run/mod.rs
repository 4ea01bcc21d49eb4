//! Drives a plan: records state, runs each step under the lock guard, backfills in throttled batches,
//! and undoes on rollback. Engine-independent: everything database-specific goes through [`Engine`].

mod backfill;
mod canary;
pub mod latency;
mod latency_guard;
mod pacing;
mod replica_lag;
pub mod throttle;

use crate::engine::{Engine, Event, LockGuardSettings, Settings, StateRow, Status};
use crate::error::{Error, Result};
use crate::plan::{Action, Cost, OpPlan, PLAN_FORMAT, Phase, Plan};
use crate::spec::Migration;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long `rollback` waits for a running `start` or `complete` to stop after asking it to.
pub const ROLLBACK_WAIT: Duration = Duration::from_secs(60);

/// What `start` did.
#[derive(Debug, Clone, PartialEq)]
pub enum StartOutcome {
    /// The whole migration was one step and is completed.
    Completed,
    /// Expand, dual-write and backfill are done: deploy the new application version, then `complete`.
    Backfilled { rows: i64 },
}

/// Everything a driving command needs besides the engine.
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub emit: &'a mut dyn FnMut(Event),
    /// Set by Ctrl-C: stop after the current batch.
    pub cancel: &'a AtomicBool,
}

impl Ctx<'_> {
    /// Applies the lock guard to the engine's own state writes too, and returns it.
    fn guard_for(&self, engine: &mut dyn Engine) -> LockGuardSettings {
        let g = self.guard(engine);
        engine.configure(g);
        g
    }

    fn guard(&self, engine: &dyn Engine) -> LockGuardSettings {
        let d = engine.defaults();
        LockGuardSettings {
            timeout: self.settings.lock_timeout.unwrap_or(d.lock_timeout),
            budget: self.settings.lock_budget.unwrap_or(d.lock_budget),
        }
    }
}

/// The migration's active state row (not rolled back), if any.
pub fn active_state(engine: &mut dyn Engine, name: &str) -> Result<Option<StateRow>> {
    Ok(engine
        .states()?
        .into_iter()
        .rev()
        .find(|s| s.name == name && s.status.is_active()))
}

fn require_state(engine: &mut dyn Engine, name: &str) -> Result<StateRow> {
    if let Some(s) = active_state(engine, name)? {
        return Ok(s);
    }
    let states = engine.states()?;
    let mut known: Vec<String> = states
        .iter()
        .filter(|s| s.status.is_active())
        .map(|s| format!("{} ({})", s.name, s.status.label()))
        .collect();
    known.dedup();
    let rolled_back = states.iter().any(|s| s.name == name);
    Err(Error::UnknownMigration(format!(
        "no migration named `{name}` {}in this database; {}",
        if rolled_back {
            "is in progress (it was rolled back) "
        } else {
            ""
        },
        if known.is_empty() {
            "none are recorded — `zerodown start <file>` begins one".to_string()
        } else {
            format!("known: {}", known.join(", "))
        }
    )))
}

/// A line-by-line difference between two spec texts, for refusing a changed spec.
fn spec_diff(old: &str, new: &str) -> String {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let mut out = Vec::new();
    for l in &old_lines {
        if !new_lines.contains(l) {
            out.push(format!("  - {l}"));
        }
    }
    for l in &new_lines {
        if !old_lines.contains(l) {
            out.push(format!("  + {l}"));
        }
    }
    out.join("\n")
}

/// Refuses a spec that differs from the one recorded under the same name, showing the difference.
pub fn check_same_spec(state: &StateRow, migration: &Migration) -> Result<()> {
    let spec = migration.canonical_toml();
    if state.spec == spec {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "migration `{}` is already in progress with a different spec:\n{}\nfinish it (`zerodown complete {}`) or undo it (`zerodown rollback {}`) first, or give the new spec another name",
        migration.name,
        spec_diff(&state.spec, &spec),
        migration.name,
        migration.name
    )))
}

/// `start`: expand, dual-write and backfill; blocks until the backfill is done. Running it again resumes.
pub fn start(
    engine: &mut dyn Engine,
    migration: &Migration,
    ctx: &mut Ctx,
) -> Result<StartOutcome> {
    let spec = migration.canonical_toml();
    ctx.guard_for(engine);
    let existing = active_state(engine, &migration.name)?;
    let _lock = engine.lock_driver(&migration.name, Duration::ZERO)?;
    let state = match existing {
        Some(state) => {
            check_same_spec(&state, migration)?;
            match state.status {
                Status::Started => {
                    (ctx.emit)(Event::Note(format!(
                        "resuming `{}` at step {} of {}",
                        migration.name,
                        state.next_step + 1,
                        state.plan.steps.len()
                    )));
                    engine.preflight(ctx.settings, ctx.emit)?;
                    state
                }
                Status::Backfilled => {
                    (ctx.emit)(Event::Note(format!(
                        "`{}` is already backfilled; deploy the application version that writes {}, then run `zerodown complete {}`",
                        migration.name,
                        state
                            .plan
                            .added_columns()
                            .unwrap_or_else(|| "the new schema".into()),
                        migration.name
                    )));
                    return Ok(StartOutcome::Backfilled {
                        rows: state.rows_done,
                    });
                }
                Status::Completed => {
                    (ctx.emit)(Event::Note(format!(
                        "`{}` is already completed",
                        migration.name
                    )));
                    return Ok(StartOutcome::Completed);
                }
                Status::Completing => {
                    return Err(Error::WrongPhase(format!(
                        "`{}` is being completed; run `zerodown complete {}` to finish it",
                        migration.name, migration.name
                    )));
                }
                Status::RollingBack => {
                    return Err(Error::WrongPhase(format!(
                        "`{}` is being rolled back; run `zerodown rollback {}` to finish that first",
                        migration.name, migration.name
                    )));
                }
                Status::RolledBack => unreachable!("active states are never rolled back"),
            }
        }
        None => {
            let plan = crate::ops::plan(engine, migration)?;
            // Only a migration of catalog-only statements runs without the engine's checks (and
            // its settings, such as --allow-copy): nothing it does holds a lock for long.
            if !plan.single_step || plan.steps.iter().any(|s| s.cost != Cost::CatalogOnly) {
                engine.preflight(ctx.settings, ctx.emit)?;
            }
            // Read-only checks run before anything is written, so a refusal leaves no trace.
            let checks = plan
                .steps
                .iter()
                .take_while(|s| s.phase == Phase::Check)
                .count();
            for (i, step) in plan.steps.iter().enumerate().take(checks) {
                run_check(engine, &plan, i, step.action.clone(), ctx)?;
            }
            engine.ensure_state_table(ctx.emit)?;
            let id = engine.insert_state(&migration.name, &spec, &plan, ctx.emit)?;
            if checks > 0 {
                engine.mark_step_done(id, checks - 1)?;
            }
            active_state(engine, &migration.name)?
                .ok_or_else(|| Error::db("recording the migration", "its state row is missing"))?
        }
    };
    let end = state.plan.first_complete_step();
    drive(engine, state.id, end, ctx)?;
    let state = require_state(engine, &migration.name)?;
    if state.plan.single_step {
        engine.set_status(state.id, Status::Completed)?;
        return Ok(StartOutcome::Completed);
    }
    engine.set_status(state.id, Status::Backfilled)?;
    Ok(StartOutcome::Backfilled {
        rows: state.rows_done,
    })
}

fn run_check(
    engine: &mut dyn Engine,
    plan: &Plan,
    index: usize,
    action: Action,
    ctx: &mut Ctx,
) -> Result<()> {
    let started = Instant::now();
    (ctx.emit)(Event::StepStarted {
        index,
        total: plan.steps.len(),
        step: plan.steps[index].clone(),
    });
    if action == Action::NullPreflight {
        null_preflight(engine, plan.op_of(index))?;
    }
    (ctx.emit)(Event::StepDone {
        index,
        elapsed: started.elapsed(),
    });
    Ok(())
}

/// A NOT NULL column whose fill value is NULL for some existing rows could never complete.
fn null_preflight(engine: &mut dyn Engine, plan: &OpPlan) -> Result<()> {
    let n = engine.count_null_fill(plan)?;
    if n > 0 {
        return Err(Error::Refused(format!(
            "`{}` is NOT NULL, but its value would be NULL for {n} existing row(s) of `{}` (`{}` yields NULL there); fix those rows or change the expression — nothing was changed",
            plan.column,
            plan.table,
            plan.fill.as_ref().map(|f| f.expr.as_str()).unwrap_or("")
        )));
    }
    Ok(())
}

/// Refuses to run a stored plan written in another plan format: its statements do not say how they
/// run, and guessing from their text is exactly what typed statements replaced.
fn check_format(state: &StateRow) -> Result<()> {
    if state.plan.format == PLAN_FORMAT {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "`{}` was planned by another zerodown version (plan format {}; this version runs format {PLAN_FORMAT}), so this version will not run its steps; finish it (`complete`) or undo it (`rollback`) with the zerodown that started it — nothing was changed",
        state.name, state.plan.format
    )))
}

/// Runs the plan's steps from the recorded `next_step` up to (not including) `end`.
fn drive(engine: &mut dyn Engine, id: i64, end: usize, ctx: &mut Ctx) -> Result<()> {
    let guard = ctx.guard(engine);
    loop {
        let state = engine
            .states()?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| Error::db("reading state", "the migration's row vanished"))?;
        check_format(&state)?;
        let index = state.next_step;
        if index >= end || index >= state.plan.steps.len() {
            return Ok(());
        }
        if state.cancel_requested {
            return Err(Error::Interrupted(format!(
                "`{}` stopped: a rollback asked this run to stop; run `zerodown rollback {}` to finish it",
                state.name, state.name
            )));
        }
        if ctx.cancel.load(Ordering::SeqCst) {
            return Err(Error::Interrupted(format!(
                "`{}` stopped before step {}; run the same command again to resume",
                state.name,
                index + 1
            )));
        }
        // Claims the row for this run, so the engine's heartbeat keeps it fresh through long steps.
        engine.heartbeat(id)?;
        let step = state.plan.steps[index].clone();
        let total = state.plan.steps.len();
        (ctx.emit)(Event::StepStarted {
            index,
            total,
            step: step.clone(),
        });
        let started = Instant::now();
        match step.action {
            Action::NullPreflight => {
                null_preflight(engine, state.plan.op_of(index))?;
                engine.mark_step_done(id, index)?;
            }
            Action::Ddl => engine.run_ddl(id, index, &step.sql, &guard, ctx.emit)?,
            Action::Backfill => {
                backfill::run(engine, &state, &guard, ctx)?;
                engine.mark_step_done(id, index)?;
            }
            Action::QuietPeriod => {
                quiet_period(engine, state.plan.op_of(index), ctx)?;
                engine.mark_step_done(id, index)?;
            }
            Action::NullSweep => {
                let op = state.plan.op_of(index).clone();
                let state = engine.begin_backfill(id, &op)?;
                let left = engine.sweep_nulls(&state, &guard, ctx.emit)?;
                if left > 0 {
                    return Err(Error::Refused(format!(
                        "{left} row(s) of `{}` still have `{}` NULL (the expression yields NULL for them), so NOT NULL cannot go on; fix those rows and run complete again, or roll back",
                        op.table, op.column
                    )));
                }
                engine.mark_step_done(id, index)?;
            }
            Action::ForeignKeyCheck => {
                let orphans = engine.count_orphans(&state.plan, index)?;
                if orphans > 0 {
                    let op = state.plan.op_of(index);
                    return Err(Error::Refused(format!(
                        "{orphans} row(s) of `{}` have a `{}` that points at no row of the referenced table; fix them and run complete again, or roll back",
                        op.table, op.column
                    )));
                }
                engine.mark_step_done(id, index)?;
            }
            Action::Finish => engine.finish(&state, index, &guard, ctx.emit)?,
        }
        let elapsed = started.elapsed();
        engine.add_timing(id, step.phase.label(), elapsed.as_secs_f64())?;
        (ctx.emit)(Event::StepDone { index, elapsed });
        let next_locks = state
            .plan
            .steps
            .get(index + 1)
            .is_some_and(|n| n.lock.blocks_writes && index + 1 < end);
        if step.lock.blocks_writes && step.cost == Cost::Scan && next_locks {
            std::thread::sleep(engine.defaults().step_gap);
        }
    }
}

/// The deploy-order guard: the old-writer counter must stand still for the whole quiet period.
fn quiet_period(engine: &mut dyn Engine, op: &OpPlan, ctx: &mut Ctx) -> Result<()> {
    let Some(key) = op.objects.guard_counter.clone() else {
        return Ok(());
    };
    let period = ctx
        .settings
        .quiet_period
        .unwrap_or(engine.defaults().quiet_period);
    let first = engine.old_writer_count(&key)?;
    (ctx.emit)(Event::Note(format!(
        "watching for INSERTs that leave `{}` NULL for {} (old-writer count so far: {first})",
        op.column,
        humantime::format_duration(period)
    )));
    let until = Instant::now() + period;
    while Instant::now() < until {
        if ctx.cancel.load(Ordering::SeqCst) {
            return Err(Error::Interrupted(
                "stopped during the quiet period; nothing was changed".into(),
            ));
        }
        std::thread::sleep(
            Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())),
        );
    }
    let last = engine.old_writer_count(&key)?;
    if last != first {
        let msg = format!(
            "{} INSERT(s) left `{}` NULL during the last {}: an application version that does not write `{}` is still running; deploy the version that writes it and run complete again (or --force to complete anyway)",
            last - first,
            op.column,
            humantime::format_duration(period),
            op.column
        );
        if ctx.settings.force {
            (ctx.emit)(Event::Note(format!("--force: {msg}")));
        } else {
            return Err(Error::Refused(msg));
        }
    }
    Ok(())
}

/// `complete`: refuses until the backfill is done and old writers are gone; then constraints, default, cleanup.
pub fn complete(engine: &mut dyn Engine, name: &str, ctx: &mut Ctx) -> Result<()> {
    // Read first, so a migration in the wrong phase gets its own message rather than "busy" ...
    if !completable(&require_state(engine, name)?, ctx)? {
        return Ok(());
    }
    let _lock = engine.lock_driver(name, Duration::ZERO)?;
    // ... and again under the driver lock: a rollback may have finished in between, and its row
    // must not be set back to `completing`.
    let state = require_state(engine, name)?;
    if !completable(&state, ctx)? {
        return Ok(());
    }
    ctx.guard_for(engine);
    engine.preflight(ctx.settings, ctx.emit)?;
    engine.set_status(state.id, Status::Completing)?;
    let total = state.plan.steps.len();
    drive(engine, state.id, total, ctx)?;
    let state = require_state(engine, name)?;
    if state.status != Status::Completed {
        engine.set_status(state.id, Status::Completed)?;
    }
    Ok(())
}

/// Whether `complete` has work to do in the state's phase: `false` when already completed, an error
/// when the backfill is unfinished or a rollback is under way.
fn completable(state: &StateRow, ctx: &mut Ctx) -> Result<bool> {
    let name = &state.name;
    match state.status {
        Status::Completed => {
            (ctx.emit)(Event::Note(format!("`{name}` is already completed")));
            Ok(false)
        }
        Status::Started => {
            let pct = match state.rows_total {
                Some(t) if t > 0 => format!(" ({:.1}%)", 100.0 * state.rows_done as f64 / t as f64),
                _ => String::new(),
            };
            Err(Error::WrongPhase(format!(
                "`{name}` has not finished its backfill: {} of {} rows{pct}, step {} of {}; run `zerodown start` with the same migration to finish it",
                state.rows_done,
                state
                    .rows_total
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "?".into()),
                state.next_step + 1,
                state.plan.steps.len()
            )))
        }
        Status::RollingBack => Err(Error::WrongPhase(format!(
            "`{name}` is being rolled back; run `zerodown rollback {name}` to finish that"
        ))),
        Status::Backfilled | Status::Completing => Ok(true),
        Status::RolledBack => unreachable!("active states are never rolled back"),
    }
}

/// `rollback`: stops a running driver, then undoes every step done so far, newest first.
pub fn rollback(engine: &mut dyn Engine, name: &str, ctx: &mut Ctx) -> Result<()> {
    ctx.guard_for(engine);
    // Running rollback again after it finished (e.g. a re-run after a crash at its very end) is a no-op.
    if active_state(engine, name)?.is_none() && engine.states()?.iter().any(|s| s.name == name) {
        (ctx.emit)(Event::Note(format!("`{name}` is already rolled back")));
        return Ok(());
    }
    let state = require_state(engine, name)?;
    if state.status == Status::Completed {
        return Err(Error::WrongPhase(format!(
            "`{name}` is completed and can no longer be rolled back; write a new migration to change the column"
        )));
    }
    check_format(&state)?;
    engine.request_cancel(state.id, true)?;
    (ctx.emit)(Event::Note(format!(
        "asked any running zerodown on `{name}` to stop"
    )));
    let _lock = engine.lock_driver(name, ROLLBACK_WAIT)?;
    let guard = ctx.guard(engine);
    engine.set_status(state.id, Status::RollingBack)?;
    engine.heartbeat(state.id)?;
    let mut state = require_state(engine, name)?;
    while state.next_step > 0 {
        let index = state.next_step - 1;
        let step = state.plan.steps[index].clone();
        if !step.undo.is_empty() {
            (ctx.emit)(Event::StepStarted {
                index,
                total: state.plan.steps.len(),
                step: step.clone(),
            });
            let started = Instant::now();
            engine.run_undo(state.id, index, &step.undo, &guard, ctx.emit)?;
            (ctx.emit)(Event::StepDone {
                index,
                elapsed: started.elapsed(),
            });
        } else {
            engine.run_undo(state.id, index, &[], &guard, ctx.emit)?;
        }
        state.next_step = index;
    }
    engine.mark_rolled_back(state.id)?;
    Ok(())
}
