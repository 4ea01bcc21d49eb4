//! The keyset backfill on SQLite: its fixed upper bound, the batches (each one short write transaction
//! that also saves the cursor), the final NULL sweep, and the WAL checkpoints between batches.

use super::{STATE_TABLE, Sqlite, now_text, quote, quote_list, rules, sqlite_err};
use crate::engine::{BatchOutcome, Event, KeyValue, LockGuardSettings, StateRow};
use crate::error::{Error, Result};
use crate::plan::OpPlan;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params_from_iter};
use std::time::{Duration, Instant};

/// How often the backfill checkpoints the WAL (passively: it never waits for readers).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

fn to_value(k: &KeyValue) -> Value {
    match k {
        KeyValue::Int(i) => Value::Integer(*i),
        KeyValue::Real(f) => Value::Real(*f),
        KeyValue::Text(s) => Value::Text(s.clone()),
        KeyValue::Blob { blob } => Value::Blob(
            (0..blob.len() / 2)
                .filter_map(|i| u8::from_str_radix(&blob[2 * i..2 * i + 2], 16).ok())
                .collect(),
        ),
    }
}

fn from_value(v: Value) -> Option<KeyValue> {
    match v {
        Value::Null => None,
        Value::Integer(i) => Some(KeyValue::Int(i)),
        Value::Real(f) => Some(KeyValue::Real(f)),
        Value::Text(s) => Some(KeyValue::Text(s)),
        Value::Blob(b) => Some(KeyValue::Blob {
            blob: b.iter().map(|x| format!("{x:02x}")).collect(),
        }),
    }
}

/// A batch's lower bound: the cursor's key, or NULLs before the first batch (which does not use them).
fn cursor_values(cursor: &Option<Vec<KeyValue>>, n: usize) -> Vec<Value> {
    match cursor {
        Some(cur) => cur.iter().map(to_value).collect(),
        None => (0..n).map(|_| Value::Null).collect(),
    }
}

/// The default evaluated once at the backfill's start, when the fill uses it; NULL otherwise.
fn captured_value(captured: &Option<KeyValue>, capture_once: bool) -> Value {
    match (captured, capture_once) {
        (Some(v), true) => to_value(v),
        _ => Value::Null,
    }
}

/// A row's first `n` columns: the key.
fn key_values(r: &rusqlite::Row, n: usize) -> Result<Vec<Value>> {
    (0..n)
        .map(|i| r.get::<_, Value>(i))
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| sqlite_err("reading a key", e))
}

