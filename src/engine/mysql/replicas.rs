//! MySQL/MariaDB's replicas for `--max-replica-lag`. The primary cannot see how far its replicas
//! are behind, so each is named by `--replica URL` and read there, from a connection of zerodown's
//! own: `SHOW SLAVE STATUS` (MySQL 8: `SHOW REPLICA STATUS`) for its threads and
//! `Seconds_Behind_Master`, and its GTID position against the primary's.
//!
//! The GTID position decides whether a replica is behind at all: one that has applied every
//! transaction the primary has logged is caught up, whatever `Seconds_Behind_Master` still says (it
//! freezes and jumps; gh-ost throttled forever on such a phantom lag, #361, #766). Behind, its lag is
//! `Seconds_Behind_Master`, and unknown while its SQL thread is stopped (the figure is NULL then),
//! which rests the backfill too. On MariaDB the message counts the transactions behind by GTID
//! sequence numbers.

use super::error::message;
use super::{MySql, Target};
use crate::engine::{ReplicaLag, ReplicaWatch};
use crate::error::{Error, Result};
use crate::url::DatabaseUrl;
use mysql::prelude::Queryable;
use mysql::{Conn, Row};
use std::collections::BTreeMap;
use std::time::Duration;

/// A replica named by `--replica`, and its connection when open.
struct Replica {
    target: Target,
    conn: Option<Conn>,
    /// Known once connected: MariaDB, or MySQL (documented, not run).
    mariadb: bool,
}

struct MyReplicas {
    primary_target: Target,
    primary: Option<Conn>,
    mariadb: bool,
    replicas: Vec<Replica>,
    /// Replicas streaming from the primary that no `--replica` names (binlog dump threads seen).
    unnamed: usize,
}

/// What the replica's status says about its threads.
#[derive(Debug, Default)]
struct Threads {
    io: String,
    sql: String,
    seconds_behind: Option<u64>,
    error: String,
}

/// Opens a connection to `target` that waits at most a few seconds for anything.
fn connect(target: &Target) -> Result<(Conn, bool)> {
    let mut c = target.connect()?;
    let version: String = c
        .query_first("SELECT VERSION()")
        .map_err(|e| Error::db(format!("reading {}", target.label), message(&e)))?
        .unwrap_or_default();
    Ok((c, version.to_ascii_lowercase().contains("mariadb")))
}

/// Opens the watch: a connection to each `--replica`, which must be replicating. Without any it
/// watches nothing, and counts the replicas seen streaming from the primary, to say that they go
/// unwatched.
pub fn open(my: &mut MySql, replicas: &[DatabaseUrl]) -> Result<Option<Box<dyn ReplicaWatch>>> {
    let mut named = Vec::new();
    for url in replicas {
        let DatabaseUrl::Mysql(raw) = url else {
            return Err(Error::Refused(format!(
                "--replica {}: the replicas of a MySQL/MariaDB database are given as mysql:// or mariadb:// URLs",
                url.redacted()
            )));
        };
        let target = Target::parse(raw)?;
        let (mut conn, mariadb) = connect(&target)?;
        let status = threads(&mut conn, mariadb)
            .map_err(|e| Error::db(format!("reading {}", target.label), message(&e)))?;
        if status.is_none() {
            return Err(Error::Refused(format!(
                "--replica {}: that server replicates from nowhere ({} is empty)",
                target.label,
                status_statement(mariadb)
            )));
        }
        named.push(Replica {
            target,
            conn: Some(conn),
            mariadb,
        });
    }
    let unnamed = if named.is_empty() {
        let n: Option<i64> = my
            .conn
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND IN ('Binlog Dump', 'Binlog Dump GTID')",
            )
            .map_err(|e| Error::db("counting the replicas", message(&e)))?;
        n.unwrap_or(0).max(0) as usize
    } else {
        0
    };
    let w = MyReplicas {
        primary_target: my.target.clone(),
        primary: None,
        mariadb: my.flavour == super::Flavour::MariaDb,
        replicas: named,
        unnamed,
    };
    Ok(Some(Box::new(w)))
}

