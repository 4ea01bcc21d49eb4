//! Catalog reads on SQLite: a table's columns, key and triggers, the checks that a migration's
//! expressions and references compile against the database, and the orphan count of a new reference.

use super::{Sqlite, quote, sqlite_err};
use crate::engine::{Column, TableSchema, Trigger};
use crate::error::{Error, Result};
use crate::plan::OpPlan;
use crate::spec::AddColumn;
use rusqlite::OptionalExtension;

impl Sqlite {
    /// Reads the table's schema from the catalog.
    pub fn table_schema(&self, table: &str) -> Result<TableSchema> {
        let found: Option<(String, String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT type, name, sql FROM sqlite_schema WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE",
                [table],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| sqlite_err("reading the catalog", e))?;
        let Some((kind, name, sql)) = found else {
            let tables = self.user_tables()?;
            return Err(Error::Refused(format!(
                "table `{table}` not found in {}; its tables are: {}",
                self.path.display(),
                if tables.is_empty() {
                    "(none)".to_string()
                } else {
                    tables.join(", ")
                }
            )));
        };
        if kind == "view" {
            return Err(Error::Refused(format!(
                "`{name}` is a view; zerodown adds columns to tables"
            )));
        }
        if sql
            .as_deref()
            .unwrap_or("")
            .trim_start()
            .to_ascii_uppercase()
            .starts_with("CREATE VIRTUAL")
        {
            return Err(Error::Refused(format!(
                "`{name}` is a virtual table; SQLite cannot add columns to it"
            )));
        }
        if name.starts_with("_zerodown") || name.starts_with("sqlite_") {
            return Err(Error::Refused(format!("`{name}` is an internal table")));
        }
        let (strict, without_rowid): (bool, bool) = self
            .conn
            .query_row(
                "SELECT strict, wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
                [&name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| sqlite_err("reading table_list", e))?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo(?1) WHERE hidden IN (0, 2, 3) ORDER BY cid",
            )
            .map_err(|e| sqlite_err("reading columns", e))?;
        let columns = stmt
            .query_map([&name], |r| {
                Ok(Column {
                    name: r.get(0)?,
                    data_type: r.get(1)?,
                    not_null: r.get(2)?,
                    default: r.get(3)?,
                    pk: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| sqlite_err("reading columns", e))?;
        let key = if without_rowid {
            let mut pk: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
            pk.sort_by_key(|c| c.pk);
            pk.iter().map(|c| c.name.clone()).collect()
        } else {
            let alias = ["rowid", "_rowid_", "oid"]
                .into_iter()
                .find(|a| !columns.iter().any(|c| c.name.eq_ignore_ascii_case(a)));
            match alias {
                Some(a) => vec![a.to_string()],
                None => {
                    return Err(Error::Refused(format!(
                        "table `{name}` has columns named rowid, _rowid_ and oid, so its rowid cannot be addressed for batching"
                    )));
                }
            }
        };
        let mut stmt = self
            .conn
            .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 ORDER BY name")
            .map_err(|e| sqlite_err("reading triggers", e))?;
        let triggers = stmt
            .query_map([&name], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| sqlite_err("reading triggers", e))?
            .into_iter()
            .filter(|(n, _)| !n.starts_with("zd_"))
            .map(|(n, sql)| Trigger {
                event: trigger_event(sql.as_deref().unwrap_or("")),
                name: n,
            })
            .collect();
        Ok(TableSchema {
            name,
            columns,
            key,
            strict,
            triggers,
        })
    }

    pub(super) fn user_tables(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_zerodown%' ESCAPE '\\' ORDER BY name")
            .map_err(|e| sqlite_err("listing tables", e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| sqlite_err("listing tables", e))
    }

    /// Checks the migration's expressions and references against the database, changing nothing.
    pub(super) fn validate_against_db(&self, add: &AddColumn, schema: &TableSchema) -> Result<()> {
        let t = quote(&schema.name);
        let try_prepare = |sql: &str, what: &str, expr: &str| -> Result<()> {
            self.conn.prepare(sql).map(|_| ()).map_err(|e| {
                let msg = match &e {
                    rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
                    other => other.to_string(),
                };
                Error::Refused(format!(
                    "the {what} `{expr}` does not compile on this database: {msg}"
                ))
            })
        };
        if let Some(b) = &add.backfill {
            try_prepare(
                &format!("SELECT ({b}) FROM {t} LIMIT 0"),
                "backfill expression",
                b,
            )?;
        }
        if let Some(d) = &add.default {
            try_prepare(&format!("SELECT ({d})"), "default", d)?;
        }
        if let Some(c) = &add.check {
            try_prepare(
                &format!(
                    "SELECT ({c}) FROM (SELECT *, CAST(NULL AS {ty}) AS {col} FROM {t}) AS {t} LIMIT 0",
                    ty = add.data_type,
                    col = quote(&add.column)
                ),
                "check",
                c,
            )?;
        }
        if let Some(r) = &add.references {
            let parent = self.table_schema(&r.table).map_err(|_| {
                Error::Refused(format!(
                    "`references = \"{r}\"`: table `{}` not found; create it first",
                    r.table
                ))
            })?;
            let target = match &r.column {
                Some(c) => parent.column(c).map(|c| c.name.clone()).ok_or_else(|| {
                    Error::Refused(format!(
                        "`references = \"{r}\"`: table `{}` has no column `{c}`",
                        parent.name
                    ))
                })?,
                None => {
                    let pk: Vec<&Column> = parent.columns.iter().filter(|c| c.pk > 0).collect();
                    if pk.len() != 1 {
                        return Err(Error::Refused(format!(
                            "`references = \"{r}\"`: table `{}` has no single-column primary key; name the column, as `{}(id)`",
                            parent.name, parent.name
                        )));
                    }
                    pk[0].name.clone()
                }
            };
            let is_pk = parent.columns.iter().filter(|c| c.pk > 0).count() == 1
                && parent.column(&target).is_some_and(|c| c.pk == 1);
            let unique: bool = self
                .conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM pragma_index_list(?1) AS il
                       WHERE il.\"unique\" = 1 AND il.partial = 0
                         AND (SELECT count(*) FROM pragma_index_info(il.name)) = 1
                         AND (SELECT name FROM pragma_index_info(il.name)) = ?2 COLLATE NOCASE)",
                    [&parent.name, &target],
                    |r| r.get(0),
                )
                .map_err(|e| sqlite_err("reading the parent's indexes", e))?;
            if !is_pk && !unique {
                return Err(Error::Refused(format!(
                    "`references = \"{r}\"`: `{}`.`{target}` is neither the primary key nor UNIQUE, so SQLite cannot enforce the reference; add a unique index on it first",
                    parent.name
                )));
            }
        }
        Ok(())
    }

    pub(super) fn count_orphans(&mut self, plan: &OpPlan) -> Result<i64> {
        let t = quote(&plan.table);
        // The foreign key whose child column is ours.
        let fk_id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM pragma_foreign_key_list(?1) WHERE \"from\" = ?2",
                [&plan.table, &plan.column],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sqlite_err("reading foreign keys", e))?;
        let Some(fk_id) = fk_id else { return Ok(0) };
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA foreign_key_check({t})"))
            .map_err(|e| sqlite_err("checking references", e))?;
        let mut rows = stmt
            .query([])
            .map_err(|e| sqlite_err("checking references", e))?;
        let mut n = 0;
        while let Some(r) = rows
            .next()
            .map_err(|e| sqlite_err("checking references", e))?
        {
            if r.get::<_, i64>(3).unwrap_or(-1) == fk_id {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The event of a trigger from its CREATE TRIGGER text: the first INSERT/UPDATE/DELETE after its name
/// (quoted names are blanked first, so a trigger named "update_log" is not taken for an UPDATE trigger).
fn trigger_event(sql: &str) -> String {
    let mut plain = String::with_capacity(sql.len());
    let mut quote_char: Option<char> = None;
    for ch in sql.chars() {
        match quote_char {
            Some(q) if ch == q || (q == '[' && ch == ']') => {
                quote_char = None;
                plain.push('Q');
            }
            Some(_) => {}
            None if matches!(ch, '"' | '`' | '[' | '\'') => quote_char = Some(ch),
            None => plain.push(ch.to_ascii_uppercase()),
        }
    }
    let words: Vec<&str> = plain
        .split(|c: char| c.is_whitespace() || c == '(')
        .filter(|w| !w.is_empty())
        .collect();
    let mut i = words
        .iter()
        .position(|w| *w == "TRIGGER")
        .map_or(0, |p| p + 1);
    if words.get(i) == Some(&"IF") {
        i += 3;
    }
    words
        .iter()
        .skip(i + 1)
        .find(|w| matches!(**w, "INSERT" | "UPDATE" | "DELETE"))
        .unwrap_or(&"UNKNOWN")
        .to_string()
}

#[cfg(test)]
mod trigger_event_tests {
    use super::trigger_event;

    #[test]
    fn finds_the_event_after_the_name() {
        assert_eq!(
            trigger_event("CREATE TRIGGER insert_log AFTER UPDATE OF a ON t BEGIN SELECT 1; END"),
            "UPDATE"
        );
        assert_eq!(
            trigger_event(
                "create trigger if not exists \"on update\" before delete on t begin select 1; end"
            ),
            "DELETE"
        );
        assert_eq!(
            trigger_event("CREATE TEMP TRIGGER t1 INSTEAD OF INSERT ON v BEGIN SELECT 1; END"),
            "INSERT"
        );
    }
}
