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
pub mod report;
pub mod sqlite;
pub mod sys;
pub mod target;
pub mod vfs;

use drive::{DriveRequest, Holds, Line, run_child};
use load::{Load, LoadSpec};
use report::{Mark, PhaseReport, Phases, fmt_ms};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use sys::{CpuTicks, cpu_ticks, mono_ns};
use target::{BenchTarget, MIGRATION_NAME, migration_toml};

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

/// A target from issue 5, judged.
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
    pub errors: BTreeMap<String, u64>,
    /// Operations scheduled but never issued by the time the load stopped.
    pub unissued_ops: u64,
    pub mismatched_rows: Option<i64>,
    pub failure: Option<String>,
    pub targets: Vec<TargetCheck>,
}

/// What the benchmark says while it runs (stderr in the binary).
pub type Log<'a> = &'a mut dyn FnMut(String);

/// Samples the machine's CPU counters every 100 ms until stopped.
struct CpuSampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(u64, CpuTicks)>>,
}

impl CpuSampler {
    fn start() -> CpuSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut v = vec![(mono_ns(), cpu_ticks())];
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                v.push((mono_ns(), cpu_ticks()));
            }
            v
        });
        CpuSampler { stop, handle }
    }

    fn stop(self) -> Vec<(u64, CpuTicks)> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap_or_default()
    }
}

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

fn limit_update(opts: &Options, target: &dyn BenchTarget) -> Result<ScenarioReport, String> {
    let url = target.fresh_copy("limit-update")?;
    let mut admin = target.admin(&url, opts.busy_timeout)?;
    let steps = target.naive_steps();
    let add = admin.execute(&steps[0].sql)?;
    let update = admin.execute(&steps[1].sql)?;
    drop(admin);
    target.drop_copy(&url);
    let secs = update.elapsed.as_secs_f64();
    Ok(ScenarioReport {
        migration_s: (add.elapsed + update.elapsed).as_secs_f64(),
        steps: [(&steps[0].label, &add), (&steps[1].label, &update)]
            .into_iter()
            .map(|(l, r)| StepReport {
                label: l.clone(),
                elapsed_ms: r.elapsed.as_secs_f64() * 1e3,
                lock_max_ms: r.longest_lock.map(|d| d.as_secs_f64() * 1e3),
                lock_count: None,
                wal_bytes: r.log_bytes,
            })
            .collect(),
        longest_lock_ms: update.longest_lock.map(|d| d.as_secs_f64() * 1e3),
        longest_lock_step: Some(steps[1].label.clone()),
        backfill_rows: Some(opts.rows),
        backfill_s: Some(secs),
        backfill_rows_per_s: Some(opts.rows as f64 / secs.max(1e-9)),
        wal_bytes: update.log_bytes,
        ..ScenarioReport::default()
    })
}

fn request(
    opts: &Options,
    target: &dyn BenchTarget,
    url: &crate::DatabaseUrl,
    verb: &str,
    index: bool,
    copy: bool,
) -> DriveRequest {
    DriveRequest {
        url: target::url_text(url),
        verb: verb.into(),
        name: MIGRATION_NAME.into(),
        toml: migration_toml(target.column_type(), index, copy || target.online_check()),
        allow_copy: copy,
        quiet_period: Some(opts.quiet_period),
        batch_time: opts.batch_time,
        pause: opts.pause,
        nice: opts.nice,
        max_load: opts.max_load,
        sqlite_pragma: opts.zd_sqlite_pragma.clone(),
    }
}

/// What the driver processes of one scenario reported, folded together.
#[derive(Default)]
struct ZdFold {
    steps: Vec<StepReport>,
    longest: Option<(f64, String)>,
    over_50ms: u64,
    wal: u64,
    rss: u64,
    cpu: f64,
    retries: u64,
    rested_s: f64,
    rests: u64,
    backfill: Option<(i64, f64)>,
}

