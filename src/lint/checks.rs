//! The detectors behind the rule table: each looks at one statement (or one of its actions) in the
//! context of what the file did before it, and returns the finding's message.

use super::{Ctx, Finding};
use crate::analysis::{Action, Class, Engine, File, Kind, Scaffold, Statement, Version, facts};

type Hit = Option<String>;

fn table(a: &Action) -> String {
    a.table.as_ref().map(|t| t.to_string()).unwrap_or_default()
}

/// An action on a table that existed before this file (running code may be using it).
fn existing(ctx: &Ctx, a: &Action) -> bool {
    !ctx.is_new(a)
}

fn shape_is(a: &Action, shapes: &[&str]) -> bool {
    shapes.contains(&facts::shape(&a.kind))
}

/// `col IS NOT NULL` (quoted or not): the column a CHECK proves non-null.
pub(super) fn is_not_null_check(expr: &str) -> Option<String> {
    let e = expr.trim().trim_start_matches('(').trim_end_matches(')');
    let col = e
        .strip_suffix("IS NOT NULL")
        .or_else(|| e.strip_suffix("is not null"))?;
    let col = col.trim().trim_matches(['"', '`']);
    (!col.is_empty() && !col.contains(' ')).then(|| col.to_string())
}

pub(super) fn add_column_rewrite(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    let Kind::AddColumn { column, .. } = &a.kind else {
        return None;
    };
    if !existing(ctx, a) || shape_is(a, &["not_null_no_default", "nullable"]) {
        return None;
    }
    let fact = ctx.fact(a)?;
    let what = match (fact.cost, facts::shape(&a.kind)) {
        (facts::Cost::Fails, _) => {
            "SQLite refuses a non-constant default (or a generated or \
             auto-increment column) in ADD COLUMN"
        }
        (facts::Cost::Rewrite, "generated_stored") => {
            "a stored generated column computes and \
             writes every existing row"
        }
        (facts::Cost::Rewrite, "serial") => {
            "a serial/identity column writes a value into every \
             existing row"
        }
        (facts::Cost::Rewrite, _) => "a default evaluated per row writes every existing row",
        _ => return None,
    };
    Some(format!("adding {}.{column}: {what}", table(a)))
}

pub(super) fn add_column_required(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    let Kind::AddColumn { column, .. } = &a.kind else {
        return None;
    };
    (existing(ctx, a) && shape_is(a, &["not_null_no_default"])).then(|| {
        format!(
            "{}.{column} is NOT NULL with no default: the statement fails on a table that has rows",
            table(a)
        )
    })
}

pub(super) fn set_not_null(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    let Kind::SetNotNull { column } = &a.kind else {
        return None;
    };
    let t = a.table.as_ref().map(|t| t.name.clone()).unwrap_or_default();
    let proven =
        ctx.not_null_checked.contains(&(t, column.clone())) && ctx.version() >= Version(12, 0, 0);
    (existing(ctx, a) && !proven).then(|| {
        format!(
            "SET NOT NULL on {}.{column} reads every row under ACCESS EXCLUSIVE (no validated \
             CHECK ({column} IS NOT NULL) before it in this file)",
            table(a)
        )
    })
}

pub(super) fn add_foreign_key(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    let Kind::AddForeignKey {
        not_valid,
        references,
        inline,
        ..
    } = &a.kind
    else {
        return None;
    };
    if !existing(ctx, a) {
        return None;
    }
    let how = if *inline {
        "an inline REFERENCES"
    } else {
        "a foreign key"
    };
    match ctx.engine() {
        Engine::Postgres if !not_valid => Some(format!(
            "{how} on {} is validated at once: writes to {} and {references} wait while every \
             row is checked",
            table(a),
            table(a)
        )),
        Engine::Mysql | Engine::Mariadb if !ctx.fk_checks_off => Some(format!(
            "{how} on {} with foreign_key_checks on: InnoDB copies the table (ALGORITHM=COPY) \
             and writes wait for the whole copy",
            table(a)
        )),
        _ => None,
    }
}

pub(super) fn add_check(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    let Kind::AddCheck {
        not_valid, name, ..
    } = &a.kind
    else {
        return None;
    };
    if !existing(ctx, a) {
        return None;
    }
    let name = name.as_deref().unwrap_or("(unnamed)");
    match ctx.engine() {
        Engine::Postgres if !not_valid => Some(format!(
            "CHECK {name} on {} is validated at once: every row is read under ACCESS EXCLUSIVE",
            table(a)
        )),
        Engine::Mysql | Engine::Mariadb => Some(format!(
            "CHECK {name} on {}: the table is copied (ALGORITHM=COPY) and writes wait",
            table(a)
        )),
        _ => None,
    }
}

