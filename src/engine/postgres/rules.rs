//! PostgreSQL's rules: which statement each step runs, which lock it takes and for how long, and why —
//! pure data built from the live schema and the server's major version, with no database access
//! (snapshot-tested). Every rule here has a test on a real server in tests/postgres_lifecycle.rs.

use super::{STATE_SCHEMA, quote, quote_list};
use crate::engine::TableSchema;
use crate::error::{Error, Result};
use crate::plan::{
    self, Action, Cost, Decided, DefaultKind, FillPlan, LockLevel, OpPlan, Phase, Plan, PlanInput,
    Run, Statement, Step, Volatility, object_name,
};
use crate::spec::{AddColumn, Dialect, ExprInfo, analyze_expr};

/// Oldest major zerodown drives.
pub const MIN_MAJOR: i32 = 13;
/// First major with `ADD CONSTRAINT … NOT NULL c NOT VALID`.
pub const NOT_NULL_NOT_VALID_MAJOR: i32 = 18;

/// A foreign-key target resolved against the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct PgReference {
    pub schema: String,
    pub table: String,
    pub column: String,
}

/// The facts about the server and the table that a plan depends on, besides the table's columns.
#[derive(Debug, Clone)]
pub struct PgEnv {
    /// `server_version_num`, e.g. 150018.
    pub version_num: i32,
    /// The table's schema.
    pub schema: String,
    /// The default's kind, decided from the catalog (pg_proc.provolatile of what it calls).
    pub default_kind: Option<DefaultKind>,
    pub reference: Option<PgReference>,
}

impl PgEnv {
    pub fn major(&self) -> i32 {
        self.version_num / 10000
    }
}

/// `PostgreSQL 15.18` from 150018.
pub fn version_text(num: i32) -> String {
    format!("PostgreSQL {}.{}", num / 10000, num % 10000)
}

/// The DefaultKind of an expression from its parse and the most volatile function the server's own
/// parse of it calls.
pub fn default_kind(info: &ExprInfo, most_volatile: Volatility) -> DefaultKind {
    if info.is_literal {
        return DefaultKind::Literal;
    }
    match most_volatile {
        Volatility::Volatile => DefaultKind::Volatile,
        Volatility::Time => DefaultKind::Time,
        Volatility::Immutable => DefaultKind::Constant,
    }
}

/// Names of zerodown's PostgreSQL objects for one migration (a `zd_` prefix and a hash, ≤ 63 bytes).
#[derive(Debug, Clone)]
pub struct Names {
    pub function: String,
    pub not_null: String,
    pub foreign_key: String,
}

pub fn names(table: &str, column: &str) -> Names {
    Names {
        function: object_name("fn", table, column),
        not_null: object_name("nn", table, column),
        foreign_key: object_name("fk", table, column),
    }
}

