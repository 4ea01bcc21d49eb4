//! PostgreSQL 13–18. Everything zerodown knows about PostgreSQL lives here: which ALTERs are
//! catalog-only, which lock each statement takes, how the dual-write trigger must be written to run
//! for any application role, and the statements that act on the server under the lock guard.
//!
//! By concern: `rules` plans; `catalog` and `probe` read the server; `guard` is the lock guard;
//! `ddl` runs steps; `state` is the state store; `backfill` fills the column; `driver` holds the
//! driver lock and reconnects; `error` puts the server's errors in words.

mod backfill;
mod canary;
mod catalog;
mod connect;
mod ddl;
mod dialect;
mod driver;
mod error;
pub(crate) mod facts;
mod guard;
mod lint_catalog;
mod probe;
mod replicas;
pub mod rules;
mod session;
mod state;

pub use catalog::called_functions;
pub use connect::{SslMode, Target};
pub use rules::{PgEnv, PgReference, build_plan};

use super::{
    BatchOutcome, Defaults, DriverLock, Engine, Event, LockGuardSettings, MaxLoad, Nice, Settings,
    StateRow, Status,
};
use crate::error::{Error, Result};
use crate::plan::Statement;
use crate::plan::{OpPlan, Plan};
use crate::spec::AddColumn;
use error::pg_message;
use postgres::Client;
use rules::MIN_MAJOR;
use state::state_table;
use std::sync::Arc;
use std::time::Duration;

/// The schema of zerodown's state, functions and counters.
pub const STATE_SCHEMA: &str = "zerodown";
/// The state table, in [`STATE_SCHEMA`].
pub const STATE_TABLE: &str = "migrations";
/// Advisory-lock key (two int4) of the one driver per database: "zd", 1.
const DRIVER_LOCK: (i32, i32) = (0x7a64, 1);
/// How long an online index build may take, by default.
const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(3600);

pub use crate::engine::ansi::{literal, quote, quote_list};

/// An open PostgreSQL database.
pub struct Postgres {
    client: Client,
    target: Target,
    version_num: i32,
    version: String,
    run_id: String,
    guard: LockGuardSettings,
    build_timeout: Duration,
    /// Key column types of the migration being backfilled (id, types).
    key_types: Option<(i64, Vec<String>)>,
    /// The driver lock's session, while this run drives.
    driver: Option<Arc<session::Shared>>,
    /// Notes for the user gathered where no event callback is at hand (taking the lock, reconnecting).
    notes: Vec<String>,
}

impl Postgres {
    /// Connects, checks the server's version, and tags the session with a run id.
    pub fn open(url: &str) -> Result<Postgres> {
        let target = Target::parse(url)?;
        let run_id = format!(
            "zd-{:x}-{:06x}",
            std::process::id(),
            rand::random_range(0..0xff_ffffu32)
        );
        let mut client = target.connect(&format!("zerodown {run_id}"))?;
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num')::int4, current_setting('server_version')",
                &[],
            )
            .map_err(|e| Error::db("reading the server version", pg_message(&e)))?;
        let version_num: i32 = row.get(0);
        let version: String = row.get(1);
        let version = version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        if version_num / 10000 < MIN_MAJOR {
            return Err(Error::Refused(format!(
                "PostgreSQL {version} at {} is not supported: zerodown drives PostgreSQL {MIN_MAJOR} to 18; upgrade the server",
                target.host
            )));
        }
        Self::setup_session(&mut client, version_num)?;
        Ok(Postgres {
            client,
            target,
            version_num,
            version,
            run_id,
            guard: LockGuardSettings {
                timeout: Duration::from_millis(200),
                budget: Duration::from_secs(600),
            },
            build_timeout: DEFAULT_BUILD_TIMEOUT,
            key_types: None,
            driver: None,
            notes: Vec::new(),
        })
    }

    fn setup_session(client: &mut Client, version_num: i32) -> Result<()> {
        if version_num >= 140000 {
            // The server notices a vanished client (kill -9) during a long VALIDATE or query.
            client
                .batch_execute("SET client_connection_check_interval = '1s'")
                .map_err(|e| {
                    Error::db("setting client_connection_check_interval", pg_message(&e))
                })?;
        }
        Ok(())
    }

    /// The raw connection, for tests.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// This run's id, carried in `application_name` as `zerodown <run id>`.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// The trait's methods live with their concern (state.rs, ddl.rs, backfill.rs, …); these delegate.
