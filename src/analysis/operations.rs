//! A file's statements as the operations they amount to (issue #14's reading of ORM output), with
//! the idioms the tools write folded in:
//! - Django's `ADD COLUMN … DEFAULT x NOT NULL` then `ALTER COLUMN … DROP DEFAULT` is one add_column
//!   whose existing rows are filled with x (and Django MySQL's whole-table `UPDATE … SET col = x` after
//!   an add is that fill too);
//! - a column's inline `REFERENCES` / `CHECK` is an add_foreign_key / add_check of its own;
//! - Django's SQLite table remake (`CREATE TABLE "new__t" …; INSERT INTO "new__t" … SELECT … FROM "t";
//!   DROP TABLE "t"; ALTER TABLE "new__t" RENAME TO "t"`) is the columns and constraints it gains,
//!   and the indexes it re-creates afterwards are part of it.
//!
//! What cannot be made safe is listed as a [`Refusal`] naming the statement.

use super::{Action, Class, Engine, File, Kind, Name, Statement};
use std::collections::HashSet;

/// One operation, named as the corpus manifest names them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Operation {
    /// `add_column`, `create_index`, `add_foreign_key`, `add_check`, `validate_constraint`,
    /// `create_table`.
    pub verb: &'static str,
    /// `schema.table.column` for add_column, the constraint or index name (`(unnamed)` if none; an
    /// unnamed inline CHECK is `table.column`), the table for create_table.
    pub subject: String,
    pub line: usize,
}

/// A statement zerodown must refuse before any change, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    pub line: usize,
    pub statement: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Folded {
    pub operations: Vec<Operation>,
    pub refusals: Vec<Refusal>,
}

/// Folds a file's statements into operations and refusals.
pub fn fold(file: &File) -> Folded {
    let mut out = Folded::default();
    let mut added: HashSet<(Option<String>, String, String)> = HashSet::new();
    let mut remade: HashSet<String> = HashSet::new();
    let mut last_definition: std::collections::HashMap<String, Kind> = Default::default();
    let stmts = &file.statements;
    let mut i = 0;
    while i < stmts.len() {
        let s = &stmts[i];
        if let Some(n) = remake_at(stmts, i) {
            let (table, gained) = remake(stmts, i, &mut last_definition);
            if gained.is_empty() {
                out.refusals.push(Refusal {
                    line: s.line,
                    statement: s.text.clone(),
                    reason: format!(
                        "a remake of {table} that does not only add columns or constraints: it \
                         copies the whole table under SQLite's single write lock"
                    ),
                });
            }
            for (verb, subject) in gained {
                if verb == "add_column" {
                    let col = subject.rsplit('.').next().unwrap_or_default().to_string();
                    added.insert((None, table.clone(), col));
                }
                out.operations.push(Operation {
                    verb,
                    subject,
                    line: s.line,
                });
            }
            remade.insert(table);
            i += n;
            continue;
        }
        if s.bookkeeping.is_none()
            || matches!(
                s.actions().first().map(|a| &a.kind),
                Some(Kind::CreateTable { .. })
            )
        {
            statement(file.engine, s, &mut added, &remade, &mut out);
        }
        i += 1;
    }
    out
}

fn key(t: &Name) -> (Option<String>, String) {
    (t.schema.clone(), t.name.clone())
}

