//! SetDefault and DropDefault: a column's default, changed in the catalog only.

use super::Op;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::spec::{DropDefault, SetDefault};

impl Op for SetDefault {
    fn plan(&self, _migration: &str, _engine: &mut dyn Engine) -> Result<Plan> {
        Err(not_yet("set_default", &self.table, &self.column))
    }
}

impl Op for DropDefault {
    fn plan(&self, _migration: &str, _engine: &mut dyn Engine) -> Result<Plan> {
        Err(not_yet("drop_default", &self.table, &self.column))
    }
}

fn not_yet(kind: &str, table: &str, column: &str) -> Error {
    Error::Refused(format!(
        "{kind} (`{table}`.`{column}`) is not yet run by this zerodown version; drop the operation from the migration — nothing was changed"
    ))
}
