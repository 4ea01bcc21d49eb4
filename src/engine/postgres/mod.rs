//! PostgreSQL 13–18. Everything zerodown knows about PostgreSQL lives here: which ALTERs are
//! catalog-only, which lock each statement takes, how the dual-write trigger must be written to run
//! for any application role, and the statements that act on the server under the lock guard.

mod connect;
pub mod rules;
mod session;

pub use connect::{SslMode, Target};
pub use rules::{PgEnv, PgReference, build_plan};

use super::{
    BatchOutcome, Column, Defaults, DriverLock, Engine, Event, KeyValue, LockGuardSettings,
    MaxLoad, Nice, Settings, StateRow, Status, TableSchema, Trigger,
};
use crate::error::{Error, Result};
use crate::plan::{DefaultKind, Plan, Volatility};
use crate::spec::{AddColumn, Dialect, Migration, analyze_expr};
use postgres::types::ToSql;
use postgres::{Client, Transaction};
use rules::{MIN_MAJOR, qualified};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The schema of zerodown's state, functions and counters.
pub const STATE_SCHEMA: &str = "zerodown";
/// The state table, in [`STATE_SCHEMA`].
pub const STATE_TABLE: &str = "migrations";
/// Advisory-lock key (two int4) of the one driver per database: "zd", 1.
const DRIVER_LOCK: (i32, i32) = (0x7a64, 1);
/// How long an online index build may take, by default.
const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(3600);
/// ISO-8601 UTC with milliseconds, as the state rows' times are read.
const TIME_FORMAT: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

pub use crate::engine::ansi::{literal, quote, quote_list};

fn state_table() -> String {
    qualified(STATE_SCHEMA, STATE_TABLE)
}

/// A database error in words: message, detail and hint, and the SQLSTATE.
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => {
            let mut m = format!("{} (SQLSTATE {})", d.message(), d.code().code());
            if let Some(detail) = d.detail() {
                m.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = d.hint() {
                m.push_str(&format!("; hint: {hint}"));
            }
            m
        }
        None => e.to_string(),
    }
}

fn sqlstate(e: &postgres::Error) -> Option<&str> {
    e.as_db_error().map(|d| d.code().code())
}

/// A failure inside a guarded transaction: a database error (maybe a lock timeout, retried) or another.
enum Fail {
    Pg(String, postgres::Error),
    Other(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Other(e)
    }
}

fn pg(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> Fail {
    let context = context.into();
    move |e| Fail::Pg(context, e)
}

/// Which relation to name the blockers of, when a lock attempt times out.
#[derive(Clone)]
enum LockTarget {
    /// The table of migration `id`.
    Migration(i64),
    /// zerodown's state table.
    State,
}

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

/// How long zerodown keeps trying to reconnect after losing its connection (a server restart).
const RECONNECT_BUDGET: Duration = Duration::from_secs(120);

/// An error that means the connection is gone (ended by an administrator, server restart, network).
fn is_disconnect(client: &Client, e: &postgres::Error) -> bool {
    client.is_closed()
        || e.is_closed()
        || matches!(sqlstate(e), Some(s) if s.starts_with("08") || s.starts_with("57P"))
}

/// Exponential backoff from 50 ms, capped at 5 s, with ±50% jitter so retrying sessions do not align.
fn jittered_backoff(attempt: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << attempt.min(7)).min(5_000);
    Duration::from_millis((base as f64 * rand::random_range(0.5..1.5)) as u64)
}

fn ms(d: Duration) -> u128 {
    d.as_millis().max(1)
}

/// A CONCURRENTLY statement, which must run outside any transaction.
fn is_concurrent(sql: &str) -> bool {
    let up = sql.trim_start().to_ascii_uppercase();
    up.starts_with("CREATE INDEX CONCURRENTLY")
        || up.starts_with("CREATE UNIQUE INDEX CONCURRENTLY")
        || up.starts_with("DROP INDEX CONCURRENTLY")
}

/// Reads a quoted identifier at the start of `s`; returns it and the rest.
fn read_quoted(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, ch)) = chars.next() {
        if ch == '"' {
            if chars.peek().map(|(_, c)| *c) == Some('"') {
                chars.next();
                out.push('"');
            } else {
                return Some((out, &s[i + 1..]));
            }
        } else {
            out.push(ch);
        }
    }
    None
}

