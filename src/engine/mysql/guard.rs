//! The lock guard: every DDL statement, backfill batch and state write runs under a short lock wait,
//! retried with jittered backoff within the lock budget, naming the sessions in its way each time.

use super::MySql;
use super::error::{is_lock_failure, message};
use crate::engine::lock_guard::{Retries, Waited};
use crate::engine::{Event, LockGuardSettings};
use crate::error::{Error, Result};
use crate::plan::{Run, Statement};
use mysql::TxOpts;
use mysql::prelude::Queryable;
use std::time::Duration;

/// Whole seconds, at least one: `lock_wait_timeout` and `innodb_lock_wait_timeout` take no less.
pub(super) fn whole_seconds(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// A statement that may run long (an online or copying rebuild, by its kind in the plan):
/// max_statement_time would kill it.
pub(super) fn is_build(run: &Run) -> bool {
    matches!(run, Run::OnlineBuild { .. } | Run::Copy)
}

/// A statement to run under strict sql_mode (a MODIFY … NOT NULL, by its kind in the plan).
pub(super) fn is_strict(run: &Run) -> bool {
    matches!(run, Run::OnlineBuild { strict: true, .. })
}

/// Puts a statement under the lock guard (MariaDB): `SET STATEMENT lock_wait_timeout=… [,
/// max_statement_time=…] FOR …`, by the statement's kind, never its text. Builds get only the
/// whole-second lock wait; a strict build runs under strict sql_mode so NULLs fail instead of turning
/// into 0. A statement the rules themselves began with `SET STATEMENT` (the foreign key's
/// foreign_key_checks=0) has its variables merged in: MariaDB takes one SET STATEMENT per statement,
/// and a statement's first words are always zerodown's, never a user's expression.
pub(super) fn guarded_sql(stmt: &Statement, timeout: Duration) -> String {
    let sql = &stmt.sql;
    let mut vars = format!("lock_wait_timeout={}", whole_seconds(timeout));
    if !is_build(&stmt.run) {
        vars.push_str(&format!(
            ", max_statement_time={:.3}",
            timeout.as_secs_f64().max(0.001)
        ));
    }
    if is_strict(&stmt.run) {
        vars.push_str(
            ", sql_mode='STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
        );
    }
    match sql.strip_prefix("SET STATEMENT ") {
        Some(rest) => format!("SET STATEMENT {vars}, {rest}"),
        None => format!("SET STATEMENT {vars} FOR {sql}"),
    }
}

/// Puts a state write under the lock guard (MariaDB): `SET STATEMENT innodb_lock_wait_timeout=…,
/// lock_wait_timeout=… FOR …`, in whole seconds, so that a held row or table waits no longer than the
/// lock timeout and the setting ends with the statement.
pub(super) fn state_guarded_sql(sql: &str, timeout: Duration) -> String {
    let secs = whole_seconds(timeout);
    format!("SET STATEMENT innodb_lock_wait_timeout={secs}, lock_wait_timeout={secs} FOR {sql}")
}

/// What one attempt under the guard came to.
pub(super) enum Attempt<T> {
    Done(T),
    /// The server's answer: a lock wait or a deadlock is tried again within the budget, a lost
    /// connection after reconnecting; anything else ends the loop.
    Server(mysql::Error),
    /// The statement was rewritten (INSTANT refused → INPLACE): run it at once, not counted as a wait.
    Rewritten(String),
    /// zerodown's own verdict (a refusal, a build stopped by its timeout), returned as it is.
    Fail(Error),
}

/// What waits under the guard, for its messages.
pub(super) enum Waiting<'a> {
    /// A DDL statement, for its table's metadata lock.
    Statement(String),
    /// Row writes (a backfill batch, zerodown's own state), for their locks.
    Rows(&'a str),
}

impl Waiting<'_> {
    /// What zerodown was doing, for an error the server gave.
    fn context(&self) -> String {
        match self {
            Waiting::Statement(sql) => format!("running `{sql}`"),
            Waiting::Rows(what) => what.to_string(),
        }
    }

    /// How a spent budget names it: the action, the lock it waited for, what was left as it was.
    fn describe(&self) -> (String, &'static str, &'static str) {
        match self {
            Waiting::Statement(sql) => (
                format!("`{sql}`"),
                "its metadata lock",
                "this statement changed nothing",
            ),
            Waiting::Rows(what) => (what.to_string(), "its locks", "nothing was written"),
        }
    }
}

/// One action for [`MySql::guarded`].
pub(super) struct Guarded<'a> {
    pub waiting: Waiting<'a>,
    /// The table whose sessions are named when the action waits.
    pub table: &'a str,
    /// The action is this run's work on the migration: before each attempt, make sure the run still
    /// holds the driver lock. State writes leave that to the DDL and batches around them.
    pub drives: bool,
}

