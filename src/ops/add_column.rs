//! AddColumn: a new column, filled for existing rows and kept right for new ones while old and new
//! application versions run side by side. Its plan is the engine's add-column rules (each engine's
//! `rules.rs`), which know per version what is catalog-only and what rewrites.

use super::{Op, Planning};
use crate::engine::Column;
use crate::error::Result;
use crate::plan::Plan;
use crate::spec::AddColumn;

impl Op for AddColumn {
    fn plan(&self, migration: &str, planning: &mut Planning) -> Result<Plan> {
        let plan = planning.engine.plan_add_column(migration, self)?;
        planning.adds(
            &self.table,
            Column {
                name: self.column.clone(),
                data_type: self.data_type.clone(),
                not_null: self.not_null,
                default: self.default.clone(),
                pk: 0,
            },
        );
        Ok(plan)
    }
}
