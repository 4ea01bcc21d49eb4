//! The driver's own session on MySQL/MariaDB: the named lock (`GET_LOCK`) that lets one run drive a
//! migration at a time, a heartbeat that shows the run is alive even during a long INPLACE build, and
//! the cleanup of what a dead run left on the server (DESIGN.md §3). A run records its connection ids
//! in the state row, because the server shows no program name; a dead run's connections are killed only
//! when its heartbeat is stale, so a live run's sessions are never touched.
//!
//! Proven on MariaDB 10.11 (tests/faults_mariadb.rs). MySQL 8 (documented, not run): GET_LOCK,
//! IS_USED_LOCK, RELEASE_LOCK, KILL CONNECTION, information_schema.PROCESSLIST and SHOW GLOBAL STATUS
//! behave the same there; killing another user's session needs CONNECTION_ADMIN.

use super::{STATE_TABLE, Target, message, quote};
pub use crate::engine::driver_session::stale_after;
use crate::engine::driver_session::{self, DriverGuard, Driving};
use crate::error::{Error, Result};
use mysql::Conn;
use mysql::prelude::Queryable;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The phases in which a run drives a migration (and beats its heartbeat).
pub const RUNNING: &str = "'started', 'completing', 'rolling-back'";

/// The driver lock's name: `zd:` + a hash of the database and the migration. Lock names are
/// server-wide (another database's migration of the same name must not collide) and MySQL caps them at
/// 64 characters, so names are hashed rather than spelled out.
pub fn lock_name(database: &str, migration: &str) -> String {
    format!(
        "zd:{:016x}",
        super::fnv(&format!("{database}\u{0}{migration}"))
    )
}

/// An error that means the connection is gone: the server went away or restarted (2006, 2013, 1053,
/// 4031), the connection was killed (1927), or the socket failed.
pub fn is_disconnect(e: &mysql::Error) -> bool {
    match e {
        mysql::Error::IoError(_) | mysql::Error::CodecError(_) => true,
        mysql::Error::DriverError(d) => matches!(
            d,
            mysql::DriverError::PacketOutOfSync
                | mysql::DriverError::UnexpectedPacket
                | mysql::DriverError::ConnectTimeout
                | mysql::DriverError::CouldNotConnect(_)
        ),
        mysql::Error::MySqlError(m) => matches!(m.code, 1053 | 1927 | 2006 | 2013 | 4031),
        _ => false,
    }
}

/// When the server started (epoch seconds, ±1 s): connection ids restart from 1 at each start, so a
/// recorded id means the same session only while this value is the same. `SHOW GLOBAL STATUS` reads
/// the uptime on MariaDB and on MySQL 8 alike (MySQL 8 has no information_schema.GLOBAL_STATUS —
/// documented, not run).
pub fn server_boot(c: &mut Conn) -> std::result::Result<i64, mysql::Error> {
    let now: Option<i64> = c.query_first("SELECT CAST(UNIX_TIMESTAMP() AS SIGNED)")?;
    let uptime: Option<(String, String)> = c.query_first("SHOW GLOBAL STATUS LIKE 'Uptime'")?;
    let uptime = uptime.and_then(|(_, v)| v.parse::<i64>().ok()).unwrap_or(0);
    Ok(now.unwrap_or(0) - uptime)
}

/// `boot:id,id`, the state row's record of a run's connections.
pub fn connections_record(boot: i64, ids: &[u32]) -> String {
    let ids: Vec<String> = ids
        .iter()
        .filter(|i| **i > 0)
        .map(|i| i.to_string())
        .collect();
    format!("{boot}:{}", ids.join(","))
}

fn parse_record(record: &str) -> Option<(i64, Vec<u64>)> {
    let (boot, ids) = record.split_once(':')?;
    Some((
        boot.parse().ok()?,
        ids.split(',').filter_map(|i| i.parse().ok()).collect(),
    ))
}

/// A state row whose run may be dead: its migration, run id, heartbeat age and connections.
pub struct RunRow {
    pub name: String,
    pub run_id: String,
    pub age: Option<f64>,
    pub connections: Option<String>,
}

/// The rows of migrations in a running phase driven by another run than `own_run`.
pub fn running_rows(c: &mut Conn, own_run: &str) -> std::result::Result<Vec<RunRow>, mysql::Error> {
    let exists: Option<i64> = c.exec_first(
        "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        (STATE_TABLE,),
    )?;
    if exists.unwrap_or(0) == 0 {
        return Ok(vec![]);
    }
    type R = (String, Option<String>, Option<f64>, Option<String>);
    let rows: Vec<R> = c.exec(
        format!(
            "SELECT name, run_id, TIMESTAMPDIFF(MICROSECOND, heartbeat, UTC_TIMESTAMP(3)) / 1e6, connections
             FROM {} WHERE status IN ({RUNNING}) AND coalesce(run_id, '') <> ?",
            quote(STATE_TABLE)
        ),
        (own_run,),
    )?;
    Ok(rows
        .into_iter()
        .map(|(name, run_id, age, connections)| RunRow {
            name,
            run_id: run_id.unwrap_or_default(),
            age,
            connections,
        })
        .collect())
}

