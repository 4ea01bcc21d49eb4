//! What the benchmark needs from a database engine. The scenarios, the load generator and the reports
//! are written against these traits only; SQLite implements them today (src/bench/sqlite.rs), and the
//! PostgreSQL and MariaDB engines plug in by implementing them too (a throwaway server or a given URL
//! for [`BenchTarget::fresh_copy`], their own SQL for [`BenchTarget::naive_steps`], WAL / redo bytes from
//! `pg_current_wal_lsn()` / `Innodb_os_log_written` for [`AdminConn::execute`]).

use crate::url::DatabaseUrl;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Duration;

/// The benchmark's table and migration, the same on every engine.
pub const TABLE: &str = "accounts";
pub const COLUMN: &str = "tier";
/// The backfill expression: it reads `balance`, the column the application's updates change.
pub const EXPR: &str = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END";
pub const CHECK: &str = "tier IN ('gold', 'standard')";
pub const MIGRATION_NAME: &str = "bench_accounts_tier";

/// The migration zerodown runs: a derived NOT NULL column with a CHECK, a default and (optionally) an index.
pub fn migration_toml(index: bool) -> String {
    format!(
        "[add_column]\ntable    = \"{TABLE}\"\ncolumn   = \"{COLUMN}\"\ntype     = \"text\"\nnot_null = true\nbackfill = \"{EXPR}\"\ndefault  = \"'standard'\"\ncheck    = \"{CHECK}\"\nindex    = {index}\n"
    )
}

/// The value the new application version writes itself: the backfill expression, in Rust.
pub fn tier_of(balance: i64) -> &'static str {
    if balance > 10000 { "gold" } else { "standard" }
}

/// One statement of the naive migration.
#[derive(Debug, Clone)]
pub struct NaiveStep {
    pub label: String,
    pub sql: String,
    /// After this statement the application switches to the version that writes the new column.
    pub then_deploy: bool,
}

/// One statement's run on an admin connection.
#[derive(Debug, Clone, Default)]
pub struct StatementRun {
    pub elapsed: Duration,
    /// WAL / redo bytes the statement wrote, where the engine can tell.
    pub log_bytes: Option<u64>,
    /// The longest the statement held the engine's write lock, where the engine can tell.
    pub longest_lock: Option<Duration>,
}

/// One application connection: the workload's three operations.
pub trait AppConn: Send {
    /// A point read by primary key.
    fn read(&mut self, id: i64) -> Result<(), String>;
    /// An update of the column the backfill expression reads; the new version also writes the new column.
    fn update(&mut self, id: i64, balance: i64, tier: Option<&str>) -> Result<(), String>;
    /// An insert; the new version also writes the new column.
    fn insert(
        &mut self,
        email: &str,
        balance: i64,
        pad: &str,
        tier: Option<&str>,
    ) -> Result<(), String>;
}

/// A connection for the naive migration, the single-UPDATE limit and the checks afterwards.
pub trait AdminConn {
    fn execute(&mut self, sql: &str) -> Result<StatementRun, String>;
    fn count(&mut self, sql: &str) -> Result<i64, String>;
}

/// An engine under benchmark.
pub trait BenchTarget: Sync {
    /// "SQLite 3.54.1, WAL, file on local disk", …
    fn label(&self) -> String;
    /// Loads the table with `rows` rows and two secondary indexes, once (fresh copies are taken from it).
    fn prepare(&self, rows: i64, log: &mut dyn FnMut(String)) -> Result<(), String>;
    /// A fresh copy of the loaded table, for one scenario.
    fn fresh_copy(&self, name: &str) -> Result<DatabaseUrl, String>;
    /// Removes a copy.
    fn drop_copy(&self, url: &DatabaseUrl);
    fn app(&self, url: &DatabaseUrl, busy_timeout: Duration) -> Result<Box<dyn AppConn>, String>;
    fn admin(
        &self,
        url: &DatabaseUrl,
        busy_timeout: Duration,
    ) -> Result<Box<dyn AdminConn>, String>;
    /// Background work an application does on this engine (SQLite: WAL checkpoints), until `stop`.
    fn background(&self, url: &DatabaseUrl, stop: Arc<AtomicBool>) -> Option<JoinHandle<()>>;
    /// What a person types without zerodown, in order.
    fn naive_steps(&self) -> Vec<NaiveStep>;
    /// How the application's connections are set up, for the report.
    fn app_settings(&self, busy_timeout: Duration) -> String;
    /// A count of rows whose new column is not the value the window semantics promise (here: the
    /// expression on the row, since the new application version writes exactly that).
    fn mismatch_sql(&self) -> String;
}
