//! How one DDL statement runs on MySQL 8 — documented, not run (written from the MySQL 8.0 manual;
//! the tests here have only MariaDB). The KILL QUERY watchdog it uses is proven on MariaDB by
//! tests/mariadb_rules.rs.
//!
//! MySQL 8 has no `SET STATEMENT`, no `WAIT n`, and no statement timeout for DDL (`max_execution_time`
//! covers only SELECT). So: `SET SESSION lock_wait_timeout` (whole seconds, at least 1) before every
//! DDL; session variables around a statement that needs them (strict sql_mode for a MODIFY, restored
//! afterwards); and an online build held to `--build-timeout` by `KILL QUERY` from a second connection.
//! Nor has it `IF [NOT] EXISTS` on ADD COLUMN / ADD INDEX / ADD FOREIGN KEY / DROP …: a re-run after a
//! crash between a step and its record meets "already exists" / "does not exist", which means the
//! statement had already run (every name but the column's is zerodown's own hash, and the column did
//! not exist when the plan was made).

use super::connect::Target;
use super::error::code;
use super::guard::{is_build, is_strict, whole_seconds};
use crate::error::{Error, Result};
use crate::plan::Statement;
use mysql::Conn;
use mysql::prelude::Queryable;
use std::time::Duration;

/// Duplicate column (1060), key (1061), foreign key (1826), trigger (1359); can't DROP, missing (1091);
/// CHECK constraint not found (3821): on a re-run, the statement had already run.
const ALREADY_DONE: &[u16] = &[1060, 1061, 1826, 1359, 1091, 3821];

/// ER_INNODB_MAX_ROW_VERSION: "Maximum row versions reached for table …. No more columns can be added
/// or dropped instantly. Please use COPY/INPLACE." (MySQL ≥ 8.0.29, at 64 instant changes).
const MAX_ROW_VERSIONS: u16 = 4092;

/// Query execution was interrupted: what KILL QUERY leaves.
const INTERRUPTED: u16 = 1317;

const STRICT: &str = "STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION";

/// Did the error only say that an earlier run had already done this statement?
pub(super) fn already_done(e: &mysql::Error) -> bool {
    code(e).is_some_and(|c| ALREADY_DONE.contains(&c))
}

/// Was INSTANT refused because the table's 64 row versions are used up? The plan reads
/// TOTAL_ROW_VERSIONS ahead, but the count may have moved since.
pub(super) fn row_versions_used_up(e: &mysql::Error) -> bool {
    code(e) == Some(MAX_ROW_VERSIONS)
}

/// Runs `stmt` under a whole-second lock wait, with a KILL QUERY watchdog for builds and strict
/// sql_mode for a strict build, each by the statement's kind in the plan. The outer error is
/// zerodown's (the watchdog fired, or could not connect); the inner one is the server's answer, for the
/// lock-guard loop to judge.
pub(super) fn run(
    conn: &mut Conn,
    target: &Target,
    stmt: &Statement,
    lock_timeout: Duration,
) -> Result<std::result::Result<(), mysql::Error>> {
    let sql = &stmt.sql;
    let modify = is_strict(&stmt.run);
    let mut before = format!(
        "SET SESSION lock_wait_timeout = {}",
        whole_seconds(lock_timeout)
    );
    if modify {
        // Without strict mode a NULL left in the column would silently become 0 or ''.
        before.push_str(&format!(
            "; SET @zd_sql_mode = @@SESSION.sql_mode; SET SESSION sql_mode = '{STRICT}'"
        ));
    }
    if let Err(e) = conn.query_drop(&before) {
        return Ok(Err(e));
    }
    let watchdog = if is_build(&stmt.run) {
        Some(target.kill_query_after(conn.connection_id(), target.build_timeout)?)
    } else {
        None
    };
    let result = conn.query_drop(sql.as_str());
    let killed = watchdog.is_some_and(|w| w.disarm());
    if modify {
        let _ = conn.query_drop("SET SESSION sql_mode = @zd_sql_mode");
    }
    match result {
        Err(e) if killed && code(&e) == Some(INTERRUPTED) => Err(Error::Refused(format!(
            "`{sql}` ran longer than --build-timeout ({}) and was stopped with KILL QUERY; MySQL rolls an interrupted ALTER TABLE back, so the table is as it was. Run the command again with a longer --build-timeout, at a quieter time",
            humantime::format_duration(target.build_timeout)
        ))),
        other => Ok(other),
    }
}

/// Holds the next statement's row-lock and metadata-lock waits to the lock guard's timeout (a state
/// write): with no `SET STATEMENT`, the session's waits are set, as before every DDL.
pub(super) fn guard_waits(
    conn: &mut Conn,
    timeout: Duration,
) -> std::result::Result<(), mysql::Error> {
    let secs = whole_seconds(timeout);
    conn.query_drop(format!(
        "SET SESSION innodb_lock_wait_timeout = {secs}, lock_wait_timeout = {secs}"
    ))
}
