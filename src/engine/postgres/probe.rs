//! Planning against the live server: the migration's type and expressions are compiled in a
//! transaction that is rolled back, and the default's volatility is read from the catalog.

use super::catalog::called_functions;
use super::error::{pg_message, sqlstate};
use super::guard::ms;
use super::rules::{self, PgEnv, build_plan, qualified};
use super::{Postgres, quote};
use crate::engine::TableSchema;
use crate::error::{Error, Result};
use crate::plan::{DefaultKind, Plan, Volatility};
use crate::spec::{AddColumn, Dialect, analyze_expr};

impl Postgres {
    /// Checks the migration's type and expressions against the database without changing anything
    /// (every probe is rolled back), and reads the default's volatility from the catalog.
    fn probe(
        &mut self,
        add: &AddColumn,
        schema: &str,
        table: &TableSchema,
    ) -> Result<Option<DefaultKind>> {
        let t = qualified(schema, &table.name);
        let timeout = ms(self.guard.timeout);
        let scrub = |m: String| self.target.scrub(&m);
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| Error::db("beginning a check", pg_message(&e)))?;
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{timeout}ms'"))
            .map_err(|e| Error::db("setting lock_timeout", pg_message(&e)))?;
        let ty = &add.data_type;
        tx.batch_execute(&format!("CREATE TEMP TABLE zd_probe (c {ty})"))
            .map_err(|e| {
                Error::Refused(scrub(format!(
                    "the type `{ty}` is not usable on this database: {}",
                    pg_message(&e)
                )))
            })?;
        let refuse = |what: &str, expr: &str, e: &postgres::Error, path_hint: bool| {
            let mut m = format!(
                "the {what} `{expr}` does not compile on this database: {}",
                pg_message(e)
            );
            if path_hint && matches!(sqlstate(e), Some("42883" | "42704" | "42P01" | "3F000")) {
                m.push_str("; the dual-write trigger and the backfill run with search_path = pg_catalog, pg_temp, so functions and types that are not built in must be schema-qualified");
            }
            Error::Refused(scrub(m))
        };
        if let Some(check) = &add.check {
            tx.prepare(&format!(
                "SELECT ({check}) FROM (SELECT *, CAST(NULL AS {ty}) AS {} FROM {t}) AS {} LIMIT 0",
                quote(&add.column),
                quote(&table.name)
            ))
            .map_err(|e| refuse("check", check, &e, false))?;
        }
        tx.batch_execute("SET LOCAL search_path = pg_catalog, pg_temp")
            .map_err(|e| Error::db("setting search_path", pg_message(&e)))?;
        let qtype: String = tx
            .query_one(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = 'pg_temp.zd_probe'::regclass AND attname = 'c'",
                &[],
            )
            .map_err(|e| Error::db("reading the probe's type", pg_message(&e)))?
            .get(0);
        if let Some(b) = &add.backfill {
            tx.prepare(&format!("SELECT CAST(({b}) AS {qtype}) FROM {t} LIMIT 0"))
                .map_err(|e| refuse("backfill expression", b, &e, true))?;
        }
        let mut kind = None;
        if let Some(d) = &add.default {
            let info = analyze_expr(d, Dialect::Postgres, "default").map_err(Error::from)?;
            if info.columns.is_empty() {
                tx.batch_execute(&format!(
                    "CREATE TEMP VIEW zd_probe_v AS SELECT CAST(({d}) AS {qtype}) AS v"
                ))
                .map_err(|e| refuse("default", d, &e, true))?;
                let tree: String = tx
                    .query_one(
                        "SELECT ev_action::text FROM pg_rewrite WHERE ev_class = 'pg_temp.zd_probe_v'::regclass",
                        &[],
                    )
                    .map_err(|e| Error::db("reading the default's parse tree", pg_message(&e)))?
                    .get(0);
                let oids = called_functions(&tree);
                let v: String = tx
                    .query_one(
                        "SELECT coalesce(max(provolatile::text), 'i') FROM pg_proc WHERE oid = ANY ($1)",
                        &[&oids],
                    )
                    .map_err(|e| Error::db("reading function volatility", pg_message(&e)))?
                    .get(0);
                let mut vol = match v.as_str() {
                    "v" => Volatility::Volatile,
                    "s" => Volatility::Time,
                    _ => Volatility::Immutable,
                };
                // CURRENT_TIMESTAMP and friends before PostgreSQL 16: a node, not a function call.
                if vol == Volatility::Immutable && tree.contains("{SQLVALUEFUNCTION") {
                    vol = Volatility::Time;
                }
                kind = Some(rules::default_kind(&info, vol));
            }
        }
        drop(tx); // rolled back: no trace
        Ok(kind)
    }

    pub(super) fn plan_add_column(&mut self, name: &str, add: &AddColumn) -> Result<Plan> {
        let (schema, nsp, _) = self.table_schema(&add.table)?;
        let reference = self.resolve_reference(add)?;
        // The pure checks first (unknown columns, NOT NULL without a value), then the server's.
        let draft_env = PgEnv {
            version_num: self.version_num,
            schema: nsp.clone(),
            default_kind: Some(DefaultKind::Volatile),
            reference: reference.clone(),
        };
        build_plan(name, add, &schema, &draft_env)?;
        let default_kind = self.probe(add, &nsp, &schema)?;
        build_plan(
            name,
            add,
            &schema,
            &PgEnv {
                version_num: self.version_num,
                schema: nsp,
                default_kind,
                reference,
            },
        )
    }
}
