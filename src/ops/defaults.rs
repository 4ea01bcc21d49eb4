//! SetDefault and DropDefault: a column's default, changed in the catalog only. Existing rows keep
//! their values; only later INSERTs that leave the column out see the change.

use super::{Op, Planning, started_plan};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::spec::{DropDefault, SetDefault, analyze_expr};

impl Op for SetDefault {
    fn plan(&self, migration: &str, planning: &mut Planning) -> Result<Plan> {
        let dialect = planning.dialect()?;
        let table = planning.live_table(&self.table)?;
        let column = table.column(&self.column)?;
        let info = analyze_expr(&self.default, dialect.spec_dialect(), "default")?;
        if !info.columns.is_empty() {
            return Err(Error::Refused(format!(
                "the default of `{}`.`{}` reads column(s) {}: a default cannot read the row; give a value or an expression without columns — nothing was changed",
                self.table,
                self.column,
                info.columns.join(", ")
            )));
        }
        let fragment =
            dialect.column_default(&table, column, Some((&info.rendered, info.is_literal)))?;
        let summary = format!(
            "set the default of `{}`.`{}` to {}",
            table.schema.name, column.name, info.rendered
        );
        Ok(started_plan(
            migration,
            "set_default",
            &*dialect,
            &table,
            &column.name,
            vec![(summary, fragment)],
        ))
    }
}

impl Op for DropDefault {
    fn plan(&self, migration: &str, planning: &mut Planning) -> Result<Plan> {
        let dialect = planning.dialect()?;
        let table = planning.live_table(&self.table)?;
        let column = table.column(&self.column)?;
        if column.default.is_none() {
            return Err(Error::Refused(format!(
                "`{}`.`{}` has no default to drop; remove the operation from the migration — nothing was changed",
                table.schema.name, column.name
            )));
        }
        let fragment = dialect.column_default(&table, column, None)?;
        let summary = format!(
            "drop the default of `{}`.`{}`",
            table.schema.name, column.name
        );
        Ok(started_plan(
            migration,
            "drop_default",
            &*dialect,
            &table,
            &column.name,
            vec![(summary, fragment)],
        ))
    }

    /// Application versions that leave the column out of their INSERTs rely on the default until
    /// the new version is deployed: in a migration that waits for `complete`, it comes off there.
    fn at_contract(&self) -> bool {
        true
    }
}
