//! Schema changes on SQLite: each step's statements and its `next_step` record in one write
//! transaction. Each statement runs as its [`Run`] says — in the transaction, or as a schema edit of a
//! column's default — and its text is never inspected to decide how.

use super::{STATE_TABLE, Sqlite, now_text, quote, schema_edit, sqlite_err};
use crate::engine::{Event, LockGuardSettings, StateRow};
use crate::error::{Error, Result};
use crate::plan::{Run, Statement};
use rusqlite::Connection;

impl Sqlite {
    /// Runs `sql` and records `next_step` in one write transaction: a crash leaves both or neither.
    pub(super) fn run_and_record(
        &mut self,
        id: i64,
        next_step: usize,
        sql: &[Statement],
        what: &str,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        check_runnable(sql)?;
        let record = format!(
            "UPDATE {} SET next_step = ?1, updated_at = {} WHERE id = ?2",
            quote(STATE_TABLE),
            now_text()
        );
        self.write_tx(what, guard, emit, |c| {
            run_statements(c, sql)?;
            c.execute(&record, rusqlite::params![next_step as i64, id])
                .map_err(|e| sqlite_err("recording the step", e))?;
            Ok(())
        })
    }

    /// Runs the Finish step's statements exactly as planned and marks the migration completed, in one
    /// write transaction: the default goes on together with the triggers coming off.
    pub(super) fn finish(
        &mut self,
        state: &StateRow,
        index: usize,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let step = state.plan.steps.get(index).ok_or_else(|| {
            internal(format!(
                "the plan of `{}` has no step {}",
                state.name,
                index + 1
            ))
        })?;
        check_runnable(&step.sql)?;
        let record = format!(
            "UPDATE {} SET next_step = ?1, status = 'completed', completed_at = {now}, updated_at = {now} WHERE id = ?2",
            quote(STATE_TABLE),
            now = now_text()
        );
        let id = state.id;
        self.write_tx("the final step", guard, emit, |c| {
            run_statements(c, &step.sql)?;
            c.execute(&record, rusqlite::params![index as i64 + 1, id])
                .map_err(|e| sqlite_err("recording completion", e))?;
            Ok(())
        })
    }
}

/// Refuses, before anything runs, a statement marked to run in a way SQLite has not: a plan built
/// for another engine, or a bug. Nothing of the step has run when this fails.
fn check_runnable(sql: &[Statement]) -> Result<()> {
    match sql.iter().find(|s| not_sqlite(&s.run).is_some()) {
        Some(s) => Err(unrunnable(s)),
        None => Ok(()),
    }
}

/// What a run kind is called when SQLite cannot run it.
fn not_sqlite(run: &Run) -> Option<&'static str> {
    match run {
        Run::InStep | Run::SqliteSetDefault { .. } => None,
        Run::OnlineBuild { .. } => Some("an online build"),
        Run::InstantOr { .. } => Some("ALGORITHM=INSTANT with a fallback"),
        Run::Copy => Some("a table copy (ALGORITHM=COPY)"),
    }
}

fn unrunnable(s: &Statement) -> Error {
    internal(format!(
        "the plan marks `{}` to run as {}, which SQLite has no way to run; nothing of this step was run",
        s.sql,
        not_sqlite(&s.run).unwrap_or("an unknown kind")
    ))
}

fn internal(msg: String) -> Error {
    Error::Refused(format!(
        "internal error: {msg} (the stored plan does not match this engine; please report it)"
    ))
}

/// Runs each statement as its [`Run`] says, inside the caller's write transaction. An in-step
/// statement is prepared as exactly one statement, so no text can add a second one.
fn run_statements(c: &Connection, sql: &[Statement]) -> Result<()> {
    for s in sql {
        match &s.run {
            Run::InStep => {
                c.execute(&s.sql, [])
                    .map_err(|e| Error::db(format!("running `{}`", s.sql), e))?;
            }
            Run::SqliteSetDefault {
                table,
                column,
                default,
                literal,
            } => schema_edit::set_column_default(c, table, column, Some((default, *literal)))?,
            Run::OnlineBuild { .. } | Run::InstantOr { .. } | Run::Copy => {
                return Err(unrunnable(s));
            }
        }
    }
    Ok(())
}