impl Sqlite {
    pub(super) fn count_null_fill(&mut self, plan: &OpPlan) -> Result<i64> {
        let fill = plan.fill.as_ref().expect("a fill plan");
        self.conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM {} WHERE ({}) IS NULL",
                    quote(&plan.table),
                    fill.expr
                ),
                [],
                |r| r.get(0),
            )
            .map_err(|e| sqlite_err("counting rows whose value would be NULL", e))
    }

    pub(super) fn begin_backfill(&mut self, id: i64, plan: &OpPlan) -> Result<StateRow> {
        let state = self.state_by_id(id)?;
        if state.hi.is_some() {
            return Ok(state);
        }
        let fill = plan.fill.as_ref().expect("a fill plan");
        let t = quote(&plan.table);
        let keys = quote_list(&fill.key);
        let desc = fill
            .key
            .iter()
            .map(|k| format!("{} DESC", quote(k)))
            .collect::<Vec<_>>()
            .join(", ");
        let hi: Option<Vec<KeyValue>> = self
            .conn
            .query_row(
                &format!("SELECT {keys} FROM {t} ORDER BY {desc} LIMIT 1"),
                [],
                |r| {
                    (0..fill.key.len())
                        .map(|i| r.get::<_, Value>(i).map(from_value))
                        .collect::<rusqlite::Result<Vec<_>>>()
                },
            )
            .optional()
            .map_err(|e| sqlite_err("finding the backfill's upper bound", e))?
            .map(|v| v.into_iter().flatten().collect());
        let total: i64 = self
            .conn
            .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .map_err(|e| sqlite_err("counting rows", e))?;
        let captured = if fill.capture_once {
            let v: Value = self
                .conn
                .query_row(&format!("SELECT ({})", fill.expr), [], |r| r.get(0))
                .map_err(|e| sqlite_err("evaluating the default once", e))?;
            from_value(v)
        } else {
            None
        };
        // An empty table has nothing to fill: an empty upper bound marks the range as fixed.
        let hi_json = serde_json::to_string(&hi.unwrap_or_default()).unwrap();
        let cap_json = captured.map(|c| serde_json::to_string(&c).unwrap());
        self.simple_update(
            &format!(
                "UPDATE {} SET hi = ?1, rows_total = ?2, captured = ?3, updated_at = {} WHERE id = ?4 AND hi IS NULL",
                quote(STATE_TABLE),
                now_text()
            ),
            &[&hi_json, &total, &cap_json, &id],
        )?;
        self.state_by_id(id)
    }

    pub(super) fn backfill_batch(
        &mut self,
        state: &StateRow,
        batch_size: i64,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<BatchOutcome> {
        let plan = crate::engine::backfilled(&state.plan)?;
        let hi = state.hi.clone().unwrap_or_default();
        let started = Instant::now();
        let before = self.read_data_version()?;
        let others_writing = before != self.data_version;
        if hi.is_empty() {
            return Ok(BatchOutcome {
                rows_scanned: 0,
                rows_updated: 0,
                new_cursor: state.cursor.clone(),
                elapsed: started.elapsed(),
                others_writing,
                cancel_requested: state.cancel_requested,
            });
        }
        let first = state.cursor.is_none();
        let captured = state.captured.clone();
        let capture_once = plan.fill.as_ref().is_some_and(|f| f.capture_once);
        let fill = plan.fill.as_ref().expect("a backfill step has a fill plan");
        let (select, update) =
            rules::batch_sql(&plan.table, &plan.column, fill, first, capture_once);
        let n = hi.len();
        let id = state.id;
        let cursor = state.cursor.clone();
        let save = format!(
            "UPDATE {} SET cursor = ?1, rows_done = rows_done + ?2, heartbeat = {}, updated_at = {} WHERE id = ?3 RETURNING cancel_requested",
            quote(STATE_TABLE),
            now_text(),
            now_text()
        );
        let (scanned, updated, new_cursor, cancel) =
            self.write_tx("a backfill batch", guard, emit, |c| {
                let mut params = cursor_values(&cursor, n);
                params.extend(hi.iter().map(to_value));
                params.push(Value::Integer(batch_size));
                let mut stmt = c
                    .prepare_cached(&select)
                    .map_err(|e| sqlite_err("preparing a batch", e))?;
                let mut rows = stmt
                    .query(params_from_iter(params.iter()))
                    .map_err(|e| sqlite_err("reading a batch's keys", e))?;
                let mut last: Option<Vec<Value>> = None;
                let mut scanned = 0i64;
                while let Some(r) = rows
                    .next()
                    .map_err(|e| sqlite_err("reading a batch's keys", e))?
                {
                    scanned += 1;
                    last = Some(key_values(r, n)?);
                }
                drop(rows);
                let Some(end) = last else {
                    return Ok((0, 0, cursor.clone(), false));
                };
                let mut up = cursor_values(&cursor, n);
                up.extend(end.iter().cloned());
                up.push(captured_value(&captured, capture_once));
                let mut ustmt = c
                    .prepare_cached(&update)
                    .map_err(|e| sqlite_err("preparing a batch", e))?;
                // Numbered parameters: slots the statement does not use (the cursor on the first batch,
                // the captured value when there is none) are simply not bound.
                let count = ustmt.parameter_count();
                for (i, v) in up.iter().enumerate().take(count) {
                    ustmt
                        .raw_bind_parameter(i + 1, v)
                        .map_err(|e| sqlite_err("binding", e))?;
                }
                let updated = ustmt
                    .raw_execute()
                    .map_err(|e| Error::db("filling a batch", e))?
                    as i64;
                let new_cursor: Vec<KeyValue> = end.into_iter().filter_map(from_value).collect();
                let cancel: bool = c
                    .query_row(
                        &save,
                        rusqlite::params![serde_json::to_string(&new_cursor).unwrap(), scanned, id],
                        |r| r.get(0),
                    )
                    .map_err(|e| sqlite_err("saving the cursor", e))?;
                Ok((scanned, updated, Some(new_cursor), cancel))
            })?;
        let hold = self.last_hold;
        self.data_version = self.read_data_version()?;
        // zerodown checkpoints the WAL itself, outside its lock hold, so that neither its batches nor
        // the application's commits pay for copying the backfill's pages back into the database.
        if self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            self.last_checkpoint = Instant::now();
        }
        Ok(BatchOutcome {
            rows_scanned: scanned,
            rows_updated: updated,
            new_cursor,
            elapsed: hold,
            others_writing,
            cancel_requested: cancel,
        })
    }

    pub(super) fn sweep_nulls(
        &mut self,
        state: &StateRow,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        let plan = crate::engine::backfilled(&state.plan)?;
        let fill = plan.fill.as_ref().expect("a fill plan");
        let t = quote(&plan.table);
        let c = quote(&plan.column);
        let key = quote_list(&fill.key);
        let value = captured_value(&state.captured, fill.capture_once);
        let set = if fill.capture_once {
            "?1".to_string()
        } else {
            format!("({})", fill.expr)
        };
        // Find rows still NULL with a read (no write lock: WAL readers never block writers), then fill
        // what was found in short write transactions. Usually nothing is found and nothing is locked.
        let n = fill.key.len();
        let key_expr = if n == 1 {
            key.clone()
        } else {
            format!("({key})")
        };
        let find = format!(
            "SELECT {key} FROM {t} WHERE {c} IS NULL AND ({}) IS NOT NULL LIMIT 500",
            if fill.capture_once {
                "?1".to_string()
            } else {
                fill.expr.clone()
            }
        );
        let params: Vec<String> = (2..n + 2).map(|i| format!("?{i}")).collect();
        let key_params = if n == 1 {
            params[0].clone()
        } else {
            format!("({})", params.join(", "))
        };
        let update =
            format!("UPDATE {t} SET {c} = {set} WHERE {key_expr} = {key_params} AND {c} IS NULL");
        loop {
            let mut stmt = self
                .conn
                .prepare_cached(&find)
                .map_err(|e| sqlite_err("preparing the sweep", e))?;
            if fill.capture_once {
                stmt.raw_bind_parameter(1, &value)
                    .map_err(|e| sqlite_err("binding", e))?;
            }
            let mut rows = stmt.raw_query();
            let mut keys: Vec<Vec<Value>> = Vec::new();
            while let Some(r) = rows
                .next()
                .map_err(|e| sqlite_err("finding NULL rows", e))?
            {
                keys.push(key_values(r, n)?);
            }
            drop(rows);
            drop(stmt);
            if keys.is_empty() {
                break;
            }
            self.write_tx("the final sweep", guard, emit, |conn| {
                let mut stmt = conn
                    .prepare_cached(&update)
                    .map_err(|e| sqlite_err("preparing the sweep", e))?;
                for k in &keys {
                    stmt.raw_bind_parameter(1, &value)
                        .map_err(|e| sqlite_err("binding", e))?;
                    for (i, v) in k.iter().enumerate() {
                        stmt.raw_bind_parameter(i + 2, v)
                            .map_err(|e| sqlite_err("binding", e))?;
                    }
                    stmt.raw_execute()
                        .map_err(|e| Error::db("the final sweep", e))?;
                }
                Ok(())
            })?;
        }
        self.conn
            .query_row(
                &format!("SELECT count(*) FROM {t} WHERE {c} IS NULL"),
                [],
                |r| r.get(0),
            )
            .map_err(|e| sqlite_err("counting NULLs", e))
    }
}
