//! sqlparser's statement → the [`Action`]s it performs, each with its subject. Several clauses of one
//! `ALTER TABLE` are several actions; a column's inline `REFERENCES`/`CHECK` is an action of its own.

use super::{Action, Class, Default, Engine, HISTORY_TABLES, Kind, Name};
use sqlparser::ast::{
    AlterColumnOperation, AlterTableAlgorithm, AlterTableLock, AlterTableOperation, ColumnDef,
    ColumnOption, Expr, FromTable, GeneratedExpressionMode, Ident, ObjectName, ObjectNamePart,
    ObjectType, RenameTableNameKind, SelectItem, SetExpr, Statement, TableConstraint, TableFactor,
    TableObject,
};

/// The class of a statement sqlparser has read. `search_path` is the schema unqualified PostgreSQL
/// names resolve to after a `SET search_path` in the same file.
pub(super) fn statement(s: &Statement, engine: Engine, search_path: Option<&str>) -> Class {
    let mut algorithm = None;
    let mut lock = None;
    let mut actions = Vec::new();
    match s {
        Statement::AlterTable(at) => {
            let table = name(&at.name);
            for op in &at.operations {
                match op {
                    AlterTableOperation::Algorithm { algorithm: a, .. } => {
                        algorithm = Some(
                            match a {
                                AlterTableAlgorithm::Default => "DEFAULT",
                                AlterTableAlgorithm::Instant => "INSTANT",
                                AlterTableAlgorithm::Inplace => "INPLACE",
                                AlterTableAlgorithm::Copy => "COPY",
                            }
                            .to_string(),
                        );
                    }
                    AlterTableOperation::Lock { lock: l, .. } => {
                        lock = Some(
                            match l {
                                AlterTableLock::Default => "DEFAULT",
                                AlterTableLock::None => "NONE",
                                AlterTableLock::Shared => "SHARED",
                                AlterTableLock::Exclusive => "EXCLUSIVE",
                            }
                            .to_string(),
                        );
                    }
                    op => alter_operation(op, &table, engine, &mut actions),
                }
            }
        }
        Statement::CreateIndex(ci) => actions.push(Action {
            table: Some(name(&ci.table_name)),
            kind: Kind::CreateIndex {
                name: ci.name.as_ref().map(|n| name(n).name),
                columns: ci
                    .columns
                    .iter()
                    .map(|c| expr_name(&c.column.expr))
                    .collect(),
                unique: ci.unique,
                concurrently: ci.concurrently,
            },
        }),
        Statement::CreateTable(ct) => {
            let with = |f: fn(&ColumnOption) -> bool| {
                ct.columns
                    .iter()
                    .filter(|c| c.options.iter().any(|o| f(&o.option)))
                    .map(|c| c.name.value.clone())
                    .collect()
            };
            let constraints = ct
                .constraints
                .iter()
                .filter_map(|c| {
                    let kind = constraint_kind(c, false, engine);
                    let n = match &kind {
                        Kind::AddCheck { name, .. }
                        | Kind::AddForeignKey { name, .. }
                        | Kind::AddUnique { name, .. }
                        | Kind::AddPrimaryKey { name, .. }
                        | Kind::CreateIndex { name, .. } => name.clone()?,
                        _ => return None,
                    };
                    Some((kind.tag().to_string(), n))
                })
                .collect();
            actions.push(Action {
                table: Some(name(&ct.name)),
                kind: Kind::CreateTable {
                    columns: ct.columns.iter().map(|c| c.name.value.clone()).collect(),
                    checked_columns: with(|o| matches!(o, ColumnOption::Check(_))),
                    referencing_columns: with(|o| matches!(o, ColumnOption::ForeignKey(_))),
                    constraints,
                },
            });
        }
        Statement::Drop {
            object_type,
            names,
            cascade,
            table,
            ..
        } => {
            for n in names {
                let kind = match object_type {
                    ObjectType::Table => Kind::DropTable { cascade: *cascade },
                    ObjectType::Index => Kind::DropIndex {
                        name: name(n).to_string(),
                        concurrently: false,
                    },
                    ObjectType::Database => Kind::DropDatabase,
                    other => Kind::Other {
                        what: format!("DROP {other}"),
                    },
                };
                let subject = match object_type {
                    ObjectType::Table => Some(name(n)),
                    _ => table.as_ref().map(name),
                };
                actions.push(Action {
                    table: subject,
                    kind,
                });
            }
        }
        Statement::Truncate(t) => {
            for target in &t.table_names {
                actions.push(Action {
                    table: Some(name(&target.name)),
                    kind: Kind::Truncate {
                        cascade: matches!(t.cascade, Some(sqlparser::ast::CascadeOption::Cascade)),
                    },
                });
            }
        }
        Statement::Insert(ins) => {
            let table = match &ins.table {
                TableObject::TableName(n) => Some(name(n)),
                _ => None,
            };
            let columns: Vec<String> = ins.columns.iter().map(|c| name(c).name).collect();
            let copy_from = ins.source.as_ref().and_then(|q| match q.body.as_ref() {
                SetExpr::Select(sel) if sel.from.len() == 1 => {
                    let TableFactor::Table { name: src, .. } = &sel.from[0].relation else {
                        return None;
                    };
                    let pairs = columns
                        .iter()
                        .zip(&sel.projection)
                        .map(|(c, item)| {
                            let copied = match item {
                                SelectItem::UnnamedExpr(Expr::Identifier(i)) => {
                                    Some(i.value.clone())
                                }
                                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(p)) => {
                                    p.last().map(|i| i.value.clone())
                                }
                                _ => None,
                            };
                            (c.clone(), copied)
                        })
                        .collect();
                    Some((name(src), pairs))
                }
                _ => None,
            });
            actions.push(Action {
                table,
                kind: Kind::Data {
                    verb: "INSERT".into(),
                    whole_table: false,
                    copy_from,
                },
            });
        }
        Statement::Update(u) => actions.push(Action {
            table: match &u.table.relation {
                TableFactor::Table { name: n, .. } => Some(name(n)),
                _ => None,
            },
            kind: Kind::Data {
                verb: "UPDATE".into(),
                whole_table: u.selection.is_none(),
                copy_from: None,
            },
        }),
        Statement::Delete(d) => {
            let from = match &d.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            actions.push(Action {
                table: from.first().and_then(|t| match &t.relation {
                    TableFactor::Table { name: n, .. } => Some(name(n)),
                    _ => None,
                }),
                kind: Kind::Data {
                    verb: "DELETE".into(),
                    whole_table: d.selection.is_none(),
                    copy_from: None,
                },
            });
        }
        Statement::RenameTable(renames) => {
            for r in renames {
                actions.push(Action {
                    table: Some(name(&r.old_name)),
                    kind: Kind::RenameTable {
                        to: name(&r.new_name).to_string(),
                    },
                });
            }
        }
        other => actions.push(Action {
            table: None,
            kind: Kind::Other {
                what: leading_words(&other.to_string()),
            },
        }),
    }
    if engine == Engine::Postgres
        && let Some(schema) = search_path
    {
        for a in &mut actions {
            qualify(a.table.as_mut(), schema);
            if let Kind::AddForeignKey { references, .. } = &mut a.kind {
                qualify(Some(references), schema);
            }
        }
    }
    Class::Change {
        actions,
        algorithm,
        lock,
    }
}

