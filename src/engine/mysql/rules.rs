//! MySQL/MariaDB rules: which statement each step runs, with which algorithm and lock, and why — pure
//! data built from the live schema and the server's flavour and version, with no database access
//! (snapshot-tested). Rows proven on MariaDB 10.11 by tests/mariadb_rules.rs and
//! tests/mariadb_lifecycle.rs; MySQL 8 rows are written from its manual: documented, not run.

use super::{STATE_TABLE, quote, quote_list};
use crate::engine::TableSchema;
use crate::error::{Error, Result};
use crate::plan::{
    self, Action, Cost, Decided, DefaultKind, FillPlan, LockLevel, OpPlan, Phase, Plan, PlanInput,
    Run, Statement, Step, Volatility, object_name,
};
use crate::spec::{AddColumn, Dialect, ExprInfo, analyze_expr};

/// Server flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    MariaDb,
    /// MySQL 8: documented, not run.
    MySql,
}

/// A foreign-key target resolved against the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct MyReference {
    pub table: String,
    pub column: String,
}

/// The facts about the server and the table a plan depends on, besides the table's columns.
#[derive(Debug, Clone)]
pub struct MyEnv {
    pub flavour: Flavour,
    /// (major, minor, patch), e.g. (10, 11, 19).
    pub version: (u32, u32, u32),
    pub reference: Option<MyReference>,
    /// Columns with `ON UPDATE CURRENT_TIMESTAMP`: the backfill keeps them at their old values.
    pub on_update_columns: Vec<String>,
    /// MySQL ≥ 8.0.29: the table's `INFORMATION_SCHEMA.INNODB_TABLES.TOTAL_ROW_VERSIONS`, the instant
    /// ADD/DROP COLUMNs it has had since its last rebuild (at [`MYSQL_MAX_ROW_VERSIONS`] INSTANT is
    /// refused). `None` elsewhere. Documented, not run.
    pub row_versions: Option<u32>,
    /// `CURRENT_USER()` of zerodown's connection (`user@host`): the DEFINER its triggers get.
    pub definer: Option<String>,
}

/// MySQL 8.0.29+ allows 64 row versions (instant ADD/DROP COLUMNs) per table until a rebuild; the 65th
/// instant change fails with error 4092 "Maximum row versions reached … Please use COPY/INPLACE".
/// Documented, not run.
pub const MYSQL_MAX_ROW_VERSIONS: u32 = 64;

/// MySQL 8.0.29: instant ADD COLUMN anywhere (before: only as the last column), instant DROP COLUMN,
/// and the row-version count. Documented, not run.
const MYSQL_INSTANT_ANYWHERE: (u32, u32, u32) = (8, 0, 29);

/// How the expand's ADD COLUMN and its undo run on this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExpandAlgorithms {
    add_instant: bool,
    drop_instant: bool,
}

impl MyEnv {
    fn mysql(&self) -> bool {
        self.flavour == Flavour::MySql
    }

    /// MySQL 8 (documented, not run): INSTANT for the ADD unless the row versions are used up; for the
    /// rollback's DROP only from 8.0.29, and only while a version is left after the ADD's own.
    fn expand_algorithms(&self) -> ExpandAlgorithms {
        if !self.mysql() {
            return ExpandAlgorithms {
                add_instant: true,
                drop_instant: true,
            };
        }
        let versions = self.row_versions.unwrap_or(0);
        let add_instant = versions < MYSQL_MAX_ROW_VERSIONS;
        let after_add = versions + u32::from(add_instant);
        ExpandAlgorithms {
            add_instant,
            drop_instant: self.version >= MYSQL_INSTANT_ANYWHERE
                && after_add < MYSQL_MAX_ROW_VERSIONS,
        }
    }
}

impl MyEnv {
    pub fn label(&self) -> String {
        let (a, b, c) = self.version;
        match self.flavour {
            Flavour::MariaDb => format!("MariaDB {a}.{b}.{c}"),
            Flavour::MySql => format!("MySQL {a}.{b}.{c}"),
        }
    }
}

