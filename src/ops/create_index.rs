//! CreateIndex: an index on existing columns of an existing table.

use super::{Op, Planning};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::spec::CreateIndex;

impl Op for CreateIndex {
    fn plan(&self, _migration: &str, _planning: &mut Planning) -> Result<Plan> {
        Err(Error::Refused(format!(
            "create_index ({}) is not yet run by this zerodown version: build the index with the engine's online statement (`zerodown lint` shows it), or drop the operation from the migration — nothing was changed",
            self.name
        )))
    }
}
