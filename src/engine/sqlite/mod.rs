//! SQLite: the embedded default. Everything zerodown knows about SQLite lives here — which ALTERs are
//! catalog-only, what scans under the single write lock, how triggers must be written so that an
//! application linking an older SQLite (3.40) still accepts them — and the statements that act on it.
//!
//! This file holds the connection and the [`Engine`] implementation, which delegates to one file per
//! concern: `catalog` (schema reads and checks), `guard` (the write-lock retry loop), `ddl` (steps and
//! their records), `state` (the state table), `backfill` (batches and sweep), `session` (journal mode
//! and the driver's lock file); `rules` decides plans, `schema_edit` edits a column's default.

mod backfill;
mod canary;
mod catalog;
mod ddl;
mod dialect;
pub(crate) mod facts;
mod guard;
mod lint_catalog;
mod rules;
mod schema_edit;
mod session;
mod state;

use crate::plan::Statement;
pub use rules::build_plan;
use rules::version_text;

use super::{
    BatchOutcome, Defaults, DriverLock, Engine, Event, LockGuardSettings, MaxLoad, Nice, Settings,
    StateRow, Status,
};
use crate::error::{Error, Result};
use crate::plan::{OpPlan, Plan};
use crate::spec::AddColumn;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The state table's name on SQLite.
pub const STATE_TABLE: &str = "_zerodown_migrations";
/// The deploy-order guard's counters.
pub const COUNTER_TABLE: &str = "_zerodown_counters";

/// An open SQLite database, driven through the bundled SQLite.
pub struct Sqlite {
    conn: Connection,
    path: PathBuf,
    data_version: i64,
    /// The lock guard for zerodown's own state writes, set per command by [`Engine::configure`].
    guard: LockGuardSettings,
    /// How long the last write transaction held the write lock (excluding the wait for it).
    last_hold: Duration,
    /// When zerodown last checkpointed the WAL itself (its own automatic checkpoints are off).
    last_checkpoint: Instant,
}

/// The facts about the database that a plan depends on, besides the table.
#[derive(Debug, Clone)]
pub struct SqliteEnv {
    /// `sqlite3_libversion_number()` of the SQLite zerodown runs.
    pub version: i32,
    pub journal_mode: String,
}

pub use crate::engine::ansi::{literal, quote, quote_list};

fn sqlite_err(context: &str, e: rusqlite::Error) -> Error {
    Error::db(context, e)
}

fn now_text() -> &'static str {
    "strftime('%Y-%m-%dT%H:%M:%fZ','now')"
}

/// zerodown's own connection commits with `synchronous = NORMAL` when the file is in WAL mode (and
/// only then). In WAL mode that is still crash-safe: the database is never corrupted, and a power loss
/// (not a process crash) can only lose the last commits, i.e. a backfill batch, whose cursor is in the
/// same transaction, so the backfill redoes it. With the default FULL every batch commit waits for an
/// fsync of the WAL while it holds SQLite's only write lock: measured by zerodown-bench at 1M rows
/// (BENCHMARKS.md), NORMAL cut the longest batch hold from 221 to 35 ms and raised the backfill rate
/// under load from 0.17x to 0.40x of one whole-table UPDATE. The application's connections are not
/// touched (a pragma is per connection).
fn set_wal_synchronous(conn: &Connection) -> Result<()> {
    conn.execute_batch("PRAGMA synchronous = NORMAL")
        .map_err(|e| sqlite_err("setting synchronous = NORMAL", e))
}

impl Sqlite {
    /// Opens an existing database file; never creates one (a typo in a path is an error, not a new file).
    pub fn open(path: &Path) -> Result<Sqlite> {
        if !path.exists() {
            return Err(Error::Connect(format!(
                "no SQLite database at `{}`: check the path (zerodown never creates a database)",
                path.display()
            )));
        }
        if path.is_dir() {
            return Err(Error::Connect(format!(
                "`{}` is a directory, not a SQLite database file",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::Connect(format!("cannot open `{}`: {e}", path.display())))?;
        let check: rusqlite::Result<i64> =
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0));
        if let Err(e) = check {
            return Err(Error::Connect(match e.sqlite_error_code() {
                Some(ErrorCode::NotADatabase) => format!(
                    "`{}` is not a SQLite database (its header is not SQLite's); check the path",
                    path.display()
                ),
                _ => format!("cannot read `{}`: {e}", path.display()),
            }));
        }
        // zerodown's own connection never enforces foreign keys, so a batch never aborts halfway on an
        // old orphan row; the new column's references are checked at complete.
        conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA wal_autocheckpoint = 0")
            .map_err(|e| sqlite_err("turning foreign keys off", e))?;
        let wal = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
            .is_ok_and(|m| m.eq_ignore_ascii_case("wal"));
        if wal {
            set_wal_synchronous(&conn)?;
        }
        let mut s = Sqlite {
            conn,
            path: path.to_path_buf(),
            data_version: 0,
            last_hold: Duration::ZERO,
            last_checkpoint: Instant::now(),
            guard: LockGuardSettings {
                timeout: Duration::from_millis(200),
                budget: Duration::from_secs(600),
            },
        };
        s.data_version = s.read_data_version()?;
        Ok(s)
    }

    /// The raw connection, for tests and the demo.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn read_data_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| sqlite_err("reading data_version", e))
    }

