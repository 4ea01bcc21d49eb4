//! The benchmark on SQLite: a database file in WAL mode, loaded once and copied for each scenario;
//! application connections as a busy application would open them; the measuring VFS for WAL bytes and
//! write-lock holds.

use super::target::{AdminConn, AppConn, BenchTarget, COLUMN, EXPR, StatementRun, TABLE, prepared};
use super::vfs;
use crate::url::DatabaseUrl;
use rusqlite::{Connection, params};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Marks a fully loaded template (PRAGMA user_version), so a kept directory can reuse it.
const TEMPLATE_MARK: i64 = 0x2d0b;
/// How often the application's background thread checkpoints the WAL (PASSIVE).
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// Past this many frames (64 MiB of 4 KiB pages) the background thread runs a RESTART checkpoint, so the
/// next writer starts the WAL over. Under continuous writes PASSIVE checkpoints alone never let the WAL
/// restart (a writer always appends before the checkpoint has caught up): it grows without bound, and
/// every read's wal-index lookup and every fsync of it grow with it.
pub const RESTART_FRAMES: i64 = 16_384;

pub struct SqliteTarget {
    dir: PathBuf,
    template: std::sync::Mutex<Option<PathBuf>>,
}

impl SqliteTarget {
    /// Databases live in `dir` (a template and one copy per scenario). Installs the measuring VFS.
    pub fn new(dir: &Path) -> SqliteTarget {
        vfs::install();
        SqliteTarget {
            dir: dir.to_path_buf(),
            template: std::sync::Mutex::new(None),
        }
    }
}

fn path_of(url: &DatabaseUrl) -> Result<&Path, String> {
    match url {
        DatabaseUrl::Sqlite(p) => Ok(p),
        other => Err(format!("not a SQLite URL: {}", other.redacted())),
    }
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal", "-zerodown.lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn template_rows(path: &Path) -> Option<i64> {
    let conn = Connection::open(path).ok()?;
    let mark: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .ok()?;
    if mark != TEMPLATE_MARK {
        return None;
    }
    conn.query_row(&format!("SELECT max(rowid) FROM {TABLE}"), [], |r| r.get(0))
        .ok()
}

fn load(path: &Path, rows: i64) -> Result<(), String> {
    load_sql(path, rows).map_err(|e| e.to_string())?;
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("the table stayed in journal mode {mode}"));
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .map_err(|e| e.to_string())
}

fn load_sql(path: &Path, rows: i64) -> rusqlite::Result<()> {
    let conn = Connection::open(path)?;
    // Loading needs no journal; the file is switched to WAL (a lasting mode) at the end.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;
         CREATE TABLE {TABLE}(
             id      INTEGER PRIMARY KEY,
             email   TEXT NOT NULL,
             balance INTEGER NOT NULL,
             pad     TEXT
         );
         BEGIN;"
    ))?;
    conn.execute(
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO {TABLE}(id, email, balance, pad)
             SELECT i, 'user' || i || '@example.com', (i * 7919) % 20001, hex(randomblob(24)) FROM n"
        ),
        [rows],
    )?;
    conn.execute_batch(&format!(
        "CREATE UNIQUE INDEX {TABLE}_email ON {TABLE}(email);
         CREATE INDEX {TABLE}_balance ON {TABLE}(balance);
         COMMIT;
         PRAGMA user_version = {TEMPLATE_MARK};"
    ))
}

impl BenchTarget for SqliteTarget {
    fn label(&self) -> String {
        format!(
            "SQLite {} (bundled), WAL mode, a database file on {}",
            rusqlite::version(),
            self.dir.display()
        )
    }

