//! The backfill: the keyset walk's upper bound, its batches (the cursor saved in the batch's own
//! transaction), the final sweep, and the counts the lifecycle checks (NULL fills, old writers,
//! sessions running statements).

use super::error::{Fail, pg, pg_message};
use super::guard::{LockTarget, ms};
use super::rules::{self, qualified};
use super::{Postgres, STATE_SCHEMA, quote, quote_list, state_table};
use crate::engine::{BatchOutcome, Event, KeyValue, LockGuardSettings, StateRow};
use crate::error::{Error, Result};
use crate::plan::{FillPlan, OpPlan};
use postgres::types::ToSql;
use std::time::{Duration, Instant};

/// Key values as text, as the batch statements take them (cast back to the key's types).
fn text_keys(values: &[KeyValue]) -> Vec<String> {
    values
        .iter()
        .map(|v| match v {
            KeyValue::Text(s) => s.clone(),
            KeyValue::Int(i) => i.to_string(),
            KeyValue::Real(f) => f.to_string(),
            KeyValue::Blob { blob } => format!("\\x{blob}"),
        })
        .collect()
}

/// The plan's fill: a stored plan with a backfill but no fill is refused, never run by guesswork.
fn fill_of(plan: &OpPlan) -> Result<&FillPlan> {
    plan.fill.as_ref().ok_or_else(|| {
        Error::Refused(format!(
            "the stored plan fills `{}`.`{}` but does not say with what: it cannot run; nothing was changed",
            plan.table, plan.column
        ))
    })
}

