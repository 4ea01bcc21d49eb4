//! What operations ask of an engine besides its catalog: for each statement kind, the engine's SQL
//! on this version, and the facts about it (what it locks, for how long, what it costs), each fact
//! a row of the engine's table naming the real-engine test that proves it.

use super::{Column, TableSchema};
use crate::error::{Error, Result};
use crate::plan::{Cost, LockLevel, Statement};

/// A statement kind an operation may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ALTER COLUMN … SET DEFAULT` (or the engine's equivalent).
    SetDefault,
    /// `ALTER COLUMN … DROP DEFAULT`.
    DropDefault,
    /// A secondary index, plain or unique, built as online as the engine allows.
    CreateIndex,
    /// Adding a CHECK constraint to an existing table (PostgreSQL: NOT VALID).
    AddCheck,
    /// `VALIDATE CONSTRAINT`: existing rows checked against a NOT VALID constraint.
    ValidateConstraint,
    /// Adding a FOREIGN KEY to an existing table without checking existing rows (PostgreSQL NOT
    /// VALID; MariaDB foreign_key_checks=0; SQLite refused).
    AddForeignKey,
    /// Existing rows checked against a foreign key added unchecked (PostgreSQL VALIDATE; MariaDB
    /// zerodown's batched orphan count).
    ValidateForeignKey,
    /// Making an existing column NOT NULL once its rows are known to hold no NULL (PostgreSQL:
    /// SET NOT NULL over a validated CHECK; MariaDB: MODIFY INPLACE; SQLite: ALTER COLUMN).
    SetNotNull,
    /// PostgreSQL 18: `ADD CONSTRAINT … NOT NULL … NOT VALID`, validated by the next step.
    AddNotNullNotValid,
}

impl Kind {
    /// Setting a default (`true`) or dropping it.
    pub fn of_default(set: bool) -> Kind {
        if set {
            Kind::SetDefault
        } else {
            Kind::DropDefault
        }
    }
}

/// One row of an engine's knowledge.
#[derive(Debug, Clone, Copy)]
pub struct Fact {
    pub kind: Kind,
    /// The versions the row holds for, as the engine numbers them ("13–18", "10.11"); MySQL 8 rows
    /// say "documented, not run".
    pub versions: &'static str,
    /// The lock in the engine's own terms.
    pub lock: &'static str,
    /// How long it is held.
    pub held: &'static str,
    pub blocks_writes: bool,
    pub blocks_reads: bool,
    pub cost: Cost,
    /// Why the statement is safe to run this way.
    pub reason: &'static str,
    /// `tests/<file>.rs::<test>`: the test that shows it on the real server.
    pub proven_by: &'static str,
}

impl Fact {
    pub fn lock_level(&self) -> LockLevel {
        LockLevel::new(self.lock, self.held, self.blocks_writes, self.blocks_reads)
    }
}

/// The fact for `kind` in an engine's table: a missing row is a bug, never a guess.
pub fn fact(table: &[Fact], kind: Kind) -> Result<&Fact> {
    table.iter().find(|f| f.kind == kind).ok_or_else(|| {
        Error::db(
            "planning",
            format!("the engine has no fact for {kind:?}: an internal error, nothing was changed"),
        )
    })
}

/// One step's worth of an operation, as the engine writes it.
#[derive(Debug, Clone)]
pub struct Fragment {
    pub sql: Vec<Statement>,
    pub lock: LockLevel,
    pub cost: Cost,
    pub reason: String,
    pub undo: Vec<Statement>,
    pub undo_cost: Option<Cost>,
}

/// A foreign key's steps as the engine writes them: adding it (and validating it, where the
/// engine validates), then, where the engine cannot validate, zerodown's own count of existing
/// rows without a parent (run as a check that refuses with the count).
#[derive(Debug, Clone)]
pub struct ForeignKeySteps {
    pub steps: Vec<(String, Fragment)>,
    /// A single `SELECT count(*) … AS zd_c WHERE …` the executor runs in keyset batches.
    pub orphan_count: Option<(String, Fragment)>,
}

/// The two sides of a foreign key, as operations resolved them against the live schema.
pub struct ForeignKeyDef<'a> {
    pub name: &'a str,
    pub table: &'a LiveTable,
    pub columns: Vec<&'a Column>,
    pub parent: &'a LiveTable,
    pub parent_columns: Vec<&'a Column>,
    pub on_delete: Option<crate::spec::OnDelete>,
}

