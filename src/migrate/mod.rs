//! `zerodown migrate DIR`: a folder of migrations, as a migration tool lays it out, applied in
//! order at the two points of a deploy pipeline.
//!
//! - **before the deploy** every pending migration is started (expand, dual-write, backfill), in
//!   folder order; one whose plan is a single catalog-only step is completed at once.
//! - **after the deploy** every backfilled migration is completed, in folder order, each behind its
//!   deploy-order guard; the run stops at the first one an old application version still writes.
//!
//! Idempotent: what zerodown's state table shows as started, backfilled or completed is resumed or
//! left alone, and what the tool's own history table records (`history.rs`) is skipped. A migration
//! that touches a column an earlier migration of the folder adds and has not completed is held:
//! before-deploy stops there and says so (the earlier one completes after this deploy; the held one
//! and every later one ship with the next).

pub mod cli;
pub mod history;
pub mod layout;

use crate::engine::{Event, Settings, Status};
use crate::error::{Error, Result};
use crate::spec::{Migration, Operation, SpecError};
use crate::url::DatabaseUrl;
use history::{Recorded, Tool};
use layout::{Entry, Layout, Source};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The pipeline point a run serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Point {
    /// Expand, dual-write and backfill every pending migration.
    BeforeDeploy,
    /// Complete every backfilled migration whose deploy-order guard is quiet.
    AfterDeploy,
    /// Say where each migration stands; change nothing.
    Show,
}

/// What a run does.
#[derive(Debug, Clone)]
pub struct Options {
    /// `None`: detected from the file names (and, where they cannot tell, the database).
    pub layout: Option<Layout>,
    pub point: Point,
    pub settings: Settings,
}

/// What became of one migration of the folder in this run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum Action {
    /// Started (or resumed) and backfilled now; `--after-deploy` completes it.
    Backfilled {
        rows: i64,
    },
    /// Completed in this run.
    Completed,
    AlreadyCompleted,
    /// Backfilled by an earlier run; waiting for `--after-deploy`.
    AlreadyBackfilled,
    /// The tool's history records it and zerodown never ran it: the tool applied it.
    AppliedByTool,
    /// Not started yet: `--before-deploy` starts it.
    Pending,
    /// Started by an earlier run that stopped before its backfill finished: `--before-deploy` resumes it.
    Unfinished,
    /// Not run in this run, and why.
    Held {
        reason: String,
    },
}

/// One migration's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: String,
    pub file: String,
    pub version: Option<String>,
    #[serde(flatten)]
    pub action: Action,
    /// The tool's history table has its row (written by this run or found there).
    pub tool_recorded: Option<bool>,
}

/// What a run did, migration by migration.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub folder: String,
    pub layout: Layout,
    pub point: Point,
    pub migrations: Vec<Outcome>,
    pub notes: Vec<String>,
}

/// Why a run stopped before the end; each has its own exit status (`cli.rs`, README "Exit status").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// The folder or a file in it cannot be read; nothing was changed.
    Input,
    /// A migration was refused (nothing of it changed), or held behind an uncompleted one.
    Refused,
    /// After the deploy: an old application version still writes a derived column.
    OldWriters,
    /// Ctrl-C or a rollback's cancel request; run the same command again to resume.
    Interrupted,
    /// The database failed or could not be reached.
    Failed,
}

/// A run that stopped: what it did before, and why it stopped.
#[derive(Debug)]
pub struct Stopped {
    pub report: Report,
    pub stop: Stop,
    pub error: Error,
}

/// What the caller sees while a run goes on.
pub enum Progress<'a> {
    /// Migration `index` of `total` begins `doing` ("start", "complete").
    Migration {
        index: usize,
        total: usize,
        name: &'a str,
        doing: &'a str,
    },
    /// An event of the migration's own verb.
    Event(Event),
}

fn stop_of(e: &Error) -> Stop {
    match e {
        Error::Spec(SpecError::Invalid(_)) => Stop::Refused,
        Error::Spec(_) | Error::Io(_) => Stop::Input,
        Error::Refused(_) | Error::WrongPhase(_) | Error::UnknownMigration(_) => Stop::Refused,
        Error::Interrupted(_) => Stop::Interrupted,
        _ => Stop::Failed,
    }
}