    pub fn env(&self) -> Result<SqliteEnv> {
        let journal_mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(|e| sqlite_err("reading the journal mode", e))?;
        Ok(SqliteEnv {
            version: rusqlite::version_number(),
            journal_mode: journal_mode.to_ascii_lowercase(),
        })
    }
}

impl Engine for Sqlite {
    fn canary(&mut self, plan: &OpPlan) -> Result<Option<Box<dyn super::Probe>>> {
        canary::open(self, plan)
    }

    fn label(&self) -> String {
        format!("SQLite {}", version_text(rusqlite::version_number()))
    }

    fn configure(&mut self, guard: LockGuardSettings) {
        self.guard = guard;
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            lock_timeout: Duration::from_millis(200),
            lock_budget: Duration::from_secs(600),
            batch_time: Duration::from_millis(5),
            quiet_period: Duration::from_secs(10),
            // SQLite's default busy handler sleeps up to 100 ms between tries: a shorter gap between
            // two lock-holding steps is missed by a writer that has already waited a while.
            step_gap: Duration::from_millis(100),
            pause: None,
            nice: Nice::Ratio(0.0),
            max_load: MaxLoad::Off,
        }
    }

    fn plan_add_column(&mut self, name: &str, add: &AddColumn) -> Result<Plan> {
        let schema = self.table_schema(&add.table)?;
        let plan = build_plan(name, add, &schema, &self.env()?)?;
        self.validate_against_db(add, &schema)?;
        Ok(plan)
    }

    fn live_table(&mut self, table: &str) -> Result<super::dialect::LiveTable> {
        let schema = self.table_schema(table)?;
        let (indexes, other_names) = self.index_names(&schema.name)?;
        Ok(super::dialect::LiveTable {
            namespace: None,
            schema,
            indexes,
            other_names,
            my: None,
        })
    }

    fn dialect(&mut self) -> Result<Box<dyn super::dialect::Dialect>> {
        Ok(Box::new(dialect::LiteDialect {
            version: self.env()?.version,
        }))
    }

    fn preflight(&mut self, settings: &Settings, emit: &mut dyn FnMut(Event)) -> Result<()> {
        Sqlite::preflight(self, settings, emit)
    }

    fn lock_driver(&mut self, _migration: &str, wait: Duration) -> Result<Box<dyn DriverLock>> {
        Sqlite::lock_driver(self, wait)
    }

    fn ensure_state_table(&mut self, emit: &mut dyn FnMut(Event)) -> Result<()> {
        Sqlite::ensure_state_table(self, emit)
    }

    fn states(&mut self) -> Result<Vec<StateRow>> {
        Sqlite::states(self)
    }

    fn insert_state(
        &mut self,
        name: &str,
        spec: &str,
        plan: &Plan,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        Sqlite::insert_state(self, name, spec, plan, emit)
    }

    fn set_status(&mut self, id: i64, status: Status) -> Result<()> {
        Sqlite::set_status(self, id, status)
    }

    fn request_cancel(&mut self, id: i64, on: bool) -> Result<()> {
        Sqlite::request_cancel(self, id, on)
    }

    fn add_timing(&mut self, id: i64, phase: &str, seconds: f64) -> Result<()> {
        Sqlite::add_timing(self, id, phase, seconds)
    }

    fn heartbeat(&mut self, id: i64) -> Result<()> {
        Sqlite::heartbeat(self, id)
    }

    fn run_ddl(
        &mut self,
        id: i64,
        index: usize,
        sql: &[Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        self.run_and_record(
            id,
            index + 1,
            sql,
            &format!("step {}", index + 1),
            guard,
            emit,
        )
    }

    fn mark_step_done(&mut self, id: i64, index: usize) -> Result<()> {
        let guard = self.guard;
        self.run_and_record(id, index + 1, &[], "recording a step", &guard, &mut |_| {})
    }

    fn count_null_fill(&mut self, plan: &OpPlan) -> Result<i64> {
        Sqlite::count_null_fill(self, plan)
    }

    fn begin_backfill(&mut self, id: i64, plan: &OpPlan) -> Result<StateRow> {
        Sqlite::begin_backfill(self, id, plan)
    }

    fn backfill_batch(
        &mut self,
        state: &StateRow,
        batch_size: i64,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<BatchOutcome> {
        Sqlite::backfill_batch(self, state, batch_size, guard, emit)
    }

    fn sweep_nulls(
        &mut self,
        state: &StateRow,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        Sqlite::sweep_nulls(self, state, guard, emit)
    }

    fn old_writer_count(&mut self, key: &str) -> Result<i64> {
        Sqlite::old_writer_count(self, key)
    }

    fn count_orphans(&mut self, plan: &Plan, index: usize) -> Result<i64> {
        Sqlite::count_orphans(self, plan.op_of(index))
    }

    fn finish(
        &mut self,
        state: &StateRow,
        index: usize,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        Sqlite::finish(self, state, index, guard, emit)
    }

    fn run_undo(
        &mut self,
        id: i64,
        index: usize,
        sql: &[Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        self.run_and_record(id, index, sql, "a rollback step", guard, emit)
    }

    fn mark_rolled_back(&mut self, id: i64) -> Result<()> {
        Sqlite::mark_rolled_back(self, id)
    }
}
