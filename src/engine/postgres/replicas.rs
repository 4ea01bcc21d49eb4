//! PostgreSQL's replicas for `--max-replica-lag`: the streaming standbys the primary's
//! `pg_stat_replication` shows, and standbys named by `--replica` URL (cascading ones, or ones the
//! primary does not stream to directly), each read from zerodown's own session.
//!
//! A standby's lag is how long ago the primary was where the standby's replay is now. The watch keeps
//! the primary's flushed WAL position at each of its looks, so that time is measured here and is never
//! stale: `replay_lag` stops moving while replay is paused, and shows a past figure (or NULL) once
//! nothing is written. A standby whose replay has reached the primary's flushed position is caught
//! up, whatever `replay_lag` still says (gh-ost throttled forever on such a phantom lag, #361, #766).
//! The WAL bytes between the two positions go into the message. A standby that vanishes from
//! `pg_stat_replication` during the run is reported unreachable until it streams again.

use super::Postgres;
use super::connect::Target;
use super::error::pg_message;
use crate::engine::{ReplicaLag, ReplicaWatch};
use crate::error::{Error, Result};
use crate::url::DatabaseUrl;
use postgres::Client;
use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// Looks remembered: at four a second, over a quarter of an hour. A standby further behind than the
/// oldest is reported as behind since then, which is over any sensible limit anyway.
const HISTORY: usize = 4096;

/// Physical standbys streaming from the primary (not pg_basebackup's own sessions, not logical
/// replication), with their replay position in bytes and `replay_lag` in milliseconds. Without
/// pg_read_all_stats every column but the pid is NULL.
const STANDBYS: &str = "SELECT coalesce(nullif(r.application_name, ''), 'pid ' || r.pid),
       coalesce(host(r.client_addr), 'a local socket'),
       r.state,
       pg_catalog.pg_wal_lsn_diff(r.replay_lsn, '0/0')::int8,
       (extract(epoch FROM r.replay_lag) * 1000)::int8
  FROM pg_catalog.pg_stat_replication r
 WHERE r.state IS DISTINCT FROM 'backup'
   AND NOT EXISTS (SELECT FROM pg_catalog.pg_replication_slots s
                    WHERE s.active_pid = r.pid AND s.slot_type = 'logical')";
const FLUSHED: &str =
    "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), '0/0')::int8";
/// On a standby named by URL: still in recovery, how far replay went, whether it is paused.
const ON_STANDBY: &str = "SELECT pg_catalog.pg_is_in_recovery(),
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_replay_lsn(), '0/0')::int8,
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() END";

/// The primary's flushed position at recent looks, oldest first.
#[derive(Debug, Default)]
pub struct History {
    samples: VecDeque<(Instant, u64)>,
}

impl History {
    pub fn push(&mut self, at: Instant, flushed: u64) {
        if self.samples.len() == HISTORY {
            self.samples.pop_front();
        }
        self.samples.push_back((at, flushed));
    }

    /// The lag of a standby whose replay is at `replay` while the primary has flushed up to
    /// `flushed`: zero when it has replayed all of it; else the time since the first look that saw
    /// the primary past `replay` (at least `reported`, the standby's own `replay_lag`).
    pub fn lag(
        &self,
        replay: u64,
        flushed: u64,
        reported: Option<Duration>,
        now: Instant,
    ) -> Duration {
        if replay >= flushed {
            return Duration::ZERO;
        }
        let since = self
            .samples
            .iter()
            .find(|(_, at)| *at > replay)
            .map_or(Duration::ZERO, |(t, _)| now.saturating_duration_since(*t));
        since.max(reported.unwrap_or_default())
    }
}

/// A standby named by `--replica`, and its session when open.
struct ByUrl {
    target: Target,
    client: Option<Client>,
}

struct PgReplicas {
    target: Target,
    app: String,
    primary: Option<Client>,
    by_url: Vec<ByUrl>,
    history: History,
    /// Standbys seen whose position this role may not read (no pg_read_all_stats).
    blind: usize,
    /// Standbys this watch has seen streaming: one that vanishes from pg_stat_replication went away
    /// (crashed, restarting, cut off), and is reported so, not forgotten.
    known: BTreeSet<String>,
}

