//! The benchmark on MariaDB (InnoDB): a server given by URL (the benchmark's databases are created
//! beside the URL's database), a template database loaded once and copied per scenario by
//! `INSERT … SELECT`, redo bytes from `Innodb_lsn_current`, and the metadata-lock views sampled as the
//! cross-check of zerodown's lock holds.
//!
//! MariaDB 10.11 adds a CHECK constraint only by copying the table (ALGORITHM=COPY, writes wait), which
//! zerodown refuses without `--allow-copy`: the `zerodown` scenario here runs without the CHECK, and
//! `zerodown-copy` runs it with the CHECK and `--allow-copy`.

use super::sys::mono_ns;
use super::target::{
    AdminConn, AppConn, BenchTarget, CHECK, COLUMN, EXPR, LockSample, NaiveStep, RunTracker,
    StatementRun, TABLE, database_of, prepared, with_database,
};
use crate::url::DatabaseUrl;
use mysql::prelude::Queryable;
use mysql::{Conn, Opts};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the lock views are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(5);
/// The new column's type (an index on `text` would need a prefix length).
pub const TIER_TYPE: &str = "varchar(16)";

pub struct MariaDbTarget {
    url: String,
    prefix: String,
    template: std::sync::Mutex<Option<String>>,
    version: String,
}

fn mysql_url(url: &str) -> String {
    match url.split_once("://") {
        Some((s, rest)) if s.eq_ignore_ascii_case("mariadb") => format!("mysql://{rest}"),
        _ => url.to_string(),
    }
}

fn connect(url: &str) -> Result<Conn, String> {
    let opts = Opts::from_url(&mysql_url(url)).map_err(|e| format!("the MariaDB URL: {e}"))?;
    Conn::new(opts).map_err(|e| format!("connecting to MariaDB: {e}"))
}

fn text(url: &DatabaseUrl) -> Result<&str, String> {
    match url {
        DatabaseUrl::Mysql(u) => Ok(u),
        other => Err(format!("not a MySQL/MariaDB URL: {}", other.redacted())),
    }
}

fn redo_lsn(c: &mut Conn) -> Result<u64, String> {
    let row: Option<(String, u64)> = c
        .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_lsn_current'")
        .map_err(|e| e.to_string())?;
    row.map(|r| r.1)
        .ok_or_else(|| "no Innodb_lsn_current".to_string())
}

/// An error without the row's values, so the same failure counts once.
fn short(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(m) => format!("{}: {}", m.code, m.message),
        other => other.to_string(),
    }
}

impl MariaDbTarget {
    pub fn new(url: &str) -> Result<MariaDbTarget, String> {
        let mut c = connect(url)?;
        let version: Option<String> = c.query_first("SELECT VERSION()").map_err(|e| short(&e))?;
        let db = database_of(url);
        Ok(MariaDbTarget {
            url: url.to_string(),
            prefix: if db.is_empty() { "zd_bench".into() } else { db },
            template: std::sync::Mutex::new(None),
            version: version.unwrap_or_default(),
        })
    }

    fn db_name(&self, name: &str) -> String {
        let n = format!("{}_{}", self.prefix, name.replace('-', "_"));
        n.chars().take(64).collect()
    }
}

fn template_rows(c: &mut Conn, db: &str) -> Option<i64> {
    let row: Option<(Option<i64>, String)> = c
        .query_first(format!(
            "SELECT (SELECT max(id) FROM `{db}`.{TABLE}), table_comment
             FROM information_schema.tables WHERE table_schema = '{db}' AND table_name = '{TABLE}'"
        ))
        .ok()?;
    let (rows, comment) = row?;
    (comment == "zerodown-bench template").then_some(rows?)
}

impl BenchTarget for MariaDbTarget {
    fn label(&self) -> String {
        format!("MariaDB {} (InnoDB)", self.version)
    }

