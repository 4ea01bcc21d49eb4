//! SQLite's statements for operations.

use super::facts::FACTS;
use super::quote;
use super::rules::version_text;
use crate::engine::Column;
use crate::engine::dialect::{Dialect, Fragment, Kind, LiveTable, fact};
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
        let f = fact(
            FACTS,
            if default.is_some() {
                Kind::SetDefault
            } else {
                Kind::DropDefault
            },
        )?;
        Err(Error::Refused(format!(
            "SQLite cannot change the default of `{}`.`{}` safely: rows written before the column was added store no value for it and read the table's default, so a new default would change their values ({}); zerodown does not yet rewrite those rows first — nothing was changed",
            table.schema.name, column.name, f.proven_by
        )))
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
}