impl RunRow {
    /// Dead: it has beaten before, and not for longer than [`stale_after`].
    pub fn is_stale(&self) -> bool {
        self.age.is_some_and(|a| a > stale_after().as_secs_f64())
    }
}

/// The ids of `record` that still name sessions of this server start (`None`: it is another).
fn same_boot(c: &mut Conn, record: Option<&str>) -> std::result::Result<Vec<u64>, mysql::Error> {
    match record.and_then(parse_record) {
        Some((boot, ids)) if (server_boot(c)? - boot).abs() <= 2 => Ok(ids),
        _ => Ok(vec![]),
    }
}

/// The recorded connections of a run that are still busy with a statement in this database (a killed
/// run's INPLACE build goes on server-side): a run taking over records them as well, so that they stay
/// findable — and are ended if it dies too and goes stale.
pub fn busy_connections(
    c: &mut Conn,
    record: Option<&str>,
) -> std::result::Result<Vec<u32>, mysql::Error> {
    let mut busy = Vec::new();
    for id in same_boot(c, record)? {
        let n: Option<i64> = c.exec_first(
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND DB = DATABASE() AND COMMAND NOT IN ('Sleep', 'Killed')",
            (id,),
        )?;
        if n.unwrap_or(0) > 0
            && let Ok(id) = u32::try_from(id)
        {
            busy.push(id);
        }
    }
    Ok(busy)
}

/// Kills the recorded connections of a dead run that are still on this server, in this database;
/// returns a description of each.
pub fn kill_connections(
    c: &mut Conn,
    record: Option<&str>,
) -> std::result::Result<Vec<String>, mysql::Error> {
    let mut ids = same_boot(c, record)?;
    ids.sort_unstable();
    ids.dedup();
    let me = u64::from(c.connection_id());
    let mut ended = Vec::new();
    for id in ids.into_iter().filter(|i| *i != me) {
        type P = (String, i64, Option<String>, String);
        let row: Option<P> = c.exec_first(
            "SELECT COMMAND, TIME, left(replace(coalesce(INFO, ''), '\n', ' '), 80), coalesce(STATE, '')
             FROM information_schema.PROCESSLIST WHERE ID = ? AND DB = DATABASE()",
            (id,),
        )?;
        let Some((command, time, info, state)) = row else {
            continue;
        };
        let what = match info.filter(|i| !i.is_empty()) {
            Some(q) => format!("{command} {time}s: {q}"),
            None => {
                format!(
                    "{command} {time}s{}",
                    if state.is_empty() { "" } else { ", " }
                ) + &state
            }
        };
        match c.query_drop(format!("KILL CONNECTION {id}")) {
            Ok(()) => ended.push(format!("connection {id} ({what})")),
            // Already gone between the look and the kill.
            Err(mysql::Error::MySqlError(m)) if m.code == 1094 => {}
            // Another user's session needs CONNECTION ADMIN (MySQL 8 and MariaDB 10.5+) or SUPER.
            Err(e) => ended.push(format!(
                "connection {id} ({what}) — could not kill it: {}; it needs the same user or the CONNECTION ADMIN privilege",
                message(&e)
            )),
        }
    }
    Ok(ended)
}

pub fn stale_note(run: &str, name: &str, age: f64, ended: &[String]) -> String {
    format!(
        "ended {} connection(s) left by run {run} on `{name}`, whose heartbeat is {age:.0}s old (a run is taken for dead after {}s): {}",
        ended.len(),
        stale_after().as_secs(),
        ended.join("; ")
    )
}

/// The session that holds the driver lock, shared by the engine (which checks it after a reconnect)
/// and the heartbeat thread.
pub struct Shared {
    target: Target,
    run_id: String,
    lock: String,
    conn: Mutex<Option<Conn>>,
    /// Connection ids: the driver session's and the engine's main connection's (kept current by the
    /// engine across reconnects), written with each heartbeat.
    driver_id: AtomicU32,
    main_id: AtomicU32,
    /// Busy connections of the run this one took over from (see [`busy_connections`]).
    inherited: Mutex<Vec<u32>>,
    /// Another run took the driver lock while this one was disconnected: this run must stop.
    lost: AtomicBool,
    stop: AtomicBool,
    /// When the engine last asked for the driver session to be looked at.
    checked: Mutex<Instant>,
}

