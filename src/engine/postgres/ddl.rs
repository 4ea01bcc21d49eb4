//! Running a plan's DDL: each step with its record in one guarded transaction, so a step is done
//! exactly once across crashes and dropped connections; CONCURRENTLY builds in autocommit under the
//! build timeout, with the INVALID index a failed build leaves cleaned up.

use super::error::{pg, sqlstate};
use super::guard::{LockTarget, ms};
use super::rules::qualified;
use super::{Postgres, state_table};
use crate::engine::{Event, LockGuardSettings, StateRow};
use crate::error::Result;
use crate::plan::Statement;
use postgres::types::ToSql;

/// A step's statements and the state write that records them, committed together once.
struct Recorded<'a> {
    /// The step in the user's words, for errors and lock retries.
    what: &'a str,
    sql: &'a [String],
    /// `SELECT <bool> … FOR UPDATE` of the state row: true once an earlier attempt committed the step.
    done: String,
    done_params: &'a [&'a (dyn ToSql + Sync)],
    record: String,
    record_params: &'a [&'a (dyn ToSql + Sync)],
    /// What a failed `record` was doing.
    recording: &'static str,
}

/// A CONCURRENTLY statement, which must run outside any transaction.
fn is_concurrent(sql: &str) -> bool {
    let up = sql.trim_start().to_ascii_uppercase();
    up.starts_with("CREATE INDEX CONCURRENTLY")
        || up.starts_with("CREATE UNIQUE INDEX CONCURRENTLY")
        || up.starts_with("DROP INDEX CONCURRENTLY")
}

/// Reads a quoted identifier at the start of `s`; returns it and the rest.
fn read_quoted(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, ch)) = chars.next() {
        if ch == '"' {
            if chars.peek().map(|(_, c)| *c) == Some('"') {
                chars.next();
                out.push('"');
            } else {
                return Some((out, &s[i + 1..]));
            }
        } else {
            out.push(ch);
        }
    }
    None
}

/// (schema, index) of `CREATE [UNIQUE] INDEX CONCURRENTLY "ix" ON "schema"."t" …` as rules.rs writes it.
fn built_index(sql: &str) -> Option<(String, String)> {
    let rest = &sql[sql.find("CONCURRENTLY ")? + "CONCURRENTLY ".len()..];
    let (index, rest) = read_quoted(rest)?;
    let rest = rest.strip_prefix(" ON ")?;
    let (schema, _) = read_quoted(rest)?;
    Some((schema, index))
}

