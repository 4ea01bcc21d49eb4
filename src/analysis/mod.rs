//! Statement analysis of migration files, shared by `zerodown lint` (#15) and the ORM migration input
//! (#14): one reader, one classification, one table of engine facts.
//!
//! A file is read into [`Statement`]s (each with its 1-based line), every statement is sorted into
//! scaffolding (transaction and session lines the tools write), bookkeeping (the tools' history
//! tables) or a change made of [`Action`]s with their subject. [`facts`] says, per action, engine and
//! version, what the engine locks and what it costs. Nothing here connects to a database.

mod classify;
pub mod facts;
mod facts_mysql;
mod facts_postgres;
mod facts_sqlite;
mod keywords;
pub mod operations;
mod split;
pub mod volatility;

use std::fmt;

pub use split::read;

/// The engine a migration is written for; MySQL and MariaDB share a dialect but not their facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    Mysql,
    Mariadb,
    Sqlite,
}

impl Engine {
    pub const ALL: [Engine; 4] = [
        Engine::Postgres,
        Engine::Mysql,
        Engine::Mariadb,
        Engine::Sqlite,
    ];

    /// The engine by the names people use for it (`postgresql`, `pg`, `mysql`, `mariadb`, `sqlite`).
    pub fn parse(s: &str) -> Option<Engine> {
        match s.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "pg" => Some(Engine::Postgres),
            "mysql" => Some(Engine::Mysql),
            "mariadb" => Some(Engine::Mariadb),
            "sqlite" | "sqlite3" => Some(Engine::Sqlite),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
            Engine::Mariadb => "mariadb",
            Engine::Sqlite => "sqlite",
        }
    }

    /// MySQL and MariaDB: one SQL dialect, backticks, `ALGORITHM=`/`LOCK=` clauses, no transactional DDL.
    pub fn is_mysql_family(self) -> bool {
        matches!(self, Engine::Mysql | Engine::Mariadb)
    }

    /// The version assumed when none is given: the newest this project tests.
    pub fn default_version(self) -> Version {
        match self {
            Engine::Postgres => Version(18, 0, 0),
            Engine::Mysql => Version(8, 4, 0),
            Engine::Mariadb => Version(11, 4, 0),
            Engine::Sqlite => Version(3, 40, 0),
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A server version, `major.minor.patch`; missing parts are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.trim().split('.').map(|p| p.parse::<u32>());
        let major = parts.next()?.ok()?;
        let minor = parts.next().transpose().ok()?.unwrap_or(0);
        let patch = parts.next().transpose().ok()?.unwrap_or(0);
        parts
            .next()
            .is_none()
            .then_some(Version(major, minor, patch))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version(major, 0, 0) => write!(f, "{major}"),
            Version(major, minor, 0) => write!(f, "{major}.{minor}"),
            Version(major, minor, patch) => write!(f, "{major}.{minor}.{patch}"),
        }
    }
}

/// A table (or index) name as written, unquoted, with its schema (PostgreSQL) or database (MySQL).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Name {
    pub schema: Option<String>,
    pub name: String,
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// How a default's value is computed, which decides whether adding it rewrites or scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Volatility {
    /// A literal (or a cast of one): the same value for every row.
    Constant,
    /// Evaluated once per statement (`now()`, `CURRENT_TIMESTAMP`): one value for the existing rows.
    Stable,
    /// Evaluated per row (`random()`, `gen_random_uuid()`, `uuid()`, or any function not known).
    Volatile,
}

/// A default as written, and how it is computed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Default {
    pub sql: String,
    pub volatility: Volatility,
}