fn slot(m: &Mutex<Option<Conn>>) -> MutexGuard<'_, Option<Conn>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Starts the heartbeat thread for `conn`, which already holds lock `lock`.
    pub fn start(
        target: Target,
        run_id: String,
        lock: String,
        conn: Conn,
        main_id: u32,
    ) -> (Arc<Shared>, DriverGuard<Shared>) {
        let shared = Arc::new(Shared {
            target,
            run_id,
            lock,
            driver_id: AtomicU32::new(conn.connection_id()),
            main_id: AtomicU32::new(main_id),
            inherited: Mutex::new(Vec::new()),
            conn: Mutex::new(Some(conn)),
            lost: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            checked: Mutex::new(Instant::now()),
        });
        (shared.clone(), driver_session::start(shared))
    }

    /// The driver session's connection id, left out when naming blockers.
    pub fn driver_id(&self) -> u32 {
        self.driver_id.load(Ordering::SeqCst)
    }

    /// The engine's main connection changed (a reconnect): the next heartbeat records it.
    pub fn set_main_id(&self, id: u32) {
        self.main_id.store(id, Ordering::SeqCst);
    }

    /// The connection ids to record for this run: main first, then the driver session's, then the
    /// busy ones inherited from the run it took over from.
    pub fn ids(&self) -> Vec<u32> {
        let mut ids = vec![
            self.main_id.load(Ordering::SeqCst),
            self.driver_id.load(Ordering::SeqCst),
        ];
        ids.extend(
            self.inherited
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter(),
        );
        ids
    }

    pub fn inherit(&self, ids: Vec<u32>) {
        *self.inherited.lock().unwrap_or_else(|e| e.into_inner()) = ids;
    }

    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// True at most once a second: time to ping the driver session.
    pub fn due_for_check(&self) -> bool {
        let mut at = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        if at.elapsed() < Duration::from_secs(1) {
            return false;
        }
        *at = Instant::now();
        true
    }

    /// Makes sure the driver session is alive and holds the lock: after a dropped connection it
    /// connects again and takes the lock again; Busy when another run took it meanwhile.
    pub fn ensure_lock(&self) -> Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if self.lost() {
            return Err(self.lost_error("another run"));
        }
        let mut slot = slot(&self.conn);
        if let Some(c) = slot.as_mut()
            && c.ping().is_ok()
        {
            return Ok(());
        }
        *slot = None;
        let mut c = self.target.connect()?;
        let old = u64::from(self.driver_id());
        // A killed session lets go of its lock only once the server has ended it: wait a little for
        // our own old session, never for another run's.
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let got: Option<Option<i64>> = c
                .exec_first("SELECT GET_LOCK(?, 1)", (&self.lock,))
                .map_err(|e| Error::db("taking the driver lock again", message(&e)))?;
            if got.flatten() == Some(1) {
                break;
            }
            let holder: Option<Option<u64>> = c
                .exec_first("SELECT IS_USED_LOCK(?)", (&self.lock,))
                .map_err(|e| Error::db("taking the driver lock again", message(&e)))?;
            match holder.flatten() {
                Some(h) if h == old && Instant::now() < until => continue,
                None if Instant::now() < until => continue,
                Some(h) => {
                    self.lost.store(true, Ordering::SeqCst);
                    return Err(self.lost_error(&format!("connection {h}")));
                }
                None => {
                    self.lost.store(true, Ordering::SeqCst);
                    return Err(self.lost_error("another session"));
                }
            }
        }
        // The heartbeat never waits long behind a batch holding the state row.
        let _ = c.query_drop("SET SESSION innodb_lock_wait_timeout = 1");
        self.driver_id.store(c.connection_id(), Ordering::SeqCst);
        *slot = Some(c);
        Ok(())
    }

    fn lost_error(&self, who: &str) -> Error {
        driver_session::lost_error(&self.run_id, who)
    }
}

impl Driving for Shared {
    fn stopping(&self) -> &AtomicBool {
        &self.stop
    }

    fn lost(&self) -> bool {
        Shared::lost(self)
    }

    /// Also records this run's connections, so a later run can end them if this one dies.
    fn write_heartbeat(&self) -> bool {
        let sql = format!(
            "UPDATE {} SET heartbeat = UTC_TIMESTAMP(3), connections = ? WHERE run_id = ? AND status IN ({RUNNING})",
            quote(STATE_TABLE)
        );
        match slot(&self.conn).as_mut() {
            Some(c) => match server_boot(c).and_then(|boot| {
                c.exec_drop(&sql, (connections_record(boot, &self.ids()), &self.run_id))
            }) {
                Ok(()) => true,
                Err(e) => !is_disconnect(&e),
            },
            None => false,
        }
    }

    fn ensure_lock(&self) -> Result<()> {
        Shared::ensure_lock(self)
    }

    /// Released explicitly: the server ends a closed session asynchronously, and the next command
    /// (often at once, from the same script) must find the lock free.
    fn release(&self) {
        let mut conn = slot(&self.conn);
        if let Some(c) = conn.as_mut() {
            let _ = c.exec_drop("DO RELEASE_LOCK(?)", (&self.lock,));
        }
        *conn = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_are_short_and_differ_per_database_and_migration() {
        let a = lock_name("shop", "0042_tier");
        assert!(a.starts_with("zd:") && a.len() <= 64, "{a}");
        assert_ne!(a, lock_name("shop", "0043_other"));
        assert_ne!(a, lock_name("shop2", "0042_tier"));
        assert_eq!(a, lock_name("shop", "0042_tier"));
    }

    #[test]
    fn connection_records_round_trip() {
        let r = connections_record(1_764_120_000, &[12, 0, 13]);
        assert_eq!(r, "1764120000:12,13");
        assert_eq!(parse_record(&r), Some((1_764_120_000, vec![12, 13])));
        assert_eq!(parse_record("garbage"), None);
    }
}