/// Plans a migration against a given schema without a database: the pure part of `Engine::plan`.
pub fn build_plan(name: &str, add: &AddColumn, schema: &TableSchema, env: &PgEnv) -> Result<Plan> {
    if env.major() < MIN_MAJOR {
        return Err(Error::Refused(format!(
            "{} is not supported: zerodown drives PostgreSQL {MIN_MAJOR} to 18",
            version_text(env.version_num)
        )));
    }
    let base = add
        .data_type
        .trim()
        .to_ascii_lowercase()
        .replace(char::is_whitespace, "");
    if [
        "serial",
        "bigserial",
        "smallserial",
        "serial2",
        "serial4",
        "serial8",
    ]
    .contains(&base.as_str())
    {
        return Err(Error::Refused(format!(
            "`{}` is not a type but a shorthand for a sequence default, which would rewrite the table; use `{}` with `default = \"nextval('a_sequence')\"`",
            add.data_type,
            if base.starts_with("big") || base == "serial8" {
                "bigint"
            } else {
                "integer"
            }
        )));
    }
    let analyze = |e: &Option<String>, what: &str| -> Result<Option<ExprInfo>> {
        e.as_deref()
            .map(|x| analyze_expr(x, Dialect::Postgres, what))
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
    // The catalog decided the default's volatility; names never do.
    let never = |_: &str| Volatility::Volatile;
    let decided = plan::decide(&PlanInput {
        name,
        add,
        schema,
        default_info: default_info.as_ref(),
        backfill_info: backfill_info.as_ref(),
        check_info: check_info.as_ref(),
        classify: &never,
        literal_default_with_reference: true,
        default_kind: env.default_kind.or(default_info
            .as_ref()
            .filter(|i| i.is_literal)
            .map(|_| DefaultKind::Literal)),
        non_volatile_default_at_expand: true,
    })?;
    let steps = steps(add, schema, env, &decided);
    let mut notes = vec![
        "every step that takes a lock waits at most --lock-timeout (default 200ms) for it, in its own transaction, and retries with backoff within --lock-budget: a waiting ALTER never queues the application's queries behind it for longer".to_string(),
        "before each such step, an autovacuum of the table is cancelled (PostgreSQL runs it again later; it would hold every attempt up, since PostgreSQL cancels it for a waiter only after deadlock_timeout), or waited for, without queueing, when it prevents wraparound or zerodown may not signal it; zerodown's own statements use no parallel workers".to_string(),
    ];
    if decided.fill.is_some() {
        notes.push("the dual-write function runs as its owner (SECURITY DEFINER) with search_path = pg_catalog, pg_temp: functions and types in the expressions that are not built in must be schema-qualified".into());
    }
    if !decided.single_step && (add.unique || add.index) {
        notes.push("online index builds (CREATE INDEX CONCURRENTLY) wait for every older transaction in the database, under --build-timeout (default 1h), outside any transaction".into());
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
    Ok(Plan {
        format: crate::plan::PLAN_FORMAT,
        migration: name.to_string(),
        engine: version_text(env.version_num),
        single_step: decided.single_step,
        notes,
        ops: vec![OpPlan {
            kind: "add_column".into(),
            schema: Some(env.schema.clone()),
            table: schema.name.clone(),
            column: add.column.clone(),
            fill: decided.fill.clone(),
            objects: decided.objects.clone(),
        }],
        steps,
    })
}

fn lock(mode: &str, held: &str, blocks_writes: bool, blocks_reads: bool) -> LockLevel {
    LockLevel::new(mode, held, blocks_writes, blocks_reads)
}

const BRIEF: &str = "a few milliseconds (catalog only), acquired under the lock timeout";

fn access_exclusive() -> LockLevel {
    lock("ACCESS EXCLUSIVE", BRIEF, true, true)
}

fn share_update_exclusive(held: &str) -> LockLevel {
    lock("SHARE UPDATE EXCLUSIVE", held, false, false)
}

/// A dollar-quote tag that does not occur in `body`.
fn dollar_tag(body: &str) -> String {
    let mut tag = "$zd$".to_string();
    let mut n = 0;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$zd{n}$");
    }
    tag
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote(schema), quote(name))
}