impl ZdFold {
    fn add(&mut self, run: &drive::DriveRun, who: &str) {
        let mut consider = |ms: f64, label: &str| {
            if self.longest.as_ref().is_none_or(|(m, _)| ms > *m) {
                self.longest = Some((ms, label.to_string()));
            }
        };
        for (label, elapsed, holds, wal) in run.steps() {
            consider(holds.max_ms, &label);
            self.over_50ms += holds.over_50ms;
            self.steps.push(StepReport {
                label: label.clone(),
                elapsed_ms: elapsed,
                lock_max_ms: Some(holds.max_ms),
                lock_count: Some(holds.count),
                wal_bytes: Some(wal),
            });
            if label == "backfill" {
                self.backfill = Some((0, elapsed / 1e3));
            }
        }
        if let Some(Line::End {
            vmhwm_kb,
            cpu_s,
            wal_bytes,
            holds_outside,
            backfill_rows,
            lock_retries,
            rested_s,
            rests,
            ..
        }) = run.end()
        {
            let h: &Holds = holds_outside;
            consider(h.max_ms, &format!("{who}: state writes between steps"));
            self.over_50ms += h.over_50ms;
            self.wal += wal_bytes;
            self.rss = self.rss.max(*vmhwm_kb);
            self.cpu += cpu_s;
            self.retries += lock_retries;
            self.rested_s += rested_s;
            self.rests += rests;
            if let Some(b) = &mut self.backfill
                && b.0 == 0
            {
                b.0 = *backfill_rows;
            }
        }
    }

    fn into_report(self, r: &mut ScenarioReport) {
        r.longest_lock_ms = self.longest.as_ref().map(|l| l.0);
        r.longest_lock_step = self.longest.map(|l| l.1);
        r.locks_over_50ms = Some(self.over_50ms);
        r.wal_bytes = Some(self.wal);
        r.peak_rss_kb = Some(self.rss);
        r.zerodown_cpu_s = Some(self.cpu);
        r.lock_retries = Some(self.retries);
        r.rested_s = Some(self.rested_s);
        r.rests = Some(self.rests);
        if let Some((rows, secs)) = self.backfill {
            r.backfill_rows = Some(rows);
            r.backfill_s = Some(secs);
            r.backfill_rows_per_s = Some(rows as f64 / secs.max(1e-9));
        }
        r.steps = self.steps;
    }
}

fn limit_zerodown(
    opts: &Options,
    target: &dyn BenchTarget,
    log: Log,
) -> Result<ScenarioReport, String> {
    let url = target.fresh_copy("limit-zerodown")?;
    let sampler = Sampler::start(target, &url);
    let log0 = target.log_position(&url);
    let t0 = mono_ns();
    let run = run_child(
        &opts.driver_exe,
        &request(opts, target, &url, "start", true, false),
        &mut |l| progress_line(log, l),
    )?;
    let mut r = ScenarioReport {
        migration_s: (mono_ns() - t0) as f64 / 1e9,
        ..ScenarioReport::default()
    };
    if !run.ok() {
        r.failure = Some(format!("zerodown start: {}", run.error()));
    }
    let mut fold = ZdFold::default();
    fold.add(&run, "start");
    fold.into_report(&mut r);
    if let (Some(a), Some(b)) = (log0, target.log_position(&url)) {
        r.wal_bytes = Some(b.saturating_sub(a));
    }
    sampler.finish(&mut r);
    target.drop_copy(&url);
    Ok(r)
}

/// The lock-view sampler of a scenario, where the engine has one.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<target::LockSample>>,
}

impl Sampler {
    fn start(target: &dyn BenchTarget, url: &crate::DatabaseUrl) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = target.lock_sampler(url, stop.clone());
        Sampler { stop, handle }
    }

    fn finish(self, r: &mut ScenarioReport) {
        self.stop.store(true, Ordering::SeqCst);
        let Some(h) = self.handle else { return };
        let Ok(s) = h.join() else { return };
        if let Some(why) = s.unavailable {
            r.sampled_lock_what = Some(format!("not sampled: {why}"));
            return;
        }
        r.sample_every_ms = Some(s.every.as_secs_f64() * 1e3);
        r.sampled_lock_ms = Some(s.longest_hold_ms.unwrap_or(0.0));
        r.sampled_lock_what = s.hold_what;
        r.sampled_wait_ms = Some(s.longest_wait_ms.unwrap_or(0.0));
        r.sampled_wait_what = s.wait_what;
    }
}

