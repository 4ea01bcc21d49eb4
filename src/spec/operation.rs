//! The operation kinds a migration may hold, as data. How each one runs is decided in `crate::ops`.

use super::{AddColumn, is_false};
use serde::{Deserialize, Serialize};

/// One change of a migration. A migration holds several, possibly on several tables, run in one
/// lifecycle: every expand, every dual-write, the backfills, and on `complete` every contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    AddColumn(AddColumn),
    CreateIndex(CreateIndex),
    SetDefault(SetDefault),
    DropDefault(DropDefault),
    AddCheck(AddCheck),
}

/// An index on existing columns of an existing table, built without blocking writes where the
/// engine can.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIndex {
    pub table: String,
    /// Kept as written: ORMs track their indexes by name.
    pub name: String,
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
}

/// A new default for an existing column: what later INSERTs that leave it out get. Existing rows
/// keep their values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetDefault {
    pub table: String,
    pub column: String,
    /// SQL expression in the target dialect.
    pub default: String,
}

/// A CHECK constraint on existing columns: new writes are checked at once, existing rows by a scan
/// that blocks no application query where the engine has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCheck {
    pub table: String,
    /// The constraint's name, kept as written.
    pub name: String,
    /// SQL boolean expression over the row's columns (the body of `CHECK (…)`).
    pub check: String,
}

/// Removes an existing column's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropDefault {
    pub table: String,
    pub column: String,
}

impl Operation {
    /// The kind's name as the TOML file writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::AddColumn(_) => "add_column",
            Operation::CreateIndex(_) => "create_index",
            Operation::SetDefault(_) => "set_default",
            Operation::DropDefault(_) => "drop_default",
            Operation::AddCheck(_) => "add_check",
        }
    }

    /// The table it changes.
    pub fn table(&self) -> &str {
        match self {
            Operation::AddColumn(a) => &a.table,
            Operation::CreateIndex(c) => &c.table,
            Operation::SetDefault(s) => &s.table,
            Operation::DropDefault(d) => &d.table,
            Operation::AddCheck(c) => &c.table,
        }
    }

    /// What it does, in a few words: "add column users.tier".
    pub fn describe(&self) -> String {
        match self {
            Operation::AddColumn(a) => format!("add column {}.{}", a.table, a.column),
            Operation::CreateIndex(c) => format!(
                "create {}index {} on {}({})",
                if c.unique { "unique " } else { "" },
                c.name,
                c.table,
                c.columns.join(", ")
            ),
            Operation::SetDefault(s) => format!("set default of {}.{}", s.table, s.column),
            Operation::DropDefault(d) => format!("drop default of {}.{}", d.table, d.column),
            Operation::AddCheck(c) => format!("add check {} on {}", c.name, c.table),
        }
    }
}
