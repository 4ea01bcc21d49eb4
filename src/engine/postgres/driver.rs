//! The driving run's connection: the driver lock (one driver per database, a dead run's sessions
//! taken over) and connecting again after a dropped connection.

use super::error::is_disconnect;
use super::{DRIVER_LOCK, Postgres, session};
use crate::engine::lock_guard::jittered_backoff;
use crate::engine::{DriverLock, Event};
use crate::error::{Error, Result};
use postgres::Client;
use std::time::{Duration, Instant};

/// How long zerodown keeps trying to reconnect after losing its connection (a server restart).
const RECONNECT_BUDGET: Duration = Duration::from_secs(120);

impl Postgres {
    /// Hands the notes gathered without a callback to the user.
    pub(super) fn flush_notes(&mut self, emit: &mut dyn FnMut(Event)) {
        for n in self.notes.drain(..) {
            emit(Event::Note(n));
        }
    }

    /// Connects again after a dropped connection, with jittered backoff within [`RECONNECT_BUDGET`],
    /// and takes the driver lock again when this run drives (stopping if another run holds it now).
    pub(super) fn reconnect(&mut self) -> Result<()> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.target.connect(&format!("zerodown {}", self.run_id)) {
                Ok(mut c) => match Self::setup_session(&mut c, self.version_num) {
                    Ok(()) => {
                        self.client = c;
                        break;
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if started.elapsed() > RECONNECT_BUDGET {
                return Err(Error::Connect(format!(
                    "lost the connection to {} and could not connect again within {}: {err}; the migration's state is saved — run the same command again when the server is back",
                    self.target.label,
                    humantime::format_duration(RECONNECT_BUDGET)
                )));
            }
            std::thread::sleep(jittered_backoff(attempt));
        }
        if let Some(d) = &self.driver {
            d.ensure_lock()?;
        }
        tracing::info!("reconnected after {:.1?}", started.elapsed());
        self.notes.push(format!(
            "lost the connection to {}; connected again after {:.1?}{}, and continuing from the saved state",
            self.target.label,
            started.elapsed(),
            if self.driver.is_some() {
                " and took the driver lock again"
            } else {
                ""
            }
        ));
        Ok(())
    }

    /// Runs one read outside the lock guard, and once more after connecting again when the
    /// connection dropped under it.
    pub(super) fn read_reconnecting<T>(
        &mut self,
        context: &str,
        read: impl Fn(&mut Client) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        match read(&mut self.client) {
            Err(e) if is_disconnect(&self.client, &e) => {
                self.reconnect()?;
                read(&mut self.client)
            }
            r => r,
        }
        .map_err(|e| self.db_err(context, &e))
    }

    /// Fails when another run took the driver lock while this one was disconnected.
    pub(super) fn check_driver(&self) -> Result<()> {
        match &self.driver {
            Some(d) if d.lost() => d.ensure_lock(),
            _ => Ok(()),
        }
    }

    /// Takes the advisory lock from its own session, which also writes this run's heartbeat. A holder
    /// whose run's heartbeat is stale is a dead run's leftover: its sessions are ended (and named in a
    /// note); a live holder gets a Busy error naming it.
    pub(super) fn lock_driver(
        &mut self,
        _migration: &str,
        wait: Duration,
    ) -> Result<Box<dyn DriverLock>> {
        let mut client = self
            .target
            .connect(&format!("zerodown {} driver", self.run_id))?;
        let mut deadline = Instant::now() + wait;
        loop {
            let got: bool = client
                .query_one(
                    "SELECT pg_try_advisory_lock($1, $2)",
                    &[&DRIVER_LOCK.0, &DRIVER_LOCK.1],
                )
                .map_err(|e| self.db_err("taking the driver lock", &e))?
                .get(0);
            if got {
                break;
            }
            let holder = session::holder(&mut client);
            let mut age = None;
            if let Some(run) = holder.as_ref().and_then(|h| h.run_id()) {
                age = session::heartbeat_age(&mut client, run)?;
                if let Some(a) = age
                    && a > session::stale_after().as_secs_f64()
                    && run != self.run_id
                {
                    let ended = session::end_run_sessions(&mut client, run)?;
                    tracing::info!("{}", session::stale_note(run, a, &ended));
                    self.notes.push(session::stale_note(run, a, &ended));
                    // Give the ended session a moment to let go of the lock.
                    deadline = deadline.max(Instant::now() + Duration::from_secs(5));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            if Instant::now() >= deadline {
                let who = holder
                    .map(|h| h.describe())
                    .unwrap_or_else(|| "another session".into());
                let beat = match age {
                    Some(a) => format!(", heartbeat {a:.1}s ago"),
                    None => String::new(),
                };
                return Err(Error::Busy(format!(
                    "another zerodown ({who}{beat}) is driving a migration on {}; wait for it to finish, or stop it with Ctrl-C (a killed run's sessions are ended by the next run once its heartbeat is older than {}s)",
                    self.target.label,
                    session::stale_after().as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = client.batch_execute("SET lock_timeout = '1s'");
        // A VALIDATE or index build a killed run left running would block this run's steps.
        let notes = session::end_dead_runs(&mut client, &self.run_id)?;
        for n in notes {
            tracing::info!("{n}");
            self.notes.push(n);
        }
        let (shared, guard) =
            session::Shared::start(self.target.clone(), self.run_id.clone(), client);
        self.driver = Some(shared);
        Ok(Box::new(guard))
    }
}
