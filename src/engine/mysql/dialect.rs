//! MySQL/MariaDB's statements for operations, on the connected server.

use super::facts::FACTS;
use super::quote;
use crate::engine::Column;
use crate::engine::dialect::{Dialect, Fragment, Kind, LiveTable, fact};
use crate::error::Result;
use crate::plan::{Cost, Run, Statement};

pub struct MyDialect {
    pub label: String,
    /// MariaDB (IF [NOT] EXISTS on constraints) rather than MySQL.
    pub mariadb: bool,
}

impl Dialect for MyDialect {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn spec_dialect(&self) -> crate::spec::Dialect {
        crate::spec::Dialect::Mysql
    }

    fn column_default(
        &self,
        table: &LiveTable,
        column: &Column,
        default: Option<(&str, bool)>,
    ) -> Result<Fragment> {
        let t = quote(&table.schema.name);
        let c = quote(&column.name);
        // A literal as written; anything else in parentheses, as the grammar wants an expression.
        let set = |d: Option<(&str, bool)>| match d {
            Some((expr, true)) => {
                format!("ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {expr}, ALGORITHM=INSTANT")
            }
            Some((expr, false)) => {
                format!("ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT ({expr}), ALGORITHM=INSTANT")
            }
            None => format!("ALTER TABLE {t} ALTER COLUMN {c} DROP DEFAULT, ALGORITHM=INSTANT"),
        };
        let f = fact(
            FACTS,
            if default.is_some() {
                Kind::SetDefault
            } else {
                Kind::DropDefault
            },
        )?;
        // The undo restores the data dictionary's own rendering of the old default
        // (information_schema.COLUMNS: a quoted literal or an expression), in parentheses, which
        // takes either.
        let old = column.default.as_deref().map(|d| (d, false));
        Ok(Fragment {
            sql: vec![Statement::in_step(set(default))],
            lock: f.lock_level(),
            cost: f.cost,
            reason: f.reason.into(),
            undo: vec![Statement::in_step(set(old))],
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
        let (if_not_exists, if_exists) = if self.mariadb {
            ("IF NOT EXISTS ", "IF EXISTS ")
        } else {
            ("", "")
        };
        let f = fact(FACTS, Kind::AddCheck)?;
        Ok(vec![(
            format!("add CHECK {name} (copies the table: needs --allow-copy)"),
            Fragment {
                sql: vec![Statement {
                    sql: format!(
                        "ALTER TABLE {t} ADD CONSTRAINT {if_not_exists}{n} CHECK ({check}), ALGORITHM=COPY"
                    ),
                    run: Run::Copy,
                }],
                lock: f.lock_level(),
                cost: f.cost,
                reason: f.reason.into(),
                undo: vec![Statement::in_step(format!(
                    "ALTER TABLE {t} DROP CONSTRAINT {if_exists}{n}"
                ))],
                undo_cost: Some(Cost::CatalogOnly),
            },
        )])
    }
}
