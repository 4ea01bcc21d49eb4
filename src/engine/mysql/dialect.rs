//! MySQL/MariaDB's statements for operations, on the connected server.

use super::facts::FACTS;
use super::{MySql, quote};
use crate::engine::Column;
use crate::engine::dialect::{
    Dialect, ForeignKeyDef, ForeignKeySteps, Fragment, Kind, LiveTable, fact,
};
use crate::error::{Error, Result};
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

    fn add_foreign_key(&self, fk: &ForeignKeyDef) -> Result<ForeignKeySteps> {
        self.add_foreign_key_steps(fk)
    }

    fn set_not_null(&self, table: &LiveTable, column: &Column) -> Result<Vec<(String, Fragment)>> {
        self.set_not_null_steps(table, column)
    }
}

/// An online build or rebuild under --build-timeout; `strict` under strict sql_mode.
fn online(sql: String, strict: bool) -> Statement {
    Statement {
        sql,
        run: Run::OnlineBuild {
            index: None,
            strict,
        },
    }
}

fn column_list(columns: &[&Column]) -> String {
    columns
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

impl MyDialect {
    fn add_foreign_key_steps(&self, fk: &ForeignKeyDef) -> Result<ForeignKeySteps> {
        let t = quote(&fk.table.schema.name);
        let n = quote(fk.name);
        let (if_not_exists, if_exists) = self.exists_clauses();
        let cols = column_list(&fk.columns);
        let on_delete = fk
            .on_delete
            .map(|o| format!(" {}", o.sql()))
            .unwrap_or_default();
        let alter = format!(
            "ALTER TABLE {t} ADD CONSTRAINT {n} FOREIGN KEY {if_not_exists}({cols}) REFERENCES {} ({}){on_delete}, ALGORITHM=INPLACE, LOCK=NONE",
            quote(&fk.parent.schema.name),
            column_list(&fk.parent_columns)
        );
        let sql = if self.mariadb {
            // The same form as add_column's key: the guard merges its own variables into this
            // SET STATEMENT, so foreign_key_checks=0 ends with the statement.
            vec![online(
                format!("SET STATEMENT foreign_key_checks=0 FOR {alter}"),
                false,
            )]
        } else {
            vec![
                Statement::in_step("SET SESSION foreign_key_checks = 0"),
                online(alter, false),
                Statement::in_step("SET SESSION foreign_key_checks = 1"),
            ]
        };
        // InnoDB needs an index that starts with the key's columns; without one, the ADD builds
        // one named after the key (an online pass over the table), which the undo drops too.
        let indexed = fk.table.my.as_ref().is_some_and(|my| {
            my.index_columns.iter().any(|ix| {
                ix.len() >= fk.columns.len()
                    && ix
                        .iter()
                        .zip(&fk.columns)
                        .all(|(i, c)| i.eq_ignore_ascii_case(&c.name))
            })
        });
        let add = fact(FACTS, Kind::AddForeignKey)?;
        let mut undo = vec![Statement::in_step(format!(
            "ALTER TABLE {t} DROP FOREIGN KEY {if_exists}{n}"
        ))];
        let (summary, lock, cost, reason) = if indexed {
            (
                format!("add FOREIGN KEY {} without checking existing rows", fk.name),
                add.lock_level(),
                add.cost,
                add.reason.to_string(),
            )
        } else {
            undo.push(Statement::in_step(format!(
                "ALTER TABLE {t} DROP INDEX {if_exists}{n}"
            )));
            let build = fact(FACTS, Kind::CreateIndex)?;
            (
                format!(
                    "add FOREIGN KEY {} without checking existing rows, building its index on ({}) online",
                    fk.name,
                    fk.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                build.lock_level(),
                build.cost,
                format!(
                    "{}. No index starts with the key's columns, so the server builds one named `{}` in the same ALTER: {}",
                    add.reason, fk.name, build.reason
                ),
            )
        };
        let count = fact(FACTS, Kind::ValidateForeignKey)?;
        let p = quote(&fk.parent.schema.name);
        let present: Vec<String> = fk
            .columns
            .iter()
            .map(|c| format!("zd_c.{} IS NOT NULL", quote(&c.name)))
            .collect();
        let matches: Vec<String> = fk
            .columns
            .iter()
            .zip(&fk.parent_columns)
            .map(|(c, pc)| format!("zd_p.{} = zd_c.{}", quote(&pc.name), quote(&c.name)))
            .collect();
        Ok(ForeignKeySteps {
            steps: vec![(
                summary,
                Fragment {
                    sql,
                    lock,
                    cost,
                    reason,
                    undo,
                    undo_cost: Some(Cost::CatalogOnly),
                },
            )],
            // Rows whose key is complete (a NULL in any column is not checked, as the server
            // does) and matches no parent row.
            orphan_count: Some((
                format!(
                    "count rows of {} without a parent in {}",
                    fk.table.schema.name, fk.parent.schema.name
                ),
                Fragment {
                    sql: vec![Statement::in_step(format!(
                        "SELECT count(*) FROM {t} AS zd_c WHERE {} AND NOT EXISTS (SELECT 1 FROM {p} AS zd_p WHERE {})",
                        present.join(" AND "),
                        matches.join(" AND ")
                    ))],
                    lock: count.lock_level(),
                    cost: count.cost,
                    reason: count.reason.into(),
                    undo: vec![],
                    undo_cost: None,
                },
            )),
        })
    }

    fn set_not_null_steps(
        &self,
        table: &LiveTable,
        column: &Column,
    ) -> Result<Vec<(String, Fragment)>> {
        let restated = table
            .my
            .as_ref()
            .and_then(|my| my.restated.iter().find(|r| r.column == column.name))
            .ok_or_else(|| {
                Error::Refused(format!(
                    "zerodown could not read the definition of `{}`.`{}` to restate it — nothing was changed",
                    table.schema.name, column.name
                ))
            })?;
        if let Some(why) = &restated.refused {
            return Err(Error::Refused(format!(
                "`{}`.`{}` cannot be made NOT NULL by zerodown: {why} — nothing was changed",
                table.schema.name, column.name
            )));
        }
        let t = quote(&table.schema.name);
        let modify = |null: &str| {
            format!(
                "ALTER TABLE {t} MODIFY COLUMN {} {} {null}{}, ALGORITHM=INPLACE, LOCK=NONE",
                quote(&column.name),
                restated.data_type,
                restated.attributes
            )
        };
        let f = fact(FACTS, Kind::SetNotNull)?;
        Ok(vec![(
            format!("make {} NOT NULL by an online rebuild", column.name),
            Fragment {
                sql: vec![online(modify("NOT NULL"), true)],
                lock: f.lock_level(),
                cost: f.cost,
                reason: f.reason.into(),
                undo: vec![online(modify("NULL"), false)],
                undo_cost: Some(Cost::Rewrite),
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