fn qualify(n: Option<&mut Name>, schema: &str) {
    if let Some(n) = n
        && n.schema.is_none()
    {
        n.schema = Some(schema.to_string());
    }
}

fn alter_operation(op: &AlterTableOperation, table: &Name, engine: Engine, out: &mut Vec<Action>) {
    let on = |kind| Action {
        table: Some(table.clone()),
        kind,
    };
    match op {
        AlterTableOperation::AddColumn {
            if_not_exists,
            column_def,
            column_position,
            ..
        } => add_column(
            table,
            column_def,
            *if_not_exists,
            column_position.as_ref().map(|p| p.to_string()),
            engine,
            out,
        ),
        AlterTableOperation::AddConstraint {
            constraint,
            not_valid,
        } => out.push(on(constraint_kind(constraint, *not_valid, engine))),
        AlterTableOperation::ValidateConstraint { name } => {
            out.push(on(Kind::ValidateConstraint {
                name: name.value.clone(),
            }))
        }
        AlterTableOperation::AlterColumn { column_name, op } => {
            let column = column_name.value.clone();
            out.push(on(match op {
                AlterColumnOperation::SetNotNull => Kind::SetNotNull { column },
                AlterColumnOperation::DropNotNull => Kind::DropNotNull { column },
                AlterColumnOperation::SetDefault { value } => Kind::SetDefault {
                    column,
                    default: default_of(value, engine),
                },
                AlterColumnOperation::DropDefault => Kind::DropDefault { column },
                AlterColumnOperation::SetDataType { data_type, .. } => Kind::ChangeColumnType {
                    column,
                    data_type: data_type.to_string(),
                    renamed_to: None,
                },
                other => Kind::Other {
                    what: format!("ALTER COLUMN {other}"),
                },
            }));
        }
        AlterTableOperation::ModifyColumn {
            col_name,
            data_type,
            ..
        } => out.push(on(Kind::ChangeColumnType {
            column: col_name.value.clone(),
            data_type: data_type.to_string(),
            renamed_to: None,
        })),
        AlterTableOperation::ChangeColumn {
            old_name,
            new_name,
            data_type,
            ..
        } => out.push(on(Kind::ChangeColumnType {
            column: old_name.value.clone(),
            data_type: data_type.to_string(),
            renamed_to: (old_name.value != new_name.value).then(|| new_name.value.clone()),
        })),
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => out.push(on(Kind::RenameColumn {
            from: old_column_name.value.clone(),
            to: new_column_name.value.clone(),
        })),
        AlterTableOperation::RenameTable { table_name } => {
            let (RenameTableNameKind::As(n) | RenameTableNameKind::To(n)) = table_name;
            out.push(on(Kind::RenameTable {
                to: name(n).to_string(),
            }));
        }
        AlterTableOperation::DropColumn {
            column_names,
            drop_behavior,
            ..
        } => {
            for c in column_names {
                out.push(on(Kind::DropColumn {
                    column: c.value.clone(),
                    cascade: matches!(drop_behavior, Some(sqlparser::ast::DropBehavior::Cascade)),
                }));
            }
        }
        AlterTableOperation::DropConstraint { name, .. } => out.push(on(Kind::DropConstraint {
            name: name.value.clone(),
        })),
        AlterTableOperation::DropIndex { name } => out.push(on(Kind::DropIndex {
            name: name.value.clone(),
            concurrently: false,
        })),
        AlterTableOperation::DropForeignKey { name, .. } => out.push(on(Kind::DropConstraint {
            name: name.value.clone(),
        })),
        other => out.push(on(Kind::Other {
            what: leading_words(&format!("ALTER TABLE … {other}")),
        })),
    }
}