/// How a MySQL/MariaDB function behaves. The server's catalog cannot tell us, so this table does;
/// a function not listed counts as volatile, which is always safe (each row gets its own value).
pub fn classify_function(name: &str) -> Volatility {
    match name.to_ascii_lowercase().as_str() {
        "now" | "current_timestamp" | "localtime" | "localtimestamp" | "curdate"
        | "current_date" | "curtime" | "current_time" | "utc_timestamp" | "utc_date"
        | "utc_time" | "unix_timestamp" => Volatility::Time,
        "lower" | "upper" | "lcase" | "ucase" | "concat" | "concat_ws" | "coalesce" | "ifnull"
        | "nullif" | "if" | "abs" | "round" | "floor" | "ceil" | "ceiling" | "greatest"
        | "least" | "length" | "char_length" | "substring" | "substr" | "left" | "right"
        | "trim" | "ltrim" | "rtrim" | "replace" | "cast" | "convert" | "mod" | "md5" | "sha1"
        | "sha2" | "hex" | "unhex" | "date" | "date_add" | "date_sub" | "json_object"
        | "json_array" | "json_quote" | "pow" | "power" | "sqrt" | "sign" | "truncate" | "lpad"
        | "rpad" | "repeat" | "reverse" | "bin" | "oct" | "crc32" | "char" => Volatility::Immutable,
        // uuid(), uuid_short(), sys_guid(), rand(), sysdate() (the time of the call, per row),
        // nextval(), last_insert_id(), connection_id(), user-defined functions, …
        _ => Volatility::Volatile,
    }
}

/// Names of zerodown's objects besides those in [`crate::plan::Objects`].
pub fn foreign_key_name(table: &str, column: &str) -> String {
    object_name("fk", table, column)
}

