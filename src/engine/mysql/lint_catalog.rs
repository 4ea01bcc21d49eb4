//! `zerodown lint` online on MySQL/MariaDB: a session whose transactions are read-only
//! (`SET SESSION TRANSACTION READ ONLY`), reading information_schema only.

use super::MySql;
use crate::engine::Engine;
use crate::engine::lint_catalog::{LintCatalog, LintTable};
use crate::error::Result;
use mysql::prelude::Queryable;

impl MySql {
    /// Opens the server and makes every later transaction of the session read-only.
    pub fn open_read_only(url: &str) -> Result<MySql> {
        let mut my = MySql::open(url)?;
        my.conn
            .query_drop("SET SESSION TRANSACTION READ ONLY")
            .map_err(|e| my.db_err("making the session read-only", &e))?;
        Ok(my)
    }
}

impl LintCatalog for MySql {
    fn server(&self) -> String {
        self.label()
    }

    fn is_read_only(&mut self) -> Result<bool> {
        // MySQL 8 and MariaDB 11.1+ name it transaction_read_only; MariaDB 10.x tx_read_only.
        let v: Option<i64> = match self
            .conn
            .query_first("SELECT @@session.transaction_read_only")
        {
            Ok(v) => v,
            Err(_) => self
                .conn
                .query_first("SELECT @@session.tx_read_only")
                .map_err(|e| self.db_err("reading tx_read_only", &e))?,
        };
        Ok(v == Some(1))
    }

    fn table(&mut self, schema: Option<&str>, name: &str) -> Result<Option<LintTable>> {
        let found: Option<(String, String, Option<u64>, Option<u64>)> = self
            .conn
            .exec_first(
                "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS, DATA_LENGTH FROM information_schema.TABLES
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND LOWER(TABLE_NAME) = LOWER(?)
                   AND TABLE_TYPE = 'BASE TABLE'
                 ORDER BY TABLE_NAME = ? DESC LIMIT 1",
                (schema, name, name),
            )
            .map_err(|e| self.db_err("reading the catalog", &e))?;
        let Some((db, table, rows, bytes)) = found else {
            return Ok(None);
        };
        let columns: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME, IS_NULLABLE FROM information_schema.COLUMNS
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (&db, &table),
            )
            .map_err(|e| self.db_err("reading columns", &e))?;
        let indexes: Vec<String> = self
            .conn
            .exec(
                "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY 1",
                (&db, &table),
            )
            .map_err(|e| self.db_err("reading indexes", &e))?;
        Ok(Some(LintTable {
            name: table,
            rows: rows.map(|r| r as f64),
            bytes: bytes.map(|b| b as i64),
            columns: columns
                .into_iter()
                .map(|(c, nullable)| (c, nullable == "NO"))
                .collect(),
            indexes,
            validated_checks: Vec::new(),
        }))
    }
}
