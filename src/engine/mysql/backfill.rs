//! The backfill: its upper bound, keyset batches that save their cursor in the same transaction, and
//! the final sweep for NULLs.

use super::guard::whole_seconds;
use super::{MySql, STATE_TABLE, quote, quote_list, rules};
use crate::engine::{BatchOutcome, Event, KeyValue, LockGuardSettings, StateRow};
use crate::error::{Error, Result};
use crate::plan::OpPlan;
use mysql::prelude::Queryable;
use mysql::{Row, Value};
use std::time::{Duration, Instant};

fn key_value(v: &Value) -> KeyValue {
    match v {
        Value::Int(i) => KeyValue::Int(*i),
        Value::UInt(u) => match i64::try_from(*u) {
            Ok(i) => KeyValue::Int(i),
            Err(_) => KeyValue::Text(u.to_string()),
        },
        Value::Float(f) => KeyValue::Real(f64::from(*f)),
        Value::Double(f) => KeyValue::Real(*f),
        Value::Bytes(b) => KeyValue::Text(String::from_utf8_lossy(b).into_owned()),
        Value::Date(y, m, d, h, mi, s, us) => KeyValue::Text(format!(
            "{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"
        )),
        Value::Time(neg, d, h, mi, s, us) => KeyValue::Text(format!(
            "{}{}:{mi:02}:{s:02}.{us:06}",
            if *neg { "-" } else { "" },
            u64::from(*d) * 24 + u64::from(*h)
        )),
        Value::NULL => KeyValue::Text(String::new()),
    }
}

fn sql_value(k: &KeyValue) -> Value {
    match k {
        KeyValue::Int(i) => Value::Int(*i),
        KeyValue::Real(f) => Value::Double(*f),
        KeyValue::Text(s) => Value::Bytes(s.clone().into_bytes()),
        KeyValue::Blob { blob } => Value::Bytes(
            (0..blob.len() / 2)
                .filter_map(|i| u8::from_str_radix(&blob[2 * i..2 * i + 2], 16).ok())
                .collect(),
        ),
    }
}

impl MySql {
    /// Backfill sessions: READ COMMITTED, and row-lock waits no longer than the lock timeout.
    pub(super) fn backfill_session(&mut self, guard: &LockGuardSettings) -> Result<()> {
        let sql = format!(
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; SET SESSION innodb_lock_wait_timeout = {}",
            whole_seconds(guard.timeout)
        );
        self.session_sql = Some(sql.clone());
        self.with_conn("setting up the backfill session", |c| c.query_drop(&sql))
    }

    pub(super) fn fill_update_sql(plan: &OpPlan, on_update: &[String], limit: bool) -> String {
        let fill = plan.fill.as_ref().expect("a fill plan");
        let c = quote(&plan.column);
        let keep: String = on_update
            .iter()
            .map(|u| format!(", {q} = {q}", q = quote(u)))
            .collect();
        format!(
            "UPDATE {} SET {c} = ({e}){keep} WHERE {c} IS NULL AND ({e}) IS NOT NULL{}",
            quote(&plan.table),
            if limit { " LIMIT 1000" } else { "" },
            e = fill.expr
        )
    }

    pub(super) fn count_null_fill_rows(&mut self, plan: &OpPlan) -> Result<i64> {
        let fill = plan.fill.as_ref().expect("a fill plan");
        let sql = format!(
            "SELECT count(*) FROM {} WHERE ({}) IS NULL",
            quote(&plan.table),
            fill.expr
        );
        let n: Option<i64> = self.with_conn("counting rows whose value would be NULL", |c| {
            c.query_first(&sql)
        })?;
        Ok(n.unwrap_or(0))
    }

    pub(super) fn fix_backfill_range(&mut self, id: i64, plan: &OpPlan) -> Result<StateRow> {
        let state = self.state(id)?;
        let guard = self.guard;
        self.backfill_session(&guard)?;
        if state.hi.is_some() {
            return Ok(state);
        }
        let fill = plan.fill.as_ref().expect("a fill plan");
        let t = quote(&plan.table);
        let desc = fill
            .key
            .iter()
            .map(|k| format!("{} DESC", quote(k)))
            .collect::<Vec<_>>()
            .join(", ");
        let top = format!(
            "SELECT {} FROM {t} ORDER BY {desc} LIMIT 1",
            quote_list(&fill.key)
        );
        let row: Option<Row> = self.with_conn("finding the backfill's upper bound", |c| {
            c.exec_first(&top, ())
        })?;
        let hi: Vec<KeyValue> = row
            .map(|r| r.unwrap().iter().map(key_value).collect())
            .unwrap_or_default();
        let total: Option<i64> = self.with_conn("counting rows", |c| {
            c.query_first(format!("SELECT count(*) FROM {t}"))
        })?;
        let hi_json = serde_json::to_string(&hi).expect("keys serialize");
        self.state_exec(
            &format!(
                "UPDATE {} SET hi = ?, rows_total = ?, updated_at = UTC_TIMESTAMP(3) WHERE id = ? AND hi IS NULL",
                quote(STATE_TABLE)
            ),
            vec![hi_json.into(), total.unwrap_or(0).into(), id.into()],
            None,
        )?;
        self.state(id)
    }

