//! The load-under-migration benchmark (issue 5): what the application feels while a column is added,
//! side by side with the naive way and the physical limit. The `zerodown-bench` binary drives it.
//!
//! Scenarios, each on a fresh copy of the same loaded table:
//! - `limit-update`: one whole-table UPDATE, no load, no trigger — the fastest in-place fill;
//! - `limit-zerodown`: zerodown's `start` (dual-write triggers installed, as in real use), no load;
//! - `zerodown`: the full lifecycle (derived NOT NULL column, CHECK, default, index) under open-loop load;
//! - `zerodown-noindex`: the same without the index (SQLite's CREATE INDEX holds the write lock a pass);
//! - `naive`: ADD COLUMN, one whole-table UPDATE, SET NOT NULL, ADD CONSTRAINT CHECK, CREATE INDEX, under
//!   the same load;
//! - `naive-rewrite` (PostgreSQL, MariaDB): one ALTER TABLE adding a STORED generated column (the table
//!   is rewritten or copied under the engine's lock), then CREATE INDEX, under the same load.
//!
//! - `zerodown-copy` (MariaDB): the lifecycle with the CHECK, which MariaDB 10.11 adds only by copying.
//!
//! Engine-specific parts live behind [`target::BenchTarget`]: SQLite (a file), PostgreSQL and MariaDB
//! (a server given by URL; `scripts/bench.sh` starts throwaway ones).

pub mod drive;
pub mod load;
pub mod mariadb;
pub mod postgres;
mod render;
pub mod report;
mod scenario;
pub mod sqlite;
pub mod sys;
pub mod target;
pub mod vfs;

use report::PhaseReport;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use sys::mono_ns;
use target::BenchTarget;

pub use render::render;
use render::targets;
use scenario::{limit_update, limit_zerodown, loaded};

/// The scenarios, in the order they run (the limits first: the others are compared with them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    LimitUpdate,
    LimitZerodown,
    Zerodown,
    ZerodownNoIndex,
    /// MariaDB: the lifecycle with the CHECK, which MariaDB 10.11 adds only by copying the table
    /// (`--allow-copy`).
    ZerodownCopy,
    Naive,
    /// PostgreSQL, MariaDB: the column as a STORED generated column in one ALTER TABLE, which rewrites
    /// the table; the application never switches version (the column refuses explicit values).
    NaiveRewrite,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::LimitUpdate,
        Scenario::LimitZerodown,
        Scenario::Zerodown,
        Scenario::ZerodownNoIndex,
        Scenario::ZerodownCopy,
        Scenario::Naive,
        Scenario::NaiveRewrite,
    ];

    /// Every scenario but `zerodown-copy` (which only MariaDB needs).
    pub const USUAL: [Scenario; 5] = [
        Scenario::LimitUpdate,
        Scenario::LimitZerodown,
        Scenario::Zerodown,
        Scenario::ZerodownNoIndex,
        Scenario::Naive,
    ];

    /// A server's usual set: no `zerodown-noindex` (an index builds online there), and the rewrite.
    pub const ON_SERVERS: [Scenario; 5] = [
        Scenario::LimitUpdate,
        Scenario::LimitZerodown,
        Scenario::Zerodown,
        Scenario::Naive,
        Scenario::NaiveRewrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::LimitUpdate => "limit-update",
            Scenario::LimitZerodown => "limit-zerodown",
            Scenario::Zerodown => "zerodown",
            Scenario::ZerodownNoIndex => "zerodown-noindex",
            Scenario::ZerodownCopy => "zerodown-copy",
            Scenario::Naive => "naive",
            Scenario::NaiveRewrite => "naive-rewrite",
        }
    }

    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|x| x.name() == s.trim())
    }

    fn describe(self) -> &'static str {
        match self {
            Scenario::LimitUpdate => {
                "one whole-table UPDATE after a plain ADD COLUMN; no load, no trigger (the physical limit)"
            }
            Scenario::LimitZerodown => {
                "zerodown start (check, expand, dual-write triggers, backfill); no load"
            }
            Scenario::Zerodown => {
                "zerodown start → deploy → complete (NOT NULL, CHECK, index, default) under open-loop load"
            }
            Scenario::ZerodownNoIndex => {
                "the same lifecycle without the index (SQLite builds an index under the write lock)"
            }
            Scenario::ZerodownCopy => {
                "the lifecycle with the CHECK, which MariaDB 10.11 adds only by copying the table (--allow-copy)"
            }
            Scenario::Naive => {
                "ADD COLUMN; UPDATE all rows; SET NOT NULL; ADD CONSTRAINT CHECK; CREATE INDEX — under the same load"
            }
            Scenario::NaiveRewrite => {
                "one ALTER TABLE ADD COLUMN … GENERATED … STORED (rewrites the table); CREATE INDEX — under the same load, no deploy"
            }
        }
    }

    fn loaded(self) -> bool {
        matches!(
            self,
            Scenario::Zerodown
                | Scenario::ZerodownNoIndex
                | Scenario::ZerodownCopy
                | Scenario::Naive
                | Scenario::NaiveRewrite
        )
    }
}

