//! The latency canary on SQLite: its own connection, taking the write lock and letting it go
//! (`BEGIN IMMEDIATE; ROLLBACK`, which writes nothing). In WAL mode a read never waits, so what the
//! application feels is its writers' wait for the one write lock, which a backfill batch holds.

use super::{Sqlite, sqlite_err};
use crate::engine::Probe;
use crate::error::{Error, Result};
use crate::plan::OpPlan;
use rusqlite::{Connection, OpenFlags};
use std::time::Duration;

/// The canary's busy handler sleeps this long between tries: fine enough to time a wait to the
/// millisecond (SQLite's own handler sleeps up to 25 ms at a time), and it gives up after
/// [`GIVE_UP`] tries, so a lock held for seconds shows as a slow probe, never a stuck one.
const POLL: Duration = Duration::from_millis(1);
const GIVE_UP: i32 = 2000;

fn poll(tries: i32) -> bool {
    std::thread::sleep(POLL);
    tries < GIVE_UP
}

struct LiteProbe {
    conn: Connection,
}

impl Probe for LiteProbe {
    fn describe(&self) -> String {
        "a write lock taken and let go".into()
    }

    fn waits_for_batches(&self) -> bool {
        true
    }

    fn probe(&mut self) -> Result<()> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK")
            .map_err(|e| {
                // A failed BEGIN leaves no transaction; a failed ROLLBACK cannot happen without one.
                Error::db("running the latency canary", e.to_string())
            })
    }
}

pub fn open(lite: &Sqlite, plan: &OpPlan) -> Result<Option<Box<dyn Probe>>> {
    if plan.fill.is_none() {
        return Ok(None);
    }
    let mut conn = Connection::open_with_flags(
        &lite.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| sqlite_err("opening the latency canary's connection", e))?;
    conn.busy_handler(Some(poll))
        .map_err(|e| sqlite_err("setting the latency canary's busy handler", e))?;
    Ok(Some(Box::new(LiteProbe { conn })))
}
