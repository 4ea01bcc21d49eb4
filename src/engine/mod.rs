//! Engines: one file per database engine behind one interface. An engine answers questions (version,
//! schema), knows its rules (which DDL is catalog-only, what it locks) and runs statements; it never drives
//! phases — `run` does that from a [`Plan`](crate::plan::Plan).

pub mod ansi;
pub mod dialect;
pub(crate) mod driver_session;
pub mod lint_catalog;
pub(crate) mod lock_guard;
pub mod mysql;
pub mod postgres;
pub mod replicas;
pub mod sql_shape;
pub mod sqlite;
pub(crate) mod state_codec;

use crate::error::Result;
use crate::plan::{OpPlan, Plan, Statement, Step};
pub use crate::run::latency::MaxLatency;
pub use crate::run::throttle::{MaxLoad, Nice};
use crate::spec::AddColumn;
pub use replicas::{DEFAULT_MAX_REPLICA_LAG, MaxReplicaLag, ReplicaLag, ReplicaWatch};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A column as the live catalog describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// 1-based position in the primary key, 0 when not part of it.
    pub pk: u32,
}

/// A user trigger on the table (not zerodown's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub name: String,
    /// "INSERT", "UPDATE" or "DELETE".
    pub event: String,
}

/// What planning needs to know about the target table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<Column>,
    /// Columns that order rows for keyset batches (SQLite: a rowid alias, or the WITHOUT ROWID primary key).
    pub key: Vec<String>,
    /// SQLite STRICT table: only INT, INTEGER, REAL, TEXT, BLOB, ANY are column types.
    pub strict: bool,
    pub triggers: Vec<Trigger>,
}

impl TableSchema {
    /// Names of the user triggers that fire on UPDATE (the backfill's UPDATEs fire them).
    pub fn update_triggers(&self) -> Vec<&str> {
        self.triggers
            .iter()
            .filter(|t| t.event == "UPDATE")
            .map(|t| t.name.as_str())
            .collect()
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// A key value of the backfill cursor, as stored in the state row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyValue {
    Int(i64),
    Real(f64),
    Text(String),
    Blob { blob: String },
}

/// Tuning a run; `None` means the engine's default (DESIGN.md §2's table).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub lock_timeout: Option<Duration>,
    pub lock_budget: Option<Duration>,
    pub batch_time: Option<Duration>,
    /// `None`: adaptive where the engine supports it.
    pub pause: Option<Duration>,
    /// Rest after each batch as a multiple of the batch's own time, on top of `pause`; or adapted
    /// to the server's load.
    pub nice: Option<Nice>,
    /// Server engines: pause the backfill while more other sessions run statements than this.
    pub max_load: Option<MaxLoad>,
    /// Rest the backfill while the latency canary's recent p95 is over this; `None`: `auto`.
    pub max_latency: Option<MaxLatency>,
    /// Rest the backfill while a replica is further behind than this; `None`: 1s.
    pub max_replica_lag: Option<MaxReplicaLag>,
    /// `--replica`: replicas the primary cannot show (MySQL/MariaDB's; PostgreSQL's cascading ones).
    pub replicas: Vec<crate::url::DatabaseUrl>,
    pub quiet_period: Option<Duration>,
    /// PostgreSQL: the timeout of one online index build (`CREATE INDEX CONCURRENTLY`), which waits
    /// for every older transaction and must not run under the short lock timeout.
    pub build_timeout: Option<Duration>,
    pub force: bool,
    /// SQLite: switch the file to WAL before starting (a lasting change).
    pub wal: bool,
    /// SQLite: run in rollback-journal mode, accepting that readers block on each batch commit.
    pub allow_rollback_journal: bool,
    /// MySQL/MariaDB: accept a step that copies the whole table while writes wait (ADD CHECK).
    pub allow_copy: bool,
}

/// The defaults an engine fills into [`Settings`].
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub lock_timeout: Duration,
    pub lock_budget: Duration,
    pub batch_time: Duration,
    pub quiet_period: Duration,
    /// Rest between two steps that each hold a write lock, so waiting application writers get in.
    pub step_gap: Duration,
    /// Rest between backfill batches; `None`: adaptive (SQLite, whose writers poll for its one lock).
    pub pause: Option<Duration>,
    pub nice: Nice,
    pub max_load: MaxLoad,
}

/// A migration's row in the engine's state table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateRow {
    pub id: i64,
    pub name: String,
    /// Canonical TOML of the migration's operation.
    pub spec: String,
    pub plan: Plan,
    pub status: Status,
    /// Index of the next plan step to run.
    pub next_step: usize,
    pub cursor: Option<Vec<KeyValue>>,
    pub hi: Option<Vec<KeyValue>>,
    /// A value evaluated once at expand (a time default), bound into every backfill batch.
    pub captured: Option<KeyValue>,
    pub rows_done: i64,
    pub rows_total: Option<i64>,
    pub cancel_requested: bool,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    pub heartbeat: Option<String>,
    pub run_id: Option<String>,
    /// Seconds spent per phase label.
    pub timings: std::collections::BTreeMap<String, f64>,
}