fn add_column(
    table: &Name,
    def: &ColumnDef,
    if_not_exists: bool,
    position: Option<String>,
    engine: Engine,
    out: &mut Vec<Action>,
) {
    let column = def.name.value.clone();
    let dt = def.data_type.to_string();
    let mut serial = matches!(
        dt.to_ascii_lowercase().as_str(),
        "serial" | "bigserial" | "smallserial" | "serial4" | "serial8" | "serial2"
    );
    let (mut not_null, mut default, mut generated_stored) = (false, None, false);
    let (mut primary_key, mut unique) = (false, false);
    let mut extra = Vec::new();
    for opt in &def.options {
        let constraint_name = opt.name.as_ref().map(|n| n.value.clone());
        match &opt.option {
            ColumnOption::NotNull => not_null = true,
            ColumnOption::Default(e) => default = Some(default_of(e, engine)),
            ColumnOption::PrimaryKey(_) => primary_key = true,
            ColumnOption::Unique(_) => unique = true,
            ColumnOption::Identity(_) => serial = true,
            ColumnOption::Generated {
                generation_expr,
                generation_expr_mode,
                ..
            } => {
                if generation_expr.is_some() {
                    generated_stored = generated_stored
                        || matches!(generation_expr_mode, Some(GeneratedExpressionMode::Stored));
                } else {
                    serial = true;
                }
            }
            ColumnOption::DialectSpecific(tokens) => {
                let t = tokens
                    .iter()
                    .map(|t| t.to_string().to_ascii_uppercase())
                    .collect::<String>();
                if t.contains("AUTO_INCREMENT") || t.contains("AUTOINCREMENT") {
                    serial = true;
                }
            }
            ColumnOption::ForeignKey(fk) => extra.push(Kind::AddForeignKey {
                name: constraint_name.or_else(|| fk.name.as_ref().map(|n| n.value.clone())),
                columns: vec![column.clone()],
                references: name(&fk.foreign_table),
                ref_columns: fk
                    .referred_columns
                    .iter()
                    .map(|c| c.value.clone())
                    .collect(),
                not_valid: false,
                inline: true,
            }),
            ColumnOption::Check(c) => extra.push(Kind::AddCheck {
                name: constraint_name.or_else(|| c.name.as_ref().map(|n| n.value.clone())),
                expr: c.expr.to_string(),
                not_valid: false,
                inline: true,
            }),
            _ => {}
        }
    }
    out.push(Action {
        table: Some(table.clone()),
        kind: Kind::AddColumn {
            column,
            data_type: dt,
            not_null: not_null || primary_key,
            default,
            generated_stored,
            serial,
            primary_key,
            unique,
            position,
            if_not_exists,
        },
    });
    out.extend(extra.into_iter().map(|kind| Action {
        table: Some(table.clone()),
        kind,
    }));
}

