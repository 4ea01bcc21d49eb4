//! The latency canary on MySQL/MariaDB: its own connection, reading the table's first row by its
//! primary key, as a point read does.

use super::error::message;
use super::{MySql, quote, quote_list};
use crate::engine::Probe;
use crate::error::{Error, Result};
use crate::plan::OpPlan;
use mysql::prelude::Queryable;
use mysql::{Conn, Statement};

/// Begins the canary's statement, so that the count of the application's running statements
/// (`--max-load`, from the process list) can leave it out: MySQL and MariaDB show no application
/// name by which to tell the canary's connection apart.
pub(super) const MARK: &str = "/* zerodown canary */";

struct MyProbe {
    conn: Conn,
    statement: Statement,
    table: String,
}

impl Probe for MyProbe {
    fn describe(&self) -> String {
        format!("a point read on `{}` by its key", self.table)
    }

    fn probe(&mut self) -> Result<()> {
        self.conn
            .exec_drop(&self.statement, ())
            .map_err(|e| Error::db("running the latency canary", message(&e)))
    }
}

/// Opens the canary's connection. Its waits for a metadata lock are bounded: a table locked for
/// seconds shows as a slow probe, never a stuck one.
pub fn open(my: &MySql, plan: &OpPlan) -> Result<Option<Box<dyn Probe>>> {
    let Some(fill) = &plan.fill else {
        return Ok(None);
    };
    let keys = quote_list(&fill.key);
    let mut conn = my.target.connect()?;
    let statement = conn
        .query_drop("SET SESSION lock_wait_timeout = 2, SESSION innodb_lock_wait_timeout = 2")
        .and_then(|()| {
            conn.prep(format!(
                "SELECT {MARK} {keys} FROM {} ORDER BY {keys} LIMIT 1",
                quote(&plan.table)
            ))
        })
        .map_err(|e| Error::db("preparing the latency canary", message(&e)))?;
    Ok(Some(Box::new(MyProbe {
        conn,
        statement,
        table: plan.table.clone(),
    })))
}