/// A folder entry loaded as a migration named for it, through `Migration::load` (which reads TOML
/// files and SQL files as the tools write them).
fn load(entry: &Entry, dialect: crate::spec::Dialect) -> Result<Migration> {
    let stem_ok = entry
        .path
        .file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| crate::spec::validate_name(s).is_ok());
    let mut m = match &entry.source {
        Source::File if stem_ok => Migration::load(&entry.path, dialect)?,
        _ => {
            // Loaded from a copy named for the migration: goose's Up section, or a file whose stem is
            // not a valid name (its other characters become `_` in the migration's name).
            let text = match &entry.source {
                Source::Text(t) => t.clone(),
                Source::File => std::fs::read_to_string(&entry.path).map_err(|e| {
                    Error::Io(format!("{}: cannot read it: {e}", entry.path.display()))
                })?,
            };
            let ext = entry
                .path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("sql");
            let dir = std::env::temp_dir().join(format!(
                "zerodown-migrate-{}-{}",
                std::process::id(),
                entry.name
            ));
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
            let copy = dir.join(format!("{}.{ext}", entry.name));
            let loaded = std::fs::write(&copy, text)
                .map_err(|e| Error::Io(format!("{}: {e}", copy.display())))
                .and_then(|()| {
                    Migration::load(&copy, dialect).map_err(|e| {
                        let shown = copy.display().to_string();
                        Error::Spec(SpecError::File {
                            path: entry.path.display().to_string(),
                            message: e
                                .to_string()
                                .replace(&format!("{shown}:"), "")
                                .trim()
                                .to_string(),
                        })
                    })
                });
            let _ = std::fs::remove_dir_all(&dir);
            loaded?
        }
    };
    m.name = entry.name.clone();
    Ok(m)
}

/// The identifiers named anywhere in an operation (its fields and expressions), lower-cased.
fn identifiers(op: &Operation) -> Vec<String> {
    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    let mut texts = Vec::new();
    strings(&serde_json::to_value(op).unwrap_or_default(), &mut texts);
    texts
        .iter()
        .flat_map(|t| t.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Columns a migration adds: (table, column), lower-cased.
fn added(m: &Migration) -> Vec<(String, String)> {
    m.operations
        .iter()
        .filter_map(|op| match op {
            Operation::AddColumn(a) => Some((a.table.to_lowercase(), a.column.to_lowercase())),
            _ => None,
        })
        .collect()
}

/// The first of `open` (columns of migrations not completed, with their migration) that `m` touches:
/// an operation on that table naming the column, or one elsewhere naming both (a reference to it).
/// Conservative: a string literal spelling the column's name counts too.
fn touches<'a>(
    m: &Migration,
    open: &'a [(String, String, String)],
) -> Option<&'a (String, String, String)> {
    m.operations.iter().find_map(|op| {
        let table = op.table().to_lowercase();
        let words = identifiers(op);
        open.iter()
            .find(|(t, c, _)| words.contains(c) && (*t == table || words.contains(t)))
    })
}