fn progress_line(log: Log, l: &Line) {
    match l {
        Line::Step { label, .. } => log(format!("   zerodown: {label}")),
        Line::Progress { done, total, .. } => log(format!("   zerodown: backfill {done}/{total}")),
        Line::Retry {
            attempt,
            waited_ms,
            blocker,
            ..
        } => log(format!(
            "   zerodown: lock attempt {attempt} gave up after {waited_ms:.0}ms (blocked by {}); retrying",
            if blocker.is_empty() { "?" } else { blocker }
        )),
        Line::Note { text, .. } => log(format!("   zerodown: note: {text}")),
        Line::End {
            ok: false,
            error: Some(e),
            ..
        } => log(format!("   zerodown failed: {e}")),
        _ => {}
    }
}

/// A scenario under load: zerodown's lifecycle (`index` says whether the migration has an index) or
/// the naive statements.
fn loaded(
    opts: &Options,
    target: &dyn BenchTarget,
    scenario: Scenario,
    rate: f64,
    index: bool,
    log: Log,
) -> Result<ScenarioReport, String> {
    let copy = scenario == Scenario::ZerodownCopy;
    // The naive scenarios run these statements on an admin connection instead of zerodown.
    let naive_steps = match scenario {
        Scenario::Naive => Some(target.naive_steps()),
        Scenario::NaiveRewrite => Some(
            target
                .naive_rewrite_steps()
                .ok_or("naive-rewrite: not supported on this engine")?,
        ),
        _ => None,
    };
    let url = target.fresh_copy(scenario.name())?;
    let spec = LoadSpec {
        rate,
        readers: opts.readers,
        writers: opts.writers,
        rows: opts.rows,
        busy_timeout: opts.busy_timeout,
    };
    let mut r = ScenarioReport::default();
    let mut marks: Vec<Mark> = Vec::new();
    let mark = |marks: &mut Vec<Mark>, at_ns: u64, label: &str, migration: bool| {
        marks.push(Mark {
            at_ns,
            label: label.into(),
            migration,
        })
    };
    let cpu = CpuSampler::start();
    let (wal0, _) = vfs::process_bytes();
    let ticks0 = cpu_ticks();
    let self0 = sys::self_cpu();
    let epoch = mono_ns();
    mark(&mut marks, epoch, "before", false);
    let load = Load::start(target, &url, &spec, epoch, scenario.name())?;
    let sampler = Sampler::start(target, &url);
    let log_start = target.log_position(&url);
    std::thread::sleep(opts.baseline);
    let log_mig = target.log_position(&url);
    let mig_start = mono_ns();
    let mut naive_wal = 0u64;
    let mut fold = ZdFold::default();
    if let Some(steps) = &naive_steps {
        let mut admin = target.admin(&url, opts.busy_timeout)?;
        let mut longest: Option<(f64, String)> = None;
        let mut over = 0u64;
        for step in steps {
            let label = format!("naive: {}", step.label);
            log(format!("   {label}"));
            mark(&mut marks, mono_ns(), &label, true);
            match admin.execute(&step.sql) {
                Ok(run) => {
                    let lock = run.longest_lock.map(|d| d.as_secs_f64() * 1e3);
                    if let Some(l) = lock {
                        if l > 50.0 {
                            over += 1;
                        }
                        if longest.as_ref().is_none_or(|(m, _)| l > *m) {
                            longest = Some((l, label.clone()));
                        }
                    }
                    naive_wal += run.log_bytes.unwrap_or(0);
                    r.steps.push(StepReport {
                        label: label.clone(),
                        elapsed_ms: run.elapsed.as_secs_f64() * 1e3,
                        lock_max_ms: lock,
                        lock_count: None,
                        wal_bytes: run.log_bytes,
                    });
                }
                Err(e) => {
                    r.failure = Some(format!("{label}: {e}"));
                    break;
                }
            }
            if step.then_deploy && !load.deploy(opts.busy_timeout + Duration::from_secs(1)) {
                log("   (an old-version write was still in flight after the deploy wait)".into());
            }
        }
        r.longest_lock_ms = longest.as_ref().map(|l| l.0);
        r.longest_lock_step = longest.map(|l| l.1);
        r.locks_over_50ms = Some(over);
        r.wal_bytes = Some(naive_wal);
    } else {
        mark(&mut marks, mono_ns(), "start: setup", true);
        let mut on_line = |l: &Line| {
            progress_line(log, l);
            if let Line::Step { t, label, .. } = l {
                mark(&mut marks, *t, label, true);
            }
        };
        let start = run_child(
            &opts.driver_exe,
            &request(opts, target, &url, "start", index, copy),
            &mut on_line,
        )?;
        fold.add(&start, "start");
        if start.ok() {
            mark(&mut marks, mono_ns(), "deploy", true);
            if !load.deploy(opts.busy_timeout + Duration::from_secs(1)) {
                log("   (an old-version write was still in flight after the deploy wait)".into());
            }
            std::thread::sleep(opts.deploy);
            mark(&mut marks, mono_ns(), "complete: setup", true);
            let mut on_line = |l: &Line| {
                progress_line(log, l);
                if let Line::Step { t, label, .. } = l {
                    mark(&mut marks, *t, label, true);
                }
            };
            let complete = run_child(
                &opts.driver_exe,
                &request(opts, target, &url, "complete", index, copy),
                &mut on_line,
            )?;
            fold.add(&complete, "complete");
            if !complete.ok() {
                r.failure = Some(format!("zerodown complete: {}", complete.error()));
            }
        } else {
            r.failure = Some(format!("zerodown start: {}", start.error()));
        }
    }
    let mig_end = mono_ns();
    let log_end = target.log_position(&url);
    mark(&mut marks, mig_end, "after", false);
    std::thread::sleep(opts.after);
    let end = mono_ns();
    let outcome = load.stop();
    sampler.finish(&mut r);
    let cpu = cpu.stop();
    let ticks1 = cpu_ticks();
    let self1 = sys::self_cpu();
    let app_cpu = ((self1.0 + self1.1) - (self0.0 + self0.1)).as_secs_f64();
    let busy =
        ((ticks1.total - ticks0.total) - (ticks1.idle - ticks0.idle)) as f64 / sys::clk_tck();
    r.app_cpu_s = Some(app_cpu);
    r.cpu_idle_pct = sys::idle_pct(ticks0, ticks1);
    let (wal1, _) = vfs::process_bytes();
    marks.sort_by_key(|m| m.at_ns);
    let p: Phases = report::phases(&marks, end, epoch, &outcome.samples, &cpu);
    if naive_steps.is_none() {
        fold.into_report(&mut r);
    }
    r.other_cpu_s = Some((busy - app_cpu - r.zerodown_cpu_s.unwrap_or(0.0)).max(0.0));
    r.migration_s = (mig_end - mig_start) as f64 / 1e9;
    r.app_wal_bytes = Some((wal1 - wal0).saturating_sub(naive_wal));
    if let (Some(a), Some(b), Some(c)) = (log_start, log_mig, log_end) {
        // The server's log moves for the application too: take off its rate from the baseline.
        let base_s = (mig_start - epoch) as f64 / 1e9;
        let app_rate = b.saturating_sub(a) as f64 / base_s.max(1e-3);
        let window = c.saturating_sub(b) as f64;
        let app = (app_rate * r.migration_s).min(window);
        r.wal_bytes = Some((window - app) as u64);
        r.app_wal_bytes = Some(b.saturating_sub(a) + app as u64);
        r.wal_estimated = true;
    }
    let longest = p.phases.iter().max_by(|a, b| a.max_ms.total_cmp(&b.max_ms));
    r.app_longest_wait_ms = longest.map(|x| x.max_ms);
    r.app_longest_wait_phase = longest.map(|x| x.phase.clone());
    r.before = Some(p.before.clone());
    r.during = Some(p.during.clone());
    r.phases = p.phases;
    r.errors = outcome.errors;
    r.unissued_ops = outcome.unissued;
    if let Ok(mut admin) = target.admin(&url, opts.busy_timeout) {
        r.mismatched_rows = admin.count(&target.mismatch_sql()).ok();
    }
    target.drop_copy(&url);
    Ok(r)
}

