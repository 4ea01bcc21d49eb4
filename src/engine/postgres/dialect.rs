//! PostgreSQL's statements for operations, on the connected version.

use super::facts::FACTS;
use super::rules::{qualified, version_text};
use super::{Postgres, quote};
use crate::engine::Column;
use crate::engine::dialect::{
    Dialect, Fact, ForeignKeyDef, ForeignKeySteps, Fragment, Kind, LiveTable, fact,
};
use crate::error::Result;
use crate::plan::{Cost, Run, Statement, object_name};

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
        let f = fact(FACTS, Kind::of_default(default.is_some()))?;
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

    fn create_index(
        &self,
        table: &LiveTable,
        name: &str,
        columns: &[&Column],
        unique: bool,
    ) -> Result<Fragment> {
        let f = fact(FACTS, Kind::CreateIndex)?;
        let schema = table.namespace.as_deref().unwrap_or("public");
        let index = qualified(schema, name);
        // Alone in autocommit under --build-timeout; `index` names what an interrupted build
        // leaves INVALID, for the executor to drop before building again.
        let online = |sql: String| Statement {
            sql,
            run: Run::OnlineBuild {
                index: Some(index.clone()),
                strict: false,
            },
        };
        let cols: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
        Ok(Fragment {
            // IF NOT EXISTS: a re-run that finds the index built (a crash came before the step
            // was recorded) does nothing.
            sql: vec![online(format!(
                "CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({})",
                if unique { "UNIQUE " } else { "" },
                quote(name),
                table_name(table),
                cols.join(", ")
            ))],
            lock: f.lock_level(),
            cost: f.cost,
            reason: f.reason.into(),
            undo: vec![online(format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))],
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

    fn add_foreign_key(&self, fk: &ForeignKeyDef) -> Result<ForeignKeySteps> {
        self.add_foreign_key_steps(fk)
    }

    fn set_not_null(&self, table: &LiveTable, column: &Column) -> Result<Vec<(String, Fragment)>> {
        self.set_not_null_steps(table, column)
    }
}

/// A step's fragment from its fact: `sql` in the step's transaction, `undo` catalog-only.
fn step(f: &Fact, sql: Vec<String>, undo: Vec<String>) -> Fragment {
    Fragment {
        sql: Statement::in_step_all(sql),
        lock: f.lock_level(),
        cost: f.cost,
        reason: f.reason.into(),
        undo_cost: (!undo.is_empty()).then_some(Cost::CatalogOnly),
        undo: Statement::in_step_all(undo),
    }
}

fn column_list(columns: &[&Column]) -> String {
    columns
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

impl PgDialect {
    fn add_foreign_key_steps(&self, fk: &ForeignKeyDef) -> Result<ForeignKeySteps> {
        let t = table_name(fk.table);
        let n = quote(fk.name);
        let on_delete = fk
            .on_delete
            .map(|o| format!(" {}", o.sql()))
            .unwrap_or_default();
        let drop = format!("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {n}");
        Ok(ForeignKeySteps {
            steps: vec![
                (
                    format!("add FOREIGN KEY {} NOT VALID", fk.name),
                    step(
                        fact(FACTS, Kind::AddForeignKey)?,
                        vec![format!(
                            "ALTER TABLE {t} ADD CONSTRAINT {n} FOREIGN KEY ({}) REFERENCES {} ({}){on_delete} NOT VALID",
                            column_list(&fk.columns),
                            table_name(fk.parent),
                            column_list(&fk.parent_columns)
                        )],
                        vec![drop],
                    ),
                ),
                (
                    format!("validate FOREIGN KEY {}", fk.name),
                    step(
                        fact(FACTS, Kind::ValidateForeignKey)?,
                        vec![format!("ALTER TABLE {t} VALIDATE CONSTRAINT {n}")],
                        vec![],
                    ),
                ),
            ],
            orphan_count: None,
        })
    }

    /// Before 18: CHECK (c IS NOT NULL) NOT VALID → VALIDATE → SET NOT NULL (no scan: the
    /// validated CHECK proves it) and drop the CHECK. On 18: NOT NULL NOT VALID → VALIDATE.
    fn set_not_null_steps(
        &self,
        table: &LiveTable,
        column: &Column,
    ) -> Result<Vec<(String, Fragment)>> {
        let t = table_name(table);
        let c = quote(&column.name);
        let validate = fact(FACTS, Kind::ValidateConstraint)?;
        if self.version_num >= 180_000 {
            // PostgreSQL's own name for a column's NOT NULL, where it fits in 63 bytes.
            let own = format!("{}_{}_not_null", table.schema.name, column.name);
            let name = if own.len() <= 63 {
                own
            } else {
                object_name("nn", &table.schema.name, &column.name)
            };
            let n = quote(&name);
            return Ok(vec![
                (
                    format!("add NOT NULL {name} on {} NOT VALID", column.name),
                    step(
                        fact(FACTS, Kind::AddNotNullNotValid)?,
                        vec![format!(
                            "ALTER TABLE {t} ADD CONSTRAINT {n} NOT NULL {c} NOT VALID"
                        )],
                        vec![format!("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {n}")],
                    ),
                ),
                (
                    format!("validate NOT NULL {name}"),
                    step(
                        validate,
                        vec![format!("ALTER TABLE {t} VALIDATE CONSTRAINT {n}")],
                        vec![],
                    ),
                ),
            ]);
        }
        let name = object_name("nn", &table.schema.name, &column.name);
        let n = quote(&name);
        let drop = format!("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {n}");
        Ok(vec![
            (
                format!("add CHECK ({} IS NOT NULL) NOT VALID", column.name),
                step(
                    fact(FACTS, Kind::AddCheck)?,
                    vec![format!(
                        "ALTER TABLE {t} ADD CONSTRAINT {n} CHECK ({c} IS NOT NULL) NOT VALID"
                    )],
                    vec![drop.clone()],
                ),
            ),
            (
                format!("validate CHECK ({} IS NOT NULL)", column.name),
                step(
                    validate,
                    vec![format!("ALTER TABLE {t} VALIDATE CONSTRAINT {n}")],
                    vec![],
                ),
            ),
            (
                format!("set {} NOT NULL, then drop the CHECK", column.name),
                step(
                    fact(FACTS, Kind::SetNotNull)?,
                    vec![
                        format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"),
                        drop,
                    ],
                    vec![format!("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL")],
                ),
            ),
        ])
    }
}

impl Postgres {
    /// The names of the indexes on table `oid`, and of every other relation in its schema (an
    /// index takes its name in the schema's one namespace of relations).
    pub(super) fn index_names(
        &mut self,
        oid: u32,
        namespace: &str,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let rows = self
            .client
            .query(
                "SELECT c.relname::text, i.indrelid IS NOT DISTINCT FROM $1
                 FROM pg_catalog.pg_class c
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
                 WHERE n.nspname = $2",
                &[&oid, &namespace],
            )
            .map_err(|e| self.db_err("reading the table's indexes", &e))?;
        let (on_table, others): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.get::<_, bool>(1));
        let names = |rows: Vec<&postgres::Row>| rows.iter().map(|r| r.get(0)).collect();
        Ok((names(on_table), names(others)))
    }
}