/// Runs the folder at `point`. Stops at the first migration that fails, is refused or is held;
/// what ran before it stays done, and running the same command again goes on from there.
pub fn run(
    url: &DatabaseUrl,
    dir: &Path,
    options: &Options,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> std::result::Result<Report, Box<Stopped>> {
    let mut report = Report {
        folder: dir.display().to_string(),
        layout: options.layout.unwrap_or(Layout::Plain),
        point: options.point,
        migrations: Vec::new(),
        notes: Vec::new(),
    };
    macro_rules! stop {
        ($stop:expr, $err:expr) => {
            return Err(Box::new(Stopped {
                report,
                stop: $stop,
                error: $err,
            }))
        };
    }
    let layout = match options.layout {
        Some(l) => l,
        None => match layout::detect(dir, detect_hint(url)) {
            Ok(l) => l,
            Err(e) => stop!(Stop::Input, Error::Io(e)),
        },
    };
    report.layout = layout;
    let folder = match layout::read(dir, layout) {
        Ok(f) => f,
        Err(e) => stop!(Stop::Input, Error::Io(e)),
    };
    report.notes.extend(folder.notes.iter().cloned());
    let tool = Tool::of(layout);
    if layout == Layout::Flyway {
        report.notes.push(
            "zerodown skips what flyway_schema_history records but does not write it yet: a later `flyway migrate` would run the files zerodown applied again: apply a Flyway folder with one of the two".into(),
        );
    }
    // Every file is read before anything changes.
    let dialect = crate::dialect_of(url);
    let mut migrations = Vec::new();
    for e in &folder.entries {
        match load(e, dialect) {
            Ok(m) => migrations.push(m),
            Err(err) => stop!(Stop::Input, err),
        }
    }
    let states = match crate::status(url, None) {
        Ok(s) => s,
        Err(e) => stop!(stop_of(&e), e),
    };
    let mut hist = match tool.map(|t| history::read(url, t)).transpose() {
        Ok(h) => h.unwrap_or_default(),
        Err(e) => stop!(stop_of(&e), e),
    };
    if let Some((t, v)) = tool.and_then(|t| hist.failed(t).map(|v| (t, v))) {
        let err = Error::Refused(format!(
            "{} records version {v} as failed halfway ({}): repair it with {} first; zerodown does not run over a half-applied migration",
            t.label(),
            t.table(),
            t.label()
        ));
        stop!(Stop::Refused, err);
    }
    let total = folder.entries.len();
    // Columns added by migrations of this folder that are not completed: (table, column, migration).
    let mut open: Vec<(String, String, String)> = Vec::new();
    for (index, (entry, m)) in folder.entries.iter().zip(&migrations).enumerate() {
        let active = states
            .iter()
            .rev()
            .find(|s| s.name == entry.name && s.status.is_active());
        let rolled_back = active.is_none() && states.iter().any(|s| s.name == entry.name);
        let recorded = match tool {
            Some(t) => hist.recorded(t, entry),
            None => Recorded::No,
        };
        let mut outcome = Outcome {
            name: entry.name.clone(),
            file: entry.path.display().to_string(),
            version: entry.version.clone(),
            action: Action::Pending,
            tool_recorded: tool.map(|_| recorded == Recorded::Applied),
        };
        let status = active.map(|s| s.status);
        if status.is_none() && recorded == Recorded::Applied {
            outcome.action = Action::AppliedByTool;
            report.migrations.push(outcome);
            continue;
        }
        if rolled_back && options.point == Point::BeforeDeploy {
            report.notes.push(format!(
                "`{}` was rolled back earlier; it is in the folder, so it starts again",
                entry.name
            ));
        }
        let mut spent = active
            .map(|s| s.timings.values().sum::<f64>())
            .unwrap_or(0.0);
        let result: Result<Action> = match (options.point, status) {
            (_, Some(Status::Completed)) => Ok(Action::AlreadyCompleted),
            (_, Some(Status::RollingBack)) => Err(Error::WrongPhase(format!(
                "`{}` is being rolled back; finish that with `zerodown rollback {}` (or run it again) before migrating",
                entry.name, entry.name
            ))),
            (Point::Show, None) => Ok(Action::Pending),
            (Point::Show, Some(Status::Started)) => Ok(Action::Unfinished),
            (Point::Show | Point::BeforeDeploy, Some(Status::Backfilled | Status::Completing)) => {
                Ok(Action::AlreadyBackfilled)
            }
            (Point::AfterDeploy, None) => Ok(Action::Pending),
            (Point::AfterDeploy, Some(Status::Started)) => Err(Error::WrongPhase(format!(
                "`{}` has not finished its backfill: run `zerodown migrate {} --before-deploy` to finish it, then deploy",
                entry.name,
                dir.display()
            ))),
            (Point::BeforeDeploy, None | Some(Status::Started)) => match touches(m, &open) {
                Some((t, c, by)) => {
                    let reason = format!(
                        "it touches `{t}`.`{c}`, which `{by}` adds and has not completed: `{by}` completes after this deploy (`--after-deploy`); ship `{}` and the migrations after it in the next deploy",
                        entry.name
                    );
                    let error = Error::Refused(format!("`{}` is held: {reason}", entry.name));
                    outcome.action = Action::Held { reason };
                    report.migrations.push(outcome);
                    for rest in &folder.entries[index + 1..] {
                        report.migrations.push(Outcome {
                            name: rest.name.clone(),
                            file: rest.path.display().to_string(),
                            version: rest.version.clone(),
                            action: Action::Held {
                                reason: format!("after `{}`, which is held", entry.name),
                            },
                            tool_recorded: None,
                        });
                    }
                    stop!(Stop::Refused, error);
                }
                None => {
                    progress(Progress::Migration {
                        index,
                        total,
                        name: &entry.name,
                        doing: "start",
                    });
                    let began = Instant::now();
                    let started = crate::start(
                        url,
                        m,
                        &options.settings,
                        &mut |e| progress(Progress::Event(e)),
                        cancel,
                    );
                    spent += began.elapsed().as_secs_f64();
                    started.map(|o| match o {
                        crate::StartOutcome::Completed => Action::Completed,
                        crate::StartOutcome::Backfilled { rows } => Action::Backfilled { rows },
                    })
                }
            },
            (Point::AfterDeploy, Some(Status::Backfilled | Status::Completing)) => {
                progress(Progress::Migration {
                    index,
                    total,
                    name: &entry.name,
                    doing: "complete",
                });
                let mut guard_step = false;
                let done = crate::complete(
                    url,
                    &entry.name,
                    &options.settings,
                    &mut |e| {
                        match &e {
                            Event::StepStarted { step, .. } => {
                                guard_step = step.action == crate::plan::Action::QuietPeriod
                            }
                            Event::StepDone { .. } => guard_step = false,
                            _ => {}
                        }
                        progress(Progress::Event(e))
                    },
                    cancel,
                );
                match done {
                    Ok(()) => Ok(Action::Completed),
                    Err(e @ Error::Refused(_)) if guard_step => {
                        report.migrations.push(outcome);
                        stop!(Stop::OldWriters, e);
                    }
                    Err(e) => Err(e),
                }
            }
            (_, Some(Status::RolledBack)) => unreachable!("active states are never rolled back"),
        };
        let action = match result {
            Ok(a) => a,
            Err(e) => {
                report.migrations.push(outcome);
                stop!(stop_of(&e), e);
            }
        };
        // The tool's row goes in as soon as zerodown has the schema change in place (backfilled or
        // completed), so an application that runs the tool's migrator as it starts finds it applied.
        let applied = matches!(
            action,
            Action::Backfilled { .. }
                | Action::Completed
                | Action::AlreadyCompleted
                | Action::AlreadyBackfilled
        );
        if let (Some(t), true) = (tool, applied)
            && options.point != Point::Show
            && history::writes(t)
            && hist.recorded(t, entry) == Recorded::No
        {
            if let Err(e) = history::record(url, t, entry, Duration::from_secs_f64(spent.max(0.0)))
            {
                report.migrations.push(outcome);
                stop!(stop_of(&e), e);
            }
            hist = match history::read(url, t) {
                Ok(h) => h,
                Err(e) => {
                    report.migrations.push(outcome);
                    stop!(stop_of(&e), e);
                }
            };
        }
        if let Some(t) = tool {
            outcome.tool_recorded = Some(hist.recorded(t, entry) == Recorded::Applied);
        }
        if !matches!(
            action,
            Action::Completed | Action::AlreadyCompleted | Action::AppliedByTool
        ) {
            open.extend(
                added(m)
                    .into_iter()
                    .map(|(t, c)| (t, c, entry.name.clone())),
            );
        }
        outcome.action = action;
        report.migrations.push(outcome);
    }
    Ok(report)
}

/// The layout the database's history tables suggest, for names that cannot tell on their own.
fn detect_hint(url: &DatabaseUrl) -> Option<Layout> {
    let sqlx = history::read(url, Tool::Sqlx)
        .ok()
        .is_some_and(|h| !h.is_empty());
    let gm = history::read(url, Tool::GolangMigrate)
        .ok()
        .is_some_and(|h| !h.is_empty());
    match (sqlx, gm) {
        (true, false) => Some(Layout::Sqlx),
        (false, true) => Some(Layout::GolangMigrate),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml(text: &str) -> Migration {
        Migration::from_toml("m", text, "m.toml").unwrap()
    }

    #[test]
    fn a_migration_touches_a_column_it_names_on_its_table() {
        let open = vec![("accounts".into(), "tier".into(), "0001_tier".into())];
        let index = toml(
            "[create_index]\ntable = \"accounts\"\nname = \"accounts_tier_idx\"\ncolumns = [\"tier\"]\n",
        );
        assert_eq!(
            touches(&index, &open).map(|o| o.2.as_str()),
            Some("0001_tier")
        );
        let derived = toml(
            "[add_column]\ntable = \"accounts\"\ncolumn = \"rank\"\ntype = \"integer\"\nbackfill = \"CASE WHEN Tier = 'gold' THEN 1 ELSE 0 END\"\n",
        );
        assert!(touches(&derived, &open).is_some());
        // Another column of the table, or a column of that name on another table: not touched.
        let other =
            toml("[add_column]\ntable = \"accounts\"\ncolumn = \"region\"\ntype = \"text\"\n");
        assert!(touches(&other, &open).is_none());
        let elsewhere =
            toml("[add_column]\ntable = \"orders\"\ncolumn = \"tier\"\ntype = \"text\"\n");
        assert!(touches(&elsewhere, &open).is_none());
        // An index whose name only contains the column's name does not count.
        let named = toml(
            "[create_index]\ntable = \"accounts\"\nname = \"accounts_tier\"\ncolumns = [\"email\"]\n",
        );
        assert!(touches(&named, &open).is_none());
    }
}
