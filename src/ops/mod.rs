//! Operations: each kind of change a migration may hold is one file here, implementing [`Op`]. An
//! operation decides its own steps and their undo from the live schema and the engine's facts; the
//! engine supplies catalog reads, dialect fragments and executors, never whole plans. This module
//! then merges the operations of a migration into one plan that runs as one lifecycle: every check,
//! every expand, every dual-write, the backfill, and on `complete` every contract.

mod add_check;
mod add_column;
mod add_foreign_key;
mod create_index;
mod defaults;
mod set_not_null;

use crate::engine::dialect::{Dialect, Fragment, LiveTable};
use crate::engine::{Column, Engine};
use crate::error::{Error, Result};
use crate::plan::{Action, OpPlan, PLAN_FORMAT, Phase, Plan, Step};
use crate::spec::{Migration, Operation};

/// Planning one migration: the engine, and the columns its earlier operations add, which later
/// operations may name (a CHECK on a new column, say) though the live table has none of them yet.
pub struct Planning<'a> {
    pub engine: &'a mut dyn Engine,
    added: Vec<(String, Column)>,
}

impl Planning<'_> {
    /// The table as it will be when the operation runs: live, plus the columns earlier operations
    /// of the migration add to it.
    pub fn live_table(&mut self, table: &str) -> Result<LiveTable> {
        let mut live = self.engine.live_table(table)?;
        for (t, c) in &self.added {
            if t.eq_ignore_ascii_case(&live.schema.name) && live.schema.column(&c.name).is_none() {
                live.schema.columns.push(c.clone());
            }
        }
        Ok(live)
    }

    pub fn dialect(&mut self) -> Result<Box<dyn Dialect>> {
        self.engine.dialect()
    }

    /// Records a column an operation adds, for the operations after it.
    pub fn adds(&mut self, table: &str, column: Column) {
        self.added.push((table.to_string(), column));
    }
}

/// One operation kind.
pub trait Op {
    /// The operation's own plan against the schema as it will be, validated without changing
    /// anything: its steps (each with `op` 0) and their undo.
    fn plan(&self, migration: &str, planning: &mut Planning) -> Result<Plan>;

    /// Whether, in a migration that waits for `complete`, its steps belong there (they take away
    /// something old application versions rely on) rather than to `start`.
    fn at_contract(&self) -> bool {
        false
    }
}

/// The [`Op`] that plans `operation`.
fn op_for(operation: &Operation) -> &dyn Op {
    match operation {
        Operation::AddColumn(a) => a,
        Operation::CreateIndex(c) => c,
        Operation::SetDefault(s) => s,
        Operation::DropDefault(d) => d,
        Operation::AddCheck(c) => c,
        Operation::AddForeignKey(f) => f,
        Operation::SetNotNull(s) => s,
    }
}

/// The plan of an operation whose steps all run at `start` (which then completes it, unless other
/// operations of the migration wait for `complete`): one step per engine fragment, in order.
fn started_plan(
    migration: &str,
    kind: &str,
    dialect: &dyn Dialect,
    table: &LiveTable,
    subject: &str,
    fragments: Vec<(String, Fragment)>,
) -> Plan {
    Plan {
        format: PLAN_FORMAT,
        migration: migration.to_string(),
        engine: dialect.label(),
        single_step: true,
        notes: Vec::new(),
        ops: vec![OpPlan {
            kind: kind.into(),
            schema: table.namespace.clone(),
            table: table.schema.name.clone(),
            column: subject.to_string(),
            fill: None,
            objects: Default::default(),
        }],
        steps: fragments
            .into_iter()
            .map(|(summary, f)| Step {
                op: 0,
                phase: Phase::Expand,
                action: Action::Ddl,
                summary,
                sql: f.sql,
                lock: f.lock,
                cost: f.cost,
                reason: f.reason,
                undo: f.undo,
                undo_cost: f.undo_cost,
            })
            .collect(),
    }
}

/// Plans a whole migration: each operation against the live schema, then one lifecycle.
pub fn plan(engine: &mut dyn Engine, migration: &Migration) -> Result<Plan> {
    if migration.operations.is_empty() {
        return Err(Error::Spec(crate::spec::SpecError::Invalid(format!(
            "migration `{}` holds no operation",
            migration.name
        ))));
    }
    let many = migration.operations.len() > 1;
    let mut parts = Vec::new();
    let mut planning = Planning {
        engine,
        added: Vec::new(),
    };
    for (i, operation) in migration.operations.iter().enumerate() {
        let part = op_for(operation)
            .plan(&migration.name, &mut planning)
            .map_err(|e| match e {
                // Which operation a refusal is about, when there are several.
                Error::Refused(m) if many => Error::Refused(format!(
                    "operation {} ({}): {m}",
                    i + 1,
                    operation.describe()
                )),
                other => other,
            })?;
        parts.push((part, op_for(operation).at_contract()));
    }
    merge(&migration.name, parts)
}

/// One plan from the operations' own: steps in phase order (stable, so each operation's steps keep
/// their order and operations keep the migration's), each naming its operation.
///
/// `parts` pairs each operation's plan with [`Op::at_contract`]: when the migration waits for
/// `complete`, such an operation's steps move there.
pub fn merge(name: &str, mut parts: Vec<(Plan, bool)>) -> Result<Plan> {
    if parts.len() == 1 {
        return Ok(parts.remove(0).0);
    }
    let filled = parts
        .iter()
        .filter(|(p, _)| p.backfilled().is_some())
        .count();
    if filled > 1 {
        return Err(Error::Refused(format!(
            "migration `{name}` has {filled} operations that fill existing rows; zerodown backfills one column per migration so far: put each filled column in a migration of its own — nothing was changed"
        )));
    }
    let mut plan = Plan {
        format: PLAN_FORMAT,
        migration: name.to_string(),
        engine: parts[0].0.engine.clone(),
        single_step: parts.iter().all(|(p, _)| p.single_step),
        notes: Vec::new(),
        ops: Vec::new(),
        steps: Vec::new(),
    };
    let waits = !plan.single_step;
    for (part, at_contract) in parts {
        let base = plan.ops.len();
        for note in part.notes {
            if !plan.notes.contains(&note) {
                plan.notes.push(note);
            }
        }
        plan.ops.extend(part.ops);
        plan.steps.extend(part.steps.into_iter().map(|mut s| {
            s.op += base;
            if waits && at_contract {
                s.phase = Phase::Contract;
            }
            s
        }));
    }
    plan.steps.sort_by_key(|s| s.phase);
    // One step marks the migration completed: the last. An earlier operation's final step runs as
    // an ordinary step (its statements run and are recorded in one transaction all the same).
    let last = plan.steps.len() - 1;
    for s in &mut plan.steps[..last] {
        if s.action == Action::Finish {
            s.action = Action::Ddl;
        }
    }
    Ok(plan)
}