/// Plans a migration against a given schema without a database: the pure part of `Engine::plan`.
pub fn build_plan(name: &str, add: &AddColumn, schema: &TableSchema, env: &MyEnv) -> Result<Plan> {
    if env.flavour == Flavour::MariaDb && env.version < (10, 3, 0) {
        return Err(Error::Refused(format!(
            "{} has no ALGORITHM=INSTANT ADD COLUMN; zerodown drives MariaDB 10.3 and later",
            env.label()
        )));
    }
    if env.flavour == Flavour::MySql && env.version < (8, 0, 12) {
        return Err(Error::Refused(format!(
            "{} has no ALGORITHM=INSTANT ADD COLUMN; zerodown drives MySQL 8.0.12 and later",
            env.label()
        )));
    }
    let analyze = |e: &Option<String>, what: &str| -> Result<Option<ExprInfo>> {
        e.as_deref()
            .map(|x| analyze_expr(x, Dialect::Mysql, what))
            .transpose()
            .map_err(Error::from)
    };
    let default_info = analyze(&add.default, "default")?;
    let backfill_info = analyze(&add.backfill, "backfill")?;
    let check_info = analyze(&add.check, "check")?;
    if add.references.is_some() && env.reference.is_none() {
        return Err(Error::Refused(
            "the reference was not resolved against the database".into(),
        ));
    }
    let decided = plan::decide(&PlanInput {
        name,
        add,
        schema,
        default_info: default_info.as_ref(),
        backfill_info: backfill_info.as_ref(),
        check_info: check_info.as_ref(),
        classify: &classify_function,
        literal_default_with_reference: true,
        default_kind: None,
        non_volatile_default_at_expand: true,
    })?;
    let steps = steps(add, schema, env, &decided);
    let mut notes = if env.mysql() {
        vec![
            "MySQL 8 (documented, not run): every DDL statement runs after SET SESSION lock_wait_timeout = --lock-timeout in whole seconds (at least 1 s: MySQL has no SET STATEMENT, no WAIT n and no statement timeout for DDL), retried with backoff within --lock-budget; application queries may queue behind a waiting statement for up to that second".to_string(),
            "MySQL/MariaDB DDL commits at once: each step is recorded right after it; MySQL 8 has no IF [NOT] EXISTS on ADD COLUMN / INDEX / FOREIGN KEY or DROP, so on a re-run after a crash \"already exists\" (1060, 1061, 1826, 1359) and \"does not exist\" (1091, 3821) count as done (documented, not run)".into(),
        ]
    } else {
        vec![
            "every DDL statement waits at most --lock-timeout (default 1s) for its metadata lock and is retried with backoff within --lock-budget; catalog-only statements are capped below a second with SET STATEMENT max_statement_time, so application queries never queue behind zerodown for longer".to_string(),
            "MySQL/MariaDB DDL commits at once: each step is recorded right after it, and written to be re-run safely (IF [NOT] EXISTS), so a crash between a step and its record finishes the step again".into(),
        ]
    };
    if decided.fill.is_some() {
        notes.push(match &env.definer {
            Some(definer) => format!(
                "the dual-write triggers will have DEFINER = {} (zerodown's own account, CURRENT_USER()) and run as it: if that account is dropped or renamed before complete or rollback takes them off, every INSERT and UPDATE on `{}` fails (error 1449, \"the user specified as a definer does not exist\"), so keep it until then; with the binary log on, creating triggers needs SUPER or log_bin_trust_function_creators=1",
                definer_sql(definer),
                schema.name
            ),
            None => "the dual-write triggers run as their DEFINER (the user running zerodown): that user must outlive the migration window; with the binary log on, creating triggers needs SUPER or log_bin_trust_function_creators=1".into(),
        });
        notes.push("on MySQL/MariaDB a trigger cannot see an UPDATE's SET list: an UPDATE recomputes the new column when it changes one of the source columns and leaves the new column unchanged".into());
    }
    if !env.on_update_columns.is_empty() && decided.fill.is_some() {
        notes.push(format!(
            "the backfill keeps ON UPDATE CURRENT_TIMESTAMP columns at their old values: {}",
            env.on_update_columns.join(", ")
        ));
    }
    if add.check.is_some() {
        notes.push("MariaDB 10.11 adds a CHECK constraint only by copying the table (ALGORITHM=COPY), which blocks writes for the whole copy: complete refuses that step unless --allow-copy (MySQL 8 gets the same COPY step: whether its ADD CHECK has an online path is not yet checked against its manual)".into());
    }
    if env.mysql()
        && steps.iter().any(|s| {
            s.sql
                .iter()
                .any(|q| matches!(q.run, Run::OnlineBuild { .. }))
        })
    {
        notes.push("MySQL 8 (documented, not run): an online rebuild or index build (ALGORITHM=INPLACE) is held to --build-timeout (default 1h) by KILL QUERY from a second zerodown connection, since MySQL has no timeout for DDL statements; MySQL rolls the interrupted ALTER back and zerodown stops, saying so".into());
    }
    let algorithms = env.expand_algorithms();
    if env.mysql() {
        match env.row_versions {
            Some(n) if !algorithms.add_instant => notes.push(format!(
                "MySQL 8 (documented, not run): `{}` has had {n} instant column changes since its last rebuild (INFORMATION_SCHEMA.INNODB_TABLES.TOTAL_ROW_VERSIONS), the most MySQL allows ({MYSQL_MAX_ROW_VERSIONS}): ALGORITHM=INSTANT would be refused (error 4092), so the expand adds the column with ALGORITHM=INPLACE, LOCK=NONE — an online rebuild of the whole table, which also resets the count",
                schema.name
            )),
            Some(n) if !algorithms.drop_instant => notes.push(format!(
                "MySQL 8 (documented, not run): `{}` has had {n} instant column changes (TOTAL_ROW_VERSIONS); the expand uses the last of the {MYSQL_MAX_ROW_VERSIONS} MySQL allows, so a rollback would drop the column with an online rebuild (ALGORITHM=INPLACE, LOCK=NONE) instead of instantly",
                schema.name
            )),
            Some(n) if n + 8 >= MYSQL_MAX_ROW_VERSIONS => notes.push(format!(
                "MySQL 8 (documented, not run): `{}` has had {n} of the {MYSQL_MAX_ROW_VERSIONS} instant column changes MySQL allows before a rebuild (TOTAL_ROW_VERSIONS); this migration uses one more, and its rollback another",
                schema.name
            )),
            _ => {}
        }
        if env.version < MYSQL_INSTANT_ANYWHERE {
            notes.push(format!(
                "MySQL 8 (documented, not run): before 8.0.29 ({} here) a column is added instantly only as the last column — zerodown always adds it last — and is never dropped instantly: a rollback of the expand rebuilds the table online (ALGORITHM=INPLACE, LOCK=NONE)",
                env.label()
            ));
        }
    }
    if add.unique || add.index || add.references.is_some() {
        notes.push("online index builds (ALGORITHM=INPLACE, LOCK=NONE) wait at most whole seconds for their metadata lock (lock_wait_timeout), at start and at the end of the build: application queries may stall that long twice".into());
    }
    let update_triggers: Vec<&str> = schema.update_triggers();
    if decided.fill.is_some() && !update_triggers.is_empty() {
        notes.push(format!(
            "user UPDATE triggers that will fire on every backfilled row: {}",
            update_triggers.join(", ")
        ));
    }
    if decided.guard {
        notes.push(crate::plan::DEPLOY_ORDER_NOTE.into());
    }
    if env.mysql() {
        notes.push(format!("MySQL 8 (documented, not run): no SEQUENCE (the old-writer counter is an insert-only AUTO_INCREMENT table: no hot row to update), no SET STATEMENT / WAIT (a whole-second lock_wait_timeout per DDL), no IF [NOT] EXISTS on ADD COLUMN / INDEX, instant ADD COLUMN anywhere and instant DROP COLUMN only since 8.0.29, and at most {MYSQL_MAX_ROW_VERSIONS} instant column changes per table between rebuilds"));
    }
    Ok(Plan {
        format: crate::plan::PLAN_FORMAT,
        migration: name.to_string(),
        engine: env.label(),
        single_step: decided.single_step,
        notes,
        ops: vec![OpPlan {
            kind: "add_column".into(),
            schema: None,
            table: schema.name.clone(),
            column: add.column.clone(),
            fill: decided.fill.clone(),
            objects: decided.objects.clone(),
        }],
        steps,
    })
}

