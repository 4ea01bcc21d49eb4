//! Typed statements: a step's SQL together with how the executor runs it. The executor dispatches on
//! [`Run`], never on the SQL's text, so what `plan` prints is exactly what runs, and nothing inside a
//! user's expression can change how a statement is executed.

use serde::{Deserialize, Serialize};

/// The format of a stored plan. A state row whose plan has another format was written by another
/// zerodown version and is refused with a clear message rather than run in a way it never meant.
pub const PLAN_FORMAT: u32 = 2;

/// One statement of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StatementRepr", into = "StatementRepr")]
pub struct Statement {
    pub sql: String,
    pub run: Run,
}

/// How the executor runs a statement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Run {
    /// In the step's one transaction, under the lock guard, committed together with the record that
    /// the step is done.
    #[default]
    InStep,
    /// An online build or rebuild that takes a pass over the table: not under the short lock
    /// timeout but under `--build-timeout`. PostgreSQL runs it alone in autocommit (CONCURRENTLY),
    /// first dropping an INVALID index named `index` that an earlier failed build left; MySQL and
    /// MariaDB wait whole seconds for the metadata lock, and `strict` runs it under a strict
    /// `sql_mode`, so a NULL fails a MODIFY … NOT NULL instead of turning into 0.
    OnlineBuild {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        strict: bool,
    },
    /// MySQL/MariaDB `ALGORITHM=INSTANT`: when the server refuses it, `fallback` (an online
    /// rebuild) runs instead. Both are in the plan.
    InstantOr { fallback: String },
    /// MySQL/MariaDB: a change the server makes only by copying the table while writes wait
    /// (`ALGORITHM=COPY`; on MariaDB 10.11, ADD CHECK). Its own kind, so that `--allow-copy` is asked
    /// for by the plan, never by what the statement's text happens to contain; a build under
    /// `--build-timeout` like [`Run::OnlineBuild`].
    Copy,
    /// SQLite: the column's default goes on through SQLite's documented schema-edit procedure
    /// (`writable_schema`), since SQLite has no ALTER COLUMN … SET DEFAULT. The statement's text
    /// describes the edit; these fields are what the executor applies.
    SqliteSetDefault {
        table: String,
        column: String,
        default: String,
        literal: bool,
    },
}

impl Statement {
    /// A statement run in the step's transaction.
    pub fn in_step(sql: impl Into<String>) -> Statement {
        Statement {
            sql: sql.into(),
            run: Run::InStep,
        }
    }

    /// The SQL alone of each statement, for executors that run every statement of a step alike.
    pub fn texts(stmts: &[Statement]) -> Vec<String> {
        stmts.iter().map(|s| s.sql.clone()).collect()
    }

    /// Several statements run in the step's transaction, in order.
    pub fn in_step_all<S: Into<String>>(sql: impl IntoIterator<Item = S>) -> Vec<Statement> {
        sql.into_iter().map(Statement::in_step).collect()
    }
}

impl std::fmt::Display for Statement {
    /// The SQL alone, as `plan` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql)
    }
}

/// The stored form: a plain string for the common case keeps plans readable as JSON.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StatementRepr {
    Plain(String),
    Typed { sql: String, run: Run },
}

impl From<StatementRepr> for Statement {
    fn from(r: StatementRepr) -> Statement {
        match r {
            StatementRepr::Plain(sql) => Statement::in_step(sql),
            StatementRepr::Typed { sql, run } => Statement { sql, run },
        }
    }
}

impl From<Statement> for StatementRepr {
    fn from(s: Statement) -> StatementRepr {
        match s.run {
            Run::InStep => StatementRepr::Plain(s.sql),
            run => StatementRepr::Typed { sql: s.sql, run },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_step_statements_store_as_plain_strings() {
        let s = Statement::in_step("SELECT 1");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"SELECT 1\"");
        assert_eq!(serde_json::from_str::<Statement>(&json).unwrap(), s);
    }
}