impl Postgres {
    /// Runs a CONCURRENTLY statement in autocommit under the build timeout. A build first drops an
    /// INVALID index a failed earlier build left under the same name; a build that fails drops its own.
    fn run_concurrent(&mut self, sql: &str, emit: &mut dyn FnMut(Event)) -> Result<()> {
        let timeout = ms(self.build_timeout);
        let built = if sql.trim_start().to_ascii_uppercase().starts_with("CREATE") {
            built_index(sql)
        } else {
            None
        };
        if let Some((schema, index)) = &built {
            let valid: Option<bool> = self
                .client
                .query_opt(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                    &[schema, index],
                )
                .map_err(|e| self.db_err("looking for a leftover index", &e))?
                .map(|r| r.get(0));
            match valid {
                Some(true) => return Ok(()),
                Some(false) => {
                    emit(Event::Note(format!(
                        "index {index} was left INVALID by a failed build: dropping it and building it again"
                    )));
                    self.autocommit(
                        &format!(
                            "DROP INDEX CONCURRENTLY IF EXISTS {}",
                            qualified(schema, index)
                        ),
                        timeout,
                    )?;
                }
                None => {}
            }
        }
        match self.autocommit(sql, timeout) {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Some((schema, index)) = &built {
                    let _ = self.autocommit(
                        &format!(
                            "DROP INDEX CONCURRENTLY IF EXISTS {}",
                            qualified(schema, index)
                        ),
                        timeout,
                    );
                }
                Err(e)
            }
        }
    }

    /// [`run_concurrent`](Self::run_concurrent), again after a dropped connection (the server
    /// cancels a build whose client is gone; the retry drops the INVALID index it left).
    fn concurrent_reconnecting(&mut self, sql: &str, emit: &mut dyn FnMut(Event)) -> Result<()> {
        for _ in 0..10 {
            self.check_driver()?;
            match self.run_concurrent(sql, emit) {
                Err(_)
                    if self.client.is_closed() || self.client.simple_query("SELECT 1").is_err() =>
                {
                    self.reconnect()?;
                    self.flush_notes(emit);
                }
                r => return r,
            }
        }
        self.run_concurrent(sql, emit)
    }

    /// One statement outside any transaction, under lock and statement timeouts of `timeout_ms`.
    fn autocommit(&mut self, sql: &str, timeout_ms: u128) -> Result<()> {
        self.client
            .batch_execute(&format!(
                "SET lock_timeout = '{timeout_ms}ms'; SET statement_timeout = '{timeout_ms}ms'"
            ))
            .map_err(|e| self.db_err("setting the build timeout", &e))?;
        let result = self.client.batch_execute(sql);
        let reset = self
            .client
            .batch_execute("RESET lock_timeout; RESET statement_timeout");
        result.map_err(|e| {
            let hint = match sqlstate(&e) {
                Some("57014") | Some("55P03") => " (the build timed out: raise --build-timeout, or end the long transactions it waits for)",
                Some("23505") => " (existing rows have duplicate values)",
                _ => "",
            };
            self.db_err(&format!("running `{sql}`{hint}"), &e)
        })?;
        reset.map_err(|e| self.db_err("resetting timeouts", &e))
    }

    /// Runs a step's statements, then records it; a step with CONCURRENTLY statements runs them
    /// in autocommit first.
    pub(super) fn run_ddl(
        &mut self,
        id: i64,
        index: usize,
        sql: &[String],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let record = format!(
            "UPDATE {} SET next_step = $1, updated_at = now(), heartbeat = now() WHERE id = $2",
            state_table()
        );
        let next = index as i32 + 1;
        self.flush_notes(emit);
        self.yield_autovacuum(&LockTarget::Migration(id), guard, emit)?;
        if sql.iter().any(|s| is_concurrent(s)) {
            return self.build_then_record(sql, &record, &[&next, &id], emit);
        }
        let what = format!("step {}", index + 1);
        let step = Recorded {
            what: &what,
            sql,
            done: format!(
                "SELECT next_step >= $1 FROM {} WHERE id = $2 FOR UPDATE",
                state_table()
            ),
            done_params: &[&next, &id],
            record,
            record_params: &[&next, &id],
            recording: "recording the step",
        };
        self.run_recorded(id, step, guard, emit)
    }

    /// Runs the last contract step and marks the migration completed, in one transaction.
    pub(super) fn finish(
        &mut self,
        state: &StateRow,
        index: usize,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let next = index as i32 + 1;
        let id = state.id;
        self.flush_notes(emit);
        let step = Recorded {
            what: "the final step",
            sql: &Statement::texts(&state.plan.steps[index].sql),
            done: format!(
                "SELECT status = 'completed' FROM {} WHERE id = $1 FOR UPDATE",
                state_table()
            ),
            done_params: &[&id],
            record: format!(
                "UPDATE {} SET next_step = $1, status = 'completed', completed_at = now(), updated_at = now() WHERE id = $2",
                state_table()
            ),
            record_params: &[&next, &id],
            recording: "recording completion",
        };
        self.run_recorded(id, step, guard, emit)
    }

    /// Runs a step's undo, then records the step as undone.
    pub(super) fn run_undo(
        &mut self,
        id: i64,
        index: usize,
        sql: &[String],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let record = format!(
            "UPDATE {} SET next_step = $1, updated_at = now() WHERE id = $2",
            state_table()
        );
        let at = index as i32;
        self.flush_notes(emit);
        if sql.iter().any(|s| is_concurrent(s)) {
            return self.build_then_record(sql, &record, &[&at, &id], emit);
        }
        let step = Recorded {
            what: "a rollback step",
            sql,
            done: format!(
                "SELECT next_step <= $1 FROM {} WHERE id = $2 FOR UPDATE",
                state_table()
            ),
            done_params: &[&at, &id],
            record,
            record_params: &[&at, &id],
            recording: "recording the rollback step",
        };
        self.run_recorded(id, step, guard, emit)
    }

    /// Runs a step's statements and its record in one guarded transaction on migration `id`'s
    /// table. The state row is read first, FOR UPDATE: a step that committed before a dropped
    /// connection could say so is not run again.
    fn run_recorded(
        &mut self,
        id: i64,
        step: Recorded,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        self.guarded(step.what, guard, LockTarget::Migration(id), emit, |tx| {
            let already: bool = tx
                .query_one(&step.done, step.done_params)
                .map_err(pg("reading the step's state"))?
                .get(0);
            if already {
                return Ok(());
            }
            for s in step.sql {
                tx.batch_execute(s).map_err(pg(format!("running `{s}`")))?;
            }
            tx.execute(&step.record, step.record_params)
                .map_err(pg(step.recording))?;
            Ok(())
        })
    }

    /// CONCURRENTLY cannot run in a transaction: each statement runs in autocommit, then the step
    /// is recorded; a crash in between finds the valid index at the next run and only records it.
    fn build_then_record(
        &mut self,
        sql: &[String],
        record: &str,
        params: &[&(dyn ToSql + Sync)],
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        for s in sql {
            self.concurrent_reconnecting(s, emit)?;
        }
        self.state_update(record, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_index_of_a_concurrent_build() {
        assert_eq!(
            built_index(
                "CREATE UNIQUE INDEX CONCURRENTLY \"zd_uq_1\" ON \"my \"\"s\"\"\".\"t\" (\"c\")"
            ),
            Some(("my \"s\"".to_string(), "zd_uq_1".to_string()))
        );
        assert!(is_concurrent(
            "DROP INDEX CONCURRENTLY IF EXISTS \"s\".\"i\""
        ));
        assert!(!is_concurrent(
            "ALTER TABLE t ADD CONSTRAINT x UNIQUE USING INDEX x"
        ));
    }
}
