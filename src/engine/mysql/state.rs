//! zerodown's state table on the server: one row per migration, written by short guarded statements
//! that set absolute values, so running one again after a lost connection is harmless.

use super::guard::{Attempt, Guarded, Waiting, state_guarded_sql, whole_seconds};
use super::{Flavour, MySql, STATE_TABLE, mysql8, quote, session};
use crate::engine::{Event, StateRow, Status, state_codec};
use crate::error::{Error, Result};
use crate::plan::Plan;
use mysql::prelude::Queryable;
use mysql::{Row, Value};

impl MySql {
    /// A write to zerodown's own state, under the lock guard like any DDL: each attempt waits for a
    /// row or metadata lock no longer than the lock timeout, and every retry names the session in the
    /// way. Its events go to `emit`, or without one to the next callback. Every state write sets
    /// absolute values, so running it again after a lost connection is harmless.
    pub(super) fn state_exec(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        emit: Option<&mut dyn FnMut(Event)>,
    ) -> Result<u64> {
        let mut queued = Vec::new();
        let written = match emit {
            Some(emit) => self.state_write(sql, params, emit),
            None => self.state_write(sql, params, &mut |e| queued.push(e)),
        };
        self.pending.extend(queued);
        written
    }

    fn state_write(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        emit: &mut dyn FnMut(Event),
    ) -> Result<u64> {
        let settings = self.guard;
        let action = Guarded {
            waiting: Waiting::Rows("updating zerodown's state"),
            table: STATE_TABLE,
            drives: false,
        };
        self.guarded(action, &settings, emit, |db, _| {
            let written = match db.flavour {
                Flavour::MariaDb => db
                    .conn
                    .exec_drop(state_guarded_sql(sql, settings.timeout), params.clone()),
                Flavour::MySql => mysql8::guard_waits(&mut db.conn, settings.timeout)
                    .and_then(|()| db.conn.exec_drop(sql, params.clone())),
            };
            match written {
                Ok(()) => Attempt::Done(db.conn.affected_rows()),
                Err(e) => Attempt::Server(e),
            }
        })
    }

    /// Adds the `connections` column to a state table made before it existed.
    pub(super) fn upgrade_state_table(&mut self) -> Result<()> {
        let n: Option<i64> = self.with_conn("reading the catalog", |c| {
            c.exec_first(
                "SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'connections'",
                (STATE_TABLE,),
            )
        })?;
        if n.unwrap_or(0) > 0 {
            return Ok(());
        }
        let sql = format!(
            "ALTER TABLE {} ADD COLUMN connections varchar(255) NULL",
            quote(STATE_TABLE)
        );
        let secs = whole_seconds(self.guard.timeout);
        self.with_conn("adding a column to zerodown's state table", |c| {
            c.query_drop(format!("SET SESSION lock_wait_timeout = {secs}"))?;
            c.query_drop(&sql)
        })
    }

    pub(super) fn state_exists(&mut self) -> Result<bool> {
        let n: Option<i64> = self.with_conn("reading the catalog", |c| {
            c.exec_first(
                "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (STATE_TABLE,),
            )
        })?;
        Ok(n.unwrap_or(0) > 0)
    }

    pub(super) fn state_rows(&mut self, id: Option<i64>) -> Result<Vec<StateRow>> {
        let fmt = |col: &str| {
            format!("CONCAT(LEFT(DATE_FORMAT({col}, '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z')")
        };
        let sql = format!(
            "SELECT {} FROM {} {} ORDER BY id",
            state_codec::select_list(|c| match c {
                "created_at" | "updated_at" | "completed_at" | "heartbeat" => fmt(c),
                _ => quote(c),
            }),
            quote(STATE_TABLE),
            if id.is_some() { "WHERE id = ?" } else { "" }
        );
        let params: Vec<Value> = id.map(Value::Int).into_iter().collect();
        let rows: Vec<Row> = self.with_conn("reading state", |c| c.exec(&sql, params.clone()))?;
        rows.into_iter()
            .map(|r| {
                let s = |i: usize| -> Option<String> { r.get::<Option<String>, _>(i).flatten() };
                let n = |i: usize| -> Option<i64> { r.get::<Option<i64>, _>(i).flatten() };
                state_codec::Columns {
                    id: n(0).unwrap_or(0),
                    name: s(1).unwrap_or_default(),
                    spec: s(2).unwrap_or_default(),
                    plan: s(3),
                    status: s(4).unwrap_or_default(),
                    next_step: n(5).unwrap_or(0),
                    cursor: s(6),
                    hi: s(7),
                    captured: s(8),
                    rows_done: n(9).unwrap_or(0),
                    rows_total: n(10),
                    cancel_requested: n(11).unwrap_or(0) != 0,
                    created_at: s(12).unwrap_or_default(),
                    updated_at: s(13).unwrap_or_default(),
                    completed_at: s(14),
                    heartbeat: s(15),
                    run_id: s(16),
                    timings: s(17),
                }
                .decode()
            })
            .collect()
    }

    pub(super) fn state(&mut self, id: i64) -> Result<StateRow> {
        self.state_rows(Some(id))?
            .pop()
            .ok_or_else(|| Error::db("reading state", "the migration's row vanished"))
    }

