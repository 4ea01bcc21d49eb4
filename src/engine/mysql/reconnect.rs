//! Keeping the main connection: reconnecting after a KILL or a server restart, and the driver-lock
//! check and the events gathered where no callback is at hand.

use super::error::message;
use super::{MySql, session};
use crate::engine::Event;
use crate::engine::lock_guard::jittered_backoff;
use crate::error::{Error, Result};
use mysql::Conn;
use mysql::prelude::Queryable;
use std::time::{Duration, Instant};

/// How long zerodown keeps trying to reconnect after losing its connection (a server restart).
const RECONNECT_BUDGET: Duration = Duration::from_secs(120);

/// How many times one operation reconnects before giving up (a server restarting in a loop).
const MAX_RECONNECTS: u32 = 10;

impl MySql {
    /// The connection ids to record in the state row for this run.
    pub(super) fn run_connections(&self) -> Vec<u32> {
        match &self.driver {
            Some(d) => d.ids(),
            None => vec![self.conn.connection_id()],
        }
    }

    /// The state row's record of this run's connections (`boot:id,id`), for a later run to find them.
    pub(super) fn connections_record(&mut self) -> Result<String> {
        let boot = self.with_conn("reading the server's start time", session::server_boot)?;
        Ok(session::connections_record(boot, &self.run_connections()))
    }

    /// Connection id of our driver-lock session, left out when naming blockers.
    pub(super) fn driver_conn(&self) -> Option<u32> {
        self.driver.as_ref().map(|d| d.driver_id())
    }

    /// Hands over the events gathered where no callback was at hand.
    pub(super) fn flush_pending(&mut self, emit: &mut dyn FnMut(Event)) {
        for e in self.pending.drain(..) {
            emit(e);
        }
    }

    /// Connects again after a dropped connection (a KILL, a server restart), with jittered backoff
    /// within [`RECONNECT_BUDGET`]; applies the session settings again, and, when this run drives,
    /// makes sure it still holds the driver lock (stopping if another run took it meanwhile).
    pub(super) fn reconnect(&mut self) -> Result<()> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self
                .target
                .connect()
                .and_then(|mut c| match &self.session_sql {
                    Some(sql) => c
                        .query_drop(sql)
                        .map(|_| c)
                        .map_err(|e| self.db_err("setting up the session again", &e)),
                    None => Ok(c),
                });
            match outcome {
                Ok(c) => {
                    self.conn = c;
                    break;
                }
                Err(err) if started.elapsed() > RECONNECT_BUDGET => {
                    return Err(Error::Connect(format!(
                        "lost the connection to {} and could not connect again within {}: {err}; the migration's state is saved — run the same command again when the server is back",
                        self.target.label,
                        humantime::format_duration(RECONNECT_BUDGET)
                    )));
                }
                Err(_) => std::thread::sleep(jittered_backoff(attempt)),
            }
        }
        if let Some(d) = &self.driver {
            d.set_main_id(self.conn.connection_id());
            d.ensure_lock()?;
        }
        tracing::info!("reconnected after {:.1?}", started.elapsed());
        self.pending.push(Event::Note(format!(
            "lost the connection to {}; connected again after {:.1?}{}, and continuing from the saved state",
            self.target.label,
            started.elapsed(),
            if self.driver.is_some() {
                " and took the driver lock again"
            } else {
                ""
            }
        )));
        Ok(())
    }

    /// Fails when another run took the driver lock while this one was disconnected. The driver
    /// session is looked at (at most once a second) before each batch and statement, not only by the
    /// heartbeat every few seconds: a KILL of that session alone must not leave this run driving for
    /// seconds after another run took the lock.
    pub(super) fn check_driver(&self) -> Result<()> {
        match &self.driver {
            Some(d) if d.lost() || d.due_for_check() => d.ensure_lock(),
            _ => Ok(()),
        }
    }

    /// Runs `f` on the connection, reconnecting and running it again when the connection was lost:
    /// for reads and idempotent writes only.
    pub(super) fn with_conn<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut Conn) -> std::result::Result<T, mysql::Error>,
    ) -> Result<T> {
        let mut reconnects = 0;
        loop {
            match f(&mut self.conn) {
                Ok(v) => return Ok(v),
                Err(e) if self.recover(what, &e, &mut reconnects)? => {}
                Err(e) => return Err(self.db_err(what, &e)),
            }
        }
    }

    /// After a failed `what`: when `e` means the connection is gone (or a ping says so) and fewer than
    /// [`MAX_RECONNECTS`] reconnects were spent on it, connects again and says so with `true`, for the
    /// caller to run `what` again; `false` when the error stands.
    pub(super) fn recover(
        &mut self,
        what: &str,
        e: &mysql::Error,
        reconnects: &mut u32,
    ) -> Result<bool> {
        if *reconnects >= MAX_RECONNECTS
            || !(session::is_disconnect(e) || self.conn.ping().is_err())
        {
            return Ok(false);
        }
        tracing::info!(
            "{what}: connection lost: {}",
            self.target.scrub(&message(e))
        );
        *reconnects += 1;
        self.reconnect()?;
        Ok(true)
    }
}