fn statement(
    engine: Engine,
    s: &Statement,
    added: &mut HashSet<(Option<String>, String, String)>,
    remade: &HashSet<String>,
    out: &mut Folded,
) {
    let Class::Change { actions, .. } = &s.class else {
        return;
    };
    let refuse = |out: &mut Folded, reason: &str| {
        if !out
            .refusals
            .iter()
            .any(|r| r.line == s.line && r.statement == s.text)
        {
            out.refusals.push(Refusal {
                line: s.line,
                statement: s.text.clone(),
                reason: reason.to_string(),
            });
        }
    };
    let mut last_added: Option<String> = None;
    for Action { table, kind } in actions {
        let t = table.as_ref();
        let table_s = t.map(|t| t.to_string()).unwrap_or_default();
        let mut op = |verb: &'static str, subject: String| {
            out.operations.push(Operation {
                verb,
                subject,
                line: s.line,
            })
        };
        match kind {
            Kind::AddColumn {
                column,
                not_null,
                default,
                ..
            } => {
                if *not_null && default.is_none() && !engine.is_mysql_family() {
                    refuse(
                        out,
                        "NOT NULL with no default: fails on a table that has rows; give a default \
                         or a backfill expression",
                    );
                    continue;
                }
                if let Some(t) = t {
                    let (schema, name) = key(t);
                    added.insert((schema, name, column.clone()));
                }
                last_added = Some(column.clone());
                op("add_column", format!("{table_s}.{column}"));
            }
            Kind::CreateIndex { name, columns, .. } => {
                // After a remake, an index on columns this file did not add is a re-creation.
                let on_new = t.is_some_and(|t| {
                    columns
                        .iter()
                        .any(|c| added.contains(&(t.schema.clone(), t.name.clone(), c.clone())))
                });
                let recreated = t.is_some_and(|t| remade.contains(&t.name)) && !on_new;
                if !recreated {
                    op(
                        "create_index",
                        name.clone().unwrap_or_else(|| "(unnamed)".into()),
                    );
                }
            }
            Kind::AddForeignKey { name, .. } => op(
                "add_foreign_key",
                name.clone().unwrap_or_else(|| "(unnamed)".into()),
            ),
            Kind::AddCheck { name, inline, .. } => op(
                "add_check",
                match (name, inline, &last_added) {
                    (Some(n), _, _) => n.clone(),
                    (None, true, Some(c)) => format!("{table_s}.{c}"),
                    _ => "(unnamed)".into(),
                },
            ),
            Kind::ValidateConstraint { name } => op("validate_constraint", name.clone()),
            Kind::CreateTable { .. } => op("create_table", table_s),
            Kind::DropDefault { column } => {
                let filled = t.is_some_and(|t| {
                    added.contains(&(t.schema.clone(), t.name.clone(), column.clone()))
                });
                if !filled {
                    refuse(
                        out,
                        "DROP DEFAULT on an existing column: running code that omits the column \
                         starts failing or writing NULL",
                    );
                }
            }
            Kind::ChangeColumnType { .. } => refuse(
                out,
                "a type change rewrites or copies the table under a lock; add a new column, \
                 backfill it, switch, then drop the old one",
            ),
            Kind::DropColumn { .. } => refuse(
                out,
                "DROP COLUMN while the running code may still use it; drop only after a deploy \
                 stops using it",
            ),
            Kind::RenameColumn { .. } | Kind::RenameTable { .. } => refuse(
                out,
                "RENAME breaks every running version that uses the old name; add the new one, \
                 dual-write, backfill, switch, then drop",
            ),
            Kind::DropTable { .. } => {
                refuse(out, "DROP TABLE while the running code may still use it")
            }
            _ => {}
        }
    }
}

/// The length of a Django SQLite remake starting at `i` (4 statements), if one does.
fn remake_at(stmts: &[Statement], i: usize) -> Option<usize> {
    let [create, insert, drop, rename] = stmts.get(i..i + 4)? else {
        return None;
    };
    let one = |s: &Statement| match s.actions() {
        [a] => Some(a.clone()),
        _ => None,
    };
    let (create, insert, drop, rename) = (one(create)?, one(insert)?, one(drop)?, one(rename)?);
    let new = create.table.as_ref()?;
    let old = drop.table.as_ref()?;
    let ok = matches!(create.kind, Kind::CreateTable { .. })
        && new.name.starts_with("new__")
        && matches!(&insert.kind, Kind::Data { copy_from: Some((src, _)), .. } if src == old)
        && insert.table.as_ref() == Some(new)
        && matches!(drop.kind, Kind::DropTable { .. })
        && matches!(&rename.kind, Kind::RenameTable { to } if *to == old.to_string())
        && rename.table.as_ref() == Some(new);
    ok.then_some(4)
}

/// What a remake at `i` gains: new columns (not copied from a column of the old table) with their
/// inline CHECK / REFERENCES, and named table constraints the table's previous definition in this
/// file did not have.
fn remake(
    stmts: &[Statement],
    i: usize,
    last: &mut std::collections::HashMap<String, Kind>,
) -> (String, Vec<(&'static str, String)>) {
    let create = &stmts[i].actions()[0].kind;
    let insert = &stmts[i + 1].actions()[0];
    let table = stmts[i + 2].actions()[0]
        .table
        .as_ref()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let Kind::CreateTable {
        columns,
        checked_columns,
        referencing_columns,
        constraints,
    } = create
    else {
        return (table, Vec::new());
    };
    let Kind::Data {
        copy_from: Some((_, pairs)),
        ..
    } = &insert.kind
    else {
        return (table, Vec::new());
    };
    let copied: HashSet<&String> = pairs
        .iter()
        .filter(|(to, from)| from.as_ref() == Some(to))
        .map(|(to, _)| to)
        .collect();
    let mut gained = Vec::new();
    for c in columns.iter().filter(|c| !copied.contains(c)) {
        gained.push(("add_column", format!("{table}.{c}")));
        if checked_columns.contains(c) {
            gained.push(("add_check", format!("{table}.{c}")));
        }
        if referencing_columns.contains(c) {
            gained.push(("add_foreign_key", "(unnamed)".to_string()));
        }
    }
    if let Some(Kind::CreateTable {
        constraints: before,
        ..
    }) = last.get(&table)
    {
        for (kind, name) in constraints.iter().filter(|c| !before.contains(c)) {
            let verb = match kind.as_str() {
                "add_check" => "add_check",
                "add_foreign_key" => "add_foreign_key",
                _ => continue,
            };
            gained.push((verb, name.clone()));
        }
    }
    last.insert(table.clone(), create.clone());
    (table, gained)
}
