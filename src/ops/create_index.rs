//! CreateIndex: an index on existing columns of an existing table, plain or unique, built as
//! online as the engine allows (PostgreSQL CONCURRENTLY, MariaDB INPLACE with LOCK=NONE, SQLite a
//! plain build under the write lock, which the plan says). Its name is kept exactly as written:
//! ORMs track their indexes by name.

use super::{Op, Planning, started_plan};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::spec::CreateIndex;

const UNCHANGED: &str = "nothing was changed";

/// A refusal that says nothing was changed (the catalog's own refusals do not all say it).
fn unchanged(e: Error) -> Error {
    match e {
        Error::Refused(m) if !m.contains(UNCHANGED) => Error::Refused(format!("{m} — {UNCHANGED}")),
        other => other,
    }
}

impl Op for CreateIndex {
    fn plan(&self, migration: &str, planning: &mut Planning) -> Result<Plan> {
        if self.name.trim().is_empty() {
            return Err(Error::Refused(format!(
                "create_index on `{}` has an empty `name`; give the index a name — {UNCHANGED}",
                self.table
            )));
        }
        if self.columns.is_empty() {
            return Err(Error::Refused(format!(
                "index `{}` on `{}` lists no column; give `columns` at least one column of the table — {UNCHANGED}",
                self.name, self.table
            )));
        }
        let dialect = planning.dialect()?;
        let table = planning.live_table(&self.table).map_err(unchanged)?;
        let mut columns = Vec::new();
        for name in &self.columns {
            let column = table.column(name)?;
            if columns
                .iter()
                .any(|c: &&crate::engine::Column| c.name == column.name)
            {
                return Err(Error::Refused(format!(
                    "index `{}` lists column `{}` twice; list each column once — {UNCHANGED}",
                    self.name, column.name
                )));
            }
            columns.push(column);
        }
        // Compared ignoring ASCII case: MySQL and SQLite do; on PostgreSQL a name that differs
        // from an existing one only in case is refused too, as too close to tell apart.
        let taken = |names: &[String]| names.iter().any(|n| n.eq_ignore_ascii_case(&self.name));
        if taken(&table.indexes) {
            return Err(Error::Refused(format!(
                "index `{}` already exists on `{}`; drop it first or give the new index another name — {UNCHANGED}",
                self.name, table.schema.name
            )));
        }
        if taken(&table.other_names) {
            let place = match &table.namespace {
                Some(schema) => format!("schema `{schema}`"),
                None => "the database".to_string(),
            };
            return Err(Error::Refused(format!(
                "`{}` is already the name of another table or index in {place}, where an index's name must be unique; give the index another name — {UNCHANGED}",
                self.name
            )));
        }
        let fragment = dialect.create_index(&table, &self.name, &columns, self.unique)?;
        let summary = format!(
            "build {}index `{}` on `{}` ({})",
            if self.unique { "unique " } else { "" },
            self.name,
            table.schema.name,
            columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(started_plan(
            migration,
            "create_index",
            &*dialect,
            &table,
            &self.name,
            vec![(summary, fragment)],
        ))
    }
}