fn constraint_kind(c: &TableConstraint, not_valid: bool, engine: Engine) -> Kind {
    let idents = |v: &[Ident]| v.iter().map(|i| i.value.clone()).collect::<Vec<_>>();
    let opt = |n: &Option<Ident>| n.as_ref().map(|n| n.value.clone());
    match c {
        TableConstraint::ForeignKey(fk) => Kind::AddForeignKey {
            name: opt(&fk.name),
            columns: idents(&fk.columns),
            references: name(&fk.foreign_table),
            ref_columns: idents(&fk.referred_columns),
            not_valid,
            inline: false,
        },
        TableConstraint::Check(ck) => Kind::AddCheck {
            name: opt(&ck.name),
            expr: ck.expr.to_string(),
            not_valid,
            inline: false,
        },
        TableConstraint::Unique(u) if engine.is_mysql_family() => Kind::CreateIndex {
            name: opt(&u.index_name).or_else(|| opt(&u.name)),
            columns: u
                .columns
                .iter()
                .map(|c| expr_name(&c.column.expr))
                .collect(),
            unique: true,
            concurrently: false,
        },
        TableConstraint::Unique(u) => Kind::AddUnique {
            name: opt(&u.name),
            columns: u
                .columns
                .iter()
                .map(|c| expr_name(&c.column.expr))
                .collect(),
            using_index: false,
        },
        TableConstraint::PrimaryKey(p) => Kind::AddPrimaryKey {
            name: opt(&p.name),
            columns: p
                .columns
                .iter()
                .map(|c| expr_name(&c.column.expr))
                .collect(),
            using_index: false,
        },
        TableConstraint::UniqueUsingIndex(u) => Kind::AddUnique {
            name: opt(&u.name),
            columns: Vec::new(),
            using_index: true,
        },
        TableConstraint::PrimaryKeyUsingIndex(u) => Kind::AddPrimaryKey {
            name: opt(&u.name),
            columns: Vec::new(),
            using_index: true,
        },
        TableConstraint::Index(ix) => Kind::CreateIndex {
            name: opt(&ix.name),
            columns: ix
                .columns
                .iter()
                .map(|c| expr_name(&c.column.expr))
                .collect(),
            unique: false,
            concurrently: false,
        },
        other => Kind::Other {
            what: leading_words(&format!("ADD {other}")),
        },
    }
}

/// A default as written, with how the target engine computes it ([`super::volatility`]).
fn default_of(e: &Expr, engine: Engine) -> Default {
    Default {
        sql: e.to_string(),
        volatility: super::volatility::of(e, engine),
    }
}

/// `schema.table` (or `db.table`) as written, unquoted.
pub(super) fn name(n: &ObjectName) -> Name {
    let parts: Vec<String> =
        n.0.iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => i.value.clone(),
                other => other.to_string(),
            })
            .collect();
    match parts.as_slice() {
        [.., schema, table] => Name {
            schema: Some(schema.clone()),
            name: table.clone(),
        },
        [table] => Name {
            schema: None,
            name: table.clone(),
        },
        [] => Name {
            schema: None,
            name: String::new(),
        },
    }
}

fn expr_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(p) => p.last().map(|i| i.value.clone()).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// The first two words of a statement, to name what it is (`CREATE VIEW`, `COMMENT ON`).
fn leading_words(sql: &str) -> String {
    sql.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// The tool history table a statement writes or creates, if any.
pub(super) fn history_table(class: &Class) -> Option<String> {
    let Class::Change { actions, .. } = class else {
        return None;
    };
    actions.iter().find_map(|a| {
        let t = a.table.as_ref()?;
        HISTORY_TABLES
            .iter()
            .find(|h| h.eq_ignore_ascii_case(&t.name))
            .map(|h| h.to_string())
    })
}