/// A table as operations see it: its schema (PostgreSQL's namespace) and its columns.
#[derive(Debug, Clone)]
pub struct LiveTable {
    pub namespace: Option<String>,
    pub schema: TableSchema,
    /// The names of the table's indexes.
    pub indexes: Vec<String>,
    /// Other names a new index on the table may not take: PostgreSQL's schema and SQLite's
    /// database keep tables and indexes in one namespace; MySQL's index names are per table (none).
    pub other_names: Vec<String>,
    /// MySQL/MariaDB only (empty elsewhere): what a MODIFY COLUMN and a foreign key need to know
    /// of the table, read from the server.
    pub my: Option<MyTable>,
}

/// What MySQL/MariaDB's catalog says of a table beyond its columns: a MODIFY COLUMN must restate
/// every attribute of the column or lose it, and a foreign key needs an index on its columns.
#[derive(Debug, Clone, Default)]
pub struct MyTable {
    pub restated: Vec<Restated>,
    /// Each index's columns, in order.
    pub index_columns: Vec<Vec<String>>,
}

/// A column restated as the server renders it.
#[derive(Debug, Clone)]
pub struct Restated {
    pub column: String,
    /// The type with its character set and collation (`varchar(20) CHARACTER SET … COLLATE …`).
    pub data_type: String,
    /// The DEFAULT, ON UPDATE and COMMENT clauses, each with a leading space.
    pub attributes: String,
    /// Why the column cannot be restated safely (a generated or invisible column), if so.
    pub refused: Option<String>,
}

impl LiveTable {
    /// The named column, or a refusal naming the table's columns.
    pub fn column(&self, name: &str) -> Result<&Column> {
        self.schema.column(name).ok_or_else(|| {
            Error::Refused(format!(
                "column `{name}` not found in `{}`; its columns are: {} — nothing was changed",
                self.schema.name,
                self.schema
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

/// An engine's statements for operations, on the version it is connected to.
pub trait Dialect {
    /// Engine and version, as plans print it.
    fn label(&self) -> String;
    /// The dialect user expressions are parsed in.
    fn spec_dialect(&self) -> crate::spec::Dialect;
    /// Sets `column`'s default to `default` (an expression already parsed and rendered; `literal`
    /// when it is one value), or drops it (`None`). The undo restores the default it had.
    fn column_default(
        &self,
        table: &LiveTable,
        column: &Column,
        default: Option<(&str, bool)>,
    ) -> Result<Fragment>;
    /// Builds index `name` (kept as written, quoted) on `columns` of `table`, as online as the
    /// engine allows; the undo drops it.
    fn create_index(
        &self,
        table: &LiveTable,
        name: &str,
        columns: &[&Column],
        unique: bool,
    ) -> Result<Fragment>;

    /// Adding CHECK `name` (its body already parsed and rendered) to an existing table: the steps
    /// in order, each with its one-line summary.
    fn add_check(
        &self,
        table: &LiveTable,
        name: &str,
        check: &str,
    ) -> Result<Vec<(String, Fragment)>>;

    /// Adding foreign key `fk` to an existing table, new writes checked at once and existing
    /// rows by a pass that blocks no application query; the undo drops it.
    fn add_foreign_key(&self, fk: &ForeignKeyDef) -> Result<ForeignKeySteps>;

    /// Making `column` of `table` NOT NULL (its rows already counted free of NULL): the steps in
    /// order, each with its one-line summary.
    fn set_not_null(&self, table: &LiveTable, column: &Column) -> Result<Vec<(String, Fragment)>>;
}

#[cfg(test)]
mod tests {
    use super::Fact;

    /// Every fact names a test that exists: `tests/<file>.rs::<function>`.
    #[test]
    fn every_fact_names_an_existing_test() {
        let tables: [(&str, &[Fact]); 3] = [
            ("postgres", crate::engine::postgres::facts::FACTS),
            ("mysql", crate::engine::mysql::facts::FACTS),
            ("sqlite", crate::engine::sqlite::facts::FACTS),
        ];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for (engine, facts) in tables {
            for f in facts {
                if let Err(e) = crate::analysis::facts::named_test_exists(root, f.proven_by) {
                    panic!("{engine} {:?}: {e}", f.kind);
                }
            }
        }
    }
}
