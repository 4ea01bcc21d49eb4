//! MySQL 8 and MariaDB 10.3+. Everything zerodown knows about them lives here: which ALTERs run
//! INSTANT or online, the metadata-lock guard (DDL waits behind any open transaction that touched the
//! table, and its default wait is a day), triggers written for DDL that commits at once, and the
//! statements that act on the server. Proven on MariaDB 10.11; MySQL 8 paths are documented, not run.

mod connect;
mod mysql8;
pub mod rules;
mod session;

pub use connect::{SslMode, Target, Watchdog};
pub use rules::{Flavour, MyEnv, MyReference, build_plan};
pub use session::{lock_name as driver_lock_name, stale_after};

use super::{
    BatchOutcome, Column, Defaults, DriverLock, Engine, Event, KeyValue, LockGuardSettings,
    MaxLoad, Nice, Settings, StateRow, Status, TableSchema, Trigger,
};
use crate::error::{Error, Result};
use crate::plan::{Action, Plan};
use crate::spec::{AddColumn, Migration};
use mysql::prelude::Queryable;
use mysql::{Conn, Row, TxOpts, Value};
use rules::COLUMN_DEFINITION;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

fn code(e: &mysql::Error) -> Option<u16> {
    match e {
        mysql::Error::MySqlError(m) => Some(m.code),
        _ => None,
    }
}

fn message(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(m) => {
            format!("{} (error {}, SQLSTATE {})", m.message, m.code, m.state)
        }
        other => other.to_string(),
    }
}

/// Lock wait timeout (1205), max_statement_time exceeded (1969), deadlock (1213): try again.
fn is_lock_failure(e: &mysql::Error) -> bool {
    matches!(code(e), Some(1205 | 1969 | 1213))
}

/// Exponential backoff from 50 ms, capped at 5 s, with ±50% jitter so retrying sessions do not align.
fn jittered_backoff(attempt: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << attempt.min(7)).min(5_000);
    Duration::from_millis((base as f64 * rand::random_range(0.5..1.5)) as u64)
}

/// Whole seconds, at least one: `lock_wait_timeout` and `innodb_lock_wait_timeout` take no less.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// A statement that may run long (an INPLACE or COPY rebuild): max_statement_time would kill it.
fn is_build(sql: &str) -> bool {
    sql.contains("ALGORITHM=INPLACE") || sql.contains("ALGORITHM=COPY")
}