    fn prepare(&self, rows: i64, log: &mut dyn FnMut(String)) -> Result<(), String> {
        let db = self.db_name(&format!("tpl_{rows}"));
        let mut c = connect(&self.url)?;
        if template_rows(&mut c, &db) == Some(rows) {
            log(format!("reusing the loaded table in database {db}"));
        } else {
            log(format!(
                "loading {rows} rows and 2 secondary indexes into database {db}"
            ));
            let t = Instant::now();
            c.query_drop(format!(
                "DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`; USE `{db}`;
                 CREATE TABLE {TABLE}(
                     id      bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
                     email   varchar(255) NOT NULL,
                     balance bigint NOT NULL,
                     pad     varchar(64)
                 ) ENGINE=InnoDB;
                 INSERT INTO {TABLE}(id, email, balance, pad)
                 SELECT seq, concat('user', seq, '@example.com'), (seq * 7919) % 20001,
                        substr(concat(md5(rand()), md5(rand())), 1, 48)
                 FROM seq_1_to_{rows};
                 ALTER TABLE {TABLE} ADD UNIQUE INDEX {TABLE}_email(email),
                                     ADD INDEX {TABLE}_balance(balance);
                 ANALYZE TABLE {TABLE};"
            ))
            .map_err(|e| format!("loading the table: {}", short(&e)))?;
            c.query_drop(format!(
                "ALTER TABLE `{db}`.{TABLE} COMMENT = 'zerodown-bench template'"
            ))
            .map_err(|e| format!("marking the template: {}", short(&e)))?;
            log(format!("loaded in {:.1}s", t.elapsed().as_secs_f64()));
        }
        *self.template.lock().unwrap() = Some(db);
        Ok(())
    }

    fn fresh_copy(&self, name: &str) -> Result<DatabaseUrl, String> {
        let tpl = prepared(&self.template)?;
        let db = self.db_name(name);
        let mut c = connect(&self.url)?;
        c.query_drop(format!(
            "DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`;
             CREATE TABLE `{db}`.{TABLE} LIKE `{tpl}`.{TABLE};
             ALTER TABLE `{db}`.{TABLE} COMMENT = '';
             INSERT INTO `{db}`.{TABLE} SELECT * FROM `{tpl}`.{TABLE};
             ANALYZE TABLE `{db}`.{TABLE};"
        ))
        .map_err(|e| format!("copying the table into {db}: {}", short(&e)))?;
        Ok(DatabaseUrl::Mysql(with_database(&self.url, &db)))
    }

    fn drop_copy(&self, url: &DatabaseUrl) {
        if let (Ok(u), Ok(mut c)) = (text(url), connect(&self.url)) {
            let _ = c.query_drop(format!("DROP DATABASE IF EXISTS `{}`", database_of(u)));
        }
    }

    fn app(&self, url: &DatabaseUrl, busy_timeout: Duration) -> Result<Box<dyn AppConn>, String> {
        let mut c = connect(text(url)?)?;
        let secs = busy_timeout.as_secs().max(1);
        c.query_drop(format!(
            "SET SESSION lock_wait_timeout = {secs}, innodb_lock_wait_timeout = {secs}"
        ))
        .map_err(|e| short(&e))?;
        Ok(Box::new(MariaApp { c }))
    }

    fn admin(
        &self,
        url: &DatabaseUrl,
        _busy_timeout: Duration,
    ) -> Result<Box<dyn AdminConn>, String> {
        let c = connect(text(url)?)?;
        Ok(Box::new(MariaAdmin { c }))
    }

    fn naive_steps(&self) -> Vec<NaiveStep> {
        let step = NaiveStep::new;
        vec![
            step(
                "add column",
                format!("ALTER TABLE {TABLE} ADD COLUMN {COLUMN} {TIER_TYPE}"),
                true,
            ),
            step(
                "update all rows",
                format!("UPDATE {TABLE} SET {COLUMN} = {EXPR}"),
                false,
            ),
            step(
                "modify NOT NULL",
                format!("ALTER TABLE {TABLE} MODIFY {COLUMN} {TIER_TYPE} NOT NULL"),
                false,
            ),
            step(
                "add CHECK (copies)",
                format!(
                    "ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_{COLUMN}_check CHECK ({CHECK})"
                ),
                false,
            ),
            step(
                "add index",
                format!("ALTER TABLE {TABLE} ADD INDEX {TABLE}_{COLUMN}({COLUMN})"),
                false,
            ),
        ]
    }

