//! SQLite's rules: which statement each step runs, what it locks and for how long, and why — pure
//! data built from the live schema, with no database access (snapshot-tested).

use super::schema_edit::set_default;
use super::{COUNTER_TABLE, SqliteEnv, literal, quote, quote_list};
use crate::engine::TableSchema;
use crate::error::{Error, Result};
use crate::plan::{
    self, Action, Cost, Decided, DefaultKind, FillPlan, LockLevel, OpPlan, Phase, Plan, PlanInput,
    Statement, Step, Volatility,
};
use crate::spec::{AddColumn, Dialect, ExprInfo, analyze_expr};

/// Oldest SQLite with `ALTER COLUMN … SET NOT NULL` and `ADD CONSTRAINT … CHECK`.
const MIN_CONTRACT_VERSION: i32 = 3_053_000;

pub(super) fn version_text(v: i32) -> String {
    format!("{}.{}.{}", v / 1_000_000, (v / 1000) % 1000, v % 1000)
}

/// The functions whose results change between calls (SQLite's non-deterministic built-ins).
pub(super) fn classify_function(name: &str) -> Volatility {
    match name {
        "random" | "randomblob" | "changes" | "total_changes" | "last_insert_rowid" => {
            Volatility::Volatile
        }
        "current_timestamp" | "current_date" | "current_time" | "unixepoch" | "date" | "time"
        | "datetime" | "julianday" | "strftime" | "timediff" => Volatility::Time,
        _ => Volatility::Immutable,
    }
}