fn targets(r: &ScenarioReport) -> Vec<TargetCheck> {
    let mut t = Vec::new();
    let mut check = |target: &str, measured: String, met: bool| {
        t.push(TargetCheck {
            target: target.into(),
            measured,
            met,
        })
    };
    let ratio_text = |v: f64, limit: f64| {
        if v <= limit {
            format!("within by {}", fmt_ms(limit - v))
        } else {
            format!(
                "missed by {} ms ({:.1}× the limit)",
                fmt_ms(v - limit),
                v / limit.max(1e-9)
            )
        }
    };
    match r.scenario.as_str() {
        "zerodown" | "zerodown-noindex" | "zerodown-copy" => {
            if let (Some(b), Some(d)) = (&r.before, &r.during) {
                let l1 = 1.5 * b.p99_ms;
                check(
                    "app p99 during ≤ 1.5× baseline p99",
                    format!(
                        "{} ms vs 1.5×{} = {} ms: {}",
                        fmt_ms(d.p99_ms),
                        fmt_ms(b.p99_ms),
                        fmt_ms(l1),
                        ratio_text(d.p99_ms, l1)
                    ),
                    d.p99_ms <= l1,
                );
                let l2 = b.p99_ms + 10.0;
                check(
                    "app p99 during ≤ baseline p99 + 10 ms",
                    format!(
                        "{} ms vs {} ms: {}",
                        fmt_ms(d.p99_ms),
                        fmt_ms(l2),
                        ratio_text(d.p99_ms, l2)
                    ),
                    d.p99_ms <= l2,
                );
                check(
                    "app max during ≤ 1 s",
                    format!("{} ms: {}", fmt_ms(d.max_ms), ratio_text(d.max_ms, 1000.0)),
                    d.max_ms <= 1000.0,
                );
                let errors: u64 = r.phases.iter().map(|p| p.errors).sum();
                check(
                    "zero application errors",
                    format!("{errors} errors, {} ops never issued", r.unissued_ops),
                    errors == 0,
                );
            }
            if let Some(l) = r.sampled_lock_ms {
                check(
                    "cross-check: no write-blocking table lock seen held > 50 ms in the lock views",
                    format!(
                        "longest seen {} ms ({}), sampled every {} ms",
                        fmt_ms(l),
                        r.sampled_lock_what.as_deref().unwrap_or("none"),
                        opt(r.sample_every_ms, fmt_ms)
                    ),
                    l <= 50.0,
                );
            }
            if let Some(l) = r.longest_lock_ms {
                check(
                    "each write-lock hold ≤ 50 ms",
                    format!(
                        "longest {} ms ({}); {} holds over 50 ms",
                        fmt_ms(l),
                        r.longest_lock_step.as_deref().unwrap_or("?"),
                        r.locks_over_50ms.unwrap_or(0)
                    ),
                    l <= 50.0,
                );
            }
            if let Some(x) = r.backfill_ratio {
                check(
                    "backfill under load ≥ 0.3× the single UPDATE",
                    format!("{x:.2}×"),
                    x >= 0.3,
                );
            }
            rss_check(r, &mut check);
        }
        "limit-zerodown" => {
            if let Some(x) = r.backfill_ratio {
                let (limit, text) = if r.engine.starts_with("SQLite") {
                    (
                        0.6,
                        "backfill with no load ≥ 0.6× the single UPDATE (SQLite)",
                    )
                } else {
                    (0.8, "backfill with no load ≥ 0.8× the single UPDATE")
                };
                check(text, format!("{x:.2}×"), x >= limit);
            }
            rss_check(r, &mut check);
        }
        _ => {}
    }
    t
}