/// Where a migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// `start` is running or was interrupted before the backfill finished.
    Started,
    /// The backfill is done; waiting for `complete`.
    Backfilled,
    /// `complete` is running or was interrupted.
    Completing,
    Completed,
    /// `rollback` is running or was interrupted.
    RollingBack,
    RolledBack,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Started => "started",
            Status::Backfilled => "backfilled",
            Status::Completing => "completing",
            Status::Completed => "completed",
            Status::RollingBack => "rolling-back",
            Status::RolledBack => "rolled-back",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Started,
            Status::Backfilled,
            Status::Completing,
            Status::Completed,
            Status::RollingBack,
            Status::RolledBack,
        ]
        .into_iter()
        .find(|st| st.label() == s)
    }

    /// A migration in this status still holds its name.
    pub fn is_active(self) -> bool {
        self != Status::RolledBack
    }
}

/// One batch of the backfill, as the engine ran it.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    /// Keys passed over (rows examined); 0 means the range is exhausted.
    pub rows_scanned: i64,
    pub rows_updated: i64,
    pub new_cursor: Option<Vec<KeyValue>>,
    /// How long the batch held its lock (not counting the wait for it).
    pub elapsed: Duration,
    /// Another connection committed since the previous batch (SQLite: PRAGMA data_version moved).
    pub others_writing: bool,
    pub cancel_requested: bool,
}

/// Something worth telling the user while a command runs; `main.rs` decides how to show it.
#[derive(Debug, Clone)]
pub enum Event {
    StepStarted {
        index: usize,
        total: usize,
        step: Step,
    },
    StepDone {
        index: usize,
        elapsed: Duration,
    },
    /// A lock attempt timed out; zerodown backs off and tries again.
    LockRetry {
        attempt: u32,
        waited: Duration,
        blocker: String,
    },
    Progress {
        done: i64,
        total: i64,
        rows_per_sec: f64,
        eta: Option<Duration>,
        batch_size: i64,
    },
    /// The backfill rests because more other sessions are running statements than `limit` allows;
    /// `rested` is set when it goes on.
    Throttle {
        running: f64,
        limit: f64,
        rested: Option<Duration>,
    },
    /// The latency guard changed the backfill's rest ratio: the canary's recent p95 was `latency`
    /// against `target`; `rested` is the time rested for latency so far.
    LatencyRest {
        latency: Duration,
        target: Duration,
        ratio: f64,
        rested: Duration,
    },
    Note(String),
}

/// One statement timed from its own connection: the latency guard's canary (`run::canary`).
pub trait Probe: Send {
    /// What it runs, for the user's note.
    fn describe(&self) -> String;
    /// Runs the statement once.
    fn probe(&mut self) -> Result<()>;
    /// Whether it waits for each backfill batch by design, as the application's writers do on
    /// SQLite (for up to `--batch-time`): the `auto` target then allows the full 10 ms.
    fn waits_for_batches(&self) -> bool {
        false
    }
}

/// The interface `run` drives. Each method is one short, self-contained database action.
pub trait Engine {
    /// "SQLite 3.54.1", …
    fn label(&self) -> String;
    fn defaults(&self) -> Defaults;
    /// Sets the lock guard used for zerodown's own state writes during this command.
    fn configure(&mut self, guard: LockGuardSettings);
    /// Plans adding one column against the live schema, validating it without changing anything:
    /// a plan of that one operation (`crate::ops` merges the operations of a migration).
    fn plan_add_column(&mut self, migration: &str, add: &AddColumn) -> Result<Plan>;
    /// The live table an operation changes; a refusal naming it (and the tables there are) when
    /// it is missing or not an ordinary table.
    fn live_table(&mut self, table: &str) -> Result<dialect::LiveTable>;
    /// The engine's statements and facts for operations, on the connected version.
    fn dialect(&mut self) -> Result<Box<dyn dialect::Dialect>>;
    /// Refuses (with what to do) when the database is not ready to start, e.g. SQLite outside WAL.
    fn preflight(&mut self, settings: &Settings, emit: &mut dyn FnMut(Event)) -> Result<()>;

    /// Takes the exclusive right to drive `migration` for the life of the returned guard. Engines whose
    /// lock covers the whole database may ignore the name; MySQL/MariaDB lock per migration, because
    /// its lock names are server-wide.
    fn lock_driver(&mut self, migration: &str, wait: Duration) -> Result<Box<dyn DriverLock>>;

