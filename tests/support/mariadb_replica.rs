//! A MariaDB replica of a throwaway MariaDB primary, for the replica-lag tests.
//!
//! ```ignore
//! let Some(pair) = support::mariadb_replica::MariaDbPair::start() else { return };
//! let db = pair.primary.fresh_database("lag");   // replicated to the replica
//! pair.stop_sql_thread();                         // the replica falls behind from here
//! pair.start_sql_thread();
//! pair.sync();                                    // the replica has applied all the primary wrote
//! ```
//!
//! Two dedicated servers: the primary with its binary log on (`--log-bin`, `server_id` 1, row
//! format), the replica with `server_id` 2, replicating by GTID (`CHANGE MASTER TO …,
//! MASTER_USE_GTID = slave_pos`; `START SLAVE`) as the harness's password user, which has every
//! privilege. Its empty `gtid_slave_pos` makes it start at the primary's first binary log, so it
//! sees every database the primary has. Every wait polls the servers' own state (SHOW SLAVE STATUS,
//! MASTER_GTID_WAIT).

use mysql::Row;
use mysql::prelude::Queryable;

use super::mariadb::{MariaDbOptions, MariaDbServer, PASSWORD, USER};

/// A primary and its replica; both stop when dropped.
pub struct MariaDbPair {
    /// First: stopped before its primary.
    pub replica: MariaDbServer,
    pub primary: MariaDbServer,
}

impl MariaDbPair {
    /// Starts a primary and a replica of it, and waits until the replica has caught up.
    /// `None` (after one SKIP line) when MariaDB is not installed.
    pub fn start() -> Option<MariaDbPair> {
        let primary = MariaDbServer::start_dedicated(MariaDbOptions {
            binlog: true,
            extra_args: vec!["--binlog-format=ROW".into()],
        })?;
        let replica = MariaDbServer::start_dedicated(MariaDbOptions {
            binlog: false,
            extra_args: vec!["--server-id=2".into()],
        })?;
        let port = primary.port();
        replica
            .admin(|c| {
                c.query_drop(format!(
                    "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {port},
                       MASTER_USER = '{USER}', MASTER_PASSWORD = '{PASSWORD}',
                       MASTER_CONNECT_RETRY = 1, MASTER_USE_GTID = slave_pos"
                ))?;
                c.query_drop("START SLAVE")
            })
            .expect("CHANGE MASTER TO / START SLAVE");
        let pair = MariaDbPair { replica, primary };
        super::wait_for("the replica's threads to run", || {
            let s = pair.status();
            s.io_running == "Yes" && s.sql_running == "Yes"
        });
        pair.sync();
        Some(pair)
    }

    /// The replica's `SHOW SLAVE STATUS`.
    pub fn status(&self) -> SlaveStatus {
        let row: Row = self
            .replica
            .admin(|c| c.query_first("SHOW SLAVE STATUS"))
            .expect("SHOW SLAVE STATUS")
            .expect("the replica is configured");
        let text = |name: &str| -> String {
            row.get_opt::<Option<String>, &str>(name)
                .and_then(Result::ok)
                .flatten()
                .unwrap_or_default()
        };
        let status = SlaveStatus {
            io_running: text("Slave_IO_Running"),
            sql_running: text("Slave_SQL_Running"),
            seconds_behind: text("Seconds_Behind_Master").parse().ok(),
            last_error: format!("{} {}", text("Last_IO_Error"), text("Last_SQL_Error")),
        };
        assert!(
            status.last_error.trim().is_empty(),
            "the replica failed: {}",
            status.last_error
        );
        status
    }

    /// Waits until the replica has applied every transaction the primary has logged so far.
    pub fn sync(&self) {
        let pos: String = self
            .primary
            .admin(|c| c.query_first("SELECT @@gtid_binlog_pos"))
            .expect("@@gtid_binlog_pos")
            .unwrap_or_default();
        // MASTER_GTID_WAIT returns 0 once the replica is there, -1 after the timeout: a short one,
        // polled, so a failed replica shows in `status()` rather than in a long block.
        super::wait_for("the replica to apply the primary's binary log", || {
            self.status();
            self.replica
                .admin(|c| c.exec_first::<i64, _, _>("SELECT MASTER_GTID_WAIT(?, 1)", (&pos,)))
                .expect("MASTER_GTID_WAIT")
                == Some(0)
        });
    }

    /// Stops the replica's SQL thread: it keeps fetching the primary's binary log but applies
    /// nothing, so it falls behind as the primary writes.
    pub fn stop_sql_thread(&self) {
        self.replica
            .admin(|c| c.query_drop("STOP SLAVE SQL_THREAD"))
            .expect("STOP SLAVE SQL_THREAD");
        super::wait_for("the replica's SQL thread to stop", || {
            self.status().sql_running == "No"
        });
    }

    /// Starts the replica's SQL thread again.
    pub fn start_sql_thread(&self) {
        self.replica
            .admin(|c| c.query_drop("START SLAVE SQL_THREAD"))
            .expect("START SLAVE SQL_THREAD");
        super::wait_for("the replica's SQL thread to run", || {
            self.status().sql_running == "Yes"
        });
    }

    /// The replica's URL for database `db`, as the harness's password user.
    pub fn replica_url(&self, db: &str) -> String {
        self.replica.url(db)
    }
}

/// The fields of `SHOW SLAVE STATUS` the tests read.
#[derive(Debug, Clone)]
pub struct SlaveStatus {
    pub io_running: String,
    pub sql_running: String,
    /// `None` while the SQL thread is stopped.
    pub seconds_behind: Option<u64>,
    pub last_error: String,
}
