//! zerodown's state on SQLite: the `_zerodown_migrations` row of each migration and the deploy-order
//! guard's counters, every write under the lock guard.

use super::{COUNTER_TABLE, STATE_TABLE, Sqlite, now_text, quote, sqlite_err};
use crate::engine::{Event, StateRow, Status, state_codec};
use crate::error::{Error, Result};
use crate::plan::Plan;
use rusqlite::Row;
use rusqlite::types::FromSql;

impl Sqlite {
    pub(super) fn state_row(
        &self,
        where_clause: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StateRow>> {
        let sql = format!(
            "SELECT {} FROM {} {where_clause} ORDER BY id",
            state_codec::select_list(quote),
            quote(STATE_TABLE)
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(|e| sqlite_err("reading state", e))?;
        stmt.query_map(params, |r| Ok(decode_state(r)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| sqlite_err("reading state", e))?
            .into_iter()
            .collect()
    }

    /// The migration's state row, which must exist.
    pub(super) fn state_by_id(&self, id: i64) -> Result<StateRow> {
        self.state_row("WHERE id = ?1", &[&id])?
            .pop()
            .ok_or_else(|| Error::db("reading state", "the migration's row vanished"))
    }

    pub(super) fn state_table_exists(&self) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
                [STATE_TABLE],
                |r| r.get(0),
            )
            .map_err(|e| sqlite_err("reading the catalog", e))
    }

    pub(super) fn ensure_state_table(&mut self, emit: &mut dyn FnMut(Event)) -> Result<()> {
        if self.state_table_exists()? {
            return Ok(());
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {st} (
               id INTEGER PRIMARY KEY,
               name TEXT NOT NULL,
               spec TEXT NOT NULL,
               plan TEXT NOT NULL,
               status TEXT NOT NULL,
               next_step INTEGER NOT NULL DEFAULT 0,
               cursor TEXT,
               hi TEXT,
               captured TEXT,
               rows_done INTEGER NOT NULL DEFAULT 0,
               rows_total INTEGER,
               cancel_requested INTEGER NOT NULL DEFAULT 0,
               run_id TEXT,
               heartbeat TEXT,
               created_at TEXT NOT NULL,
               updated_at TEXT NOT NULL,
               completed_at TEXT,
               timings TEXT NOT NULL DEFAULT '{{}}'
             );
             CREATE UNIQUE INDEX IF NOT EXISTS {ix} ON {st}(name) WHERE status <> 'rolled-back';
             CREATE TABLE IF NOT EXISTS {ct} (key TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0);",
            st = quote(STATE_TABLE),
            ix = quote("_zerodown_migrations_active_name"),
            ct = quote(COUNTER_TABLE),
        );
        let guard = self.guard;
        self.write_tx("creating the state table", &guard, emit, |c| {
            c.execute_batch(&sql)
                .map_err(|e| sqlite_err("creating the state table", e))
        })
    }

    pub(super) fn states(&mut self) -> Result<Vec<StateRow>> {
        if !self.state_table_exists()? {
            return Ok(vec![]);
        }
        self.state_row("", &[])
    }

    pub(super) fn insert_state(
        &mut self,
        name: &str,
        spec: &str,
        plan: &Plan,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        let json = serde_json::to_string(plan).expect("a plan serializes");
        let sql = format!(
            "INSERT INTO {} (name, spec, plan, status, created_at, updated_at, run_id)
             VALUES (?1, ?2, ?3, 'started', {now}, {now}, ?4)",
            quote(STATE_TABLE),
            now = now_text()
        );
        let guard = self.guard;
        self.write_tx("recording the migration", &guard, emit, |c| {
            c.execute(
                &sql,
                rusqlite::params![name, spec, json, format!("pid-{}", std::process::id())],
            )
            .map_err(|e| sqlite_err("recording the migration", e))?;
            Ok(c.last_insert_rowid())
        })
    }

    pub(super) fn set_status(&mut self, id: i64, status: Status) -> Result<()> {
        self.simple_update(
            &format!(
                "UPDATE {} SET status = ?1, updated_at = {now}, completed_at = CASE WHEN ?1 = 'completed' THEN {now} ELSE completed_at END WHERE id = ?2",
                quote(STATE_TABLE),
                now = now_text()
            ),
            &[&status.label(), &id],
        )
    }

    pub(super) fn request_cancel(&mut self, id: i64, on: bool) -> Result<()> {
        self.simple_update(
            &format!(
                "UPDATE {} SET cancel_requested = ?1 WHERE id = ?2",
                quote(STATE_TABLE)
            ),
            &[&on, &id],
        )
    }

    pub(super) fn add_timing(&mut self, id: i64, phase: &str, seconds: f64) -> Result<()> {
        self.simple_update(
            &format!(
                "UPDATE {} SET timings = json_set(timings, '$.' || json_quote(?1), coalesce(json_extract(timings, '$.' || json_quote(?1)), 0) + ?2) WHERE id = ?3",
                quote(STATE_TABLE)
            ),
            &[&phase, &seconds, &id],
        )
    }

    pub(super) fn heartbeat(&mut self, id: i64) -> Result<()> {
        self.simple_update(
            &format!(
                "UPDATE {} SET heartbeat = {now}, run_id = ?1 WHERE id = ?2",
                quote(STATE_TABLE),
                now = now_text()
            ),
            &[&format!("pid-{}", std::process::id()), &id],
        )
    }

    pub(super) fn mark_rolled_back(&mut self, id: i64) -> Result<()> {
        self.simple_update(
            &format!(
                "UPDATE {} SET status = 'rolled-back', updated_at = {} WHERE id = ?1",
                quote(STATE_TABLE),
                now_text()
            ),
            &[&id],
        )
    }

    pub(super) fn old_writer_count(&mut self, key: &str) -> Result<i64> {
        self.conn
            .query_row(
                &format!(
                    "SELECT coalesce((SELECT n FROM {} WHERE key = ?1), 0)",
                    quote(COUNTER_TABLE)
                ),
                [key],
                |r| r.get(0),
            )
            .map_err(|e| sqlite_err("reading the old-writer counter", e))
    }

    /// A write to zerodown's own state, under the same lock guard as every other write.
    pub(super) fn simple_update(
        &mut self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<()> {
        let guard = self.guard;
        self.write_tx("updating zerodown's state", &guard, &mut |_| {}, |c| {
            c.execute(sql, params)
                .map(|_| ())
                .map_err(|e| sqlite_err("updating state", e))
        })
    }
}

/// One state row, in the column order of [`state_codec::select_list`].
fn decode_state(r: &Row) -> Result<StateRow> {
    state_codec::Columns {
        id: column(r, 0)?,
        name: column(r, 1)?,
        spec: column(r, 2)?,
        plan: column(r, 3)?,
        status: column(r, 4)?,
        next_step: column(r, 5)?,
        cursor: column(r, 6)?,
        hi: column(r, 7)?,
        captured: column(r, 8)?,
        rows_done: column(r, 9)?,
        rows_total: column(r, 10)?,
        cancel_requested: column(r, 11)?,
        created_at: column(r, 12)?,
        updated_at: column(r, 13)?,
        completed_at: column(r, 14)?,
        heartbeat: column(r, 15)?,
        run_id: column(r, 16)?,
        timings: column(r, 17)?,
    }
    .decode()
}

fn column<T: FromSql>(r: &Row, i: usize) -> Result<T> {
    r.get(i).map_err(|e| sqlite_err("reading state", e))
}