impl Postgres {
    /// Key column types of the migration's table (for casting the text cursor back).
    fn key_types_for(&mut self, id: i64, plan: &OpPlan) -> Result<Vec<String>> {
        if let Some((cached, types)) = &self.key_types
            && *cached == id
        {
            return Ok(types.clone());
        }
        let fill = fill_of(plan)?;
        let rel = qualified(plan.schema.as_deref().unwrap_or("public"), &plan.table);
        // Printed under the batches' search path (pg_catalog), so a user type comes out qualified.
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| Error::db("reading key types", pg_message(&e)))?;
        tx.batch_execute("SET LOCAL search_path = pg_catalog, pg_temp")
            .map_err(|e| Error::db("reading key types", pg_message(&e)))?;
        let mut types = Vec::new();
        for k in &fill.key {
            let t: Option<String> = tx
                .query_opt(
                    "SELECT pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute
                     WHERE attrelid = pg_catalog.to_regclass($1) AND attname = $2",
                    &[&rel, k],
                )
                .map_err(|e| Error::db("reading key types", pg_message(&e)))?
                .map(|r| r.get(0));
            types.push(t.ok_or_else(|| {
                Error::db(
                    "reading key types",
                    format!("column `{k}` of {rel} is gone"),
                )
            })?);
        }
        drop(tx);
        self.key_types = Some((id, types.clone()));
        Ok(types)
    }

    /// The migrated table, qualified.
    fn table_of(plan: &OpPlan) -> String {
        qualified(plan.schema.as_deref().unwrap_or("public"), &plan.table)
    }

    /// Client sessions in `pg_stat_activity` running a statement that began less than a second
    /// ago (the application's traffic, not a long report), less zerodown's own (named by
    /// `application_name`). Sessions of other roles show no state without pg_read_all_stats, and so
    /// count as idle: the limit then watches only what this role can see.
    pub(super) fn running_sessions(&mut self) -> Result<Option<u32>> {
        let sql = "SELECT count(*) FROM pg_catalog.pg_stat_activity
             WHERE state = 'active' AND backend_type = 'client backend'
               AND query_start > pg_catalog.clock_timestamp() - interval '1 second'
               AND pid <> pg_catalog.pg_backend_pid()
               AND coalesce(application_name, '') NOT LIKE 'zerodown %'";
        let row = self.read_reconnecting("counting the sessions running statements", |c| {
            c.query_one(sql, &[])
        })?;
        Ok(Some(
            row.get::<_, i64>(0).clamp(0, i64::from(u32::MAX)) as u32
        ))
    }

    pub(super) fn count_null_fill(&mut self, plan: &OpPlan) -> Result<i64> {
        let fill = fill_of(plan)?;
        let sql = format!(
            "SELECT count(*) FROM {} WHERE ({}) IS NULL",
            Self::table_of(plan),
            fill.expr
        );
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| Error::db("counting rows", pg_message(&e)))?;
        tx.batch_execute(&format!(
            "SET LOCAL search_path = pg_catalog, pg_temp; SET LOCAL lock_timeout = '{}ms'",
            ms(self.guard.timeout)
        ))
        .map_err(|e| Error::db("counting rows", pg_message(&e)))?;
        let n: i64 = tx
            .query_one(&sql, &[])
            .map_err(|e| Error::db("counting rows whose value would be NULL", pg_message(&e)))?
            .get(0);
        Ok(n)
    }

    pub(super) fn begin_backfill(&mut self, id: i64, plan: &OpPlan) -> Result<StateRow> {
        let state = self
            .state_rows(Some(id))?
            .pop()
            .ok_or_else(|| Error::db("reading state", "the migration's row vanished"))?;
        self.key_types_for(id, plan)?;
        if state.hi.is_some() {
            return Ok(state);
        }
        let fill = fill_of(plan)?;
        let t = Self::table_of(plan);
        let as_text = fill
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{}::text AS zd_k{i}", quote(k)))
            .collect::<Vec<_>>()
            .join(", ");
        let desc = fill
            .key
            .iter()
            .map(|k| format!("{} DESC", quote(k)))
            .collect::<Vec<_>>()
            .join(", ");
        let hi: Vec<KeyValue> = self
            .client
            .query_opt(
                &format!("SELECT {as_text} FROM {t} ORDER BY {desc} LIMIT 1"),
                &[],
            )
            .map_err(|e| self.db_err("finding the backfill's upper bound", &e))?
            .map(|r| {
                (0..fill.key.len())
                    .map(|i| KeyValue::Text(r.get(i)))
                    .collect()
            })
            .unwrap_or_default();
        let total: i64 = self
            .client
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .map_err(|e| self.db_err("counting rows", &e))?
            .get(0);
        let hi_json = serde_json::to_string(&hi)
            .map_err(|e| Error::db("saving the backfill's upper bound", e))?;
        self.state_update(
            &format!(
                "UPDATE {} SET hi = $1, rows_total = $2, updated_at = now() WHERE id = $3 AND hi IS NULL",
                state_table()
            ),
            &[&hi_json, &total, &id],
        )?;
        self.state_rows(Some(id))?
            .pop()
            .ok_or_else(|| Error::db("reading state", "the migration's row vanished"))
    }

    pub(super) fn backfill_batch(
        &mut self,
        state: &StateRow,
        batch_size: i64,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<BatchOutcome> {
        // A reconnect between batches (a load look, a heartbeat) left its note here.
        self.flush_notes(emit);
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
        let types = self.key_types_for(state.id, plan)?;
        let fill = fill_of(plan)?;
        let schema = plan.schema.as_deref().unwrap_or("public");
        let sql_first = rules::batch_sql(schema, &plan.table, &plan.column, fill, &types, true);
        let sql_next = rules::batch_sql(schema, &plan.table, &plan.column, fill, &types, false);
        let hi = text_keys(&hi);
        // The cursor is read from the state row inside the batch's transaction, not trusted from
        // memory: a batch that committed just before a dropped connection is never done twice.
        let read_cursor = format!(
            "SELECT cursor FROM {} WHERE id = $1 FOR UPDATE",
            state_table()
        );
        let n = fill.key.len();
        let id = state.id;
        let run_id = self.run_id.clone();
        let save = format!(
            "UPDATE {} SET cursor = $1, rows_done = rows_done + $2, heartbeat = now(), updated_at = now(), run_id = $4 WHERE id = $3 RETURNING cancel_requested",
            state_table()
        );
        let mut hold = Duration::ZERO;
        let (scanned, updated, new_cursor, cancel) = self.guarded(
            "a backfill batch",
            guard,
            LockTarget::Table(Self::table_of(plan)),
            emit,
            |tx| {
                let t0 = Instant::now();
                tx.batch_execute("SET LOCAL search_path = pg_catalog, pg_temp")
                    .map_err(pg("setting search_path"))?;
                let saved: Option<String> = tx
                    .query_one(&read_cursor, &[&id])
                    .map_err(pg("reading the cursor"))?
                    .get(0);
                let saved: Option<Vec<KeyValue>> = saved
                    .map(|c| serde_json::from_str(&c))
                    .transpose()
                    .map_err(|e| {
                        Fail::Other(Error::db(
                            "reading the cursor",
                            format!("the state row's cursor is unreadable: {e}"),
                        ))
                    })?;
                let (select, update) = if saved.is_some() {
                    &sql_next
                } else {
                    &sql_first
                };
                let cursor = saved.as_deref().map(text_keys).unwrap_or_default();
                let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
                for c in &cursor {
                    params.push(c);
                }
                for h in &hi {
                    params.push(h);
                }
                params.push(&batch_size);
                let row = tx
                    .query_opt(select, &params)
                    .map_err(pg("finding a batch's keys"))?;
                let Some(row) = row else {
                    return Ok((0i64, 0i64, None, false));
                };
                let scanned: i64 = row.get(0);
                let end: Vec<String> = (0..n).map(|i| row.get::<_, String>(i + 1)).collect();
                let mut up: Vec<&(dyn ToSql + Sync)> = Vec::new();
                for c in &cursor {
                    up.push(c);
                }
                for e in &end {
                    up.push(e);
                }
                let updated = tx.execute(update, &up).map_err(pg("filling a batch"))? as i64;
                let new_cursor: Vec<KeyValue> = end.into_iter().map(KeyValue::Text).collect();
                let cursor_json = serde_json::to_string(&new_cursor)
                    .map_err(|e| Fail::Other(Error::db("saving the cursor", e)))?;
                let cancel: bool = tx
                    .query_one(&save, &[&cursor_json, &scanned, &id, &run_id])
                    .map_err(pg("saving the cursor"))?
                    .get(0);
                hold = t0.elapsed();
                Ok((scanned, updated, Some(new_cursor), cancel))
            },
        )?;
        Ok(BatchOutcome {
            rows_scanned: scanned,
            rows_updated: updated,
            new_cursor: new_cursor.or_else(|| state.cursor.clone()),
            elapsed: hold,
            others_writing: false,
            cancel_requested: cancel,
        })
    }

    pub(super) fn sweep_nulls(
        &mut self,
        state: &StateRow,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        self.flush_notes(emit);
        let plan = crate::engine::backfilled(&state.plan)?;
        let fill = fill_of(plan)?;
        let t = Self::table_of(plan);
        let c = quote(&plan.column);
        let keys = format!("({})", quote_list(&fill.key));
        // Short transactions, each filling at most 1000 rows found NULL; usually none are found.
        let sql = format!(
            "UPDATE {t} SET {c} = ({e}) WHERE {keys} IN (SELECT {k} FROM {t} WHERE {c} IS NULL AND ({e}) IS NOT NULL LIMIT 1000) AND {c} IS NULL",
            e = fill.expr,
            k = quote_list(&fill.key)
        );
        for _ in 0..100_000 {
            let n = self.guarded(
                "the final sweep",
                guard,
                LockTarget::Table(Self::table_of(plan)),
                emit,
                |tx| {
                    tx.batch_execute("SET LOCAL search_path = pg_catalog, pg_temp")
                        .map_err(pg("setting search_path"))?;
                    tx.execute(&sql, &[]).map_err(pg("the final sweep"))
                },
            )?;
            if n == 0 {
                break;
            }
        }
        self.client
            .query_one(&format!("SELECT count(*) FROM {t} WHERE {c} IS NULL"), &[])
            .map(|r| r.get(0))
            .map_err(|e| self.db_err("counting NULLs", &e))
    }

    pub(super) fn old_writer_count(&mut self, key: &str) -> Result<i64> {
        let seq = qualified(STATE_SCHEMA, key);
        let exists: bool = self
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&seq])
            .map_err(|e| self.db_err("reading the old-writer counter", &e))?
            .get(0);
        if !exists {
            return Ok(0);
        }
        self.client
            .query_one(
                &format!("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {seq}"),
                &[],
            )
            .map(|r| r.get(0))
            .map_err(|e| self.db_err("reading the old-writer counter", &e))
    }
}