    pub(super) fn create_state_table(&mut self) -> Result<()> {
        if self.state_exists()? {
            return Ok(());
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (
               id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
               name varchar(255) NOT NULL,
               spec longtext NOT NULL,
               plan longtext NOT NULL,
               status varchar(32) NOT NULL,
               next_step int NOT NULL DEFAULT 0,
               `cursor` longtext NULL,
               hi longtext NULL,
               captured longtext NULL,
               rows_done bigint NOT NULL DEFAULT 0,
               rows_total bigint NULL,
               cancel_requested tinyint(1) NOT NULL DEFAULT 0,
               run_id varchar(64) NULL,
               connection_id bigint NULL,
               connections varchar(255) NULL,
               heartbeat datetime(3) NULL,
               created_at datetime(3) NOT NULL,
               updated_at datetime(3) NOT NULL,
               completed_at datetime(3) NULL,
               timings longtext NOT NULL,
               KEY name (name)
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            quote(STATE_TABLE)
        );
        let secs = whole_seconds(self.guard.timeout);
        self.conn
            .query_drop(format!("SET STATEMENT lock_wait_timeout={secs} FOR {sql}"))
            .or_else(|_| self.conn.query_drop(&sql))
            .map_err(|e| self.db_err("creating zerodown's state table", &e))
    }

    pub(super) fn all_states(&mut self) -> Result<Vec<StateRow>> {
        if !self.state_exists()? {
            return Ok(vec![]);
        }
        self.state_rows(None)
    }

    pub(super) fn record_migration(
        &mut self,
        name: &str,
        spec: &str,
        plan: &Plan,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        let json = serde_json::to_string(plan)
            .map_err(|e| Error::db("recording the migration", e.to_string()))?;
        let conn_id = self.conn.connection_id();
        let run_id = self.run_id.clone();
        let connections = self.connections_record()?;
        // Idempotent, because a lost connection makes state_exec run it again: one row per run.
        self.state_exec(
            &format!(
                "INSERT INTO {t} (name, spec, plan, status, run_id, connection_id, connections, heartbeat, created_at, updated_at, timings)
                 SELECT ?, ?, ?, 'started', ?, ?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), '{{}}' FROM DUAL
                 WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE name = ? AND run_id = ? AND status = 'started')",
                t = quote(STATE_TABLE)
            ),
            vec![
                name.into(),
                spec.into(),
                json.into(),
                run_id.clone().into(),
                i64::from(conn_id).into(),
                connections.into(),
                name.into(),
                run_id.clone().into(),
            ],
            Some(emit),
        )?;
        let id: Option<Option<i64>> = self.with_conn("recording the migration", |c| {
            c.exec_first(
                format!(
                    "SELECT max(id) FROM {} WHERE name = ? AND run_id = ?",
                    quote(STATE_TABLE)
                ),
                (name, &run_id),
            )
        })?;
        id.flatten()
            .ok_or_else(|| Error::db("recording the migration", "its state row is missing"))
    }

    pub(super) fn write_status(&mut self, id: i64, status: Status) -> Result<()> {
        self.state_exec(
            &format!(
                "UPDATE {} SET status = ?, updated_at = UTC_TIMESTAMP(3), completed_at = IF(? = 'completed', UTC_TIMESTAMP(3), completed_at) WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![status.label().into(), status.label().into(), id.into()],
            None,
        )
        .map(|_| ())
    }

    /// Before asking, ends a stale run of the migration: a hung run (its process stopped, or cut off
    /// by the network) can hold the state row in an open batch, and the request would wait behind it.
    pub(super) fn write_cancel_request(&mut self, id: i64, on: bool) -> Result<()> {
        if on {
            let name = self.state(id)?.name;
            let run_id = self.run_id.clone();
            let stale: Vec<session::RunRow> = self
                .with_conn("looking for a dead run", |c| {
                    session::running_rows(c, &run_id)
                })?
                .into_iter()
                .filter(|r| r.name == name && r.is_stale())
                .collect();
            self.end_dead_runs(stale)?;
        }
        self.state_exec(
            &format!(
                "UPDATE {} SET cancel_requested = ? WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![i64::from(on).into(), id.into()],
            None,
        )
        .map(|_| ())
    }

    pub(super) fn write_timing(&mut self, id: i64, phase: &str, seconds: f64) -> Result<()> {
        let mut timings = self.state(id)?.timings;
        *timings.entry(phase.to_string()).or_insert(0.0) += seconds;
        let json = serde_json::to_string(&timings).expect("timings serialize");
        self.state_exec(
            &format!("UPDATE {} SET timings = ? WHERE id = ?", quote(STATE_TABLE)),
            vec![json.into(), id.into()],
            None,
        )
        .map(|_| ())
    }

    /// Claims the row for this run and records how to find its connections (the main one and the
    /// driver lock's), so a later run can end what this one leaves behind if it dies.
    pub(super) fn write_heartbeat(&mut self, id: i64) -> Result<()> {
        let run_id = self.run_id.clone();
        let conn_id = self.conn.connection_id();
        let connections = self.connections_record()?;
        self.state_exec(
            &format!(
                "UPDATE {} SET heartbeat = UTC_TIMESTAMP(3), run_id = ?, connection_id = ?, connections = ? WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![
                run_id.into(),
                i64::from(conn_id).into(),
                connections.into(),
                id.into(),
            ],
            None,
        )
        .map(|_| ())
    }

    pub(super) fn write_step_done(
        &mut self,
        id: i64,
        index: usize,
        emit: Option<&mut dyn FnMut(Event)>,
    ) -> Result<()> {
        self.state_exec(
            &format!(
                "UPDATE {} SET next_step = ?, updated_at = UTC_TIMESTAMP(3), heartbeat = UTC_TIMESTAMP(3) WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![(index as i64 + 1).into(), id.into()],
            emit,
        )
        .map(|_| ())
    }

    pub(super) fn write_rolled_back(&mut self, id: i64) -> Result<()> {
        self.state_exec(
            &format!(
                "UPDATE {} SET status = 'rolled-back', updated_at = UTC_TIMESTAMP(3) WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![id.into()],
            None,
        )
        .map(|_| ())
    }
}