/// Opens a session of zerodown's own, kept from waiting long on a sick server.
fn session(target: &Target, app: &str) -> Result<Client> {
    let mut c = target.connect(app)?;
    c.batch_execute("SET statement_timeout = '5s'")
        .map_err(|e| Error::db("setting up the replica watch", pg_message(&e)))?;
    Ok(c)
}

/// Opens the watch: a session to the primary, and one to each standby named by URL, which must be
/// a standby (in recovery).
pub fn open(pg: &Postgres, replicas: &[DatabaseUrl]) -> Result<Option<Box<dyn ReplicaWatch>>> {
    let app = format!("zerodown replicas {}", pg.run_id);
    let mut by_url = Vec::new();
    for url in replicas {
        let DatabaseUrl::Postgres(raw) = url else {
            return Err(Error::Refused(format!(
                "--replica {}: the replicas of a PostgreSQL database are given as postgres:// URLs",
                url.redacted()
            )));
        };
        let target = Target::parse(raw)?;
        let mut client = session(&target, &app)?;
        let in_recovery: bool = client
            .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
            .map_err(|e| Error::db(format!("reading {}", target.label), pg_message(&e)))?
            .get(0);
        if !in_recovery {
            return Err(Error::Refused(format!(
                "--replica {}: that server is not a standby (it is not in recovery)",
                target.label
            )));
        }
        by_url.push(ByUrl {
            target,
            client: Some(client),
        });
    }
    let primary = session(&pg.target, &app)?;
    let w = PgReplicas {
        target: pg.target.clone(),
        app,
        primary: Some(primary),
        by_url,
        history: History::default(),
        blind: 0,
        known: BTreeSet::new(),
    };
    Ok(Some(Box::new(w)))
}

