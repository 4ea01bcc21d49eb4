//! PostgreSQL's statements for operations, on the connected version.

use super::facts::FACTS;
use super::quote;
use super::rules::{qualified, version_text};
use crate::engine::Column;
use crate::engine::dialect::{Dialect, Fragment, Kind, LiveTable, fact};
use crate::error::Result;
use crate::plan::{Cost, Statement};

pub struct PgDialect {
    pub version_num: i32,
}

fn table_name(table: &LiveTable) -> String {
    qualified(
        table.namespace.as_deref().unwrap_or("public"),
        &table.schema.name,
    )
}

impl Dialect for PgDialect {
    fn label(&self) -> String {
        version_text(self.version_num)
    }

    fn spec_dialect(&self) -> crate::spec::Dialect {
        crate::spec::Dialect::Postgres
    }

    fn column_default(
        &self,
        table: &LiveTable,
        column: &Column,
        default: Option<(&str, bool)>,
    ) -> Result<Fragment> {
        let t = table_name(table);
        let c = quote(&column.name);
        let set = |d: Option<&str>| match d {
            Some(expr) => format!("ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {expr}"),
            None => format!("ALTER TABLE {t} ALTER COLUMN {c} DROP DEFAULT"),
        };
        let f = fact(
            FACTS,
            if default.is_some() {
                Kind::SetDefault
            } else {
                Kind::DropDefault
            },
        )?;
        // The undo restores the catalog's own rendering of the old default (pg_get_expr).
        Ok(Fragment {
            sql: vec![Statement::in_step(set(default.map(|(e, _)| e)))],
            lock: f.lock_level(),
            cost: f.cost,
            reason: f.reason.into(),
            undo: vec![Statement::in_step(set(column.default.as_deref()))],
            undo_cost: Some(Cost::CatalogOnly),
        })
    }

    fn add_check(
        &self,
        table: &LiveTable,
        name: &str,
        check: &str,
    ) -> Result<Vec<(String, Fragment)>> {
        let t = table_name(table);
        let n = quote(name);
        let add = fact(FACTS, Kind::AddCheck)?;
        let validate = fact(FACTS, Kind::ValidateConstraint)?;
        Ok(vec![
            (
                format!("add CHECK {name} NOT VALID"),
                Fragment {
                    sql: vec![Statement::in_step(format!(
                        "ALTER TABLE {t} ADD CONSTRAINT {n} CHECK ({check}) NOT VALID"
                    ))],
                    lock: add.lock_level(),
                    cost: add.cost,
                    reason: add.reason.into(),
                    undo: vec![Statement::in_step(format!(
                        "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {n}"
                    ))],
                    undo_cost: Some(Cost::CatalogOnly),
                },
            ),
            (
                format!("validate CHECK {name}"),
                Fragment {
                    sql: vec![Statement::in_step(format!(
                        "ALTER TABLE {t} VALIDATE CONSTRAINT {n}"
                    ))],
                    lock: validate.lock_level(),
                    cost: validate.cost,
                    reason: validate.reason.into(),
                    undo: vec![],
                    undo_cost: None,
                },
            ),
        ])
    }
}