    fn prepare(&self, rows: i64, log: &mut dyn FnMut(String)) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        let path = self.dir.join(format!("template-{rows}.db"));
        if template_rows(&path) == Some(rows) {
            log(format!("reusing the loaded table {}", path.display()));
        } else {
            remove_db(&path);
            log(format!(
                "loading {rows} rows and 2 secondary indexes into {}",
                path.display()
            ));
            let t = Instant::now();
            load(&path, rows).map_err(|e| format!("loading the table: {e}"))?;
            log(format!("loaded in {:.1}s", t.elapsed().as_secs_f64()));
        }
        *self.template.lock().unwrap() = Some(path);
        Ok(())
    }

    fn fresh_copy(&self, name: &str) -> Result<DatabaseUrl, String> {
        let template = prepared(&self.template)?;
        let path = self.dir.join(format!("{name}.db"));
        remove_db(&path);
        std::fs::copy(&template, &path).map_err(|e| format!("copying the table: {e}"))?;
        Ok(DatabaseUrl::Sqlite(path))
    }

    fn drop_copy(&self, url: &DatabaseUrl) {
        if let Ok(p) = path_of(url) {
            remove_db(p);
        }
    }

    fn app(&self, url: &DatabaseUrl, busy_timeout: Duration) -> Result<Box<dyn AppConn>, String> {
        let conn = open_app(path_of(url)?, busy_timeout).map_err(|e| e.to_string())?;
        Ok(Box::new(SqliteApp { conn }))
    }

    fn admin(
        &self,
        url: &DatabaseUrl,
        busy_timeout: Duration,
    ) -> Result<Box<dyn AdminConn>, String> {
        let conn = Connection::open(path_of(url)?).map_err(|e| e.to_string())?;
        conn.busy_timeout(busy_timeout).map_err(|e| e.to_string())?;
        Ok(Box::new(SqliteAdmin { conn }))
    }

    fn background(&self, url: &DatabaseUrl, stop: Arc<AtomicBool>) -> Option<JoinHandle<()>> {
        let path = path_of(url).ok()?.to_path_buf();
        Some(
            std::thread::Builder::new()
                .name("checkpointer".into())
                .spawn(move || {
                    let Ok(conn) = open_app(&path, Duration::from_secs(5)) else {
                        return;
                    };
                    let mut next = Instant::now() + CHECKPOINT_EVERY;
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                        if Instant::now() >= next {
                            // (busy, frames in the WAL, frames checkpointed); busy with -1 when
                            // another connection is checkpointing.
                            let frames: i64 = conn
                                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
                                .unwrap_or(0);
                            if frames > RESTART_FRAMES {
                                let _ = conn.query_row(
                                    "PRAGMA wal_checkpoint(RESTART)",
                                    [],
                                    |_| Ok(()),
                                );
                            }
                            next = Instant::now() + CHECKPOINT_EVERY;
                        }
                    }
                })
                .expect("spawning the checkpointer"),
        )
    }

    fn mismatch_sql(&self) -> String {
        format!("SELECT count(*) FROM {TABLE} WHERE {COLUMN} IS NOT ({EXPR})")
    }

    fn app_settings(&self, busy_timeout: Duration) -> String {
        format!(
            "one connection per thread, busy_timeout {}ms (SQLite's own busy handler), synchronous=NORMAL, wal_autocheckpoint=0; a background thread runs PRAGMA wal_checkpoint(PASSIVE) every {}ms and RESTART when the WAL holds more than {} frames",
            busy_timeout.as_millis(),
            CHECKPOINT_EVERY.as_millis(),
            RESTART_FRAMES
        )
    }
}

/// An application connection as a busy application on a WAL database opens it: no fsync per commit,
/// and checkpoints in a background thread rather than in whichever request crosses the threshold.
fn open_app(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy_timeout)?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0")?;
    Ok(conn)
}

struct SqliteApp {
    conn: Connection,
}

impl AppConn for SqliteApp {
    fn read(&mut self, id: i64) -> Result<(), String> {
        let mut s = self
            .conn
            .prepare_cached(&format!("SELECT email, balance FROM {TABLE} WHERE id = ?1"))
            .map_err(|e| format!("read: {e}"))?;
        let mut rows = s.query([id]).map_err(|e| format!("read: {e}"))?;
        match rows.next() {
            Ok(Some(r)) => {
                let _: (String, i64) = (
                    r.get(0).map_err(|e| format!("read: {e}"))?,
                    r.get(1).map_err(|e| format!("read: {e}"))?,
                );
                Ok(())
            }
            Ok(None) => Err(format!("read: row {id} is missing")),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    fn update(&mut self, id: i64, balance: i64, tier: Option<&str>) -> Result<(), String> {
        let r = match tier {
            None => self
                .conn
                .prepare_cached(&format!("UPDATE {TABLE} SET balance = ?1 WHERE id = ?2"))
                .and_then(|mut s| s.execute(params![balance, id])),
            Some(t) => self
                .conn
                .prepare_cached(&format!(
                    "UPDATE {TABLE} SET balance = ?1, {COLUMN} = ?2 WHERE id = ?3"
                ))
                .and_then(|mut s| s.execute(params![balance, t, id])),
        };
        r.map(|_| ()).map_err(|e| format!("update: {e}"))
    }

    fn insert(
        &mut self,
        email: &str,
        balance: i64,
        pad: &str,
        tier: Option<&str>,
    ) -> Result<(), String> {
        let r = match tier {
            None => self
                .conn
                .prepare_cached(&format!(
                    "INSERT INTO {TABLE}(email, balance, pad) VALUES (?1, ?2, ?3)"
                ))
                .and_then(|mut s| s.execute(params![email, balance, pad])),
            Some(t) => self
                .conn
                .prepare_cached(&format!(
                    "INSERT INTO {TABLE}(email, balance, pad, {COLUMN}) VALUES (?1, ?2, ?3, ?4)"
                ))
                .and_then(|mut s| s.execute(params![email, balance, pad, t])),
        };
        r.map(|_| ()).map_err(|e| format!("insert: {e}"))
    }
}

struct SqliteAdmin {
    conn: Connection,
}

impl AdminConn for SqliteAdmin {
    fn execute(&mut self, sql: &str) -> Result<StatementRun, String> {
        // The VFS counts per thread: this thread's WAL bytes and lock holds are this statement's.
        let (wal0, _) = vfs::thread_bytes();
        vfs::take_thread_holds();
        let t = Instant::now();
        self.conn.execute_batch(sql).map_err(|e| e.to_string())?;
        let elapsed = t.elapsed();
        let (wal1, _) = vfs::thread_bytes();
        let holds = vfs::take_thread_holds();
        Ok(StatementRun {
            elapsed,
            log_bytes: Some(wal1 - wal0),
            longest_lock: (holds.count > 0).then(|| Duration::from_nanos(holds.max_ns)),
        })
    }

    fn count(&mut self, sql: &str) -> Result<i64, String> {
        self.conn
            .query_row(sql, [], |r| r.get(0))
            .map_err(|e| e.to_string())
    }
}