pub(super) fn add_unique(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    match &a.kind {
        Kind::AddUnique {
            using_index: false, ..
        } if existing(ctx, a) => Some(format!(
            "UNIQUE on {} builds its index under ACCESS EXCLUSIVE: reads and writes wait",
            table(a)
        )),
        Kind::AddColumn { unique: true, .. } if existing(ctx, a) => Some(format!(
            "an inline UNIQUE on {} builds its index under ACCESS EXCLUSIVE",
            table(a)
        )),
        _ => None,
    }
}

pub(super) fn add_primary_key(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    match &a.kind {
        Kind::AddPrimaryKey {
            using_index: false, ..
        } if existing(ctx, a) => Some(format!(
            "PRIMARY KEY on {} builds its index under ACCESS EXCLUSIVE",
            table(a)
        )),
        _ => None,
    }
}

pub(super) fn create_index_blocking(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    let Kind::CreateIndex {
        concurrently: false,
        name,
        ..
    } = &a.kind
    else {
        return None;
    };
    let name = name.as_deref().unwrap_or("(unnamed)");
    (existing(ctx, a)).then(|| match ctx.engine() {
        Engine::Sqlite => format!(
            "index {name} on {}: writers wait for the whole build (SQLite's write lock)",
            table(a)
        ),
        _ => format!(
            "index {name} on {} is built without CONCURRENTLY: writes wait for the whole build",
            table(a)
        ),
    })
}

pub(super) fn concurrently_in_transaction(ctx: &Ctx, s: &Statement, a: &Action) -> Hit {
    let concurrent = match &a.kind {
        Kind::CreateIndex { concurrently, .. }
        | Kind::DropIndex { concurrently, .. }
        | Kind::Reindex { concurrently }
        | Kind::DetachPartition { concurrently } => *concurrently,
        _ => false,
    };
    (concurrent && ctx.transactional(s))
        .then(|| "CONCURRENTLY cannot run inside a transaction block: PostgreSQL refuses it".into())
}

pub(super) fn drop_index_blocking(_: &Ctx, _: &Statement, a: &Action) -> Hit {
    match &a.kind {
        Kind::DropIndex {
            name,
            concurrently: false,
        } => Some(format!(
            "DROP INDEX {name} without CONCURRENTLY takes ACCESS EXCLUSIVE on its table"
        )),
        _ => None,
    }
}

pub(super) fn change_column_type(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    let Kind::ChangeColumnType {
        column, data_type, ..
    } = &a.kind
    else {
        return None;
    };
    existing(ctx, a).then(|| match ctx.engine() {
        Engine::Postgres => format!(
            "{}.{column} TYPE {data_type}: unless the old type converts without a rewrite \
             (e.g. a longer varchar), the table is rewritten under ACCESS EXCLUSIVE",
            table(a)
        ),
        _ => format!(
            "{}.{column} redefined as {data_type}: a type change copies the table \
             (ALGORITHM=COPY) and writes wait for the whole copy",
            table(a)
        ),
    })
}

pub(super) fn rename_column(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    match &a.kind {
        Kind::RenameColumn { from, to } if existing(ctx, a) => Some(format!(
            "{}.{from} renamed to {to}: every running version that uses {from} fails",
            table(a)
        )),
        Kind::ChangeColumnType {
            column,
            renamed_to: Some(to),
            ..
        } if existing(ctx, a) => Some(format!(
            "{}.{column} renamed to {to}: every running version that uses {column} fails",
            table(a)
        )),
        _ => None,
    }
}

pub(super) fn rename_table(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    match &a.kind {
        Kind::RenameTable { to } if existing(ctx, a) => Some(format!(
            "{} renamed to {to}: every running version that uses the old name fails",
            table(a)
        )),
        _ => None,
    }
}

pub(super) fn drop_column(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    match &a.kind {
        Kind::DropColumn { column, .. } if existing(ctx, a) => Some(format!(
            "{}.{column} dropped: running code that still reads or writes it fails{}",
            table(a),
            if ctx.engine() == Engine::Sqlite {
                ", and SQLite rewrites the table to drop it"
            } else {
                ""
            }
        )),
        _ => None,
    }
}

