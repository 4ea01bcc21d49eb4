//! MySQL 8 and MariaDB 10.3+. Everything zerodown knows about them lives here: which ALTERs run
//! INSTANT or online, the metadata-lock guard (DDL waits behind any open transaction that touched the
//! table, and its default wait is a day), triggers written for DDL that commits at once, and the
//! statements that act on the server. Proven on MariaDB 10.11; MySQL 8 paths are documented, not run.
//!
//! One file per concern: `catalog` reads, `probe` asks the server before acting, `guard` is the one
//! lock-guard retry loop, `ddl` runs steps, `state` keeps zerodown's row, `backfill` fills the column,
//! `checks` serve the contract, `driver` and `session` hold the driver lock, `reconnect` keeps the
//! main connection. This file keeps the struct and the thin [`Engine`] implementation.

mod backfill;
mod canary;
mod catalog;
mod checks;
mod connect;
mod ddl;
mod dialect;
mod driver;
mod error;
pub(crate) mod facts;
mod guard;
mod lint_catalog;
mod my_table;
mod mysql8;
mod probe;
mod reconnect;
mod replicas;
pub mod rules;
mod session;
mod state;

pub use connect::{SslMode, Target, Watchdog};
pub use rules::{Flavour, MyEnv, MyReference, build_plan};
pub use session::{lock_name as driver_lock_name, stale_after};

use super::{
    BatchOutcome, Defaults, DriverLock, Engine, Event, LockGuardSettings, MaxLoad, Nice, Settings,
    StateRow, Status,
};
use crate::error::{Error, Result};
use crate::plan::Statement;
use crate::plan::{OpPlan, Plan};
use crate::spec::AddColumn;
use error::message;
use mysql::Conn;
use mysql::prelude::Queryable;
use std::sync::Arc;
use std::time::Duration;

/// zerodown's state table, in the target database.
pub const STATE_TABLE: &str = "zerodown_migrations";