    pub(super) fn run_batch(
        &mut self,
        state: &StateRow,
        batch_size: i64,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<BatchOutcome> {
        let plan = crate::engine::backfilled(&state.plan)?;
        let hi = state.hi.clone().unwrap_or_default();
        let started = Instant::now();
        if hi.is_empty() {
            return Ok(BatchOutcome {
                rows_scanned: 0,
                rows_updated: 0,
                new_cursor: state.cursor.clone(),
                elapsed: started.elapsed(),
                others_writing: false,
                cancel_requested: state.cancel_requested,
            });
        }
        let fill = plan.fill.as_ref().expect("a backfill step has a fill plan");
        let on_update = self.on_update_columns(&plan.table)?;
        let (select_first, update_first) =
            rules::batch_sql(&plan.table, &plan.column, fill, &on_update, true);
        let (select_next, update_next) =
            rules::batch_sql(&plan.table, &plan.column, fill, &on_update, false);
        let hi: Vec<Value> = hi.iter().map(sql_value).collect();
        // The cursor is read in the batch's own transaction, under the row lock its save takes: after
        // a lost connection the batch starts from what was committed, never from a copy in memory, so
        // a batch whose commit went unheard is not done twice.
        let read_cursor = format!(
            "SELECT `cursor` FROM {} WHERE id = ? FOR UPDATE",
            quote(STATE_TABLE)
        );
        let save = format!(
            "UPDATE {} SET `cursor` = ?, rows_done = rows_done + ?, heartbeat = UTC_TIMESTAMP(3), updated_at = UTC_TIMESTAMP(3), run_id = ? WHERE id = ?",
            quote(STATE_TABLE)
        );
        let read_cancel = format!(
            "SELECT cancel_requested FROM {} WHERE id = ?",
            quote(STATE_TABLE)
        );
        let id = state.id;
        let run_id = self.run_id.clone();
        let mut hold = Duration::ZERO;
        let table = plan.table.clone();
        type Done = (i64, i64, Option<Vec<KeyValue>>, bool);
        let done: std::result::Result<Done, String> =
            self.transaction("a backfill batch", &table, guard, emit, |tx| {
                let t0 = Instant::now();
                let saved: Option<Option<String>> = tx.exec_first(&read_cursor, (id,))?;
                let cursor: Option<Vec<KeyValue>> = match saved.flatten() {
                    None => None,
                    Some(json) => match serde_json::from_str(&json) {
                        Ok(c) => Some(c),
                        Err(e) => return Ok(Err(format!("the saved cursor is unreadable: {e}"))),
                    },
                };
                let (select, update) = match cursor {
                    None => (&select_first, &update_first),
                    Some(_) => (&select_next, &update_next),
                };
                let cursor: Vec<Value> = cursor.iter().flatten().map(sql_value).collect();
                let mut params = cursor.clone();
                params.extend(hi.iter().cloned());
                params.push(Value::Int(batch_size));
                let keys: Vec<Row> = tx.exec(select, params)?;
                let Some(last) = keys.last() else {
                    return Ok(Ok((0i64, 0i64, None, false)));
                };
                let end: Vec<Value> = last.clone().unwrap();
                let scanned = keys.len() as i64;
                let mut up = cursor.clone();
                up.extend(end.iter().cloned());
                tx.exec_drop(update, up)?;
                let updated = tx.affected_rows() as i64;
                let new_cursor: Vec<KeyValue> = end.iter().map(key_value).collect();
                let cursor_json = match serde_json::to_string(&new_cursor) {
                    Ok(j) => j,
                    Err(e) => return Ok(Err(format!("the cursor does not serialize: {e}"))),
                };
                tx.exec_drop(
                    &save,
                    vec![
                        Value::from(cursor_json),
                        Value::from(scanned),
                        Value::from(run_id.clone()),
                        Value::from(id),
                    ],
                )?;
                let cancel: Option<i64> = tx.exec_first(&read_cancel, (id,))?;
                hold = t0.elapsed();
                Ok(Ok((
                    scanned,
                    updated,
                    Some(new_cursor),
                    cancel.unwrap_or(0) != 0,
                )))
            })?;
        let (scanned, updated, new_cursor, cancel) =
            done.map_err(|m| Error::db("a backfill batch", m))?;
        Ok(BatchOutcome {
            rows_scanned: scanned,
            rows_updated: updated,
            new_cursor: new_cursor.or_else(|| state.cursor.clone()),
            elapsed: hold,
            others_writing: false,
            cancel_requested: cancel,
        })
    }

    pub(super) fn sweep_null_rows(
        &mut self,
        state: &StateRow,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        let plan = crate::engine::backfilled(&state.plan)?;
        let on_update = self.on_update_columns(&plan.table)?;
        let sql = Self::fill_update_sql(plan, &on_update, true);
        let table = plan.table.clone();
        for _ in 0..100_000 {
            let n = self.transaction("the final sweep", &table, guard, emit, |tx| {
                tx.query_drop(&sql)?;
                Ok(tx.affected_rows())
            })?;
            if n == 0 {
                break;
            }
        }
        let count = format!(
            "SELECT count(*) FROM {} WHERE {} IS NULL",
            quote(&plan.table),
            quote(&plan.column)
        );
        let n: Option<i64> = self.with_conn("counting NULLs", |c| c.query_first(&count))?;
        Ok(n.unwrap_or(0))
    }
}