/// `user@host` as the server writes an account: `'user'@'host'`.
fn definer_sql(account: &str) -> String {
    let (user, host) = account.rsplit_once('@').unwrap_or((account, "%"));
    format!("{}@{}", super::literal(user), super::literal(host))
}

fn lock(mode: &str, held: &str, blocks_writes: bool, blocks_reads: bool) -> LockLevel {
    LockLevel::new(mode, held, blocks_writes, blocks_reads)
}

const BRIEF: &str = "a few milliseconds (catalog only), acquired under the lock timeout";

fn mdl_exclusive() -> LockLevel {
    lock("metadata lock (exclusive)", BRIEF, true, true)
}

/// An INPLACE rebuild or build: exclusive only at its start and end.
fn online_rebuild() -> LockLevel {
    lock(
        "metadata lock (exclusive at start and end; shared during the rebuild)",
        &format!("one rebuild of the table; application reads and writes go on; {ONLINE_END}"),
        false,
        false,
    )
}

/// What the exclusive end of an online ALTER costs, as measured on MariaDB 10.11 (1M rows, writes going
/// on; tests/mariadb_contract_timings.rs and the benchmark): the writes made during the build are
/// applied under the exclusive lock, so application queries wait that long.
const ONLINE_END: &str = "at the end the writes made meanwhile are applied under the exclusive lock (60–120 ms seen on MariaDB 10.11 with 1M rows under writes), and each lock wait, at start and end, is capped in whole seconds (lock_wait_timeout)";

fn no_lock() -> LockLevel {
    lock("none (reads only)", "-", false, false)
}

/// A default as a column default clause: literals as they are, expressions in parentheses.
fn default_clause(def: &str, literal: bool) -> String {
    if literal {
        format!("DEFAULT {def}")
    } else {
        format!("DEFAULT ({def})")
    }
}

/// `alter` (without its algorithm) INSTANT when `instant`, with the same statement as an online rebuild
/// (INPLACE, LOCK=NONE) to run if the server refuses INSTANT; otherwise that rebuild alone. Both are
/// in the plan, so what runs is what `plan` printed; COPY is never left to the server's choice.
fn instant_or_online(alter: String, instant: bool) -> Statement {
    let online = format!("{alter}, ALGORITHM=INPLACE, LOCK=NONE");
    if instant {
        Statement {
            sql: format!("{alter}, ALGORITHM=INSTANT"),
            run: Run::InstantOr { fallback: online },
        }
    } else {
        online_build(online, false)
    }
}

/// An online build or rebuild (INPLACE, LOCK=NONE): held to --build-timeout, not the lock timeout;
/// `strict` runs it under strict sql_mode (a MODIFY … NOT NULL).
fn online_build(sql: String, strict: bool) -> Statement {
    Statement {
        sql,
        run: Run::OnlineBuild {
            index: None,
            strict,
        },
    }
}

/// The value of the fill expression for the row being written, inside a trigger: the expression reads
/// the row's source columns from a one-row derived table of `NEW` values.
fn trigger_value(fill: &FillPlan) -> String {
    if fill.source_columns.is_empty() {
        return format!("({})", fill.expr);
    }
    let cols = fill
        .source_columns
        .iter()
        .map(|c| format!("NEW.{q} AS {q}", q = quote(c)))
        .collect::<Vec<_>>()
        .join(", ");
    format!("(SELECT ({}) FROM (SELECT {cols}) AS zd_row)", fill.expr)
}

