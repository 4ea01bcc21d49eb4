//! `zerodown lint` online on SQLite: a connection with `PRAGMA query_only` on, reading the schema
//! and counting the table's rows (SQLite keeps no estimate).

use super::{Sqlite, quote, sqlite_err};
use crate::engine::Engine;
use crate::engine::lint_catalog::{LintCatalog, LintTable};
use crate::error::Result;
use rusqlite::OptionalExtension;
use std::path::Path;

impl Sqlite {
    /// Opens the file and refuses every later write on the connection.
    pub fn open_read_only(path: &Path) -> Result<Sqlite> {
        let db = Sqlite::open(path)?;
        db.conn
            .execute_batch("PRAGMA query_only = ON")
            .map_err(|e| sqlite_err("making the connection read-only", e))?;
        Ok(db)
    }
}

impl LintCatalog for Sqlite {
    fn server(&self) -> String {
        self.label()
    }

    fn is_read_only(&mut self) -> Result<bool> {
        self.conn
            .query_row("PRAGMA query_only", [], |r| r.get::<_, i64>(0))
            .map(|v| v == 1)
            .map_err(|e| sqlite_err("reading query_only", e))
    }

    fn table(&mut self, _schema: Option<&str>, name: &str) -> Result<Option<LintTable>> {
        let found: Option<String> = self
            .conn
            .query_row(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sqlite_err("reading the catalog", e))?;
        let Some(table) = found else {
            return Ok(None);
        };
        let rows: i64 = self
            .conn
            .query_row(
                &format!("SELECT count(*) FROM {}", quote(&table)),
                [],
                |r| r.get(0),
            )
            .map_err(|e| sqlite_err("counting rows", e))?;
        // dbstat is an optional compile-time feature; without it the size is unknown.
        let bytes: Option<i64> = self
            .conn
            .query_row(
                "SELECT sum(pgsize) FROM dbstat WHERE name = ?1",
                [&table],
                |r| r.get(0),
            )
            .ok()
            .flatten();
        let mut columns = Vec::new();
        let mut st = self
            .conn
            .prepare("SELECT name, \"notnull\" FROM pragma_table_info(?1) ORDER BY cid")
            .map_err(|e| sqlite_err("reading columns", e))?;
        let mut q = st
            .query([&table])
            .map_err(|e| sqlite_err("reading columns", e))?;
        while let Some(r) = q.next().map_err(|e| sqlite_err("reading columns", e))? {
            let nn: i64 = r.get(1).map_err(|e| sqlite_err("reading columns", e))?;
            columns.push((
                r.get(0).map_err(|e| sqlite_err("reading columns", e))?,
                nn == 1,
            ));
        }
        drop(q);
        drop(st);
        let mut st = self
            .conn
            .prepare("SELECT name FROM pragma_index_list(?1) ORDER BY name")
            .map_err(|e| sqlite_err("reading indexes", e))?;
        let indexes = st
            .query_map([&table], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(|e| sqlite_err("reading indexes", e))?;
        Ok(Some(LintTable {
            name: table,
            rows: Some(rows as f64),
            bytes,
            columns,
            indexes,
            validated_checks: Vec::new(),
        }))
    }
}