/// Puts a statement under the lock guard (MariaDB): `SET STATEMENT lock_wait_timeout=… [,
/// max_statement_time=…] FOR …`, merged with a `SET STATEMENT` the rules wrote themselves. Builds get
/// only the whole-second lock wait; a MODIFY runs under strict sql_mode so NULLs fail instead of turning
/// into 0.
fn guarded_sql(sql: &str, timeout: Duration) -> String {
    let mut vars = format!("lock_wait_timeout={}", whole_seconds(timeout));
    if !is_build(sql) {
        vars.push_str(&format!(
            ", max_statement_time={:.3}",
            timeout.as_secs_f64().max(0.001)
        ));
    }
    if sql.contains(" MODIFY COLUMN ") {
        vars.push_str(
            ", sql_mode='STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
        );
    }
    match sql.strip_prefix("SET STATEMENT ") {
        Some(rest) => format!("SET STATEMENT {vars}, {rest}"),
        None => format!("SET STATEMENT {vars} FOR {sql}"),
    }
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

fn key_value(v: &Value) -> KeyValue {
    match v {
        Value::Int(i) => KeyValue::Int(*i),
        Value::UInt(u) => match i64::try_from(*u) {
            Ok(i) => KeyValue::Int(i),
            Err(_) => KeyValue::Text(u.to_string()),
        },
        Value::Float(f) => KeyValue::Real(f64::from(*f)),
        Value::Double(f) => KeyValue::Real(*f),
        Value::Bytes(b) => KeyValue::Text(String::from_utf8_lossy(b).into_owned()),
        Value::Date(y, m, d, h, mi, s, us) => KeyValue::Text(format!(
            "{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"
        )),
        Value::Time(neg, d, h, mi, s, us) => KeyValue::Text(format!(
            "{}{}:{mi:02}:{s:02}.{us:06}",
            if *neg { "-" } else { "" },
            u64::from(*d) * 24 + u64::from(*h)
        )),
        Value::NULL => KeyValue::Text(String::new()),
    }
}

fn sql_value(k: &KeyValue) -> Value {
    match k {
        KeyValue::Int(i) => Value::Int(*i),
        KeyValue::Real(f) => Value::Double(*f),
        KeyValue::Text(s) => Value::Bytes(s.clone().into_bytes()),
        KeyValue::Blob { blob } => Value::Bytes(
            (0..blob.len() / 2)
                .filter_map(|i| u8::from_str_radix(&blob[2 * i..2 * i + 2], 16).ok())
                .collect(),
        ),
    }
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
    /// Notes for the user gathered where no event callback is at hand (taking the lock, reconnecting).
    notes: Vec<String>,
    /// Session settings to apply again on a new connection after a reconnect (the backfill's).
    session_sql: Option<String>,
}

/// How long zerodown keeps trying to reconnect after losing its connection (a server restart).
const RECONNECT_BUDGET: Duration = Duration::from_secs(120);

/// How many times one operation reconnects before giving up (a server restarting in a loop).
const MAX_RECONNECTS: u32 = 10;

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
            notes: Vec::new(),
            session_sql: None,
        })
    }

    /// This run's id, recorded in the state row.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The connection ids to record in the state row for this run.
    fn run_connections(&self) -> Vec<u32> {
        match &self.driver {
            Some(d) => d.ids(),
            None => vec![self.conn.connection_id()],
        }
    }

    /// Connection id of our driver-lock session, left out when naming blockers.
    fn driver_conn(&self) -> Option<u32> {
        self.driver.as_ref().map(|d| d.driver_id())
    }

    /// Hands the notes gathered without a callback to the user.
    fn flush_notes(&mut self, emit: &mut dyn FnMut(Event)) {
        for n in self.notes.drain(..) {
            emit(Event::Note(n));
        }
    }

    /// Connects again after a dropped connection (a KILL, a server restart), with jittered backoff
    /// within [`RECONNECT_BUDGET`]; applies the session settings again, and, when this run drives,
    /// makes sure it still holds the driver lock (stopping if another run took it meanwhile).
    fn reconnect(&mut self) -> Result<()> {
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

    /// Fails when another run took the driver lock while this one was disconnected. The driver
    /// session is looked at (at most once a second) before each batch and statement, not only by the
    /// heartbeat every few seconds: a KILL of that session alone must not leave this run driving for
    /// seconds after another run took the lock.
    fn check_driver(&self) -> Result<()> {
        match &self.driver {
            Some(d) if d.lost() || d.due_for_check() => d.ensure_lock(),
            _ => Ok(()),
        }
    }

    /// Runs `f` on the connection, reconnecting and running it again when the connection was lost:
    /// for reads and idempotent writes only.
    fn with_conn<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut Conn) -> std::result::Result<T, mysql::Error>,
    ) -> Result<T> {
        let mut reconnects = 0;
        loop {
            match f(&mut self.conn) {
                Ok(v) => return Ok(v),
                Err(e) if session::is_disconnect(&e) && reconnects < MAX_RECONNECTS => {
                    tracing::info!(
                        "{what}: connection lost: {}",
                        self.target.scrub(&message(&e))
                    );
                    reconnects += 1;
                    self.reconnect()?;
                }
                Err(e) => return Err(self.db_err(what, &e)),
            }
        }
    }

    /// [`Self::ddl`], run again on a new connection when the connection was lost (every statement the
    /// rules write is idempotent); `ddl` reports a lost connection as a plain error, so a failed ping
    /// tells the two apart.
    fn ddl_reconnecting(
        &mut self,
        sql: &str,
        plan: &Plan,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let mut reconnects = 0;
        loop {
            self.check_driver()?;
            self.flush_notes(emit);
            match self.ddl(sql, plan, guard, emit) {
                Ok(()) => return Ok(()),
                Err(e @ Error::Database { .. })
                    if reconnects < MAX_RECONNECTS && self.conn.ping().is_err() =>
                {
                    tracing::info!("`{sql}`: connection lost: {e}");
                    reconnects += 1;
                    self.reconnect()?;
                    self.flush_notes(emit);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The raw connection, for tests.
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    fn db_err(&self, context: &str, e: &mysql::Error) -> Error {
        Error::db(context, self.target.scrub(&message(e)))
    }

    fn env(&self, reference: Option<MyReference>, on_update: Vec<String>) -> MyEnv {
        MyEnv {
            flavour: self.flavour,
            version: self.version,
            reference,
            on_update_columns: on_update,
            row_versions: None,
            definer: None,
        }
    }

    /// The table's exact name in this database: exact match first, then ignoring case.
    fn find_table(&mut self, name: &str) -> Result<Option<(String, String)>> {
        let rows: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES
                 WHERE TABLE_SCHEMA = DATABASE() AND LOWER(TABLE_NAME) = LOWER(?)
                 ORDER BY TABLE_NAME = ? DESC LIMIT 1",
                (name, name),
            )
            .map_err(|e| self.db_err("reading the catalog", &e))?;
        Ok(rows.into_iter().next())
    }

    /// Reads the table's schema from information_schema; returns it with its ON UPDATE columns.
    pub fn table_schema(&mut self, table: &str) -> Result<(TableSchema, Vec<String>)> {
        let Some((name, kind)) = self.find_table(table)? else {
            let tables: Vec<String> = self
                .conn
                .query(
                    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()
                     AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1 LIMIT 50",
                )
                .map_err(|e| self.db_err("listing tables", &e))?;
            return Err(Error::Refused(format!(
                "table `{table}` not found in database `{}` of {}; its tables are: {}",
                self.target.database,
                self.target.label,
                if tables.is_empty() {
                    "(none)".to_string()
                } else {
                    tables.join(", ")
                }
            )));
        };
        if kind != "BASE TABLE" {
            return Err(Error::Refused(format!(
                "`{name}` is a {}, not a table; zerodown adds columns to tables",
                kind.to_lowercase()
            )));
        }
        if name == STATE_TABLE {
            return Err(Error::Refused(format!("`{name}` is zerodown's own table")));
        }
        type ColRow = (String, String, String, Option<String>, String, Option<i64>);
        let rows: Vec<ColRow> = self
            .conn
            .exec(
                "SELECT c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE, c.COLUMN_DEFAULT, c.EXTRA,
                        (SELECT s.SEQ_IN_INDEX FROM information_schema.STATISTICS s
                         WHERE s.TABLE_SCHEMA = c.TABLE_SCHEMA AND s.TABLE_NAME = c.TABLE_NAME
                           AND s.INDEX_NAME = 'PRIMARY' AND s.COLUMN_NAME = c.COLUMN_NAME)
                 FROM information_schema.COLUMNS c
                 WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION",
                (&name,),
            )
            .map_err(|e| self.db_err("reading columns", &e))?;
        let mut on_update = Vec::new();
        let columns: Vec<Column> = rows
            .into_iter()
            .map(|(cname, ty, nullable, default, extra, pk)| {
                if extra.to_ascii_lowercase().contains("on update") {
                    on_update.push(cname.clone());
                }
                Column {
                    name: cname,
                    data_type: ty,
                    not_null: nullable == "NO",
                    default: default.filter(|d| d != "NULL"),
                    pk: pk.unwrap_or(0) as u32,
                }
            })
            .collect();
        let mut pk: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
        pk.sort_by_key(|c| c.pk);
        let key: Vec<String> = if !pk.is_empty() {
            pk.iter().map(|c| c.name.clone()).collect()
        } else {
            // A unique key on NOT NULL columns orders rows just as well.
            let rows: Vec<(String, String)> = self
                .conn
                .exec(
                    "SELECT s.INDEX_NAME, s.COLUMN_NAME FROM information_schema.STATISTICS s
                     WHERE s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = ? AND s.NON_UNIQUE = 0
                       AND s.INDEX_NAME NOT IN (SELECT s2.INDEX_NAME FROM information_schema.STATISTICS s2
                         WHERE s2.TABLE_SCHEMA = s.TABLE_SCHEMA AND s2.TABLE_NAME = s.TABLE_NAME
                           AND (s2.NULLABLE = 'YES' OR s2.SUB_PART IS NOT NULL OR s2.COLUMN_NAME IS NULL))
                     ORDER BY s.INDEX_NAME, s.SEQ_IN_INDEX",
                    (&name,),
                )
                .map_err(|e| self.db_err("reading indexes", &e))?;
            let first = rows.first().map(|r| r.0.clone());
            let key: Vec<String> = rows
                .into_iter()
                .filter(|r| Some(&r.0) == first.as_ref())
                .map(|r| r.1)
                .collect();
            if key.is_empty() {
                return Err(Error::Refused(format!(
                    "table `{name}` has neither a primary key nor a unique key on NOT NULL columns, so zerodown cannot walk it in batches (nor find rows again after a crash); add one first, e.g. ALTER TABLE {} ADD PRIMARY KEY (id)",
                    quote(&name)
                )));
            }
            key
        };
        let trows: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT TRIGGER_NAME, EVENT_MANIPULATION FROM information_schema.TRIGGERS
                 WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = ? ORDER BY TRIGGER_NAME",
                (&name,),
            )
            .map_err(|e| self.db_err("reading triggers", &e))?;
        let triggers = trows
            .into_iter()
            .filter(|(n, _)| !n.starts_with("zd_"))
            .map(|(n, event)| Trigger { name: n, event })
            .collect();
        Ok((
            TableSchema {
                name,
                columns,
                key,
                strict: false,
                triggers,
            },
            on_update,
        ))
    }

    /// Checks the type and expressions by preparing them against the table; changes nothing. Reads
    /// into `env` the account the triggers will run as, and the table's instant row versions on
    /// MySQL ≥ 8.0.29 (documented, not run).
    fn probe(&mut self, add: &AddColumn, table: &TableSchema, env: &mut MyEnv) -> Result<()> {
        let t = quote(&table.name);
        let scrub = |m: String| self.target.scrub(&m);
        let refuse = |what: &str, expr: &str, e: &mysql::Error| {
            Error::Refused(scrub(format!(
                "the {what} `{expr}` does not compile on this database: {}",
                message(e)
            )))
        };
        let ty = &add.data_type;
        let probe = format!("zd_probe_{}", std::process::id());
        self.conn
            .query_drop(format!("CREATE TEMPORARY TABLE {} (c {ty})", quote(&probe)))
            .map_err(|e| {
                Error::Refused(self.target.scrub(&format!(
                    "the type `{ty}` is not usable on this database: {}",
                    message(&e)
                )))
            })?;
        let _ = self
            .conn
            .query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {}", quote(&probe)));
        let mut prepare = |sql: String| self.conn.prep(sql).map(|_| ());
        if let Some(b) = &add.backfill {
            prepare(format!("SELECT ({b}) FROM {t} LIMIT 0"))
                .map_err(|e| refuse("backfill expression", b, &e))?;
        }
        if let Some(d) = &add.default {
            prepare(format!("SELECT ({d})")).map_err(|e| refuse("default", d, &e))?;
        }
        if let Some(check) = &add.check {
            prepare(format!(
                "SELECT ({check}) FROM (SELECT zd_t.*, NULL AS {} FROM {t} AS zd_t LIMIT 0) AS {t}",
                quote(&add.column)
            ))
            .map_err(|e| refuse("check", check, &e))?;
        }
        // A trigger created without DEFINER= runs as CURRENT_USER(), the account the server matched.
        env.definer = self
            .conn
            .query_first::<String, _>("SELECT CURRENT_USER()")
            .map_err(|e| self.db_err("reading CURRENT_USER()", &e))?;
        if self.flavour == Flavour::MySql && self.version >= (8, 0, 29) {
            // MySQL 8 (documented, not run): INNODB_TABLES names tables `database/table`.
            env.row_versions = self
                .conn
                .exec_first(
                    "SELECT TOTAL_ROW_VERSIONS FROM INFORMATION_SCHEMA.INNODB_TABLES WHERE NAME = CONCAT(DATABASE(), '/', ?)",
                    (&table.name,),
                )
                .map_err(|e| self.db_err("reading the table's instant row versions", &e))?;
        }
        Ok(())
    }

    /// Resolves `references` to (table, column), which must be the primary key or unique.
    fn resolve_reference(&mut self, add: &AddColumn) -> Result<Option<MyReference>> {
        let Some(r) = &add.references else {
            return Ok(None);
        };
        let Some((table, kind)) = self.find_table(&r.table)? else {
            return Err(Error::Refused(format!(
                "`references = \"{r}\"`: table `{}` not found; create it first",
                r.table
            )));
        };
        if kind != "BASE TABLE" {
            return Err(Error::Refused(format!(
                "`references = \"{r}\"`: `{table}` is not a table"
            )));
        }
        let keys: Vec<(String, String, i64)> = self
            .conn
            .exec(
                "SELECT INDEX_NAME, COLUMN_NAME, (SELECT count(*) FROM information_schema.STATISTICS s2
                   WHERE s2.TABLE_SCHEMA = s.TABLE_SCHEMA AND s2.TABLE_NAME = s.TABLE_NAME AND s2.INDEX_NAME = s.INDEX_NAME)
                 FROM information_schema.STATISTICS s
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0
                 ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
                (&table,),
            )
            .map_err(|e| self.db_err("reading the referenced table's keys", &e))?;
        let column = match &r.column {
            Some(c) => {
                match keys
                    .iter()
                    .find(|(_, col, n)| *n == 1 && col.eq_ignore_ascii_case(c))
                {
                    Some((_, col, _)) => col.clone(),
                    None => {
                        return Err(Error::Refused(format!(
                            "`references = \"{r}\"`: `{table}`.`{c}` is missing, or is neither the primary key nor UNIQUE; add a unique key on it first"
                        )));
                    }
                }
            }
            None => match keys.iter().find(|(i, _, n)| i == "PRIMARY" && *n == 1) {
                Some((_, col, _)) => col.clone(),
                None => {
                    return Err(Error::Refused(format!(
                        "`references = \"{r}\"`: table `{table}` has no single-column primary key; name the column, as `{table}(id)`"
                    )));
                }
            },
        };
        Ok(Some(MyReference { table, column }))
    }

    /// The column's full definition as the catalog has it: type, charset, collation, default,
    /// ON UPDATE, comment — for a MODIFY that must change nothing else.
    fn column_definition(&mut self, table: &str, column: &str) -> Result<String> {
        type Def = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            String,
        );
        let row: Option<Def> = self
            .conn
            .exec_first(
                "SELECT COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_DEFAULT, EXTRA, COLUMN_COMMENT
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                (table, column),
            )
            .map_err(|e| self.db_err("reading the column's definition", &e))?;
        let Some((ty, charset, collation, default, extra, comment)) = row else {
            return Err(Error::db(
                "reading the column's definition",
                format!("column `{column}` of `{table}` is gone"),
            ));
        };
        let mut def = ty;
        if let (Some(cs), Some(co)) = (charset, collation) {
            def.push_str(&format!(" CHARACTER SET {cs} COLLATE {co}"));
        }
        if let Some(d) = default.filter(|d| d != "NULL") {
            let plain = d.starts_with('\'') || d.parse::<f64>().is_ok();
            if plain {
                def.push_str(&format!(" DEFAULT {d}"));
            } else {
                def.push_str(&format!(" DEFAULT ({d})"));
            }
        }
        let lower = extra.to_ascii_lowercase();
        if let Some(i) = lower.find("on update ") {
            def.push_str(&format!(" ON UPDATE {}", &extra[i + "on update ".len()..]));
        }
        if !comment.is_empty() {
            def.push_str(&format!(" COMMENT {}", literal(&comment)));
        }
        Ok(def)
    }

    /// Runs one DDL statement under the lock guard: a short wait, retried with jittered backoff within
    /// the budget, naming the blockers each time. INSTANT refused → INPLACE, LOCK=NONE; COPY only with
    /// --allow-copy.
    fn ddl(
        &mut self,
        sql: &str,
        plan: &Plan,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let mut sql = sql.to_string();
        if sql.contains(COLUMN_DEFINITION) {
            let def = self.column_definition(&plan.table, &plan.column)?;
            sql = sql.replace(COLUMN_DEFINITION, &def);
        }
        if sql.contains("ALGORITHM=COPY") && !self.allow_copy {
            return Err(Error::Refused(format!(
                "`{sql}` copies the whole table while application writes wait (MariaDB has no online way to do it); run again with --allow-copy to accept that, or drop `check` from the migration"
            )));
        }
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let attempt_started = Instant::now();
            let e = match self.flavour {
                Flavour::MariaDb => match self.conn.query_drop(guarded_sql(&sql, guard.timeout)) {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                },
                // MySQL 8 (documented, not run): session lock wait, KILL QUERY build timeout, and
                // "already exists" on a re-run meaning done (no IF [NOT] EXISTS); see mysql8.rs.
                Flavour::MySql => {
                    match mysql8::run(&mut self.conn, &self.target, &sql, guard.timeout)? {
                        Ok(()) => return Ok(()),
                        Err(e)
                            if mysql8::row_versions_used_up(&e)
                                && sql.contains("ALGORITHM=INSTANT") =>
                        {
                            emit(Event::Note(format!(
                                "the table has no instant column change left ({}); using ALGORITHM=INPLACE, LOCK=NONE, an online rebuild",
                                message(&e)
                            )));
                            sql = sql.replace("ALGORITHM=INSTANT", "ALGORITHM=INPLACE, LOCK=NONE");
                            attempt -= 1;
                            continue;
                        }
                        Err(e) if mysql8::already_done(&e) => {
                            emit(Event::Note(format!(
                                "`{sql}` had already run ({}): done",
                                message(&e)
                            )));
                            return Ok(());
                        }
                        Err(e) => e,
                    }
                }
            };
            match code(&e) {
                Some(1845 | 1846) if sql.contains("ALGORITHM=INSTANT") => {
                    emit(Event::Note(format!(
                        "the server refused ALGORITHM=INSTANT ({}); using ALGORITHM=INPLACE, LOCK=NONE",
                        message(&e)
                    )));
                    sql = sql.replace("ALGORITHM=INSTANT", "ALGORITHM=INPLACE, LOCK=NONE");
                    attempt -= 1;
                    continue;
                }
                Some(1419) => {
                    return Err(Error::Refused(self.target.scrub(&format!(
                        "`{sql}`: {}; with the binary log on, creating the dual-write triggers needs the SUPER privilege or log_bin_trust_function_creators=1 (SET GLOBAL log_bin_trust_function_creators = 1, by an administrator), then run the command again",
                        message(&e)
                    ))));
                }
                Some(1845 | 1846) => {
                    return Err(Error::Refused(self.target.scrub(&format!(
                        "`{sql}` cannot run online here: {}; zerodown never lets the server copy the table under a write lock",
                        message(&e)
                    ))));
                }
                _ if is_lock_failure(&e) => {}
                _ => return Err(self.db_err(&format!("running `{sql}`"), &e)),
            }
            let waited = attempt_started.elapsed();
            let blocker = self.blockers(&plan.table);
            emit(Event::LockRetry {
                attempt,
                waited,
                blocker: blocker.clone(),
            });
            let backoff = jittered_backoff(attempt);
            if started.elapsed() + backoff + guard.timeout > guard.budget {
                return Err(Error::LockBudget(format!(
                    "`{sql}`: could not get its metadata lock in {attempt} attempts over {:.1?} (lock budget {}); last blocked by {blocker} — this statement changed nothing; end that session or run the command again later, or raise --lock-budget",
                    started.elapsed(),
                    humantime::format_duration(guard.budget)
                )));
            }
            std::thread::sleep(backoff);
        }
    }

    /// The sessions that may hold the table: open InnoDB transactions, metadata-lock holders where
    /// the metadata_lock_info plugin is installed, and sessions waiting for a metadata lock.
    fn blockers(&mut self, table: &str) -> String {
        let me = self.driver_conn().unwrap_or(0);
        let mut holders: Vec<u64> = self
            .conn
            .exec(
                "SELECT DISTINCT THREAD_ID FROM information_schema.METADATA_LOCK_INFO
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND THREAD_ID <> CONNECTION_ID()",
                (table,),
            )
            .unwrap_or_default();
        holders.retain(|h| *h != u64::from(me));
        type P = (u64, String, String, i64, String, String, Option<i64>);
        let rows: std::result::Result<Vec<P>, _> = self.conn.exec(
            "SELECT p.ID, p.USER, p.COMMAND, p.TIME, coalesce(p.STATE, ''),
                    coalesce(p.INFO, ''),
                    TIMESTAMPDIFF(SECOND, t.trx_started, NOW())
             FROM information_schema.PROCESSLIST p
             LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID
             WHERE p.ID <> CONNECTION_ID() AND p.ID <> ? AND p.COMMAND NOT IN ('Daemon', 'Binlog Dump')
               AND (t.trx_id IS NOT NULL OR p.STATE LIKE '%metadata lock%' OR p.DB = DATABASE())
             ORDER BY t.trx_started IS NULL, t.trx_started, p.ID LIMIT 20",
            (me,),
        );
        match rows {
            Ok(rows) => {
                let described: Vec<String> = rows
                    .iter()
                    .filter(|r| {
                        r.6.is_some()
                            || r.4.contains("metadata lock")
                            || holders.contains(&r.0)
                            || (holders.is_empty() && r.2 == "Sleep")
                    })
                    .take(5)
                    .map(|(id, user, command, time, state, info, trx)| {
                        let mut s = format!("connection {id} ({user}, {command} {time}s");
                        if let Some(age) = trx {
                            s.push_str(&format!(", transaction open {age}s"));
                        }
                        if !state.is_empty() {
                            s.push_str(&format!(", {state}"));
                        }
                        s.push(')');
                        if !info.is_empty() {
                            let shape = super::sql_shape::statement_shape(info, true);
                            s.push_str(&format!(": {shape}"));
                        }
                        s
                    })
                    .collect();
                if described.is_empty() {
                    format!("a session that has let go of `{table}` since")
                } else {
                    described.join("; ")
                }
            }
            Err(e) => format!(
                "a session on `{table}` (could not list it: {}; listing others' sessions needs the PROCESS privilege)",
                message(&e)
            ),
        }
    }

    /// A write to zerodown's own state, retried on lock timeouts within the budget.
    fn state_exec(&mut self, sql: &str, params: Vec<Value>) -> Result<u64> {
        let started = Instant::now();
        let mut attempt = 0;
        let mut reconnects = 0;
        loop {
            attempt += 1;
            match self.conn.exec_drop(sql, params.clone()) {
                Ok(()) => return Ok(self.conn.affected_rows()),
                Err(e) if is_lock_failure(&e) && started.elapsed() < self.guard.budget => {
                    std::thread::sleep(jittered_backoff(attempt));
                }
                // Every state write sets absolute values, so running it again is harmless.
                Err(e) if session::is_disconnect(&e) && reconnects < MAX_RECONNECTS => {
                    reconnects += 1;
                    self.reconnect()?;
                }
                Err(e) => return Err(self.db_err("updating zerodown's state", &e)),
            }
        }
    }

    /// Adds the `connections` column to a state table made before it existed.
    fn upgrade_state_table(&mut self) -> Result<()> {
        let n: Option<i64> = self.with_conn("reading the catalog", |c| {
            c.exec_first(
                "SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'connections'",
                (STATE_TABLE,),
            )
        })?;
        if n.unwrap_or(0) > 0 {
            return Ok(());
        }
        let sql = format!(
            "ALTER TABLE {} ADD COLUMN connections varchar(255) NULL",
            quote(STATE_TABLE)
        );
        let secs = whole_seconds(self.guard.timeout);
        self.with_conn("adding a column to zerodown's state table", |c| {
            c.query_drop(format!("SET SESSION lock_wait_timeout = {secs}"))?;
            c.query_drop(&sql)
        })
    }

    fn state_exists(&mut self) -> Result<bool> {
        let n: Option<i64> = self.with_conn("reading the catalog", |c| {
            c.exec_first(
                "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (STATE_TABLE,),
            )
        })?;
        Ok(n.unwrap_or(0) > 0)
    }

    fn state_rows(&mut self, id: Option<i64>) -> Result<Vec<StateRow>> {
        let fmt = |col: &str| {
            format!("CONCAT(LEFT(DATE_FORMAT({col}, '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z')")
        };
        let sql = format!(
            "SELECT id, name, spec, plan, status, next_step, `cursor`, hi, captured, rows_done, rows_total,
                    cancel_requested, {}, {}, {}, {}, run_id, timings
             FROM {} {} ORDER BY id",
            fmt("created_at"),
            fmt("updated_at"),
            fmt("completed_at"),
            fmt("heartbeat"),
            quote(STATE_TABLE),
            if id.is_some() { "WHERE id = ?" } else { "" }
        );
        let params: Vec<Value> = id.map(Value::Int).into_iter().collect();
        let rows: Vec<Row> = self.with_conn("reading state", |c| c.exec(&sql, params.clone()))?;
        fn json<T: serde::de::DeserializeOwned>(
            s: Option<String>,
            what: &str,
        ) -> Result<Option<T>> {
            s.map(|c| serde_json::from_str(&c))
                .transpose()
                .map_err(|e| {
                    Error::db(
                        "reading state",
                        format!("the state row's {what} is unreadable: {e}"),
                    )
                })
        }
        rows.into_iter()
            .map(|r| {
                let s = |i: usize| -> Option<String> { r.get::<Option<String>, _>(i).flatten() };
                let n = |i: usize| -> Option<i64> { r.get::<Option<i64>, _>(i).flatten() };
                let status = s(4).unwrap_or_default();
                Ok(StateRow {
                    id: n(0).unwrap_or(0),
                    name: s(1).unwrap_or_default(),
                    spec: s(2).unwrap_or_default(),
                    plan: json(s(3), "plan")?
                        .ok_or_else(|| Error::db("reading state", "the state row has no plan"))?,
                    status: Status::parse(&status).ok_or_else(|| {
                        Error::db("reading state", format!("unknown status `{status}`"))
                    })?,
                    next_step: n(5).unwrap_or(0) as usize,
                    cursor: json(s(6), "cursor")?,
                    hi: json(s(7), "upper bound")?,
                    captured: json(s(8), "captured value")?,
                    rows_done: n(9).unwrap_or(0),
                    rows_total: n(10),
                    cancel_requested: n(11).unwrap_or(0) != 0,
                    created_at: s(12).unwrap_or_default(),
                    updated_at: s(13).unwrap_or_default(),
                    completed_at: s(14),
                    heartbeat: s(15),
                    run_id: s(16),
                    timings: json(s(17), "timings")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    fn state(&mut self, id: i64) -> Result<StateRow> {
        self.state_rows(Some(id))?
            .pop()
            .ok_or_else(|| Error::db("reading state", "the migration's row vanished"))
    }

    /// Runs `f` in one short transaction, retrying lock timeouts and deadlocks within the budget.
    fn transaction<T>(
        &mut self,
        what: &str,
        table: &str,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
        mut f: impl FnMut(&mut mysql::Transaction) -> std::result::Result<T, mysql::Error>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut attempt = 0;
        let mut reconnects = 0;
        loop {
            self.check_driver()?;
            self.flush_notes(emit);
            attempt += 1;
            let t0 = Instant::now();
            let outcome = (|| {
                let mut tx = self.conn.start_transaction(TxOpts::default())?;
                let v = f(&mut tx)?;
                tx.commit()?;
                Ok(v)
            })();
            let e = match outcome {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if session::is_disconnect(&e) && reconnects < MAX_RECONNECTS {
                // The transaction rolled back, or committed without our hearing of it: `f` reads
                // what it needs (the backfill's cursor) inside the transaction, so running it again
                // never redoes committed work.
                tracing::info!(
                    "{what}: connection lost: {}",
                    self.target.scrub(&message(&e))
                );
                reconnects += 1;
                self.reconnect()?;
                self.flush_notes(emit);
                continue;
            }
            if !is_lock_failure(&e) {
                return Err(self.db_err(what, &e));
            }
            let blocker = self.blockers(table);
            emit(Event::LockRetry {
                attempt,
                waited: t0.elapsed(),
                blocker: blocker.clone(),
            });
            let backoff = jittered_backoff(attempt);
            if started.elapsed() + backoff + guard.timeout > guard.budget {
                return Err(Error::LockBudget(format!(
                    "{what}: could not get its row locks in {attempt} attempts over {:.1?}; last blocked by {blocker}; run the command again later, or raise --lock-budget",
                    started.elapsed()
                )));
            }
            std::thread::sleep(backoff);
        }
    }

    /// Backfill sessions: READ COMMITTED, and row-lock waits no longer than the lock timeout.
    fn backfill_session(&mut self, guard: &LockGuardSettings) -> Result<()> {
        let sql = format!(
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; SET SESSION innodb_lock_wait_timeout = {}",
            whole_seconds(guard.timeout)
        );
        self.session_sql = Some(sql.clone());
        self.with_conn("setting up the backfill session", |c| c.query_drop(&sql))
    }

    fn fill_update_sql(plan: &Plan, on_update: &[String], limit: bool) -> String {
        let fill = plan.fill.as_ref().expect("a fill plan");
        let c = quote(&plan.column);
        let keep: String = on_update
            .iter()
            .map(|u| format!(", {q} = {q}", q = quote(u)))
            .collect();
        format!(
            "UPDATE {} SET {c} = ({e}){keep} WHERE {c} IS NULL AND ({e}) IS NOT NULL{}",
            quote(&plan.table),
            if limit { " LIMIT 1000" } else { "" },
            e = fill.expr
        )
    }

    fn on_update_columns(&mut self, table: &str) -> Result<Vec<String>> {
        self.with_conn("reading columns", |c| {
            c.exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
                 AND TABLE_NAME = ? AND LOWER(EXTRA) LIKE '%on update%'",
                (table,),
            )
        })
    }
}

impl Engine for MySql {
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

    fn plan(&mut self, migration: &Migration) -> Result<Plan> {
        // Planning reads the catalog on the main connection: open it again if it was lost meanwhile.
        if self.conn.ping().is_err() {
            self.reconnect()?;
        }
        let add = migration.add_column();
        let (schema, on_update) = self.table_schema(&add.table)?;
        let reference = self.resolve_reference(add)?;
        let mut env = self.env(reference, on_update);
        // The pure checks first (unknown columns, NOT NULL without a value), then the server's.
        build_plan(migration, &schema, &env)?;
        self.probe(add, &schema, &mut env)?;
        let mut plan = build_plan(migration, &schema, &env)?;
        plan.notes.extend(self.target.tls_note());
        self.plan_copies = plan
            .steps
            .iter()
            .any(|s| s.sql.iter().any(|q| q.contains("ALGORITHM=COPY")));
        Ok(plan)
    }

    fn preflight(&mut self, settings: &Settings, emit: &mut dyn FnMut(Event)) -> Result<()> {
        self.flush_notes(emit);
        self.allow_copy = settings.allow_copy;
        self.target.set_build_timeout(settings.build_timeout);
        if self.plan_copies && !self.allow_copy {
            return Err(Error::Refused(
                "this migration has a step that copies the whole table while application writes wait (on MariaDB 10.11, ADD CHECK has no online path; `zerodown plan` shows it); run again with --allow-copy to accept that, or drop `check` from the migration".into(),
            ));
        }
        Ok(())
    }

    /// Takes the migration's named lock from its own session, which also beats this run's heartbeat.
    /// A holder whose run's heartbeat is stale is a dead run's leftover: its recorded connections are
    /// killed (and named in a note); a live holder gets a Busy error naming it. Once the lock is held,
    /// work that dead runs left running (an INPLACE build, a backfill UPDATE) is ended the same way.
    fn lock_driver(&mut self, migration: &str, wait: Duration) -> Result<Box<dyn DriverLock>> {
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
                self.notes.push(note);
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
        for r in dead {
            let ended = self.with_conn("ending a dead run's connections", |c| {
                session::kill_connections(c, r.connections.as_deref())
            })?;
            if !ended.is_empty() {
                let note = session::stale_note(&r.run_id, &r.name, r.age.unwrap_or(0.0), &ended);
                tracing::info!("{note}");
                self.notes.push(note);
            }
        }
        if self.state_exists()? {
            self.upgrade_state_table()?;
            let boot = self.with_conn("reading the server's start time", session::server_boot)?;
            let ids = self.run_connections();
            self.state_exec(
                &format!(
                    "UPDATE {} SET run_id = ?, heartbeat = UTC_TIMESTAMP(3), connections = ? WHERE name = ? AND status IN ({})",
                    quote(STATE_TABLE),
                    session::RUNNING
                ),
                vec![
                    self.run_id.clone().into(),
                    session::connections_record(boot, &ids).into(),
                    migration.into(),
                ],
            )?;
        }
        Ok(Box::new(guard))
    }

    fn ensure_state_table(&mut self, _emit: &mut dyn FnMut(Event)) -> Result<()> {
        if self.state_exists()? {
            return Ok(());
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (
               id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
               name varchar(255) NOT NULL,
               spec longtext NOT NULL,
               plan longtext NOT NULL,
               status varchar(32) NOT NULL,
               next_step int NOT NULL DEFAULT 0,
               `cursor` longtext NULL,
               hi longtext NULL,
               captured longtext NULL,
               rows_done bigint NOT NULL DEFAULT 0,
               rows_total bigint NULL,
               cancel_requested tinyint(1) NOT NULL DEFAULT 0,
               run_id varchar(64) NULL,
               connection_id bigint NULL,
               connections varchar(255) NULL,
               heartbeat datetime(3) NULL,
               created_at datetime(3) NOT NULL,
               updated_at datetime(3) NOT NULL,
               completed_at datetime(3) NULL,
               timings longtext NOT NULL,
               KEY name (name)
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            quote(STATE_TABLE)
        );
        let secs = whole_seconds(self.guard.timeout);
        self.conn
            .query_drop(format!("SET STATEMENT lock_wait_timeout={secs} FOR {sql}"))
            .or_else(|_| self.conn.query_drop(&sql))
            .map_err(|e| self.db_err("creating zerodown's state table", &e))
    }

    fn states(&mut self) -> Result<Vec<StateRow>> {
        if !self.state_exists()? {
            return Ok(vec![]);
        }
        self.state_rows(None)
    }

    fn insert_state(
        &mut self,
        name: &str,
        spec: &str,
        plan: &Plan,
        _emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        let json = serde_json::to_string(plan)
            .map_err(|e| Error::db("recording the migration", e.to_string()))?;
        let conn_id = self.conn.connection_id();
        let run_id = self.run_id.clone();
        let boot = self.with_conn("reading the server's start time", session::server_boot)?;
        let ids = self.run_connections();
        // Idempotent, because a lost connection makes state_exec run it again: one row per run.
        self.state_exec(
            &format!(
                "INSERT INTO {t} (name, spec, plan, status, run_id, connection_id, connections, heartbeat, created_at, updated_at, timings)
                 SELECT ?, ?, ?, 'started', ?, ?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), '{{}}' FROM DUAL
                 WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE name = ? AND run_id = ? AND status = 'started')",
                t = quote(STATE_TABLE)
            ),
            vec![
                name.into(),
                spec.into(),
                json.into(),
                run_id.clone().into(),
                i64::from(conn_id).into(),
                session::connections_record(boot, &ids).into(),
                name.into(),
                run_id.clone().into(),
            ],
        )?;
        let id: Option<Option<i64>> = self.with_conn("recording the migration", |c| {
            c.exec_first(
                format!(
                    "SELECT max(id) FROM {} WHERE name = ? AND run_id = ?",
                    quote(STATE_TABLE)
                ),
                (name, &run_id),
            )
        })?;
        id.flatten()
            .ok_or_else(|| Error::db("recording the migration", "its state row is missing"))
    }

    fn set_status(&mut self, id: i64, status: Status) -> Result<()> {
        self.state_exec(
            &format!(
                "UPDATE {} SET status = ?, updated_at = UTC_TIMESTAMP(3), completed_at = IF(? = 'completed', UTC_TIMESTAMP(3), completed_at) WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![status.label().into(), status.label().into(), id.into()],
        )
        .map(|_| ())
    }

    /// Before asking, ends a stale run of the migration: a hung run (its process stopped, or cut off
    /// by the network) can hold the state row in an open batch, and the request would wait behind it.
    fn request_cancel(&mut self, id: i64, on: bool) -> Result<()> {
        if on {
            let name = self.state(id)?.name;
            let run_id = self.run_id.clone();
            let stale: Vec<session::RunRow> = self
                .with_conn("looking for a dead run", |c| {
                    session::running_rows(c, &run_id)
                })?
                .into_iter()
                .filter(|r| r.name == name && r.is_stale())
                .collect();
            for r in stale {
                let ended = self.with_conn("ending a dead run's connections", |c| {
                    session::kill_connections(c, r.connections.as_deref())
                })?;
                if !ended.is_empty() {
                    let note =
                        session::stale_note(&r.run_id, &r.name, r.age.unwrap_or(0.0), &ended);
                    tracing::info!("{note}");
                    self.notes.push(note);
                }
            }
        }
        self.state_exec(
            &format!(
                "UPDATE {} SET cancel_requested = ? WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![i64::from(on).into(), id.into()],
        )
        .map(|_| ())
    }

    fn add_timing(&mut self, id: i64, phase: &str, seconds: f64) -> Result<()> {
        let mut timings = self.state(id)?.timings;
        *timings.entry(phase.to_string()).or_insert(0.0) += seconds;
        let json = serde_json::to_string(&timings).expect("timings serialize");
        self.state_exec(
            &format!("UPDATE {} SET timings = ? WHERE id = ?", quote(STATE_TABLE)),
            vec![json.into(), id.into()],
        )
        .map(|_| ())
    }

    /// Claims the row for this run and records how to find its connections (the main one and the
    /// driver lock's), so a later run can end what this one leaves behind if it dies.
    fn heartbeat(&mut self, id: i64) -> Result<()> {
        let run_id = self.run_id.clone();
        let conn_id = self.conn.connection_id();
        let boot = self.with_conn("reading the server's start time", session::server_boot)?;
        let ids = self.run_connections();
        self.state_exec(
            &format!(
                "UPDATE {} SET heartbeat = UTC_TIMESTAMP(3), run_id = ?, connection_id = ?, connections = ? WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![
                run_id.into(),
                i64::from(conn_id).into(),
                session::connections_record(boot, &ids).into(),
                id.into(),
            ],
        )
        .map(|_| ())
    }

    /// Connections running a statement that began less than a second ago (the application's
    /// traffic, not a long report), from the process list — when this user sees every connection
    /// (PROCESS privilege). Otherwise `Threads_running`, which needs no privilege but counts long
    /// statements too (gh-ost's and pt-online-schema-change's load gauge). Less this session.
    fn running_sessions(&mut self) -> Result<Option<u32>> {
        let (visible, connected, short, running) =
            self.with_conn("counting the sessions running statements", |c| {
                let seen: Option<(i64, i64)> = c.query_first(
                    "SELECT COUNT(*), COALESCE(SUM(COMMAND NOT IN ('Sleep', 'Daemon', 'Binlog Dump', 'Binlog Dump GTID') AND TIME < 1), 0) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()",
                )?;
                let status = |c: &mut Conn, name: &str| -> std::result::Result<i64, mysql::Error> {
                    let row: Option<(String, String)> =
                        c.query_first(format!("SHOW GLOBAL STATUS LIKE '{name}'"))?;
                    Ok(row.and_then(|(_, v)| v.parse().ok()).unwrap_or(0))
                };
                let (visible, short) = seen.unwrap_or((0, 0));
                Ok((
                    visible,
                    status(c, "Threads_connected")?,
                    short,
                    status(c, "Threads_running")?,
                ))
            })?;
        // Threads_connected counts this session; the process list above does not.
        let n = if visible + 1 >= connected {
            short
        } else {
            running - 1
        };
        Ok(Some(n.clamp(0, i64::from(u32::MAX)) as u32))
    }

    /// DDL commits at once on MySQL/MariaDB: each statement runs guarded, then the step is recorded;
    /// the statements are idempotent (IF [NOT] EXISTS), so a crash in between re-runs them harmlessly.
    fn run_ddl(
        &mut self,
        id: i64,
        index: usize,
        sql: &[String],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let plan = self.state(id)?.plan;
        for s in sql {
            self.ddl_reconnecting(s, &plan, guard, emit)?;
        }
        self.mark_step_done(id, index)
    }

    fn mark_step_done(&mut self, id: i64, index: usize) -> Result<()> {
        self.state_exec(
            &format!(
                "UPDATE {} SET next_step = ?, updated_at = UTC_TIMESTAMP(3), heartbeat = UTC_TIMESTAMP(3) WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![(index as i64 + 1).into(), id.into()],
        )
        .map(|_| ())
    }

    fn count_null_fill(&mut self, plan: &Plan) -> Result<i64> {
        let fill = plan.fill.as_ref().expect("a fill plan");
        let sql = format!(
            "SELECT count(*) FROM {} WHERE ({}) IS NULL",
            quote(&plan.table),
            fill.expr
        );
        let n: Option<i64> = self.with_conn("counting rows whose value would be NULL", |c| {
            c.query_first(&sql)
        })?;
        Ok(n.unwrap_or(0))
    }

    fn begin_backfill(&mut self, id: i64, plan: &Plan) -> Result<StateRow> {
        let state = self.state(id)?;
        let guard = self.guard;
        self.backfill_session(&guard)?;
        if state.hi.is_some() {
            return Ok(state);
        }
        let fill = plan.fill.as_ref().expect("a fill plan");
        let t = quote(&plan.table);
        let desc = fill
            .key
            .iter()
            .map(|k| format!("{} DESC", quote(k)))
            .collect::<Vec<_>>()
            .join(", ");
        let top = format!(
            "SELECT {} FROM {t} ORDER BY {desc} LIMIT 1",
            quote_list(&fill.key)
        );
        let row: Option<Row> = self.with_conn("finding the backfill's upper bound", |c| {
            c.exec_first(&top, ())
        })?;
        let hi: Vec<KeyValue> = row
            .map(|r| r.unwrap().iter().map(key_value).collect())
            .unwrap_or_default();
        let total: Option<i64> = self.with_conn("counting rows", |c| {
            c.query_first(format!("SELECT count(*) FROM {t}"))
        })?;
        let hi_json = serde_json::to_string(&hi).expect("keys serialize");
        self.state_exec(
            &format!(
                "UPDATE {} SET hi = ?, rows_total = ?, updated_at = UTC_TIMESTAMP(3) WHERE id = ? AND hi IS NULL",
                quote(STATE_TABLE)
            ),
            vec![hi_json.into(), total.unwrap_or(0).into(), id.into()],
        )?;
        self.state(id)
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
        if hi.is_empty() {
            return Ok(BatchOutcome {
                rows_scanned: 0,
                rows_updated: 0,
                new_cursor: state.cursor.clone(),
                elapsed: started.elapsed(),
                others_writing: false,
                cancel_requested: state.cancel_requested,
            });
        }
        let fill = plan.fill.as_ref().expect("a backfill step has a fill plan");
        let on_update = self.on_update_columns(&plan.table)?;
        let (select_first, update_first) =
            rules::batch_sql(&plan.table, &plan.column, fill, &on_update, true);
        let (select_next, update_next) =
            rules::batch_sql(&plan.table, &plan.column, fill, &on_update, false);
        let hi: Vec<Value> = hi.iter().map(sql_value).collect();
        // The cursor is read in the batch's own transaction, under the row lock its save takes: after
        // a lost connection the batch starts from what was committed, never from a copy in memory, so
        // a batch whose commit went unheard is not done twice.
        let read_cursor = format!(
            "SELECT `cursor` FROM {} WHERE id = ? FOR UPDATE",
            quote(STATE_TABLE)
        );
        let save = format!(
            "UPDATE {} SET `cursor` = ?, rows_done = rows_done + ?, heartbeat = UTC_TIMESTAMP(3), updated_at = UTC_TIMESTAMP(3), run_id = ? WHERE id = ?",
            quote(STATE_TABLE)
        );
        let read_cancel = format!(
            "SELECT cancel_requested FROM {} WHERE id = ?",
            quote(STATE_TABLE)
        );
        let id = state.id;
        let run_id = self.run_id.clone();
        let mut hold = Duration::ZERO;
        let table = plan.table.clone();
        type Done = (i64, i64, Option<Vec<KeyValue>>, bool);
        let done: std::result::Result<Done, String> =
            self.transaction("a backfill batch", &table, guard, emit, |tx| {
                let t0 = Instant::now();
                let saved: Option<Option<String>> = tx.exec_first(&read_cursor, (id,))?;
                let cursor: Option<Vec<KeyValue>> = match saved.flatten() {
                    None => None,
                    Some(json) => match serde_json::from_str(&json) {
                        Ok(c) => Some(c),
                        Err(e) => return Ok(Err(format!("the saved cursor is unreadable: {e}"))),
                    },
                };
                let (select, update) = match cursor {
                    None => (&select_first, &update_first),
                    Some(_) => (&select_next, &update_next),
                };
                let cursor: Vec<Value> = cursor.iter().flatten().map(sql_value).collect();
                let mut params = cursor.clone();
                params.extend(hi.iter().cloned());
                params.push(Value::Int(batch_size));
                let keys: Vec<Row> = tx.exec(select, params)?;
                let Some(last) = keys.last() else {
                    return Ok(Ok((0i64, 0i64, None, false)));
                };
                let end: Vec<Value> = last.clone().unwrap();
                let scanned = keys.len() as i64;
                let mut up = cursor.clone();
                up.extend(end.iter().cloned());
                tx.exec_drop(update, up)?;
                let updated = tx.affected_rows() as i64;
                let new_cursor: Vec<KeyValue> = end.iter().map(key_value).collect();
                let cursor_json = match serde_json::to_string(&new_cursor) {
                    Ok(j) => j,
                    Err(e) => return Ok(Err(format!("the cursor does not serialize: {e}"))),
                };
                tx.exec_drop(
                    &save,
                    vec![
                        Value::from(cursor_json),
                        Value::from(scanned),
                        Value::from(run_id.clone()),
                        Value::from(id),
                    ],
                )?;
                let cancel: Option<i64> = tx.exec_first(&read_cancel, (id,))?;
                hold = t0.elapsed();
                Ok(Ok((
                    scanned,
                    updated,
                    Some(new_cursor),
                    cancel.unwrap_or(0) != 0,
                )))
            })?;
        let (scanned, updated, new_cursor, cancel) =
            done.map_err(|m| Error::db("a backfill batch", m))?;
        Ok(BatchOutcome {
            rows_scanned: scanned,
            rows_updated: updated,
            new_cursor: new_cursor.or_else(|| state.cursor.clone()),
            elapsed: hold,
            others_writing: false,
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
        let on_update = self.on_update_columns(&plan.table)?;
        let sql = Self::fill_update_sql(plan, &on_update, true);
        let table = plan.table.clone();
        for _ in 0..100_000 {
            let n = self.transaction("the final sweep", &table, guard, emit, |tx| {
                tx.query_drop(&sql)?;
                Ok(tx.affected_rows())
            })?;
            if n == 0 {
                break;
            }
        }
        let count = format!(
            "SELECT count(*) FROM {} WHERE {} IS NULL",
            quote(&plan.table),
            quote(&plan.column)
        );
        let n: Option<i64> = self.with_conn("counting NULLs", |c| c.query_first(&count))?;
        Ok(n.unwrap_or(0))
    }

    fn old_writer_count(&mut self, key: &str) -> Result<i64> {
        let kind: Option<String> = self.with_conn("reading the old-writer counter", |c| {
            c.exec_first(
                "SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (key,),
            )
        })?;
        let sql = match kind.as_deref() {
            None => return Ok(0),
            Some("SEQUENCE") => format!("SELECT next_not_cached_value - 1 FROM {}", quote(key)),
            Some(_) => format!("SELECT coalesce(max(n), 0) FROM {}", quote(key)),
        };
        let n: Option<i64> =
            self.with_conn("reading the old-writer counter", |c| c.query_first(&sql))?;
        Ok(n.unwrap_or(0))
    }

    /// The key was added with foreign_key_checks=0: count existing orphans with the plan's own query,
    /// in keyset batches of 10,000 rows (short consistent reads, no long-lived read view).
    fn count_orphans(&mut self, plan: &Plan) -> Result<i64> {
        let Some(sql) = plan
            .steps
            .iter()
            .find(|s| s.action == Action::ForeignKeyCheck)
            .and_then(|s| s.sql.first())
            .cloned()
        else {
            return Ok(0);
        };
        let (schema, _) = self.table_schema(&plan.table)?;
        if schema.key.len() != 1 {
            let n: Option<i64> = self
                .conn
                .query_first(&sql)
                .map_err(|e| self.db_err("counting rows without a parent", &e))?;
            return Ok(n.unwrap_or(0));
        }
        let k = quote(&schema.key[0]);
        let t = quote(&plan.table);
        let mut cursor: Option<Value> = None;
        let mut total = 0i64;
        loop {
            let (next, count) = match &cursor {
                None => (
                    format!("SELECT {k} FROM {t} ORDER BY {k} LIMIT 10000"),
                    format!("{sql} AND zd_c.{k} <= ?"),
                ),
                Some(_) => (
                    format!("SELECT {k} FROM {t} WHERE {k} > ? ORDER BY {k} LIMIT 10000"),
                    format!("{sql} AND zd_c.{k} > ? AND zd_c.{k} <= ?"),
                ),
            };
            let lower: Vec<Value> = cursor.iter().cloned().collect();
            let keys: Vec<Value> = self
                .conn
                .exec(&next, lower.clone())
                .map_err(|e| self.db_err("walking the table for orphans", &e))?;
            let Some(end) = keys.last().cloned() else {
                break;
            };
            let mut params = lower;
            params.push(end.clone());
            let n: Option<i64> = self
                .conn
                .exec_first(&count, params)
                .map_err(|e| self.db_err("counting rows without a parent", &e))?;
            total += n.unwrap_or(0);
            cursor = Some(end);
        }
        Ok(total)
    }

    /// No transaction spans DDL here: the default goes on first, then the triggers come off, each
    /// statement guarded and idempotent; completion is recorded last.
    fn finish(
        &mut self,
        state: &StateRow,
        index: usize,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let plan = state.plan.clone();
        for s in &plan.steps[index].sql {
            self.ddl_reconnecting(s, &plan, guard, emit)?;
        }
        self.state_exec(
            &format!(
                "UPDATE {} SET next_step = ?, status = 'completed', completed_at = UTC_TIMESTAMP(3), updated_at = UTC_TIMESTAMP(3) WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![(index as i64 + 1).into(), state.id.into()],
        )
        .map(|_| ())
    }

    fn run_undo(
        &mut self,
        id: i64,
        index: usize,
        sql: &[String],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        self.flush_notes(emit);
        let plan = self.state(id)?.plan;
        for s in sql {
            self.ddl_reconnecting(s, &plan, guard, emit)?;
        }
        self.state_exec(
            &format!(
                "UPDATE {} SET next_step = ?, updated_at = UTC_TIMESTAMP(3) WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![(index as i64).into(), id.into()],
        )
        .map(|_| ())
    }

    fn mark_rolled_back(&mut self, id: i64) -> Result<()> {
        self.state_exec(
            &format!(
                "UPDATE {} SET status = 'rolled-back', updated_at = UTC_TIMESTAMP(3) WHERE id = ?",
                quote(STATE_TABLE)
            ),
            vec![id.into()],
        )
        .map(|_| ())
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

    #[test]
    fn guards_catalog_statements_below_a_second_and_builds_in_whole_seconds() {
        let t = Duration::from_millis(300);
        assert_eq!(
            guarded_sql("ALTER TABLE `t` ADD COLUMN `c` int, ALGORITHM=INSTANT", t),
            "SET STATEMENT lock_wait_timeout=1, max_statement_time=0.300 FOR ALTER TABLE `t` ADD COLUMN `c` int, ALGORITHM=INSTANT"
        );
        assert_eq!(
            guarded_sql(
                "ALTER TABLE `t` ADD INDEX `i` (`c`), ALGORITHM=INPLACE, LOCK=NONE",
                Duration::from_millis(1500)
            ),
            "SET STATEMENT lock_wait_timeout=2 FOR ALTER TABLE `t` ADD INDEX `i` (`c`), ALGORITHM=INPLACE, LOCK=NONE"
        );
        assert!(
            guarded_sql("SET STATEMENT foreign_key_checks=0 FOR ALTER TABLE `t` ADD CONSTRAINT `f` FOREIGN KEY (`c`) REFERENCES `p` (`id`), ALGORITHM=INPLACE, LOCK=NONE", t)
                .starts_with("SET STATEMENT lock_wait_timeout=1, foreign_key_checks=0 FOR ALTER")
        );
    }
}