/// MySQL/MariaDB's step list for a decided migration.
fn steps(add: &AddColumn, schema: &TableSchema, env: &MyEnv, d: &Decided) -> Vec<Step> {
    let t = quote(&schema.name);
    let c = quote(&add.column);
    let mariadb = env.flavour == Flavour::MariaDb;
    let if_exists = if mariadb { "IF EXISTS " } else { "" };
    let if_not_exists = if mariadb { "IF NOT EXISTS " } else { "" };
    let mut steps = Vec::new();

    if let (true, Some(fill)) = (add.not_null, &d.fill) {
        steps.push(Step::null_preflight(
            &t,
            &fill.expr,
            lock(
                "none (consistent read)",
                "one read of the table (blocks no application query)",
                false,
                false,
            ),
        ));
    }

    // Expand.
    let mut def = format!(
        "ALTER TABLE {t} ADD COLUMN {if_not_exists}{c} {}",
        add.data_type
    );
    if d.not_null_at_expand {
        def.push_str(" NOT NULL");
    }
    if let Some(v) = &d.expand_default {
        def.push(' ');
        def.push_str(&default_clause(
            v,
            d.default_kind == Some(DefaultKind::Literal),
        ));
    }
    let algorithms = env.expand_algorithms();
    let add_column = instant_or_online(def, algorithms.add_instant);
    let reason = if d.expand_default.is_some() {
        format!(
            "ALGORITHM=INSTANT stores the {} default in the catalog, which old rows read: no rebuild, one value for every existing row",
            match d.default_kind {
                Some(DefaultKind::Time) => "time",
                _ => "constant",
            }
        )
    } else if d.fill.is_some() {
        if d.default_kind == Some(DefaultKind::Volatile) && !d.guard {
            "a volatile default (uuid(), sysdate(), rand(), nextval…) would need a table copy, or — rand() — give every old row the same value, so the column is added without it, filled row by row by the backfill, and the default goes on at complete".to_string()
        } else {
            "added nullable and without a default, so the backfill can find the rows it has not filled yet".to_string()
        }
    } else {
        "a nullable column without a default is a catalog-only change".to_string()
    };
    let reason = if !algorithms.add_instant {
        format!(
            "{reason}; but this MySQL table has no instant column change left ({MYSQL_MAX_ROW_VERSIONS} row versions, INFORMATION_SCHEMA.INNODB_TABLES.TOTAL_ROW_VERSIONS), so INSTANT would be refused (error 4092): ALGORITHM=INPLACE, LOCK=NONE rebuilds the table online, and zerodown never lets it choose COPY — documented, not run"
        )
    } else if env.mysql() {
        format!(
            "{reason}; if the server refuses INSTANT, zerodown retries with ALGORITHM=INPLACE, LOCK=NONE and never lets it choose COPY. MySQL 8 (documented, not run): before 8.0.29 INSTANT adds only a last column, which is where zerodown adds it; each instant ADD uses one of the table's {MYSQL_MAX_ROW_VERSIONS} row versions"
        )
    } else {
        format!(
            "{reason}; if the server refuses INSTANT, zerodown retries with ALGORITHM=INPLACE, LOCK=NONE and never lets it choose COPY (MySQL before 8.0.29: INSTANT only for a last column — documented, not run)"
        )
    };
    let undo_cost = if algorithms.drop_instant {
        Cost::CatalogOnly
    } else {
        Cost::Rewrite
    };
    steps.push(Step {
        op: 0,
        phase: Phase::Expand,
        action: Action::Ddl,
        summary: if algorithms.add_instant {
            format!(
                "add column {} to {} (ALGORITHM=INSTANT)",
                add.column, schema.name
            )
        } else {
            format!(
                "add column {} to {} by an online rebuild (no instant change left)",
                add.column, schema.name
            )
        },
        sql: vec![add_column],
        lock: if algorithms.add_instant {
            mdl_exclusive()
        } else {
            online_rebuild()
        },
        cost: if algorithms.add_instant {
            Cost::CatalogOnly
        } else {
            Cost::Rewrite
        },
        reason,
        undo: vec![instant_or_online(
            format!("ALTER TABLE {t} DROP COLUMN {if_exists}{c}"),
            algorithms.drop_instant,
        )],
        undo_cost: Some(undo_cost),
    });

    let counter = d.objects.guard_counter.as_ref().map(|k| quote(k));
    // Dual-write.
    if let Some(fill) = &d.fill {
        let mut sql = Vec::new();
        let mut undo = Vec::new();
        if let Some(s) = &counter {
            if mariadb {
                sql.push(format!("CREATE SEQUENCE {if_not_exists}{s} NOCACHE"));
            } else {
                // MySQL 8 (documented, not run): no sequences; an insert-only AUTO_INCREMENT table
                // counts without a hot row to serialise on.
                sql.push(format!(
                    "CREATE TABLE IF NOT EXISTS {s} (n bigint AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB"
                ));
            }
        }
        let bump = match (&counter, mariadb) {
            (Some(s), true) => format!(" DO NEXTVAL({s});"),
            (Some(s), false) => format!(" INSERT INTO {s} VALUES (NULL);"),
            (None, _) => String::new(),
        };
        let value = trigger_value(fill);
        let ins = &d.objects.triggers[0];
        sql.push(format!(
            "CREATE TRIGGER {if_not_exists}{} BEFORE INSERT ON {t} FOR EACH ROW BEGIN IF NEW.{c} IS NULL THEN SET NEW.{c} = {value};{bump} END IF; END",
            quote(ins)
        ));
        if let Some(upd) = d.objects.triggers.get(1) {
            let unchanged = fill
                .source_columns
                .iter()
                .map(|s| format!("NEW.{q} <=> OLD.{q}", q = quote(s)))
                .collect::<Vec<_>>()
                .join(" AND ");
            sql.push(format!(
                "CREATE TRIGGER {if_not_exists}{} BEFORE UPDATE ON {t} FOR EACH ROW BEGIN IF NEW.{c} <=> OLD.{c} AND (NEW.{c} IS NULL OR NOT ({unchanged})) THEN SET NEW.{c} = {value}; END IF; END",
                quote(upd)
            ));
            undo.push(format!("DROP TRIGGER IF EXISTS {}", quote(upd)));
        }
        undo.push(format!("DROP TRIGGER IF EXISTS {}", quote(ins)));
        if let Some(s) = &counter {
            undo.push(if mariadb {
                format!("DROP SEQUENCE IF EXISTS {s}")
            } else {
                format!("DROP TABLE IF EXISTS {s}")
            });
        }
        steps.push(Step {
            op: 0,
            phase: Phase::DualWrite,
            action: Action::Ddl,
            summary: "install the dual-write triggers".into(),
            sql: Statement::in_step_all(sql),
            lock: lock("metadata lock (exclusive)", "a few milliseconds per trigger, acquired under the lock timeout; waits behind any open transaction that touched the table, even a read-only one", true, true),
            cost: Cost::CatalogOnly,
            reason: format!(
                "created after the column (a trigger cannot name a missing column): rows written during the migration get the new column's value even from application versions that do not know it — on INSERT when left NULL{}{}",
                if fill.source_columns.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", and on UPDATE of {} when the writer did not change it",
                        fill.source_columns.join(", ")
                    )
                },
                if counter.is_some() {
                    if mariadb {
                        "; each such INSERT also counts on a NOCACHE sequence (the deploy-order guard)"
                    } else {
                        "; each such INSERT also counts in an insert-only AUTO_INCREMENT table (the deploy-order guard; documented, not run)"
                    }
                } else {
                    ""
                }
            ),
            undo: Statement::in_step_all(undo),
            undo_cost: Some(Cost::CatalogOnly),
        });

        // Backfill.
        let (select, update) = batch_sql(
            &schema.name,
            &add.column,
            fill,
            &env.on_update_columns,
            false,
        );
        steps.push(Step::backfill(
            format!("fill existing rows in keyset batches over {}", fill.key.join(", ")),
            vec![
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; SET SESSION innodb_lock_wait_timeout = <--lock-timeout, whole seconds>; START TRANSACTION".into(),
                select,
                update,
                format!("UPDATE {} SET `cursor` = <batch end>, rows_done = rows_done + <keys> WHERE id = <migration>", quote(STATE_TABLE)),
                "COMMIT".into(),
            ],
            lock(
                "row locks on one batch",
                "one batch at a time (--batch-time, default 20ms); readers never wait",
                false,
                false,
            ),
            "short READ COMMITTED transactions hold row locks only briefly",
        ));
    }

    // Contract.
    if let (true, Some(s)) = (d.guard, &counter) {
        steps.push(Step::quiet_period(if mariadb {
            format!("SELECT next_not_cached_value - 1 FROM {s}")
        } else {
            format!("SELECT coalesce(max(n), 0) FROM {s}")
        }));
    }
    if add.not_null && d.fill.is_some() {
        steps.push(Step::null_sweep(
            &t,
            &c,
            lock(
                "row locks",
                "only while filling rows found NULL, in short transactions",
                false,
                false,
            ),
            Cost::Scan,
        ));
    }
    if add.not_null && !d.not_null_at_expand {
        steps.push(Step {
            op: 0,
            phase: Phase::Contract,
            action: Action::Ddl,
            summary: format!("make {} NOT NULL by an online rebuild", add.column),
            // The column as the expand added it: its type, and no default (a default that would
            // let the expand add it NOT NULL makes this step unneeded; one set at complete goes on
            // after it). Charset and collation are the table's, as they were for the ADD.
            sql: vec![online_build(
                format!(
                    "ALTER TABLE {t} MODIFY COLUMN {c} {} NOT NULL, ALGORITHM=INPLACE, LOCK=NONE",
                    add.data_type
                ),
                true,
            )],
            lock: online_rebuild(),
            cost: Cost::Rewrite,
            reason: if mariadb {
                "MariaDB cannot add NOT NULL instantly; INPLACE, LOCK=NONE rebuilds the table online. It runs under strict sql_mode (without it NULLs would silently become 0), and restates the column as the expand added it; rollback undoes it by dropping the column, without a second rebuild".into()
            } else {
                "MySQL 8 (documented, not run): making a column NOT NULL rebuilds the table in place (INPLACE, LOCK=NONE: concurrent DML allowed) and needs strict sql_mode, which zerodown sets for the session around it (without it NULLs would silently become 0); the column is restated as the expand added it; held to --build-timeout by KILL QUERY; rollback undoes it by dropping the column".into()
            },
            undo: vec![],
            undo_cost: None,
        });
    }
    if let (Some(check), Some(name)) = (&add.check, &d.objects.check) {
        steps.push(Step {
            op: 0,
            phase: Phase::Contract,
            action: Action::Ddl,
            summary: format!("add CHECK {name} (copies the table: needs --allow-copy)"),
            sql: vec![Statement {
                sql: format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {if_not_exists}{} CHECK ({check}), ALGORITHM=COPY",
                    quote(name)
                ),
                run: Run::Copy,
            }],
            lock: lock("metadata lock (shared, no writes) for the whole copy", "one full copy of the table", true, false),
            cost: Cost::Rewrite,
            reason: "MariaDB 10.11 has no online way to add a CHECK (INSTANT, NOCOPY and INPLACE are all refused): it copies the table while writes wait; zerodown runs it only with --allow-copy".into(),
            undo: Statement::in_step_all([format!("ALTER TABLE {t} DROP CONSTRAINT {if_exists}{}", quote(name))]),
            undo_cost: Some(Cost::CatalogOnly),
        });
    }
    for (name, unique) in [(&d.objects.unique_index, true), (&d.objects.index, false)] {
        let Some(name) = name else { continue };
        steps.push(Step {
            op: 0,
            phase: Phase::Contract,
            action: Action::Ddl,
            summary: format!(
                "build {}index {name} online",
                if unique { "unique " } else { "" }
            ),
            sql: vec![online_build(
                format!(
                    "ALTER TABLE {t} ADD {}INDEX {if_not_exists}{} ({c}), ALGORITHM=INPLACE, LOCK=NONE",
                    if unique { "UNIQUE " } else { "" },
                    quote(name)
                ),
                false,
            )],
            lock: lock(
                "metadata lock (exclusive at start and end; shared during the build)",
                &format!(
                    "one pass over the table; application reads and writes go on; {ONLINE_END}"
                ),
                false,
                false,
            ),
            cost: Cost::Scan,
            reason: "ALGORITHM=INPLACE, LOCK=NONE builds the index without blocking writes".into(),
            undo: Statement::in_step_all([format!(
                "ALTER TABLE {t} DROP INDEX {if_exists}{}",
                quote(name)
            )]),
            undo_cost: Some(Cost::CatalogOnly),
        });
    }
    if let (Some(_), Some(target)) = (&add.references, &env.reference) {
        let fk = foreign_key_name(&schema.name, &add.column);
        steps.push(Step {
            op: 0,
            phase: Phase::Contract,
            action: Action::Ddl,
            summary: format!("add FOREIGN KEY {fk} without checking existing rows"),
            sql: {
                let alter = format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {} FOREIGN KEY {if_not_exists}({c}) REFERENCES {} ({}), ALGORITHM=INPLACE, LOCK=NONE",
                    quote(&fk),
                    quote(&target.table),
                    quote(&target.column)
                );
                if mariadb {
                    vec![online_build(format!("SET STATEMENT foreign_key_checks=0 FOR {alter}"), false)]
                } else {
                    // MySQL 8 (documented, not run): no SET STATEMENT; INPLACE only with checks off.
                    vec![
                        Statement::in_step("SET SESSION foreign_key_checks = 0"),
                        online_build(alter, false),
                        Statement::in_step("SET SESSION foreign_key_checks = 1"),
                    ]
                }
            },
            lock: mdl_exclusive(),
            cost: Cost::CatalogOnly,
            reason: "with foreign_key_checks=0 the server adds the key instantly (or builds its index online) and checks only new writes; with checks on it would copy the table. The next step checks existing rows".into(),
            undo: Statement::in_step_all([format!("ALTER TABLE {t} DROP FOREIGN KEY {if_exists}{}", quote(&fk))]),
            undo_cost: Some(Cost::CatalogOnly),
        });
        steps.push(Step {
            op: 0,
            phase: Phase::Contract,
            action: Action::ForeignKeyCheck,
            summary: format!("check existing rows of {} against {}", add.column, target.table),
            sql: Statement::in_step_all([orphan_sql(&schema.name, &add.column, target)]),
            lock: no_lock(),
            cost: Cost::Scan,
            reason: "the key was added without checking existing rows: zerodown counts orphans itself, in keyset batches of 10,000 rows (short reads that lock nothing), and refuses if any".into(),
            undo: vec![],
            undo_cost: None,
        });
    }
    if !d.single_step {
        let mut sql = Vec::new();
        if let Some(def) = &d.default_at_complete {
            sql.push(format!(
                "ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT ({def})"
            ));
        }
        for trg in d.objects.triggers.iter().rev() {
            sql.push(format!("DROP TRIGGER IF EXISTS {}", quote(trg)));
        }
        if let Some(s) = &counter {
            sql.push(if mariadb {
                format!("DROP SEQUENCE IF EXISTS {s}")
            } else {
                format!("DROP TABLE IF EXISTS {s}")
            });
        }
        if !sql.is_empty() {
            steps.push(Step {
                op: 0,
                phase: Phase::Contract,
                action: Action::Finish,
                summary: match (&d.default_at_complete, d.objects.triggers.is_empty()) {
                    (Some(_), false) => "set the default, then drop the triggers".into(),
                    (Some(_), true) => "set the default".into(),
                    (None, _) => "drop the triggers".into(),
                },
                sql: Statement::in_step_all(sql),
                lock: mdl_exclusive(),
                cost: Cost::CatalogOnly,
                reason: "DDL cannot share a transaction on MySQL/MariaDB: the default goes on first, so no write falls between it and the triggers coming off without a value; each statement is catalog-only".into(),
                undo: vec![],
                undo_cost: None,
            });
        }
    }
    steps
}