/// (schema, index) of `CREATE [UNIQUE] INDEX CONCURRENTLY "ix" ON "schema"."t" …` as rules.rs writes it.
fn built_index(sql: &str) -> Option<(String, String)> {
    let rest = &sql[sql.find("CONCURRENTLY ")? + "CONCURRENTLY ".len()..];
    let (index, rest) = read_quoted(rest)?;
    let rest = rest.strip_prefix(" ON ")?;
    let (schema, _) = read_quoted(rest)?;
    Some((schema, index))
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

    /// Hands the notes gathered without a callback to the user.
    fn flush_notes(&mut self, emit: &mut dyn FnMut(Event)) {
        for n in self.notes.drain(..) {
            emit(Event::Note(n));
        }
    }

    /// Connects again after a dropped connection, with jittered backoff within [`RECONNECT_BUDGET`],
    /// and takes the driver lock again when this run drives (stopping if another run holds it now).
    fn reconnect(&mut self) -> Result<()> {
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

    /// Fails when another run took the driver lock while this one was disconnected.
    fn check_driver(&self) -> Result<()> {
        match &self.driver {
            Some(d) if d.lost() => d.ensure_lock(),
            _ => Ok(()),
        }
    }

    /// The raw connection, for tests.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// This run's id, carried in `application_name` as `zerodown <run id>`.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    fn db_err(&self, context: &str, e: &postgres::Error) -> Error {
        Error::db(context, self.target.scrub(&pg_message(e)))
    }

    /// Finds a table (or other relation) by name in the search path: exact name first, then the
    /// name as PostgreSQL folds an unquoted identifier. (oid, schema, name, relkind)
    fn find_relation(&mut self, name: &str) -> Result<Option<(u32, String, String, String)>> {
        for candidate in [name.to_string(), name.to_lowercase()] {
            let row = self
                .client
                .query_opt(
                    "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text
                     FROM pg_catalog.pg_class c
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     JOIN unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS s(nsp, pos)
                       ON s.nsp = n.nspname
                     WHERE c.relname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                     ORDER BY s.pos LIMIT 1",
                    &[&candidate],
                )
                .map_err(|e| self.db_err("reading the catalog", &e))?;
            if let Some(r) = row {
                return Ok(Some((r.get(0), r.get(1), r.get(2), r.get(3))));
            }
        }
        Ok(None)
    }

    /// Reads the table's schema from the catalog; returns it with its schema name and oid.
    pub fn table_schema(&mut self, table: &str) -> Result<(TableSchema, String, u32)> {
        let Some((oid, nsp, name, kind)) = self.find_relation(table)? else {
            let rows = self
                .client
                .query(
                    "SELECT c.relname::text FROM pg_catalog.pg_class c
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY (pg_catalog.current_schemas(false))
                     ORDER BY 1 LIMIT 50",
                    &[],
                )
                .map_err(|e| self.db_err("listing tables", &e))?;
            let tables: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            let path: String = self
                .client
                .query_one(
                    "SELECT array_to_string(pg_catalog.current_schemas(false), ', ')",
                    &[],
                )
                .map(|r| r.get(0))
                .unwrap_or_default();
            return Err(Error::Refused(format!(
                "table `{table}` not found in the search path ({path}) of {}; its tables are: {}",
                self.target.label,
                if tables.is_empty() {
                    "(none)".to_string()
                } else {
                    tables.join(", ")
                }
            )));
        };
        match kind.as_str() {
            "r" => {}
            "p" => {
                return Err(Error::Refused(format!(
                    "`{nsp}.{name}` is a partitioned table; zerodown does not migrate partitioned tables yet"
                )));
            }
            "v" | "m" => {
                return Err(Error::Refused(format!(
                    "`{nsp}.{name}` is a view; zerodown adds columns to tables"
                )));
            }
            _ => {
                return Err(Error::Refused(format!(
                    "`{nsp}.{name}` is a foreign table; zerodown adds columns to ordinary tables"
                )));
            }
        }
        if nsp == STATE_SCHEMA {
            return Err(Error::Refused(format!(
                "`{nsp}.{name}` is zerodown's own table"
            )));
        }
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
                        pg_catalog.pg_get_expr(d.adbin, d.adrelid),
                        coalesce(pg_catalog.array_position(pk.conkey, a.attnum), 0)::int4
                 FROM pg_catalog.pg_attribute a
                 LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 LEFT JOIN pg_catalog.pg_constraint pk ON pk.conrelid = a.attrelid AND pk.contype = 'p'
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY a.attnum",
                &[&oid],
            )
            .map_err(|e| self.db_err("reading columns", &e))?;
        let columns: Vec<Column> = rows
            .iter()
            .map(|r| Column {
                name: r.get(0),
                data_type: r.get(1),
                not_null: r.get(2),
                default: r.get(3),
                pk: r.get::<_, i32>(4) as u32,
            })
            .collect();
        let mut pk: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
        pk.sort_by_key(|c| c.pk);
        let key: Vec<String> = if !pk.is_empty() {
            pk.iter().map(|c| c.name.clone()).collect()
        } else {
            // A unique, valid, non-partial index on plain NOT NULL columns orders rows just as well.
            let row = self
                .client
                .query_opt(
                    "SELECT ARRAY(SELECT a.attname::text
                                  FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                                  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                                  WHERE k.ord <= i.indnkeyatts ORDER BY k.ord)
                     FROM pg_catalog.pg_index i
                     WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid
                       AND i.indpred IS NULL AND i.indexprs IS NULL
                       AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) AS k(attnum)
                                       JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                                       WHERE NOT a.attnotnull)
                     ORDER BY i.indnkeyatts, i.indexrelid LIMIT 1",
                    &[&oid],
                )
                .map_err(|e| self.db_err("reading indexes", &e))?;
            match row {
                Some(r) => r.get(0),
                None => {
                    return Err(Error::Refused(format!(
                        "table `{nsp}.{name}` has neither a primary key nor a unique index on NOT NULL columns, so zerodown cannot walk it in batches (nor can it find rows again after a crash); add one first, e.g. ALTER TABLE {} ADD PRIMARY KEY (id)",
                        qualified(&nsp, &name)
                    )));
                }
            }
        };
        let rows = self
            .client
            .query(
                "SELECT tgname::text, tgtype::int4 FROM pg_catalog.pg_trigger
                 WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY tgname",
                &[&oid],
            )
            .map_err(|e| self.db_err("reading triggers", &e))?;
        let mut triggers = Vec::new();
        for r in &rows {
            let tgname: String = r.get(0);
            if tgname.starts_with("zd_") {
                continue;
            }
            let tgtype: i32 = r.get(1);
            for (bit, event) in [(4, "INSERT"), (8, "DELETE"), (16, "UPDATE")] {
                if tgtype & bit != 0 {
                    triggers.push(Trigger {
                        name: tgname.clone(),
                        event: event.into(),
                    });
                }
            }
        }
        Ok((
            TableSchema {
                name,
                columns,
                key,
                strict: false,
                triggers,
            },
            nsp,
            oid,
        ))
    }

    /// Checks the migration's type and expressions against the database without changing anything
    /// (every probe is rolled back), and reads the default's volatility from the catalog.
    fn probe(
        &mut self,
        add: &AddColumn,
        schema: &str,
        table: &TableSchema,
    ) -> Result<Option<DefaultKind>> {
        let t = qualified(schema, &table.name);
        let timeout = ms(self.guard.timeout);
        let scrub = |m: String| self.target.scrub(&m);
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| Error::db("beginning a check", pg_message(&e)))?;
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{timeout}ms'"))
            .map_err(|e| Error::db("setting lock_timeout", pg_message(&e)))?;
        let ty = &add.data_type;
        tx.batch_execute(&format!("CREATE TEMP TABLE zd_probe (c {ty})"))
            .map_err(|e| {
                Error::Refused(scrub(format!(
                    "the type `{ty}` is not usable on this database: {}",
                    pg_message(&e)
                )))
            })?;
        let refuse = |what: &str, expr: &str, e: &postgres::Error, path_hint: bool| {
            let mut m = format!(
                "the {what} `{expr}` does not compile on this database: {}",
                pg_message(e)
            );
            if path_hint && matches!(sqlstate(e), Some("42883" | "42704" | "42P01" | "3F000")) {
                m.push_str("; the dual-write trigger and the backfill run with search_path = pg_catalog, pg_temp, so functions and types that are not built in must be schema-qualified");
            }
            Error::Refused(scrub(m))
        };
        if let Some(check) = &add.check {
            tx.prepare(&format!(
                "SELECT ({check}) FROM (SELECT *, CAST(NULL AS {ty}) AS {} FROM {t}) AS {} LIMIT 0",
                quote(&add.column),
                quote(&table.name)
            ))
            .map_err(|e| refuse("check", check, &e, false))?;
        }
        tx.batch_execute("SET LOCAL search_path = pg_catalog, pg_temp")
            .map_err(|e| Error::db("setting search_path", pg_message(&e)))?;
        let qtype: String = tx
            .query_one(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = 'pg_temp.zd_probe'::regclass AND attname = 'c'",
                &[],
            )
            .map_err(|e| Error::db("reading the probe's type", pg_message(&e)))?
            .get(0);
        if let Some(b) = &add.backfill {
            tx.prepare(&format!("SELECT CAST(({b}) AS {qtype}) FROM {t} LIMIT 0"))
                .map_err(|e| refuse("backfill expression", b, &e, true))?;
        }
        let mut kind = None;
        if let Some(d) = &add.default {
            let info = analyze_expr(d, Dialect::Postgres, "default").map_err(Error::from)?;
            if info.columns.is_empty() {
                tx.batch_execute(&format!(
                    "CREATE TEMP VIEW zd_probe_v AS SELECT CAST(({d}) AS {qtype}) AS v"
                ))
                .map_err(|e| refuse("default", d, &e, true))?;
                let tree: String = tx
                    .query_one(
                        "SELECT ev_action::text FROM pg_rewrite WHERE ev_class = 'pg_temp.zd_probe_v'::regclass",
                        &[],
                    )
                    .map_err(|e| Error::db("reading the default's parse tree", pg_message(&e)))?
                    .get(0);
                let oids = called_functions(&tree);
                let v: String = tx
                    .query_one(
                        "SELECT coalesce(max(provolatile::text), 'i') FROM pg_proc WHERE oid = ANY ($1)",
                        &[&oids],
                    )
                    .map_err(|e| Error::db("reading function volatility", pg_message(&e)))?
                    .get(0);
                let mut vol = match v.as_str() {
                    "v" => Volatility::Volatile,
                    "s" => Volatility::Time,
                    _ => Volatility::Immutable,
                };
                // CURRENT_TIMESTAMP and friends before PostgreSQL 16: a node, not a function call.
                if vol == Volatility::Immutable && tree.contains("{SQLVALUEFUNCTION") {
                    vol = Volatility::Time;
                }
                kind = Some(rules::default_kind(&info, vol));
            }
        }
        drop(tx); // rolled back: no trace
        Ok(kind)
    }

    /// Resolves `references` to (schema, table, column) and checks the target is unique.
    fn resolve_reference(&mut self, add: &AddColumn) -> Result<Option<PgReference>> {
        let Some(r) = &add.references else {
            return Ok(None);
        };
        let Some((oid, nsp, name, kind)) = self.find_relation(&r.table)? else {
            return Err(Error::Refused(format!(
                "`references = \"{r}\"`: table `{}` not found; create it first",
                r.table
            )));
        };
        if kind != "r" && kind != "p" {
            return Err(Error::Refused(format!(
                "`references = \"{r}\"`: `{nsp}.{name}` is not a table"
            )));
        }
        let column: String = match &r.column {
            Some(c) => {
                let found = self
                    .client
                    .query_opt(
                        "SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped
                         AND (attname = $2 OR attname = lower($2)) ORDER BY attname = $2 DESC LIMIT 1",
                        &[&oid, c],
                    )
                    .map_err(|e| self.db_err("reading the referenced table", &e))?;
                match found {
                    Some(row) => row.get(0),
                    None => {
                        return Err(Error::Refused(format!(
                            "`references = \"{r}\"`: table `{nsp}.{name}` has no column `{c}`"
                        )));
                    }
                }
            }
            None => {
                let rows = self
                    .client
                    .query(
                        "SELECT a.attname::text FROM pg_constraint k
                         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
                         WHERE k.conrelid = $1 AND k.contype = 'p'",
                        &[&oid],
                    )
                    .map_err(|e| self.db_err("reading the referenced table", &e))?;
                if rows.len() != 1 {
                    return Err(Error::Refused(format!(
                        "`references = \"{r}\"`: table `{nsp}.{name}` has no single-column primary key; name the column, as `{name}(id)`"
                    )));
                }
                rows[0].get(0)
            }
        };
        let unique: bool = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
                   WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
                     AND i.indexprs IS NULL AND i.indnkeyatts = 1 AND a.attname = $2
                     AND a.attnum = i.indkey[0])",
                &[&oid, &column],
            )
            .map_err(|e| self.db_err("reading the referenced table's indexes", &e))?
            .get(0);
        if !unique {
            return Err(Error::Refused(format!(
                "`references = \"{r}\"`: `{nsp}.{name}`.`{column}` is neither the primary key nor UNIQUE, so PostgreSQL cannot reference it; add a unique constraint on it first"
            )));
        }
        Ok(Some(PgReference {
            schema: nsp,
            table: name,
            column,
        }))
    }

    /// Runs `f` in its own transaction under `SET LOCAL lock_timeout`, retrying lock timeouts
    /// (55P03) and deadlocks with jittered backoff within the budget, naming the blockers each time.
    fn guarded<T>(
        &mut self,
        what: &str,
        guard: &LockGuardSettings,
        target: LockTarget,
        emit: &mut dyn FnMut(Event),
        mut f: impl FnMut(&mut Transaction) -> std::result::Result<T, Fail>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        let mut reconnects = 0;
        loop {
            self.check_driver()?;
            attempt += 1;
            let attempt_started = Instant::now();
            let outcome = (|| {
                let mut tx = self
                    .client
                    .transaction()
                    .map_err(pg("beginning a transaction"))?;
                tx.batch_execute(&format!(
                    "SET LOCAL lock_timeout = '{}ms'",
                    ms(guard.timeout)
                ))
                .map_err(pg("setting lock_timeout"))?;
                let v = f(&mut tx)?;
                tx.commit().map_err(pg("committing"))?;
                Ok(v)
            })();
            let (context, e) = match outcome {
                Ok(v) => return Ok(v),
                Err(Fail::Other(e)) => return Err(e),
                Err(Fail::Pg(context, e)) => (context, e),
            };
            if is_disconnect(&self.client, &e) && reconnects < 10 {
                // The transaction rolled back (or committed, which `f` finds out on its retry).
                tracing::info!(
                    "{what}: connection lost: {}",
                    self.target.scrub(&e.to_string())
                );
                reconnects += 1;
                self.reconnect()?;
                self.flush_notes(emit);
                continue;
            }
            if !matches!(sqlstate(&e), Some("55P03" | "40P01")) {
                return Err(self.db_err(&format!("{what}: {context}"), &e));
            }
            let waited = attempt_started.elapsed();
            let blocker = self.blockers(&target);
            emit(Event::LockRetry {
                attempt,
                waited,
                blocker: blocker.clone(),
            });
            if blocker.contains("autovacuum:") {
                self.yield_autovacuum(&target, guard, emit)?;
            }
            let backoff = jittered_backoff(attempt);
            if started.elapsed() + backoff + guard.timeout > guard.budget {
                return Err(Error::LockBudget(format!(
                    "{what}: could not get its lock in {attempt} attempts over {:.1?} (lock budget {}); last blocked by {blocker} — nothing was changed by this step; end that session or run the command again later, or raise --lock-budget",
                    started.elapsed(),
                    humantime::format_duration(guard.budget)
                )));
            }
            std::thread::sleep(backoff);
        }
    }

    /// The sessions holding or queued for a lock on the relation: pid, state, transaction age, query.
    /// The qualified name of the table a lock target stands for.
    fn target_relation(&mut self, target: &LockTarget) -> Option<String> {
        match target {
            LockTarget::State => Some(state_table()),
            LockTarget::Migration(id) => self
                .client
                .query_opt(
                    &format!("SELECT plan FROM {} WHERE id = $1", state_table()),
                    &[id],
                )
                .ok()
                .flatten()
                .and_then(|r| serde_json::from_str::<Plan>(&r.get::<_, String>(0)).ok())
                .map(|p| qualified(p.schema.as_deref().unwrap_or("public"), &p.table)),
        }
    }

    /// Gets autovacuum out of a DDL step's way. An autovacuum holds ShareUpdateExclusiveLock, which
    /// every DDL lock conflicts with, and PostgreSQL cancels it for a waiter only after
    /// `deadlock_timeout` (1 s) — longer than zerodown's lock timeout, so each attempt would queue
    /// the application behind it and give up. The backfill rewrote every row, so one is likely.
    /// zerodown cancels it (PostgreSQL runs it again later) when allowed to; otherwise, and for an
    /// autovacuum that prevents wraparound (never cancelled), it waits for it without queueing a
    /// lock, within the lock budget.
    fn yield_autovacuum(
        &mut self,
        target: &LockTarget,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let Some(rel) = self.target_relation(target) else {
            return Ok(());
        };
        let find = "SELECT DISTINCT a.pid, coalesce(a.query, '') LIKE '%to prevent wraparound%'
             FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'relation' AND l.relation = to_regclass($1) AND l.granted
               AND a.backend_type = 'autovacuum worker'";
        let started = Instant::now();
        let mut said = false;
        loop {
            let workers: Vec<(i32, bool)> = self
                .client
                .query(find, &[&rel])
                .map_err(|e| self.db_err("looking for autovacuum on the table", &e))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            if workers.is_empty() {
                return Ok(());
            }
            let mut waiting = false;
            for (pid, wraparound) in workers {
                let cancelled = !wraparound
                    && self
                        .client
                        .query_one("SELECT pg_catalog.pg_cancel_backend($1)", &[&pid])
                        .map(|r| r.get::<_, bool>(0))
                        .unwrap_or(false);
                if cancelled {
                    emit(Event::Note(format!(
                        "cancelled an autovacuum of {rel} (pid {pid}) that the next step's lock would have queued behind; PostgreSQL runs it again later"
                    )));
                } else {
                    waiting = true;
                    if !said {
                        said = true;
                        emit(Event::Note(format!(
                            "waiting for {} of {rel} (pid {pid}) to end before taking the next step's lock, so the application never queues behind it{}",
                            if wraparound {
                                "an autovacuum that prevents transaction ID wraparound"
                            } else {
                                "an autovacuum"
                            },
                            if wraparound {
                                ""
                            } else {
                                " (cancelling it needs pg_signal_backend, or pg_signal_autovacuum_worker on PostgreSQL 18)"
                            }
                        )));
                    }
                }
            }
            if waiting && started.elapsed() >= guard.budget {
                // Let the guarded attempts report what blocks them.
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(if waiting { 200 } else { 20 }));
        }
    }

    fn blockers(&mut self, target: &LockTarget) -> String {
        let rel = self.target_relation(target);
        let Some(rel) = rel else {
            return "an unknown session".into();
        };
        let rows = self.client.query(
            "SELECT a.pid, coalesce(a.state, '?'), coalesce(extract(epoch FROM now() - a.xact_start)::float8, 0),
                    coalesce(a.query, ''), l.mode, l.granted,
                    coalesce(a.application_name, ''), coalesce(a.usename::text, '?')
             FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'relation' AND l.relation = to_regclass($1) AND l.pid <> pg_backend_pid()
             ORDER BY l.granted DESC, a.xact_start NULLS LAST LIMIT 5",
            &[&rel],
        );
        match rows {
            Ok(rows) if !rows.is_empty() => rows
                .iter()
                .map(|r| {
                    let pid: i32 = r.get(0);
                    let state: String = r.get(1);
                    let age: f64 = r.get(2);
                    let query = super::sql_shape::statement_shape(&r.get::<_, String>(3), false);
                    let mode: String = r.get(4);
                    let granted: bool = r.get(5);
                    let app: String = r.get(6);
                    let user: String = r.get(7);
                    format!(
                        "pid {pid}{} (user {user}, {state}, transaction open {age:.1}s, {} {mode}): {query}",
                        if app.is_empty() {
                            String::new()
                        } else {
                            format!(" [{app}]")
                        },
                        if granted { "holds" } else { "waits for" }
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            Ok(_) => format!("a session that has let go of {rel} since"),
            Err(e) => format!("a session on {rel} (could not list it: {})", pg_message(&e)),
        }
    }

    /// Runs a CONCURRENTLY statement in autocommit under the build timeout. A build first drops an
    /// INVALID index a failed earlier build left under the same name; a build that fails drops its own.
    fn run_concurrent(&mut self, sql: &str, emit: &mut dyn FnMut(Event)) -> Result<()> {
        let timeout = ms(self.build_timeout);
        let built = if sql.trim_start().to_ascii_uppercase().starts_with("CREATE") {
            built_index(sql)
        } else {
            None
        };
        if let Some((schema, index)) = &built {
            let valid: Option<bool> = self
                .client
                .query_opt(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                    &[schema, index],
                )
                .map_err(|e| self.db_err("looking for a leftover index", &e))?
                .map(|r| r.get(0));
            match valid {
                Some(true) => return Ok(()),
                Some(false) => {
                    emit(Event::Note(format!(
                        "index {index} was left INVALID by a failed build: dropping it and building it again"
                    )));
                    self.autocommit(
                        &format!(
                            "DROP INDEX CONCURRENTLY IF EXISTS {}",
                            qualified(schema, index)
                        ),
                        timeout,
                    )?;
                }
                None => {}
            }
        }
        match self.autocommit(sql, timeout) {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Some((schema, index)) = &built {
                    let _ = self.autocommit(
                        &format!(
                            "DROP INDEX CONCURRENTLY IF EXISTS {}",
                            qualified(schema, index)
                        ),
                        timeout,
                    );
                }
                Err(e)
            }
        }
    }

    /// [`run_concurrent`](Self::run_concurrent), again after a dropped connection (the server
    /// cancels a build whose client is gone; the retry drops the INVALID index it left).
    fn concurrent_reconnecting(&mut self, sql: &str, emit: &mut dyn FnMut(Event)) -> Result<()> {
        for _ in 0..10 {
            self.check_driver()?;
            match self.run_concurrent(sql, emit) {
                Err(_)
                    if self.client.is_closed() || self.client.simple_query("SELECT 1").is_err() =>
                {
                    self.reconnect()?;
                    self.flush_notes(emit);
                }
                r => return r,
            }
        }
        self.run_concurrent(sql, emit)
    }

    /// One statement outside any transaction, under lock and statement timeouts of `timeout_ms`.
    fn autocommit(&mut self, sql: &str, timeout_ms: u128) -> Result<()> {
        self.client
            .batch_execute(&format!(
                "SET lock_timeout = '{timeout_ms}ms'; SET statement_timeout = '{timeout_ms}ms'"
            ))
            .map_err(|e| self.db_err("setting the build timeout", &e))?;
        let result = self.client.batch_execute(sql);
        let reset = self
            .client
            .batch_execute("RESET lock_timeout; RESET statement_timeout");
        result.map_err(|e| {
            let hint = match sqlstate(&e) {
                Some("57014") | Some("55P03") => " (the build timed out: raise --build-timeout, or end the long transactions it waits for)",
                Some("23505") => " (existing rows have duplicate values)",
                _ => "",
            };
            self.db_err(&format!("running `{sql}`{hint}"), &e)
        })?;
        reset.map_err(|e| self.db_err("resetting timeouts", &e))
    }

    fn state_rows(&mut self, id: Option<i64>) -> Result<Vec<StateRow>> {
        let fmt = |col: &str| format!("to_char({col} AT TIME ZONE 'UTC', {TIME_FORMAT})");
        let sql = format!(
            "SELECT id, name, spec, plan, status, next_step, cursor, hi, captured, rows_done, rows_total,
                    cancel_requested, {}, {}, {}, {}, run_id, timings::text
             FROM {} {} ORDER BY id",
            fmt("created_at"),
            fmt("updated_at"),
            fmt("completed_at"),
            fmt("heartbeat"),
            state_table(),
            if id.is_some() { "WHERE id = $1" } else { "" }
        );
        let query = |c: &mut Client| match id {
            Some(id) => c.query(&sql, &[&id]),
            None => c.query(&sql, &[]),
        };
        let rows = match query(&mut self.client) {
            Err(e) if is_disconnect(&self.client, &e) => {
                self.reconnect()?;
                query(&mut self.client)
            }
            r => r,
        }
        .map_err(|e| self.db_err("reading state", &e))?;
        let bad = |what: &str, e: serde_json::Error| {
            Error::db(
                "reading state",
                format!("the state row's {what} is unreadable: {e}"),
            )
        };
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
        rows.iter()
            .map(|r| {
                let status: String = r.get(4);
                Ok(StateRow {
                    id: r.get(0),
                    name: r.get(1),
                    spec: r.get(2),
                    plan: serde_json::from_str(&r.get::<_, String>(3))
                        .map_err(|e| bad("plan", e))?,
                    status: Status::parse(&status).ok_or_else(|| {
                        Error::db("reading state", format!("unknown status `{status}`"))
                    })?,
                    next_step: r.get::<_, i32>(5) as usize,
                    cursor: json(r.get(6), "cursor")?,
                    hi: json(r.get(7), "upper bound")?,
                    captured: json(r.get(8), "captured value")?,
                    rows_done: r.get(9),
                    rows_total: r.get(10),
                    cancel_requested: r.get(11),
                    created_at: r.get(12),
                    updated_at: r.get(13),
                    completed_at: r.get(14),
                    heartbeat: r.get(15),
                    run_id: r.get(16),
                    timings: serde_json::from_str(&r.get::<_, String>(17))
                        .map_err(|e| bad("timings", e))?,
                })
            })
            .collect()
    }

    fn state_exists(&mut self) -> Result<bool> {
        let sql = "SELECT to_regclass($1) IS NOT NULL";
        match self.client.query_one(sql, &[&state_table()]) {
            Err(e) if is_disconnect(&self.client, &e) => {
                self.reconnect()?;
                self.client.query_one(sql, &[&state_table()])
            }
            r => r,
        }
        .map(|r| r.get(0))
        .map_err(|e| self.db_err("reading the catalog", &e))
    }

    /// A write to zerodown's own state under the lock guard.
    fn state_update(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<()> {
        let guard = self.guard;
        self.guarded(
            "updating zerodown's state",
            &guard,
            LockTarget::State,
            &mut |_| {},
            |tx| {
                tx.execute(sql, params)
                    .map(|_| ())
                    .map_err(pg("updating state"))
            },
        )
    }

    /// Key column types of the migration's table (for casting the text cursor back).
    fn key_types_for(&mut self, id: i64, plan: &Plan) -> Result<Vec<String>> {
        if let Some((cached, types)) = &self.key_types
            && *cached == id
        {
            return Ok(types.clone());
        }
        let fill = plan.fill.as_ref().expect("a fill plan");
        let rel = qualified(plan.schema.as_deref().unwrap_or("public"), &plan.table);
        // Printed under the batches' search path (pg_catalog), so a user type comes out qualified.
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| Error::db("reading key types", pg_message(&e)))?;
        tx.batch_execute("SET LOCAL search_path = pg_catalog, pg_temp")
            .map_err(|e| Error::db("reading key types", pg_message(&e)))?;
        let mut types = Vec::new();
        for k in &fill.key {
            let t: Option<String> = tx
                .query_opt(
                    "SELECT pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute
                     WHERE attrelid = pg_catalog.to_regclass($1) AND attname = $2",
                    &[&rel, k],
                )
                .map_err(|e| Error::db("reading key types", pg_message(&e)))?
                .map(|r| r.get(0));
            types.push(t.ok_or_else(|| {
                Error::db(
                    "reading key types",
                    format!("column `{k}` of {rel} is gone"),
                )
            })?);
        }
        drop(tx);
        self.key_types = Some((id, types.clone()));
        Ok(types)
    }

    fn table_of(plan: &Plan) -> String {
        qualified(plan.schema.as_deref().unwrap_or("public"), &plan.table)
    }
}

/// Oids of the functions a stored parse tree calls (`:funcid`, operators' `:opfuncid`).
pub fn called_functions(tree: &str) -> Vec<u32> {
    let mut oids = Vec::new();
    for tag in [":funcid ", ":opfuncid "] {
        let mut rest = tree;
        while let Some(i) = rest.find(tag) {
            rest = &rest[i + tag.len()..];
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(oid) = digits.parse::<u32>()
                && oid != 0
                && !oids.contains(&oid)
            {
                oids.push(oid);
            }
        }
    }
    oids
}

fn text_keys(values: &[KeyValue]) -> Vec<String> {
    values
        .iter()
        .map(|v| match v {
            KeyValue::Text(s) => s.clone(),
            KeyValue::Int(i) => i.to_string(),
            KeyValue::Real(f) => f.to_string(),
            KeyValue::Blob { blob } => format!("\\x{blob}"),
        })
        .collect()
}

impl Engine for Postgres {
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

    fn plan(&mut self, migration: &Migration) -> Result<Plan> {
        let add = migration.add_column();
        let (schema, nsp, _) = self.table_schema(&add.table)?;
        let reference = self.resolve_reference(add)?;
        // The pure checks first (unknown columns, NOT NULL without a value), then the server's.
        let draft_env = PgEnv {
            version_num: self.version_num,
            schema: nsp.clone(),
            default_kind: Some(DefaultKind::Volatile),
            reference: reference.clone(),
        };
        build_plan(migration, &schema, &draft_env)?;
        let default_kind = self.probe(add, &nsp, &schema)?;
        build_plan(
            migration,
            &schema,
            &PgEnv {
                version_num: self.version_num,
                schema: nsp,
                default_kind,
                reference,
            },
        )
    }

    fn preflight(&mut self, settings: &Settings, emit: &mut dyn FnMut(Event)) -> Result<()> {
        self.flush_notes(emit);
        self.build_timeout = settings.build_timeout.unwrap_or(DEFAULT_BUILD_TIMEOUT);
        Ok(())
    }

    /// Takes the advisory lock from its own session, which also writes this run's heartbeat. A holder
    /// whose run's heartbeat is stale is a dead run's leftover: its sessions are ended (and named in a
    /// note); a live holder gets a Busy error naming it.
    fn lock_driver(&mut self, _migration: &str, wait: Duration) -> Result<Box<dyn DriverLock>> {
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

    fn ensure_state_table(&mut self, emit: &mut dyn FnMut(Event)) -> Result<()> {
        if self.state_exists()? {
            return Ok(());
        }
        let sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {st} (
               id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
               name text NOT NULL,
               spec text NOT NULL,
               plan text NOT NULL,
               status text NOT NULL,
               next_step integer NOT NULL DEFAULT 0,
               cursor text,
               hi text,
               captured text,
               rows_done bigint NOT NULL DEFAULT 0,
               rows_total bigint,
               cancel_requested boolean NOT NULL DEFAULT false,
               run_id text,
               heartbeat timestamptz,
               created_at timestamptz NOT NULL DEFAULT now(),
               updated_at timestamptz NOT NULL DEFAULT now(),
               completed_at timestamptz,
               timings jsonb NOT NULL DEFAULT '{{}}'
             );
             CREATE UNIQUE INDEX IF NOT EXISTS {ix} ON {st} (name) WHERE status <> 'rolled-back';",
            s = quote(STATE_SCHEMA),
            st = state_table(),
            ix = quote("migrations_active_name"),
        );
        let guard = self.guard;
        self.guarded(
            "creating zerodown's state table",
            &guard,
            LockTarget::State,
            emit,
            |tx| {
                tx.batch_execute(&sql)
                    .map_err(pg("creating the state table"))
            },
        )
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
        emit: &mut dyn FnMut(Event),
    ) -> Result<i64> {
        let json = serde_json::to_string(plan).expect("a plan serializes");
        let sql = format!(
            "INSERT INTO {} (name, spec, plan, status, run_id, heartbeat) VALUES ($1, $2, $3, 'started', $4, now()) RETURNING id",
            state_table()
        );
        let guard = self.guard;
        let run_id = self.run_id.clone();
        self.guarded(
            "recording the migration",
            &guard,
            LockTarget::State,
            emit,
            |tx| {
                tx.query_one(&sql, &[&name, &spec, &json, &run_id])
                    .map(|r| r.get(0))
                    .map_err(pg("recording the migration"))
            },
        )
    }

    fn set_status(&mut self, id: i64, status: Status) -> Result<()> {
        self.state_update(
            &format!(
                "UPDATE {} SET status = $1, updated_at = now(), completed_at = CASE WHEN $1 = 'completed' THEN now() ELSE completed_at END WHERE id = $2",
                state_table()
            ),
            &[&status.label(), &id],
        )
    }

    fn request_cancel(&mut self, id: i64, on: bool) -> Result<()> {
        self.state_update(
            &format!(
                "UPDATE {} SET cancel_requested = $1 WHERE id = $2",
                state_table()
            ),
            &[&on, &id],
        )
    }

    fn add_timing(&mut self, id: i64, phase: &str, seconds: f64) -> Result<()> {
        self.state_update(
            &format!(
                "UPDATE {} SET timings = jsonb_set(timings, ARRAY[$1::text], to_jsonb(coalesce((timings ->> $1::text)::float8, 0) + $2::float8)) WHERE id = $3",
                state_table()
            ),
            &[&phase, &seconds, &id],
        )
    }

    fn heartbeat(&mut self, id: i64) -> Result<()> {
        let run_id = self.run_id.clone();
        self.state_update(
            &format!(
                "UPDATE {} SET heartbeat = now(), run_id = $1 WHERE id = $2",
                state_table()
            ),
            &[&run_id, &id],
        )
    }

    /// Client sessions in `pg_stat_activity` running a statement that began less than a second
    /// ago (the application's traffic, not a long report), less zerodown's own (named by
    /// `application_name`). Sessions of other roles show no state without pg_read_all_stats, and so
    /// count as idle: the limit then watches only what this role can see.
    fn running_sessions(&mut self) -> Result<Option<u32>> {
        let sql = "SELECT count(*) FROM pg_catalog.pg_stat_activity
             WHERE state = 'active' AND backend_type = 'client backend'
               AND query_start > pg_catalog.clock_timestamp() - interval '1 second'
               AND pid <> pg_catalog.pg_backend_pid()
               AND coalesce(application_name, '') NOT LIKE 'zerodown %'";
        let count = |c: &mut Client| c.query_one(sql, &[]);
        let row = match count(&mut self.client) {
            Err(e) if is_disconnect(&self.client, &e) => {
                self.reconnect()?;
                count(&mut self.client)
            }
            r => r,
        }
        .map_err(|e| self.db_err("counting the sessions running statements", &e))?;
        Ok(Some(
            row.get::<_, i64>(0).clamp(0, i64::from(u32::MAX)) as u32
        ))
    }

    fn run_ddl(
        &mut self,
        id: i64,
        index: usize,
        sql: &[String],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let record = format!(
            "UPDATE {} SET next_step = $1, updated_at = now(), heartbeat = now() WHERE id = $2",
            state_table()
        );
        let next = index as i32 + 1;
        self.flush_notes(emit);
        self.yield_autovacuum(&LockTarget::Migration(id), guard, emit)?;
        if sql.iter().any(|s| is_concurrent(s)) {
            // CONCURRENTLY cannot run in a transaction: build, then record; a crash in between
            // finds the valid index at the next run and only records it.
            for s in sql {
                self.concurrent_reconnecting(s, emit)?;
            }
            return self.state_update(&record, &[&next, &id]);
        }
        let done = format!(
            "SELECT next_step >= $1 FROM {} WHERE id = $2 FOR UPDATE",
            state_table()
        );
        self.guarded(
            &format!("step {}", index + 1),
            guard,
            LockTarget::Migration(id),
            emit,
            |tx| {
                // Committed before a dropped connection could tell us: nothing left to do.
                let already: bool = tx
                    .query_one(&done, &[&next, &id])
                    .map_err(pg("reading the step's state"))?
                    .get(0);
                if already {
                    return Ok(());
                }
                for s in sql {
                    tx.batch_execute(s).map_err(pg(format!("running `{s}`")))?;
                }
                tx.execute(&record, &[&next, &id])
                    .map_err(pg("recording the step"))?;
                Ok(())
            },
        )
    }

    fn mark_step_done(&mut self, id: i64, index: usize) -> Result<()> {
        self.state_update(
            &format!(
                "UPDATE {} SET next_step = $1, updated_at = now() WHERE id = $2",
                state_table()
            ),
            &[&(index as i32 + 1), &id],
        )
    }

    fn count_null_fill(&mut self, plan: &Plan) -> Result<i64> {
        let fill = plan.fill.as_ref().expect("a fill plan");
        let sql = format!(
            "SELECT count(*) FROM {} WHERE ({}) IS NULL",
            Self::table_of(plan),
            fill.expr
        );
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| Error::db("counting rows", pg_message(&e)))?;
        tx.batch_execute(&format!(
            "SET LOCAL search_path = pg_catalog, pg_temp; SET LOCAL lock_timeout = '{}ms'",
            ms(self.guard.timeout)
        ))
        .map_err(|e| Error::db("counting rows", pg_message(&e)))?;
        let n: i64 = tx
            .query_one(&sql, &[])
            .map_err(|e| Error::db("counting rows whose value would be NULL", pg_message(&e)))?
            .get(0);
        Ok(n)
    }

    fn begin_backfill(&mut self, id: i64, plan: &Plan) -> Result<StateRow> {
        let state = self
            .state_rows(Some(id))?
            .pop()
            .ok_or_else(|| Error::db("reading state", "the migration's row vanished"))?;
        self.key_types_for(id, plan)?;
        if state.hi.is_some() {
            return Ok(state);
        }
        let fill = plan.fill.as_ref().expect("a fill plan");
        let t = Self::table_of(plan);
        let as_text = fill
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{}::text AS zd_k{i}", quote(k)))
            .collect::<Vec<_>>()
            .join(", ");
        let desc = fill
            .key
            .iter()
            .map(|k| format!("{} DESC", quote(k)))
            .collect::<Vec<_>>()
            .join(", ");
        let hi: Vec<KeyValue> = self
            .client
            .query_opt(
                &format!("SELECT {as_text} FROM {t} ORDER BY {desc} LIMIT 1"),
                &[],
            )
            .map_err(|e| self.db_err("finding the backfill's upper bound", &e))?
            .map(|r| {
                (0..fill.key.len())
                    .map(|i| KeyValue::Text(r.get(i)))
                    .collect()
            })
            .unwrap_or_default();
        let total: i64 = self
            .client
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .map_err(|e| self.db_err("counting rows", &e))?
            .get(0);
        let hi_json = serde_json::to_string(&hi).unwrap();
        self.state_update(
            &format!(
                "UPDATE {} SET hi = $1, rows_total = $2, updated_at = now() WHERE id = $3 AND hi IS NULL",
                state_table()
            ),
            &[&hi_json, &total, &id],
        )?;
        self.state_rows(Some(id))?
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
        let types = self.key_types_for(state.id, plan)?;
        let fill = plan.fill.as_ref().expect("a backfill step has a fill plan");
        let schema = plan.schema.as_deref().unwrap_or("public");
        let sql_first = rules::batch_sql(schema, &plan.table, &plan.column, fill, &types, true);
        let sql_next = rules::batch_sql(schema, &plan.table, &plan.column, fill, &types, false);
        let hi = text_keys(&hi);
        // The cursor is read from the state row inside the batch's transaction, not trusted from
        // memory: a batch that committed just before a dropped connection is never done twice.
        let read_cursor = format!(
            "SELECT cursor FROM {} WHERE id = $1 FOR UPDATE",
            state_table()
        );
        let n = fill.key.len();
        let id = state.id;
        let run_id = self.run_id.clone();
        let save = format!(
            "UPDATE {} SET cursor = $1, rows_done = rows_done + $2, heartbeat = now(), updated_at = now(), run_id = $4 WHERE id = $3 RETURNING cancel_requested",
            state_table()
        );
        let mut hold = Duration::ZERO;
        let (scanned, updated, new_cursor, cancel) = self.guarded(
            "a backfill batch",
            guard,
            LockTarget::Migration(id),
            emit,
            |tx| {
                let t0 = Instant::now();
                tx.batch_execute("SET LOCAL search_path = pg_catalog, pg_temp")
                    .map_err(pg("setting search_path"))?;
                let saved: Option<String> = tx
                    .query_one(&read_cursor, &[&id])
                    .map_err(pg("reading the cursor"))?
                    .get(0);
                let saved: Option<Vec<KeyValue>> = saved
                    .map(|c| serde_json::from_str(&c))
                    .transpose()
                    .map_err(|e| {
                        Fail::Other(Error::db(
                            "reading the cursor",
                            format!("the state row's cursor is unreadable: {e}"),
                        ))
                    })?;
                let (select, update) = if saved.is_some() {
                    &sql_next
                } else {
                    &sql_first
                };
                let cursor = saved.as_deref().map(text_keys).unwrap_or_default();
                let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
                for c in &cursor {
                    params.push(c);
                }
                for h in &hi {
                    params.push(h);
                }
                params.push(&batch_size);
                let row = tx
                    .query_opt(select, &params)
                    .map_err(pg("finding a batch's keys"))?;
                let Some(row) = row else {
                    return Ok((0i64, 0i64, None, false));
                };
                let scanned: i64 = row.get(0);
                let end: Vec<String> = (0..n).map(|i| row.get::<_, String>(i + 1)).collect();
                let mut up: Vec<&(dyn ToSql + Sync)> = Vec::new();
                for c in &cursor {
                    up.push(c);
                }
                for e in &end {
                    up.push(e);
                }
                let updated = tx.execute(update, &up).map_err(pg("filling a batch"))? as i64;
                let new_cursor: Vec<KeyValue> = end.into_iter().map(KeyValue::Text).collect();
                let cursor_json = serde_json::to_string(&new_cursor).unwrap();
                let cancel: bool = tx
                    .query_one(&save, &[&cursor_json, &scanned, &id, &run_id])
                    .map_err(pg("saving the cursor"))?
                    .get(0);
                hold = t0.elapsed();
                Ok((scanned, updated, Some(new_cursor), cancel))
            },
        )?;
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
        let fill = plan.fill.as_ref().expect("a fill plan");
        let t = Self::table_of(plan);
        let c = quote(&plan.column);
        let keys = format!("({})", quote_list(&fill.key));
        // Short transactions, each filling at most 1000 rows found NULL; usually none are found.
        let sql = format!(
            "UPDATE {t} SET {c} = ({e}) WHERE {keys} IN (SELECT {k} FROM {t} WHERE {c} IS NULL AND ({e}) IS NOT NULL LIMIT 1000) AND {c} IS NULL",
            e = fill.expr,
            k = quote_list(&fill.key)
        );
        for _ in 0..100_000 {
            let n = self.guarded(
                "the final sweep",
                guard,
                LockTarget::Migration(state.id),
                emit,
                |tx| {
                    tx.batch_execute("SET LOCAL search_path = pg_catalog, pg_temp")
                        .map_err(pg("setting search_path"))?;
                    tx.execute(&sql, &[]).map_err(pg("the final sweep"))
                },
            )?;
            if n == 0 {
                break;
            }
        }
        self.client
            .query_one(&format!("SELECT count(*) FROM {t} WHERE {c} IS NULL"), &[])
            .map(|r| r.get(0))
            .map_err(|e| self.db_err("counting NULLs", &e))
    }

    fn old_writer_count(&mut self, key: &str) -> Result<i64> {
        let seq = qualified(STATE_SCHEMA, key);
        let exists: bool = self
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&seq])
            .map_err(|e| self.db_err("reading the old-writer counter", &e))?
            .get(0);
        if !exists {
            return Ok(0);
        }
        self.client
            .query_one(
                &format!("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {seq}"),
                &[],
            )
            .map(|r| r.get(0))
            .map_err(|e| self.db_err("reading the old-writer counter", &e))
    }

    /// PostgreSQL plans check references with `VALIDATE CONSTRAINT`; no separate count is needed.
    fn count_orphans(&mut self, _plan: &Plan) -> Result<i64> {
        Ok(0)
    }

    fn finish(
        &mut self,
        state: &StateRow,
        index: usize,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let sql = state.plan.steps[index].sql.clone();
        let record = format!(
            "UPDATE {} SET next_step = $1, status = 'completed', completed_at = now(), updated_at = now() WHERE id = $2",
            state_table()
        );
        let next = index as i32 + 1;
        let id = state.id;
        self.flush_notes(emit);
        let done = format!(
            "SELECT status = 'completed' FROM {} WHERE id = $1 FOR UPDATE",
            state_table()
        );
        self.guarded(
            "the final step",
            guard,
            LockTarget::Migration(id),
            emit,
            |tx| {
                let already: bool = tx
                    .query_one(&done, &[&id])
                    .map_err(pg("reading the step's state"))?
                    .get(0);
                if already {
                    return Ok(());
                }
                for s in &sql {
                    tx.batch_execute(s).map_err(pg(format!("running `{s}`")))?;
                }
                tx.execute(&record, &[&next, &id])
                    .map_err(pg("recording completion"))?;
                Ok(())
            },
        )
    }

    fn run_undo(
        &mut self,
        id: i64,
        index: usize,
        sql: &[String],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let record = format!(
            "UPDATE {} SET next_step = $1, updated_at = now() WHERE id = $2",
            state_table()
        );
        let at = index as i32;
        self.flush_notes(emit);
        if sql.iter().any(|s| is_concurrent(s)) {
            for s in sql {
                self.concurrent_reconnecting(s, emit)?;
            }
            return self.state_update(&record, &[&at, &id]);
        }
        let done = format!(
            "SELECT next_step <= $1 FROM {} WHERE id = $2 FOR UPDATE",
            state_table()
        );
        self.guarded(
            "a rollback step",
            guard,
            LockTarget::Migration(id),
            emit,
            |tx| {
                let already: bool = tx
                    .query_one(&done, &[&at, &id])
                    .map_err(pg("reading the step's state"))?
                    .get(0);
                if already {
                    return Ok(());
                }
                for s in sql {
                    tx.batch_execute(s).map_err(pg(format!("running `{s}`")))?;
                }
                tx.execute(&record, &[&at, &id])
                    .map_err(pg("recording the rollback step"))?;
                Ok(())
            },
        )
    }

    fn mark_rolled_back(&mut self, id: i64) -> Result<()> {
        self.state_update(
            &format!(
                "UPDATE {} SET status = 'rolled-back', updated_at = now() WHERE id = $1",
                state_table()
            ),
            &[&id],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_called_functions_in_a_parse_tree() {
        let tree = "({QUERY :targetList ({TARGETENTRY :expr {FUNCEXPR :funcid 1598 :args ({OPEXPR :opno 1 :opfuncid 177 :args <>})}})})";
        assert_eq!(called_functions(tree), vec![1598, 177]);
        assert!(called_functions("{CONST :consttype 23}").is_empty());
    }

    #[test]
    fn reads_the_index_of_a_concurrent_build() {
        assert_eq!(
            built_index(
                "CREATE UNIQUE INDEX CONCURRENTLY \"zd_uq_1\" ON \"my \"\"s\"\"\".\"t\" (\"c\")"
            ),
            Some(("my \"s\"".to_string(), "zd_uq_1".to_string()))
        );
        assert!(is_concurrent(
            "DROP INDEX CONCURRENTLY IF EXISTS \"s\".\"i\""
        ));
        assert!(!is_concurrent(
            "ALTER TABLE t ADD CONSTRAINT x UNIQUE USING INDEX x"
        ));
    }
}
