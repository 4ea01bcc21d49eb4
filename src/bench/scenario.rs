//! Running one scenario: the whole-table limits, and the lifecycle or the naive statements under the
//! open-loop load, with zerodown's part in a child process and the machine sampled meanwhile.

use super::drive::{self, DriveRequest, Holds, Line, run_child};
use super::load::{Load, LoadSpec};
use super::report::{Mark, Phases};
use super::sys::{CpuTicks, cpu_ticks, mono_ns};
use super::target::{BenchTarget, MIGRATION_NAME, migration_toml};
use super::{
    Log, Options, Scenario, ScenarioReport, StepReport, UnpacedStep, report, sys, target, vfs,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
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

pub(super) fn limit_update(
    opts: &Options,
    target: &dyn BenchTarget,
) -> Result<ScenarioReport, String> {
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
    latency_changes: u64,
    latency_peak: f64,
    notes: Vec<String>,
    /// `complete`'s scans and rewrites: (label, cost, elapsed s), a label seen twice summed.
    unpaced: Vec<(String, String, f64)>,
    backfill: Option<(i64, f64)>,
}

/// Whether a note of zerodown's is about its pacing (the latency canary, the rests per reason, the
/// load it watched): the report keeps those.
fn is_pacing_note(text: &str) -> bool {
    text.contains("latency")
        || text.starts_with("the backfill")
        || text.starts_with("other sessions")
}

impl ZdFold {
    fn add(&mut self, run: &drive::DriveRun, who: &str) {
        let mut consider = |ms: f64, label: &str| {
            if self.longest.as_ref().is_none_or(|(m, _)| ms > *m) {
                self.longest = Some((ms, label.to_string()));
            }
        };
        let costs: std::collections::HashMap<usize, String> = run
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Step { index, cost, .. } => Some((*index, cost.clone())),
                _ => None,
            })
            .collect();
        for l in &run.lines {
            match l {
                Line::Note { text, .. } if is_pacing_note(text) => self.notes.push(text.clone()),
                Line::Done {
                    index,
                    label,
                    elapsed_ms,
                    ..
                } if who == "complete"
                    && costs
                        .get(index)
                        .is_some_and(|c| c == "scan" || c == "rewrite") =>
                {
                    let secs = elapsed_ms / 1e3;
                    match self.unpaced.iter_mut().find(|u| u.0 == *label) {
                        Some(u) => u.2 += secs,
                        None => self
                            .unpaced
                            .push((label.clone(), costs[index].clone(), secs)),
                    }
                }
                _ => {}
            }
        }
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
            latency_changes,
            latency_peak_ratio,
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
            self.latency_changes += latency_changes;
            self.latency_peak = self.latency_peak.max(*latency_peak_ratio);
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
        r.latency_changes = Some(self.latency_changes);
        r.latency_peak_ratio = Some(self.latency_peak);
        r.pacing_notes = self.notes;
        if let Some((rows, secs)) = self.backfill {
            r.backfill_rows = Some(rows);
            r.backfill_s = Some(secs);
            r.backfill_rows_per_s = Some(rows as f64 / secs.max(1e-9));
        }
        r.steps = self.steps;
    }
}

pub(super) fn limit_zerodown(
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
pub(super) fn loaded(
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
    r.unpaced = fold
        .unpaced
        .iter()
        .map(|(label, cost, secs)| {
            let phase = p.phases.iter().find(|x| x.phase == *label);
            UnpacedStep {
                label: label.clone(),
                cost: cost.clone(),
                seconds: *secs,
                ops: phase.map_or(0, |x| x.ops),
                p99_ms: phase.map_or(0.0, |x| x.p99_ms),
                max_ms: phase.map_or(0.0, |x| x.max_ms),
                cpu_idle_pct: phase.and_then(|x| x.cpu_idle_pct),
            }
        })
        .collect();
    if let Some(b) = p.phases.iter().find(|x| x.phase == "backfill") {
        r.backfill_p99_ms = Some(b.p99_ms);
        r.backfill_max_ms = Some(b.max_ms);
    }
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
