//! `zerodown lint` online on PostgreSQL: a session with `default_transaction_read_only` on, and
//! catalog reads only (no table is scanned).

use super::Postgres;
use crate::engine::Engine;
use crate::engine::lint_catalog::{LintCatalog, LintTable};
use crate::error::Result;

impl Postgres {
    /// Opens the server and makes every later transaction of the session read-only.
    pub fn open_read_only(url: &str) -> Result<Postgres> {
        let mut pg = Postgres::open(url)?;
        pg.client
            .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            .map_err(|e| pg.db_err("making the session read-only", &e))?;
        Ok(pg)
    }
}

impl LintCatalog for Postgres {
    fn server(&self) -> String {
        self.label()
    }

    fn is_read_only(&mut self) -> Result<bool> {
        let row = self
            .client
            .query_one(
                "SELECT current_setting('default_transaction_read_only')",
                &[],
            )
            .map_err(|e| self.db_err("reading default_transaction_read_only", &e))?;
        Ok(row.get::<_, String>(0) == "on")
    }

    fn table(&mut self, schema: Option<&str>, name: &str) -> Result<Option<LintTable>> {
        // Exact names first, then as PostgreSQL folds unquoted identifiers.
        let lower = (schema.map(str::to_lowercase), name.to_lowercase());
        for (schema, name) in [(schema.map(str::to_string), name.to_string()), lower] {
            let row = self
                .client
                .query_opt(
                    "SELECT c.oid, c.relname::text, c.reltuples::float8, c.relpages::int8,
                            CASE WHEN c.relkind = 'p'
                                 THEN (SELECT coalesce(sum(pg_catalog.pg_relation_size(t.relid)), 0)
                                       FROM pg_catalog.pg_partition_tree(c.oid) t)
                                 ELSE pg_catalog.pg_relation_size(c.oid) END::int8
                     FROM pg_catalog.pg_class c
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.relname = $2 AND c.relkind IN ('r', 'p', 'm', 'f')
                       AND CASE WHEN $1::text IS NULL
                                THEN n.nspname = ANY (pg_catalog.current_schemas(false))
                                ELSE n.nspname = $1::text END
                     ORDER BY array_position(pg_catalog.current_schemas(false), n.nspname::text)
                     LIMIT 1",
                    &[&schema, &name],
                )
                .map_err(|e| self.db_err("reading the catalog", &e))?;
            let Some(r) = row else { continue };
            let oid: u32 = r.get(0);
            let (tuples, pages, bytes): (f64, i64, i64) = (r.get(2), r.get(3), r.get(4));
            // The planner's estimate: tuples per page at the last ANALYZE times the pages now.
            let rows = if bytes == 0 {
                Some(0.0)
            } else if tuples >= 0.0 && pages > 0 {
                Some(tuples / pages as f64 * (bytes as f64 / 8192.0))
            } else {
                None
            };
            let columns = self
                .client
                .query(
                    "SELECT attname::text, attnotnull FROM pg_catalog.pg_attribute
                     WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    &[&oid],
                )
                .map_err(|e| self.db_err("reading columns", &e))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let indexes = self
                .client
                .query(
                    "SELECT i.relname::text FROM pg_catalog.pg_index x
                     JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
                     WHERE x.indrelid = $1 ORDER BY 1",
                    &[&oid],
                )
                .map_err(|e| self.db_err("reading indexes", &e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let validated_checks = self
                .client
                .query(
                    "SELECT pg_catalog.pg_get_expr(conbin, conrelid) FROM pg_catalog.pg_constraint
                     WHERE conrelid = $1 AND contype = 'c' AND convalidated ORDER BY conname",
                    &[&oid],
                )
                .map_err(|e| self.db_err("reading constraints", &e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            return Ok(Some(LintTable {
                name: r.get(1),
                rows,
                bytes: Some(bytes),
                columns,
                indexes,
                validated_checks,
            }));
        }
        Ok(None)
    }
}