impl PgReplicas {
    /// Runs `read` on the primary's session, opening it again once when it broke.
    fn on_primary<T>(
        &mut self,
        read: impl Fn(&mut Client) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        for attempt in 0..2 {
            if self.primary.as_ref().is_none_or(Client::is_closed) {
                self.primary = Some(session(&self.target, &self.app)?);
            }
            let client = self.primary.as_mut().expect("a session");
            match read(client) {
                Ok(v) => return Ok(v),
                Err(_) if attempt == 0 && client.is_closed() => {}
                Err(e) => {
                    return Err(Error::db(
                        "reading the standbys (pg_stat_replication)",
                        self.target.scrub(&pg_message(&e)),
                    ));
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    fn standby_by_url(
        u: &mut ByUrl,
        app: &str,
        history: &History,
        flushed: u64,
        now: Instant,
    ) -> ReplicaLag {
        let mut seen = ReplicaLag {
            replica: u.target.label.clone(),
            lag: None,
            detail: String::new(),
            reachable: false,
        };
        let read = u
            .client
            .take()
            .map_or_else(|| session(&u.target, app), Ok)
            .and_then(|mut c| {
                let row = c
                    .query_one(ON_STANDBY, &[])
                    .map_err(|e| Error::db("reading the standby", pg_message(&e)))?;
                u.client = Some(c);
                Ok(row)
            });
        let row = match read {
            Ok(row) => row,
            Err(e) => {
                seen.detail = u.target.scrub(&e.to_string());
                return seen;
            }
        };
        let (in_recovery, replay, paused): (bool, Option<i64>, Option<bool>) =
            (row.get(0), row.get(1), row.get(2));
        match (in_recovery, replay) {
            (true, Some(replay)) => {
                let replay = replay.max(0) as u64;
                seen.reachable = true;
                seen.lag = Some(history.lag(replay, flushed, None, now));
                seen.detail = behind_bytes(replay, flushed);
                if paused == Some(true) {
                    seen.detail.push_str(", replay paused");
                }
            }
            (true, None) => {
                seen.reachable = true;
                seen.detail = "it has replayed nothing yet".into();
            }
            (false, _) => seen.detail = "it is no longer a standby (promoted?)".into(),
        }
        seen
    }
}

/// "1234 bytes of WAL behind", or nothing once caught up.
fn behind_bytes(replay: u64, flushed: u64) -> String {
    if replay >= flushed {
        String::new()
    } else {
        format!("{} bytes of WAL behind", flushed - replay)
    }
}

impl ReplicaWatch for PgReplicas {
    fn describe(&self) -> String {
        let mut text = "PostgreSQL standbys: the primary's pg_stat_replication".to_string();
        if !self.by_url.is_empty() {
            let named: Vec<String> = self
                .by_url
                .iter()
                .map(|u| format!("`{}`", u.target.label))
                .collect();
            text.push_str(&format!(" and, by --replica, {}", named.join(", ")));
        }
        text
    }

    fn warning(&self) -> Option<String> {
        (self.blind > 0).then(|| format!(
            "{} streaming standby(s) cannot be watched: this role may not read their position (grant it pg_monitor or pg_read_all_stats)",
            self.blind
        ))
    }

    fn look(&mut self) -> Result<Vec<ReplicaLag>> {
        let (flushed, rows) = self.on_primary(|c| {
            let flushed: i64 = c.query_one(FLUSHED, &[])?.get(0);
            Ok((flushed.max(0) as u64, c.query(STANDBYS, &[])?))
        })?;
        let now = Instant::now();
        let mut seen = Vec::new();
        let mut blind = 0;
        for r in rows {
            let name: Option<String> = r.get(0);
            let addr: Option<String> = r.get(1);
            let state: Option<String> = r.get(2);
            let replay: Option<i64> = r.get(3);
            let reported: Option<i64> = r.get(4);
            let Some(state) = state else {
                blind += 1;
                continue;
            };
            let replica = format!(
                "{} at {}",
                name.unwrap_or_default(),
                addr.unwrap_or_default()
            );
            let lag = replay.map(|replay| {
                let replay = replay.max(0) as u64;
                let reported = reported.map(|ms| Duration::from_millis(ms.max(0) as u64));
                (
                    self.history.lag(replay, flushed, reported, now),
                    behind_bytes(replay, flushed),
                )
            });
            seen.push(match lag {
                Some((lag, bytes)) => ReplicaLag {
                    replica,
                    lag: Some(lag),
                    detail: bytes,
                    reachable: true,
                },
                None => ReplicaLag {
                    replica,
                    lag: None,
                    detail: format!("it has reported no replay position yet (state {state})"),
                    reachable: true,
                },
            });
        }
        self.blind = blind;
        let gone: Vec<ReplicaLag> = self
            .known
            .iter()
            .filter(|k| !seen.iter().any(|s| &s.replica == *k))
            .map(|k| ReplicaLag {
                replica: k.clone(),
                lag: None,
                detail: "it no longer streams from the primary".into(),
                reachable: false,
            })
            .collect();
        seen.extend(gone);
        self.known.extend(seen.iter().map(|s| s.replica.clone()));
        for u in &mut self.by_url {
            seen.push(Self::standby_by_url(
                u,
                &self.app,
                &self.history,
                flushed,
                now,
            ));
        }
        self.history.push(now, flushed);
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_time_since_the_primary_passed_the_replay_position() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut h = History::default();
        // No look yet: nothing to go by but the standby's own figure.
        assert_eq!(h.lag(100, 200, None, t0), Duration::ZERO);
        assert_eq!(h.lag(100, 200, Some(s), t0), s);
        h.push(t0, 100);
        h.push(t0 + s, 200);
        h.push(t0 + 2 * s, 300);
        // At 150 it misses what the primary had at t0 + 1s.
        assert_eq!(h.lag(150, 400, None, t0 + 5 * s), 4 * s);
        assert_eq!(h.lag(50, 400, None, t0 + 5 * s), 5 * s);
        // A stale figure never outweighs a standby that has replayed everything.
        assert_eq!(h.lag(400, 400, Some(30 * s), t0 + 5 * s), Duration::ZERO);
        // Nor is it ignored while the standby is behind.
        assert_eq!(h.lag(250, 400, Some(30 * s), t0 + 5 * s), 30 * s);
        assert_eq!(behind_bytes(250, 400), "150 bytes of WAL behind");
        assert_eq!(behind_bytes(400, 400), "");
    }

    #[test]
    fn history_keeps_the_most_recent_looks() {
        let t0 = Instant::now();
        let mut h = History::default();
        for i in 0..(HISTORY as u64 + 10) {
            h.push(t0 + Duration::from_millis(i), i);
        }
        assert_eq!(h.samples.len(), HISTORY);
        assert_eq!(h.samples.front().map(|s| s.1), Some(10));
    }
}