/// Counts rows whose new column names a missing parent row.
pub fn orphan_sql(table: &str, column: &str, target: &MyReference) -> String {
    format!(
        "SELECT count(*) FROM {t} AS zd_c WHERE zd_c.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {p} AS zd_p WHERE zd_p.{pc} = zd_c.{c})",
        t = quote(table),
        c = quote(column),
        p = quote(&target.table),
        pc = quote(&target.column)
    )
}

/// The keyset batch statements: (the batch's keys, the UPDATE of the batch). Parameters: the cursor
/// (absent on the first batch), then the upper bound and the batch size (select) or the batch's end
/// (update).
pub fn batch_sql(
    table: &str,
    column: &str,
    fill: &FillPlan,
    on_update: &[String],
    first: bool,
) -> (String, String) {
    let t = quote(table);
    let c = quote(column);
    let n = fill.key.len();
    let params = format!("({})", vec!["?"; n].join(", "));
    let key_expr = if n == 1 {
        quote(&fill.key[0])
    } else {
        format!("({})", quote_list(&fill.key))
    };
    let params = if n == 1 { "?".to_string() } else { params };
    let lower = if first {
        String::new()
    } else {
        format!("{key_expr} > {params} AND ")
    };
    let keys = quote_list(&fill.key);
    let select = format!(
        "SELECT {keys} FROM {t} WHERE {lower}{key_expr} <= {params} ORDER BY {keys} LIMIT ?"
    );
    let keep: String = on_update
        .iter()
        .map(|u| format!(", {q} = {q}", q = quote(u)))
        .collect();
    let update = format!(
        "UPDATE {t} SET {c} = ({}){keep} WHERE {lower}{key_expr} <= {params} AND {c} IS NULL",
        fill.expr
    );
    (select, update)
}