    /// No NOT NULL: MariaDB rejects it on a generated column (a syntax error on 10.11).
    fn naive_rewrite_steps(&self) -> Option<Vec<NaiveStep>> {
        // The application never switches version: a generated column refuses written values.
        let step = |label: &str, sql: String| NaiveStep::new(label, sql, false);
        Some(vec![
            // 10.11 adds a STORED column only with ALGORITHM=COPY, LOCK=SHARED at best: writes wait.
            step(
                "add STORED (copies)",
                format!("ALTER TABLE {TABLE} ADD COLUMN {COLUMN} {TIER_TYPE} AS ({EXPR}) STORED"),
            ),
            step(
                "add index",
                format!("ALTER TABLE {TABLE} ADD INDEX {TABLE}_{COLUMN}({COLUMN})"),
            ),
        ])
    }

    fn app_settings(&self, busy_timeout: Duration) -> String {
        format!(
            "one connection per thread (mysql crate, no TLS), lock_wait_timeout = innodb_lock_wait_timeout = {}s, autocommit",
            busy_timeout.as_secs().max(1)
        )
    }

    fn mismatch_sql(&self) -> String {
        format!("SELECT count(*) FROM {TABLE} WHERE NOT ({COLUMN} <=> ({EXPR}))")
    }

    fn column_type(&self) -> &'static str {
        TIER_TYPE
    }

    fn online_check(&self) -> bool {
        false
    }

    fn default_scenarios(&self) -> Vec<super::Scenario> {
        super::Scenario::ON_SERVERS.to_vec()
    }

    fn log_position(&self, url: &DatabaseUrl) -> Option<u64> {
        let mut c = connect(text(url).ok()?).ok()?;
        redo_lsn(&mut c).ok()
    }

    fn lock_sampler(
        &self,
        url: &DatabaseUrl,
        stop: Arc<AtomicBool>,
    ) -> Option<JoinHandle<LockSample>> {
        let url = text(url).ok()?.to_string();
        Some(std::thread::spawn(move || sample_locks(&url, &stop)))
    }
}

