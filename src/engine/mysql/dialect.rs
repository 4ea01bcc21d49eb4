//! MySQL/MariaDB's statements for operations, on the connected server.

use super::facts::FACTS;
use super::{MySql, quote};
use crate::engine::Column;
use crate::engine::dialect::{Dialect, Fragment, Kind, LiveTable, fact};
use crate::error::Result;
use crate::plan::{Cost, Run, Statement};
use mysql::prelude::Queryable;

pub struct MyDialect {
    pub label: String,
    /// MariaDB, which has `IF [NOT] EXISTS` for indexes; MySQL 8 has not.
    pub mariadb: bool,
}

impl MyDialect {
    /// `IF NOT EXISTS ` and `IF EXISTS ` on MariaDB, so a re-run after a crash between a
    /// statement and its record does nothing; MySQL 8 has neither (documented, not run).
    fn exists_clauses(&self) -> (&'static str, &'static str) {
        if self.mariadb {
            ("IF NOT EXISTS ", "IF EXISTS ")
        } else {
            ("", "")
        }
    }
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
        let f = fact(FACTS, Kind::of_default(default.is_some()))?;
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

    fn create_index(
        &self,
        table: &LiveTable,
        name: &str,
        columns: &[&Column],
        unique: bool,
    ) -> Result<Fragment> {
        let f = fact(FACTS, Kind::CreateIndex)?;
        let t = quote(&table.schema.name);
        let cols: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
        // IF NOT EXISTS: a re-run that finds the index built (a crash came before the step was
        // recorded) does nothing. MySQL 8 has no such clause: there the re-run fails, naming the
        // index (documented, not run).
        let (if_not_exists, if_exists) = self.exists_clauses();
        Ok(Fragment {
            // Under --build-timeout, not the short lock timeout: the build waits for the
            // metadata lock at its start and end.
            sql: vec![Statement {
                sql: format!(
                    "ALTER TABLE {t} ADD {}INDEX {if_not_exists}{} ({}), ALGORITHM=INPLACE, LOCK=NONE",
                    if unique { "UNIQUE " } else { "" },
                    quote(name),
                    cols.join(", ")
                ),
                run: Run::OnlineBuild {
                    index: None,
                    strict: false,
                },
            }],
            lock: f.lock_level(),
            cost: f.cost,
            reason: f.reason.into(),
            undo: vec![Statement::in_step(format!(
                "ALTER TABLE {t} DROP INDEX {if_exists}{}",
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
        let (if_not_exists, if_exists) = self.exists_clauses();
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

impl MySql {
    /// The names of the indexes on `table` (MySQL's index names are per table).
    pub(super) fn index_names(&mut self, table: &str) -> Result<Vec<String>> {
        self.conn
            .exec(
                "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (table,),
            )
            .map_err(|e| self.db_err("reading the table's indexes", &e))
    }
}
