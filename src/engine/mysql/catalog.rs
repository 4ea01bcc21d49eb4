//! Catalog reads: the table's columns, key and triggers, a referenced key, a column's full definition.

use super::{MyEnv, MyReference, MySql, STATE_TABLE, quote};
use crate::engine::{Column, TableSchema, Trigger};
use crate::error::{Error, Result};
use crate::spec::AddColumn;
use mysql::prelude::Queryable;

impl MySql {
    pub(super) fn env(&self, reference: Option<MyReference>, on_update: Vec<String>) -> MyEnv {
        MyEnv {
            flavour: self.flavour,
            version: self.version,
            reference,
            on_update_columns: on_update,
            row_versions: None,
            definer: None,
        }
    }

    /// The table's exact name in this database: exact match first, then ignoring case.
    pub(super) fn find_table(&mut self, name: &str) -> Result<Option<(String, String)>> {
        let rows: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES
                 WHERE TABLE_SCHEMA = DATABASE() AND LOWER(TABLE_NAME) = LOWER(?)
                 ORDER BY TABLE_NAME = ? DESC LIMIT 1",
                (name, name),
            )
            .map_err(|e| self.db_err("reading the catalog", &e))?;
        Ok(rows.into_iter().next())
    }

    /// Reads the table's schema from information_schema; returns it with its ON UPDATE columns.
    pub fn table_schema(&mut self, table: &str) -> Result<(TableSchema, Vec<String>)> {
        let Some((name, kind)) = self.find_table(table)? else {
            let tables: Vec<String> = self
                .conn
                .query(
                    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()
                     AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1 LIMIT 50",
                )
                .map_err(|e| self.db_err("listing tables", &e))?;
            return Err(Error::Refused(format!(
                "table `{table}` not found in database `{}` of {}; its tables are: {}",
                self.target.database,
                self.target.label,
                if tables.is_empty() {
                    "(none)".to_string()
                } else {
                    tables.join(", ")
                }
            )));
        };
        if kind != "BASE TABLE" {
            return Err(Error::Refused(format!(
                "`{name}` is a {}, not a table; zerodown adds columns to tables",
                kind.to_lowercase()
            )));
        }
        if name == STATE_TABLE {
            return Err(Error::Refused(format!("`{name}` is zerodown's own table")));
        }
        type ColRow = (String, String, String, Option<String>, String, Option<i64>);
        let rows: Vec<ColRow> = self
            .conn
            .exec(
                "SELECT c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE, c.COLUMN_DEFAULT, c.EXTRA,
                        (SELECT s.SEQ_IN_INDEX FROM information_schema.STATISTICS s
                         WHERE s.TABLE_SCHEMA = c.TABLE_SCHEMA AND s.TABLE_NAME = c.TABLE_NAME
                           AND s.INDEX_NAME = 'PRIMARY' AND s.COLUMN_NAME = c.COLUMN_NAME)
                 FROM information_schema.COLUMNS c
                 WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION",
                (&name,),
            )
            .map_err(|e| self.db_err("reading columns", &e))?;
        let mut on_update = Vec::new();
        let columns: Vec<Column> = rows
            .into_iter()
            .map(|(cname, ty, nullable, default, extra, pk)| {
                if extra.to_ascii_lowercase().contains("on update") {
                    on_update.push(cname.clone());
                }
                Column {
                    name: cname,
                    data_type: ty,
                    not_null: nullable == "NO",
                    default: default.filter(|d| d != "NULL"),
                    pk: pk.unwrap_or(0) as u32,
                }
            })
            .collect();
        let mut pk: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
        pk.sort_by_key(|c| c.pk);
        let key: Vec<String> = if !pk.is_empty() {
            pk.iter().map(|c| c.name.clone()).collect()
        } else {
            // A unique key on NOT NULL columns orders rows just as well.
            let rows: Vec<(String, String)> = self
                .conn
                .exec(
                    "SELECT s.INDEX_NAME, s.COLUMN_NAME FROM information_schema.STATISTICS s
                     WHERE s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = ? AND s.NON_UNIQUE = 0
                       AND s.INDEX_NAME NOT IN (SELECT s2.INDEX_NAME FROM information_schema.STATISTICS s2
                         WHERE s2.TABLE_SCHEMA = s.TABLE_SCHEMA AND s2.TABLE_NAME = s.TABLE_NAME
                           AND (s2.NULLABLE = 'YES' OR s2.SUB_PART IS NOT NULL OR s2.COLUMN_NAME IS NULL))
                     ORDER BY s.INDEX_NAME, s.SEQ_IN_INDEX",
                    (&name,),
                )
                .map_err(|e| self.db_err("reading indexes", &e))?;
            let first = rows.first().map(|r| r.0.clone());
            let key: Vec<String> = rows
                .into_iter()
                .filter(|r| Some(&r.0) == first.as_ref())
                .map(|r| r.1)
                .collect();
            if key.is_empty() {
                return Err(Error::Refused(format!(
                    "table `{name}` has neither a primary key nor a unique key on NOT NULL columns, so zerodown cannot walk it in batches (nor find rows again after a crash); add one first, e.g. ALTER TABLE {} ADD PRIMARY KEY (id)",
                    quote(&name)
                )));
            }
            key
        };
        let trows: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT TRIGGER_NAME, EVENT_MANIPULATION FROM information_schema.TRIGGERS
                 WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = ? ORDER BY TRIGGER_NAME",
                (&name,),
            )
            .map_err(|e| self.db_err("reading triggers", &e))?;
        let triggers = trows
            .into_iter()
            .filter(|(n, _)| !n.starts_with("zd_"))
            .map(|(n, event)| Trigger { name: n, event })
            .collect();
        Ok((
            TableSchema {
                name,
                columns,
                key,
                strict: false,
                triggers,
            },
            on_update,
        ))
    }

    /// Resolves `references` to (table, column), which must be the primary key or unique.
    pub(super) fn resolve_reference(&mut self, add: &AddColumn) -> Result<Option<MyReference>> {
        let Some(r) = &add.references else {
            return Ok(None);
        };
        let Some((table, kind)) = self.find_table(&r.table)? else {
            return Err(Error::Refused(format!(
                "`references = \"{r}\"`: table `{}` not found; create it first",
                r.table
            )));
        };
        if kind != "BASE TABLE" {
            return Err(Error::Refused(format!(
                "`references = \"{r}\"`: `{table}` is not a table"
            )));
        }
        let keys: Vec<(String, String, i64)> = self
            .conn
            .exec(
                "SELECT INDEX_NAME, COLUMN_NAME, (SELECT count(*) FROM information_schema.STATISTICS s2
                   WHERE s2.TABLE_SCHEMA = s.TABLE_SCHEMA AND s2.TABLE_NAME = s.TABLE_NAME AND s2.INDEX_NAME = s.INDEX_NAME)
                 FROM information_schema.STATISTICS s
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0
                 ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
                (&table,),
            )
            .map_err(|e| self.db_err("reading the referenced table's keys", &e))?;
        let column = match &r.column {
            Some(c) => {
                match keys
                    .iter()
                    .find(|(_, col, n)| *n == 1 && col.eq_ignore_ascii_case(c))
                {
                    Some((_, col, _)) => col.clone(),
                    None => {
                        return Err(Error::Refused(format!(
                            "`references = \"{r}\"`: `{table}`.`{c}` is missing, or is neither the primary key nor UNIQUE; add a unique key on it first"
                        )));
                    }
                }
            }
            None => match keys.iter().find(|(i, _, n)| i == "PRIMARY" && *n == 1) {
                Some((_, col, _)) => col.clone(),
                None => {
                    return Err(Error::Refused(format!(
                        "`references = \"{r}\"`: table `{table}` has no single-column primary key; name the column, as `{table}(id)`"
                    )));
                }
            },
        };
        Ok(Some(MyReference { table, column }))
    }

    pub(super) fn on_update_columns(&mut self, table: &str) -> Result<Vec<String>> {
        self.with_conn("reading columns", |c| {
            c.exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
                 AND TABLE_NAME = ? AND LOWER(EXTRA) LIKE '%on update%'",
                (table,),
            )
        })
    }
}
