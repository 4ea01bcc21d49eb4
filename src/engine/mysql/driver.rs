//! Taking the driver lock: one run drives a migration at a time, and a dead run's leftovers are ended
//! before this one claims the migration's row.

use super::{MySql, STATE_TABLE, quote, session};
use crate::engine::{DriverLock, Event};
use crate::error::{Error, Result};
use mysql::prelude::Queryable;
use std::time::{Duration, Instant};

impl MySql {
    /// Takes the migration's named lock from its own session, which also beats this run's heartbeat.
    /// A holder whose run's heartbeat is stale is a dead run's leftover: its recorded connections are
    /// killed (and named in a note); a live holder gets a Busy error naming it. Once the lock is held,
    /// work that dead runs left running (an INPLACE build, a backfill UPDATE) is ended the same way.
    pub(super) fn take_driver_lock(
        &mut self,
        migration: &str,
        wait: Duration,
    ) -> Result<Box<dyn DriverLock>> {
        let mut conn = self.target.connect()?;
        let name = session::lock_name(&self.target.database, migration);
        let mut deadline = Instant::now() + wait;
        let mut killed_for = None;
        loop {
            let got: Option<Option<i64>> = conn
                .exec_first("SELECT GET_LOCK(?, 0)", (&name,))
                .map_err(|e| self.db_err("taking the driver lock", &e))?;
            if got.flatten() == Some(1) {
                break;
            }
            let holder: Option<u64> = conn
                .exec_first::<Option<u64>, _, _>("SELECT IS_USED_LOCK(?)", (&name,))
                .ok()
                .flatten()
                .flatten();
            let row = session::running_rows(&mut conn, &self.run_id)
                .map_err(|e| self.db_err("reading the driving run's heartbeat", &e))?
                .into_iter()
                .find(|r| r.name == migration);
            if let Some(r) = &row
                && r.is_stale()
                && killed_for.as_deref() != Some(r.run_id.as_str())
            {
                let ended = session::kill_connections(&mut conn, r.connections.as_deref())
                    .map_err(|e| self.db_err("ending a dead run's connections", &e))?;
                let note = session::stale_note(&r.run_id, &r.name, r.age.unwrap_or(0.0), &ended);
                tracing::info!("{note}");
                self.pending.push(Event::Note(note));
                killed_for = Some(r.run_id.clone());
                // Give the killed session a moment to let go of the lock.
                deadline = deadline.max(Instant::now() + Duration::from_secs(5));
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            if Instant::now() >= deadline {
                let who = holder
                    .map(|id| format!("connection {id}"))
                    .unwrap_or_else(|| "another session".into());
                let run = match &row {
                    Some(r) => format!(
                        ", run {}{}",
                        r.run_id,
                        r.age
                            .map(|a| format!(", heartbeat {a:.1}s ago"))
                            .unwrap_or_default()
                    ),
                    None => String::new(),
                };
                return Err(Error::Busy(format!(
                    "another zerodown ({who}{run}) is driving `{migration}` on {}; wait for it to finish, or stop it with Ctrl-C (a killed run's connections are ended by the next run once its heartbeat is older than {}s)",
                    self.target.label,
                    session::stale_after().as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = conn.query_drop("SET SESSION innodb_lock_wait_timeout = 1");
        // Read what dead runs left before claiming our row (the claim overwrites their record), and
        // claim it right after ending them, so that a third run never finds this live run behind a
        // stale heartbeat for longer than that.
        let (dead, live): (Vec<session::RunRow>, Vec<session::RunRow>) =
            session::running_rows(&mut conn, &self.run_id)
                .map_err(|e| self.db_err("looking for dead runs", &e))?
                .into_iter()
                .partition(session::RunRow::is_stale);
        // A run killed a moment ago (heartbeat still fresh) may have left a build running.
        let mut inherited = Vec::new();
        for r in live.iter().filter(|r| r.name == migration) {
            inherited.extend(
                session::busy_connections(&mut conn, r.connections.as_deref())
                    .map_err(|e| self.db_err("looking for a previous run's work", &e))?,
            );
        }
        let (shared, guard) = session::Shared::start(
            self.target.clone(),
            self.run_id.clone(),
            name,
            conn,
            self.conn.connection_id(),
        );
        shared.inherit(inherited);
        self.driver = Some(shared);
        // Dead runs first: a hung one may hold the state row in an open batch, which the claim
        // below would wait behind.
        self.end_dead_runs(dead)?;
        if self.state_exists()? {
            self.upgrade_state_table()?;
            let connections = self.connections_record()?;
            self.state_exec(
                &format!(
                    "UPDATE {} SET run_id = ?, heartbeat = UTC_TIMESTAMP(3), connections = ? WHERE name = ? AND status IN ({})",
                    quote(STATE_TABLE),
                    session::RUNNING
                ),
                vec![
                    self.run_id.clone().into(),
                    connections.into(),
                    migration.into(),
                ],
                None,
            )?;
        }
        Ok(Box::new(guard))
    }

    /// Ends the connections dead runs recorded (their heartbeat is stale), saying so in a note.
    pub(super) fn end_dead_runs(&mut self, runs: Vec<session::RunRow>) -> Result<()> {
        for r in runs {
            let ended = self.with_conn("ending a dead run's connections", |c| {
                session::kill_connections(c, r.connections.as_deref())
            })?;
            if !ended.is_empty() {
                let note = session::stale_note(&r.run_id, &r.name, r.age.unwrap_or(0.0), &ended);
                tracing::info!("{note}");
                self.pending.push(Event::Note(note));
            }
        }
        Ok(())
    }
}