/// How a benchmark run goes.
#[derive(Debug, Clone)]
pub struct Options {
    pub rows: i64,
    pub scenarios: Vec<Scenario>,
    /// The open-loop rate as a fraction of the measured maximum.
    pub load_fraction: f64,
    /// A fixed open-loop rate (ops/s) instead of a fraction of the measured maximum.
    pub rate: Option<f64>,
    pub calibrate: Duration,
    pub calibrate_threads: usize,
    pub readers: usize,
    pub writers: usize,
    pub baseline: Duration,
    pub after: Duration,
    /// Between `start` and `complete`: the application is switched to the version that writes the column.
    pub deploy: Duration,
    pub quiet_period: Duration,
    /// The application's busy timeout (SQLite) / lock wait.
    pub busy_timeout: Duration,
    /// zerodown's --batch-time and --pause, when not its defaults.
    pub batch_time: Option<Duration>,
    pub pause: Option<Duration>,
    /// zerodown's --nice and --max-load, when not its defaults.
    pub nice: Option<crate::engine::Nice>,
    pub max_load: Option<crate::engine::MaxLoad>,
    /// Experiment: a PRAGMA run on zerodown's own SQLite connection (see [`DriveRequest::sqlite_pragma`]).
    pub zd_sqlite_pragma: Option<String>,
    /// The program that runs zerodown's part (`<exe> drive …`).
    pub driver_exe: PathBuf,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            rows: 1_000_000,
            scenarios: Scenario::USUAL.to_vec(),
            load_fraction: 0.5,
            rate: None,
            calibrate: Duration::from_secs(3),
            calibrate_threads: 2,
            readers: 2,
            writers: 2,
            baseline: Duration::from_secs(5),
            after: Duration::from_secs(5),
            deploy: Duration::from_secs(1),
            quiet_period: Duration::from_secs(2),
            busy_timeout: Duration::from_secs(5),
            batch_time: None,
            pause: None,
            nice: None,
            max_load: None,
            zd_sqlite_pragma: None,
            driver_exe: PathBuf::new(),
        }
    }
}

/// One step of a migration as it ran: zerodown's steps, or the naive statements.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub label: String,
    pub elapsed_ms: f64,
    /// The longest single write-lock hold inside the step.
    pub lock_max_ms: Option<f64>,
    pub lock_count: Option<u64>,
    pub wal_bytes: Option<u64>,
}

/// One of `complete`'s single statements that read or rewrite the whole table (VALIDATE, CREATE INDEX
/// CONCURRENTLY, an online MODIFY, the null sweep's scan): the backfill's pacing cannot reach it.
#[derive(Debug, Clone, Serialize)]
pub struct UnpacedStep {
    pub label: String,
    pub cost: String,
    pub seconds: f64,
    /// The application's operations scheduled meanwhile: how many, their p99 and max.
    pub ops: u64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub cpu_idle_pct: Option<f64>,
}

