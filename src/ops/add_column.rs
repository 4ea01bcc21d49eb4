//! AddColumn: a new column, filled for existing rows and kept right for new ones while old and new
//! application versions run side by side. Its plan is the engine's add-column rules (each engine's
//! `rules.rs`), which know per version what is catalog-only and what rewrites.

use super::Op;
use crate::engine::Engine;
use crate::error::Result;
use crate::plan::Plan;
use crate::spec::AddColumn;

impl Op for AddColumn {
    fn plan(&self, migration: &str, engine: &mut dyn Engine) -> Result<Plan> {
        engine.plan_add_column(migration, self)
    }
}