impl MySql {
    /// The one lock-guard loop. Runs `attempt` until it is done: a lock wait or deadlock is tried
    /// again after a jittered backoff, each time naming the sessions in the way in a LockRetry event,
    /// until the lock budget is spent ([`Error::LockBudget`]); a lost connection is opened again and
    /// the attempt run again (every guarded action can be: statements are idempotent, state writes
    /// set absolute values, a batch reads its cursor inside its own transaction), with a fresh budget.
    pub(super) fn guarded<T>(
        &mut self,
        mut action: Guarded<'_>,
        settings: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
        mut attempt: impl FnMut(&mut MySql, &mut dyn FnMut(Event)) -> Attempt<T>,
    ) -> Result<T> {
        let mut retries = Retries::new(settings);
        let mut reconnects = 0;
        loop {
            if action.drives {
                self.check_driver()?;
            }
            self.flush_pending(emit);
            retries.begin();
            let e = match attempt(self, emit) {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Rewritten(sql) => {
                    action.waiting = Waiting::Statement(sql);
                    retries.forget();
                    continue;
                }
                Attempt::Server(e) => e,
            };
            if !is_lock_failure(&e) {
                if self.recover(&action.waiting.context(), &e, &mut reconnects)? {
                    retries.restart();
                    continue;
                }
                return Err(self.db_err(&action.waiting.context(), &e));
            }
            let blocker = self.blockers(action.table);
            let (what, lock, unchanged) = action.waiting.describe();
            let waited = Waited {
                what: &what,
                lock,
                unchanged,
            };
            retries.blocked(&blocker, &waited, emit)?;
        }
    }

    /// Runs `f` in one short transaction under the lock guard.
    pub(super) fn transaction<T>(
        &mut self,
        what: &str,
        table: &str,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
        mut f: impl FnMut(&mut mysql::Transaction) -> std::result::Result<T, mysql::Error>,
    ) -> Result<T> {
        let action = Guarded {
            waiting: Waiting::Rows(what),
            table,
            drives: true,
        };
        self.guarded(action, guard, emit, |db, _| {
            let outcome = (|| {
                let mut tx = db.conn.start_transaction(TxOpts::default())?;
                let v = f(&mut tx)?;
                tx.commit()?;
                Ok(v)
            })();
            match outcome {
                Ok(v) => Attempt::Done(v),
                Err(e) => Attempt::Server(e),
            }
        })
    }

    /// The sessions that may hold the table: open InnoDB transactions, metadata-lock holders where
    /// the metadata_lock_info plugin is installed, and sessions waiting for a metadata lock.
    pub(super) fn blockers(&mut self, table: &str) -> String {
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
                            let shape = crate::engine::sql_shape::statement_shape(info, true);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(sql: &str, strict: bool) -> Statement {
        Statement {
            sql: sql.into(),
            run: Run::OnlineBuild {
                index: None,
                strict,
            },
        }
    }

    #[test]
    fn guards_catalog_statements_below_a_second_and_builds_in_whole_seconds() {
        let t = Duration::from_millis(300);
        assert_eq!(
            guarded_sql(
                &Statement::in_step("ALTER TABLE `t` ADD COLUMN `c` int, ALGORITHM=INSTANT"),
                t
            ),
            "SET STATEMENT lock_wait_timeout=1, max_statement_time=0.300 FOR ALTER TABLE `t` ADD COLUMN `c` int, ALGORITHM=INSTANT"
        );
        assert_eq!(
            guarded_sql(
                &build(
                    "ALTER TABLE `t` ADD INDEX `i` (`c`), ALGORITHM=INPLACE, LOCK=NONE",
                    false
                ),
                Duration::from_millis(1500)
            ),
            "SET STATEMENT lock_wait_timeout=2 FOR ALTER TABLE `t` ADD INDEX `i` (`c`), ALGORITHM=INPLACE, LOCK=NONE"
        );
        assert!(
            guarded_sql(&build("SET STATEMENT foreign_key_checks=0 FOR ALTER TABLE `t` ADD CONSTRAINT `f` FOREIGN KEY (`c`) REFERENCES `p` (`id`), ALGORITHM=INPLACE, LOCK=NONE", false), t)
                .starts_with("SET STATEMENT lock_wait_timeout=1, foreign_key_checks=0 FOR ALTER")
        );
    }

    #[test]
    fn the_wrapper_follows_the_kind_never_the_text() {
        let t = Duration::from_millis(300);
        // A user's default that spells out another kind's words changes nothing.
        let add = Statement::in_step(
            "ALTER TABLE `t` ADD COLUMN `c` text DEFAULT ('ALGORITHM=COPY MODIFY COLUMN ALGORITHM=INPLACE')",
        );
        assert!(
            guarded_sql(&add, t).starts_with(
                "SET STATEMENT lock_wait_timeout=1, max_statement_time=0.300 FOR ALTER"
            )
        );
        let modify = build(
            "ALTER TABLE `t` MODIFY COLUMN `c` int NOT NULL, ALGORITHM=INPLACE, LOCK=NONE",
            true,
        );
        assert!(guarded_sql(&modify, t).starts_with(
            "SET STATEMENT lock_wait_timeout=1, sql_mode='STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION' FOR ALTER"
        ));
        let copy = Statement {
            sql: "ALTER TABLE `t` ADD CONSTRAINT `k` CHECK (`c` > 0), ALGORITHM=COPY".into(),
            run: Run::Copy,
        };
        assert!(guarded_sql(&copy, t).starts_with("SET STATEMENT lock_wait_timeout=1 FOR ALTER"));
    }

    #[test]
    fn guards_state_writes_on_row_and_table_locks_in_whole_seconds() {
        assert_eq!(
            state_guarded_sql(
                "UPDATE `zerodown_migrations` SET status = ? WHERE id = ?",
                Duration::from_millis(200)
            ),
            "SET STATEMENT innodb_lock_wait_timeout=1, lock_wait_timeout=1 FOR UPDATE `zerodown_migrations` SET status = ? WHERE id = ?"
        );
    }
}
