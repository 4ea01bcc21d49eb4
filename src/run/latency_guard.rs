//! The latency guard: runs the [`canary`](super::canary) through a backfill, measures the server at
//! rest before the first batch (and again when resting at its longest does not bring the latency
//! back), and feeds the canary's recent p95 to the [`Controller`] between batches. Its rest ratio
//! joins `--nice`'s in [`Throttle`](super::pacing::Throttle): the longest rest wins.

use super::Ctx;
use super::canary::{Canary, MEASURE_PERIOD, Sample};
use super::latency::{
    Change, Controller, DECIDE_EVERY, HIGH_PERCENTILE, Latencies, MAX_RATIO, MaxLatency, WINDOW,
    auto_target,
};
use crate::engine::{Engine, Event};
use crate::plan::Plan;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long the server is measured at rest: before the backfill's first batch, and again when the
/// backfill has rested at its longest without the latency coming back.
pub const MEASURE_FOR: Duration = Duration::from_millis(500);
/// Decisions in a row over the target at the longest rest before the guard measures the server at
/// rest again (`auto`: the application's own load may have grown since) or says it cannot hold it.
pub const SATURATED_FOR: u32 = 3;
/// The server is measured at rest again at most this often.
pub const REMEASURE_GAP: Duration = Duration::from_secs(30);

/// The latency guard of one backfill run.
pub struct LatencyGuard {
    canary: Canary,
    setting: MaxLatency,
    at_rest: Latencies,
    ctl: Controller,
    window: VecDeque<Sample>,
    during: Latencies,
    last_decision: Instant,
    measured: Instant,
    said_saturated: bool,
    failed: bool,
    rested: Duration,
    peak: f64,
}

/// Times the server with the backfill waiting: the canary at its fast pace for [`MEASURE_FOR`].
fn measure(canary: &Canary) -> Latencies {
    canary.set_period(MEASURE_PERIOD);
    let _ = canary.take();
    std::thread::sleep(MEASURE_FOR);
    canary.set_period(canary.period());
    let mut at_rest = Latencies::new();
    for s in canary.take() {
        at_rest.record(s.latency, s.period);
    }
    if let Some(age) = canary.in_flight().filter(|a| *a > MEASURE_PERIOD) {
        at_rest.record(age, MEASURE_PERIOD);
    }
    at_rest
}

