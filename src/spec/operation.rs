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
    AddForeignKey(AddForeignKey),
    SetNotNull(SetNotNull),
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
            Operation::AddForeignKey(_) => "add_foreign_key",
            Operation::SetNotNull(_) => "set_not_null",
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
            Operation::AddForeignKey(f) => &f.table,
            Operation::SetNotNull(s) => &s.table,
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
            Operation::AddForeignKey(f) => format!(
                "add foreign key {} on {}({}) to {}({})",
                f.name,
                f.table,
                f.columns.join(", "),
                f.references_table,
                f.references_columns.join(", ")
            ),
            Operation::SetNotNull(s) => format!("set {}.{} NOT NULL", s.table, s.column),
        }
    }
}

/// A FOREIGN KEY on existing columns of an existing table: new writes are checked at once,
/// existing rows by a pass that blocks no application query where the engine has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddForeignKey {
    pub table: String,
    /// The constraint's name, kept as written: ORMs track their constraints by name.
    pub name: String,
    pub columns: Vec<String>,
    pub references_table: String,
    /// The referenced columns, one per column of `columns`, in order.
    pub references_columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<OnDelete>,
}

/// What deleting a referenced row does to the rows that reference it: the four actions ORMs
/// write, parsed from the file and rendered by zerodown, never spliced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnDelete {
    #[serde(rename = "cascade")]
    Cascade,
    #[serde(rename = "set null")]
    SetNull,
    #[serde(rename = "restrict")]
    Restrict,
    #[serde(rename = "no action")]
    NoAction,
}

impl OnDelete {
    /// The action as a file writes it, in any case, with spaces or underscores between words.
    pub fn parse(text: &str) -> Option<OnDelete> {
        let words: Vec<String> = text
            .split(|c: char| c.is_whitespace() || c == '_')
            .filter(|w| !w.is_empty())
            .map(|w| w.to_ascii_lowercase())
            .collect();
        match words.join(" ").as_str() {
            "cascade" => Some(OnDelete::Cascade),
            "set null" => Some(OnDelete::SetNull),
            "restrict" => Some(OnDelete::Restrict),
            "no action" => Some(OnDelete::NoAction),
            _ => None,
        }
    }

    /// The clause's SQL, the same on every engine.
    pub fn sql(self) -> &'static str {
        match self {
            OnDelete::Cascade => "ON DELETE CASCADE",
            OnDelete::SetNull => "ON DELETE SET NULL",
            OnDelete::Restrict => "ON DELETE RESTRICT",
            OnDelete::NoAction => "ON DELETE NO ACTION",
        }
    }
}

/// Makes an existing column NOT NULL: refused while any row holds NULL there (backfill them
/// first); existing rows verified by a pass that blocks no application query where the engine
/// has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetNotNull {
    pub table: String,
    pub column: String,
}
