//! What each kind of statement costs on each engine and version: the lock it takes (in the engine's
//! own terms), whether readers or writers wait, and whether the engine only edits its catalog, reads
//! every row, or writes the table anew. The rows are data ([`facts_postgres`](super::facts_postgres),
//! [`facts_mysql`](super::facts_mysql), [`facts_sqlite`](super::facts_sqlite)); each names the
//! real-engine test that proves it, or says it is not proven yet.

use super::{Action, Engine, Kind, Version, Volatility};

/// How much of the table the engine touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cost {
    /// Only the catalog changes: the lock is held for moments (once granted).
    CatalogOnly,
    /// Every row is read (a validation or an index build) while the lock is held.
    Scan,
    /// The table is written anew (rewrite, copy or rebuild) while the lock is held.
    Rewrite,
    /// The engine refuses it on a table that has rows.
    Fails,
}

impl Cost {
    pub fn describe(self) -> &'static str {
        match self {
            Cost::CatalogOnly => "catalog only",
            Cost::Scan => "reads every row",
            Cost::Rewrite => "rewrites the table",
            Cost::Fails => "fails on a table with rows",
        }
    }
}

/// What backs a row's claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    /// `tests/<file>.rs::<function>`, run on the real engine.
    Test(&'static str),
    /// From the engine's documentation, for an engine the suite does not run (MySQL 8).
    DocumentedNotRun(&'static str),
    NotYetProven,
}

impl Proof {
    pub fn describe(self) -> String {
        match self {
            Proof::Test(t) => format!("proven by {t}"),
            Proof::DocumentedNotRun(d) => format!("documented, not run ({d})"),
            Proof::NotYetProven => "not yet proven".to_string(),
        }
    }
}

/// One row: a statement kind in one shape, on one engine, for a range of versions.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Fact {
    /// [`Kind::tag`].
    pub kind: &'static str,
    /// The variant of the kind (see [`shape`]); `"*"` for any.
    pub shape: &'static str,
    pub engine: Engine,
    /// From this version (inclusive) …
    pub since: Version,
    /// … up to this one (exclusive), if the fact changed later.
    pub until: Option<Version>,
    pub lock: &'static str,
    pub blocks_reads: bool,
    pub blocks_writes: bool,
    pub cost: Cost,
    pub proof: Proof,
}

impl Fact {
    /// "ACCESS EXCLUSIVE, blocks reads and writes, rewrites the table".
    pub fn summary(&self) -> String {
        let blocks = match (self.blocks_reads, self.blocks_writes) {
            (true, true) => "blocks reads and writes",
            (false, true) => "blocks writes",
            (true, false) => "blocks reads",
            (false, false) => "blocks neither reads nor writes",
        };
        format!("{}; {blocks}; {}", self.lock, self.cost.describe())
    }
}

/// Every row of the table, all engines.
pub fn all() -> impl Iterator<Item = &'static Fact> {
    super::facts_postgres::FACTS
        .iter()
        .chain(super::facts_mysql::FACTS)
        .chain(super::facts_sqlite::FACTS)
}

/// The variant of an action that decides its cost: e.g. an `add_column` is `nullable`,
/// `constant_default`, `stable_default`, `volatile_default`, `not_null_no_default`,
/// `generated_stored` or `serial`; constraints are `not_valid` or `validated`.
pub fn shape(kind: &Kind) -> &'static str {
    match kind {
        Kind::AddColumn {
            not_null,
            default,
            generated_stored,
            serial,
            ..
        } => {
            if *generated_stored {
                "generated_stored"
            } else if *serial {
                "serial"
            } else {
                match default.as_ref().map(|d| d.volatility) {
                    Some(Volatility::Constant) => "constant_default",
                    Some(Volatility::Stable) => "stable_default",
                    Some(Volatility::Volatile) => "volatile_default",
                    None if *not_null => "not_null_no_default",
                    None => "nullable",
                }
            }
        }
        Kind::CreateIndex { concurrently, .. }
        | Kind::DropIndex { concurrently, .. }
        | Kind::Reindex { concurrently }
        | Kind::DetachPartition { concurrently } => {
            if *concurrently {
                "concurrently"
            } else {
                "plain"
            }
        }
        Kind::AddForeignKey { not_valid, .. } | Kind::AddCheck { not_valid, .. } => {
            if *not_valid {
                "not_valid"
            } else {
                "validated"
            }
        }
        Kind::AddUnique { using_index, .. } | Kind::AddPrimaryKey { using_index, .. } => {
            if *using_index {
                "using_index"
            } else {
                "build"
            }
        }
        Kind::Data { whole_table, .. } => {
            if *whole_table {
                "whole_table"
            } else {
                "rows"
            }
        }
        _ => "*",
    }
}

/// The fact for an action on an engine and version, if the table has one.
pub fn lookup(action: &Action, engine: Engine, version: Version) -> Option<&'static Fact> {
    let tag = action.kind.tag();
    let shape = shape(&action.kind);
    all().find(|f| {
        f.engine == engine
            && f.kind == tag
            && (f.shape == "*" || f.shape == shape)
            && f.since <= version
            && f.until.is_none_or(|u| version < u)
    })
}

/// Checks that `tests/<file>.rs::<function>` names a function that exists under `root` (the crate's
/// directory): the one check behind every "each fact names its proving test" test.
pub fn named_test_exists(root: &std::path::Path, proof: &str) -> Result<(), String> {
    let (file, function) = proof
        .split_once("::")
        .ok_or_else(|| format!("{proof}: write it as tests/<file>.rs::<function>"))?;
    let text = std::fs::read_to_string(root.join(file)).map_err(|e| format!("{proof}: {e}"))?;
    if text.contains(&format!("fn {function}(")) {
        Ok(())
    } else {
        Err(format!("{proof}: no function `{function}` in {file}"))
    }
}
