//! Schema changes on SQLite: each step's statements and its `next_step` record in one write
//! transaction, and the final step, whose column-default edit goes through the schema table.

use super::{STATE_TABLE, Sqlite, now_text, quote, schema_edit, sqlite_err};
use crate::engine::{Event, LockGuardSettings, StateRow};
use crate::error::{Error, Result};
use crate::spec::{Dialect, analyze_expr};

impl Sqlite {
    /// Runs `sql` and records `next_step` in one write transaction: a crash leaves both or neither.
    pub(super) fn run_and_record(
        &mut self,
        id: i64,
        next_step: usize,
        sql: &[String],
        what: &str,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let record = format!(
            "UPDATE {} SET next_step = ?1, updated_at = {} WHERE id = ?2",
            quote(STATE_TABLE),
            now_text()
        );
        self.write_tx(what, guard, emit, |c| {
            for s in sql {
                c.execute_batch(s)
                    .map_err(|e| Error::db(format!("running `{s}`"), e))?;
            }
            c.execute(&record, rusqlite::params![next_step as i64, id])
                .map_err(|e| sqlite_err("recording the step", e))?;
            Ok(())
        })
    }

    pub(super) fn finish(
        &mut self,
        state: &StateRow,
        index: usize,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let plan = &state.plan;
        let spec: crate::spec::Migration =
            crate::spec::Migration::from_toml(&state.name, &state.spec, "state row")
                .map_err(Error::from)?;
        let add = spec.add_column().clone();
        let step = &plan.steps[index];
        let set_default = step
            .sql
            .iter()
            .any(|s| s.sql.starts_with("PRAGMA writable_schema"));
        let plain: Vec<String> = step
            .sql
            .iter()
            .filter(|s| !s.sql.starts_with("PRAGMA ") && !s.sql.starts_with("UPDATE sqlite_schema"))
            .map(|s| s.sql.clone())
            .collect();
        let table = plan.table.clone();
        let column = plan.column.clone();
        let default = add.default.clone();
        let literal_default = default
            .as_deref()
            .map(|d| {
                analyze_expr(d, Dialect::Sqlite, "default")
                    .map(|i| i.is_literal)
                    .unwrap_or(false)
            })
            .unwrap_or(false);
        let record = format!(
            "UPDATE {} SET next_step = ?1, status = 'completed', completed_at = {now}, updated_at = {now} WHERE id = ?2",
            quote(STATE_TABLE),
            now = now_text()
        );
        let id = state.id;
        self.write_tx("the final step", guard, emit, |c| {
            if set_default && let Some(def) = &default {
                schema_edit::set_column_default(c, &table, &column, def, literal_default)?;
            }
            for s in &plain {
                c.execute_batch(s)
                    .map_err(|e| Error::db(format!("running `{s}`"), e))?;
            }
            c.execute(&record, rusqlite::params![index as i64 + 1, id])
                .map_err(|e| sqlite_err("recording completion", e))?;
            Ok(())
        })
    }
}
