//! The engine-independent decisions of a plan: how the default is classified, whether the column needs
//! filling, and whether the whole migration is one catalog-only statement (DESIGN.md §1–2).

use super::{Objects, object_name};
use crate::engine::TableSchema;
use crate::error::{Error, Result};
use crate::spec::{AddColumn, ExprInfo};
use serde::{Deserialize, Serialize};

/// How a default behaves, decided from what the expression calls — never from whether an engine accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DefaultKind {
    /// One plain literal: every engine can put it on at ADD COLUMN.
    Literal,
    /// A deterministic expression without column references: one value for every row.
    Constant,
    /// Reads the clock: one value for every existing row, taken once at expand.
    Time,
    /// A new value per row (random, uuid, sequences): filled per row by the backfill.
    Volatile,
}

/// How a function behaves, per the engine's own table of functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Volatility {
    Immutable,
    Time,
    Volatile,
}

/// Classifies a default from its parsed form and the engine's function table.
pub fn classify_default(info: &ExprInfo, classify: &dyn Fn(&str) -> Volatility) -> DefaultKind {
    if info.is_literal {
        return DefaultKind::Literal;
    }
    let mut kind = DefaultKind::Constant;
    for f in &info.functions {
        match classify(f) {
            Volatility::Volatile => return DefaultKind::Volatile,
            Volatility::Time => kind = DefaultKind::Time,
            Volatility::Immutable => {}
        }
    }
    kind
}

/// How the new column is filled during the window: the value a row gets when no writer set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FillPlan {
    /// The expression, over the row's columns (the backfill expression, else the default).
    pub expr: String,
    /// Whether `expr` came from `backfill` (true) or from `default` (false).
    pub from_backfill: bool,
    /// Evaluate `expr` once at expand and give every existing row that value (a time default).
    pub capture_once: bool,
    /// Existing columns `expr` reads: an UPDATE of any of them recomputes the new column.
    pub source_columns: Vec<String>,
    /// Columns ordering the keyset batches.
    pub key: Vec<String>,
}

/// The input of planning: a migration checked against one table's live schema.
pub struct PlanInput<'a> {
    pub name: &'a str,
    pub add: &'a AddColumn,
    pub schema: &'a TableSchema,
    pub default_info: Option<&'a ExprInfo>,
    pub backfill_info: Option<&'a ExprInfo>,
    pub check_info: Option<&'a ExprInfo>,
    /// The engine's function table.
    pub classify: &'a dyn Fn(&str) -> Volatility,
    /// The engine can add a column with a literal default and a reference at once (SQLite cannot).
    pub literal_default_with_reference: bool,
    /// The default's kind as the engine's catalog decided it (PostgreSQL: pg_proc.provolatile of what
    /// the server's parse of the expression calls); `None`: classify by `classify` per function name.
    pub default_kind: Option<DefaultKind>,
    /// Constant and time defaults go on with ADD COLUMN without a rewrite (PostgreSQL stores one
    /// "missing" value); SQLite accepts only literals there.
    pub non_volatile_default_at_expand: bool,
}

/// The decisions every engine's step list is built from.
#[derive(Debug, Clone)]
pub struct Decided {
    pub default_kind: Option<DefaultKind>,
    /// A literal default that goes on with ADD COLUMN (old rows read it; nothing to fill).
    pub expand_default: Option<String>,
    /// NOT NULL goes on with ADD COLUMN too (a non-NULL literal default and nothing else to do).
    pub not_null_at_expand: bool,
    /// The default goes on at complete (it could not go on at expand).
    pub default_at_complete: Option<String>,
    pub fill: Option<FillPlan>,
    /// The deploy-order guard applies: the column is derived by a backfill expression.
    pub guard: bool,
    /// The whole migration is one catalog-only ADD COLUMN.
    pub single_step: bool,
    pub objects: Objects,
}

