//! The driver's own session: the advisory lock that lets one run drive at a time, a heartbeat that
//! shows the run is alive even during a long VALIDATE or index build, and the cleanup of what a dead
//! run left on the server (DESIGN.md §3): its sessions are ended only when its heartbeat is stale.

use super::{DRIVER_LOCK, STATE_SCHEMA, STATE_TABLE, Target, pg_message, state_table};
pub use crate::engine::driver_session::stale_after;
use crate::engine::driver_session::{self, DriverGuard, Driving};
use crate::error::{Error, Result};
use postgres::Client;
use rules::qualified;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::rules;

/// The session that holds the driver lock, shared by the engine (which retakes the lock after a
/// reconnect) and the heartbeat thread.
pub struct Shared {
    target: Target,
    run_id: String,
    client: Mutex<Option<Client>>,
    /// Another run took the lock while this one was disconnected: this run must stop.
    lost: AtomicBool,
    stop: AtomicBool,
}

fn slot(m: &Mutex<Option<Client>>) -> MutexGuard<'_, Option<Client>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A session holding the driver lock, as pg_locks and pg_stat_activity describe it.
pub struct Holder {
    pub pid: i32,
    pub app: String,
    pub addr: String,
}

impl Holder {
    pub fn describe(&self) -> String {
        format!("pid {} `{}` from {}", self.pid, self.app, self.addr)
    }

    /// The run id a zerodown session carries in `application_name` (`zerodown <run id> [driver]`).
    pub fn run_id(&self) -> Option<&str> {
        run_of(&self.app)
    }
}

fn run_of(app: &str) -> Option<&str> {
    let rest = app.strip_prefix("zerodown ")?;
    rest.split_whitespace()
        .next()
        .filter(|r| r.starts_with("zd-"))
}

fn try_lock(c: &mut Client) -> std::result::Result<bool, postgres::Error> {
    c.query_one(
        "SELECT pg_try_advisory_lock($1, $2)",
        &[&DRIVER_LOCK.0, &DRIVER_LOCK.1],
    )
    .map(|r| r.get(0))
}

/// The session holding the driver lock in this database, if any.
pub fn holder(c: &mut Client) -> Option<Holder> {
    c.query_opt(
        "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local')
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2 AND l.granted
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        &[&(DRIVER_LOCK.0 as u32), &(DRIVER_LOCK.1 as u32)],
    )
    .ok()
    .flatten()
    .map(|r| Holder {
        pid: r.get(0),
        app: r.get(1),
        addr: r.get(2),
    })
}

/// Seconds since run `run_id` last wrote a heartbeat into any state row; `None` when it wrote none.
pub fn heartbeat_age(c: &mut Client, run_id: &str) -> Result<Option<f64>> {
    let exists: bool = c
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&state_table()])
        .map_err(|e| Error::db("reading the catalog", pg_message(&e)))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    c.query_one(
        &format!(
            "SELECT extract(epoch FROM now() - max(heartbeat))::float8 FROM {} WHERE run_id = $1",
            qualified(STATE_SCHEMA, STATE_TABLE)
        ),
        &[&run_id],
    )
    .map(|r| r.get(0))
    .map_err(|e| Error::db("reading a run's heartbeat", pg_message(&e)))
}

/// Ends every session of run `run_id` in this database; returns a description of each.
pub fn end_run_sessions(c: &mut Client, run_id: &str) -> Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT pid, application_name, coalesce(state, '?'),
                    left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 80),
                    pg_terminate_backend(pid)
             FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND split_part(application_name, ' ', 1) = 'zerodown'
               AND split_part(application_name, ' ', 2) = $1",
            &[&run_id],
        )
        .map_err(|e| Error::db("ending a dead run's sessions", pg_message(&e)))?;
    Ok(rows
        .iter()
        .map(|r| {
            let ended: bool = r.get(4);
            format!(
                "pid {} `{}` ({}: {}){}",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, String>(3),
                if ended {
                    ""
                } else {
                    " — could not end it: grant this role pg_signal_backend"
                }
            )
        })
        .collect())
}