/// Quotes an identifier: backticks, doubled inside.
pub fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// Quotes each identifier and joins them with commas: a column list.
pub fn quote_list(idents: &[String]) -> String {
    idents
        .iter()
        .map(|i| quote(i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A string literal, safe whatever NO_BACKSLASH_ESCAPES says.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// FNV-1a, stable across Rust versions.
fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// An open MySQL/MariaDB database.
pub struct MySql {
    conn: Conn,
    target: Target,
    flavour: Flavour,
    version: (u32, u32, u32),
    run_id: String,
    guard: LockGuardSettings,
    allow_copy: bool,
    /// The last plan made in this process copies the table somewhere (checked in preflight).
    plan_copies: bool,
    /// The driver lock's session and heartbeat thread, while this run drives.
    driver: Option<Arc<session::Shared>>,
    /// Events gathered where no event callback is at hand (taking the lock, reconnecting, a state
    /// write's lock retries), handed over at the next one.
    pending: Vec<Event>,
    /// Session settings to apply again on a new connection after a reconnect (the backfill's).
    session_sql: Option<String>,
}

impl MySql {
    /// Connects and reads the server's flavour and version.
    pub fn open(url: &str) -> Result<MySql> {
        let target = Target::parse(url)?;
        let mut conn = target.connect()?;
        let version: String = conn
            .query_first("SELECT VERSION()")
            .map_err(|e| Error::db("reading the server version", message(&e)))?
            .unwrap_or_default();
        let flavour = if version.to_ascii_lowercase().contains("mariadb") {
            Flavour::MariaDb
        } else {
            Flavour::MySql
        };
        let nums: Vec<u32> = version
            .split(['.', '-'])
            .take(3)
            .map(|p| p.parse().unwrap_or(0))
            .collect();
        let version = (
            nums.first().copied().unwrap_or(0),
            nums.get(1).copied().unwrap_or(0),
            nums.get(2).copied().unwrap_or(0),
        );
        let run_id = format!(
            "zd-{:x}-{:06x}",
            std::process::id(),
            rand::random_range(0..0xff_ffffu32)
        );
        Ok(MySql {
            conn,
            target,
            flavour,
            version,
            run_id,
            guard: LockGuardSettings {
                timeout: Duration::from_secs(1),
                budget: Duration::from_secs(600),
            },
            allow_copy: false,
            plan_copies: false,
            driver: None,
            pending: Vec::new(),
            session_sql: None,
        })
    }

    /// This run's id, recorded in the state row.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The raw connection, for tests.
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

/// Each method hands over to the inherent method for its concern, in the file named for it.
impl Engine for MySql {
    fn canary(&mut self, plan: &OpPlan) -> Result<Option<Box<dyn super::Probe>>> {
        canary::open(self, plan)
    }

    fn label(&self) -> String {
        self.env(None, vec![]).label()
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            lock_timeout: Duration::from_secs(1),
            lock_budget: Duration::from_secs(600),
            batch_time: Duration::from_millis(20),
            quiet_period: Duration::from_secs(10),
            step_gap: Duration::ZERO,
            pause: Some(Duration::ZERO),
            nice: Nice::Ratio(0.0),
            max_load: MaxLoad::Auto,
        }
    }

    fn configure(&mut self, guard: LockGuardSettings) {
        self.guard = guard;
    }

    fn plan_add_column(&mut self, name: &str, add: &AddColumn) -> Result<Plan> {
        self.plan_add_column(name, add)
    }

    fn live_table(&mut self, table: &str) -> Result<super::dialect::LiveTable> {
        let (schema, _) = self.table_schema(table)?;
        let indexes = self.index_names(&schema.name)?;
        let my = self.my_table(&schema.name)?;
        Ok(super::dialect::LiveTable {
            namespace: None,
            schema,
            indexes,
            other_names: Vec::new(),
            my: Some(my),
        })
    }

    fn dialect(&mut self) -> Result<Box<dyn super::dialect::Dialect>> {
        Ok(Box::new(dialect::MyDialect {
            label: self.label(),
            mariadb: self.flavour == Flavour::MariaDb,
        }))
    }

    fn preflight(&mut self, settings: &Settings, emit: &mut dyn FnMut(Event)) -> Result<()> {
        self.check_preflight(settings, emit)
    }

    fn lock_driver(&mut self, migration: &str, wait: Duration) -> Result<Box<dyn DriverLock>> {
        self.take_driver_lock(migration, wait)
    }

    fn ensure_state_table(&mut self, _emit: &mut dyn FnMut(Event)) -> Result<()> {
        self.create_state_table()
    }

    fn states(&mut self) -> Result<Vec<StateRow>> {
        self.all_states()
    }

    fn insert_state(
        &mut self,
        name: &str,
        spec: &str,
        plan: &Plan,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        self.record_migration(name, spec, plan, emit)
    }

    fn set_status(&mut self, id: i64, status: Status) -> Result<()> {
        self.write_status(id, status)
    }

    fn request_cancel(&mut self, id: i64, on: bool) -> Result<()> {
        self.write_cancel_request(id, on)
    }

    fn add_timing(&mut self, id: i64, phase: &str, seconds: f64) -> Result<()> {
        self.write_timing(id, phase, seconds)
    }

    fn heartbeat(&mut self, id: i64) -> Result<()> {
        self.write_heartbeat(id)
    }

    fn running_sessions(&mut self) -> Result<Option<u32>> {
        self.count_running_sessions()
    }

    fn run_ddl(
        &mut self,
        id: i64,
        index: usize,
        sql: &[Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        self.run_step(id, index, sql, guard, emit)
    }

    fn mark_step_done(&mut self, id: i64, index: usize) -> Result<()> {
        self.write_step_done(id, index, None)
    }

    fn count_null_fill(&mut self, plan: &OpPlan) -> Result<i64> {
        self.count_null_fill_rows(plan)
    }

    fn begin_backfill(&mut self, id: i64, plan: &OpPlan) -> Result<StateRow> {
        self.fix_backfill_range(id, plan)
    }

    fn backfill_batch(
        &mut self,
        state: &StateRow,
        batch_size: i64,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<BatchOutcome> {
        self.run_batch(state, batch_size, guard, emit)
    }

    fn sweep_nulls(
        &mut self,
        state: &StateRow,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        self.sweep_null_rows(state, guard, emit)
    }

    fn old_writer_count(&mut self, key: &str) -> Result<i64> {
        self.read_old_writer_count(key)
    }

    fn count_orphans(&mut self, plan: &Plan, index: usize) -> Result<i64> {
        self.count_orphan_rows(plan, index)
    }

    fn finish(
        &mut self,
        state: &StateRow,
        index: usize,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        self.run_finish(state, index, guard, emit)
    }

    fn run_undo(
        &mut self,
        id: i64,
        index: usize,
        sql: &[Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        self.run_undo_step(id, index, sql, guard, emit)
    }

    fn mark_rolled_back(&mut self, id: i64) -> Result<()> {
        self.write_rolled_back(id)
    }

    fn replica_watch(
        &mut self,
        replicas: &[crate::url::DatabaseUrl],
    ) -> Result<Option<Box<dyn super::ReplicaWatch>>> {
        replicas::open(self, replicas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers_with_backticks() {
        assert_eq!(quote("a`b"), "`a``b`");
        assert_eq!(literal("it's \\"), "'it''s \\\\'");
    }
}
