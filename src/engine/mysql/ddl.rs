//! Running a step's DDL: each statement under the lock guard, run as its kind in the plan says (an
//! INSTANT statement refused → its planned INPLACE, LOCK=NONE fallback; a copy only with
//! --allow-copy), then the step recorded. Nothing here reads a statement's text to decide how to run
//! it. DDL commits at once here, so every statement is idempotent and a crash between a statement and
//! its record re-runs it harmlessly.

use super::error::{code, message};
use super::guard::{Attempt, Guarded, Waiting, guarded_sql};
use super::{Flavour, MySql, STATE_TABLE, mysql8, quote};
use crate::engine::{Event, LockGuardSettings, StateRow};
use crate::error::{Error, Result};
use crate::plan::{Run, Statement};
use mysql::prelude::Queryable;
use std::time::Duration;

impl MySql {
    /// Runs one planned DDL statement under the lock guard; a copy only with --allow-copy.
    pub(super) fn ddl(
        &mut self,
        stmt: &Statement,
        table: &str,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        if stmt.run == Run::Copy && !self.allow_copy {
            return Err(Error::Refused(format!(
                "`{}` copies the whole table while application writes wait (MariaDB has no online way to do it); run again with --allow-copy to accept that, or drop `check` from the migration",
                stmt.sql
            )));
        }
        let mut stmt = stmt.clone();
        let action = Guarded {
            waiting: Waiting::Statement(stmt.sql.clone()),
            table,
            drives: true,
        };
        let timeout = guard.timeout;
        self.guarded(action, guard, emit, |db, emit| {
            db.ddl_attempt(&mut stmt, timeout, emit)
        })
    }

    /// One try of a DDL statement. An INSTANT statement the server refuses → its planned fallback.
    fn ddl_attempt(
        &mut self,
        stmt: &mut Statement,
        timeout: Duration,
        emit: &mut dyn FnMut(Event),
    ) -> Attempt<()> {
        let sql = stmt.sql.clone();
        let e = match self.flavour {
            Flavour::MariaDb => match self.conn.query_drop(guarded_sql(stmt, timeout)) {
                Ok(()) => return Attempt::Done(()),
                Err(e) => e,
            },
            // MySQL 8 (documented, not run): session lock wait, KILL QUERY build timeout, and
            // "already exists" on a re-run meaning done (no IF [NOT] EXISTS); see mysql8.rs.
            Flavour::MySql => match mysql8::run(&mut self.conn, &self.target, stmt, timeout) {
                Err(e) => return Attempt::Fail(e),
                Ok(Ok(())) => return Attempt::Done(()),
                Ok(Err(e)) if mysql8::row_versions_used_up(&e) && has_fallback(stmt) => {
                    let why = format!(
                        "the table has no instant column change left ({}); using ALGORITHM=INPLACE, LOCK=NONE, an online rebuild",
                        message(&e)
                    );
                    return online_instead(stmt, e, why, emit);
                }
                Ok(Err(e)) if mysql8::already_done(&e) => {
                    emit(Event::Note(format!(
                        "`{sql}` had already run ({}): done",
                        message(&e)
                    )));
                    return Attempt::Done(());
                }
                Ok(Err(e)) => e,
            },
        };
        match code(&e) {
            Some(1845 | 1846) if has_fallback(stmt) => {
                let why = format!(
                    "the server refused ALGORITHM=INSTANT ({}); using ALGORITHM=INPLACE, LOCK=NONE",
                    message(&e)
                );
                online_instead(stmt, e, why, emit)
            }
            Some(1419) => Attempt::Fail(Error::Refused(self.target.scrub(&format!(
                "`{sql}`: {}; with the binary log on, creating the dual-write triggers needs the SUPER privilege or log_bin_trust_function_creators=1 (SET GLOBAL log_bin_trust_function_creators = 1, by an administrator), then run the command again",
                message(&e)
            )))),
            Some(1845 | 1846) => Attempt::Fail(Error::Refused(self.target.scrub(&format!(
                "`{sql}` cannot run online here: {}; zerodown never lets the server copy the table under a write lock",
                message(&e)
            )))),
            _ => Attempt::Server(e),
        }
    }

    /// DDL commits at once on MySQL/MariaDB: each statement runs guarded, then the step is recorded;
    /// the statements are idempotent (IF [NOT] EXISTS), so a crash in between re-runs them harmlessly.
    pub(super) fn run_step(
        &mut self,
        id: i64,
        index: usize,
        sql: &[Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let plan = self.state(id)?.plan;
        for s in sql {
            self.ddl(s, &plan.op_of(index).table, guard, emit)?;
        }
        self.write_step_done(id, index, Some(emit))
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
            self.ddl(s, &plan.op_of(index).table, guard, emit)?;
        }
        self.state_exec(
            &format!(
                "UPDATE {} SET next_step = ?, status = 'completed', completed_at = UTC_TIMESTAMP(3), updated_at = UTC_TIMESTAMP(3) WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![(index as i64 + 1).into(), state.id.into()],
            Some(emit),
        )
        .map(|_| ())
    }

    pub(super) fn run_undo_step(
        &mut self,
        id: i64,
        index: usize,
        sql: &[Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        self.flush_pending(emit);
        let plan = self.state(id)?.plan;
        for s in sql {
            self.ddl(s, &plan.op_of(index).table, guard, emit)?;
        }
        self.state_exec(
            &format!(
                "UPDATE {} SET next_step = ?, updated_at = UTC_TIMESTAMP(3) WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![(index as i64).into(), id.into()],
            Some(emit),
        )
        .map(|_| ())
    }
}

/// Does the plan give this statement an online fallback for when INSTANT is refused?
fn has_fallback(stmt: &Statement) -> bool {
    matches!(stmt.run, Run::InstantOr { .. })
}

/// Says why in a note, and puts the plan's fallback, an online INPLACE build, in the statement's place.
fn online_instead(
    stmt: &mut Statement,
    refused: mysql::Error,
    why: String,
    emit: &mut dyn FnMut(Event),
) -> Attempt<()> {
    let Run::InstantOr { fallback } = &stmt.run else {
        return Attempt::Server(refused);
    };
    emit(Event::Note(why));
    *stmt = Statement {
        sql: fallback.clone(),
        run: Run::OnlineBuild {
            index: None,
            strict: false,
        },
    };
    Attempt::Rewritten(stmt.sql.clone())
}