/// Makes the engine-independent decisions, refusing what cannot work whatever the engine.
pub fn decide(input: &PlanInput) -> Result<Decided> {
    let add = input.add;
    let schema = input.schema;
    let table = &schema.name;
    if schema.column(&add.column).is_some() {
        return Err(Error::Refused(format!(
            "column `{}` already exists on table `{table}`; pick another name, or `zerodown status` to see a migration that added it",
            add.column
        )));
    }
    let known = |c: &str| schema.column(c).is_some();
    if let Some(info) = input.backfill_info {
        if info
            .columns
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&add.column))
        {
            return Err(Error::Refused(format!(
                "the backfill expression reads the new column `{}` itself; it must be computed from existing columns",
                add.column
            )));
        }
        let unknown: Vec<&String> = info.columns.iter().filter(|c| !known(c)).collect();
        if !unknown.is_empty() {
            return Err(Error::Refused(format!(
                "the backfill expression reads {}, which table `{table}` does not have; its columns are: {}",
                list(unknown.iter().map(|s| s.as_str())),
                list(schema.columns.iter().map(|c| c.name.as_str()))
            )));
        }
    }
    if let Some(info) = input.default_info
        && !info.columns.is_empty()
    {
        return Err(Error::Refused(format!(
            "the default `{}` reads column {}; a default cannot read the row — put that expression in `backfill` instead",
            add.default.as_deref().unwrap_or_default(),
            list(info.columns.iter().map(|s| s.as_str()))
        )));
    }
    if let Some(info) = input.check_info {
        let unknown: Vec<&String> = info
            .columns
            .iter()
            .filter(|c| !known(c) && !c.eq_ignore_ascii_case(&add.column))
            .collect();
        if !unknown.is_empty() {
            return Err(Error::Refused(format!(
                "the check reads {}, which table `{table}` does not have",
                list(unknown.iter().map(|s| s.as_str()))
            )));
        }
    }
    let default_kind = input.default_kind.or_else(|| {
        input
            .default_info
            .map(|i| classify_default(i, input.classify))
    });
    let is_null_literal = add
        .default
        .as_deref()
        .is_some_and(|d| d.trim().eq_ignore_ascii_case("null"));
    if add.not_null && add.backfill.is_none() && (add.default.is_none() || is_null_literal) {
        return Err(Error::Refused(format!(
            "`{}` is NOT NULL but has no default and no backfill expression, so existing rows would have no value; add `default` or `backfill`",
            add.column
        )));
    }

    let at_expand = match default_kind {
        Some(DefaultKind::Literal) => true,
        Some(DefaultKind::Constant | DefaultKind::Time) => input.non_volatile_default_at_expand,
        _ => false,
    };
    let literal_ok = at_expand
        && add.backfill.is_none()
        && (add.references.is_none() || input.literal_default_with_reference);
    let expand_default = literal_ok.then(|| add.default.clone()).flatten();
    let fill_expr = add.backfill.clone().or_else(|| add.default.clone());
    let fill = match (
        &expand_default,
        fill_expr,
        is_null_literal && add.backfill.is_none(),
    ) {
        (None, Some(expr), false) => {
            let from_backfill = add.backfill.is_some();
            let info = if from_backfill {
                input.backfill_info
            } else {
                input.default_info
            };
            Some(FillPlan {
                expr,
                from_backfill,
                capture_once: !from_backfill && default_kind == Some(DefaultKind::Time),
                source_columns: info
                    .map(|i| {
                        i.columns
                            .iter()
                            .filter_map(|c| schema.column(c).map(|col| col.name.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                key: schema.key.clone(),
            })
        }
        _ => None,
    };
    let default_at_complete = if expand_default.is_some() || is_null_literal {
        None
    } else {
        add.default.clone()
    };
    let constraints = add.check.is_some() || add.unique || add.index || add.references.is_some();
    let not_null_at_expand = add.not_null && expand_default.is_some() && !is_null_literal;
    let single_step = fill.is_none() && !constraints && default_at_complete.is_none();
    let guard = fill.as_ref().is_some_and(|f| f.from_backfill);

    let (t, c) = (table.as_str(), add.column.as_str());
    let objects = Objects {
        triggers: if fill.is_some() {
            let mut v = vec![object_name("ins", t, c)];
            if fill.as_ref().is_some_and(|f| !f.source_columns.is_empty()) {
                v.push(object_name("upd", t, c));
            }
            v
        } else {
            vec![]
        },
        check: add.check.as_ref().map(|_| object_name("ck", t, c)),
        unique_index: add.unique.then(|| object_name("uq", t, c)),
        index: (add.index && !add.unique).then(|| object_name("ix", t, c)),
        guard_counter: guard.then(|| object_name("guard", t, c)),
    };
    let _ = input.name;
    Ok(Decided {
        default_kind,
        expand_default,
        not_null_at_expand,
        default_at_complete,
        fill,
        guard,
        single_step,
        objects,
    })
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
