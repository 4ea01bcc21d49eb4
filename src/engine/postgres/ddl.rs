//! Running a plan's DDL: each step with its record in one guarded transaction, so a step is done
//! exactly once across crashes and dropped connections; online builds (CONCURRENTLY) in autocommit
//! under the build timeout, with the INVALID index a failed build leaves cleaned up. How a statement
//! runs is read from its [`Run`], never from its text.

use super::error::{pg, sqlstate};
use super::guard::{LockTarget, ms};
use super::{Postgres, state_table};
use crate::engine::{Event, LockGuardSettings, StateRow};
use crate::error::{Error, Result};
use crate::plan::{Run, Statement};
use postgres::types::ToSql;

/// A step's statements and the state write that records them, committed together once.
struct Recorded<'a> {
    /// The step in the user's words, for errors and lock retries.
    what: &'a str,
    sql: Vec<&'a str>,
    /// `SELECT <bool> … FOR UPDATE` of the state row: true once an earlier attempt committed the step.
    done: String,
    done_params: &'a [&'a (dyn ToSql + Sync)],
    record: String,
    record_params: &'a [&'a (dyn ToSql + Sync)],
    /// What a failed `record` was doing.
    recording: &'static str,
}

/// An online build or drop: run alone in autocommit under the build timeout.
struct Online<'a> {
    sql: &'a str,
    /// The index it builds or drops, schema-qualified and quoted as the plan wrote it: an INVALID
    /// one (left by an interrupted build or drop) is dropped before the statement runs and after it fails.
    index: Option<&'a str>,
}

/// How one step's statements run, decided from their [`Run`] alone.
enum StepRun<'a> {
    /// Together in the step's transaction, with its record.
    InStep(Vec<&'a str>),
    /// Each alone in autocommit, then the record.
    Online(Vec<Online<'a>>),
}

/// A stored plan PostgreSQL cannot run as written: refused before anything of the step runs.
fn unrunnable(what: &str, why: &str) -> Error {
    Error::Refused(format!(
        "{what} of the stored plan cannot run on PostgreSQL: {why}; nothing of it was run"
    ))
}

/// Sorts a step's statements by how they run. A step runs either all in its transaction or all
/// online; a statement kind PostgreSQL does not run is an error, never guessed at.
fn step_run<'a>(what: &str, stmts: &'a [Statement]) -> Result<StepRun<'a>> {
    let mut in_step = Vec::new();
    let mut online = Vec::new();
    for s in stmts {
        match &s.run {
            Run::InStep => in_step.push(s.sql.as_str()),
            Run::OnlineBuild {
                index,
                strict: false,
            } => online.push(Online {
                sql: &s.sql,
                index: index.as_deref(),
            }),
            Run::OnlineBuild { strict: true, .. } => {
                return Err(unrunnable(what, "a strict online build is MySQL's"));
            }
            Run::InstantOr { .. } => {
                return Err(unrunnable(what, "ALGORITHM=INSTANT is MySQL's"));
            }
            Run::Copy => {
                return Err(unrunnable(what, "a table copy is MySQL's"));
            }
            Run::SqliteSetDefault { .. } => {
                return Err(unrunnable(what, "a schema edit is SQLite's"));
            }
        }
    }
    match (in_step.is_empty(), online.is_empty()) {
        (_, true) => Ok(StepRun::InStep(in_step)),
        (true, false) => Ok(StepRun::Online(online)),
        (false, false) => Err(unrunnable(
            what,
            "it mixes statements of one transaction with online builds",
        )),
    }
}

impl Postgres {
    /// Whether `index` (a qualified name) is an index and valid; `None` when nothing has the name.
    /// A relation of that name that is not an index is an error: the step would act on the wrong thing.
    fn index_validity(&mut self, index: &str) -> Result<Option<bool>> {
        let row = self
            .client
            .query_opt(
                "SELECT c.relkind = 'i', i.indisvalid FROM pg_catalog.pg_class c
                 LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
                 WHERE c.oid = pg_catalog.to_regclass($1)",
                &[&index],
            )
            .map_err(|e| self.db_err("looking for a leftover index", &e))?;
        match row {
            None => Ok(None),
            Some(r) if r.get::<_, bool>(0) => Ok(Some(r.get(1))),
            Some(_) => Err(Error::Refused(format!(
                "{index} exists and is not an index: zerodown will not build or drop an index under its name"
            ))),
        }
    }