impl Engine for Postgres {
    fn canary(&mut self, plan: &OpPlan) -> Result<Option<Box<dyn super::Probe>>> {
        canary::open(self, plan)
    }

    fn label(&self) -> String {
        format!("PostgreSQL {}", self.version)
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            lock_timeout: Duration::from_millis(200),
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
        Postgres::plan_add_column(self, name, add)
    }

    fn live_table(&mut self, table: &str) -> Result<super::dialect::LiveTable> {
        let (schema, namespace, oid) = self.table_schema(table)?;
        let (indexes, other_names) = self.index_names(oid, &namespace)?;
        Ok(super::dialect::LiveTable {
            namespace: Some(namespace),
            schema,
            indexes,
            other_names,
            my: None,
        })
    }

    fn dialect(&mut self) -> Result<Box<dyn super::dialect::Dialect>> {
        Ok(Box::new(dialect::PgDialect {
            version_num: self.version_num,
        }))
    }

    fn preflight(&mut self, settings: &Settings, emit: &mut dyn FnMut(Event)) -> Result<()> {
        self.flush_notes(emit);
        self.build_timeout = settings.build_timeout.unwrap_or(DEFAULT_BUILD_TIMEOUT);
        Ok(())
    }

    fn lock_driver(&mut self, migration: &str, wait: Duration) -> Result<Box<dyn DriverLock>> {
        Postgres::lock_driver(self, migration, wait)
    }

    fn ensure_state_table(&mut self, emit: &mut dyn FnMut(Event)) -> Result<()> {
        Postgres::ensure_state_table(self, emit)
    }

    fn states(&mut self) -> Result<Vec<StateRow>> {
        Postgres::states(self)
    }

    fn insert_state(
        &mut self,
        name: &str,
        spec: &str,
        plan: &Plan,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        Postgres::insert_state(self, name, spec, plan, emit)
    }

    fn set_status(&mut self, id: i64, status: Status) -> Result<()> {
        Postgres::set_status(self, id, status)
    }

    fn request_cancel(&mut self, id: i64, on: bool) -> Result<()> {
        Postgres::request_cancel(self, id, on)
    }

    fn add_timing(&mut self, id: i64, phase: &str, seconds: f64) -> Result<()> {
        Postgres::add_timing(self, id, phase, seconds)
    }

    fn heartbeat(&mut self, id: i64) -> Result<()> {
        Postgres::heartbeat(self, id)
    }

    fn running_sessions(&mut self) -> Result<Option<u32>> {
        Postgres::running_sessions(self)
    }

    fn run_ddl(
        &mut self,
        id: i64,
        index: usize,
        sql: &[Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        Postgres::run_ddl(self, id, index, sql, guard, emit)
    }

    fn mark_step_done(&mut self, id: i64, index: usize) -> Result<()> {
        Postgres::mark_step_done(self, id, index)
    }

    fn count_null_fill(&mut self, plan: &OpPlan) -> Result<i64> {
        Postgres::count_null_fill(self, plan)
    }

    fn begin_backfill(&mut self, id: i64, plan: &OpPlan) -> Result<StateRow> {
        Postgres::begin_backfill(self, id, plan)
    }

    fn backfill_batch(
        &mut self,
        state: &StateRow,
        batch_size: i64,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<BatchOutcome> {
        Postgres::backfill_batch(self, state, batch_size, guard, emit)
    }

    fn sweep_nulls(
        &mut self,
        state: &StateRow,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        Postgres::sweep_nulls(self, state, guard, emit)
    }

    fn old_writer_count(&mut self, key: &str) -> Result<i64> {
        Postgres::old_writer_count(self, key)
    }

    /// PostgreSQL plans check references with `VALIDATE CONSTRAINT`; no separate count is needed.
    fn count_orphans(&mut self, _plan: &Plan, _index: usize) -> Result<i64> {
        Ok(0)
    }

    fn finish(
        &mut self,
        state: &StateRow,
        index: usize,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        Postgres::finish(self, state, index, guard, emit)
    }

    fn run_undo(
        &mut self,
        id: i64,
        index: usize,
        sql: &[Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        Postgres::run_undo(self, id, index, sql, guard, emit)
    }

    fn mark_rolled_back(&mut self, id: i64) -> Result<()> {
        Postgres::mark_rolled_back(self, id)
    }

    fn replica_watch(
        &mut self,
        replicas: &[crate::url::DatabaseUrl],
    ) -> Result<Option<Box<dyn super::ReplicaWatch>>> {
        replicas::open(self, replicas)
    }
}
