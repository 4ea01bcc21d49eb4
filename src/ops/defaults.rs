//! SetDefault and DropDefault: a column's default, changed in the catalog only. Existing rows keep
//! their values; only later INSERTs that leave the column out see the change.

use super::Op;
use crate::engine::Engine;
use crate::engine::dialect::{Dialect, Fragment, LiveTable};
use crate::error::{Error, Result};
use crate::plan::{Action, OpPlan, PLAN_FORMAT, Phase, Plan, Step};
use crate::spec::{DropDefault, SetDefault, analyze_expr};

impl Op for SetDefault {
    fn plan(&self, migration: &str, engine: &mut dyn Engine) -> Result<Plan> {
        let dialect = engine.dialect()?;
        let table = engine.live_table(&self.table)?;
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
        Ok(one_step(
            migration,
            "set_default",
            &*dialect,
            &table,
            &column.name,
            summary,
            fragment,
        ))
    }
}

impl Op for DropDefault {
    fn plan(&self, migration: &str, engine: &mut dyn Engine) -> Result<Plan> {
        let dialect = engine.dialect()?;
        let table = engine.live_table(&self.table)?;
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
        Ok(one_step(
            migration,
            "drop_default",
            &*dialect,
            &table,
            &column.name,
            summary,
            fragment,
        ))
    }

    /// Application versions that leave the column out of their INSERTs rely on the default until
    /// the new version is deployed: in a migration that waits for `complete`, it comes off there.
    fn at_contract(&self) -> bool {
        true
    }
}

/// A plan of one step, run by `start`, which completes the migration (`column` names what the
/// operation changes: a column, or an index).
pub(super) fn one_step(
    migration: &str,
    kind: &str,
    dialect: &dyn Dialect,
    table: &LiveTable,
    column: &str,
    summary: String,
    f: Fragment,
) -> Plan {
    Plan {
        format: PLAN_FORMAT,
        migration: migration.to_string(),
        engine: dialect.label(),
        single_step: true,
        notes: Vec::new(),
        ops: vec![OpPlan {
            kind: kind.into(),
            schema: table.namespace.clone(),
            table: table.schema.name.clone(),
            column: column.to_string(),
            fill: None,
            objects: Default::default(),
        }],
        steps: vec![Step {
            op: 0,
            phase: Phase::Expand,
            action: Action::Ddl,
            summary,
            sql: f.sql,
            lock: f.lock,
            cost: f.cost,
            reason: f.reason,
            undo: f.undo,
            undo_cost: f.undo_cost,
        }],
    }
}