fn sample_locks(url: &str, stop: &AtomicBool) -> LockSample {
    let mut out = LockSample {
        every: SAMPLE_EVERY,
        ..LockSample::default()
    };
    let mut c = match connect(url) {
        Ok(c) => c,
        Err(e) => {
            out.unavailable = Some(e);
            return out;
        }
    };
    // The metadata-lock view is a plugin; load it if this user may (ignored if it is loaded already).
    let loaded = |c: &mut Conn| {
        c.query_first::<i64, _>(
            "SELECT count(*) FROM information_schema.plugins WHERE plugin_name = 'METADATA_LOCK_INFO' AND plugin_status = 'ACTIVE'",
        )
        .ok()
        .flatten()
            == Some(1)
    };
    let mdl = loaded(&mut c)
        || (c.query_drop("INSTALL SONAME 'metadata_lock_info'").is_ok() && loaded(&mut c));
    let holds_sql = format!(
        "SELECT thread_id, lock_mode FROM information_schema.metadata_lock_info
         WHERE table_schema = DATABASE() AND table_name = '{TABLE}'
           AND lock_mode IN ('MDL_EXCLUSIVE', 'MDL_SHARED_NO_WRITE', 'MDL_SHARED_NO_READ_WRITE')"
    );
    // Sessions waiting: on a metadata lock (processlist state) or on a row lock (innodb_trx).
    let waits_sql = "SELECT p.id, p.state, left(coalesce(p.info, ''), 50)
         FROM information_schema.processlist p
         WHERE p.id <> connection_id()
           AND (p.state LIKE 'Waiting for%lock%'
                OR p.id IN (SELECT trx_mysql_thread_id FROM information_schema.innodb_trx
                            WHERE trx_state = 'LOCK WAIT'))";
    let mut holds = RunTracker::default();
    let mut waits = RunTracker::default();
    while !stop.load(Ordering::SeqCst) {
        let now = mono_ns();
        out.samples += 1;
        if mdl && let Ok(rows) = c.query::<(u64, String), _>(&holds_sql) {
            let h: Vec<String> = rows
                .into_iter()
                .map(|(id, mode)| format!("{mode} by connection {id}"))
                .collect();
            holds.observe(now, &h);
        }
        if let Ok(rows) = c.query::<(u64, Option<String>, String), _>(waits_sql) {
            let w: Vec<String> = rows
                .into_iter()
                .map(|(id, state, info)| {
                    format!(
                        "connection {id} {} ({})",
                        state.unwrap_or_default(),
                        info.trim()
                    )
                })
                .collect();
            waits.observe(now, &w);
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    holds.finish();
    waits.finish();
    if mdl {
        out.longest_hold_ms = Some(holds.longest.as_ref().map_or(0.0, |l| l.0));
        out.hold_what = holds.longest.map(|l| l.1);
    } else {
        out.hold_what = Some(
            "metadata_lock_info is not loaded and could not be (INSTALL SONAME needs the privilege)"
                .into(),
        );
    }
    if let Some((ms, what)) = waits.longest {
        out.longest_wait_ms = Some(ms);
        out.wait_what = Some(what);
    }
    out
}

struct MariaApp {
    c: Conn,
}

impl AppConn for MariaApp {
    fn read(&mut self, id: i64) -> Result<(), String> {
        let row: Option<(String, i64)> = self
            .c
            .exec_first(
                format!("SELECT email, balance FROM {TABLE} WHERE id = ?"),
                (id,),
            )
            .map_err(|e| format!("read: {}", short(&e)))?;
        row.map(|_| ())
            .ok_or_else(|| format!("read: row {id} is missing"))
    }

    fn update(&mut self, id: i64, balance: i64, tier: Option<&str>) -> Result<(), String> {
        let r = match tier {
            None => self.c.exec_drop(
                format!("UPDATE {TABLE} SET balance = ? WHERE id = ?"),
                (balance, id),
            ),
            Some(t) => self.c.exec_drop(
                format!("UPDATE {TABLE} SET balance = ?, {COLUMN} = ? WHERE id = ?"),
                (balance, t, id),
            ),
        };
        r.map_err(|e| format!("update: {}", short(&e)))
    }

    fn insert(
        &mut self,
        email: &str,
        balance: i64,
        pad: &str,
        tier: Option<&str>,
    ) -> Result<(), String> {
        let r = match tier {
            None => self.c.exec_drop(
                format!("INSERT INTO {TABLE}(email, balance, pad) VALUES (?, ?, ?)"),
                (email, balance, pad),
            ),
            Some(t) => self.c.exec_drop(
                format!("INSERT INTO {TABLE}(email, balance, pad, {COLUMN}) VALUES (?, ?, ?, ?)"),
                (email, balance, pad, t),
            ),
        };
        r.map_err(|e| format!("insert: {}", short(&e)))
    }
}

struct MariaAdmin {
    c: Conn,
}

impl AdminConn for MariaAdmin {
    fn execute(&mut self, sql: &str) -> Result<StatementRun, String> {
        let l0 = redo_lsn(&mut self.c)?;
        let t = Instant::now();
        self.c.query_drop(sql).map_err(|e| short(&e))?;
        let elapsed = t.elapsed();
        let l1 = redo_lsn(&mut self.c)?;
        Ok(StatementRun {
            elapsed,
            log_bytes: Some(l1.saturating_sub(l0)),
            // One autocommit statement holds its lock (an ALTER's metadata lock, the UPDATE's row
            // locks on every row) until it ends.
            longest_lock: Some(elapsed),
        })
    }

    fn count(&mut self, sql: &str) -> Result<i64, String> {
        self.c
            .query_first::<i64, _>(sql)
            .map_err(|e| short(&e))?
            .ok_or_else(|| "no row".to_string())
    }
}