/// A target, judged.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// Everything measured in one scenario (one JSON line).
#[derive(Debug, Clone, Serialize, Default)]
pub struct ScenarioReport {
    pub scenario: String,
    pub description: String,
    pub engine: String,
    pub rows: i64,
    /// The open-loop rate, for scenarios under load.
    pub rate_ops_s: Option<f64>,
    pub max_rate_ops_s: Option<f64>,
    pub total_s: f64,
    /// From the first migration statement to the last.
    pub migration_s: f64,
    pub phases: Vec<PhaseReport>,
    pub before: Option<PhaseReport>,
    pub during: Option<PhaseReport>,
    pub steps: Vec<StepReport>,
    pub longest_lock_ms: Option<f64>,
    pub longest_lock_step: Option<String>,
    pub locks_over_50ms: Option<u64>,
    /// The cross-check: the longest write-blocking table lock seen by sampling the engine's lock views
    /// (PG pg_locks, MariaDB metadata_lock_info), by anyone, and what it was.
    pub sampled_lock_ms: Option<f64>,
    pub sampled_lock_what: Option<String>,
    /// The longest lock wait seen there (application or zerodown), and what waited.
    pub sampled_wait_ms: Option<f64>,
    pub sampled_wait_what: Option<String>,
    pub sample_every_ms: Option<f64>,
    pub app_longest_wait_ms: Option<f64>,
    pub app_longest_wait_phase: Option<String>,
    pub backfill_rows: Option<i64>,
    pub backfill_s: Option<f64>,
    pub backfill_rows_per_s: Option<f64>,
    /// Backfill rows/s over the single UPDATE's (limit-update).
    pub backfill_ratio: Option<f64>,
    /// WAL bytes the migration itself wrote (zerodown's process, or the naive/limit statements).
    pub wal_bytes: Option<u64>,
    /// Over the single UPDATE's WAL bytes.
    pub wal_ratio: Option<f64>,
    /// PostgreSQL / MariaDB under load: the server's log position moves for the application too, so
    /// `wal_bytes` is the migration window's bytes less the application's rate measured in the baseline.
    pub wal_estimated: bool,
    /// WAL bytes the application wrote during the scenario.
    pub app_wal_bytes: Option<u64>,
    /// zerodown's peak resident memory (VmHWM of its process; the larger of start and complete).
    pub peak_rss_kb: Option<u64>,
    pub zerodown_cpu_s: Option<f64>,
    /// CPU seconds of the benchmark's own process over the scenario: the application's threads (and,
    /// in the naive scenarios, the naive statements).
    pub app_cpu_s: Option<f64>,
    /// CPU seconds used by every other process on the machine meanwhile (noise, if not zero).
    pub other_cpu_s: Option<f64>,
    /// Machine CPU idle over the whole scenario, all cores.
    pub cpu_idle_pct: Option<f64>,
    pub lock_retries: Option<u64>,
    /// Time zerodown's backfill rested because the server was busier than its --max-load, and how
    /// many times.
    pub rested_s: Option<f64>,
    pub rests: Option<u64>,
    /// The latency guard (`--max-latency`): how often it changed the rest ratio, the largest ratio it
    /// set, and zerodown's own notes on its pacing (the canary at rest, the time rested per reason).
    pub latency_changes: Option<u64>,
    pub latency_peak_ratio: Option<f64>,
    pub pacing_notes: Vec<String>,
    /// The application's p99 and max while the backfill ran (its phase alone).
    pub backfill_p99_ms: Option<f64>,
    pub backfill_max_ms: Option<f64>,
    /// `complete`'s one-statement scans and builds, which no pacing reaches: how long each took and
    /// what the application felt meanwhile.
    pub unpaced: Vec<UnpacedStep>,
    pub errors: BTreeMap<String, u64>,
    /// Operations scheduled but never issued by the time the load stopped.
    pub unissued_ops: u64,
    pub mismatched_rows: Option<i64>,
    pub failure: Option<String>,
    pub targets: Vec<TargetCheck>,
}