/// PostgreSQL's step list for a decided migration.
fn steps(add: &AddColumn, schema: &TableSchema, env: &PgEnv, d: &Decided) -> Vec<Step> {
    let t = qualified(&env.schema, &schema.name);
    let c = quote(&add.column);
    let n = names(&schema.name, &add.column);
    let mut steps = Vec::new();

    if let (true, Some(fill)) = (add.not_null, &d.fill) {
        steps.push(Step::null_preflight(
            &t,
            &fill.expr,
            lock(
                "ACCESS SHARE",
                "one read of the table (blocks no application query)",
                false,
                false,
            ),
        ));
    }

    // Expand.
    let mut def = format!("ALTER TABLE {t} ADD COLUMN {c} {}", add.data_type);
    if d.not_null_at_expand {
        def.push_str(" NOT NULL");
    }
    if let Some(v) = &d.expand_default {
        def.push_str(&format!(" DEFAULT {v}"));
    }
    let reason = if d.expand_default.is_some() {
        format!(
            "a {} default is evaluated once and stored in the catalog (a \"missing value\" that old rows read): no rewrite{}",
            match d.default_kind {
                Some(DefaultKind::Time) => "stable (time)",
                _ => "constant",
            },
            if d.not_null_at_expand {
                ", and NOT NULL needs no scan since every row reads that non-NULL value"
            } else {
                ""
            }
        )
    } else if d.fill.is_some() {
        let why = if d.default_kind == Some(DefaultKind::Volatile) && !d.guard {
            "a volatile default would rewrite the whole table under ACCESS EXCLUSIVE, so the column is added without it, filled row by row by the backfill, and the default goes on at complete"
        } else {
            "added nullable and without a default, so the backfill can find the rows it has not filled yet"
        };
        why.to_string()
    } else {
        "a nullable column without a default is a catalog-only change".to_string()
    };
    steps.push(Step {
        op: 0,
        phase: Phase::Expand,
        action: Action::Ddl,
        summary: format!("add column {} to {}", add.column, schema.name),
        sql: Statement::in_step_all([def]),
        lock: access_exclusive(),
        cost: Cost::CatalogOnly,
        reason,
        undo: Statement::in_step_all([format!("ALTER TABLE {t} DROP COLUMN IF EXISTS {c}")]),
        undo_cost: Some(Cost::CatalogOnly),
    });

    let function = qualified(STATE_SCHEMA, &n.function);
    let guard_seq = d
        .objects
        .guard_counter
        .as_ref()
        .map(|k| qualified(STATE_SCHEMA, k));
    // Dual-write.
    if let Some(fill) = &d.fill {
        let count = guard_seq
            .as_ref()
            .map(|s| {
                format!(
                    "  IF TG_OP = 'INSERT' THEN PERFORM pg_catalog.nextval({}); END IF;\n",
                    super::literal(s)
                )
            })
            .unwrap_or_default();
        let body = format!(
            "BEGIN\n{count}  SELECT ({}) INTO NEW.{c} FROM (SELECT NEW.*) AS zd_row;\n  RETURN NEW;\nEND",
            fill.expr
        );
        let tag = dollar_tag(&body);
        let mut sql = Vec::new();
        if let Some(s) = &guard_seq {
            sql.push(format!("CREATE SEQUENCE {s}"));
        }
        sql.push(format!(
            "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {tag}\n{body}\n{tag}"
        ));
        let ins = &d.objects.triggers[0];
        sql.push(format!(
            "CREATE TRIGGER {} BEFORE INSERT ON {t} FOR EACH ROW WHEN (NEW.{c} IS NULL) EXECUTE FUNCTION {function}()",
            quote(ins)
        ));
        let mut undo = Vec::new();
        if let Some(upd) = d.objects.triggers.get(1) {
            sql.push(format!(
                "CREATE TRIGGER {} BEFORE UPDATE OF {} ON {t} FOR EACH ROW WHEN (NEW.{c} IS NOT DISTINCT FROM OLD.{c}) EXECUTE FUNCTION {function}()",
                quote(upd),
                quote_list(&fill.source_columns)
            ));
            undo.push(format!("DROP TRIGGER IF EXISTS {} ON {t}", quote(upd)));
        }
        undo.push(format!("DROP TRIGGER IF EXISTS {} ON {t}", quote(ins)));
        undo.push(format!("DROP FUNCTION IF EXISTS {function}()"));
        if let Some(s) = &guard_seq {
            undo.push(format!("DROP SEQUENCE IF EXISTS {s}"));
        }
        steps.push(Step {
            op: 0,
            phase: Phase::DualWrite,
            action: Action::Ddl,
            summary: "install the dual-write function and triggers".into(),
            sql: Statement::in_step_all(sql),
            lock: lock("SHARE ROW EXCLUSIVE", BRIEF, true, false),
            cost: Cost::CatalogOnly,
            reason: format!(
                "rows written during the migration get the new column's value even from application versions that do not know it: on INSERT when left NULL{}{}; the WHEN clauses keep every other write, the backfill's own UPDATEs above all, from calling the function; SECURITY DEFINER with a fixed search_path, because it runs for whatever role the application writes with",
                if fill.source_columns.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", and on UPDATE of {} when the writer did not change it",
                        fill.source_columns.join(", ")
                    )
                },
                if guard_seq.is_some() {
                    "; each such INSERT also counts on a sequence (the deploy-order guard)"
                } else {
                    ""
                }
            ),
            undo: Statement::in_step_all(undo),
            undo_cost: Some(Cost::CatalogOnly),
        });

        // Backfill.
        let (select, update) = batch_sql(
            &env.schema,
            &schema.name,
            &add.column,
            fill,
            &key_types(schema, fill),
            false,
        );
        steps.push(Step::backfill(
            format!("fill existing rows in keyset batches over {}", fill.key.join(", ")),
            vec![
                "BEGIN; SET LOCAL lock_timeout = <--lock-timeout>; SET LOCAL search_path = pg_catalog, pg_temp".into(),
                select,
                update,
                format!("UPDATE {}.\"migrations\" SET cursor = <batch end>, rows_done = rows_done + <keys> WHERE id = <migration>", quote(STATE_SCHEMA)),
                "COMMIT".into(),
            ],
            lock(
                "ROW EXCLUSIVE, and row locks on one batch",
                "one batch at a time (--batch-time, default 20ms); readers never wait",
                false,
                false,
            ),
            "short transactions hold row locks only briefly",
        ));
    }

    // Contract.
    if let (true, Some(seq)) = (d.guard, &guard_seq) {
        steps.push(Step::quiet_period(format!(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {seq}"
        )));
    }
    if add.not_null && d.fill.is_some() {
        steps.push(Step::null_sweep(
            &t,
            &c,
            lock(
                "ROW EXCLUSIVE",
                "only while filling rows found NULL, in short transactions",
                false,
                false,
            ),
            Cost::Scan,
        ));
    }
    let validate = |name: &str, what: &str, extra: &str| {
        Step {
        op: 0,
        phase: Phase::Contract,
        action: Action::Ddl,
        summary: format!("validate {what} {name}"),
        sql: Statement::in_step_all([format!("ALTER TABLE {t} VALIDATE CONSTRAINT {}", quote(name))]),
        lock: share_update_exclusive(&format!(
            "one pass over the table{extra}; application reads and writes go on"
        )),
        cost: Cost::Scan,
        reason: "VALIDATE checks the existing rows under SHARE UPDATE EXCLUSIVE, which blocks no application query".into(),
        undo: vec![],
        undo_cost: None,
    }
    };
    let drop_constraint = |name: &str| {
        vec![format!(
            "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {}",
            quote(name)
        )]
    };
    if add.not_null && !d.not_null_at_expand {
        if env.major() >= NOT_NULL_NOT_VALID_MAJOR {
            steps.push(Step {
                op: 0,
                phase: Phase::Contract,
                action: Action::Ddl,
                summary: format!("add NOT NULL {} NOT VALID", n.not_null),
                sql: Statement::in_step_all([format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {} NOT NULL {c} NOT VALID",
                    quote(&n.not_null)
                )]),
                lock: access_exclusive(),
                cost: Cost::CatalogOnly,
                reason: "PostgreSQL 18 adds a NOT NULL constraint without checking existing rows (new writes are checked at once)".into(),
                undo: Statement::in_step_all(drop_constraint(&n.not_null)),
                undo_cost: Some(Cost::CatalogOnly),
            });
            steps.push(validate(&n.not_null, "NOT NULL", ""));
        } else {
            steps.push(Step {
                op: 0,
                phase: Phase::Contract,
                action: Action::Ddl,
                summary: format!("add CHECK ({} IS NOT NULL) NOT VALID", add.column),
                sql: Statement::in_step_all([format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {} CHECK ({c} IS NOT NULL) NOT VALID",
                    quote(&n.not_null)
                )]),
                lock: access_exclusive(),
                cost: Cost::CatalogOnly,
                reason: format!(
                    "PostgreSQL {} has no NOT NULL NOT VALID; a validated CHECK lets SET NOT NULL skip its scan",
                    env.major()
                ),
                undo: Statement::in_step_all(drop_constraint(&n.not_null)),
                undo_cost: Some(Cost::CatalogOnly),
            });
            steps.push(validate(&n.not_null, "CHECK", ""));
            steps.push(Step {
                op: 0,
                phase: Phase::Contract,
                action: Action::Ddl,
                summary: "set NOT NULL (proved by the valid CHECK: no scan) and drop the CHECK".into(),
                sql: Statement::in_step_all([
                    format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"),
                    format!("ALTER TABLE {t} DROP CONSTRAINT {}", quote(&n.not_null)),
                ]),
                lock: access_exclusive(),
                cost: Cost::CatalogOnly,
                reason: "a valid CHECK (c IS NOT NULL) proves there are no NULLs, so SET NOT NULL does not scan; the CHECK is then redundant".into(),
                undo: Statement::in_step_all([format!("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL")]),
                undo_cost: Some(Cost::CatalogOnly),
            });
        }
    }
    if let (Some(check), Some(name)) = (&add.check, &d.objects.check) {
        steps.push(Step {
            op: 0,
            phase: Phase::Contract,
            action: Action::Ddl,
            summary: format!("add CHECK {name} NOT VALID"),
            sql: Statement::in_step_all([format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} CHECK ({check}) NOT VALID",
                quote(name)
            )]),
            lock: access_exclusive(),
            cost: Cost::CatalogOnly,
            reason: "NOT VALID: new writes are checked at once, existing rows by the next step, after the backfill so it judges final values".into(),
            undo: Statement::in_step_all(drop_constraint(name)),
            undo_cost: Some(Cost::CatalogOnly),
        });
        steps.push(validate(name, "CHECK", ""));
    }
    if let (Some(_), Some(target)) = (&add.references, &env.reference) {
        steps.push(Step {
            op: 0,
            phase: Phase::Contract,
            action: Action::Ddl,
            summary: format!("add FOREIGN KEY {} NOT VALID", n.foreign_key),
            sql: Statement::in_step_all([format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} FOREIGN KEY ({c}) REFERENCES {} ({}) NOT VALID",
                quote(&n.foreign_key),
                qualified(&target.schema, &target.table),
                quote(&target.column)
            )]),
            lock: lock("SHARE ROW EXCLUSIVE on both tables", BRIEF, true, false),
            cost: Cost::CatalogOnly,
            reason: "NOT VALID: new writes are checked at once, existing rows by VALIDATE".into(),
            undo: Statement::in_step_all(drop_constraint(&n.foreign_key)),
            undo_cost: Some(Cost::CatalogOnly),
        });
        steps.push(validate(
            &n.foreign_key,
            "FOREIGN KEY",
            " (ROW SHARE on the referenced table)",
        ));
    }
    for (name, unique) in [(&d.objects.unique_index, true), (&d.objects.index, false)] {
        let Some(name) = name else { continue };
        let idx = qualified(&env.schema, name);
        // Run alone in autocommit under the build timeout; `index` names what an interrupted
        // build or drop leaves INVALID, for the executor to drop before running it again.
        let online = |sql: String| Statement {
            sql,
            run: Run::OnlineBuild {
                index: Some(idx.clone()),
                strict: false,
            },
        };
        steps.push(Step {
            op: 0,
            phase: Phase::Contract,
            action: Action::Ddl,
            summary: format!("build {}index {name} online", if unique { "unique " } else { "" }),
            // IF NOT EXISTS: a run that finds the index built (a crash came before the step was
            // recorded) does nothing; an INVALID one is dropped first.
            sql: vec![online(format!(
                "CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {} ON {t} ({c})",
                if unique { "UNIQUE " } else { "" },
                quote(name)
            ))],
            lock: share_update_exclusive(
                "two passes over the table, after waiting for older transactions (--build-timeout); application reads and writes go on",
            ),
            cost: Cost::Scan,
            reason: "CONCURRENTLY builds without blocking writes; it runs outside any transaction, and an INVALID index left by a failed build is dropped and built again".into(),
            undo: vec![online(format!("DROP INDEX CONCURRENTLY IF EXISTS {idx}"))],
            undo_cost: Some(Cost::CatalogOnly),
        });
        if unique {
            steps.push(Step {
                op: 0,
                phase: Phase::Contract,
                action: Action::Ddl,
                summary: format!("turn index {name} into a UNIQUE constraint"),
                sql: Statement::in_step_all([format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {} UNIQUE USING INDEX {}",
                    quote(name),
                    quote(name)
                )]),
                lock: access_exclusive(),
                cost: Cost::CatalogOnly,
                reason: "the constraint adopts the index already built: no scan".into(),
                undo: Statement::in_step_all(drop_constraint(name)),
                undo_cost: Some(Cost::CatalogOnly),
            });
        }
    }
    if !d.single_step {
        let mut sql = Vec::new();
        if let Some(def) = &d.default_at_complete {
            sql.push(format!(
                "ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {def}"
            ));
        }
        if add.not_null && !d.not_null_at_expand && env.major() >= NOT_NULL_NOT_VALID_MAJOR {
            // The validated constraint is the column's NOT NULL from now on: give it the name
            // PostgreSQL would have chosen, so nothing named zd_* stays behind.
            sql.push(format!(
                "ALTER TABLE {t} RENAME CONSTRAINT {} TO {}",
                quote(&n.not_null),
                quote(&not_null_name(&schema.name, &add.column))
            ));
        }
        for trg in d.objects.triggers.iter().rev() {
            sql.push(format!("DROP TRIGGER IF EXISTS {} ON {t}", quote(trg)));
        }
        if d.fill.is_some() {
            sql.push(format!("DROP FUNCTION IF EXISTS {function}()"));
        }
        if let Some(s) = &guard_seq {
            sql.push(format!("DROP SEQUENCE IF EXISTS {s}"));
        }
        if !sql.is_empty() {
            steps.push(Step {
                op: 0,
                phase: Phase::Contract,
                action: Action::Finish,
                summary: match (&d.default_at_complete, d.objects.triggers.is_empty()) {
                    (Some(_), false) => "set the default and drop the triggers and function, in one transaction".into(),
                    (Some(_), true) => "set the default".into(),
                    (None, _) => "drop the triggers and function".into(),
                },
                sql: Statement::in_step_all(sql),
                lock: access_exclusive(),
                cost: Cost::CatalogOnly,
                reason: "one short transaction: no write falls between the default going on and the triggers coming off".into(),
                undo: vec![],
                undo_cost: None,
            });
        }
    }
    steps
}