/// What one clause of a statement does. Names follow the operation model of `spec::Operation`
/// (`AddColumn`, `CreateIndex`, `AddForeignKey`, `AddCheck`, `SetNotNull`, `SetDefault`, `DropDefault`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    AddColumn {
        column: String,
        data_type: String,
        not_null: bool,
        default: Option<Default>,
        /// `GENERATED ALWAYS AS (…) STORED`: every existing row is computed and written.
        generated_stored: bool,
        /// `serial`/`bigserial`/`AUTO_INCREMENT`/identity: a per-row value for existing rows.
        serial: bool,
        primary_key: bool,
        unique: bool,
        /// MySQL/MariaDB `FIRST` / `AFTER col`.
        position: Option<String>,
        if_not_exists: bool,
    },
    CreateIndex {
        name: Option<String>,
        columns: Vec<String>,
        unique: bool,
        concurrently: bool,
    },
    AddForeignKey {
        name: Option<String>,
        columns: Vec<String>,
        references: Name,
        ref_columns: Vec<String>,
        not_valid: bool,
        /// Written inside a column definition (`… REFERENCES t (id)`).
        inline: bool,
    },
    AddCheck {
        name: Option<String>,
        expr: String,
        not_valid: bool,
        inline: bool,
    },
    AddUnique {
        name: Option<String>,
        columns: Vec<String>,
        using_index: bool,
    },
    AddPrimaryKey {
        name: Option<String>,
        columns: Vec<String>,
        using_index: bool,
    },
    ValidateConstraint {
        name: String,
    },
    SetNotNull {
        column: String,
    },
    DropNotNull {
        column: String,
    },
    SetDefault {
        column: String,
        default: Default,
    },
    DropDefault {
        column: String,
    },
    /// PostgreSQL `ALTER COLUMN … TYPE`, MySQL `MODIFY`/`CHANGE` (which restate the whole column).
    ChangeColumnType {
        column: String,
        data_type: String,
        renamed_to: Option<String>,
    },
    RenameColumn {
        from: String,
        to: String,
    },
    RenameTable {
        to: String,
    },
    DropColumn {
        column: String,
        cascade: bool,
    },
    DropConstraint {
        name: String,
    },
    DropTable {
        cascade: bool,
    },
    DropIndex {
        name: String,
        concurrently: bool,
    },
    /// A new table. What it declares is kept for recognising SQLite table remakes (Django).
    CreateTable {
        columns: Vec<String>,
        /// Columns with an inline `CHECK` / `REFERENCES`.
        checked_columns: Vec<String>,
        referencing_columns: Vec<String>,
        /// Named table constraints as (`add_check` | `add_foreign_key` | …, name).
        constraints: Vec<(String, String)>,
    },
    Truncate {
        cascade: bool,
    },
    /// `REINDEX` (TABLE/INDEX/…): PostgreSQL rebuilds under a lock unless CONCURRENTLY.
    Reindex {
        concurrently: bool,
    },
    /// `VACUUM FULL` or `CLUSTER`: the table is rewritten under ACCESS EXCLUSIVE.
    RewriteTable {
        how: String,
    },
    DetachPartition {
        concurrently: bool,
    },
    AlterDomainAddConstraint,
    CreateDomainWithConstraint,
    DropDatabase,
    /// INSERT/UPDATE/DELETE; `whole_table` when an UPDATE/DELETE has no WHERE.
    Data {
        verb: String,
        whole_table: bool,
        /// `INSERT INTO t (cols) SELECT … FROM source`: the source table, and for each target column
        /// the source column it copies (None for a computed value such as a literal fill).
        copy_from: Option<CopyFrom>,
    },
    /// Anything else (`CREATE VIEW`, `COMMENT ON`, …): run as written, no known locking danger.
    Other {
        what: String,
    },
}

impl Kind {
    /// The snake_case name of the kind, as used in the facts table and the JSON output.
    pub fn tag(&self) -> &'static str {
        match self {
            Kind::AddColumn { .. } => "add_column",
            Kind::CreateIndex { .. } => "create_index",
            Kind::AddForeignKey { .. } => "add_foreign_key",
            Kind::AddCheck { .. } => "add_check",
            Kind::AddUnique { .. } => "add_unique",
            Kind::AddPrimaryKey { .. } => "add_primary_key",
            Kind::ValidateConstraint { .. } => "validate_constraint",
            Kind::SetNotNull { .. } => "set_not_null",
            Kind::DropNotNull { .. } => "drop_not_null",
            Kind::SetDefault { .. } => "set_default",
            Kind::DropDefault { .. } => "drop_default",
            Kind::ChangeColumnType { .. } => "change_column_type",
            Kind::RenameColumn { .. } => "rename_column",
            Kind::RenameTable { .. } => "rename_table",
            Kind::DropColumn { .. } => "drop_column",
            Kind::DropConstraint { .. } => "drop_constraint",
            Kind::DropTable { .. } => "drop_table",
            Kind::DropIndex { .. } => "drop_index",
            Kind::CreateTable { .. } => "create_table",
            Kind::Truncate { .. } => "truncate",
            Kind::Reindex { .. } => "reindex",
            Kind::RewriteTable { .. } => "rewrite_table",
            Kind::DetachPartition { .. } => "detach_partition",
            Kind::AlterDomainAddConstraint => "alter_domain_add_constraint",
            Kind::CreateDomainWithConstraint => "create_domain_with_constraint",
            Kind::DropDatabase => "drop_database",
            Kind::Data { .. } => "data",
            Kind::Other { .. } => "other",
        }
    }
}