pub(super) fn drop_table(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    let Kind::DropTable { .. } = &a.kind else {
        return None;
    };
    let t = a.table.as_ref()?;
    let remade = ctx.created.contains(&format!("new__{}", t.name));
    (existing(ctx, a) && !remade).then(|| {
        format!(
            "{} dropped: running code that still uses it fails",
            table(a)
        )
    })
}

pub(super) fn drop_database(_: &Ctx, _: &Statement, a: &Action) -> Hit {
    matches!(a.kind, Kind::DropDatabase).then(|| "DROP DATABASE in a migration".into())
}

pub(super) fn drop_not_null(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    match &a.kind {
        Kind::DropNotNull { column } if existing(ctx, a) => Some(format!(
            "{}.{column} may now hold NULL: running code that assumes it never does may fail",
            table(a)
        )),
        _ => None,
    }
}

pub(super) fn drop_default(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    let Kind::DropDefault { column } = &a.kind else {
        return None;
    };
    let t = a.table.as_ref().map(|t| t.name.clone()).unwrap_or_default();
    // Django's idiom: ADD COLUMN … DEFAULT x then DROP DEFAULT is one add with a fill.
    let idiom = ctx.added_with_default.contains(&(t, column.clone()));
    (existing(ctx, a) && !idiom).then(|| {
        format!(
            "{}.{column} loses its default: running code that omits the column now writes NULL \
             or fails",
            table(a)
        )
    })
}

pub(super) fn truncate_cascade(_: &Ctx, _: &Statement, a: &Action) -> Hit {
    matches!(a.kind, Kind::Truncate { cascade: true }).then(|| {
        format!(
            "TRUNCATE {} CASCADE also empties every table that references it",
            table(a)
        )
    })
}

pub(super) fn transaction_nesting(ctx: &Ctx, s: &Statement) -> Hit {
    (ctx.in_transaction && matches!(s.class, Class::Scaffolding(Scaffold::Begin)))
        .then(|| "BEGIN inside an open transaction".into())
}

pub(super) fn never(_: &Ctx, _: &Statement) -> Hit {
    None
}

/// Whether a statement makes the engine wait for a lock on a table that running code uses.
fn takes_lock(ctx: &Ctx, s: &Statement) -> bool {
    s.bookkeeping.is_none()
        && s.actions().iter().any(|a| {
            existing(ctx, a)
                && !matches!(a.kind, Kind::CreateTable { .. } | Kind::Data { .. })
                && ctx.fact(a).is_some()
        })
}

fn sets(s: &Statement, names: &[&str]) -> bool {
    s.settings.iter().any(|v| names.contains(&v.as_str()))
}

pub(super) fn missing_lock_timeout(ctx: &Ctx, s: &Statement) -> Hit {
    let own = sets(s, &["lock_wait_timeout", "innodb_lock_wait_timeout"]);
    (!ctx.lock_timeout && !own && !ctx.timeouts_reported.0 && takes_lock(ctx, s)).then(|| {
        let name = if ctx.engine() == Engine::Postgres {
            "lock_timeout"
        } else {
            "lock_wait_timeout"
        };
        format!(
            "no {name} before the first statement that waits for a table lock: while it waits, \
             every query on the table queues behind it"
        )
    })
}

pub(super) fn missing_statement_timeout(ctx: &Ctx, s: &Statement) -> Hit {
    let own = sets(s, &["max_statement_time", "statement_timeout"]);
    (!ctx.statement_timeout && !own && !ctx.timeouts_reported.1 && takes_lock(ctx, s))
        .then(|| "no statement_timeout before the first statement that locks a table".into())
}

/// squawk reports each missing timeout once per file; so does this linter.
pub(super) fn note_timeouts_reported(ctx: &mut Ctx, out: &[Finding], file: &File) {
    let here = |id: &str| out.iter().any(|f| f.rule == id && f.file == file.path);
    ctx.timeouts_reported = (
        ctx.timeouts_reported.0 || here("missing-lock-timeout"),
        ctx.timeouts_reported.1 || here("missing-statement-timeout"),
    );
}

pub(super) fn reindex_blocking(_: &Ctx, _: &Statement, a: &Action) -> Hit {
    matches!(
        a.kind,
        Kind::Reindex {
            concurrently: false
        }
    )
    .then(|| "REINDEX without CONCURRENTLY blocks writes (and reads using the index)".into())
}

