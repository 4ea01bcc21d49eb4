//! AddCheck: a CHECK constraint on existing columns. PostgreSQL adds it NOT VALID (catalog only)
//! and validates existing rows in a pass that blocks no query; MariaDB only copies the table (so
//! only with `--allow-copy`); SQLite checks every row under its write lock. The engine says which.

use super::{Op, Planning, started_plan};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::spec::{AddCheck, analyze_expr};

impl Op for AddCheck {
    fn plan(&self, migration: &str, planning: &mut Planning) -> Result<Plan> {
        let dialect = planning.dialect()?;
        let table = planning.live_table(&self.table)?;
        let info = analyze_expr(&self.check, dialect.spec_dialect(), "check")?;
        for c in &info.columns {
            table.column(c)?;
        }
        if info.columns.is_empty() {
            return Err(Error::Refused(format!(
                "CHECK `{}` on `{}` reads no column: write a condition on the row's columns, e.g. \"amount >= 0\" — nothing was changed",
                self.name, self.table
            )));
        }
        let fragments = dialect.add_check(&table, &self.name, &info.rendered)?;
        Ok(started_plan(
            migration,
            "add_check",
            &*dialect,
            &table,
            &self.name,
            fragments,
        ))
    }

    /// Old application versions may write rows the constraint refuses: in a migration that waits
    /// for `complete`, and after its backfill, it goes on there.
    fn at_contract(&self) -> bool {
        true
    }
}
