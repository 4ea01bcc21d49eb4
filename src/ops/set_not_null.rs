//! SetNotNull: an existing column made NOT NULL. Refused while any row holds NULL there (backfill
//! them first). PostgreSQL checks existing rows by a CHECK … IS NOT NULL NOT VALID and VALIDATE
//! (on 18 a NOT NULL NOT VALID constraint), so SET NOT NULL itself reads nothing; MariaDB rebuilds
//! the table online (INPLACE, LOCK=NONE) under strict sql_mode, restating the column as the server
//! renders it; SQLite ≥ 3.53 verifies every row under its write lock.

use super::{Op, Planning, started_plan};
use crate::error::{Error, Result};
use crate::plan::{FillPlan, OpPlan, Plan};
use crate::spec::{Dialect as SpecDialect, SetNotNull};

impl Op for SetNotNull {
    fn plan(&self, migration: &str, planning: &mut Planning) -> Result<Plan> {
        let dialect = planning.dialect()?;
        let table = planning.live_table(&self.table)?;
        let column = table.column(&self.column)?;
        if column.not_null {
            return Err(Error::Refused(format!(
                "`{}`.`{}` is already NOT NULL; remove the operation from the migration — nothing was changed",
                table.schema.name, column.name
            )));
        }
        // Rows holding NULL would make the change fail halfway: count them first (a read), when
        // the column exists already (one an earlier operation adds is filled by its own steps).
        let live = planning.engine.live_table(&self.table)?;
        if live.schema.column(&column.name).is_some() {
            let quoted = match dialect.spec_dialect() {
                SpecDialect::Mysql => crate::engine::mysql::quote(&column.name),
                _ => crate::engine::ansi::quote(&column.name),
            };
            let probe = OpPlan {
                kind: "set_not_null".into(),
                schema: table.namespace.clone(),
                table: table.schema.name.clone(),
                column: column.name.clone(),
                fill: Some(FillPlan {
                    expr: quoted,
                    from_backfill: false,
                    capture_once: false,
                    source_columns: vec![column.name.clone()],
                    key: table.schema.key.clone(),
                }),
                objects: Default::default(),
            };
            let nulls = planning.engine.count_null_fill(&probe)?;
            if nulls > 0 {
                return Err(Error::Refused(format!(
                    "{nulls} row(s) of `{}` hold NULL in `{}`, so it cannot be made NOT NULL; backfill them first (an UPDATE in batches, or an add_column with `backfill` in an earlier migration), then run this again — nothing was changed",
                    table.schema.name, column.name
                )));
            }
        }
        let fragments = dialect.set_not_null(&table, column)?;
        Ok(started_plan(
            migration,
            "set_not_null",
            &*dialect,
            &table,
            &column.name,
            fragments,
        ))
    }

    /// Old application versions may still write NULL there: in a migration that waits for
    /// `complete`, it goes on there.
    fn at_contract(&self) -> bool {
        true
    }
}