/// PostgreSQL's own name for a NOT NULL constraint, `<table>_<column>_not_null`, within 63 bytes.
pub fn not_null_name(table: &str, column: &str) -> String {
    let mut name = format!("{table}_{column}_not_null");
    while name.len() > 63 {
        let cut = name.len() - "_not_null".len();
        let mut at = cut - 1;
        while !name.is_char_boundary(at) {
            at -= 1;
        }
        name.remove(at);
    }
    name
}

/// The SQL types of the keyset columns, for casting the cursor (stored as text) back.
pub fn key_types(schema: &TableSchema, fill: &FillPlan) -> Vec<String> {
    fill.key
        .iter()
        .map(|k| {
            schema
                .column(k)
                .map(|c| c.data_type.clone())
                .unwrap_or_else(|| "text".into())
        })
        .collect()
}

/// The keyset batch statements: (the batch's key count and last key, the UPDATE of the batch).
/// Parameters, all text: `$1..$n` the cursor (absent on the first batch), then the upper bound (select)
/// or the batch's end (update), then the batch size (select).
pub fn batch_sql(
    schema: &str,
    table: &str,
    column: &str,
    fill: &FillPlan,
    types: &[String],
    first: bool,
) -> (String, String) {
    let t = qualified(schema, table);
    let c = quote(column);
    let n = fill.key.len();
    let keys = quote_list(&fill.key);
    let tuple = |start: usize| -> String {
        let ps: Vec<String> = (0..n)
            .map(|i| format!("CAST(${}::text AS {})", start + i, types[i]))
            .collect();
        format!("({})", ps.join(", "))
    };
    let key_expr = format!("({keys})");
    let (lower, next) = if first {
        (String::new(), 1)
    } else {
        (format!("{key_expr} > {} AND ", tuple(1)), n + 1)
    };
    let desc = fill
        .key
        .iter()
        .map(|k| format!("{} DESC", quote(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let as_text = fill
        .key
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{}::text AS zd_k{i}", quote(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let select = format!(
        "WITH b AS (SELECT {keys} FROM {t} WHERE {lower}{key_expr} <= {} ORDER BY {keys} LIMIT ${}::int8) SELECT (SELECT count(*) FROM b), {as_text} FROM b ORDER BY {desc} LIMIT 1",
        tuple(next),
        next + n
    );
    let update = format!(
        "UPDATE {t} SET {c} = ({}) WHERE {lower}{key_expr} <= {} AND {c} IS NULL",
        fill.expr,
        tuple(next)
    );
    (select, update)
}
