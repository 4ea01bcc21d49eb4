//! Running a step's DDL: each statement under the lock guard (INSTANT refused → INPLACE, LOCK=NONE;
//! COPY only with --allow-copy), then the step recorded. DDL commits at once here, so every statement
//! is idempotent and a crash between a statement and its record re-runs it harmlessly.

use super::error::{code, is_lock_failure, message};
use super::guard::{guarded_sql, jittered_backoff};
use super::reconnect::MAX_RECONNECTS;
use super::rules::COLUMN_DEFINITION;
use super::{Flavour, MySql, STATE_TABLE, mysql8, quote};
use crate::engine::{Event, LockGuardSettings, StateRow};
use crate::error::{Error, Result};
use crate::plan::Plan;
use mysql::prelude::Queryable;
use std::time::Instant;

impl MySql {
    /// [`Self::ddl`], run again on a new connection when the connection was lost (every statement the
    /// rules write is idempotent); `ddl` reports a lost connection as a plain error, so a failed ping
    /// tells the two apart.
    pub(super) fn ddl_reconnecting(
        &mut self,
        sql: &str,
        plan: &Plan,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let mut reconnects = 0;
        loop {
            self.check_driver()?;
            self.flush_notes(emit);
            match self.ddl(sql, plan, guard, emit) {
                Ok(()) => return Ok(()),
                Err(e @ Error::Database { .. })
                    if reconnects < MAX_RECONNECTS && self.conn.ping().is_err() =>
                {
                    tracing::info!("`{sql}`: connection lost: {e}");
                    reconnects += 1;
                    self.reconnect()?;
                    self.flush_notes(emit);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs one DDL statement under the lock guard: a short wait, retried with jittered backoff within
    /// the budget, naming the blockers each time. INSTANT refused → INPLACE, LOCK=NONE; COPY only with
    /// --allow-copy.
    pub(super) fn ddl(
        &mut self,
        sql: &str,
        plan: &Plan,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let mut sql = sql.to_string();
        if sql.contains(COLUMN_DEFINITION) {
            let def = self.column_definition(&plan.table, &plan.column)?;
            sql = sql.replace(COLUMN_DEFINITION, &def);
        }
        if sql.contains("ALGORITHM=COPY") && !self.allow_copy {
            return Err(Error::Refused(format!(
                "`{sql}` copies the whole table while application writes wait (MariaDB has no online way to do it); run again with --allow-copy to accept that, or drop `check` from the migration"
            )));
        }
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let attempt_started = Instant::now();
            let e = match self.flavour {
                Flavour::MariaDb => match self.conn.query_drop(guarded_sql(&sql, guard.timeout)) {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                },
                // MySQL 8 (documented, not run): session lock wait, KILL QUERY build timeout, and
                // "already exists" on a re-run meaning done (no IF [NOT] EXISTS); see mysql8.rs.
                Flavour::MySql => {
                    match mysql8::run(&mut self.conn, &self.target, &sql, guard.timeout)? {
                        Ok(()) => return Ok(()),
                        Err(e)
                            if mysql8::row_versions_used_up(&e)
                                && sql.contains("ALGORITHM=INSTANT") =>
                        {
                            emit(Event::Note(format!(
                                "the table has no instant column change left ({}); using ALGORITHM=INPLACE, LOCK=NONE, an online rebuild",
                                message(&e)
                            )));
                            sql = sql.replace("ALGORITHM=INSTANT", "ALGORITHM=INPLACE, LOCK=NONE");
                            attempt -= 1;
                            continue;
                        }
                        Err(e) if mysql8::already_done(&e) => {
                            emit(Event::Note(format!(
                                "`{sql}` had already run ({}): done",
                                message(&e)
                            )));
                            return Ok(());
                        }
                        Err(e) => e,
                    }
                }
            };
            match code(&e) {
                Some(1845 | 1846) if sql.contains("ALGORITHM=INSTANT") => {
                    emit(Event::Note(format!(
                        "the server refused ALGORITHM=INSTANT ({}); using ALGORITHM=INPLACE, LOCK=NONE",
                        message(&e)
                    )));
                    sql = sql.replace("ALGORITHM=INSTANT", "ALGORITHM=INPLACE, LOCK=NONE");
                    attempt -= 1;
                    continue;
                }
                Some(1419) => {
                    return Err(Error::Refused(self.target.scrub(&format!(
                        "`{sql}`: {}; with the binary log on, creating the dual-write triggers needs the SUPER privilege or log_bin_trust_function_creators=1 (SET GLOBAL log_bin_trust_function_creators = 1, by an administrator), then run the command again",
                        message(&e)
                    ))));
                }
                Some(1845 | 1846) => {
                    return Err(Error::Refused(self.target.scrub(&format!(
                        "`{sql}` cannot run online here: {}; zerodown never lets the server copy the table under a write lock",
                        message(&e)
                    ))));
                }
                _ if is_lock_failure(&e) => {}
                _ => return Err(self.db_err(&format!("running `{sql}`"), &e)),
            }
            let waited = attempt_started.elapsed();
            let blocker = self.blockers(&plan.table);
            emit(Event::LockRetry {
                attempt,
                waited,
                blocker: blocker.clone(),
            });
            let backoff = jittered_backoff(attempt);
            if started.elapsed() + backoff + guard.timeout > guard.budget {
                return Err(Error::LockBudget(format!(
                    "`{sql}`: could not get its metadata lock in {attempt} attempts over {:.1?} (lock budget {}); last blocked by {blocker} — this statement changed nothing; end that session or run the command again later, or raise --lock-budget",
                    started.elapsed(),
                    humantime::format_duration(guard.budget)
                )));
            }
            std::thread::sleep(backoff);
        }
    }

    /// DDL commits at once on MySQL/MariaDB: each statement runs guarded, then the step is recorded;
    /// the statements are idempotent (IF [NOT] EXISTS), so a crash in between re-runs them harmlessly.
    pub(super) fn run_step(
        &mut self,
        id: i64,
        index: usize,
        sql: &[String],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let plan = self.state(id)?.plan;
        for s in sql {
            self.ddl_reconnecting(s, &plan, guard, emit)?;
        }
        self.write_step_done(id, index)
    }

    /// No transaction spans DDL here: the default goes on first, then the triggers come off, each
    /// statement guarded and idempotent; completion is recorded last.
    pub(super) fn run_finish(
        &mut self,
        state: &StateRow,
        index: usize,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let plan = state.plan.clone();
        for s in &plan.steps[index].sql {
            self.ddl_reconnecting(s, &plan, guard, emit)?;
        }
        self.state_exec(
            &format!(
                "UPDATE {} SET next_step = ?, status = 'completed', completed_at = UTC_TIMESTAMP(3), updated_at = UTC_TIMESTAMP(3) WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![(index as i64 + 1).into(), state.id.into()],
        )
        .map(|_| ())
    }

    pub(super) fn run_undo_step(
        &mut self,
        id: i64,
        index: usize,
        sql: &[String],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        self.flush_notes(emit);
        let plan = self.state(id)?.plan;
        for s in sql {
            self.ddl_reconnecting(s, &plan, guard, emit)?;
        }
        self.state_exec(
            &format!(
                "UPDATE {} SET next_step = ?, updated_at = UTC_TIMESTAMP(3) WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![(index as i64).into(), id.into()],
        )
        .map(|_| ())
    }
}
