//! SQLite: the embedded default. Everything zerodown knows about SQLite lives here — which ALTERs are
//! catalog-only, what scans under the single write lock, how triggers must be written so that an
//! application linking an older SQLite (3.40) still accepts them — and the statements that act on it.

mod rules;
mod schema_edit;

pub use rules::build_plan;
use rules::version_text;

use super::{
    BatchOutcome, Column, Defaults, DriverLock, Engine, Event, KeyValue, LockGuardSettings,
    MaxLoad, Nice, Settings, StateRow, Status, TableSchema, Trigger,
};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::spec::{AddColumn, Dialect, Migration, analyze_expr};
use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params_from_iter};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the backfill checkpoints the WAL (passively: it never waits for readers).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
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

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
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

    /// Reads the table's schema from the catalog.
    pub fn table_schema(&self, table: &str) -> Result<TableSchema> {
        let found: Option<(String, String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT type, name, sql FROM sqlite_schema WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE",
                [table],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| sqlite_err("reading the catalog", e))?;
        let Some((kind, name, sql)) = found else {
            let tables = self.user_tables()?;
            return Err(Error::Refused(format!(
                "table `{table}` not found in {}; its tables are: {}",
                self.path.display(),
                if tables.is_empty() {
                    "(none)".to_string()
                } else {
                    tables.join(", ")
                }
            )));
        };
        if kind == "view" {
            return Err(Error::Refused(format!(
                "`{name}` is a view; zerodown adds columns to tables"
            )));
        }
        if sql
            .as_deref()
            .unwrap_or("")
            .trim_start()
            .to_ascii_uppercase()
            .starts_with("CREATE VIRTUAL")
        {
            return Err(Error::Refused(format!(
                "`{name}` is a virtual table; SQLite cannot add columns to it"
            )));
        }
        if name.starts_with("_zerodown") || name.starts_with("sqlite_") {
            return Err(Error::Refused(format!("`{name}` is an internal table")));
        }
        let (strict, without_rowid): (bool, bool) = self
            .conn
            .query_row(
                "SELECT strict, wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
                [&name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| sqlite_err("reading table_list", e))?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo(?1) WHERE hidden IN (0, 2, 3) ORDER BY cid",
            )
            .map_err(|e| sqlite_err("reading columns", e))?;
        let columns = stmt
            .query_map([&name], |r| {
                Ok(Column {
                    name: r.get(0)?,
                    data_type: r.get(1)?,
                    not_null: r.get(2)?,
                    default: r.get(3)?,
                    pk: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| sqlite_err("reading columns", e))?;
        let key = if without_rowid {
            let mut pk: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
            pk.sort_by_key(|c| c.pk);
            pk.iter().map(|c| c.name.clone()).collect()
        } else {
            let alias = ["rowid", "_rowid_", "oid"]
                .into_iter()
                .find(|a| !columns.iter().any(|c| c.name.eq_ignore_ascii_case(a)));
            match alias {
                Some(a) => vec![a.to_string()],
                None => {
                    return Err(Error::Refused(format!(
                        "table `{name}` has columns named rowid, _rowid_ and oid, so its rowid cannot be addressed for batching"
                    )));
                }
            }
        };
        let mut stmt = self
            .conn
            .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 ORDER BY name")
            .map_err(|e| sqlite_err("reading triggers", e))?;
        let triggers = stmt
            .query_map([&name], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| sqlite_err("reading triggers", e))?
            .into_iter()
            .filter(|(n, _)| !n.starts_with("zd_"))
            .map(|(n, sql)| Trigger {
                event: trigger_event(sql.as_deref().unwrap_or("")),
                name: n,
            })
            .collect();
        Ok(TableSchema {
            name,
            columns,
            key,
            strict,
            triggers,
        })
    }

    fn user_tables(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_zerodown%' ESCAPE '\\' ORDER BY name")
            .map_err(|e| sqlite_err("listing tables", e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| sqlite_err("listing tables", e))
    }

    /// Checks the migration's expressions and references against the database, changing nothing.
    fn validate_against_db(&self, add: &AddColumn, schema: &TableSchema) -> Result<()> {
        let t = quote(&schema.name);
        let try_prepare = |sql: &str, what: &str, expr: &str| -> Result<()> {
            self.conn.prepare(sql).map(|_| ()).map_err(|e| {
                let msg = match &e {
                    rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
                    other => other.to_string(),
                };
                Error::Refused(format!(
                    "the {what} `{expr}` does not compile on this database: {msg}"
                ))
            })
        };
        if let Some(b) = &add.backfill {
            try_prepare(
                &format!("SELECT ({b}) FROM {t} LIMIT 0"),
                "backfill expression",
                b,
            )?;
        }
        if let Some(d) = &add.default {
            try_prepare(&format!("SELECT ({d})"), "default", d)?;
        }
        if let Some(c) = &add.check {
            try_prepare(
                &format!(
                    "SELECT ({c}) FROM (SELECT *, CAST(NULL AS {ty}) AS {col} FROM {t}) AS {t} LIMIT 0",
                    ty = add.data_type,
                    col = quote(&add.column)
                ),
                "check",
                c,
            )?;
        }
        if let Some(r) = &add.references {
            let parent = self.table_schema(&r.table).map_err(|_| {
                Error::Refused(format!(
                    "`references = \"{r}\"`: table `{}` not found; create it first",
                    r.table
                ))
            })?;
            let target = match &r.column {
                Some(c) => parent.column(c).map(|c| c.name.clone()).ok_or_else(|| {
                    Error::Refused(format!(
                        "`references = \"{r}\"`: table `{}` has no column `{c}`",
                        parent.name
                    ))
                })?,
                None => {
                    let pk: Vec<&Column> = parent.columns.iter().filter(|c| c.pk > 0).collect();
                    if pk.len() != 1 {
                        return Err(Error::Refused(format!(
                            "`references = \"{r}\"`: table `{}` has no single-column primary key; name the column, as `{}(id)`",
                            parent.name, parent.name
                        )));
                    }
                    pk[0].name.clone()
                }
            };
            let is_pk = parent.columns.iter().filter(|c| c.pk > 0).count() == 1
                && parent.column(&target).is_some_and(|c| c.pk == 1);
            let unique: bool = self
                .conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM pragma_index_list(?1) AS il
                       WHERE il.\"unique\" = 1 AND il.partial = 0
                         AND (SELECT count(*) FROM pragma_index_info(il.name)) = 1
                         AND (SELECT name FROM pragma_index_info(il.name)) = ?2 COLLATE NOCASE)",
                    [&parent.name, &target],
                    |r| r.get(0),
                )
                .map_err(|e| sqlite_err("reading the parent's indexes", e))?;
            if !is_pk && !unique {
                return Err(Error::Refused(format!(
                    "`references = \"{r}\"`: `{}`.`{target}` is neither the primary key nor UNIQUE, so SQLite cannot enforce the reference; add a unique index on it first",
                    parent.name
                )));
            }
        }
        Ok(())
    }

    /// Runs `f` inside `BEGIN IMMEDIATE … COMMIT` under the lock guard: each attempt waits at most
    /// `guard.timeout` for the write lock, failed attempts back off with jitter, all within `guard.budget`.
    fn write_tx<T>(
        &mut self,
        what: &str,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
        mut f: impl FnMut(&Connection) -> Result<T>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            set_polling_busy_handler(&mut self.conn, guard.timeout)?;
            let attempt_started = Instant::now();
            let begun = self.conn.execute_batch("BEGIN IMMEDIATE");
            let begin_wait = attempt_started.elapsed();
            let e: rusqlite::Error = match begun {
                Ok(()) => match f(&self.conn) {
                    Ok(v) => match self.conn.execute_batch("COMMIT") {
                        Ok(()) => {
                            // The write lock was held from BEGIN IMMEDIATE's return to COMMIT's.
                            self.last_hold = attempt_started.elapsed().saturating_sub(begin_wait);
                            return Ok(v);
                        }
                        Err(e) => e,
                    },
                    Err(e) => {
                        let _ = self.conn.execute_batch("ROLLBACK");
                        return Err(e);
                    }
                },
                Err(e) => e,
            };
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            if !is_busy(&e) {
                return Err(sqlite_err(what, e));
            }
            let waited = attempt_started.elapsed();
            emit(Event::LockRetry {
                attempt,
                waited,
                blocker: "another connection holds SQLite's write lock (SQLite cannot say which)"
                    .into(),
            });
            let backoff = jittered_backoff(attempt);
            if started.elapsed() + backoff + guard.timeout > guard.budget {
                return Err(Error::LockBudget(format!(
                    "{what}: could not get SQLite's write lock in {attempt} attempts over {:.1?} (lock budget {}); another connection keeps it busy — nothing was changed by this step, run the command again later or raise --lock-budget",
                    started.elapsed(),
                    humantime::format_duration(guard.budget)
                )));
            }
            std::thread::sleep(backoff);
        }
    }

    fn state_row(
        &self,
        where_clause: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StateRow>> {
        let sql = format!(
            "SELECT id, name, spec, plan, status, next_step, cursor, hi, captured, rows_done, rows_total,
                    cancel_requested, created_at, updated_at, completed_at, heartbeat, run_id, timings
             FROM {} {where_clause} ORDER BY id",
            quote(STATE_TABLE)
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(|e| sqlite_err("reading state", e))?;
        let rows = stmt
            .query_map(params, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, Option<i64>>(10)?,
                    r.get::<_, bool>(11)?,
                    (
                        r.get::<_, String>(12)?,
                        r.get::<_, String>(13)?,
                        r.get::<_, Option<String>>(14)?,
                        r.get::<_, Option<String>>(15)?,
                        r.get::<_, Option<String>>(16)?,
                        r.get::<_, String>(17)?,
                    ),
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| sqlite_err("reading state", e))?;
        let bad = |what: &str, e: serde_json::Error| {
            Error::db(
                "reading state",
                format!("the state row's {what} is unreadable: {e}"),
            )
        };
        rows.into_iter()
            .map(
                |(
                    id,
                    name,
                    spec,
                    plan,
                    status,
                    next,
                    cursor,
                    hi,
                    captured,
                    done,
                    total,
                    cancel,
                    rest,
                )| {
                    Ok(StateRow {
                        id,
                        name,
                        spec,
                        plan: serde_json::from_str(&plan).map_err(|e| bad("plan", e))?,
                        status: Status::parse(&status).ok_or_else(|| {
                            Error::db("reading state", format!("unknown status `{status}`"))
                        })?,
                        next_step: next as usize,
                        cursor: cursor
                            .map(|c| serde_json::from_str(&c))
                            .transpose()
                            .map_err(|e| bad("cursor", e))?,
                        hi: hi
                            .map(|c| serde_json::from_str(&c))
                            .transpose()
                            .map_err(|e| bad("upper bound", e))?,
                        captured: captured
                            .map(|c| serde_json::from_str(&c))
                            .transpose()
                            .map_err(|e| bad("captured value", e))?,
                        rows_done: done,
                        rows_total: total,
                        cancel_requested: cancel,
                        created_at: rest.0,
                        updated_at: rest.1,
                        completed_at: rest.2,
                        heartbeat: rest.3,
                        run_id: rest.4,
                        timings: serde_json::from_str(&rest.5).map_err(|e| bad("timings", e))?,
                    })
                },
            )
            .collect()
    }

    fn state_table_exists(&self) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
                [STATE_TABLE],
                |r| r.get(0),
            )
            .map_err(|e| sqlite_err("reading the catalog", e))
    }

    /// Runs `sql` and records `next_step` in one write transaction: a crash leaves both or neither.
    fn run_and_record(
        &mut self,
        id: i64,
        next_step: usize,
        sql: &[String],
        what: &str,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let record = format!(
            "UPDATE {} SET next_step = ?1, updated_at = {} WHERE id = ?2",
            quote(STATE_TABLE),
            now_text()
        );
        self.write_tx(what, guard, emit, |c| {
            for s in sql {
                c.execute_batch(s)
                    .map_err(|e| Error::db(format!("running `{s}`"), e))?;
            }
            c.execute(&record, rusqlite::params![next_step as i64, id])
                .map_err(|e| sqlite_err("recording the step", e))?;
            Ok(())
        })
    }

    /// A write to zerodown's own state, under the same lock guard as every other write.
    fn simple_update(&mut self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<()> {
        let guard = self.guard;
        self.write_tx("updating zerodown's state", &guard, &mut |_| {}, |c| {
            c.execute(sql, params)
                .map(|_| ())
                .map_err(|e| sqlite_err("updating state", e))
        })
    }
}

/// How long one lock attempt may wait, read by [`poll_busy`] (a plain `fn`, so it cannot capture it).
/// One value per process: zerodown drives one database connection at a time.
static BUSY_WAIT_MICROS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(200_000);
const BUSY_POLL: Duration = Duration::from_micros(250);

/// SQLite's default busy handler sleeps ever longer (up to 100 ms) between tries, so against busy
/// application writers a waiting batch almost never wins the lock. Polling at a short fixed interval gives
/// zerodown its turn as soon as the lock is free, and still gives up after the lock timeout.
fn poll_busy(count: i32) -> bool {
    let limit = BUSY_WAIT_MICROS.load(std::sync::atomic::Ordering::Relaxed);
    if (count as u64 + 1) * BUSY_POLL.as_micros() as u64 > limit {
        return false;
    }
    std::thread::sleep(BUSY_POLL);
    true
}

fn set_polling_busy_handler(conn: &mut Connection, timeout: Duration) -> Result<()> {
    BUSY_WAIT_MICROS.store(
        timeout.as_micros() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    conn.busy_handler(Some(poll_busy))
        .map_err(|e| sqlite_err("setting the busy handler", e))
}

/// The event of a trigger from its CREATE TRIGGER text: the first INSERT/UPDATE/DELETE after its name
/// (quoted names are blanked first, so a trigger named "update_log" is not taken for an UPDATE trigger).
fn trigger_event(sql: &str) -> String {
    let mut plain = String::with_capacity(sql.len());
    let mut quote_char: Option<char> = None;
    for ch in sql.chars() {
        match quote_char {
            Some(q) if ch == q || (q == '[' && ch == ']') => {
                quote_char = None;
                plain.push('Q');
            }
            Some(_) => {}
            None if matches!(ch, '"' | '`' | '[' | '\'') => quote_char = Some(ch),
            None => plain.push(ch.to_ascii_uppercase()),
        }
    }
    let words: Vec<&str> = plain
        .split(|c: char| c.is_whitespace() || c == '(')
        .filter(|w| !w.is_empty())
        .collect();
    let mut i = words
        .iter()
        .position(|w| *w == "TRIGGER")
        .map_or(0, |p| p + 1);
    if words.get(i) == Some(&"IF") {
        i += 3;
    }
    words
        .iter()
        .skip(i + 1)
        .find(|w| matches!(**w, "INSERT" | "UPDATE" | "DELETE"))
        .unwrap_or(&"UNKNOWN")
        .to_string()
}

/// Exponential backoff from 50 ms, capped at 5 s, with ±50% jitter so retrying writers do not align.
fn jittered_backoff(attempt: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << attempt.min(7)).min(5_000);
    let jitter = rand::random_range(0.5..1.5);
    Duration::from_millis((base as f64 * jitter) as u64)
}

fn to_value(k: &KeyValue) -> Value {
    match k {
        KeyValue::Int(i) => Value::Integer(*i),
        KeyValue::Real(f) => Value::Real(*f),
        KeyValue::Text(s) => Value::Text(s.clone()),
        KeyValue::Blob { blob } => Value::Blob(
            (0..blob.len() / 2)
                .filter_map(|i| u8::from_str_radix(&blob[2 * i..2 * i + 2], 16).ok())
                .collect(),
        ),
    }
}

fn from_value(v: Value) -> Option<KeyValue> {
    match v {
        Value::Null => None,
        Value::Integer(i) => Some(KeyValue::Int(i)),
        Value::Real(f) => Some(KeyValue::Real(f)),
        Value::Text(s) => Some(KeyValue::Text(s)),
        Value::Blob(b) => Some(KeyValue::Blob {
            blob: b.iter().map(|x| format!("{x:02x}")).collect(),
        }),
    }
}

struct FileLock {
    _file: File,
}
impl DriverLock for FileLock {}

impl Engine for Sqlite {
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

    fn plan(&mut self, migration: &Migration) -> Result<Plan> {
        let add = migration.add_column();
        let schema = self.table_schema(&add.table)?;
        let plan = build_plan(migration, &schema, &self.env()?)?;
        self.validate_against_db(add, &schema)?;
        Ok(plan)
    }

    fn preflight(&mut self, settings: &Settings, emit: &mut dyn FnMut(Event)) -> Result<()> {
        let mode = self.env()?.journal_mode;
        if mode == "wal" {
            return Ok(());
        }
        if settings.wal {
            self.conn
                .busy_timeout(Duration::from_secs(5))
                .map_err(|e| sqlite_err("setting busy_timeout", e))?;
            let now: String = self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| sqlite_err("switching to WAL", e))?;
            if !now.eq_ignore_ascii_case("wal") {
                return Err(Error::Refused(format!(
                    "could not switch `{}` to WAL (it stayed `{now}`)",
                    self.path.display()
                )));
            }
            set_wal_synchronous(&self.conn)?;
            emit(Event::Note(format!(
                "switched `{}` from journal mode {mode} to WAL (a lasting change)",
                self.path.display()
            )));
            return Ok(());
        }
        if settings.allow_rollback_journal {
            emit(Event::Note(format!(
                "journal mode {mode}: readers will wait while each batch commits (--allow-rollback-journal)"
            )));
            return Ok(());
        }
        Err(Error::Refused(format!(
            "`{}` is in journal mode {mode}, where every batch commit blocks readers; pass --wal to switch it to WAL (a lasting change, the usual setting for a live SQLite database) or --allow-rollback-journal to accept the stalls",
            self.path.display()
        )))
    }

    fn lock_driver(&mut self, _migration: &str, wait: Duration) -> Result<Box<dyn DriverLock>> {
        let lock_path = PathBuf::from(format!("{}-zerodown.lock", self.path.display()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                Error::Io(format!(
                    "cannot open lock file `{}`: {e}",
                    lock_path.display()
                ))
            })?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    use std::io::Write;
                    let _ = file.set_len(0);
                    let _ = (&file).write_all(format!("{}\n", std::process::id()).as_bytes());
                    return Ok(Box::new(FileLock { _file: file }));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    if started.elapsed() >= wait {
                        let pid = std::fs::read_to_string(&lock_path).unwrap_or_default();
                        return Err(Error::Busy(format!(
                            "another zerodown (pid {}) is driving a migration on `{}` (lock file `{}`); wait for it, or stop it with Ctrl-C",
                            pid.trim(),
                            self.path.display(),
                            lock_path.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::Io(format!(
                        "cannot lock `{}`: {e}",
                        lock_path.display()
                    )));
                }
            }
        }
    }

    fn ensure_state_table(&mut self, emit: &mut dyn FnMut(Event)) -> Result<()> {
        if self.state_table_exists()? {
            return Ok(());
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {st} (
               id INTEGER PRIMARY KEY,
               name TEXT NOT NULL,
               spec TEXT NOT NULL,
               plan TEXT NOT NULL,
               status TEXT NOT NULL,
               next_step INTEGER NOT NULL DEFAULT 0,
               cursor TEXT,
               hi TEXT,
               captured TEXT,
               rows_done INTEGER NOT NULL DEFAULT 0,
               rows_total INTEGER,
               cancel_requested INTEGER NOT NULL DEFAULT 0,
               run_id TEXT,
               heartbeat TEXT,
               created_at TEXT NOT NULL,
               updated_at TEXT NOT NULL,
               completed_at TEXT,
               timings TEXT NOT NULL DEFAULT '{{}}'
             );
             CREATE UNIQUE INDEX IF NOT EXISTS {ix} ON {st}(name) WHERE status <> 'rolled-back';
             CREATE TABLE IF NOT EXISTS {ct} (key TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0);",
            st = quote(STATE_TABLE),
            ix = quote("_zerodown_migrations_active_name"),
            ct = quote(COUNTER_TABLE),
        );
        let guard = self.guard;
        self.write_tx("creating the state table", &guard, emit, |c| {
            c.execute_batch(&sql)
                .map_err(|e| sqlite_err("creating the state table", e))
        })
    }

    fn states(&mut self) -> Result<Vec<StateRow>> {
        if !self.state_table_exists()? {
            return Ok(vec![]);
        }
        self.state_row("", &[])
    }

    fn insert_state(
        &mut self,
        name: &str,
        spec: &str,
        plan: &Plan,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        let json = serde_json::to_string(plan).expect("a plan serializes");
        let sql = format!(
            "INSERT INTO {} (name, spec, plan, status, created_at, updated_at, run_id)
             VALUES (?1, ?2, ?3, 'started', {now}, {now}, ?4)",
            quote(STATE_TABLE),
            now = now_text()
        );
        let guard = self.guard;
        self.write_tx("recording the migration", &guard, emit, |c| {
            c.execute(
                &sql,
                rusqlite::params![name, spec, json, format!("pid-{}", std::process::id())],
            )
            .map_err(|e| sqlite_err("recording the migration", e))?;
            Ok(c.last_insert_rowid())
        })
    }

    fn set_status(&mut self, id: i64, status: Status) -> Result<()> {
        self.simple_update(
            &format!(
                "UPDATE {} SET status = ?1, updated_at = {now}, completed_at = CASE WHEN ?1 = 'completed' THEN {now} ELSE completed_at END WHERE id = ?2",
                quote(STATE_TABLE),
                now = now_text()
            ),
            &[&status.label(), &id],
        )
    }

    fn request_cancel(&mut self, id: i64, on: bool) -> Result<()> {
        self.simple_update(
            &format!(
                "UPDATE {} SET cancel_requested = ?1 WHERE id = ?2",
                quote(STATE_TABLE)
            ),
            &[&on, &id],
        )
    }

    fn add_timing(&mut self, id: i64, phase: &str, seconds: f64) -> Result<()> {
        self.simple_update(
            &format!(
                "UPDATE {} SET timings = json_set(timings, '$.' || json_quote(?1), coalesce(json_extract(timings, '$.' || json_quote(?1)), 0) + ?2) WHERE id = ?3",
                quote(STATE_TABLE)
            ),
            &[&phase, &seconds, &id],
        )
    }

    fn heartbeat(&mut self, id: i64) -> Result<()> {
        self.simple_update(
            &format!(
                "UPDATE {} SET heartbeat = {now}, run_id = ?1 WHERE id = ?2",
                quote(STATE_TABLE),
                now = now_text()
            ),
            &[&format!("pid-{}", std::process::id()), &id],
        )
    }

    fn run_ddl(
        &mut self,
        id: i64,
        index: usize,
        sql: &[String],
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

    fn count_null_fill(&mut self, plan: &Plan) -> Result<i64> {
        let fill = plan.fill.as_ref().expect("a fill plan");
        self.conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM {} WHERE ({}) IS NULL",
                    quote(&plan.table),
                    fill.expr
                ),
                [],
                |r| r.get(0),
            )
            .map_err(|e| sqlite_err("counting rows whose value would be NULL", e))
    }

    fn begin_backfill(&mut self, id: i64, plan: &Plan) -> Result<StateRow> {
        let state = self
            .state_row("WHERE id = ?1", &[&id])?
            .pop()
            .ok_or_else(|| Error::db("reading state", "the migration's row vanished"))?;
        if state.hi.is_some() {
            return Ok(state);
        }
        let fill = plan.fill.as_ref().expect("a fill plan");
        let t = quote(&plan.table);
        let keys = quote_list(&fill.key);
        let desc = fill
            .key
            .iter()
            .map(|k| format!("{} DESC", quote(k)))
            .collect::<Vec<_>>()
            .join(", ");
        let hi: Option<Vec<KeyValue>> = self
            .conn
            .query_row(
                &format!("SELECT {keys} FROM {t} ORDER BY {desc} LIMIT 1"),
                [],
                |r| {
                    (0..fill.key.len())
                        .map(|i| r.get::<_, Value>(i).map(from_value))
                        .collect::<rusqlite::Result<Vec<_>>>()
                },
            )
            .optional()
            .map_err(|e| sqlite_err("finding the backfill's upper bound", e))?
            .map(|v| v.into_iter().flatten().collect());
        let total: i64 = self
            .conn
            .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .map_err(|e| sqlite_err("counting rows", e))?;
        let captured = if fill.capture_once {
            let v: Value = self
                .conn
                .query_row(&format!("SELECT ({})", fill.expr), [], |r| r.get(0))
                .map_err(|e| sqlite_err("evaluating the default once", e))?;
            from_value(v)
        } else {
            None
        };
        // An empty table has nothing to fill: an empty upper bound marks the range as fixed.
        let hi_json = serde_json::to_string(&hi.unwrap_or_default()).unwrap();
        let cap_json = captured.map(|c| serde_json::to_string(&c).unwrap());
        self.simple_update(
            &format!(
                "UPDATE {} SET hi = ?1, rows_total = ?2, captured = ?3, updated_at = {} WHERE id = ?4 AND hi IS NULL",
                quote(STATE_TABLE),
                now_text()
            ),
            &[&hi_json, &total, &cap_json, &id],
        )?;
        self.state_row("WHERE id = ?1", &[&id])?
            .pop()
            .ok_or_else(|| Error::db("reading state", "the migration's row vanished"))
    }

    fn backfill_batch(
        &mut self,
        state: &StateRow,
        batch_size: i64,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<BatchOutcome> {
        let plan = &state.plan;
        let hi = state.hi.clone().unwrap_or_default();
        let started = Instant::now();
        let before = self.read_data_version()?;
        let others_writing = before != self.data_version;
        if hi.is_empty() {
            return Ok(BatchOutcome {
                rows_scanned: 0,
                rows_updated: 0,
                new_cursor: state.cursor.clone(),
                elapsed: started.elapsed(),
                others_writing,
                cancel_requested: state.cancel_requested,
            });
        }
        let first = state.cursor.is_none();
        let captured = state.captured.clone();
        let capture_once = plan.fill.as_ref().is_some_and(|f| f.capture_once);
        let fill = plan.fill.as_ref().expect("a backfill step has a fill plan");
        let (select, update) =
            rules::batch_sql(&plan.table, &plan.column, fill, first, capture_once);
        let n = hi.len();
        let id = state.id;
        let cursor = state.cursor.clone();
        let save = format!(
            "UPDATE {} SET cursor = ?1, rows_done = rows_done + ?2, heartbeat = {}, updated_at = {} WHERE id = ?3 RETURNING cancel_requested",
            quote(STATE_TABLE),
            now_text(),
            now_text()
        );
        let (scanned, updated, new_cursor, cancel) =
            self.write_tx("a backfill batch", guard, emit, |c| {
                let mut params: Vec<Value> = Vec::new();
                let mut skip_first = vec![];
                if let Some(cur) = &cursor {
                    skip_first.extend(cur.iter().map(to_value));
                } else {
                    skip_first.extend((0..n).map(|_| Value::Null));
                }
                params.extend(skip_first);
                params.extend(hi.iter().map(to_value));
                params.push(Value::Integer(batch_size));
                let mut stmt = c
                    .prepare_cached(&select)
                    .map_err(|e| sqlite_err("preparing a batch", e))?;
                let mut rows = stmt
                    .query(params_from_iter(params.iter()))
                    .map_err(|e| sqlite_err("reading a batch's keys", e))?;
                let mut last: Option<Vec<Value>> = None;
                let mut scanned = 0i64;
                while let Some(r) = rows
                    .next()
                    .map_err(|e| sqlite_err("reading a batch's keys", e))?
                {
                    scanned += 1;
                    last = Some(
                        (0..n)
                            .map(|i| r.get::<_, Value>(i))
                            .collect::<rusqlite::Result<Vec<_>>>()
                            .map_err(|e| sqlite_err("reading a key", e))?,
                    );
                }
                drop(rows);
                let Some(end) = last else {
                    return Ok((0, 0, cursor.clone(), false));
                };
                let mut up: Vec<Value> = Vec::new();
                if let Some(cur) = &cursor {
                    up.extend(cur.iter().map(to_value));
                } else {
                    up.extend((0..n).map(|_| Value::Null));
                }
                up.extend(end.iter().cloned());
                up.push(match (&captured, capture_once) {
                    (Some(v), true) => to_value(v),
                    _ => Value::Null,
                });
                let mut ustmt = c
                    .prepare_cached(&update)
                    .map_err(|e| sqlite_err("preparing a batch", e))?;
                // Numbered parameters: slots the statement does not use (the cursor on the first batch,
                // the captured value when there is none) are simply not bound.
                let count = ustmt.parameter_count();
                for (i, v) in up.iter().enumerate().take(count) {
                    ustmt
                        .raw_bind_parameter(i + 1, v)
                        .map_err(|e| sqlite_err("binding", e))?;
                }
                let updated = ustmt
                    .raw_execute()
                    .map_err(|e| Error::db("filling a batch", e))?
                    as i64;
                let new_cursor: Vec<KeyValue> = end.into_iter().filter_map(from_value).collect();
                let cancel: bool = c
                    .query_row(
                        &save,
                        rusqlite::params![serde_json::to_string(&new_cursor).unwrap(), scanned, id],
                        |r| r.get(0),
                    )
                    .map_err(|e| sqlite_err("saving the cursor", e))?;
                Ok((scanned, updated, Some(new_cursor), cancel))
            })?;
        let hold = self.last_hold;
        self.data_version = self.read_data_version()?;
        // zerodown checkpoints the WAL itself, outside its lock hold, so that neither its batches nor
        // the application's commits pay for copying the backfill's pages back into the database.
        if self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            self.last_checkpoint = Instant::now();
        }
        Ok(BatchOutcome {
            rows_scanned: scanned,
            rows_updated: updated,
            new_cursor,
            elapsed: hold,
            others_writing,
            cancel_requested: cancel,
        })
    }

    fn sweep_nulls(
        &mut self,
        state: &StateRow,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        let plan = &state.plan;
        let fill = plan.fill.as_ref().expect("a fill plan");
        let t = quote(&plan.table);
        let c = quote(&plan.column);
        let key = quote_list(&fill.key);
        let value = match (&state.captured, fill.capture_once) {
            (Some(v), true) => to_value(v),
            _ => Value::Null,
        };
        let set = if fill.capture_once {
            "?1".to_string()
        } else {
            format!("({})", fill.expr)
        };
        // Find rows still NULL with a read (no write lock: WAL readers never block writers), then fill
        // what was found in short write transactions. Usually nothing is found and nothing is locked.
        let n = fill.key.len();
        let key_expr = if n == 1 {
            key.clone()
        } else {
            format!("({key})")
        };
        let find = format!(
            "SELECT {key} FROM {t} WHERE {c} IS NULL AND ({}) IS NOT NULL LIMIT 500",
            if fill.capture_once {
                "?1".to_string()
            } else {
                fill.expr.clone()
            }
        );
        let params: Vec<String> = (2..n + 2).map(|i| format!("?{i}")).collect();
        let key_params = if n == 1 {
            params[0].clone()
        } else {
            format!("({})", params.join(", "))
        };
        let update =
            format!("UPDATE {t} SET {c} = {set} WHERE {key_expr} = {key_params} AND {c} IS NULL");
        loop {
            let mut stmt = self
                .conn
                .prepare_cached(&find)
                .map_err(|e| sqlite_err("preparing the sweep", e))?;
            if fill.capture_once {
                stmt.raw_bind_parameter(1, &value)
                    .map_err(|e| sqlite_err("binding", e))?;
            }
            let mut rows = stmt.raw_query();
            let mut keys: Vec<Vec<Value>> = Vec::new();
            while let Some(r) = rows
                .next()
                .map_err(|e| sqlite_err("finding NULL rows", e))?
            {
                keys.push(
                    (0..n)
                        .map(|i| r.get::<_, Value>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map_err(|e| sqlite_err("reading a key", e))?,
                );
            }
            drop(rows);
            drop(stmt);
            if keys.is_empty() {
                break;
            }
            self.write_tx("the final sweep", guard, emit, |conn| {
                let mut stmt = conn
                    .prepare_cached(&update)
                    .map_err(|e| sqlite_err("preparing the sweep", e))?;
                for k in &keys {
                    stmt.raw_bind_parameter(1, &value)
                        .map_err(|e| sqlite_err("binding", e))?;
                    for (i, v) in k.iter().enumerate() {
                        stmt.raw_bind_parameter(i + 2, v)
                            .map_err(|e| sqlite_err("binding", e))?;
                    }
                    stmt.raw_execute()
                        .map_err(|e| Error::db("the final sweep", e))?;
                }
                Ok(())
            })?;
        }
        self.conn
            .query_row(
                &format!("SELECT count(*) FROM {t} WHERE {c} IS NULL"),
                [],
                |r| r.get(0),
            )
            .map_err(|e| sqlite_err("counting NULLs", e))
    }

    fn old_writer_count(&mut self, key: &str) -> Result<i64> {
        self.conn
            .query_row(
                &format!(
                    "SELECT coalesce((SELECT n FROM {} WHERE key = ?1), 0)",
                    quote(COUNTER_TABLE)
                ),
                [key],
                |r| r.get(0),
            )
            .map_err(|e| sqlite_err("reading the old-writer counter", e))
    }

    fn count_orphans(&mut self, plan: &Plan) -> Result<i64> {
        let t = quote(&plan.table);
        // The foreign key whose child column is ours.
        let fk_id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM pragma_foreign_key_list(?1) WHERE \"from\" = ?2",
                [&plan.table, &plan.column],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sqlite_err("reading foreign keys", e))?;
        let Some(fk_id) = fk_id else { return Ok(0) };
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA foreign_key_check({t})"))
            .map_err(|e| sqlite_err("checking references", e))?;
        let mut rows = stmt
            .query([])
            .map_err(|e| sqlite_err("checking references", e))?;
        let mut n = 0;
        while let Some(r) = rows
            .next()
            .map_err(|e| sqlite_err("checking references", e))?
        {
            if r.get::<_, i64>(3).unwrap_or(-1) == fk_id {
                n += 1;
            }
        }
        Ok(n)
    }

    fn finish(
        &mut self,
        state: &StateRow,
        index: usize,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let plan = &state.plan;
        let spec: crate::spec::Migration =
            crate::spec::Migration::from_toml(&state.name, &state.spec, "state row")
                .map_err(Error::from)?;
        let add = spec.add_column().clone();
        let step = &plan.steps[index];
        let set_default = step
            .sql
            .iter()
            .any(|s| s.starts_with("PRAGMA writable_schema"));
        let plain: Vec<String> = step
            .sql
            .iter()
            .filter(|s| !s.starts_with("PRAGMA ") && !s.starts_with("UPDATE sqlite_schema"))
            .cloned()
            .collect();
        let table = plan.table.clone();
        let column = plan.column.clone();
        let default = add.default.clone();
        let literal_default = default
            .as_deref()
            .map(|d| {
                analyze_expr(d, Dialect::Sqlite, "default")
                    .map(|i| i.is_literal)
                    .unwrap_or(false)
            })
            .unwrap_or(false);
        let record = format!(
            "UPDATE {} SET next_step = ?1, status = 'completed', completed_at = {now}, updated_at = {now} WHERE id = ?2",
            quote(STATE_TABLE),
            now = now_text()
        );
        let id = state.id;
        self.write_tx("the final step", guard, emit, |c| {
            if set_default && let Some(def) = &default {
                schema_edit::set_column_default(c, &table, &column, def, literal_default)?;
            }
            for s in &plain {
                c.execute_batch(s)
                    .map_err(|e| Error::db(format!("running `{s}`"), e))?;
            }
            c.execute(&record, rusqlite::params![index as i64 + 1, id])
                .map_err(|e| sqlite_err("recording completion", e))?;
            Ok(())
        })
    }

    fn run_undo(
        &mut self,
        id: i64,
        index: usize,
        sql: &[String],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        self.run_and_record(id, index, sql, "a rollback step", guard, emit)
    }

    fn mark_rolled_back(&mut self, id: i64) -> Result<()> {
        self.simple_update(
            &format!(
                "UPDATE {} SET status = 'rolled-back', updated_at = {} WHERE id = ?1",
                quote(STATE_TABLE),
                now_text()
            ),
            &[&id],
        )
    }
}

#[cfg(test)]
mod trigger_event_tests {
    use super::trigger_event;

    #[test]
    fn finds_the_event_after_the_name() {
        assert_eq!(
            trigger_event("CREATE TRIGGER insert_log AFTER UPDATE OF a ON t BEGIN SELECT 1; END"),
            "UPDATE"
        );
        assert_eq!(
            trigger_event(
                "create trigger if not exists \"on update\" before delete on t begin select 1; end"
            ),
            "DELETE"
        );
        assert_eq!(
            trigger_event("CREATE TEMP TRIGGER t1 INSTEAD OF INSERT ON v BEGIN SELECT 1; END"),
            "INSERT"
        );
    }
}