    fn ensure_state_table(&mut self, emit: &mut dyn FnMut(Event)) -> Result<()>;
    fn states(&mut self) -> Result<Vec<StateRow>>;
    /// Records a new migration (status started, next_step 0) and returns its id.
    fn insert_state(
        &mut self,
        name: &str,
        spec: &str,
        plan: &Plan,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64>;
    fn set_status(&mut self, id: i64, status: Status) -> Result<()>;
    fn request_cancel(&mut self, id: i64, on: bool) -> Result<()>;
    fn add_timing(&mut self, id: i64, phase: &str, seconds: f64) -> Result<()>;
    fn heartbeat(&mut self, id: i64) -> Result<()>;
    /// How many other sessions are running a statement right now (not zerodown's own), for
    /// `--max-load`; `None` where the engine has no such view (SQLite: one writer at a time anyway).
    fn running_sessions(&mut self) -> Result<Option<u32>> {
        Ok(None)
    }

    /// Opens the latency canary on its own connection, for the backfill of `plan`; `None` where the
    /// engine has none.
    fn canary(&mut self, plan: &OpPlan) -> Result<Option<Box<dyn Probe>>> {
        let _ = plan;
        Ok(None)
    }

    /// Runs a step's SQL under the lock guard and records `next_step = index + 1` in the same
    /// transaction where the engine allows.
    fn run_ddl(
        &mut self,
        id: i64,
        index: usize,
        sql: &[Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()>;
    /// Records a step as done without running SQL (checks, the backfill's end).
    fn mark_step_done(&mut self, id: i64, index: usize) -> Result<()>;

    /// Counts rows whose `expr` is NULL (the whole table, read-only).
    fn count_null_fill(&mut self, plan: &OpPlan) -> Result<i64>;
    /// Fixes the backfill's range: the highest key now, rows to cover, and a value captured once.
    fn begin_backfill(&mut self, id: i64, plan: &OpPlan) -> Result<StateRow>;
    fn backfill_batch(
        &mut self,
        state: &StateRow,
        batch_size: i64,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<BatchOutcome>;
    /// Re-fills rows of the new column still NULL, in batches; returns how many remain NULL.
    fn sweep_nulls(
        &mut self,
        state: &StateRow,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64>;
    /// The deploy-order guard's counter of INSERTs that left the new column NULL.
    fn old_writer_count(&mut self, key: &str) -> Result<i64>;
    /// Rows whose new column references a missing parent row, for the check step `index`.
    fn count_orphans(&mut self, plan: &Plan, index: usize) -> Result<i64>;
    /// Runs the plan's Finish step in one transaction that also marks the migration completed.
    fn finish(
        &mut self,
        state: &StateRow,
        index: usize,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()>;
    /// Runs the undo SQL of step `index` under the lock guard, recording `next_step = index` with it.
    fn run_undo(
        &mut self,
        id: i64,
        index: usize,
        sql: &[Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()>;
    /// Marks the migration rolled back (its name is free again).
    fn mark_rolled_back(&mut self, id: i64) -> Result<()>;

    /// Opens the replica watch (`--max-replica-lag`) on connections of its own; `replicas` are the
    /// `--replica` URLs. `None` where the engine has no replicas (SQLite).
    fn replica_watch(
        &mut self,
        replicas: &[crate::url::DatabaseUrl],
    ) -> Result<Option<Box<dyn ReplicaWatch>>> {
        let _ = replicas;
        Ok(None)
    }
}

/// Held while a command drives a migration; dropping it lets the next driver in.
pub trait DriverLock {}

/// The lock guard's knobs: how long one attempt may wait, and the total budget over retries.
#[derive(Debug, Clone, Copy)]
pub struct LockGuardSettings {
    pub timeout: Duration,
    pub budget: Duration,
}

/// The operation a migration's backfill fills (a migration holds at most one): a stored plan with
/// backfill steps but no fill is refused, never run by guesswork.
pub fn backfilled(plan: &Plan) -> Result<&OpPlan> {
    plan.backfilled().ok_or_else(|| {
        crate::error::Error::Refused(format!(
            "the stored plan of `{}` has backfill steps but no column to fill: it cannot run; nothing was changed",
            plan.migration
        ))
    })
}

/// Opens the engine a URL names.
pub fn connect(url: &crate::url::DatabaseUrl) -> Result<Box<dyn Engine>> {
    use crate::url::DatabaseUrl;
    match url {
        DatabaseUrl::Sqlite(path) => Ok(Box::new(sqlite::Sqlite::open(path)?)),
        DatabaseUrl::Postgres(u) => Ok(Box::new(postgres::Postgres::open(u)?)),
        DatabaseUrl::Mysql(u) => Ok(Box::new(mysql::MySql::open(u)?)),
    }
}