/// What the benchmark says while it runs (stderr in the binary).
pub type Log<'a> = &'a mut dyn FnMut(String);

/// Runs the chosen scenarios; returns one report per scenario, in order.
pub fn run(
    opts: &Options,
    target: &dyn BenchTarget,
    log: Log,
) -> Result<Vec<ScenarioReport>, String> {
    if opts.rows < 1 {
        return Err("--rows must be at least 1".into());
    }
    // Before loading anything: an engine that cannot run a chosen scenario says so at once.
    if opts.scenarios.contains(&Scenario::NaiveRewrite) && target.naive_rewrite_steps().is_none() {
        return Err(format!(
            "scenario naive-rewrite runs on PostgreSQL and MariaDB only: ALTER TABLE cannot add a STORED generated column on {}",
            target.label()
        ));
    }
    target.prepare(opts.rows, log)?;
    let mut max_rate = None;
    let rate = if opts.scenarios.iter().any(|s| s.loaded()) {
        match opts.rate {
            Some(r) => r,
            None => {
                let url = target.fresh_copy("calibrate")?;
                log(format!(
                    "measuring the maximum rate: {} closed-loop threads running the mix for {}",
                    opts.calibrate_threads,
                    humantime::format_duration(opts.calibrate)
                ));
                let (m, errors) = load::max_rate(
                    target,
                    &url,
                    opts.rows,
                    opts.calibrate_threads,
                    opts.calibrate,
                    opts.busy_timeout,
                )?;
                target.drop_copy(&url);
                log(format!(
                    "maximum {m:.0} ops/s ({errors} errors); the load runs at {:.0}% of it: {:.0} ops/s",
                    opts.load_fraction * 100.0,
                    m * opts.load_fraction
                ));
                max_rate = Some(m);
                (m * opts.load_fraction).max(1.0)
            }
        }
    } else {
        0.0
    };
    let mut reports: Vec<ScenarioReport> = Vec::new();
    for &s in &opts.scenarios {
        log(format!("== scenario {}: {}", s.name(), s.describe()));
        let started = mono_ns();
        let mut r = match s {
            Scenario::LimitUpdate => limit_update(opts, target)?,
            Scenario::LimitZerodown => limit_zerodown(opts, target, log)?,
            Scenario::Zerodown => loaded(opts, target, s, rate, true, log)?,
            Scenario::ZerodownNoIndex => loaded(opts, target, s, rate, false, log)?,
            Scenario::ZerodownCopy => loaded(opts, target, s, rate, true, log)?,
            Scenario::Naive | Scenario::NaiveRewrite => loaded(opts, target, s, rate, false, log)?,
        };
        r.scenario = s.name().into();
        r.description = s.describe().into();
        r.engine = target.label();
        r.rows = opts.rows;
        r.total_s = (mono_ns() - started) as f64 / 1e9;
        if s.loaded() {
            r.rate_ops_s = Some(rate);
            r.max_rate_ops_s = max_rate;
        }
        if let Some(f) = &r.failure {
            log(format!("   {} FAILED: {f}", s.name()));
        } else {
            log(format!("   {} done in {:.1}s", s.name(), r.total_s));
        }
        reports.push(r);
    }
    // Ratios to the single UPDATE, and the targets.
    let limit = reports
        .iter()
        .find(|r| r.scenario == "limit-update")
        .map(|r| (r.backfill_rows_per_s, r.wal_bytes));
    for r in &mut reports {
        if let Some((rate, wal)) = limit {
            if let (Some(a), Some(b)) = (r.backfill_rows_per_s, rate) {
                r.backfill_ratio = Some(a / b);
            }
            if let (Some(a), Some(b)) = (r.wal_bytes, wal)
                && b > 0
            {
                r.wal_ratio = Some(a as f64 / b as f64);
            }
        }
        r.targets = targets(r);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.name()), Some(s));
        }
        // SQLite's usual set: it cannot add a STORED generated column by ALTER TABLE.
        assert!(!Scenario::USUAL.contains(&Scenario::NaiveRewrite));
    }
}
