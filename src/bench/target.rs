//! What the benchmark needs from a database engine. The scenarios, the load generator and the reports
//! are written against these traits only: SQLite (src/bench/sqlite.rs: a file, the measuring VFS),
//! PostgreSQL (src/bench/postgres.rs) and MariaDB (src/bench/mariadb.rs) implement them: fresh copies
//! of a loaded table, application and admin connections, the naive statements in each dialect, WAL /
//! redo bytes (`pg_current_wal_insert_lsn()`, `Innodb_lsn_current`) and a sampler of the engine's lock
//! views.

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

/// The migration zerodown runs: a derived NOT NULL column of type `ty` with a default, (optionally) a
/// CHECK and (optionally) an index.
pub fn migration_toml(ty: &str, index: bool, check: bool) -> String {
    let check = if check {
        format!("check    = \"{CHECK}\"\n")
    } else {
        String::new()
    };
    format!(
        "[add_column]\ntable    = \"{TABLE}\"\ncolumn   = \"{COLUMN}\"\ntype     = \"{ty}\"\nnot_null = true\nbackfill = \"{EXPR}\"\ndefault  = \"'standard'\"\n{check}index    = {index}\n"
    )
}

/// What sampling the engine's lock views saw during a scenario (PostgreSQL `pg_locks`, MariaDB
/// `metadata_lock_info` / processlist): a cross-check of the lock holds zerodown reports itself.
#[derive(Debug, Clone, Default)]
pub struct LockSample {
    /// Sampling period.
    pub every: Duration,
    pub samples: u64,
    /// The longest run of consecutive samples in which one session held a lock that blocks writes on
    /// the table (PG: Share, ShareRowExclusive, Exclusive, AccessExclusive; MariaDB: MDL_EXCLUSIVE,
    /// MDL_SHARED_NO_WRITE, MDL_SHARED_NO_READ_WRITE), and what it was.
    pub longest_hold_ms: Option<f64>,
    pub hold_what: Option<String>,
    /// The longest any session was seen waiting for a lock, and what it waited in.
    pub longest_wait_ms: Option<f64>,
    pub wait_what: Option<String>,
    /// Why there is no sample (e.g. the lock view is not available).
    pub unavailable: Option<String>,
}

/// Tracks runs of consecutive observations per key (a session and what it holds or waits for). A run
/// lasts from its first sample to its last: a lock seen in one sample only counts 0 ms (it lasted less
/// than two sampling periods), and the text says how many samples saw it.
#[derive(Default)]
pub struct RunTracker {
    open: std::collections::HashMap<String, (u64, u64, u64)>,
    pub longest: Option<(f64, String)>,
}

impl RunTracker {
    /// One sample at `now_ns` that saw exactly `keys`.
    pub fn observe(&mut self, now_ns: u64, keys: &[String]) {
        for k in keys {
            let e = self.open.entry(k.clone()).or_insert((now_ns, now_ns, 0));
            e.1 = now_ns;
            e.2 += 1;
        }
        let gone: Vec<String> = self
            .open
            .keys()
            .filter(|k| !keys.contains(k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(run) = self.open.remove(&k) {
                self.close(&k, run);
            }
        }
    }

    fn close(&mut self, k: &str, (first, last, n): (u64, u64, u64)) {
        let ms = (last - first) as f64 / 1e6;
        if self.longest.as_ref().is_none_or(|(m, _)| ms > *m) {
            let samples = if n == 1 { "sample" } else { "samples" };
            self.longest = Some((ms, format!("{k} [{n} {samples}]")));
        }
    }

    pub fn finish(&mut self) {
        let open: Vec<(String, (u64, u64, u64))> = self.open.drain().collect();
        for (k, run) in open {
            self.close(&k, run);
        }
    }
}

/// The text of a URL to hand to zerodown (the password included: the child process connects with it).
pub fn url_text(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
        DatabaseUrl::Postgres(u) | DatabaseUrl::Mysql(u) => u.clone(),
    }
}

