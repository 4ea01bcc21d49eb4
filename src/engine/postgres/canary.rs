//! The latency canary on PostgreSQL: its own session (left out of `--max-load`'s count by its
//! application name), reading the table's first row by its primary key, as a point read does.

use super::Postgres;
use super::error::pg_message;
use super::rules::qualified;
use crate::engine::Probe;
use crate::engine::ansi::quote_list;
use crate::error::{Error, Result};
use crate::plan::OpPlan;
use postgres::{Client, Statement};

struct PgProbe {
    client: Client,
    statement: Statement,
    table: String,
}

impl Probe for PgProbe {
    fn describe(&self) -> String {
        format!("a point read on `{}` by its key", self.table)
    }

    fn probe(&mut self) -> Result<()> {
        self.client
            .query(&self.statement, &[])
            .map(drop)
            .map_err(|e| Error::db("running the latency canary", pg_message(&e)))
    }
}

/// Opens the canary's session. Its waits are bounded: a lock held for seconds shows as a slow probe,
/// never a stuck one.
pub fn open(pg: &Postgres, plan: &OpPlan) -> Result<Option<Box<dyn Probe>>> {
    let Some(fill) = &plan.fill else {
        return Ok(None);
    };
    let table = qualified(plan.schema.as_deref().unwrap_or("public"), &plan.table);
    let keys = quote_list(&fill.key);
    let mut client = pg
        .target
        .connect(&format!("zerodown canary {}", pg.run_id))?;
    let statement = client
        .batch_execute("SET lock_timeout = '2s'; SET statement_timeout = '5s'")
        .and_then(|()| {
            client.prepare(&format!(
                "SELECT {keys} FROM {table} ORDER BY {keys} LIMIT 1"
            ))
        })
        .map_err(|e| Error::db("preparing the latency canary", pg_message(&e)))?;
    Ok(Some(Box::new(PgProbe {
        client,
        statement,
        table: plan.table.clone(),
    })))
}