/// Ends the sessions of other zerodown runs in this database whose heartbeat is stale (a VALIDATE or
/// index build a killed run left running); returns one note per run.
pub fn end_dead_runs(c: &mut Client, own_run: &str) -> Result<Vec<String>> {
    let runs: Vec<String> = c
        .query(
            "SELECT DISTINCT split_part(application_name, ' ', 2) FROM pg_stat_activity
             WHERE datname = current_database() AND split_part(application_name, ' ', 1) = 'zerodown'
               AND split_part(application_name, ' ', 2) <> $1",
            &[&own_run],
        )
        .map_err(|e| Error::db("looking for a dead run's sessions", pg_message(&e)))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut notes = Vec::new();
    for run in runs.iter().filter(|r| r.starts_with("zd-")) {
        if let Some(age) = heartbeat_age(c, run)?
            && age > stale_after().as_secs_f64()
        {
            let ended = end_run_sessions(c, run)?;
            if !ended.is_empty() {
                notes.push(stale_note(run, age, &ended));
            }
        }
    }
    Ok(notes)
}

pub fn stale_note(run: &str, age: f64, ended: &[String]) -> String {
    format!(
        "ended {} session(s) left by run {run}, whose heartbeat is {age:.0}s old (a run is taken for dead after {}s): {}",
        ended.len(),
        stale_after().as_secs(),
        ended.join("; ")
    )
}

impl Shared {
    /// Takes the driver lock on `client` (already holding it) and starts the heartbeat thread.
    pub fn start(
        target: Target,
        run_id: String,
        client: Client,
    ) -> (Arc<Shared>, DriverGuard<Shared>) {
        let shared = Arc::new(Shared {
            target,
            run_id,
            client: Mutex::new(Some(client)),
            lost: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        (shared.clone(), driver_session::start(shared))
    }

    fn app(&self) -> String {
        format!("zerodown {} driver", self.run_id)
    }

    /// Whether another run took the driver lock while this one was disconnected.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Makes sure the driver session is alive and holds the lock: after a dropped connection it
    /// connects again and takes the lock again; Busy when another run took it meanwhile.
    pub fn ensure_lock(&self) -> Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if self.lost() {
            return Err(self.lost_error("another run"));
        }
        let mut slot = slot(&self.client);
        if let Some(c) = slot.as_mut()
            && !c.is_closed()
            && c.simple_query("SELECT 1").is_ok()
        {
            return Ok(());
        }
        *slot = None;
        let mut c = self.target.connect(&self.app())?;
        let got = try_lock(&mut c)
            .map_err(|e| Error::db("taking the driver lock again", pg_message(&e)))?;
        if !got {
            self.lost.store(true, Ordering::SeqCst);
            let who = holder(&mut c)
                .map(|h| h.describe())
                .unwrap_or_else(|| "another session".into());
            return Err(self.lost_error(&who));
        }
        // The heartbeat never waits long behind a batch holding the state row.
        let _ = c.batch_execute("SET lock_timeout = '1s'");
        *slot = Some(c);
        Ok(())
    }

    fn lost_error(&self, who: &str) -> Error {
        driver_session::lost_error(&self.run_id, who)
    }
}

impl Driving for Shared {
    fn stopping(&self) -> &AtomicBool {
        &self.stop
    }

    fn lost(&self) -> bool {
        Shared::lost(self)
    }

    fn write_heartbeat(&self) -> bool {
        let sql = format!(
            "UPDATE {} SET heartbeat = now() WHERE run_id = $1 AND status IN ('started', 'completing', 'rolling-back')",
            state_table()
        );
        match slot(&self.client).as_mut() {
            Some(c) => c
                .execute(&sql, &[&self.run_id])
                .map_or_else(|_| !c.is_closed(), |_| true),
            None => false,
        }
    }

    fn ensure_lock(&self) -> Result<()> {
        Shared::ensure_lock(self)
    }

    fn release(&self) {
        *slot(&self.client) = None;
    }
}