fn rss_check(r: &ScenarioReport, check: &mut dyn FnMut(&str, String, bool)) {
    if let Some(kb) = r.peak_rss_kb {
        check(
            "zerodown peak RSS ≤ 50 MB (flat in table size: compare runs)",
            format!("{:.1} MB at {} rows", kb as f64 / 1024.0, r.rows),
            kb <= 50 * 1024,
        );
    }
}

fn mb(b: u64) -> String {
    format!("{:.1}", b as f64 / 1e6)
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

/// The human report: per scenario its phases, steps and targets, then one summary table.
pub fn render(reports: &[ScenarioReport]) -> String {
    let mut s = String::new();
    for r in reports {
        let _ = writeln!(s, "\n== {} — {}", r.scenario, r.description);
        if let Some(rate) = r.rate_ops_s {
            let _ = writeln!(
                s,
                "   open-loop load {rate:.0} ops/s (70% reads, 20% updates, 10% inserts){}",
                opt(r.max_rate_ops_s, |m| format!(
                    "; measured maximum {m:.0} ops/s"
                ))
            );
        }
        if let Some(f) = &r.failure {
            let _ = writeln!(s, "   FAILED: {f}");
        }
        if !r.phases.is_empty() {
            let _ = writeln!(
                s,
                "   application latency from each operation's intended start:"
            );
            s.push_str(&report::phase_table(&Phases {
                phases: r.phases.clone(),
                during: r.during.clone().unwrap_or_default(),
                before: r.before.clone().unwrap_or_default(),
            }));
        }
        if !r.steps.is_empty() {
            let _ = writeln!(
                s,
                "   {:<30} {:>10} {:>14} {:>8} {:>9}",
                "migration step", "elapsed ms", "lock held ms", "locks", "WAL MB"
            );
            for st in &r.steps {
                let _ = writeln!(
                    s,
                    "   {:<30} {:>10} {:>14} {:>8} {:>9}",
                    st.label,
                    fmt_ms(st.elapsed_ms),
                    opt(st.lock_max_ms, fmt_ms),
                    opt(st.lock_count, |c| c.to_string()),
                    opt(st.wal_bytes, mb)
                );
            }
        }
        let mut facts = Vec::new();
        if let Some(l) = r.longest_lock_ms {
            facts.push(format!(
                "longest write-lock hold {} ms ({})",
                fmt_ms(l),
                r.longest_lock_step.as_deref().unwrap_or("?")
            ));
        }
        if let Some(l) = r.sampled_lock_ms {
            facts.push(format!(
                "lock views (sampled every {} ms): longest write-blocking table lock {} ms ({}); longest lock wait {} ms ({})",
                opt(r.sample_every_ms, fmt_ms),
                fmt_ms(l),
                r.sampled_lock_what.as_deref().unwrap_or("none"),
                opt(r.sampled_wait_ms, fmt_ms),
                r.sampled_wait_what.as_deref().unwrap_or("none")
            ));
        } else if let Some(w) = &r.sampled_lock_what {
            facts.push(format!("lock views: {w}"));
        }
        if let Some(w) = r.app_longest_wait_ms {
            facts.push(format!(
                "longest application wait {} ms ({})",
                fmt_ms(w),
                r.app_longest_wait_phase.as_deref().unwrap_or("?")
            ));
        }
        if let Some(rps) = r.backfill_rows_per_s {
            facts.push(format!(
                "backfill {} rows in {:.2}s = {rps:.0} rows/s{}",
                r.backfill_rows.unwrap_or(0),
                r.backfill_s.unwrap_or(0.0),
                opt(r.backfill_ratio, |x| format!(
                    " ({x:.2}× the single UPDATE)"
                ))
            ));
        }
        if let Some(w) = r.wal_bytes {
            facts.push(format!(
                "WAL written by the migration {} MB{}{}",
                mb(w),
                if r.wal_estimated {
                    " (estimated: the window's log bytes less the application's baseline rate)"
                } else {
                    ""
                },
                opt(r.wal_ratio, |x| format!(" ({x:.2}× the single UPDATE)"))
            ));
        }
        if let Some(w) = r.app_wal_bytes {
            facts.push(format!("WAL written by the application {} MB", mb(w)));
        }
        if let Some(kb) = r.peak_rss_kb {
            facts.push(format!(
                "zerodown peak RSS {:.1} MB, CPU {:.1}s, lock retries {}, rested for load {:.1}s ({} times)",
                kb as f64 / 1024.0,
                r.zerodown_cpu_s.unwrap_or(0.0),
                r.lock_retries.unwrap_or(0),
                r.rested_s.unwrap_or(0.0),
                r.rests.unwrap_or(0)
            ));
        }
        if let (Some(app), Some(other)) = (r.app_cpu_s, r.other_cpu_s) {
            facts.push(format!(
                "CPU over the scenario: benchmark process (application{}) {app:.1}s, zerodown {}, other processes {other:.1}s, machine idle {}",
                if r.scenario.starts_with("naive") { " + naive statements" } else { "" },
                opt(r.zerodown_cpu_s, |z| format!("{z:.1}s")),
                opt(r.cpu_idle_pct, |i| format!("{i:.0}%"))
            ));
        }
        if let Some(m) = r.mismatched_rows {
            facts.push(format!("rows whose new column is wrong afterwards: {m}"));
        }
        if r.unissued_ops > 0 {
            facts.push(format!(
                "{} operations were still queued when the load stopped",
                r.unissued_ops
            ));
        }
        for (e, n) in &r.errors {
            facts.push(format!("error ×{n}: {e}"));
        }
        facts.push(format!(
            "total {:.1}s (migration {:.1}s)",
            r.total_s, r.migration_s
        ));
        for f in facts {
            let _ = writeln!(s, "   {f}");
        }
        for t in &r.targets {
            let _ = writeln!(
                s,
                "   [{}] {} — {}",
                if t.met { "met" } else { "MISSED" },
                t.target,
                t.measured
            );
        }
    }
    let _ = writeln!(s, "\n== summary");
    let _ = writeln!(
        s,
        "  {:<17} {:>8} {:>9} {:>9} {:>9} {:>7} {:>10} {:>9} {:>11} {:>9} {:>8}",
        "scenario",
        "total s",
        "p99 bef.",
        "p99 dur.",
        "max dur.",
        "errors",
        "max lock",
        "rows/s",
        "×UPDATE",
        "WAL ×",
        "RSS MB"
    );
    for r in reports {
        let errors: u64 = r.phases.iter().map(|p| p.errors).sum();
        let _ = writeln!(
            s,
            "  {:<17} {:>8.1} {:>9} {:>9} {:>9} {:>7} {:>10} {:>9} {:>11} {:>9} {:>8}",
            r.scenario,
            r.total_s,
            opt(r.before.as_ref(), |b| fmt_ms(b.p99_ms)),
            opt(r.during.as_ref(), |b| fmt_ms(b.p99_ms)),
            opt(r.during.as_ref(), |b| fmt_ms(b.max_ms)),
            if r.phases.is_empty() {
                "-".to_string()
            } else {
                errors.to_string()
            },
            opt(r.longest_lock_ms, fmt_ms),
            opt(r.backfill_rows_per_s, |x| format!("{x:.0}")),
            opt(r.backfill_ratio, |x| format!("{x:.2}")),
            opt(r.wal_ratio, |x| format!("{x:.2}")),
            opt(r.peak_rss_kb, |k| format!("{:.1}", k as f64 / 1024.0)),
        );
    }
    let _ = writeln!(
        s,
        "  (latencies and lock holds in ms; p99/max of all application operations before and during the migration)"
    );
    s
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