pub(super) fn detach_blocking(_: &Ctx, _: &Statement, a: &Action) -> Hit {
    matches!(
        a.kind,
        Kind::DetachPartition {
            concurrently: false
        }
    )
    .then(|| {
        format!(
            "DETACH PARTITION on {} without CONCURRENTLY takes ACCESS EXCLUSIVE",
            table(a)
        )
    })
}

pub(super) fn rewrite_table(_: &Ctx, _: &Statement, a: &Action) -> Hit {
    match &a.kind {
        Kind::RewriteTable { how } => Some(format!(
            "{how} rewrites the table under ACCESS EXCLUSIVE: reads and writes wait"
        )),
        _ => None,
    }
}

pub(super) fn alter_domain_add_constraint(_: &Ctx, _: &Statement, a: &Action) -> Hit {
    matches!(a.kind, Kind::AlterDomainAddConstraint)
        .then(|| "ALTER DOMAIN … ADD CONSTRAINT checks every column of every table using it".into())
}

pub(super) fn create_domain_with_constraint(_: &Ctx, _: &Statement, a: &Action) -> Hit {
    matches!(a.kind, Kind::CreateDomainWithConstraint)
        .then(|| "a domain with a constraint: changing it later scans every table using it".into())
}

pub(super) fn long_statement_after_lock(ctx: &Ctx, s: &Statement) -> Hit {
    if !ctx.holds_blocking_lock || !s.in_transaction {
        return None;
    }
    let long = s.actions().iter().find(|a| {
        existing(ctx, a)
            && ctx.fact(a).is_some_and(|f| {
                matches!(f.cost, facts::Cost::Scan | facts::Cost::Rewrite)
                    || matches!(
                        a.kind,
                        Kind::Data {
                            whole_table: true,
                            ..
                        }
                    )
            })
    })?;
    Some(format!(
        "{} runs while this transaction still holds a lock that blocks reads and writes (taken by \
         an earlier statement): everything on the table waits until COMMIT",
        long.kind.tag()
    ))
}

pub(super) fn algorithm_copy(ctx: &Ctx, s: &Statement) -> Hit {
    let Class::Change {
        algorithm, lock, ..
    } = &s.class
    else {
        return None;
    };
    let _ = ctx;
    match (algorithm.as_deref(), lock.as_deref()) {
        (Some("COPY"), _) => {
            Some("ALGORITHM=COPY copies the table; writes wait for the whole copy".into())
        }
        (_, Some(l @ ("SHARED" | "EXCLUSIVE"))) => Some(format!(
            "LOCK={l} blocks {} for the whole ALTER",
            if l == "SHARED" {
                "writes"
            } else {
                "reads and writes"
            }
        )),
        _ => None,
    }
}

pub(super) fn add_column_position(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    let Kind::AddColumn {
        position: Some(p),
        column,
        ..
    } = &a.kind
    else {
        return None;
    };
    let instant = match ctx.engine() {
        Engine::Mariadb => ctx.version() >= Version(10, 4, 0),
        _ => ctx.version() >= Version(8, 0, 29),
    };
    (!instant && existing(ctx, a)).then(|| {
        format!(
            "{column} {p} on {} {}: not instant before MariaDB 10.4 / MySQL 8.0.29, the table is \
             rebuilt",
            ctx.engine(),
            ctx.version()
        )
    })
}

pub(super) fn sqlite_table_copy(ctx: &Ctx, _: &Statement, a: &Action) -> Hit {
    let Kind::Data {
        copy_from: Some((src, _)),
        ..
    } = &a.kind
    else {
        return None;
    };
    let into_new = a
        .table
        .as_ref()
        .is_some_and(|t| ctx.created.contains(&t.name));
    (into_new && !ctx.created.contains(&src.name)).then(|| {
        format!(
            "the whole of {src} is copied into {} while SQLite's write lock is held (a table \
             remake)",
            table(a)
        )
    })
}

pub(super) fn whole_table_write(ctx: &Ctx, s: &Statement, a: &Action) -> Hit {
    match &a.kind {
        Kind::Data {
            verb,
            whole_table: true,
            ..
        } if existing(ctx, a) && s.bookkeeping.is_none() => Some(format!(
            "{verb} of every row of {} in one statement: each row stays locked until it commits",
            table(a)
        )),
        _ => None,
    }
}