/// Plans a migration against a given schema without a database: the pure part of [`Engine::plan`],
/// used directly by snapshot tests.
pub fn build_plan(
    name: &str,
    add: &AddColumn,
    schema: &TableSchema,
    env: &SqliteEnv,
) -> Result<Plan> {
    let analyze = |e: &Option<String>, what: &str| -> Result<Option<ExprInfo>> {
        e.as_deref()
            .map(|x| analyze_expr(x, Dialect::Sqlite, what))
            .transpose()
            .map_err(Error::from)
    };
    let default_info = analyze(&add.default, "default")?;
    let backfill_info = analyze(&add.backfill, "backfill")?;
    let check_info = analyze(&add.check, "check")?;
    if schema.strict {
        let base = add.data_type.trim().to_ascii_uppercase();
        if !["INT", "INTEGER", "REAL", "TEXT", "BLOB", "ANY"].contains(&base.as_str()) {
            return Err(Error::Refused(format!(
                "table `{}` is STRICT, which allows only the column types INT, INTEGER, REAL, TEXT, BLOB and ANY, not `{}`",
                schema.name, add.data_type
            )));
        }
    }
    let decided = plan::decide(&PlanInput {
        name,
        add,
        schema,
        default_info: default_info.as_ref(),
        backfill_info: backfill_info.as_ref(),
        check_info: check_info.as_ref(),
        classify: &classify_function,
        literal_default_with_reference: false,
        default_kind: None,
        non_volatile_default_at_expand: false,
    })?;
    if !decided.single_step && env.version < MIN_CONTRACT_VERSION {
        return Err(Error::Refused(format!(
            "SQLite {} lacks ALTER COLUMN … SET NOT NULL and ADD CONSTRAINT (3.53+)",
            version_text(env.version)
        )));
    }
    let steps = steps(add, schema, &decided);
    let mut notes = vec![format!("journal mode: {}", env.journal_mode)];
    if env.journal_mode != "wal" && !decided.single_step {
        notes.push(
            "outside WAL, readers block while each batch commits: `start` refuses unless --wal (switch this file to WAL, a lasting change) or --allow-rollback-journal".into(),
        );
    }
    if !decided.single_step {
        notes.push(
            "application connections need a busy_timeout longer than zerodown's longest write-lock hold (a batch targets 5ms; the scan steps below hold it for a pass over the table), e.g. PRAGMA busy_timeout = 5000".into(),
        );
    }
    let update_triggers: Vec<&str> = schema.update_triggers();
    if decided.fill.is_some() && !update_triggers.is_empty() {
        notes.push(format!(
            "user UPDATE triggers that will fire: {} — on every backfill batch row, and on every application write during the window (the dual-write trigger's own UPDATE)",
            update_triggers.join(", ")
        ));
    }
    if decided.guard {
        notes.push(crate::plan::DEPLOY_ORDER_NOTE.into());
    }
    Ok(Plan {
        format: crate::plan::PLAN_FORMAT,
        migration: name.to_string(),
        engine: format!("SQLite {}", version_text(env.version)),
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

fn write_lock(held: &str) -> LockLevel {
    LockLevel::new("write lock (whole database)", held, true, false)
}

fn no_lock() -> LockLevel {
    LockLevel::none()
}

/// SQLite's step list for a decided migration.
fn steps(add: &AddColumn, schema: &TableSchema, d: &Decided) -> Vec<Step> {
    let t = quote(&schema.name);
    let c = quote(&add.column);
    let brief = "a few milliseconds (catalog only)";
    let mut steps = Vec::new();

    if let (true, Some(fill)) = (add.not_null, &d.fill) {
        steps.push(Step::null_preflight(&t, &fill.expr, no_lock()));
    }

    // Expand.
    let mut def = format!("ALTER TABLE {t} ADD COLUMN {c} {}", add.data_type);
    if d.not_null_at_expand {
        def.push_str(" NOT NULL");
    }
    if let Some(lit) = &d.expand_default {
        def.push_str(&format!(" DEFAULT {lit}"));
    }
    if let Some(r) = &add.references {
        def.push_str(&format!(" REFERENCES {}", quote(&r.table)));
        if let Some(col) = &r.column {
            def.push_str(&format!("({})", quote(col)));
        }
    }
    let mut reason = if d.single_step {
        "SQLite adds a column by editing the schema only: existing rows read the default without being rewritten".to_string()
    } else if d.fill.is_some() {
        "added nullable and without a default, so the backfill can find the rows it has not filled yet".to_string()
    } else {
        "SQLite adds a column by editing the schema only; old rows read its default".to_string()
    };
    if add.references.is_some() {
        reason.push_str(
            "; REFERENCES goes on here, the only moment SQLite allows it (with a NULL default)",
        );
    }
    steps.push(Step {
        op: 0,
        phase: Phase::Expand,
        action: Action::Ddl,
        summary: format!("add column {} to {}", add.column, schema.name),
        sql: Statement::in_step_all([def]),
        lock: write_lock(brief),
        cost: Cost::CatalogOnly,
        reason,
        undo: Statement::in_step_all([format!("ALTER TABLE {t} DROP COLUMN {c}")]),
        undo_cost: Some(Cost::Rewrite),
    });

    // Dual-write.
    if let Some(fill) = &d.fill {
        let key_match = fill
            .key
            .iter()
            .map(|k| format!("{} = NEW.{}", quote(k), quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let set = format!("UPDATE {t} SET {c} = ({}) WHERE {key_match};", fill.expr);
        let counter = d.objects.guard_counter.as_ref().map(|k| {
            format!(
                "UPDATE {} SET n = n + 1 WHERE key = {};",
                quote(COUNTER_TABLE),
                literal(k)
            )
        });
        let mut sql = Vec::new();
        let mut undo = Vec::new();
        if let Some(k) = &d.objects.guard_counter {
            sql.push(format!(
                "INSERT OR REPLACE INTO {}(key, n) VALUES ({}, 0)",
                quote(COUNTER_TABLE),
                literal(k)
            ));
        }
        let ins = &d.objects.triggers[0];
        sql.push(format!(
            "CREATE TRIGGER {} AFTER INSERT ON {t} FOR EACH ROW WHEN NEW.{c} IS NULL BEGIN {set}{} END",
            quote(ins),
            counter.map(|u| format!(" {u}")).unwrap_or_default()
        ));
        undo.push(format!("DROP TRIGGER IF EXISTS {}", quote(ins)));
        if let Some(upd) = d.objects.triggers.get(1) {
            let cols = quote_list(&fill.source_columns);
            sql.push(format!(
                "CREATE TRIGGER {} AFTER UPDATE OF {cols} ON {t} FOR EACH ROW WHEN NEW.{c} IS OLD.{c} BEGIN {set} END",
                quote(upd)
            ));
            undo.push(format!("DROP TRIGGER IF EXISTS {}", quote(upd)));
        }
        if let Some(k) = &d.objects.guard_counter {
            undo.push(format!(
                "DELETE FROM {} WHERE key = {}",
                quote(COUNTER_TABLE),
                literal(k)
            ));
        }
        steps.push(Step {
            op: 0,
            phase: Phase::DualWrite,
            action: Action::Ddl,
            summary: "install dual-write triggers".into(),
            sql: Statement::in_step_all(sql),
            lock: write_lock(brief),
            cost: Cost::CatalogOnly,
            reason: format!(
                "rows written during the migration get the new column's value even from application versions that do not know it: on INSERT when left NULL{}; AFTER triggers, in SQL that SQLite 3.40 accepts too",
                if fill.source_columns.is_empty() { String::new() } else { format!(", and on UPDATE of {} when the writer did not change it", fill.source_columns.join(", ")) }
            ),
            undo: Statement::in_step_all(undo),
            undo_cost: Some(Cost::CatalogOnly),
        });

        // Backfill.
        let (select, update) = batch_sql(&schema.name, &add.column, fill, false, fill.capture_once);
        steps.push(Step::backfill(
            format!(
                "fill existing rows in keyset batches over {}{}",
                fill.key.join(", "),
                if fill.capture_once {
                    " with one value taken at expand"
                } else {
                    ""
                }
            ),
            vec!["BEGIN IMMEDIATE".into(), select, update, "COMMIT".into()],
            write_lock("one batch at a time (--batch-time, default 5ms), released between batches"),
            "short transactions let application writers in between batches",
        ));
    }

    // Contract.
    if d.guard {
        steps.push(Step::quiet_period(format!(
            "SELECT n FROM {} WHERE key = {}",
            quote(COUNTER_TABLE),
            literal(d.objects.guard_counter.as_deref().unwrap_or_default())
        )));
    }
    if add.not_null && d.fill.is_some() {
        steps.push(Step::null_sweep(
            &t,
            &c,
            write_lock(
                "only while filling rows found NULL, in short batches; the search is a read",
            ),
            Cost::Batched,
        ));
    }
    if add.not_null && !d.not_null_at_expand {
        steps.push(Step {
            op: 0,
            phase: Phase::Contract,
            action: Action::Ddl,
            summary: "set NOT NULL".into(),
            sql: Statement::in_step_all([format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL")]),
            lock: write_lock("one pass over the table (SQLite verifies every row)"),
            cost: Cost::Scan,
            reason:
                "SQLite 3.53+ adds NOT NULL in place, verifying existing rows under the write lock"
                    .into(),
            undo: Statement::in_step_all([format!(
                "ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL"
            )]),
            undo_cost: Some(Cost::CatalogOnly),
        });
    }
    if let (Some(check), Some(name)) = (&add.check, &d.objects.check) {
        steps.push(Step {
            op: 0,
            phase: Phase::Contract,
            action: Action::Ddl,
            summary: format!("add CHECK {name}"),
            sql: Statement::in_step_all([format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} CHECK ({check})",
                quote(name)
            )]),
            lock: write_lock("one pass over the table (SQLite verifies every row)"),
            cost: Cost::Scan,
            reason: "added only after the backfill, so it judges final values".into(),
            undo: Statement::in_step_all([format!(
                "ALTER TABLE {t} DROP CONSTRAINT {}",
                quote(name)
            )]),
            undo_cost: Some(Cost::CatalogOnly),
        });
    }
    for (name, unique) in [(&d.objects.unique_index, true), (&d.objects.index, false)] {
        if let Some(name) = name {
            steps.push(Step {
                op: 0,
                phase: Phase::Contract,
                action: Action::Ddl,
                summary: format!("create {}index {name}", if unique { "unique " } else { "" }),
                sql: Statement::in_step_all([format!(
                    "CREATE {}INDEX {} ON {t}({c})",
                    if unique { "UNIQUE " } else { "" },
                    quote(name)
                )]),
                lock: write_lock(
                    "one pass over the table plus a sort (SQLite has no online index build)",
                ),
                cost: Cost::Scan,
                reason: if unique {
                    "SQLite cannot add a UNIQUE column; a unique index enforces the same rule"
                        .into()
                } else {
                    "the requested secondary index".into()
                },
                undo: Statement::in_step_all([format!("DROP INDEX IF EXISTS {}", quote(name))]),
                undo_cost: Some(Cost::CatalogOnly),
            });
        }
    }
    if add.references.is_some() {
        steps.push(Step {
            op: 0,
            phase: Phase::Contract,
            action: Action::ForeignKeyCheck,
            summary: "verify every row's reference".into(),
            sql: Statement::in_step_all([format!("PRAGMA foreign_key_check({t})")]),
            lock: no_lock(),
            cost: Cost::Scan,
            reason: "SQLite never checked the existing rows' new values; complete refuses while any points at a missing row".into(),
            undo: vec![],
            undo_cost: None,
        });
    }
    if !d.single_step {
        let mut sql = Vec::new();
        if let Some(def) = &d.default_at_complete {
            sql.push(set_default(
                &schema.name,
                &add.column,
                def,
                d.default_kind == Some(DefaultKind::Literal),
            ));
        }
        for trg in &d.objects.triggers {
            sql.push(Statement::in_step(format!(
                "DROP TRIGGER IF EXISTS {}",
                quote(trg)
            )));
        }
        if let Some(k) = &d.objects.guard_counter {
            sql.push(Statement::in_step(format!(
                "DELETE FROM {} WHERE key = {}",
                quote(COUNTER_TABLE),
                literal(k)
            )));
        }
        if !sql.is_empty() {
            steps.push(Step {
                op: 0,
                phase: Phase::Contract,
                action: Action::Finish,
                summary: match (&d.default_at_complete, d.objects.triggers.is_empty()) {
                    (Some(_), false) => "set the default and drop the triggers, in one transaction".into(),
                    (Some(_), true) => "set the default".into(),
                    (None, _) => "drop the triggers".into(),
                },
                sql,
                lock: write_lock(brief),
                cost: Cost::CatalogOnly,
                reason: if d.default_at_complete.is_some() {
                    "SQLite has no ALTER COLUMN … SET DEFAULT: its documented schema-edit procedure changes the default without touching rows; the triggers go in the same transaction, so no write falls between them".into()
                } else {
                    "the scaffolding comes off; writers now set the column themselves".into()
                },
                undo: vec![],
                undo_cost: None,
            });
        }
    }
    steps
}

/// The keyset batch statements for `fill`: (select of the next keys, update of the batch).
pub(super) fn batch_sql(
    table: &str,
    column: &str,
    fill: &FillPlan,
    first: bool,
    captured: bool,
) -> (String, String) {
    let t = quote(table);
    let c = quote(column);
    let n = fill.key.len();
    let keys = quote_list(&fill.key);
    let tuple = |start: usize| -> String {
        let ps: Vec<String> = (start..start + n).map(|i| format!("?{i}")).collect();
        if n == 1 {
            ps[0].clone()
        } else {
            format!("({})", ps.join(", "))
        }
    };
    let key_expr = if n == 1 {
        keys.clone()
    } else {
        format!("({keys})")
    };
    // Parameters: 1..=n cursor (absent on the first batch), n+1..=2n upper bound, 2n+1 limit / value.
    let lower = if first {
        String::new()
    } else {
        format!("{key_expr} > {} AND ", tuple(1))
    };
    let select = format!(
        "SELECT {keys} FROM {t} WHERE {lower}{key_expr} <= {} ORDER BY {keys} LIMIT ?{}",
        tuple(n + 1),
        2 * n + 1
    );
    let value = if captured {
        format!("?{}", 2 * n + 1)
    } else {
        format!("({})", fill.expr)
    };
    let update = format!(
        "UPDATE {t} SET {c} = {value} WHERE {lower}{key_expr} <= {} AND {c} IS NULL",
        tuple(n + 1)
    );
    (select, update)
}
