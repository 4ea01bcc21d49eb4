//! Steps that mean the same on every engine: only their SQL, lock and cost are the engine's. One
//! wording here keeps the plans of the three engines telling the same story.

use super::{Action, Cost, LockLevel, Phase, Statement, Step};

impl LockLevel {
    pub fn new(mode: &str, held: &str, blocks_writes: bool, blocks_reads: bool) -> LockLevel {
        LockLevel {
            mode: mode.into(),
            held: held.into(),
            blocks_writes,
            blocks_reads,
        }
    }

    /// A step that only reads.
    pub fn none() -> LockLevel {
        LockLevel::new("none (reads only)", "-", false, false)
    }
}

impl Step {
    /// A step with nothing to undo.
    fn plain(
        phase: Phase,
        action: Action,
        summary: String,
        sql: Vec<String>,
        lock: LockLevel,
        cost: Cost,
        reason: &str,
    ) -> Step {
        Step {
            op: 0,
            phase,
            action,
            summary,
            sql: Statement::in_step_all(sql),
            lock,
            cost,
            reason: reason.into(),
            undo: vec![],
            undo_cost: None,
        }
    }

    /// Before anything changes: count the rows whose fill value would be NULL (`table` quoted).
    pub fn null_preflight(table: &str, expr: &str, lock: LockLevel) -> Step {
        Step::plain(
            Phase::Check,
            Action::NullPreflight,
            "count existing rows whose value would be NULL".into(),
            vec![format!(
                "SELECT count(*) FROM {table} WHERE ({expr}) IS NULL"
            )],
            lock,
            Cost::Scan,
            "the column is NOT NULL: if the expression yields NULL for some rows, complete could never succeed, so start refuses before changing anything",
        )
    }

    /// The keyset backfill; `why` says what its short transactions spare the application.
    pub fn backfill(summary: String, sql: Vec<String>, lock: LockLevel, why: &str) -> Step {
        Step::plain(
            Phase::Backfill,
            Action::Backfill,
            summary,
            sql,
            lock,
            Cost::Batched,
            &format!(
                "{why}; the cursor is saved with each batch, so a crash resumes where it stopped; only rows still NULL are written, so values set by writers are kept"
            ),
        )
    }

    /// The deploy-order guard: `sql` reads the counter of INSERTs that left the column NULL.
    pub fn quiet_period(sql: String) -> Step {
        Step::plain(
            Phase::Contract,
            Action::QuietPeriod,
            "wait until no application INSERT leaves the column NULL (--quiet-period)".into(),
            vec![sql],
            LockLevel::none(),
            Cost::None,
            "once the triggers are gone only writers that set the column keep it right; an INSERT that left it NULL shows an old application version is still running",
        )
    }

    /// The last sweep for NULLs before NOT NULL goes on (`table`, `column` quoted).
    pub fn null_sweep(table: &str, column: &str, lock: LockLevel, cost: Cost) -> Step {
        Step::plain(
            Phase::Contract,
            Action::NullSweep,
            "fill rows still NULL, then count them".into(),
            vec![format!(
                "SELECT count(*) FROM {table} WHERE {column} IS NULL"
            )],
            lock,
            cost,
            "a last sweep before NOT NULL goes on; complete refuses, with the count, if the expression still yields NULL",
        )
    }
}
