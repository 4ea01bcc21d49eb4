//! The contract's checks: the deploy-order guard's counter and the orphan count after a foreign key.

use super::{MySql, quote};
use crate::error::Result;
use crate::plan::{Action, Plan};
use mysql::Value;
use mysql::prelude::Queryable;

impl MySql {
    pub(super) fn read_old_writer_count(&mut self, key: &str) -> Result<i64> {
        let kind: Option<String> = self.with_conn("reading the old-writer counter", |c| {
            c.exec_first(
                "SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (key,),
            )
        })?;
        let sql = match kind.as_deref() {
            None => return Ok(0),
            Some("SEQUENCE") => format!("SELECT next_not_cached_value - 1 FROM {}", quote(key)),
            Some(_) => format!("SELECT coalesce(max(n), 0) FROM {}", quote(key)),
        };
        let n: Option<i64> =
            self.with_conn("reading the old-writer counter", |c| c.query_first(&sql))?;
        Ok(n.unwrap_or(0))
    }

    /// The key was added with foreign_key_checks=0: count existing orphans with the plan's own query,
    /// in keyset batches of 10,000 rows (short consistent reads, no long-lived read view).
    pub(super) fn count_orphan_rows(&mut self, plan: &Plan, index: usize) -> Result<i64> {
        let Some(sql) = plan
            .steps
            .get(index)
            .filter(|s| s.action == Action::ForeignKeyCheck)
            .and_then(|s| s.sql.first())
            .map(|s| s.sql.clone())
        else {
            return Ok(0);
        };
        let plan = plan.op_of(index);
        let (schema, _) = self.table_schema(&plan.table)?;
        if schema.key.len() != 1 {
            let n: Option<i64> = self
                .conn
                .query_first(&sql)
                .map_err(|e| self.db_err("counting rows without a parent", &e))?;
            return Ok(n.unwrap_or(0));
        }
        let k = quote(&schema.key[0]);
        let t = quote(&plan.table);
        let mut cursor: Option<Value> = None;
        let mut total = 0i64;
        loop {
            let (next, count) = match &cursor {
                None => (
                    format!("SELECT {k} FROM {t} ORDER BY {k} LIMIT 10000"),
                    format!("{sql} AND zd_c.{k} <= ?"),
                ),
                Some(_) => (
                    format!("SELECT {k} FROM {t} WHERE {k} > ? ORDER BY {k} LIMIT 10000"),
                    format!("{sql} AND zd_c.{k} > ? AND zd_c.{k} <= ?"),
                ),
            };
            let lower: Vec<Value> = cursor.iter().cloned().collect();
            let keys: Vec<Value> = self
                .conn
                .exec(&next, lower.clone())
                .map_err(|e| self.db_err("walking the table for orphans", &e))?;
            let Some(end) = keys.last().cloned() else {
                break;
            };
            let mut params = lower;
            params.push(end.clone());
            let n: Option<i64> = self
                .conn
                .exec_first(&count, params)
                .map_err(|e| self.db_err("counting rows without a parent", &e))?;
            total += n.unwrap_or(0);
            cursor = Some(end);
        }
        Ok(total)
    }
}