fn status_statement(mariadb: bool) -> &'static str {
    if mariadb {
        "SHOW SLAVE STATUS"
    } else {
        "SHOW REPLICA STATUS"
    }
}

/// The replica's threads; `None` when it replicates from nowhere.
fn threads(c: &mut Conn, mariadb: bool) -> std::result::Result<Option<Threads>, mysql::Error> {
    let row: Option<Row> = c.query_first(status_statement(mariadb))?;
    let Some(row) = row else { return Ok(None) };
    let text = |names: [&str; 2]| -> String {
        names
            .iter()
            .find_map(|n| row.get_opt::<Option<String>, &str>(n).and_then(|v| v.ok()))
            .flatten()
            .unwrap_or_default()
    };
    Ok(Some(Threads {
        io: text(["Slave_IO_Running", "Replica_IO_Running"]),
        sql: text(["Slave_SQL_Running", "Replica_SQL_Running"]),
        seconds_behind: text(["Seconds_Behind_Master", "Seconds_Behind_Source"])
            .parse()
            .ok(),
        error: [
            text(["Last_SQL_Error", "Last_SQL_Error"]),
            text(["Last_IO_Error", "Last_IO_Error"]),
        ]
        .into_iter()
        .filter(|e| !e.is_empty())
        .collect::<Vec<_>>()
        .join("; "),
    }))
}

/// A MariaDB GTID position (`domain-server-sequence`, comma-separated) as the highest sequence
/// number per replication domain.
pub fn domains(pos: &str) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    for gtid in pos.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let mut parts = gtid.split('-');
        let (Some(d), Some(_server), Some(seq)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let (Ok(d), Ok(seq)) = (d.parse::<u32>(), seq.parse::<u64>()) {
            let e = out.entry(d).or_insert(0);
            *e = (*e).max(seq);
        }
    }
    out
}

/// Transactions the replica at `replica` has yet to apply of the primary's `primary` position,
/// by sequence numbers per domain.
pub fn transactions_behind(primary: &str, replica: &str) -> u64 {
    let r = domains(replica);
    domains(primary)
        .into_iter()
        .map(|(d, seq)| seq.saturating_sub(r.get(&d).copied().unwrap_or(0)))
        .sum()
}

/// One replica's lag from its threads and whether its GTID position has the primary's.
fn lag_of(threads: &Threads, caught_up: Option<bool>) -> Option<Duration> {
    if caught_up == Some(true) {
        return Some(Duration::ZERO);
    }
    if threads.sql != "Yes" {
        return None;
    }
    threads.seconds_behind.map(Duration::from_secs)
}

