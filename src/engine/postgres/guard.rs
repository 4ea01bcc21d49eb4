//! The lock guard: every DDL, state write and batch runs in a short transaction under
//! `lock_timeout`, retried with jittered backoff within the lock budget, naming what blocks it.

use super::error::{Fail, is_disconnect, pg, pg_message, sqlstate};
use super::rules::qualified;
use super::{Postgres, state_table};
use crate::engine::lock_guard::{Retries, Waited};
use crate::engine::{Event, LockGuardSettings};
use crate::error::Result;
use crate::plan::Plan;
use postgres::Transaction;
use std::time::{Duration, Instant};

/// Which relation to name the blockers of, when a lock attempt times out.
#[derive(Clone)]
pub(super) enum LockTarget {
    /// The table of step `.1` of migration `.0` (read from its stored plan).
    Step(i64, usize),
    /// A table by its qualified name.
    Table(String),
    /// zerodown's state table.
    State,
}

/// A duration in whole milliseconds, at least 1 (0 would turn a timeout off).
pub(super) fn ms(d: Duration) -> u128 {
    d.as_millis().max(1)
}

impl Postgres {
    /// Runs `f` in its own transaction under `SET LOCAL lock_timeout`, retrying lock timeouts
    /// (55P03) and deadlocks with jittered backoff within the budget, naming the blockers each time.
    pub(super) fn guarded<T>(
        &mut self,
        what: &str,
        guard: &LockGuardSettings,
        target: LockTarget,
        emit: &mut dyn FnMut(Event),
        mut f: impl FnMut(&mut Transaction) -> std::result::Result<T, Fail>,
    ) -> Result<T> {
        let mut retries = Retries::new(guard);
        let mut reconnects = 0;
        loop {
            self.check_driver()?;
            retries.begin();
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
            let blocker = self.blockers(&target);
            retries.report(&blocker, emit);
            if blocker.contains("autovacuum:") {
                self.yield_autovacuum(&target, guard, emit)?;
            }
            let waited = Waited {
                what,
                lock: "its lock",
                unchanged: "nothing was changed by this step",
            };
            retries.back_off(&blocker, &waited)?;
        }
    }

    /// The qualified name of the table a lock target stands for.
    fn target_relation(&mut self, target: &LockTarget) -> Option<String> {
        match target {
            LockTarget::State => Some(state_table()),
            LockTarget::Table(t) => Some(t.clone()),
            LockTarget::Step(id, index) => self
                .client
                .query_opt(
                    &format!("SELECT plan FROM {} WHERE id = $1", state_table()),
                    &[id],
                )
                .ok()
                .flatten()
                .and_then(|r| serde_json::from_str::<Plan>(&r.get::<_, String>(0)).ok())
                .and_then(|p| {
                    let op = p.ops.get(p.steps.get(*index)?.op)?;
                    Some(qualified(
                        op.schema.as_deref().unwrap_or("public"),
                        &op.table,
                    ))
                }),
        }
    }

    /// Gets autovacuum out of a DDL step's way. An autovacuum holds ShareUpdateExclusiveLock, which
    /// every DDL lock conflicts with, and PostgreSQL cancels it for a waiter only after
    /// `deadlock_timeout` (1 s) — longer than zerodown's lock timeout, so each attempt would queue
    /// the application behind it and give up. The backfill rewrote every row, so one is likely.
    /// zerodown cancels it (PostgreSQL runs it again later) when allowed to; otherwise, and for an
    /// autovacuum that prevents wraparound (never cancelled), it waits for it without queueing a
    /// lock, within the lock budget.
    pub(super) fn yield_autovacuum(
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

    /// The sessions holding or queued for a lock on the relation: pid, state, transaction age, query.
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
                    let query = crate::engine::sql_shape::statement_shape(&r.get::<_, String>(3), false);
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
}
