//! AddForeignKey: a FOREIGN KEY on existing columns of an existing table. PostgreSQL adds it NOT
//! VALID (catalog only) and validates existing rows in a pass that blocks no query; MariaDB adds it
//! with foreign_key_checks=0 (INPLACE) and zerodown counts orphans itself in keyset batches; SQLite
//! cannot add one to an existing table without remaking it, and says so. The engine says which.

use super::{Op, Planning, started_plan};
use crate::engine::Column;
use crate::engine::dialect::ForeignKeyDef;
use crate::error::{Error, Result};
use crate::plan::{Action, Plan};
use crate::spec::AddForeignKey;

const UNCHANGED: &str = "nothing was changed";

/// Each named column of `table`, once.
fn columns<'t>(
    table: &'t crate::engine::dialect::LiveTable,
    names: &[String],
    fk: &str,
) -> Result<Vec<&'t Column>> {
    let mut out: Vec<&Column> = Vec::new();
    for name in names {
        let column = table.column(name)?;
        if out.iter().any(|c| c.name == column.name) {
            return Err(Error::Refused(format!(
                "foreign key `{fk}` lists column `{}` of `{}` twice; list each column once — {UNCHANGED}",
                column.name, table.schema.name
            )));
        }
        out.push(column);
    }
    Ok(out)
}

impl Op for AddForeignKey {
    fn plan(&self, migration: &str, planning: &mut Planning) -> Result<Plan> {
        if self.columns.len() != self.references_columns.len() {
            return Err(Error::Refused(format!(
                "foreign key `{}` on `{}` lists {} column(s) but references {}; give `references_columns` one column of `{}` per column of `columns` — {UNCHANGED}",
                self.name,
                self.table,
                self.columns.len(),
                self.references_columns.len(),
                self.references_table
            )));
        }
        let dialect = planning.dialect()?;
        let table = planning.live_table(&self.table)?;
        let parent = planning.live_table(&self.references_table)?;
        let def = ForeignKeyDef {
            name: &self.name,
            columns: columns(&table, &self.columns, &self.name)?,
            parent_columns: columns(&parent, &self.references_columns, &self.name)?,
            table: &table,
            parent: &parent,
            on_delete: self.on_delete,
        };
        let written = dialect.add_foreign_key(&def)?;
        let counted = written.orphan_count.is_some();
        let mut fragments = written.steps;
        fragments.extend(written.orphan_count);
        let subject = def
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut plan = started_plan(
            migration,
            "add_foreign_key",
            &*dialect,
            &table,
            &subject,
            fragments,
        );
        if counted && let Some(last) = plan.steps.last_mut() {
            // The executor counts rows without a parent with the step's own query, in batches,
            // and refuses with the count.
            last.action = Action::ForeignKeyCheck;
        }
        Ok(plan)
    }

    /// Old application versions may write rows the key refuses (or delete parents it protects):
    /// in a migration that waits for `complete`, it goes on there.
    fn at_contract(&self) -> bool {
        true
    }
}