impl MyReplicas {
    /// The primary's GTID position, opening the connection again once when it broke.
    fn primary_position(&mut self) -> Result<String> {
        let sql = if self.mariadb {
            "SELECT @@gtid_binlog_pos"
        } else {
            "SELECT @@gtid_executed"
        };
        for attempt in 0..2 {
            if self.primary.is_none() {
                self.primary = Some(connect(&self.primary_target)?.0);
            }
            let conn = self.primary.as_mut().expect("a connection");
            match conn.query_first::<String, _>(sql) {
                Ok(pos) => return Ok(pos.unwrap_or_default()),
                Err(_) if attempt == 0 => self.primary = None,
                Err(e) => {
                    return Err(Error::db(
                        "reading the primary's GTID position",
                        self.primary_target.scrub(&message(&e)),
                    ));
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    fn look_at(r: &mut Replica, primary_pos: &str) -> ReplicaLag {
        let mut seen = ReplicaLag {
            replica: r.target.label.clone(),
            lag: None,
            detail: String::new(),
            reachable: false,
        };
        if r.conn.is_none() {
            match connect(&r.target) {
                Ok((c, mariadb)) => {
                    r.conn = Some(c);
                    r.mariadb = mariadb;
                }
                Err(e) => {
                    seen.detail = r.target.scrub(&e.to_string());
                    return seen;
                }
            }
        }
        let conn = r.conn.as_mut().expect("a connection");
        let read = threads(conn, r.mariadb).and_then(|t| {
            let behind = match (r.mariadb, primary_pos.is_empty()) {
                (_, true) => None,
                (true, false) => {
                    let pos: Option<String> = conn.query_first("SELECT @@gtid_slave_pos")?;
                    Some(transactions_behind(primary_pos, &pos.unwrap_or_default()))
                }
                (false, false) => {
                    let subset: Option<i64> =
                        conn.exec_first("SELECT GTID_SUBSET(?, @@gtid_executed)", (primary_pos,))?;
                    Some(u64::from(subset != Some(1)))
                }
            };
            Ok((t, behind))
        });
        let (threads, behind) = match read {
            Ok((Some(t), behind)) => (t, behind),
            Ok((None, _)) => {
                seen.detail = "it replicates from nowhere now".into();
                return seen;
            }
            Err(e) => {
                r.conn = None;
                seen.detail = r
                    .target
                    .scrub(&format!("lost its connection: {}", message(&e)));
                return seen;
            }
        };
        seen.reachable = true;
        seen.lag = lag_of(&threads, behind.map(|n| n == 0));
        let mut detail = Vec::new();
        match behind {
            Some(n) if n > 0 && r.mariadb => detail.push(format!("{n} transactions behind")),
            _ => {}
        }
        if threads.sql != "Yes" {
            detail.push("its SQL thread is stopped".into());
        }
        if threads.io != "Yes" {
            detail.push(format!("its I/O thread is {}", threads.io.to_lowercase()));
        }
        if !threads.error.is_empty() {
            detail.push(r.target.scrub(&threads.error));
        }
        seen.detail = detail.join(", ");
        seen
    }
}

impl ReplicaWatch for MyReplicas {
    fn describe(&self) -> String {
        if self.replicas.is_empty() {
            return "MySQL/MariaDB replicas: none named with --replica".into();
        }
        let named: Vec<String> = self
            .replicas
            .iter()
            .map(|r| format!("`{}`", r.target.label))
            .collect();
        format!(
            "MySQL/MariaDB replicas by --replica: {} (their SQL threads and Seconds_Behind_Master, and their GTID position against the primary's)",
            named.join(", ")
        )
    }

    fn warning(&self) -> Option<String> {
        (self.unnamed > 0).then(|| format!(
            "{} replica(s) stream from this primary and none is named: the primary cannot show their lag, so the backfill watches them only when each is given as --replica URL",
            self.unnamed
        ))
    }

    fn look(&mut self) -> Result<Vec<ReplicaLag>> {
        if self.replicas.is_empty() {
            return Ok(Vec::new());
        }
        let pos = self.primary_position()?;
        Ok(self
            .replicas
            .iter_mut()
            .map(|r| Self::look_at(r, &pos))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_positions_compare_per_domain() {
        assert_eq!(
            domains("0-1-42, 1-2-7,junk"),
            BTreeMap::from([(0, 42), (1, 7)])
        );
        assert_eq!(transactions_behind("0-1-42,1-2-7", "0-1-40,1-2-7"), 2);
        assert_eq!(transactions_behind("0-1-42", "0-1-42,5-9-100"), 0);
        // A domain the replica has never seen counts whole.
        assert_eq!(transactions_behind("0-1-42,3-1-5", "0-1-42"), 5);
        assert_eq!(transactions_behind("", ""), 0);
    }

    #[test]
    fn caught_up_by_gtid_outweighs_a_frozen_seconds_behind() {
        let stopped = Threads {
            io: "Yes".into(),
            sql: "No".into(),
            seconds_behind: None,
            error: String::new(),
        };
        assert_eq!(lag_of(&stopped, Some(false)), None);
        assert_eq!(lag_of(&stopped, Some(true)), Some(Duration::ZERO));
        let frozen = Threads {
            sql: "Yes".into(),
            seconds_behind: Some(600),
            ..stopped
        };
        assert_eq!(lag_of(&frozen, Some(true)), Some(Duration::ZERO));
        assert_eq!(lag_of(&frozen, Some(false)), Some(Duration::from_secs(600)));
        // No GTIDs to go by: Seconds_Behind_Master alone.
        assert_eq!(lag_of(&frozen, None), Some(Duration::from_secs(600)));
    }
}