impl LatencyGuard {
    /// Starts the canary and measures the server at rest; `None` with `--max-latency off` or where
    /// the engine has no canary (said in a note when it failed to start).
    pub fn begin(
        engine: &mut dyn Engine,
        plan: &Plan,
        ctx: &mut Ctx,
    ) -> crate::error::Result<Option<LatencyGuard>> {
        let setting = ctx.settings.max_latency.unwrap_or(MaxLatency::Auto);
        if setting == MaxLatency::Off {
            return Ok(None);
        }
        let probe = match engine.canary(crate::engine::backfilled(plan)?) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(None),
            Err(e) => {
                (ctx.emit)(Event::Note(format!(
                    "the latency canary could not start ({e}); the backfill goes on without --max-latency"
                )));
                return Ok(None);
            }
        };
        let canary = Canary::spawn(probe, MEASURE_PERIOD);
        // The first probe warms the connection's caches: not the server's latency.
        while canary.take().is_empty() && canary.failed().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let at_rest = measure(&canary);
        let target = match setting {
            MaxLatency::Fixed(d) => d,
            _ => auto_target(
                at_rest.percentile(HIGH_PERCENTILE),
                canary.waits_for_batches(),
            ),
        };
        (ctx.emit)(Event::Note(format!(
            "latency canary ({}, from its own connection, {} a second): p50 {:.1?} and p{HIGH_PERCENTILE} {:.1?} with the server at rest; the backfill rests while its p{HIGH_PERCENTILE} over the last {}s is above {target:.1?} (--max-latency {setting})",
            canary.describe(),
            Duration::from_secs(1).as_millis() / canary.period().as_millis(),
            at_rest.percentile(50.0),
            at_rest.percentile(HIGH_PERCENTILE),
            WINDOW.as_secs(),
        )));
        let now = Instant::now();
        Ok(Some(LatencyGuard {
            canary,
            setting,
            at_rest,
            ctl: Controller::new(target),
            window: VecDeque::new(),
            during: Latencies::new(),
            last_decision: now,
            measured: now,
            said_saturated: false,
            failed: false,
            rested: Duration::ZERO,
            peak: 0.0,
        }))
    }

    /// The rest ratio the application's latency asks for now.
    pub fn ratio(&self) -> f64 {
        if self.failed { 0.0 } else { self.ctl.ratio() }
    }

    /// Whether the canary is waiting for a batch now, as an application writer would (SQLite).
    pub fn canary_waiting(&self) -> bool {
        !self.failed && self.canary.waits_for_batches() && self.canary.in_flight().is_some()
    }

    /// Counts a rest taken for latency.
    pub fn rested(&mut self, d: Duration) {
        self.rested += d;
    }

    pub fn rested_total(&self) -> Duration {
        self.rested
    }

    /// Before a batch: takes the canary's new probes and, once per [`DECIDE_EVERY`], lets the
    /// controller decide on the recent window's p95. A probe still running counts with its age, so
    /// a canary stuck behind a lock is seen before it returns; a probe that finished while the
    /// backfill itself was held up counts too, however long ago.
    pub fn before_batch(&mut self, ctx: &mut Ctx) {
        if self.failed {
            return;
        }
        if let Some(why) = self.canary.failed() {
            self.failed = true;
            (ctx.emit)(Event::Note(format!(
                "the latency canary stopped ({why}); the backfill goes on without --max-latency"
            )));
            return;
        }
        let now = Instant::now();
        for s in self.canary.take() {
            self.during.record(s.latency, s.period);
            self.window.push_back(s);
        }
        // The window: the last [`WINDOW`], and every probe no decision has seen yet (the backfill may
        // have waited on a lock itself meanwhile, longer than the window).
        while self.window.front().is_some_and(|s| {
            now.duration_since(s.finished) > WINDOW && s.finished <= self.last_decision
        }) {
            self.window.pop_front();
        }
        if now.duration_since(self.last_decision) < DECIDE_EVERY {
            return;
        }
        let mut recent = Latencies::new();
        for s in &self.window {
            recent.record(s.latency, s.period);
        }
        let period = self.canary.period();
        if let Some(age) = self.canary.in_flight().filter(|a| *a > period) {
            recent.record(age, period);
        }
        if recent.is_empty() {
            return;
        }
        self.last_decision = now;
        let high = recent.percentile(HIGH_PERCENTILE);
        match self.ctl.decide(high) {
            Some(Change::Ratio(r)) => {
                self.peak = self.peak.max(r);
                (ctx.emit)(Event::LatencyRest {
                    latency: high,
                    target: self.ctl.target(),
                    ratio: r,
                    rested: self.rested,
                });
            }
            Some(Change::Saturated) if self.ctl.saturated() >= SATURATED_FOR => {
                if self.setting == MaxLatency::Auto && self.measured.elapsed() >= REMEASURE_GAP {
                    self.remeasure(ctx);
                } else if !self.said_saturated {
                    self.said_saturated = true;
                    (ctx.emit)(Event::Note(format!(
                        "the latency canary's p{HIGH_PERCENTILE} ({high:.1?}) stays above its target ({:.1?}) even with the backfill resting {MAX_RATIO}× each batch: the server is busier than the backfill can help; it keeps its minimum pace of a fifth of full speed (Ctrl-C stops it after a clean batch, to resume later; a higher --max-latency lets it go faster)",
                        self.ctl.target()
                    )));
                }
            }
            _ => {}
        }
    }

    /// Measures the server at rest again, the backfill waiting meanwhile: the application's own
    /// load may have grown since the backfill began, and a target it alone exceeds would only
    /// starve the backfill.
    fn remeasure(&mut self, ctx: &mut Ctx) {
        let before = self.at_rest.percentile(HIGH_PERCENTILE);
        self.at_rest = measure(&self.canary);
        self.rested += MEASURE_FOR;
        self.measured = Instant::now();
        self.last_decision = self.measured;
        self.window.clear();
        let high = self.at_rest.percentile(HIGH_PERCENTILE);
        let target = auto_target(high, self.canary.waits_for_batches());
        self.ctl.set_target(target);
        (ctx.emit)(Event::Note(format!(
            "latency canary measured with the backfill waiting again: p{HIGH_PERCENTILE} {high:.1?} (was {before:.1?} as it began); target now {target:.1?}"
        )));
    }

    /// The closing note's part on latency.
    pub fn summary(&self) -> String {
        format!(
            "latency canary p{HIGH_PERCENTILE} {:.1?} at rest, p50 {:.1?}, p{HIGH_PERCENTILE} {:.1?} and p99 {:.1?} during the backfill (target {:.1?}); the longest rest for latency {:.2}× a batch",
            self.at_rest.percentile(HIGH_PERCENTILE),
            self.during.percentile(50.0),
            self.during.percentile(HIGH_PERCENTILE),
            self.during.percentile(99.0),
            self.ctl.target(),
            self.peak
        )
    }
}
