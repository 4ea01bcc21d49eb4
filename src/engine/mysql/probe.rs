//! Asking the server before acting: planning against the live schema (types and expressions compiled
//! on the server, changing nothing), the preflight, and the load gauge for --max-load.

use super::canary::MARK;
use super::error::message;
use super::{Flavour, MyEnv, MySql, build_plan, quote};
use crate::engine::{Event, Settings, TableSchema};
use crate::error::{Error, Result};
use crate::plan::{Plan, Run};
use crate::spec::AddColumn;
use mysql::Conn;
use mysql::prelude::Queryable;

impl MySql {
    pub(super) fn plan_add_column(&mut self, name: &str, add: &AddColumn) -> Result<Plan> {
        // Planning reads the catalog on the main connection: open it again if it was lost meanwhile.
        if self.conn.ping().is_err() {
            self.reconnect()?;
        }
        let (schema, on_update) = self.table_schema(&add.table)?;
        let reference = self.resolve_reference(add)?;
        let mut env = self.env(reference, on_update);
        // The pure checks first (unknown columns, NOT NULL without a value), then the server's.
        build_plan(name, add, &schema, &env)?;
        self.probe(add, &schema, &mut env)?;
        let mut plan = build_plan(name, add, &schema, &env)?;
        plan.notes.extend(self.target.tls_note());
        self.plan_copies = plan
            .steps
            .iter()
            .any(|s| s.sql.iter().any(|q| q.run == Run::Copy));
        Ok(plan)
    }

    pub(super) fn check_preflight(
        &mut self,
        settings: &Settings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        self.flush_pending(emit);
        self.allow_copy = settings.allow_copy;
        self.target.set_build_timeout(settings.build_timeout);
        if self.plan_copies && !self.allow_copy {
            return Err(Error::Refused(
                "this migration has a step that copies the whole table while application writes wait (on MariaDB 10.11, ADD CHECK has no online path; `zerodown plan` shows it); run again with --allow-copy to accept that, or drop `check` from the migration".into(),
            ));
        }
        Ok(())
    }

    /// Checks the type and expressions by preparing them against the table; changes nothing. Reads
    /// into `env` the account the triggers will run as, and the table's instant row versions on
    /// MySQL ≥ 8.0.29 (documented, not run).
    pub(super) fn probe(
        &mut self,
        add: &AddColumn,
        table: &TableSchema,
        env: &mut MyEnv,
    ) -> Result<()> {
        let t = quote(&table.name);
        let scrub = |m: String| self.target.scrub(&m);
        let refuse = |what: &str, expr: &str, e: &mysql::Error| {
            Error::Refused(scrub(format!(
                "the {what} `{expr}` does not compile on this database: {}",
                message(e)
            )))
        };
        let ty = &add.data_type;
        let probe = format!("zd_probe_{}", std::process::id());
        self.conn
            .query_drop(format!("CREATE TEMPORARY TABLE {} (c {ty})", quote(&probe)))
            .map_err(|e| {
                Error::Refused(self.target.scrub(&format!(
                    "the type `{ty}` is not usable on this database: {}",
                    message(&e)
                )))
            })?;
        let _ = self
            .conn
            .query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {}", quote(&probe)));
        let mut prepare = |sql: String| self.conn.prep(sql).map(|_| ());
        if let Some(b) = &add.backfill {
            prepare(format!("SELECT ({b}) FROM {t} LIMIT 0"))
                .map_err(|e| refuse("backfill expression", b, &e))?;
        }
        if let Some(d) = &add.default {
            prepare(format!("SELECT ({d})")).map_err(|e| refuse("default", d, &e))?;
        }
        if let Some(check) = &add.check {
            prepare(format!(
                "SELECT ({check}) FROM (SELECT zd_t.*, NULL AS {} FROM {t} AS zd_t LIMIT 0) AS {t}",
                quote(&add.column)
            ))
            .map_err(|e| refuse("check", check, &e))?;
        }
        // A trigger created without DEFINER= runs as CURRENT_USER(), the account the server matched.
        env.definer = self
            .conn
            .query_first::<String, _>("SELECT CURRENT_USER()")
            .map_err(|e| self.db_err("reading CURRENT_USER()", &e))?;
        if self.flavour == Flavour::MySql && self.version >= (8, 0, 29) {
            // MySQL 8 (documented, not run): INNODB_TABLES names tables `database/table`.
            env.row_versions = self
                .conn
                .exec_first(
                    "SELECT TOTAL_ROW_VERSIONS FROM INFORMATION_SCHEMA.INNODB_TABLES WHERE NAME = CONCAT(DATABASE(), '/', ?)",
                    (&table.name,),
                )
                .map_err(|e| self.db_err("reading the table's instant row versions", &e))?;
        }
        Ok(())
    }

    /// Connections running a statement that began less than a second ago (the application's
    /// traffic, not a long report), from the process list — when this user sees every connection
    /// (PROCESS privilege). Otherwise `Threads_running`, which needs no privilege but counts long
    /// statements too (gh-ost's and pt-online-schema-change's load gauge). Less this session, and
    /// less zerodown's latency canary (its statement begins with [`MARK`]) in the process list.
    pub(super) fn count_running_sessions(&mut self) -> Result<Option<u32>> {
        let (visible, connected, short, running) =
            self.with_conn("counting the sessions running statements", |c| {
                let seen: Option<(i64, i64)> = c.query_first(format!(
                    "SELECT COUNT(*), COALESCE(SUM(COMMAND NOT IN ('Sleep', 'Daemon', 'Binlog Dump', 'Binlog Dump GTID') AND TIME < 1 AND COALESCE(INFO, '') NOT LIKE 'SELECT {MARK}%'), 0) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()",
                ))?;
                let status = |c: &mut Conn, name: &str| -> std::result::Result<i64, mysql::Error> {
                    let row: Option<(String, String)> =
                        c.query_first(format!("SHOW GLOBAL STATUS LIKE '{name}'"))?;
                    Ok(row.and_then(|(_, v)| v.parse().ok()).unwrap_or(0))
                };
                let (visible, short) = seen.unwrap_or((0, 0));
                Ok((
                    visible,
                    status(c, "Threads_connected")?,
                    short,
                    status(c, "Threads_running")?,
                ))
            })?;
        // Threads_connected counts this session; the process list above does not.
        let n = if visible + 1 >= connected {
            short
        } else {
            running - 1
        };
        Ok(Some(n.clamp(0, i64::from(u32::MAX)) as u32))
    }
}
