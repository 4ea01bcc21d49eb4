//! Plans: a migration, checked against the live schema and the engine's knowledge, turned into ordered
//! steps. Building a plan runs nothing; a plan is data that can be printed, stored, diffed and snapshot.

mod build;
mod render;
mod statement;
mod steps;

pub use build::{Decided, DefaultKind, FillPlan, PlanInput, Volatility, classify_default, decide};
pub use render::render_text;
pub use statement::{PLAN_FORMAT, Run, Statement};
// (format 2: a plan holds several operations, `ops`, and each step names its own.)

use serde::{Deserialize, Serialize};

/// The plan note every engine adds when the deploy-order guard applies.
pub const DEPLOY_ORDER_NOTE: &str = "deploy order: after complete, only application versions that write the new column themselves keep it right; complete waits until no INSERT has left it NULL for --quiet-period";

/// The phases of the lifecycle, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Read-only checks before anything changes.
    Check,
    Expand,
    DualWrite,
    Backfill,
    Contract,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Check => "check",
            Phase::Expand => "expand",
            Phase::DualWrite => "dual-write",
            Phase::Backfill => "backfill",
            Phase::Contract => "contract",
        }
    }

    /// Phases `start` drives; `complete` drives the rest.
    pub fn belongs_to_start(self) -> bool {
        self <= Phase::Backfill
    }
}

/// How much of the table a step touches while it holds its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cost {
    /// Nothing but the catalog: constant time whatever the table's size.
    CatalogOnly,
    /// Reads every row (to verify or build), rewriting none.
    Scan,
    /// Writes rows, in short batches that each hold the lock briefly.
    Batched,
    /// Rewrites every row of the table in one go.
    Rewrite,
    /// Touches no table data (waits, counts).
    None,
}

impl Cost {
    pub fn label(self) -> &'static str {
        match self {
            Cost::CatalogOnly => "catalog-only",
            Cost::Scan => "scan",
            Cost::Batched => "batched",
            Cost::Rewrite => "rewrite",
            Cost::None => "no table access",
        }
    }
}

/// What a step locks, in the engine's own terms, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockLevel {
    /// The lock's name in the engine (e.g. "write lock (whole database)", "none").
    pub mode: String,
    /// How long it is held, in words ("a few milliseconds", "one pass over the table", …).
    pub held: String,
    /// Does it block application writes while held?
    pub blocks_writes: bool,
    /// Does it block application reads while held?
    pub blocks_reads: bool,
}

/// What the executor does for a step. The SQL in [`Step::sql`] is what it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// Count rows whose fill value is NULL; refuse if any (a NOT NULL column could never complete).
    NullPreflight,
    /// Run the SQL under the lock guard, atomically with recording the step as done where the engine allows.
    Ddl,
    /// Fill existing rows in keyset batches.
    Backfill,
    /// Deploy-order guard: watch the old-writer counter over the quiet period; refuse while it moves.
    QuietPeriod,
    /// Re-fill rows still NULL (a NOT NULL column), then refuse if any remain.
    NullSweep,
    /// Verify the new column's references (existing rows).
    ForeignKeyCheck,
    /// The last step: its SQL runs in one transaction that also marks the migration completed.
    Finish,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The operation it belongs to: an index into [`Plan::ops`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub op: usize,
    pub phase: Phase,
    pub action: Action,
    /// One line: what the step does.
    pub summary: String,
    /// The exact statements it runs, in order, each saying how it runs (for batched steps: one
    /// batch's statements, with placeholders).
    pub sql: Vec<Statement>,
    pub lock: LockLevel,
    pub cost: Cost,
    /// Why the step exists, and why this way.
    pub reason: String,
    /// Statements that undo the step on rollback (run in reverse step order); empty when nothing to undo.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undo: Vec<Statement>,
    /// The cost of the undo (dropping a SQLite column rewrites the table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo_cost: Option<Cost>,
}

/// The whole plan for one migration on one database: its operations' steps in one lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_FORMAT`] when this zerodown wrote it; older formats are refused, never guessed at.
    #[serde(default)]
    pub format: u32,
    pub migration: String,
    /// Engine and version, e.g. "SQLite 3.54.1".
    pub engine: String,
    /// True when every operation is one catalog-only statement: `start` completes the migration.
    pub single_step: bool,
    /// Facts and warnings the user should read before starting (journal mode, busy timeouts, …).
    pub notes: Vec<String>,
    /// The operations, in the migration's order; each step names its own by index.
    pub ops: Vec<OpPlan>,
    pub steps: Vec<Step>,
}

/// What one operation is about: its table, its column (or index), and what the executors of its
/// data steps need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpPlan {
    /// The operation's kind, as the migration file writes it (`add_column`, `create_index`, …).
    pub kind: String,
    /// The table's schema, where the engine has schemas (PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub table: String,
    /// The column it adds or changes; for an index, the index's name.
    pub column: String,
    /// How a new column is filled, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill: Option<FillPlan>,
    /// Names of zerodown's objects: triggers, constraints, indexes, counter key.
    pub objects: Objects,
}

/// Names of what zerodown creates, so rollback and hygiene checks know them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Objects {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_index: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Key of the old-writer counter, when the deploy-order guard applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_counter: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Plan {
    /// The operation step `index` belongs to.
    pub fn op_of(&self, index: usize) -> &OpPlan {
        &self.ops[self.steps[index].op]
    }

    /// The one operation whose new column is backfilled, if any: a migration holds at most one
    /// (the state row keeps one backfill cursor).
    pub fn backfilled(&self) -> Option<&OpPlan> {
        self.ops.iter().find(|o| o.fill.is_some())
    }

    /// The columns the migration adds, quoted for messages: "`tier` and `plan`"; `None` when it
    /// adds none.
    pub fn added_columns(&self) -> Option<String> {
        let cols: Vec<String> = self
            .ops
            .iter()
            .filter(|o| o.kind == "add_column")
            .map(|o| format!("`{}`", o.column))
            .collect();
        (!cols.is_empty()).then(|| cols.join(" and "))
    }

    /// Index of the first step that `complete` drives (== steps.len() when there is none).
    pub fn first_complete_step(&self) -> usize {
        self.steps
            .iter()
            .position(|s| !s.phase.belongs_to_start())
            .unwrap_or(self.steps.len())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan always serializes")
    }
}

/// A short stable name for a generated object: `zd_<purpose>_<hash>`, within every engine's length limit.
pub fn object_name(purpose: &str, table: &str, column: &str) -> String {
    // FNV-1a: stable across Rust versions, unlike std's hasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in table.bytes().chain([0]).chain(column.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("zd_{purpose}_{:012x}", h & 0xffff_ffff_ffff)
}