/// `scheme://user:pw@host:port/<db>?params` with another database name.
pub fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    let mut out = format!("{scheme}://{authority}/{db}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The database name of a server URL (empty when none).
pub fn database_of(url: &str) -> String {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    let rest = rest.split('?').next().unwrap_or(rest);
    rest.split_once('/')
        .map(|x| x.1.to_string())
        .unwrap_or_default()
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

impl NaiveStep {
    pub fn new(label: &str, sql: String, then_deploy: bool) -> NaiveStep {
        NaiveStep {
            label: label.into(),
            sql,
            then_deploy,
        }
    }
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

/// The loaded template a target copies for each scenario, once [`BenchTarget::prepare`] has made it.
pub fn prepared<T: Clone>(template: &std::sync::Mutex<Option<T>>) -> Result<T, String> {
    template
        .lock()
        .unwrap()
        .clone()
        .ok_or_else(|| "prepare() first".to_string())
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
    fn background(&self, _url: &DatabaseUrl, _stop: Arc<AtomicBool>) -> Option<JoinHandle<()>> {
        None
    }
    /// What a person types without zerodown, in order: by default the SQL-standard statements, as on
    /// SQLite and PostgreSQL.
    fn naive_steps(&self) -> Vec<NaiveStep> {
        let step = NaiveStep::new;
        vec![
            step(
                "add column",
                format!("ALTER TABLE {TABLE} ADD COLUMN {COLUMN} text"),
                true,
            ),
            step(
                "update all rows",
                format!("UPDATE {TABLE} SET {COLUMN} = {EXPR}"),
                false,
            ),
            step(
                "set NOT NULL",
                format!("ALTER TABLE {TABLE} ALTER COLUMN {COLUMN} SET NOT NULL"),
                false,
            ),
            step(
                "add CHECK",
                format!(
                    "ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_{COLUMN}_check CHECK ({CHECK})"
                ),
                false,
            ),
            step(
                "create index",
                format!("CREATE INDEX {TABLE}_{COLUMN} ON {TABLE}({COLUMN})"),
                false,
            ),
        ]
    }
    /// The other thing a person types without zerodown: one ALTER TABLE adding the column as a STORED
    /// generated column (the engine rewrites or copies the whole table under its lock), then a plain
    /// index. No step deploys: a generated column refuses the values the new version would write.
    /// `None` where ALTER TABLE cannot add a STORED generated column (SQLite).
    fn naive_rewrite_steps(&self) -> Option<Vec<NaiveStep>> {
        None
    }
    /// How the application's connections are set up, for the report.
    fn app_settings(&self, busy_timeout: Duration) -> String;
    /// A count of rows whose new column is not the value the window semantics promise (here: the
    /// expression on the row, since the new application version writes exactly that).
    fn mismatch_sql(&self) -> String;
    /// The new column's type in this engine's dialect.
    fn column_type(&self) -> &'static str {
        "text"
    }
    /// Whether zerodown's scenario carries the CHECK (MariaDB 10.11 can only add one by copying the
    /// table: there the CHECK runs in its own scenario, `zerodown-copy`, with `--allow-copy`).
    fn online_check(&self) -> bool {
        true
    }
    /// The scenarios this engine runs when none are named.
    fn default_scenarios(&self) -> Vec<super::Scenario> {
        super::Scenario::USUAL.to_vec()
    }
    /// The server's WAL / redo position in bytes (PG `pg_current_wal_insert_lsn()`, MariaDB
    /// `Innodb_lsn_current`); `None` where the engine counts otherwise (SQLite: the measuring VFS).
    fn log_position(&self, _url: &DatabaseUrl) -> Option<u64> {
        None
    }
    /// Samples the engine's lock views on `url` until `stop`; `None` where there are none (SQLite).
    fn lock_sampler(
        &self,
        _url: &DatabaseUrl,
        _stop: Arc<AtomicBool>,
    ) -> Option<JoinHandle<LockSample>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_in_urls() {
        let u = "postgres://postgres:pw@127.0.0.1:5432/app?sslmode=disable";
        assert_eq!(
            with_database(u, "copy"),
            "postgres://postgres:pw@127.0.0.1:5432/copy?sslmode=disable"
        );
        assert_eq!(database_of(u), "app");
        assert_eq!(
            with_database("mysql://u:p@h:3306", "x"),
            "mysql://u:p@h:3306/x"
        );
        assert_eq!(database_of("mysql://u:p@h:3306"), "");
    }

    #[test]
    fn runs_are_tracked_per_key() {
        let mut t = RunTracker::default();
        t.observe(0, &["a".into()]);
        t.observe(10_000_000, &["a".into(), "b".into()]);
        t.observe(20_000_000, &["b".into()]);
        t.observe(50_000_000, &["b".into()]);
        t.finish();
        assert_eq!(t.longest, Some((40.0, "b [3 samples]".into())));
    }

    #[test]
    fn the_migration_can_leave_the_check_out() {
        assert!(migration_toml("text", true, true).contains("check"));
        assert!(!migration_toml("varchar(16)", false, false).contains("check"));
    }
}