/// `INSERT INTO t (cols) SELECT … FROM source`: the source table, and per target column the source
/// column it copies (None for a computed value).
pub type CopyFrom = (Name, Vec<(String, Option<String>)>);

/// One clause's effect on one object.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Action {
    /// The table acted on (for `CREATE INDEX`, the indexed table); None for objects without one.
    pub table: Option<Name>,
    #[serde(flatten)]
    pub kind: Kind,
}

/// A statement that only scopes a transaction, a session or a tool's file format.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "scaffold", rename_all = "snake_case")]
pub enum Scaffold {
    Begin,
    Commit,
    Rollback,
    /// `SET [LOCAL|SESSION] name = value` (lock_timeout, statement_timeout, search_path,
    /// foreign_key_checks, lock_wait_timeout, …), lowercased name.
    Set {
        name: String,
        value: String,
    },
    /// `SET CONSTRAINTS … IMMEDIATE|DEFERRED`.
    SetConstraints,
    /// SQLite `PRAGMA name[=value]`.
    Pragma {
        name: String,
    },
    /// A `SELECT` of constants only, as goose's template writes (`SELECT 'up SQL query'`).
    NoOp,
}

/// What a statement is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Class {
    Scaffolding(Scaffold),
    Change {
        actions: Vec<Action>,
        /// MySQL/MariaDB `ALGORITHM=` and `LOCK=` clauses of an ALTER TABLE, uppercased.
        algorithm: Option<String>,
        lock: Option<String>,
    },
    /// sqlparser could not read it: the message says where and what to do.
    Unreadable {
        message: String,
    },
}

/// One statement of a file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Statement {
    /// 1-based line and column of its first token.
    pub line: usize,
    pub column: usize,
    /// The statement as written, without its `;` and surrounding comments.
    pub text: String,
    #[serde(flatten)]
    pub class: Class,
    /// The tool history table it writes or creates (`alembic_version`, `schema_migrations`, …).
    pub bookkeeping: Option<String>,
    /// Inside an explicit `BEGIN … COMMIT` of the file.
    pub in_transaction: bool,
    /// Rule ids named in a `-- zerodown-ignore …` comment just before it (`all` ignores every rule).
    pub ignores: Vec<String>,
    /// Variables MariaDB's `SET STATEMENT var = … FOR` sets for this statement only, lowercased.
    pub settings: Vec<String>,
}

impl Statement {
    pub fn actions(&self) -> &[Action] {
        match &self.class {
            Class::Change { actions, .. } => actions,
            _ => &[],
        }
    }
}

/// A tool's annotation comment (`-- +goose Up`, `--changeset a:1`, `-- no-transaction`, …).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Annotation {
    pub line: usize,
    pub text: String,
}

/// A file read into statements.
#[derive(Clone, Debug, serde::Serialize)]
pub struct File {
    pub path: String,
    pub engine: Engine,
    pub statements: Vec<Statement>,
    pub annotations: Vec<Annotation>,
    /// Rule ids named in a `-- zerodown-ignore-file …` comment anywhere in the file.
    pub ignores: Vec<String>,
    /// The file declares it runs outside a transaction (sqlx `-- no-transaction`, goose
    /// `NO TRANSACTION`, Liquibase `runInTransaction:false`).
    pub no_transaction: bool,
}

impl File {
    /// Statements sqlparser could not read, as `path:line:column: message`; not those under a
    /// `-- zerodown-ignore all` comment (or in a file with `-- zerodown-ignore-file all`).
    pub fn errors(&self) -> Vec<String> {
        let all = |list: &[String]| list.iter().any(|r| r == "all");
        self.statements
            .iter()
            .filter(|s| !all(&s.ignores) && !all(&self.ignores))
            .filter_map(|s| match &s.class {
                Class::Unreadable { message } => {
                    Some(format!("{}:{}:{}: {message}", self.path, s.line, s.column))
                }
                _ => None,
            })
            .collect()
    }
}

/// History tables of the migration tools; statements on them are the tool's bookkeeping.
pub const HISTORY_TABLES: &[&str] = &[
    "alembic_version",
    "django_migrations",
    "schema_migrations",
    "ar_internal_metadata",
    "_sqlx_migrations",
    "__diesel_schema_migrations",
    "goose_db_version",
    "flyway_schema_history",
    "databasechangelog",
    "databasechangeloglock",
    "_prisma_migrations",
    "schema_version",
];
