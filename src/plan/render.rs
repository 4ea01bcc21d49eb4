//! A plan as text for people: numbered steps with SQL, lock, cost and reason, then the rollback path.

use super::{Cost, Phase, Plan, Run, Statement};
use std::fmt::Write;

pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    match plan.ops.as_slice() {
        [op] if op.kind == "add_column" => {
            let _ = writeln!(
                out,
                "Plan for `{}`: add column `{}` to `{}` on {}",
                plan.migration, op.column, op.table, plan.engine
            );
        }
        ops => {
            let _ = writeln!(out, "Plan for `{}` on {}:", plan.migration, plan.engine);
            for (i, op) in ops.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "  {}. {} `{}` on `{}`",
                    i + 1,
                    op.kind.replace('_', " "),
                    op.column,
                    op.table
                );
            }
        }
    }
    if plan.single_step {
        let _ = writeln!(
            out,
            "{}: no backfill, no triggers, nothing to complete.",
            if plan.steps.len() == 1 && plan.steps[0].cost == Cost::CatalogOnly {
                "One catalog-only statement"
            } else if plan.steps.len() == 1 {
                "One statement run by `start`"
            } else {
                "Statements run by `start` alone"
            }
        );
    }
    for n in &plan.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    let first_complete = plan.first_complete_step();
    for (i, s) in plan.steps.iter().enumerate() {
        if i == first_complete && i > 0 {
            let _ = writeln!(
                out,
                "\n-- `zerodown start` stops here. Deploy the application version that writes {}, then `zerodown complete {}` --",
                plan.added_columns()
                    .unwrap_or_else(|| "the new schema".into()),
                plan.migration
            );
        }
        let _ = writeln!(out, "\n{:>2}. [{}] {}", i + 1, s.phase.label(), s.summary);
        for sql in &s.sql {
            for (j, line) in sql.sql.lines().enumerate() {
                let _ = writeln!(
                    out,
                    "      {}{}",
                    if j == 0 { "" } else { "  " },
                    line.trim()
                );
            }
            if let Run::InstantOr { fallback } = &sql.run {
                let _ = writeln!(out, "      if the server refuses INSTANT: {fallback}");
            }
        }
        let blocks = match (s.lock.blocks_writes, s.lock.blocks_reads) {
            (true, true) => "blocks reads and writes",
            (true, false) => "blocks writes, not reads",
            (false, _) => "blocks nothing",
        };
        let _ = writeln!(
            out,
            "      lock: {} — {}; held {}",
            s.lock.mode, blocks, s.lock.held
        );
        let _ = writeln!(out, "      cost: {}", s.cost.label());
        let _ = writeln!(out, "      why:  {}", s.reason);
    }
    let undo: Vec<(usize, &super::Step)> = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.undo.is_empty())
        .rev()
        .collect();
    if !undo.is_empty() && !plan.single_step {
        let _ = writeln!(
            out,
            "\nRollback (`zerodown rollback {}`, any time before complete finishes) undoes the steps done, newest first:",
            plan.migration
        );
        for (i, s) in undo {
            let cost = s.undo_cost.unwrap_or(Cost::CatalogOnly);
            let warn = if cost == Cost::Rewrite {
                " — rewrites the table"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  undo {}: {} ({}{warn})",
                i + 1,
                s.undo.iter().map(undo_text).collect::<Vec<_>>().join("; "),
                cost.label()
            );
        }
    }
    let scans: Vec<String> = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.cost == Cost::Scan && s.lock.blocks_writes && s.phase != Phase::Check)
        .map(|(i, s)| format!("{} ({})", i + 1, s.summary))
        .collect();
    if !scans.is_empty() {
        let _ = writeln!(
            out,
            "\nSteps that hold the write lock for a whole pass over the table: {}",
            scans.join(", ")
        );
    }
    out
}

/// An undo statement on one line, with its fallback when it has one.
fn undo_text(s: &Statement) -> String {
    match &s.run {
        Run::InstantOr { fallback } => {
            format!("{} (if the server refuses INSTANT: {fallback})", s.sql)
        }
        _ => s.sql.clone(),
    }
}
