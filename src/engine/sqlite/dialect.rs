//! SQLite's statements for operations.

use super::facts::FACTS;
use super::rules::version_text;
use super::{Sqlite, quote, sqlite_err};
use crate::engine::Column;
use crate::engine::dialect::{
    Dialect, ForeignKeyDef, ForeignKeySteps, Fragment, Kind, LiveTable, fact,
};
use crate::error::{Error, Result};
use crate::plan::{Cost, Statement};

pub struct LiteDialect {
    pub version: i32,
}

impl Dialect for LiteDialect {
    fn label(&self) -> String {
        format!("SQLite {}", version_text(self.version))
    }

    fn spec_dialect(&self) -> crate::spec::Dialect {
        crate::spec::Dialect::Sqlite
    }

    fn column_default(
        &self,
        table: &LiveTable,
        column: &Column,
        default: Option<(&str, bool)>,
    ) -> Result<Fragment> {
        // Rows written before `ALTER TABLE … ADD COLUMN` store no value for the column: SQLite
        // reads the table's current default for them. A new default would change what they read,
        // and nothing in SQL tells those rows apart. Until an operation rewrites them first, refuse.
        let f = fact(FACTS, Kind::of_default(default.is_some()))?;
        Err(Error::Refused(format!(
            "SQLite cannot change the default of `{}`.`{}` safely: rows written before the column was added store no value for it and read the table's default, so a new default would change their values ({}); zerodown does not yet rewrite those rows first — nothing was changed",
            table.schema.name, column.name, f.proven_by
        )))
    }

    fn create_index(
        &self,
        table: &LiveTable,
        name: &str,
        columns: &[&Column],
        unique: bool,
    ) -> Result<Fragment> {
        // SQLite has no online build: the statement holds the write lock for its pass over the
        // table, in the step's transaction with its record.
        let f = fact(FACTS, Kind::CreateIndex)?;
        let cols: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
        Ok(Fragment {
            sql: vec![Statement::in_step(format!(
                "CREATE {}INDEX IF NOT EXISTS {} ON {} ({})",
                if unique { "UNIQUE " } else { "" },
                quote(name),
                quote(&table.schema.name),
                cols.join(", ")
            ))],
            lock: f.lock_level(),
            cost: f.cost,
            reason: f.reason.into(),
            undo: vec![Statement::in_step(format!(
                "DROP INDEX IF EXISTS {}",
                quote(name)
            ))],
            undo_cost: Some(Cost::CatalogOnly),
        })
    }

    fn add_check(
        &self,
        table: &LiveTable,
        name: &str,
        check: &str,
    ) -> Result<Vec<(String, Fragment)>> {
        let t = quote(&table.schema.name);
        let n = quote(name);
        let f = fact(FACTS, Kind::AddCheck)?;
        Ok(vec![(
            format!("add CHECK {name}"),
            Fragment {
                sql: vec![Statement::in_step(format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {n} CHECK ({check})"
                ))],
                lock: f.lock_level(),
                cost: f.cost,
                reason: f.reason.into(),
                undo: vec![Statement::in_step(format!(
                    "ALTER TABLE {t} DROP CONSTRAINT {n}"
                ))],
                undo_cost: Some(Cost::CatalogOnly),
            },
        )])
    }

    fn add_foreign_key(&self, fk: &ForeignKeyDef) -> Result<ForeignKeySteps> {
        let f = fact(FACTS, Kind::AddForeignKey)?;
        Err(Error::Refused(format!(
            "SQLite cannot add foreign key `{}` to the existing table `{}`: its ALTER TABLE adds only CHECK constraints ({}). Either add the referencing column with `references` in an [add_column] (the one moment SQLite allows a key), or remake `{}` with the key (create the new table, copy the rows, swap the names) in a maintenance window — nothing was changed",
            fk.name, fk.table.schema.name, f.proven_by, fk.table.schema.name
        )))
    }

    fn set_not_null(&self, table: &LiveTable, column: &Column) -> Result<Vec<(String, Fragment)>> {
        if self.version < MIN_SET_NOT_NULL {
            return Err(Error::Refused(format!(
                "SQLite {} cannot make `{}`.`{}` NOT NULL in place (ALTER COLUMN … SET NOT NULL needs 3.53+) — nothing was changed",
                version_text(self.version),
                table.schema.name,
                column.name
            )));
        }
        let t = quote(&table.schema.name);
        let c = quote(&column.name);
        let f = fact(FACTS, Kind::SetNotNull)?;
        Ok(vec![(
            format!("set {} NOT NULL", column.name),
            Fragment {
                sql: vec![Statement::in_step(format!(
                    "ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"
                ))],
                lock: f.lock_level(),
                cost: f.cost,
                reason: f.reason.into(),
                undo: vec![Statement::in_step(format!(
                    "ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL"
                ))],
                undo_cost: Some(Cost::CatalogOnly),
            },
        )])
    }
}

/// Oldest SQLite with `ALTER COLUMN … SET NOT NULL`.
const MIN_SET_NOT_NULL: i32 = 3_053_000;

impl Sqlite {
    /// The names of the indexes on `table`, and of the database's other tables, indexes and
    /// views (SQLite keeps them in one namespace).
    pub(super) fn index_names(&self, table: &str) -> Result<(Vec<String>, Vec<String>)> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, type = 'index' AND tbl_name = ?1 COLLATE NOCASE FROM sqlite_schema
                 WHERE type IN ('table', 'index', 'view')",
            )
            .map_err(|e| sqlite_err("reading the table's indexes", e))?;
        let rows = stmt
            .query_map([table], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| sqlite_err("reading the table's indexes", e))?;
        let (on_table, others): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, on)| *on);
        let names = |rows: Vec<(String, bool)>| rows.into_iter().map(|(n, _)| n).collect();
        Ok((names(on_table), names(others)))
    }
}