    /// Drops `index` when it is INVALID (an interrupted build or drop left it).
    fn drop_if_invalid(&mut self, index: &str, timeout: u128) -> Result<()> {
        if self.index_validity(index)? == Some(false) {
            self.autocommit(
                &format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"),
                timeout,
            )?;
        }
        Ok(())
    }

    /// Runs an online statement in autocommit under the build timeout, first dropping the INVALID
    /// index an interrupted earlier build or drop left; a statement that fails drops the one it left.
    fn run_online(&mut self, stmt: &Online, emit: &mut dyn FnMut(Event)) -> Result<()> {
        let timeout = ms(self.build_timeout);
        if let Some(index) = stmt.index
            && self.index_validity(index)? == Some(false)
        {
            emit(Event::Note(format!(
                "index {index} was left INVALID by an interrupted build or drop: dropping it before running the step again"
            )));
            self.autocommit(
                &format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"),
                timeout,
            )?;
        }
        match self.autocommit(stmt.sql, timeout) {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Some(index) = stmt.index {
                    let _ = self.drop_if_invalid(index, timeout);
                }
                Err(e)
            }
        }
    }

    /// [`run_online`](Self::run_online), again after a dropped connection (the server cancels a
    /// build whose client is gone; the retry drops the INVALID index it left).
    fn online_reconnecting(&mut self, stmt: &Online, emit: &mut dyn FnMut(Event)) -> Result<()> {
        for _ in 0..10 {
            self.check_driver()?;
            match self.run_online(stmt, emit) {
                Err(_)
                    if self.client.is_closed() || self.client.simple_query("SELECT 1").is_err() =>
                {
                    self.reconnect()?;
                    self.flush_notes(emit);
                }
                r => return r,
            }
        }
        self.run_online(stmt, emit)
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

    /// Runs a step's statements, then records it: in one guarded transaction, or, for online
    /// builds, each in autocommit and then the record.
    pub(super) fn run_ddl(
        &mut self,
        id: i64,
        index: usize,
        sql: &[Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let what = format!("step {}", index + 1);
        let run = step_run(&what, sql)?;
        let record = format!(
            "UPDATE {} SET next_step = $1, updated_at = now(), heartbeat = now() WHERE id = $2",
            state_table()
        );
        let next = index as i32 + 1;
        self.flush_notes(emit);
        self.yield_autovacuum(&LockTarget::Step(id, index), guard, emit)?;
        let sql = match run {
            StepRun::Online(online) => {
                return self.online_then_record(&online, &record, &[&next, &id], emit);
            }
            StepRun::InStep(sql) => sql,
        };
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
        self.run_recorded(id, index, step, guard, emit)
    }

    /// Runs the last contract step and marks the migration completed, in one transaction.
    pub(super) fn finish(
        &mut self,
        state: &StateRow,
        index: usize,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let what = "the final step";
        let stmts = &state
            .plan
            .steps
            .get(index)
            .ok_or_else(|| unrunnable(what, &format!("it has no step {}", index + 1)))?
            .sql;
        let StepRun::InStep(sql) = step_run(what, stmts)? else {
            return Err(unrunnable(
                what,
                "an online build cannot share the transaction that marks the migration completed",
            ));
        };
        let next = index as i32 + 1;
        let id = state.id;
        self.flush_notes(emit);
        let step = Recorded {
            what,
            sql,
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
        self.run_recorded(id, index, step, guard, emit)
    }

    /// Runs a step's undo, then records the step as undone.
    pub(super) fn run_undo(
        &mut self,
        id: i64,
        index: usize,
        sql: &[Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let what = format!("the undo of step {}", index + 1);
        let run = step_run(&what, sql)?;
        let record = format!(
            "UPDATE {} SET next_step = $1, updated_at = now() WHERE id = $2",
            state_table()
        );
        let at = index as i32;
        self.flush_notes(emit);
        let sql = match run {
            StepRun::Online(online) => {
                return self.online_then_record(&online, &record, &[&at, &id], emit);
            }
            StepRun::InStep(sql) => sql,
        };
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
        self.run_recorded(id, index, step, guard, emit)
    }

    /// Runs a step's statements and its record in one guarded transaction on migration `id`'s
    /// table. The state row is read first, FOR UPDATE: a step that committed before a dropped
    /// connection could say so is not run again.
    fn run_recorded(
        &mut self,
        id: i64,
        index: usize,
        step: Recorded,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        self.guarded(step.what, guard, LockTarget::Step(id, index), emit, |tx| {
            let already: bool = tx
                .query_one(&step.done, step.done_params)
                .map_err(pg("reading the step's state"))?
                .get(0);
            if already {
                return Ok(());
            }
            for s in &step.sql {
                tx.batch_execute(s).map_err(pg(format!("running `{s}`")))?;
            }
            tx.execute(&step.record, step.record_params)
                .map_err(pg(step.recording))?;
            Ok(())
        })
    }

    /// Online statements cannot run in a transaction: each runs in autocommit, then the step is
    /// recorded. A crash in between runs them again: a build finds its index (IF NOT EXISTS), a
    /// drop finds it gone (IF EXISTS), and the step is only recorded.
    fn online_then_record(
        &mut self,
        online: &[Online],
        record: &str,
        params: &[&(dyn ToSql + Sync)],
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        for stmt in online {
            self.online_reconnecting(stmt, emit)?;
        }
        self.state_update(record, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(sql: &str) -> Statement {
        Statement {
            sql: sql.into(),
            run: Run::OnlineBuild {
                index: Some("\"s\".\"i\"".into()),
                strict: false,
            },
        }
    }

    #[test]
    fn a_step_runs_as_its_statements_say_whatever_their_text() {
        // Text that once decided how a statement ran decides nothing now.
        let texts = [
            Statement::in_step("CREATE INDEX CONCURRENTLY \"i\" ON \"s\".\"t\" (\"c\")"),
            Statement::in_step("DROP INDEX CONCURRENTLY IF EXISTS \"s\".\"i\""),
        ];
        assert!(matches!(step_run("a step", &texts), Ok(StepRun::InStep(s)) if s.len() == 2));
        let built = [online("SELECT 1")];
        match step_run("a step", &built) {
            Ok(StepRun::Online(o)) => {
                assert_eq!(o[0].sql, "SELECT 1");
                assert_eq!(o[0].index, Some("\"s\".\"i\""));
            }
            _ => panic!("an online build runs online"),
        }
    }

    #[test]
    fn statements_postgres_does_not_run_are_refused() {
        let mixed = [Statement::in_step("SELECT 1"), online("SELECT 2")];
        let instant = [Statement {
            sql: "ALTER TABLE t ADD c int, ALGORITHM=INSTANT".into(),
            run: Run::InstantOr {
                fallback: "ALTER TABLE t ADD c int".into(),
            },
        }];
        let strict = [Statement {
            sql: "SELECT 1".into(),
            run: Run::OnlineBuild {
                index: None,
                strict: true,
            },
        }];
        let copy = [Statement {
            sql: "ALTER TABLE t ADD CHECK (c > 0), ALGORITHM=COPY".into(),
            run: Run::Copy,
        }];
        for stmts in [&mixed[..], &instant, &strict, &copy] {
            let err = step_run("step 3", stmts)
                .err()
                .expect("refused")
                .to_string();
            assert!(
                err.starts_with("step 3 of the stored plan cannot run on PostgreSQL"),
                "{err}"
            );
        }
    }
}
